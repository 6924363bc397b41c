//! Writing a `.wcodec` file (atomically).

use std::io::Write;
use std::path::Path;

use crate::codec::encoder::{EncodedPlane, EncodedTensor};
use crate::codec::checksum_string;
use crate::error::{Error, Result};
use crate::format::header::{Header, PlaneHeader, Section, TablesSection, TailHeader, TensorHeader};
use crate::format::{MAGIC, PREFIX_LEN, SECTION_ALIGN, TENSOR_ALIGN, VERSION, align_up};
use crate::io::atomic::write_atomic;

/// The bytes of every section, in file order, with their offsets.
struct Layout {
    header: Vec<u8>,
    pieces: Vec<(u64, Vec<u8>)>,
    data_len: u64,
}

fn layout(metadata: Option<serde_json::Map<String, serde_json::Value>>, tensors: &[EncodedTensor]) -> Result<Layout> {
    let mut cursor = 0u64;
    let mut pieces = Vec::new();
    let mut place = |bytes: Vec<u8>, align: u64, pieces: &mut Vec<(u64, Vec<u8>)>| -> Section {
        cursor = align_up(cursor, align);
        let s = Section { offset: cursor, len: bytes.len() as u64 };
        cursor += bytes.len() as u64;
        pieces.push((s.offset, bytes));
        s
    };
    let mut th = Vec::with_capacity(tensors.len());
    for t in tensors {
        let mut planes = Vec::new();
        let mut first = true;
        for p in &t.planes {
            let align = if first { TENSOR_ALIGN } else { SECTION_ALIGN };
            first = false;
            planes.push(match p {
                EncodedPlane::Raw { role, bytes } => {
                    PlaneHeader::Raw { role: role.to_string(), data: place(bytes.clone(), align, &mut pieces) }
                }
                EncodedPlane::Coded { role, plane } => {
                    let tb = plane.tables_bytes();
                    let tables = place(tb, align, &mut pieces);
                    let index = place(plane.index_bytes(), SECTION_ALIGN, &mut pieces);
                    let stream = place(plane.stream_bytes(), SECTION_ALIGN, &mut pieces);
                    PlaneHeader::Rans {
                        role: role.to_string(),
                        rows: plane.grid.rows as u64,
                        cols: plane.grid.cols as u64,
                        tile: [plane.grid.tile_h as u64, plane.grid.tile_w as u64],
                        prob_bits: plane.prob_bits,
                        tail: TailHeader { bits: plane.tail.bits, base: plane.tail.base },
                        tables: TablesSection { offset: tables.offset, len: tables.len, count: plane.tables.len() as u32 },
                        index,
                        stream,
                    }
                }
            });
        }
        th.push(TensorHeader {
            name: t.name.clone(),
            dtype: t.dtype.name().to_string(),
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            encoding: t.encoding.name().to_string(),
            checksum: checksum_string(t.checksum),
            planes,
            quant: t.quant,
        });
    }
    let header = Header { format: "wcodec".into(), version: VERSION, data_len: cursor, metadata, tensors: th };
    let header = serde_json::to_vec(&header).map_err(|e| Error::Param(format!("header: {e}")))?;
    Ok(Layout { header, pieces, data_len: cursor })
}

fn emit(l: &Layout, w: &mut dyn Write) -> std::io::Result<()> {
    w.write_all(&MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&(l.header.len() as u64).to_le_bytes())?;
    w.write_all(&l.header)?;
    let start = PREFIX_LEN as u64 + l.header.len() as u64;
    let zeros = [0u8; 64];
    w.write_all(&zeros[..(align_up(start, TENSOR_ALIGN) - start) as usize])?;
    let mut cursor = 0u64;
    for (off, bytes) in &l.pieces {
        w.write_all(&zeros[..(off - cursor) as usize])?;
        w.write_all(bytes)?;
        cursor = off + bytes.len() as u64;
    }
    debug_assert_eq!(cursor, l.data_len);
    Ok(())
}

/// Serialise to bytes in memory.
pub fn to_bytes(metadata: Option<serde_json::Map<String, serde_json::Value>>, tensors: &[EncodedTensor]) -> Result<Vec<u8>> {
    let l = layout(metadata, tensors)?;
    let mut out = Vec::new();
    emit(&l, &mut out).expect("writing to a Vec cannot fail");
    Ok(out)
}

/// Write a `.wcodec` file atomically; returns its size in bytes.
pub fn write_file(
    path: &Path,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    tensors: &[EncodedTensor],
) -> Result<u64> {
    let l = layout(metadata, tensors)?;
    let size = align_up(PREFIX_LEN as u64 + l.header.len() as u64, TENSOR_ALIGN) + l.data_len;
    write_atomic(path, |w| emit(&l, w).map_err(|e| Error::io(path, e)))?;
    Ok(size)
}

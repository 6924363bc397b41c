//! Reading and validating a `.wcodec` file.
//!
//! [`WcodecFile::open`] checks everything that can be checked without
//! decoding a stream: the prefix, the header, every section's bounds and
//! overlap, each tensor's shape against its planes, every table and every
//! tile-index entry. What it accepts can be decoded without a bounds panic;
//! stream corruption is then caught by the decoder and the checksum.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::codec::float_split::raw_bytes_per_element;
use crate::codec::freq::FreqTable;
use crate::codec::plane::{PlaneView, TileEntry};
use crate::codec::rans::Tail;
use crate::codec::tile::Grid;
use crate::codec::{Encoding, checked_numel, grid_for_shape, parse_checksum};
use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::format::header::{Header, PlaneHeader, QuantHeader, Section};
use crate::format::{MAGIC, MAX_HEADER_LEN, PREFIX_LEN, TENSOR_ALIGN, VERSION, align_up};

enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// One plane of a tensor, validated.
#[derive(Debug, Clone)]
pub enum PlaneInfo {
    Rans {
        role: String,
        grid: Grid,
        prob_bits: u32,
        tail: Tail,
        tables: Vec<FreqTable>,
        index: Vec<TileEntry>,
        /// Absolute byte ranges in the file.
        tables_range: Range<usize>,
        index_range: Range<usize>,
        stream: Range<usize>,
    },
    Raw {
        role: String,
        data: Range<usize>,
    },
}

impl PlaneInfo {
    pub fn role(&self) -> &str {
        match self {
            PlaneInfo::Rans { role, .. } | PlaneInfo::Raw { role, .. } => role,
        }
    }
    /// Bytes this plane occupies in the file.
    pub fn stored_bytes(&self) -> usize {
        match self {
            PlaneInfo::Rans { tables_range, index_range, stream, .. } => {
                tables_range.len() + index_range.len() + stream.len()
            }
            PlaneInfo::Raw { data, .. } => data.len(),
        }
    }
}

/// A borrowed plane, ready to decode.
pub enum PlaneRef<'a> {
    Coded(PlaneView<'a>),
    Raw(&'a [u8]),
}

/// One tensor, validated.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub numel: usize,
    pub encoding: Encoding,
    pub checksum: u64,
    pub planes: Vec<PlaneInfo>,
    pub quant: Option<QuantHeader>,
}

impl TensorEntry {
    /// Bytes of the source tensor.
    pub fn source_bytes(&self) -> usize {
        self.numel * self.dtype.size()
    }
    /// Bytes of the canonical decoded form (source bytes; for `quant`, int8 codes then f32 scales).
    pub fn decoded_bytes(&self) -> usize {
        match self.encoding {
            Encoding::Quant => self.numel + 4 * self.shape[0],
            _ => self.source_bytes(),
        }
    }
    pub fn stored_bytes(&self) -> usize {
        self.planes.iter().map(|p| p.stored_bytes()).sum()
    }
}

/// An open, validated `.wcodec` file.
pub struct WcodecFile {
    path: Option<PathBuf>,
    backing: Backing,
    pub header: Header,
    pub data_start: usize,
    pub tensors: Vec<TensorEntry>,
}

impl std::fmt::Debug for WcodecFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WcodecFile({:?}, {} tensors)", self.path, self.tensors.len())
    }
}

impl WcodecFile {
    /// Memory-map and validate a file.
    pub fn open(path: &Path) -> Result<WcodecFile> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = f.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::format(Location { file: Some(path.into()), ..Default::default() }, "not a regular file"));
        }
        // SAFETY: the map is read-only; a file changed underneath by another
        // process is outside what this reader can defend against.
        let backing = if meta.len() == 0 {
            Backing::Owned(Vec::new())
        } else {
            Backing::Mmap(unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?)
        };
        Self::parse(Some(path.to_path_buf()), backing).map_err(|e| e.in_file(path))
    }

    /// Validate a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<WcodecFile> {
        Self::parse(None, Backing::Owned(bytes))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    pub fn file_len(&self) -> usize {
        self.bytes().len()
    }

    /// Location of a tensor's field, with this file's path.
    pub fn loc(&self, tensor: &str, field: impl Into<String>) -> Location {
        Location { file: self.path.clone(), tensor: Some(tensor.to_string()), field: Some(field.into()) }
    }

    /// The planes of tensor `t`, borrowing from the file.
    pub fn planes(&self, t: usize) -> Vec<PlaneRef<'_>> {
        let b = self.bytes();
        self.tensors[t]
            .planes
            .iter()
            .map(|p| match p {
                PlaneInfo::Raw { data, .. } => PlaneRef::Raw(&b[data.clone()]),
                PlaneInfo::Rans { grid, prob_bits, tail, tables, index, stream, .. } => {
                    PlaneRef::Coded(PlaneView::new(*grid, *prob_bits, *tail, tables, index, &b[stream.clone()]))
                }
            })
            .collect()
    }

    fn parse(path: Option<PathBuf>, backing: Backing) -> Result<WcodecFile> {
        let bytes = backing.bytes();
        let len = bytes.len() as u64;
        let top = |field: &str| Location { file: path.clone(), tensor: None, field: Some(field.to_string()) };
        if len < PREFIX_LEN as u64 {
            return Err(Error::format(top("prefix"), format!("file is {len} bytes; the prefix alone needs {PREFIX_LEN}")));
        }
        if bytes[..8] != MAGIC {
            return Err(Error::format(top("magic"), format!("not a .wcodec file (magic {:02x?})", &bytes[..8])));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version != VERSION {
            return Err(Error::format(top("version"), format!("format version {version}; this build reads version {VERSION}")));
        }
        let flags = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
        if flags != 0 {
            return Err(Error::format(top("flags"), format!("unknown flags {flags:#x}")));
        }
        let header_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
        if header_len > MAX_HEADER_LEN {
            return Err(Error::format(top("header_len"), format!("header length {header_len} exceeds the limit {MAX_HEADER_LEN}")));
        }
        if PREFIX_LEN as u64 + header_len > len {
            return Err(Error::format(
                top("header_len"),
                format!("header of {header_len} bytes runs past the end of a {len}-byte file (truncated?)"),
            ));
        }
        let hbytes = &bytes[PREFIX_LEN..PREFIX_LEN + header_len as usize];
        let header: Header = serde_json::from_slice(hbytes)
            .map_err(|e| Error::format(top("header"), format!("invalid JSON header: {e}")))?;
        if header.format != "wcodec" {
            return Err(Error::format(top("header.format"), format!("{:?}, expected \"wcodec\"", header.format)));
        }
        if header.version != VERSION {
            return Err(Error::format(top("header.version"), format!("{} disagrees with the prefix's {VERSION}", header.version)));
        }
        let data_start = align_up(PREFIX_LEN as u64 + header_len, TENSOR_ALIGN);
        let expected = data_start.checked_add(header.data_len).ok_or_else(|| Error::format(top("data_len"), "overflows"))?;
        if expected != len {
            return Err(Error::format(
                top("data_len"),
                if expected > len {
                    format!("file is {len} bytes, header says {expected} (truncated)")
                } else {
                    format!("file is {len} bytes, header says {expected} (trailing bytes)")
                },
            ));
        }
        if bytes[PREFIX_LEN + header_len as usize..data_start as usize].iter().any(|&b| b != 0) {
            return Err(Error::format(top("padding"), "header padding is not zero"));
        }
        let mut sections: Vec<(u64, u64, String, String)> = Vec::new();
        let mut tensors = Vec::with_capacity(header.tensors.len());
        let mut names = std::collections::HashSet::new();
        for (ti, th) in header.tensors.iter().enumerate() {
            let name = th.name.clone();
            let loc = |field: &str| Location { file: path.clone(), tensor: Some(name.clone()), field: Some(field.to_string()) };
            if name.is_empty() {
                return Err(Error::format(top(&format!("tensors[{ti}].name")), "empty tensor name"));
            }
            if !names.insert(name.clone()) {
                return Err(Error::format(loc("name"), "duplicate tensor name"));
            }
            let dtype: DType = serde_json::from_value(serde_json::Value::String(th.dtype.clone()))
                .map_err(|_| Error::format(loc("dtype"), format!("unknown dtype {:?}", th.dtype)))?;
            let numel64 = checked_numel(&th.shape).ok_or_else(|| Error::format(loc("shape"), format!("{:?} overflows", th.shape)))?;
            let numel = usize::try_from(numel64)
                .ok()
                .filter(|n| n.checked_mul(dtype.size()).is_some_and(|b| b as u64 <= u64::MAX / 2))
                .ok_or_else(|| Error::format(loc("shape"), format!("{:?} is too large", th.shape)))?;
            let shape: Vec<usize> = th.shape.iter().map(|&d| d as usize).collect();
            let encoding = Encoding::parse(&th.encoding)
                .ok_or_else(|| Error::format(loc("encoding"), format!("unknown encoding {:?}", th.encoding)))?;
            let checksum = parse_checksum(&th.checksum)
                .ok_or_else(|| Error::format(loc("checksum"), format!("{:?} is not xxh3-64:<16 hex digits>", th.checksum)))?;
            // The planes each encoding must have: (role, Some(grid) for coded | None with raw length).
            enum Want {
                Coded(Grid),
                Raw(u64),
            }
            let wants: Vec<(&[&str], Want)> = match encoding {
                Encoding::Raw => vec![(&["data"], Want::Raw(numel as u64 * dtype.size() as u64))],
                _ if numel == 0 => return Err(Error::format(loc("encoding"), "an empty tensor must be raw")),
                Encoding::Int8 => {
                    if !matches!(dtype, DType::I8 | DType::U8) {
                        return Err(Error::format(loc("dtype"), format!("int8 encoding of {dtype}")));
                    }
                    vec![(&["symbols"], Want::Coded(grid_for_shape(&shape)))]
                }
                Encoding::FloatSplit => {
                    if !dtype.is_split_float() {
                        return Err(Error::format(loc("dtype"), format!("float-split encoding of {dtype}")));
                    }
                    let roles: (&[&str], &[&str]) =
                        if dtype == DType::F16 { (&["high"], &["low"]) } else { (&["exponent"], &["sign_mantissa"]) };
                    vec![
                        (roles.0, Want::Coded(Grid::one_d(numel))),
                        (roles.1, Want::Raw(numel as u64 * raw_bytes_per_element(dtype) as u64)),
                    ]
                }
                Encoding::Quant => {
                    if !dtype.is_split_float() {
                        return Err(Error::format(loc("dtype"), format!("quant encoding of {dtype}")));
                    }
                    if shape.len() < 2 {
                        return Err(Error::format(loc("shape"), "quant needs rank ≥ 2"));
                    }
                    match th.quant {
                        Some(q) if (2..=8).contains(&q.bits) => {}
                        Some(q) => return Err(Error::format(loc("quant.bits"), format!("{} not in 2..=8", q.bits))),
                        None => return Err(Error::format(loc("quant"), "missing for a quant tensor")),
                    }
                    vec![(&["q"], Want::Coded(grid_for_shape(&shape))), (&["scales"], Want::Raw(shape[0] as u64 * 4))]
                }
            };
            if encoding != Encoding::Quant && th.quant.is_some() {
                return Err(Error::format(loc("quant"), "present on a tensor that is not quant"));
            }
            if th.planes.len() != wants.len() {
                return Err(Error::format(loc("planes"), format!("{} planes, {} expects {}", th.planes.len(), encoding.name(), wants.len())));
            }
            let mut planes = Vec::with_capacity(wants.len());
            for (pi, (ph, (roles, want))) in th.planes.iter().zip(wants).enumerate() {
                let f = |x: &str| format!("planes[{pi}].{x}");
                if !roles.contains(&ph.role()) {
                    return Err(Error::format(loc(&f("role")), format!("{:?}, expected {:?}", ph.role(), roles[0])));
                }
                let mut section = |s: Section, field: String| -> Result<Range<usize>> {
                    let end = s.offset.checked_add(s.len).filter(|&e| e <= header.data_len).ok_or_else(|| {
                        Error::format(
                            loc(&field),
                            format!("offset {} + length {} lies outside the {}-byte data section", s.offset, s.len, header.data_len),
                        )
                    })?;
                    sections.push((s.offset, end, name.clone(), field));
                    Ok((data_start + s.offset) as usize..(data_start + end) as usize)
                };
                match (ph, want) {
                    (PlaneHeader::Raw { role, data }, Want::Raw(expect)) => {
                        if data.len != expect {
                            return Err(Error::format(loc(&f("data.len")), format!("{} bytes, shape needs {expect}", data.len)));
                        }
                        let r = section(*data, f("data"))?;
                        planes.push(PlaneInfo::Raw { role: role.clone(), data: r });
                    }
                    (PlaneHeader::Rans { role, rows, cols, tile, prob_bits, tail, tables, index, stream }, Want::Coded(g)) => {
                        let got = Grid {
                            rows: *rows as usize,
                            cols: *cols as usize,
                            tile_h: tile[0] as usize,
                            tile_w: tile[1] as usize,
                        };
                        if (*rows, *cols, tile[0], tile[1]) != (g.rows as u64, g.cols as u64, g.tile_h as u64, g.tile_w as u64) {
                            return Err(Error::format(
                                loc(&f("rows")),
                                format!(
                                    "grid {rows}×{cols} with {}×{} tiles disagrees with shape {shape:?} (expected {}×{} with {}×{} tiles)",
                                    tile[0], tile[1], g.rows, g.cols, g.tile_h, g.tile_w
                                ),
                            ));
                        }
                        let tr = section(Section { offset: tables.offset, len: tables.len }, f("tables"))?;
                        let ir = section(*index, f("index"))?;
                        let sr = section(*stream, f("stream"))?;
                        let tail = Tail { bits: tail.bits, base: tail.base };
                        let view = PlaneView::parse(
                            got,
                            *prob_bits,
                            tail,
                            tables.count as usize,
                            &bytes[tr.clone()],
                            &bytes[ir.clone()],
                            &bytes[sr.clone()],
                            &loc(&format!("planes[{pi}]")),
                        )?;
                        planes.push(PlaneInfo::Rans {
                            role: role.clone(),
                            grid: got,
                            prob_bits: *prob_bits,
                            tail,
                            tables: view.tables.into_owned(),
                            index: view.index.into_owned(),
                            tables_range: tr,
                            index_range: ir,
                            stream: sr,
                        });
                    }
                    (ph, _) => {
                        return Err(Error::format(
                            loc(&f("kind")),
                            format!("plane {:?} has the wrong kind for {}", ph.role(), encoding.name()),
                        ));
                    }
                }
            }
            tensors.push(TensorEntry { name, dtype, shape, numel, encoding, checksum, planes, quant: th.quant });
        }
        sections.sort();
        for w in sections.windows(2) {
            if w[0].1 > w[1].0 {
                return Err(Error::format(
                    Location { file: path.clone(), tensor: Some(w[1].2.clone()), field: Some(w[1].3.clone()) },
                    format!("section [{}, {}) overlaps {} of tensor {:?} [{}, {})", w[1].0, w[1].1, w[0].3, w[0].2, w[0].0, w[0].1),
                ));
            }
        }
        Ok(WcodecFile { path, backing, header, data_start: data_start as usize, tensors })
    }
}

//! safetensors input (memory-mapped, validated by the `safetensors` crate)
//! and output (streamed tensor by tensor, written atomically).
//!
//! The output header is written the way the reference implementation writes
//! it: compact JSON, `__metadata__` first, tensors in data order, padded with
//! spaces to a multiple of 8 bytes. A file from that writer decoded from a
//! lossless `.wcodec` therefore comes back byte for byte.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::io::atomic::write_atomic;

/// One tensor of a safetensors file.
#[derive(Debug, Clone)]
pub struct InTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

/// A memory-mapped safetensors file.
pub struct SafeInput {
    pub path: PathBuf,
    map: Option<memmap2::Mmap>,
    pub metadata: Option<Map<String, Value>>,
    /// Tensors in data order.
    pub tensors: Vec<InTensor>,
}

impl SafeInput {
    pub fn open(path: &Path) -> Result<SafeInput> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let loc = |field: &str| Location { file: Some(path.into()), tensor: None, field: Some(field.into()) };
        if len < 8 {
            return Err(Error::format(loc("header"), format!("{len} bytes is too short for a safetensors file")));
        }
        // SAFETY: read-only map; see WcodecFile::open.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&map)
            .map_err(|e| Error::format(loc("header"), format!("not a valid safetensors file: {e}")))?;
        let n = u64::from_le_bytes(map[..8].try_into().unwrap()) as usize;
        let header: Map<String, Value> = serde_json::from_slice(&map[8..8 + n])
            .map_err(|e| Error::format(loc("header"), format!("invalid JSON: {e}")))?;
        let mut metadata = None;
        let mut tensors = Vec::new();
        for (name, v) in &header {
            if name == "__metadata__" {
                metadata = v.as_object().cloned();
                continue;
            }
            let view = st.tensor(name).map_err(|e| Error::format(loc(name), e.to_string()))?;
            let dtype = DType::from_safetensors(view.dtype()).ok_or_else(|| {
                Error::Unsupported { loc: Location::tensor(name, "dtype"), msg: format!("dtype {:?} is not supported", view.dtype()) }
            })?;
            let off = v["data_offsets"].as_array().and_then(|a| Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?)));
            let (b, e) = off.ok_or_else(|| Error::format(loc(name), "bad data_offsets"))?;
            let start = 8 + n + b as usize;
            tensors.push(InTensor { name: name.clone(), dtype, shape: view.shape().to_vec(), range: start..8 + n + e as usize });
        }
        tensors.sort_by_key(|t| (t.range.start, t.range.end));
        Ok(SafeInput { path: path.to_path_buf(), map: Some(map), metadata, tensors })
    }

    pub fn data(&self, t: &InTensor) -> &[u8] {
        &self.map.as_ref().unwrap()[t.range.clone()]
    }
}

/// A tensor to write: its header fields.
#[derive(Debug, Clone)]
pub struct OutTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl OutTensor {
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// The header bytes (length prefix included) for `tensors` laid out in order.
pub fn header_bytes(metadata: Option<&Map<String, Value>>, tensors: &[OutTensor]) -> Vec<u8> {
    let mut h = Map::new();
    if let Some(m) = metadata {
        h.insert("__metadata__".into(), Value::Object(m.clone()));
    }
    let mut off = 0usize;
    for t in tensors {
        let mut e = Map::new();
        e.insert("dtype".into(), Value::String(t.dtype.name().into()));
        e.insert("shape".into(), Value::Array(t.shape.iter().map(|&d| Value::from(d as u64)).collect()));
        e.insert("data_offsets".into(), Value::Array(vec![Value::from(off as u64), Value::from((off + t.bytes()) as u64)]));
        off += t.bytes();
        h.insert(t.name.clone(), Value::Object(e));
    }
    let mut json = serde_json::to_vec(&Value::Object(h)).expect("serialising a JSON value");
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

/// Write a safetensors file atomically, asking `fill(i, w)` for tensor `i`'s
/// bytes in order. `fill` must write exactly `tensors[i].bytes()` bytes.
pub fn write_streaming(
    path: &Path,
    metadata: Option<&Map<String, Value>>,
    tensors: &[OutTensor],
    mut fill: impl FnMut(usize, &mut dyn Write) -> Result<()>,
) -> Result<()> {
    let header = header_bytes(metadata, tensors);
    write_atomic(path, |w| {
        w.write_all(&header).map_err(|e| Error::io(path, e))?;
        for (i, t) in tensors.iter().enumerate() {
            let mut cw = CountingWriter { inner: w, n: 0 };
            fill(i, &mut cw)?;
            if cw.n != t.bytes() {
                return Err(Error::Param(format!("tensor {:?}: wrote {} bytes, expected {}", t.name, cw.n, t.bytes())));
            }
        }
        Ok(())
    })
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    n: usize,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

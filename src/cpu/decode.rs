//! Decode a `.wcodec` file (CPU), tiles and tensors in parallel, memory bounded.

use std::path::Path;

use rayon::prelude::*;

use crate::codec::decoder::{decode_tensor, output_tensors, render};
use crate::dtype::DType;
use crate::error::Result;
use crate::format::WcodecFile;
use crate::io::safetensors::{OutTensor, write_streaming};

/// Decoder settings.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Output dtype (see [`crate::codec::decoder::output_tensors`]); `None` keeps the source's.
    pub dtype: Option<DType>,
    /// Decoded bytes held at once across tensors decoded in parallel.
    pub window_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { dtype: None, window_bytes: 256 << 20 }
    }
}

/// Groups of consecutive tensors whose decoded sizes fit the window (a tensor
/// larger than the window is a group of its own).
pub fn windows(file: &WcodecFile, window_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut acc = 0usize;
    for (i, t) in file.tensors.iter().enumerate() {
        let b = t.decoded_bytes();
        if i > start && acc + b > window_bytes {
            out.push(start..i);
            start = i;
            acc = 0;
        }
        acc += b;
    }
    if start < file.tensors.len() {
        out.push(start..file.tensors.len());
    }
    out
}

/// Decode every tensor to a safetensors file, written atomically. Peak memory
/// is about one window of decoded tensors plus their rendered output.
/// `on_tensor(bytes)` is called as each tensor is written.
pub fn decode_to_safetensors(file: &WcodecFile, out: &Path, opts: &DecodeOptions, on_tensor: &(dyn Fn(usize) + Sync)) -> Result<()> {
    if let Some(p) = file.path() {
        crate::io::atomic::refuse_overwrite(p, out)?;
    }
    let outs: Vec<OutTensor> = file.tensors.iter().flat_map(|e| output_tensors(e, opts.dtype)).collect();
    let meta = file.header.metadata.as_ref();
    let groups = windows(file, opts.window_bytes);
    let mut group_iter = groups.into_iter();
    let mut ready: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut next_out = 0usize;
    write_streaming(out, meta, &outs, |i, w| {
        debug_assert_eq!(i, next_out);
        next_out += 1;
        if ready.is_empty() {
            let g = group_iter.next().expect("a tensor window for every output");
            let decoded: Vec<Vec<Vec<u8>>> = g
                .clone()
                .into_par_iter()
                .map(|t| Ok(render(&file.tensors[t], decode_tensor(file, t)?, opts.dtype)))
                .collect::<Result<_>>()?;
            ready.extend(decoded.into_iter().flatten());
        }
        let bytes = ready.pop_front().expect("rendered output for every tensor");
        w.write_all(&bytes).map_err(|e| crate::Error::io(out, e))?;
        on_tensor(bytes.len());
        Ok(())
    })
}

//! Encode a safetensors file (CPU).

use std::path::Path;

use rayon::prelude::*;

use crate::codec::encoder::{EncodeOptions, EncodedTensor, encode_tensor};
use crate::error::Result;
use crate::io::safetensors::SafeInput;

/// What an encode produced.
#[derive(Debug, Clone)]
pub struct EncodeReport {
    pub source_bytes: u64,
    pub file_bytes: u64,
    pub tensors: usize,
    /// File-wide SNR over the quantised tensors, if any.
    pub quant_snr_db: Option<f64>,
}

/// Encode every tensor of `input` (in data order), `on_tensor` called after each.
pub fn encode_model(input: &SafeInput, opts: &EncodeOptions, on_tensor: &(dyn Fn(&EncodedTensor) + Sync)) -> Result<Vec<EncodedTensor>> {
    // Large tensors parallelise over tiles inside encode_tensor; small ones over tensors.
    input
        .tensors
        .par_iter()
        .map(|t| {
            let e = encode_tensor(&t.name, t.dtype, &t.shape, input.data(t), opts).map_err(|e| e.in_file(&input.path))?;
            on_tensor(&e);
            Ok(e)
        })
        .collect()
}

/// File-wide SNR of the quantised tensors.
pub fn quant_snr(tensors: &[EncodedTensor]) -> Option<f64> {
    let (mut s, mut n, mut any) = (0.0, 0.0, false);
    for t in tensors {
        if let Some((a, b)) = t.quant_sums {
            s += a;
            n += b;
            any = true;
        }
    }
    any.then(|| crate::codec::quant::snr_db(s, n))
}

/// Encode `input` to `output` atomically.
pub fn encode_file(input: &Path, output: &Path, opts: &EncodeOptions, on_tensor: &(dyn Fn(&EncodedTensor) + Sync)) -> Result<(Vec<EncodedTensor>, EncodeReport)> {
    crate::io::atomic::refuse_overwrite(input, output)?;
    let src = SafeInput::open(input)?;
    let tensors = encode_model(&src, opts, on_tensor)?;
    let file_bytes = crate::format::write_file(output, src.metadata.clone(), &tensors)?;
    let source_bytes = std::fs::metadata(input).map_err(|e| crate::Error::io(input, e))?.len();
    let report = EncodeReport { source_bytes, file_bytes, tensors: tensors.len(), quant_snr_db: quant_snr(&tensors) };
    Ok((tensors, report))
}

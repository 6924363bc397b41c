//! Whole-tensor decoding (the reference), and shaping the output a user asked for.

use crate::codec::encoder::floats_to_f32;
use crate::codec::quant::{dequant, f32_to_bf16_bits, f32_to_f16_bits};
use crate::codec::{Encoding, checksum, float_split};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::reader::{PlaneRef, TensorEntry, WcodecFile};
use crate::io::safetensors::OutTensor;

/// Decode tensor `t` into its canonical bytes (`out.len() == decoded_bytes()`):
/// the source bytes, or for `quant` the int8 codes followed by the f32 scales.
/// Tiles decode in parallel. The checksum is verified.
pub fn decode_tensor_into(file: &WcodecFile, t: usize, out: &mut [u8]) -> Result<()> {
    let e = &file.tensors[t];
    assert_eq!(out.len(), e.decoded_bytes());
    let planes = file.planes(t);
    let loc = |p: usize| file.loc(&e.name, format!("planes[{p}]"));
    match (e.encoding, planes.as_slice()) {
        (Encoding::Raw, [PlaneRef::Raw(b)]) => out.copy_from_slice(b),
        (Encoding::Int8, [PlaneRef::Coded(p)]) => {
            p.decode_into(out, &loc(0))?;
            if e.dtype == DType::U8 {
                out.iter_mut().for_each(|b| *b ^= 0x80);
            }
        }
        (Encoding::FloatSplit, [PlaneRef::Coded(p), PlaneRef::Raw(raw)]) => {
            let mut coded = vec![0u8; e.numel];
            p.decode_into(&mut coded, &loc(0))?;
            float_split::merge(e.dtype, &coded, raw, out);
        }
        (Encoding::Quant, [PlaneRef::Coded(p), PlaneRef::Raw(scales)]) => {
            p.decode_into(&mut out[..e.numel], &loc(0))?;
            out[e.numel..].copy_from_slice(scales);
        }
        _ => unreachable!("the reader validated the plane layout"),
    }
    let actual = checksum(out);
    if actual != e.checksum {
        return Err(Error::Checksum { loc: file.loc(&e.name, "checksum"), stored: e.checksum, actual });
    }
    Ok(())
}

/// Decode tensor `t` into a new buffer (see [`decode_tensor_into`]).
pub fn decode_tensor(file: &WcodecFile, t: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; file.tensors[t].decoded_bytes()];
    decode_tensor_into(file, t, &mut out)?;
    Ok(out)
}

/// The tensors a decoded entry becomes when written with `want` as the
/// requested dtype (`None`: the source dtype).
///
/// * float tensors (lossless or quant) are cast to a requested float dtype;
/// * `quant` tensors are dequantised, or with `I8` written as the int8 codes
///   plus an F32 `<name>.scale` tensor of one scale per row;
/// * every other tensor keeps its dtype.
pub fn output_tensors(e: &TensorEntry, want: Option<DType>) -> Vec<OutTensor> {
    let float_target = match want {
        Some(d @ (DType::F32 | DType::F16 | DType::BF16)) => Some(d),
        _ => None,
    };
    match e.encoding {
        Encoding::Quant if want == Some(DType::I8) => vec![
            OutTensor { name: e.name.clone(), dtype: DType::I8, shape: e.shape.clone() },
            OutTensor { name: format!("{}.scale", e.name), dtype: DType::F32, shape: vec![e.shape[0]] },
        ],
        _ if e.dtype.is_split_float() => {
            vec![OutTensor { name: e.name.clone(), dtype: float_target.unwrap_or(e.dtype), shape: e.shape.clone() }]
        }
        _ => vec![OutTensor { name: e.name.clone(), dtype: e.dtype, shape: e.shape.clone() }],
    }
}

/// Convert f32 values to little-endian bytes of `dtype` (round to nearest even).
pub fn f32_to_bytes(v: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::F16 => v.iter().flat_map(|&x| f32_to_f16_bits(x).to_le_bytes()).collect(),
        DType::BF16 => v.iter().flat_map(|&x| f32_to_bf16_bits(x).to_le_bytes()).collect(),
        _ => panic!("{dtype} is not a float type"),
    }
}

/// Dequantise canonical quant bytes (codes then scales) to f32.
pub fn dequantize(e: &TensorEntry, canonical: &[u8]) -> Vec<f32> {
    let rows = e.shape[0];
    let cols = e.numel / rows.max(1);
    let (q, s) = canonical.split_at(e.numel);
    let mut out = Vec::with_capacity(e.numel);
    for r in 0..rows {
        let sc = f32::from_le_bytes(s[4 * r..4 * r + 4].try_into().unwrap());
        out.extend(q[r * cols..(r + 1) * cols].iter().map(|&v| dequant(v, sc)));
    }
    out
}

/// The bytes of each of [`output_tensors`], from the canonical decoded bytes.
pub fn render(e: &TensorEntry, canonical: Vec<u8>, want: Option<DType>) -> Vec<Vec<u8>> {
    let outs = output_tensors(e, want);
    match e.encoding {
        Encoding::Quant if outs[0].dtype == DType::I8 => {
            let mut c = canonical;
            let scales = c.split_off(e.numel);
            vec![c, scales]
        }
        Encoding::Quant => vec![f32_to_bytes(&dequantize(e, &canonical), outs[0].dtype)],
        _ if outs[0].dtype != e.dtype => vec![f32_to_bytes(&floats_to_f32(e.dtype, &canonical), outs[0].dtype)],
        _ => vec![canonical],
    }
}

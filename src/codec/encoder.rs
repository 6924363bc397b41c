//! Whole-tensor encoding: picks an encoding and builds its planes.

use crate::codec::freq::{DEFAULT_PROB_BITS, MAX_TABLES};
use crate::codec::plane::{CodedPlane, PlaneOptions, encode_plane};
use crate::codec::predict::Mode;
use crate::codec::quant;
use crate::codec::{Encoding, checksum, float_split, grid_for_shape};
use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::format::header::QuantHeader;

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Quantise float tensors of rank ≥ 2 to this many bits (2..=8); `None` is lossless.
    pub quant_bits: Option<u32>,
    pub prob_bits: u32,
    pub max_tables: usize,
    /// Force one mode on every tile (tests and experiments).
    pub force_mode: Option<Mode>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { quant_bits: None, prob_bits: DEFAULT_PROB_BITS, max_tables: MAX_TABLES, force_mode: None }
    }
}

/// One plane of an encoded tensor.
#[derive(Debug, Clone)]
pub enum EncodedPlane {
    Coded { role: &'static str, plane: CodedPlane },
    Raw { role: &'static str, bytes: Vec<u8> },
}

impl EncodedPlane {
    pub fn coded_bytes(&self) -> usize {
        match self {
            EncodedPlane::Coded { plane, .. } => plane.coded_bytes(),
            EncodedPlane::Raw { bytes, .. } => bytes.len(),
        }
    }
}

/// An encoded tensor, ready to be written.
#[derive(Debug, Clone)]
pub struct EncodedTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub encoding: Encoding,
    pub checksum: u64,
    pub planes: Vec<EncodedPlane>,
    pub quant: Option<QuantHeader>,
    /// Quantisation error sums (Σw², Σ(w−w')²) for the file-wide SNR.
    pub quant_sums: Option<(f64, f64)>,
}

impl EncodedTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn source_bytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
    pub fn coded_bytes(&self) -> usize {
        self.planes.iter().map(|p| p.coded_bytes()).sum()
    }
}

fn raw(name: &str, dtype: DType, shape: &[usize], data: &[u8]) -> EncodedTensor {
    EncodedTensor {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        encoding: Encoding::Raw,
        checksum: checksum(data),
        planes: vec![EncodedPlane::Raw { role: "data", bytes: data.to_vec() }],
        quant: None,
        quant_sums: None,
    }
}

fn plane_opts(grid: &crate::codec::tile::Grid, o: &EncodeOptions) -> PlaneOptions {
    let mut p = PlaneOptions::for_grid(grid);
    p.prob_bits = o.prob_bits;
    p.max_tables = o.max_tables;
    p.force_mode = o.force_mode;
    p
}

/// Decode little-endian float elements to f32 (exact for F16 and BF16).
pub fn floats_to_f32(dtype: DType, data: &[u8]) -> Vec<f32> {
    match dtype {
        DType::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        DType::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        DType::BF16 => data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => panic!("{dtype} is not a float type"),
    }
}

/// Encode one tensor. Lossless unless `opts.quant_bits` is set and the tensor
/// is a float of rank ≥ 2. A coded encoding that would not be smaller than the
/// raw bytes falls back to `raw`, except when a mode is forced.
pub fn encode_tensor(name: &str, dtype: DType, shape: &[usize], data: &[u8], opts: &EncodeOptions) -> Result<EncodedTensor> {
    let loc = Location::tensor(name, "data");
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| Error::format(loc.clone(), "shape overflows"))?;
    if numel.checked_mul(dtype.size()) != Some(data.len()) {
        return Err(Error::format(loc, format!("{} bytes for shape {shape:?} of {dtype}", data.len())));
    }
    if numel == 0 {
        return Ok(raw(name, dtype, shape, data));
    }
    let grid = grid_for_shape(shape);
    let t = match dtype {
        DType::I8 | DType::U8 => {
            let syms: std::borrow::Cow<[u8]> =
                if dtype == DType::U8 { data.iter().map(|&b| b ^ 0x80).collect::<Vec<u8>>().into() } else { data.into() };
            let plane = encode_plane(&syms, grid, &plane_opts(&grid, opts))?;
            EncodedTensor {
                name: name.to_string(),
                dtype,
                shape: shape.to_vec(),
                encoding: Encoding::Int8,
                checksum: checksum(data),
                planes: vec![EncodedPlane::Coded { role: "symbols", plane }],
                quant: None,
                quant_sums: None,
            }
        }
        DType::F32 | DType::F16 | DType::BF16 if opts.quant_bits.is_some() && shape.len() >= 2 => {
            let bits = opts.quant_bits.unwrap();
            let w = floats_to_f32(dtype, data);
            let q = quant::quantize(&w, grid.rows, grid.cols, bits, &loc)?;
            let mut max_err = 0f64;
            for r in 0..q.rows {
                for c in 0..q.cols {
                    let i = r * q.cols + c;
                    max_err = max_err.max((w[i] as f64 - quant::dequant(q.q[i], q.scales[r]) as f64).abs());
                }
            }
            let plane = encode_plane(&q.q, grid, &plane_opts(&grid, opts))?;
            let scales: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut canon = q.q.clone();
            canon.extend_from_slice(&scales);
            let snr = q.snr_db();
            EncodedTensor {
                name: name.to_string(),
                dtype,
                shape: shape.to_vec(),
                encoding: Encoding::Quant,
                checksum: checksum(&canon),
                planes: vec![EncodedPlane::Coded { role: "q", plane }, EncodedPlane::Raw { role: "scales", bytes: scales }],
                quant: Some(QuantHeader { bits, snr_db: snr.is_finite().then_some(snr), max_abs_err: max_err, signal: q.signal }),
                quant_sums: Some((q.signal, q.noise)),
            }
        }
        DType::F32 | DType::F16 | DType::BF16 => {
            let (coded, rawp) = float_split::split(dtype, data);
            let g = crate::codec::tile::Grid::one_d(numel);
            let plane = encode_plane(&coded, g, &plane_opts(&g, opts))?;
            let role = if dtype == DType::F16 { ("high", "low") } else { ("exponent", "sign_mantissa") };
            EncodedTensor {
                name: name.to_string(),
                dtype,
                shape: shape.to_vec(),
                encoding: Encoding::FloatSplit,
                checksum: checksum(data),
                planes: vec![EncodedPlane::Coded { role: role.0, plane }, EncodedPlane::Raw { role: role.1, bytes: rawp }],
                quant: None,
                quant_sums: None,
            }
        }
        _ => return Ok(raw(name, dtype, shape, data)),
    };
    // A coded plane costs about 200 more header bytes and some alignment than a raw one.
    if t.encoding != Encoding::Quant && opts.force_mode.is_none() && t.coded_bytes() + 256 >= data.len() {
        return Ok(raw(name, dtype, shape, data));
    }
    Ok(t)
}

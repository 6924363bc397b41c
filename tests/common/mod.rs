//! Shared test helpers: the real sample model, weight-like random data.
#![allow(dead_code)]

use std::path::PathBuf;

use wcodec::codec::encoder::{EncodeOptions, EncodedTensor, encode_tensor};
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::io::safetensors::SafeInput;

/// all-MiniLM-L6-v2, if fetched (`scripts/fetch_minilm.sh`); otherwise prints
/// why the calling test is skipped and returns `None`.
pub fn minilm() -> Option<SafeInput> {
    let path = std::env::var_os("WCODEC_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("WCODEC_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/wcodec")
                });
            cache.join("all-MiniLM-L6-v2/model.safetensors")
        });
    if !path.exists() {
        eprintln!(
            "SKIP: all-MiniLM-L6-v2 not found at {} (run scripts/fetch_minilm.sh)",
            path.display()
        );
        if std::env::var_os("WCODEC_REQUIRE_MINILM").is_some() {
            panic!("WCODEC_REQUIRE_MINILM is set but the model is missing");
        }
        return None;
    }
    Some(SafeInput::open(&path).expect("the fetched model opens"))
}

/// A tensor as (name, dtype, shape, bytes).
pub type Tensor = (String, DType, Vec<usize>, Vec<u8>);

/// Every tensor of the model, with F32 tensors cast to `dtype` (RNE).
pub fn cast_model(m: &SafeInput, dtype: DType) -> Vec<Tensor> {
    m.tensors
        .iter()
        .map(|t| {
            let d = m.data(t);
            if t.dtype == DType::F32 && dtype != DType::F32 {
                let v = wcodec::codec::encoder::floats_to_f32(DType::F32, d);
                (
                    t.name.clone(),
                    dtype,
                    t.shape.clone(),
                    wcodec::codec::decoder::f32_to_bytes(&v, dtype),
                )
            } else {
                (t.name.clone(), t.dtype, t.shape.clone(), d.to_vec())
            }
        })
        .collect()
}

/// Encode tensors and round-trip them through the container in memory.
pub fn encode_all(tensors: &[Tensor], opts: &EncodeOptions) -> (Vec<EncodedTensor>, WcodecFile) {
    let enc: Vec<EncodedTensor> = tensors
        .iter()
        .map(|(n, d, s, b)| encode_tensor(n, *d, s, b, opts).expect("encodes"))
        .collect();
    let bytes = wcodec::format::writer::to_bytes(None, &enc).expect("serialises");
    let file = WcodecFile::from_bytes(bytes).expect("reads back");
    (enc, file)
}

/// A small, fast, seedable generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Laplacian with scale `b`.
    pub fn laplace(&mut self, b: f64) -> f64 {
        let u = self.uniform() - 0.5;
        -b * u.signum() * (1.0 - 2.0 * u.abs()).max(1e-300).ln()
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Int8 weights like per-row-absmax quantised layers: Laplacian, clamped to ±127.
pub fn int8_weights(rng: &mut Rng, n: usize, scale: f64) -> Vec<u8> {
    (0..n)
        .map(|_| (rng.laplace(scale).round().clamp(-127.0, 127.0) as i8) as u8)
        .collect()
}

/// f32 weights like a dense layer: Gaussian with a per-row spread.
pub fn f32_weights(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let s = 0.02 * (1.0 + rng.uniform());
        for _ in 0..cols {
            v.push((rng.normal() * s) as f32);
        }
    }
    v
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

//! Quantisation (CODEC.md §6): per-row absmax, k-bit signed integers.
//!
//! * Quantise: `s_row = absmax(row) / L` (f32), `q = clamp(round_half_even(w / s_row), −L, L)`
//!   with `L = 2^(k−1) − 1`. A row of zeros has `s_row = 0` and `q = 0`.
//! * Dequantise: `w' = q · s_row` in f32, then round-to-nearest-even to the
//!   output dtype, in integer arithmetic ([`f32_to_f16_bits`], [`f32_to_bf16_bits`]).

use crate::error::{Error, Location, Result};

/// Largest magnitude of a k-bit code.
pub fn level(bits: u32) -> i32 {
    (1 << (bits - 1)) - 1
}

/// Result of quantising one 2-D tensor.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub rows: usize,
    pub cols: usize,
    pub bits: u32,
    /// `rows × cols` codes, row-major, as int8 bytes.
    pub q: Vec<u8>,
    /// Per-row scales.
    pub scales: Vec<f32>,
    /// Σ w² and Σ (w − w')², for the SNR.
    pub signal: f64,
    pub noise: f64,
}

impl Quantized {
    pub fn snr_db(&self) -> f64 {
        snr_db(self.signal, self.noise)
    }
}

pub fn snr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// Quantise `w` (`rows × cols`, row-major f32) to `bits`-bit codes.
pub fn quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    bits: u32,
    loc: &Location,
) -> Result<Quantized> {
    if !(2..=8).contains(&bits) {
        return Err(Error::Param(format!("--bits {bits} not in 2..=8")));
    }
    assert_eq!(w.len(), rows * cols);
    let l = level(bits) as f32;
    let mut q = vec![0u8; w.len()];
    let mut scales = vec![0f32; rows];
    let (mut signal, mut noise) = (0f64, 0f64);
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let mut amax = 0f32;
        for (c, &v) in row.iter().enumerate() {
            if !v.is_finite() {
                return Err(Error::Unsupported {
                    loc: loc.clone(),
                    msg: format!("element [{r}, {c}] is {v}; quantisation needs finite weights"),
                });
            }
            amax = amax.max(v.abs());
        }
        let s = amax / l;
        scales[r] = s;
        for (c, &v) in row.iter().enumerate() {
            let code = if s > 0.0 {
                (v / s).round_ties_even().clamp(-l, l)
            } else {
                0.0
            };
            q[r * cols + c] = code as i8 as u8;
            let back = code * s;
            signal += v as f64 * v as f64;
            noise += (v as f64 - back as f64).powi(2);
        }
    }
    Ok(Quantized {
        rows,
        cols,
        bits,
        q,
        scales,
        signal,
        noise,
    })
}

/// `q · s` in f32.
#[inline(always)]
pub fn dequant(q: u8, s: f32) -> f32 {
    q as i8 as f32 * s
}

/// f32 → f16 bits, round to nearest even, integer arithmetic only (NaN stays NaN).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign
            | 0x7c00
            | if man != 0 {
                0x200 | (man >> 13) as u16
            } else {
                0
            };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal (or zero) in f16: shift the full mantissa right.
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1 << shift) - 1);
        let mut v = m >> shift;
        if rem > half || (rem == half && v & 1 == 1) {
            v += 1;
        }
        return sign | v as u16;
    }
    let rem = man & 0x1fff;
    let mut v = ((e as u32) << 10) | (man >> 13);
    if rem > 0x1000 || (rem == 0x1000 && v & 1 == 1) {
        v += 1; // may carry into the exponent, up to infinity: correct
    }
    sign | v as u16
}

/// f32 → bf16 bits, round to nearest even (NaN stays NaN).
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return ((b >> 16) | 0x40) as u16;
    }
    let lsb = (b >> 16) & 1;
    ((b + 0x7fff + lsb) >> 16) as u16
}

#[cfg(test)]
mod tests {

    /// The GEMV packs x with `half`'s slice conversion (F16C where present):
    /// it must round exactly like this function, for every non-NaN f32 class
    /// (normals, subnormal results, overflow, ties), sampled over all bit patterns.
    #[test]
    fn f16_rounding_equals_the_half_crate_slice_conversion() {
        use half::slice::HalfFloatSliceExt;
        let mut xs: Vec<f32> = (0..(1u64 << 32))
            .step_by(997)
            .map(|b| f32::from_bits(b as u32))
            .filter(|v| !v.is_nan())
            .collect();
        xs.extend([
            65519.99,
            65520.0,
            -65520.0,
            6.0e-8,
            2.98e-8,
            2.9802322e-8,
            0.0,
            -0.0,
        ]);
        let mut h = vec![half::f16::ZERO; xs.len()];
        h.convert_from_f32_slice(&xs);
        for (x, h) in xs.iter().zip(&h) {
            assert_eq!(
                f32_to_f16_bits(*x),
                h.to_bits(),
                "{x:e} ({:#x})",
                x.to_bits()
            );
        }
    }

    use super::*;

    #[test]
    fn integer_conversions_match_half() {
        let mut seed = 12345u32;
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            65504.0,
            65520.0,
            1e-8,
            5.96e-8,
            2.98e-8,
            6.1e-5,
            f32::INFINITY,
            f32::MIN_POSITIVE,
        ];
        let mut xs: Vec<f32> = specials.to_vec();
        for _ in 0..200_000 {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            xs.push(f32::from_bits(seed));
        }
        for x in xs {
            if x.is_nan() {
                assert!(half::f16::from_bits(f32_to_f16_bits(x)).is_nan());
                assert!(half::bf16::from_bits(f32_to_bf16_bits(x)).is_nan());
                continue;
            }
            assert_eq!(
                f32_to_f16_bits(x),
                half::f16::from_f32(x).to_bits(),
                "{x:e}"
            );
            assert_eq!(
                f32_to_bf16_bits(x),
                half::bf16::from_f32(x).to_bits(),
                "{x:e}"
            );
        }
    }

    #[test]
    fn quantize_is_absmax_round_half_even() {
        let w = [3.0f32, -1.5, 0.75, 2.5, 0.0, 0.0, 0.0, 0.0];
        let q = quantize(&w, 2, 4, 3, &Location::default()).unwrap();
        // L = 3, s = 1: -1.5 -> -2 and 2.5 -> 2 (half to even), 0.75 -> 1
        assert_eq!(
            q.q[..4].iter().map(|&b| b as i8).collect::<Vec<_>>(),
            vec![3, -2, 1, 2]
        );
        assert_eq!(q.scales[1], 0.0);
        assert!(q.q[4..].iter().all(|&b| b == 0));
        assert!(quantize(&[f32::NAN], 1, 1, 8, &Location::default()).is_err());
    }
}

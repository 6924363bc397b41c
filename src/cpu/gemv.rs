//! GEMV reference: `y = scale ⊙ (W·x) + bias` in f64, the yardstick the GPU
//! kernels are measured against (`tests/gpu_gemv.rs`).
//!
//! The weights are given exactly as a backend stores them ([`Weights`]), so the
//! reference computes the exact product of the stored values; the only error a
//! backend may add is its f32 arithmetic. [`GemvRef::bound`] is a rigorous
//! bound on that error for any summation order (Higham, "Accuracy and
//! Stability of Numerical Algorithms", §3.1: a sum of `n` terms computed in
//! any order, with products and fused multiply-adds, has error at most
//! `γ_n · Σ|terms|` with `γ_n = n·u / (1 − n·u)`, `u = 2^-24`).

use crate::error::{Error, Result};

/// Weights as stored for a GEMV: row-major `rows × cols`.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    /// IEEE binary16 bit patterns.
    F16(&'a [u16]),
    /// int8 codes with one f32 scale per row (the codec's `quant` output).
    I8 {
        q: &'a [i8],
        scales: &'a [f32],
    },
}

impl Weights<'_> {
    pub fn dtype_name(&self) -> &'static str {
        match self {
            Weights::F32(_) => "f32",
            Weights::F16(_) => "f16",
            Weights::I8 { .. } => "i8",
        }
    }

    /// Elements held (codes for int8).
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::I8 { q, .. } => q.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check that the weights hold `rows × cols` elements (and `rows` scales).
    pub fn check(&self, rows: usize, cols: usize) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Err(Error::Param(format!(
                "GEMV of an empty {rows}×{cols} matrix"
            )));
        }
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::Param(format!("{rows}×{cols} overflows")))?;
        if self.len() != n {
            return Err(Error::Param(format!(
                "{} weights hold {} elements, {rows}×{cols} needs {n}",
                self.dtype_name(),
                self.len()
            )));
        }
        if let Weights::I8 { scales, .. } = self {
            if scales.len() != rows {
                return Err(Error::Param(format!(
                    "int8 weights have {} scales for {rows} rows",
                    scales.len()
                )));
            }
        }
        Ok(())
    }

    /// Element (r, c) as f64 (for int8: the code, unscaled).
    #[inline]
    pub fn at(&self, i: usize) -> f64 {
        match self {
            Weights::F32(w) => w[i] as f64,
            Weights::F16(w) => half::f16::from_bits(w[i]).to_f64(),
            Weights::I8 { q, .. } => q[i] as f64,
        }
    }

    /// The per-row factor applied after the sum (1 except for int8).
    #[inline]
    pub fn row_scale(&self, r: usize) -> f64 {
        match self {
            Weights::I8 { scales, .. } => scales[r] as f64,
            _ => 1.0,
        }
    }
}

/// The reference result of a batched GEMV.
#[derive(Debug, Clone)]
pub struct GemvRef {
    pub rows: usize,
    pub batch: usize,
    /// `y[b · rows + r]`, exact up to f64 rounding.
    pub y: Vec<f64>,
    /// `Σ_c |scale · W[r][c] · x[b][c]|` per output, for the error bound.
    pub abs: Vec<f64>,
    /// Terms per sum (cols), for the error bound.
    pub terms: usize,
}

impl GemvRef {
    /// The largest error an f32 implementation may make on output `i`
    /// (any summation order, FMA or not): `γ_(n+2) · abs[i]` plus one rounding
    /// of the scale multiply and of the bias add, `n` = terms.
    pub fn bound(&self, i: usize, bias: f64) -> f64 {
        let u = 2f64.powi(-24);
        let n = (self.terms + 3) as f64;
        let g = n * u / (1.0 - n * u);
        g * self.abs[i] + u * (self.y[i].abs() + bias.abs())
    }
}

/// `y[b] = scale ⊙ (W · x[b]) + bias` for `batch` vectors `x` (`batch × cols`), in f64.
pub fn gemv_f64(
    w: &Weights<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
) -> Result<GemvRef> {
    w.check(rows, cols)?;
    if x.len() != batch * cols {
        return Err(Error::Param(format!(
            "x has {} values, {batch}×{cols} needed",
            x.len()
        )));
    }
    if let Some(b) = bias.filter(|b| b.len() != rows) {
        return Err(Error::Param(format!(
            "bias has {} values for {rows} rows",
            b.len()
        )));
    }
    let mut y = vec![0f64; batch * rows];
    let mut abs = vec![0f64; batch * rows];
    for b in 0..batch {
        let xb = &x[b * cols..(b + 1) * cols];
        for r in 0..rows {
            let (mut s, mut a) = (0f64, 0f64);
            for (c, &xv) in xb.iter().enumerate() {
                let t = w.at(r * cols + c) * xv as f64;
                s += t;
                a += t.abs();
            }
            let sc = w.row_scale(r);
            y[b * rows + r] = s * sc + bias.map_or(0.0, |bb| bb[r] as f64);
            abs[b * rows + r] = a * sc.abs();
        }
    }
    Ok(GemvRef {
        rows,
        batch,
        y,
        abs,
        terms: cols,
    })
}

/// The CPU backend's GEMV: `y[b] = scale ⊙ (W · x[b]) + bias` in f32
/// arithmetic (fused multiply-adds in index order, rows in parallel), the
/// CPU's entry in the cross-backend tests and benches. With `x_f16` the
/// vectors are first rounded to f16, as the GPU kernels read them.
pub fn gemv_f32(
    w: &Weights<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    x_f16: bool,
) -> Result<Vec<f32>> {
    use rayon::prelude::*;
    w.check(rows, cols)?;
    if x.len() != batch * cols {
        return Err(Error::Param(format!(
            "x has {} values, {batch}×{cols} needed",
            x.len()
        )));
    }
    if let Some(b) = bias.filter(|b| b.len() != rows) {
        return Err(Error::Param(format!(
            "bias has {} values for {rows} rows",
            b.len()
        )));
    }
    let xs: Vec<f32> = if x_f16 {
        x.iter()
            .map(|&v| half::f16::from_bits(crate::codec::quant::f32_to_f16_bits(v)).to_f32())
            .collect()
    } else {
        x.to_vec()
    };
    let mut y = vec![0f32; batch * rows];
    for b in 0..batch {
        let xb = &xs[b * cols..(b + 1) * cols];
        y[b * rows..(b + 1) * rows]
            .par_iter_mut()
            .enumerate()
            .for_each(|(r, out)| {
                let mut acc = 0f32;
                for (c, &xv) in xb.iter().enumerate() {
                    acc = (w.at(r * cols + c) as f32).mul_add(xv, acc);
                }
                let sc = w.row_scale(r) as f32;
                *out = acc * sc + bias.map_or(0.0, |bb| bb[r]);
            });
    }
    Ok(y)
}

/// Relative L2 error `‖got − want‖ / ‖want‖`.
pub fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += (g as f64 - w).powi(2);
        den += w * w;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_is_the_plain_product() {
        let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = [1.0f32, 0.5, -1.0, 2.0, 0.0, 1.0];
        let r = gemv_f64(&Weights::F32(&w), 2, 3, &x, 2, Some(&[10.0, 20.0])).unwrap();
        assert_eq!(
            r.y,
            vec![
                1.0 + 1.0 - 3.0 + 10.0,
                4.0 + 2.5 - 6.0 + 20.0,
                2.0 + 3.0 + 10.0,
                8.0 + 6.0 + 20.0
            ]
        );
        let q = [1i8, -2, 3, 4, 5, -6];
        let r = gemv_f64(
            &Weights::I8 {
                q: &q,
                scales: &[0.5, 2.0],
            },
            2,
            3,
            &x[..3],
            1,
            None,
        )
        .unwrap();
        assert_eq!(r.y, vec![0.5 * (1.0 - 1.0 - 3.0), 2.0 * (4.0 + 2.5 + 6.0)]);
        assert!(gemv_f64(&Weights::F32(&w), 3, 3, &x, 1, None).is_err());
        assert!(
            gemv_f64(
                &Weights::I8 {
                    q: &q,
                    scales: &[1.0]
                },
                2,
                3,
                &x[..3],
                1,
                None
            )
            .is_err()
        );
    }
}

//! Softmax reference in f64: `p = exp((x − max) / T) / Σ exp((x − max) / T)`
//! per row, or log-softmax `(x − max) / T − ln Σ`, the yardstick of
//! `shaders/softmax_f32.wgsl`.
//!
//! Inputs are sanitised the same way on every backend ([`sanitize`]): NaN
//! counts as the lowest finite value and ±∞ as the largest finite values, so
//! a row never produces NaN.

use crate::error::{Error, Result};

/// NaN → −f32::MAX, ±∞ → ±f32::MAX, else `x` (exact, on bits).
#[inline]
pub fn sanitize(x: f32) -> f32 {
    if x.is_nan() {
        -f32::MAX
    } else {
        x.clamp(-f32::MAX, f32::MAX)
    }
}

/// Check a temperature: finite and positive, with `1 / T` finite.
pub fn check_temperature(t: f32) -> Result<()> {
    if !(t.is_finite() && t > 0.0 && (1.0 / t).is_finite()) {
        return Err(Error::Param(format!(
            "temperature {t} must be finite and > 0 (use greedy for 0)"
        )));
    }
    Ok(())
}

/// Softmax (or log-softmax) of `rows` rows of `n` values at temperature `t`, in f64.
pub fn softmax_f64(x: &[f32], rows: usize, n: usize, t: f32, log: bool) -> Result<Vec<f64>> {
    check_temperature(t)?;
    if n == 0 || x.len() != rows * n {
        return Err(Error::Param(format!(
            "softmax of {} values as {rows} rows of {n}",
            x.len()
        )));
    }
    let t = t as f64;
    let mut out = vec![0f64; x.len()];
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let m = row
            .iter()
            .map(|&v| sanitize(v) as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let z: Vec<f64> = row.iter().map(|&v| (sanitize(v) as f64 - m) / t).collect();
        let s: f64 = z.iter().map(|&v| v.exp()).sum();
        for (o, &zi) in out[r * n..(r + 1) * n].iter_mut().zip(&z) {
            *o = if log { zi - s.ln() } else { zi.exp() / s };
        }
    }
    Ok(out)
}

/// A pairwise (tree) sum in f32: error ~log2(n)·u instead of n·u.
fn pairwise_sum(v: &[f32]) -> f32 {
    if v.len() <= 32 {
        return v.iter().sum();
    }
    let (a, b) = v.split_at(v.len() / 2);
    pairwise_sum(a) + pairwise_sum(b)
}

/// The CPU backend's softmax in f32, the algorithm of the GPU kernels:
/// `M = max`, `c = log2(e) / T`, `S = Σ exp2((x − M)·c)`,
/// `p = exp2((x − M)·c) / S` or `log p = (x − M)/T − ln S` (the sum
/// pairwise). Within the documented tolerances of [`softmax_f64`].
pub fn softmax_f32(x: &[f32], rows: usize, n: usize, t: f32, log: bool) -> Result<Vec<f32>> {
    check_temperature(t)?;
    if n == 0 || x.len() != rows * n {
        return Err(Error::Param(format!(
            "softmax of {} values as {rows} rows of {n}",
            x.len()
        )));
    }
    let c = std::f32::consts::LOG2_E / t;
    if !c.is_finite() {
        return Err(Error::Param(format!("temperature {t} is too small")));
    }
    let inv_t = 1.0 / t;
    let mut out = vec![0f32; x.len()];
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let m = row.iter().map(|&v| sanitize(v)).fold(-f32::MAX, f32::max);
        let e: Vec<f32> = row
            .iter()
            .map(|&v| ((sanitize(v) - m) * c).exp2())
            .collect();
        let s = pairwise_sum(&e);
        let ln_s = s.log2() * std::f32::consts::LN_2;
        let inv_s = 1.0 / s;
        for (o, &v) in out[r * n..(r + 1) * n].iter_mut().zip(row) {
            let d = sanitize(v) - m;
            *o = if log {
                d * inv_t - ln_s
            } else {
                (d * c).exp2() * inv_s
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_handles_extremes() {
        let x = [1.0f32, 2.0, 3.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        let p = softmax_f64(&x[..3], 1, 3, 1.0, false).unwrap();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((p[2] / p[1] - std::f64::consts::E).abs() < 1e-12);
        let lp = softmax_f64(&x[..3], 1, 3, 0.5, true).unwrap();
        assert!((lp[2] - lp[1] - 2.0).abs() < 1e-12);
        let q = softmax_f64(&x, 2, 3, 1.0, false).unwrap();
        assert!(q.iter().all(|v| v.is_finite()));
        assert_eq!(q[4], 1.0); // +inf → f32::MAX dominates its row
        assert!(softmax_f64(&x, 1, 6, 0.0, false).is_err());
        assert!(softmax_f64(&x, 4, 2, 1.0, false).is_err());
    }
}

//! Token sampling, the exact algorithm every backend implements: greedy,
//! temperature, top-k, top-p (nucleus) and their combinations, with the same
//! token for the same seed on every backend (`shaders/sample_f32.wgsl`).
//!
//! # The algorithm (version 2)
//!
//! Floating point sums depend on their order, so the sampler turns each logit
//! into an integer weight with two correctly rounded f32 operations and does
//! everything else in integers, where order does not matter.
//!
//! For a row of logits `l[0..n)`, parameters `(T, k, p, seed)` and the row's
//! step counter:
//!
//! 1. `s_i = sanitize(l_i)` (NaN → −f32::MAX, ±∞ → ±f32::MAX); `M = max s_i`.
//! 2. **Greedy** when `T = 0` or `k = 1`: the lowest `i` with `s_i = M`.
//! 3. Otherwise, in f32: `S = 2954.6394 / T` (that is `2^11 · log2 e / T`,
//!    computed once by the host, [`scale`]); per token
//!    `z = (M − s_i) · S` (one subtraction, one multiplication, both
//!    correctly rounded on every backend) and the **distance**
//!    `d_i = min(trunc(z), 65535)`: the logit's distance from the maximum in
//!    units of 2^-11 bits of probability.
//! 4. The **weight** `w_i = EXP2[d_i mod 2048] >> (d_i div 2048)`, where
//!    `EXP2[f] = round(2^31 · 2^(−f/2048))` ([`exp2_table`]). So
//!    `w_i ≈ 2^31 · exp((s_i − M) / T)` to within 2^-11 bits (0.034 %); a
//!    token whose probability is below 2^-31 of the top token's has weight 0
//!    and is never drawn. Tokens with `w_i > 0` are the **candidates**.
//! 5. **Order**: candidates by `(d_i, i)` ascending: more probable first, ties
//!    (equal distance) by lower index.
//! 6. **Top-k**: the first `K = min(k, candidates)` in that order (`k = 0`:
//!    all). `W_K` is their total weight.
//! 7. **Top-p**: `P = floor(p · 2^24)` (`p ≥ 1`: 2^24), `target = ceil(W_K · P / 2^24)`;
//!    keep the shortest prefix of the top-k set whose weight is at least
//!    `target`. `W` is its weight.
//! 8. **Draw**: `R` = the 64-bit word of Philox4x32-10 at key = seed,
//!    counter = (step, row) ([`crate::rng::sample_u64`]); `U = floor(W · R / 2^64)`.
//!    The token is the kept one whose weight interval (in that order) holds
//!    `U`: the first `j` with `U < Σ_{first j} w`.
//!    **Temperature alone** (`k = 0` or `k ≥ n`, and `p = 1`;
//!    [`SampleParams::draws_in_index_order`]): every candidate is kept, and
//!    the intervals are laid out in **index order** instead, the first `i`
//!    with `U < Σ_{j ≤ i} w_j`. Each token keeps its weight, so the
//!    distribution is the same; the GPU then needs no histogram or ranking,
//!    only block sums and one block's prefix sums. (Version 1 used the
//!    `(d, i)` order here too; version 2 changed only this case.)
//!
//! No sort is needed on the GPU: weights depend only on `d`, so everything
//! from step 5 on follows from a histogram of `d` (a coarse pass of 256 bins of
//! `d div 256`, then a fine pass over the 256 values of one bin) and one final
//! search for the `r`-th token with a given `d` in index order.

use std::sync::OnceLock;

use crate::cpu::softmax::sanitize;
use crate::error::{Error, Result};

/// Fraction bits of the distance `d` (units of 2^-11 bits).
pub const FRAC_BITS: u32 = 11;
/// Largest distance; weights of distances ≥ 31·2048 + 1 are 0.
pub const D_MAX: u32 = 65535;
/// `2^11 · log2(e)` as f32: [`scale`] divides it by the temperature.
pub const SCALE_NUM: f32 = 2_954.639_4;
/// `P` for top-p 1.
pub const P_ONE: u32 = 1 << 24;

/// `EXP2[f] = round(2^31 · 2^(−f/2048))` for f in 0..2048.
///
/// Computed with IEEE operations only (square roots and products of f64,
/// each correctly rounded), so every machine builds the same table.
pub fn exp2_table() -> &'static [u32; 2048] {
    static T: OnceLock<[u32; 2048]> = OnceLock::new();
    T.get_or_init(|| {
        // pow[j] = 2^(−2^j / 2048), j = 0..11, by repeated square roots of 1/2.
        let mut pow = [0f64; 11];
        pow[10] = 0.5f64.sqrt();
        for j in (0..10).rev() {
            pow[j] = pow[j + 1].sqrt();
        }
        let mut t = [0u32; 2048];
        for (f, e) in t.iter_mut().enumerate() {
            let mut v = 2147483648.0f64;
            for (j, pj) in pow.iter().enumerate() {
                if f >> j & 1 == 1 {
                    v *= pj;
                }
            }
            *e = (v + 0.5).floor() as u32;
        }
        t
    })
}

/// The weight of distance `d`.
#[inline]
pub fn weight(d: u32) -> u32 {
    let d = d.min(D_MAX);
    exp2_table()[(d & 2047) as usize] >> (d >> FRAC_BITS)
}

/// Sampling parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleParams {
    /// 0: greedy.
    pub temperature: f32,
    /// 0: no top-k; 1: greedy.
    pub top_k: u32,
    /// In (0, 1]; 1: no top-p.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SampleParams {
    fn default() -> Self {
        SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl SampleParams {
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    /// Check the parameters (a clear error instead of a meaningless draw).
    pub fn check(&self) -> Result<()> {
        let t = self.temperature;
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::Param(format!(
                "temperature {t} must be finite and ≥ 0"
            )));
        }
        if t > 0.0 && !(SCALE_NUM / t).is_finite() {
            return Err(Error::Param(format!(
                "temperature {t} is too small (use 0 for greedy)"
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Param(format!(
                "top-p {} must be in (0, 1]",
                self.top_p
            )));
        }
        Ok(())
    }

    /// Whether step 8 lays the weights out in index order: temperature alone
    /// (no top-k cut of a row of `n` logits, top-p 1, not greedy).
    pub fn draws_in_index_order(&self, n: usize) -> bool {
        !self.is_greedy()
            && (self.top_k == 0 || self.top_k as usize >= n)
            && self.p_fixed() == P_ONE
    }

    /// `S` of step 3.
    pub fn scale(&self) -> f32 {
        scale(self.temperature)
    }

    /// `P` of step 7.
    pub fn p_fixed(&self) -> u32 {
        if self.top_p >= 1.0 {
            P_ONE
        } else {
            ((self.top_p * P_ONE as f32) as u32).clamp(1, P_ONE)
        }
    }
}

/// `S = SCALE_NUM / T` in f32 (T > 0).
pub fn scale(t: f32) -> f32 {
    SCALE_NUM / t
}

/// The distance of a sanitised logit `s` from the row maximum `m`.
#[inline]
pub fn distance(m: f32, s: f32, scale: f32) -> u32 {
    let z = (m - s) * scale;
    if z >= D_MAX as f32 { D_MAX } else { z as u32 }
}

/// What the sampler decided for one row, step by step (for tests and debugging).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    pub greedy: bool,
    pub candidates: u64,
    pub k: u64,
    pub w_k: u64,
    pub target: u64,
    pub kept: u64,
    pub w: u64,
    pub u: u64,
    pub token: u32,
}

/// Steps 4–5: a row's candidates (tokens of weight > 0) as (distance,
/// index), in (d, index) order.
pub fn ranked(ds: &[u32]) -> Vec<(u32, u32)> {
    let mut cand: Vec<(u32, u32)> = ds
        .iter()
        .enumerate()
        .map(|(i, &d)| (d, i as u32))
        .filter(|&(d, _)| weight(d) > 0)
        .collect();
    cand.sort_unstable();
    cand
}

/// Step 8's search: the index of the first (distance, index) pair of
/// `order`, laid out end to end with its weight, whose interval holds `u`;
/// None when `u` is past them all.
pub fn token_at(order: impl IntoIterator<Item = (u32, u32)>, u: u64) -> Option<u32> {
    let mut cum = 0u64;
    order
        .into_iter()
        .find(|&(d, _)| {
            cum += weight(d) as u64;
            u < cum
        })
        .map(|(_, i)| i)
}

/// Sample one row (`step` and `row` select the random draw).
pub fn sample_row(logits: &[f32], p: &SampleParams, step: u64, row: u32) -> Result<Trace> {
    p.check()?;
    if logits.is_empty() {
        return Err(Error::Param("sampling from an empty row".into()));
    }
    if logits.len() > u32::MAX as usize {
        return Err(Error::Param("a row of more than 2^32 logits".into()));
    }
    let s: Vec<f32> = logits.iter().map(|&v| sanitize(v)).collect();
    let m = s.iter().copied().fold(f32::MIN, f32::max);
    if p.is_greedy() {
        let token = s.iter().position(|&v| v == m).unwrap() as u32;
        return Ok(Trace {
            greedy: true,
            token,
            ..Default::default()
        });
    }
    let sc = p.scale();
    let ds: Vec<u32> = s.iter().map(|&v| distance(m, v, sc)).collect();
    let cand = ranked(&ds);
    let n = cand.len() as u64;
    let k = if p.top_k == 0 {
        n
    } else {
        (p.top_k as u64).min(n)
    };
    let w_k: u64 = cand[..k as usize]
        .iter()
        .map(|&(d, _)| weight(d) as u64)
        .sum();
    let target = ((w_k as u128 * p.p_fixed() as u128).div_ceil(P_ONE as u128)) as u64;
    let mut cum = 0u64;
    let mut kept = 0usize;
    for &(d, _) in &cand[..k as usize] {
        cum += weight(d) as u64;
        kept += 1;
        if cum >= target {
            break;
        }
    }
    let w = cum;
    let r = crate::rng::sample_u64(p.seed, step, row);
    let u = ((w as u128 * r as u128) >> 64) as u64;
    let token = if p.draws_in_index_order(s.len()) {
        // Every candidate is kept (no top-k cut, top-p 1): index order.
        debug_assert_eq!(kept as u64, n);
        token_at(ds.iter().enumerate().map(|(i, &d)| (d, i as u32)), u)
    } else {
        token_at(cand[..kept].iter().copied(), u)
    }
    .unwrap_or(cand[kept - 1].1);
    Ok(Trace {
        greedy: false,
        candidates: n,
        k,
        w_k,
        target,
        kept: kept as u64,
        w,
        u,
        token,
    })
}

/// Sample `rows` rows of `n` logits; `steps[r]` is row r's step counter.
pub fn sample(
    logits: &[f32],
    rows: usize,
    n: usize,
    p: &SampleParams,
    steps: &[u64],
) -> Result<Vec<u32>> {
    if logits.len() != rows * n || steps.len() != rows {
        return Err(Error::Param(format!(
            "{} logits and {} steps for {rows} rows of {n}",
            logits.len(),
            steps.len()
        )));
    }
    (0..rows)
        .map(|r| sample_row(&logits[r * n..(r + 1) * n], p, steps[r], r as u32).map(|t| t.token))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_exp2_and_monotone() {
        let t = exp2_table();
        assert_eq!(t[0], 1 << 31);
        for f in 0..2048 {
            let exact = 2f64.powf(31.0 - f as f64 / 2048.0);
            assert!(
                (t[f] as f64 - exact).abs() <= 0.5 + 1e-6,
                "{f}: {} vs {exact}",
                t[f]
            );
            if f > 0 {
                assert!(t[f] < t[f - 1]);
            }
        }
        assert_eq!(weight(0), 1 << 31);
        assert_eq!(weight(2048), 1 << 30);
        assert_eq!(weight(31 * 2048), 1);
        assert_eq!(weight(31 * 2048 + 1), 0);
        assert_eq!(weight(D_MAX), 0);
        assert!((SCALE_NUM as f64 - 2048.0 * std::f64::consts::LOG2_E).abs() < 1e-3);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // Logits ln(1), ln(2), ln(3), ln(4) at T = 1: probabilities 0.1..0.4.
        let l: Vec<f32> = (1..=4).map(|v| (v as f32).ln()).collect();
        let p = SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 7,
        };
        let mut count = [0usize; 4];
        for step in 0..20000 {
            count[sample_row(&l, &p, step, 0).unwrap().token as usize] += 1;
        }
        for (i, &c) in count.iter().enumerate() {
            let want = 20000.0 * (i + 1) as f64 / 10.0;
            assert!(
                (c as f64 - want).abs() < 4.0 * want.sqrt() + 10.0,
                "{count:?}"
            );
        }
        // top-k 2 keeps tokens 3 and 2 (4/7 and 3/7); top-p 0.5 keeps 3 and 2 (0.4 + 0.3 ≥ 0.5).
        for p2 in [
            SampleParams { top_k: 2, ..p },
            SampleParams { top_p: 0.5, ..p },
        ] {
            let mut c = [0usize; 4];
            for step in 0..7000 {
                c[sample_row(&l, &p2, step, 0).unwrap().token as usize] += 1;
            }
            assert_eq!(c[0] + c[1], 0, "{p2:?} {c:?}");
            assert!((c[3] as f64 - 4000.0).abs() < 300.0, "{p2:?} {c:?}");
        }
        // top-p 0.39 keeps only the top token (0.4, less 2^-11 bits of quantisation).
        let t = sample_row(&l, &SampleParams { top_p: 0.39, ..p }, 3, 0).unwrap();
        assert_eq!((t.kept, t.token), (1, 3));
    }

    #[test]
    fn temperature_alone_draws_in_index_order() {
        // Token 0 is the less probable (weight w0 ≈ W/4), so (d, i) order
        // would put it last: index order gives it [0, w0), that is U < w0.
        let l = [0.0f32, 3f32.ln()];
        let p = SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 5,
        };
        let w0 = weight(distance(3f32.ln(), 0.0, p.scale())) as u64;
        let (mut zeros, mut ones) = (0, 0);
        for q in [
            p,
            SampleParams { top_k: 2, ..p },
            SampleParams { top_k: 7, ..p },
        ] {
            assert!(q.draws_in_index_order(2), "{q:?}");
            for step in 0..400 {
                let t = sample_row(&l, &q, step, 0).unwrap();
                assert_eq!(t.kept, 2);
                assert_eq!(t.token == 0, t.u < w0, "{q:?} step {step}: {t:?}");
                if t.token == 0 { zeros += 1 } else { ones += 1 }
            }
        }
        assert!(zeros > 200 && ones > 600, "{zeros} {ones}");
        // A top-k cut, a top-p below 1 or greedy keep (d, i) order:
        // token 1 first, so U < w1 gives token 1.
        for q in [
            SampleParams { top_k: 1, ..p },
            SampleParams { top_p: 0.999, ..p },
            SampleParams {
                temperature: 0.0,
                ..p
            },
        ] {
            assert!(!q.draws_in_index_order(2), "{q:?}");
        }
        let q = SampleParams { top_p: 0.9999, ..p };
        for step in 0..400 {
            let t = sample_row(&l, &q, step, 0).unwrap();
            let w1 = t.w - w0;
            assert_eq!(t.token == 1, t.u < w1, "step {step}: {t:?}");
        }
    }

    #[test]
    fn greedy_ties_and_bad_parameters() {
        let l = [1.0f32, 5.0, f32::NAN, 5.0, -2.0];
        for p in [
            SampleParams {
                temperature: 0.0,
                ..Default::default()
            },
            SampleParams {
                top_k: 1,
                ..Default::default()
            },
        ] {
            assert_eq!(sample_row(&l, &p, 0, 0).unwrap().token, 1);
        }
        // Equal logits: equal weights, ties in index order; a tiny temperature keeps only the maxima.
        let p = SampleParams {
            temperature: 1e-6,
            ..Default::default()
        };
        for step in 0..50 {
            let t = sample_row(&l, &p, step, 0).unwrap();
            assert!(t.token == 1 || t.token == 3);
            assert_eq!(t.kept, 2);
        }
        for bad in [
            SampleParams {
                temperature: -1.0,
                ..Default::default()
            },
            SampleParams {
                temperature: f32::NAN,
                ..Default::default()
            },
            SampleParams {
                temperature: 1e-38,
                ..Default::default()
            },
            SampleParams {
                top_p: 0.0,
                ..Default::default()
            },
            SampleParams {
                top_p: 1.5,
                ..Default::default()
            },
        ] {
            assert!(sample_row(&l, &bad, 0, 0).is_err(), "{bad:?}");
        }
        assert!(sample_row(&[], &SampleParams::default(), 0, 0).is_err());
    }
}

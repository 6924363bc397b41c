//! Integer block transforms for lossy tiles (CODEC.md §5, MUST).
//!
//! Three transforms, as fixed-point matrices `A` (row `k` is basis function
//! `k`, scaled by about `64·√N`), taken from HEVC:
//!
//! * [`DCT8`]: 8×8 DCT-II;
//! * [`DCT4`]: 4×4 DCT-II;
//! * [`DST4`]: 4×4 DST-VII.
//!
//! **The inverse** (the normative part, mirrored by every backend) takes a
//! block of dequantised coefficients `D[u][v]` (`u` the vertical frequency,
//! `v` the horizontal) and computes, in 32-bit signed integers:
//!
//! ```text
//! E[k][v] = Σ_u A[u][k] · D[u][v]                       (columns)
//! F[k][v] = (E[k][v] + 2^(S1−1)) >> S1                  S1 = 7
//! G[k][l] = Σ_v F[k][v] · A[v][l]                       (rows)
//! r[k][l] = (G[k][l] + 2^(S2−1)) >> S2                  S2 = 12 (N = 8), 11 (N = 4)
//! ```
//!
//! `>>` is an arithmetic shift (floor). With `D = code · step`, codes in
//! `[−128, 127]` and `step` in `[1, 4095]` (so `|D| < 2^19`), no intermediate
//! leaves `(−2^31, 2^31)`: `|E| < 2^28`, `|G| < 2^30` (the tests check the
//! bounds on the extreme blocks). `step` is in 1/16 of a pixel, so
//! `2^(S1+S2) = 16 · 64² · N` and the pair is an orthonormal transform up to
//! the matrices' rounding: a coefficient is in the same units (pixels) as the
//! block it describes, and a DC coefficient `c` is a flat block of `c / N`.
//!
//! `shaders/lossy_tile.wgsl` is a standalone WGSL port and
//! `shaders/rans_lossy.wgsl` the one the GPU decoder runs (both tested
//! bit-exact against this code in `tests/lossy_wgsl.rs`; the CUDA decoder's
//! in `tests/backends.rs`).
//!
//! **The forward transform** is the encoder's business and not normative; the
//! encoder here computes `c = A·x·Aᵀ / (64²·N)` in f64 (exact sums of integer
//! products, then one division), so that `inverse(forward(x))` is `x` up to
//! the matrices' small non-orthogonality and the two rounding shifts.

/// Rounding shift after the first (column) stage of the inverse.
pub const SHIFT1: u32 = 7;

/// 8×8 DCT-II (HEVC).
pub const DCT8: [[i32; 8]; 8] = [
    [64, 64, 64, 64, 64, 64, 64, 64],
    [89, 75, 50, 18, -18, -50, -75, -89],
    [83, 36, -36, -83, -83, -36, 36, 83],
    [75, -18, -89, -50, 50, 89, 18, -75],
    [64, -64, -64, 64, 64, -64, -64, 64],
    [50, -89, 18, 75, -75, -18, 89, -50],
    [36, -83, 83, -36, -36, 83, -83, 36],
    [18, -50, 75, -89, 89, -75, 50, -18],
];

/// 4×4 DCT-II (HEVC).
pub const DCT4: [[i32; 4]; 4] = [
    [64, 64, 64, 64],
    [83, 36, -36, -83],
    [64, -64, -64, 64],
    [36, -83, 83, -36],
];

/// 4×4 DST-VII (HEVC).
pub const DST4: [[i32; 4]; 4] = [
    [29, 55, 74, 84],
    [74, 74, 0, -74],
    [84, -29, -74, 55],
    [55, -84, 74, -29],
];

/// A block transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    Dct8,
    Dct4,
    Dst4,
}

impl Transform {
    pub const ALL: [Transform; 3] = [Transform::Dct8, Transform::Dct4, Transform::Dst4];

    /// Block side `N`.
    pub fn size(self) -> usize {
        match self {
            Transform::Dct8 => 8,
            Transform::Dct4 | Transform::Dst4 => 4,
        }
    }

    /// Rounding shift after the second (row) stage of the inverse.
    pub fn shift2(self) -> u32 {
        match self {
            Transform::Dct8 => 12,
            Transform::Dct4 | Transform::Dst4 => 11,
        }
    }

    /// Matrix entry `A[k][n]` (basis function `k` at sample `n`).
    #[inline(always)]
    pub fn coef(self, k: usize, n: usize) -> i32 {
        match self {
            Transform::Dct8 => DCT8[k][n],
            Transform::Dct4 => DCT4[k][n],
            Transform::Dst4 => DST4[k][n],
        }
    }

    /// Inverse transform of one block (the normative arithmetic above).
    /// `d` holds `N×N` dequantised coefficients row-major (`d[u·N + v]`),
    /// `out` receives the `N×N` residuals row-major. The DCTs use even/odd
    /// partial butterflies, whose integer sums are the matrix products'
    /// ([`Transform::inverse_matrix`]; the tests hold the two equal).
    pub fn inverse(self, d: &[i32], out: &mut [i32]) {
        match self {
            Transform::Dct8 => inverse_bf::<8>(inv8_1d, 12, d, out),
            Transform::Dct4 => inverse_bf::<4>(inv4_1d, 11, d, out),
            Transform::Dst4 => inverse_n::<4>(&DST4, 11, d, out),
        }
    }

    /// The inverse exactly as written in the module docs (matrix products).
    pub fn inverse_matrix(self, d: &[i32], out: &mut [i32]) {
        match self {
            Transform::Dct8 => inverse_n::<8>(&DCT8, 12, d, out),
            Transform::Dct4 => inverse_n::<4>(&DCT4, 11, d, out),
            Transform::Dst4 => inverse_n::<4>(&DST4, 11, d, out),
        }
    }

    /// Forward transform of one block in f64: `c = A·x·Aᵀ / (64²·N)`,
    /// both row-major `N×N` (encoder only, not normative).
    pub fn forward(self, x: &[f64], out: &mut [f64]) {
        match self {
            Transform::Dct8 => forward_n::<8>(&DCT8, x, out),
            Transform::Dct4 => forward_n::<4>(&DCT4, x, out),
            Transform::Dst4 => forward_n::<4>(&DST4, x, out),
        }
    }
}

#[inline(always)]
fn inverse_n<const N: usize>(a: &[[i32; N]; N], s2: u32, d: &[i32], out: &mut [i32]) {
    let d = &d[..N * N];
    let out = &mut out[..N * N];
    let r1 = 1i32 << (SHIFT1 - 1);
    let r2 = 1i32 << (s2 - 1);
    // Stage 1, columns: F[k][v] = (Σ_u A[u][k]·D[u][v] + r1) >> S1.
    let mut f = [[0i32; N]; N];
    for k in 0..N {
        let mut e = [0i32; N];
        for u in 0..N {
            let c = a[u][k];
            for v in 0..N {
                e[v] += c * d[u * N + v];
            }
        }
        for v in 0..N {
            f[k][v] = (e[v] + r1) >> SHIFT1;
        }
    }
    // Stage 2, rows: r[k][l] = (Σ_v F[k][v]·A[v][l] + r2) >> S2.
    for k in 0..N {
        let mut g = [0i32; N];
        for v in 0..N {
            let fv = f[k][v];
            for l in 0..N {
                g[l] += fv * a[v][l];
            }
        }
        for l in 0..N {
            out[k * N + l] = (g[l] + r2) >> s2;
        }
    }
}

/// One 8-point inverse DCT: `dst[k] = Σ_u DCT8[u][k] · src[u]`, by HEVC's
/// even/odd decomposition (the same integer sums).
#[inline(always)]
fn inv8_1d(s: [i32; 8]) -> [i32; 8] {
    let mut o = [0i32; 4];
    for (k, ok) in o.iter_mut().enumerate() {
        *ok = DCT8[1][k] * s[1] + DCT8[3][k] * s[3] + DCT8[5][k] * s[5] + DCT8[7][k] * s[7];
    }
    let eo0 = 83 * s[2] + 36 * s[6];
    let eo1 = 36 * s[2] - 83 * s[6];
    let ee0 = 64 * s[0] + 64 * s[4];
    let ee1 = 64 * s[0] - 64 * s[4];
    let e = [ee0 + eo0, ee1 + eo1, ee1 - eo1, ee0 - eo0];
    [
        e[0] + o[0],
        e[1] + o[1],
        e[2] + o[2],
        e[3] + o[3],
        e[3] - o[3],
        e[2] - o[2],
        e[1] - o[1],
        e[0] - o[0],
    ]
}

/// One 4-point inverse DCT by even/odd decomposition.
#[inline(always)]
fn inv4_1d(s: [i32; 4]) -> [i32; 4] {
    let o0 = 83 * s[1] + 36 * s[3];
    let o1 = 36 * s[1] - 83 * s[3];
    let e0 = 64 * s[0] + 64 * s[2];
    let e1 = 64 * s[0] - 64 * s[2];
    [e0 + o0, e1 + o1, e1 - o1, e0 - o0]
}

/// The two-stage inverse with a 1-D kernel `f` (`dst[k] = Σ_u A[u][k]·src[u]`).
#[inline(always)]
fn inverse_bf<const N: usize>(f: fn([i32; N]) -> [i32; N], s2: u32, d: &[i32], out: &mut [i32]) {
    let d = &d[..N * N];
    let out = &mut out[..N * N];
    let r1 = 1i32 << (SHIFT1 - 1);
    let r2 = 1i32 << (s2 - 1);
    // Stage 1 on each column v: F[k][v] = (E[k][v] + r1) >> S1.
    let mut fk = [[0i32; N]; N];
    for v in 0..N {
        let col: [i32; N] = std::array::from_fn(|u| d[u * N + v]);
        let e = f(col);
        for k in 0..N {
            fk[k][v] = (e[k] + r1) >> SHIFT1;
        }
    }
    // Stage 2 on each row k: r[k][l] = (G[k][l] + r2) >> S2.
    for k in 0..N {
        let g = f(fk[k]);
        for l in 0..N {
            out[k * N + l] = (g[l] + r2) >> s2;
        }
    }
}

#[inline(always)]
fn forward_n<const N: usize>(a: &[[i32; N]; N], x: &[f64], out: &mut [f64]) {
    let x = &x[..N * N];
    let out = &mut out[..N * N];
    // t = A·x (columns), then c = t·Aᵀ (rows).
    let mut t = [[0f64; N]; N];
    for u in 0..N {
        for k in 0..N {
            let c = a[u][k] as f64;
            for v in 0..N {
                t[u][v] += c * x[k * N + v];
            }
        }
    }
    let norm = 1.0 / (4096.0 * N as f64);
    for u in 0..N {
        for v in 0..N {
            let mut s = 0f64;
            for l in 0..N {
                s += t[u][l] * a[v][l] as f64;
            }
            out[u * N + v] = s * norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse in i64 without any bound assumption, for comparison.
    fn inverse_i64(t: Transform, d: &[i64]) -> (Vec<i64>, i64, i64) {
        let n = t.size();
        let (mut max_e, mut max_g) = (0i64, 0i64);
        let mut f = vec![0i64; n * n];
        for k in 0..n {
            for v in 0..n {
                let e: i64 = (0..n).map(|u| t.coef(u, k) as i64 * d[u * n + v]).sum();
                max_e = max_e.max(e.abs() + (1 << (SHIFT1 - 1)));
                f[k * n + v] = (e + (1 << (SHIFT1 - 1))) >> SHIFT1;
            }
        }
        let s2 = t.shift2();
        let mut out = vec![0i64; n * n];
        for k in 0..n {
            for l in 0..n {
                let g: i64 = (0..n).map(|v| f[k * n + v] * t.coef(v, l) as i64).sum();
                max_g = max_g.max(g.abs() + (1 << (s2 - 1)));
                out[k * n + l] = (g + (1 << (s2 - 1))) >> s2;
            }
        }
        (out, max_e, max_g)
    }

    fn check_i32_matches(t: Transform, codes: &[i32], step: i32) -> (i64, i64) {
        let n = t.size();
        let d: Vec<i32> = codes.iter().map(|&c| c * step).collect();
        let d64: Vec<i64> = d.iter().map(|&v| v as i64).collect();
        let (want, me, mg) = inverse_i64(t, &d64);
        assert!(me < 1 << 31 && mg < 1 << 31, "{t:?}: |E| {me}, |G| {mg}");
        let mut got = vec![0i32; n * n];
        t.inverse(&d, &mut got);
        let mut mat = vec![0i32; n * n];
        t.inverse_matrix(&d, &mut mat);
        for i in 0..n * n {
            assert_eq!(got[i] as i64, want[i], "{t:?} at {i}");
            assert_eq!(mat[i] as i64, want[i], "{t:?} (matrix form) at {i}");
        }
        (me, mg)
    }

    #[test]
    fn shifts_match_the_scale() {
        // 2^(S1+S2) = 16 · 64² · N: DC-only blocks come out flat at c / N.
        for t in Transform::ALL {
            assert_eq!(1u64 << (SHIFT1 + t.shift2()), 16 * 4096 * t.size() as u64);
        }
        // A DC code of 10 at step 16 (1 px): the coefficient is 10 px, the block 10/N.
        for t in [Transform::Dct8, Transform::Dct4] {
            let n = t.size();
            let mut d = vec![0i32; n * n];
            d[0] = 10 * 16 * n as i32;
            let mut out = vec![0i32; n * n];
            t.inverse(&d, &mut out);
            assert!(out.iter().all(|&v| v == 10), "{t:?}: {out:?}");
        }
    }

    #[test]
    fn extreme_blocks_stay_in_i32_and_match_i64() {
        // All ±128 (the most negative code a corrupt stream can carry) and
        // ±127 at the largest step, every sign pattern that maximises a sum,
        // DC only, and a single AC at every position.
        for t in Transform::ALL {
            let n = t.size();
            let mut worst = (0i64, 0i64);
            for step in [1, 16, 4095] {
                for c in [127, -127, -128] {
                    let (e, g) = check_i32_matches(t, &vec![c; n * n], step);
                    worst = (worst.0.max(e), worst.1.max(g));
                    // Signs that align with a column of A, per column k.
                    for k in 0..n {
                        let codes: Vec<i32> = (0..n * n)
                            .map(|i| if t.coef(i / n, k) >= 0 { c } else { -c })
                            .collect();
                        let (e, g) = check_i32_matches(t, &codes, step);
                        worst = (worst.0.max(e), worst.1.max(g));
                    }
                    for pos in 0..n * n {
                        let mut codes = vec![0; n * n];
                        codes[pos] = c;
                        check_i32_matches(t, &codes, step);
                    }
                }
            }
            assert!(worst.0 < 1 << 28 && worst.1 < 1 << 30, "{t:?} {worst:?}");
        }
    }

    /// Exhaustive over single-coefficient blocks: every code at every
    /// position, at the smallest, a middle and the largest step.
    #[test]
    fn every_single_coefficient_block_matches_i64() {
        for t in Transform::ALL {
            let n = t.size();
            for step in [1, 16, 4095] {
                for pos in 0..n * n {
                    for c in -128..=127 {
                        let mut codes = vec![0; n * n];
                        codes[pos] = c;
                        check_i32_matches(t, &codes, step);
                    }
                }
            }
        }
    }

    /// Random blocks over the whole code and step range: the butterflies
    /// and the matrix form agree (and agree with i64).
    #[test]
    fn random_blocks_match_the_matrix_form() {
        let mut seed = 0xabcdef_u64;
        for t in Transform::ALL {
            let n = t.size();
            for _ in 0..20000 {
                let step = (rng(&mut seed) % 4095) as i32 + 1;
                let codes: Vec<i32> = (0..n * n)
                    .map(|_| (rng(&mut seed) % 256) as i32 - 128)
                    .collect();
                check_i32_matches(t, &codes, step);
            }
        }
    }

    #[test]
    fn analytic_bounds_hold() {
        // The bound argument in the module docs: column sums of |A| times the
        // largest |D|, through both stages, stays below 2^31.
        for t in Transform::ALL {
            let n = t.size();
            let colsum = (0..n)
                .map(|k| (0..n).map(|u| t.coef(u, k).abs() as i64).sum::<i64>())
                .max()
                .unwrap();
            let rowsum = (0..n)
                .map(|l| (0..n).map(|v| t.coef(v, l).abs() as i64).sum::<i64>())
                .max()
                .unwrap();
            let dmax = 128i64 * 4095;
            let e = colsum * dmax + 64;
            let f = (e >> SHIFT1) + 1;
            let g = rowsum * f + (1 << (t.shift2() - 1));
            assert!(e < 1 << 28 && g < 1 << 30, "{t:?}: {e} {g}");
        }
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Forward, quantise to the nearest multiple of the step, inverse: the
    /// error is the quantisation error plus the output's rounding to whole
    /// pixels plus the matrices' slack, within the bounds documented in
    /// docs/FORMAT.md §5.1.
    #[test]
    fn forward_then_inverse_error_is_bounded() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for t in Transform::ALL {
            let n = t.size();
            for step in [1i32, 4, 16, 64, 256, 1024, 4095] {
                let sp = step as f64 / 16.0;
                // The largest amplitude whose coefficients fit in ±127 steps.
                let amp = (127.0 * sp / n as f64).min(127.0);
                let (mut se, mut cnt, mut maxe) = (0f64, 0usize, 0f64);
                for trial in 0..3000 {
                    let x: Vec<f64> = (0..n * n)
                        .map(|_| {
                            let u = (rng(&mut seed) >> 11) as f64 / (1u64 << 53) as f64;
                            let v = (2.0 * u - 1.0) * amp;
                            if trial % 2 == 0 { v.round() } else { v }
                        })
                        .collect();
                    let mut c = vec![0f64; n * n];
                    t.forward(&x, &mut c);
                    let q: Vec<i32> = c.iter().map(|&v| (v / sp).round() as i32).collect();
                    assert!(q.iter().all(|v| v.abs() <= 127), "{t:?} {step}");
                    let d: Vec<i32> = q.iter().map(|&v| v * step).collect();
                    let mut r = vec![0i32; n * n];
                    t.inverse(&d, &mut r);
                    for i in 0..n * n {
                        let e = r[i] as f64 - x[i];
                        se += e * e;
                        maxe = maxe.max(e.abs());
                        cnt += 1;
                    }
                }
                let mse = se / cnt as f64;
                let (mse_b, max_b) = error_bounds(t, step, amp);
                eprintln!(
                    "{t:?} step {step}: mse {mse:.4} (bound {mse_b:.4}), max {maxe:.3} (bound {max_b:.3})"
                );
                assert!(mse <= mse_b, "{t:?} step {step}: mse {mse} > {mse_b}");
                assert!(maxe <= max_b, "{t:?} step {step}: max {maxe} > {max_b}");
            }
        }
    }

    /// The documented bounds of forward → round to the step → inverse, for
    /// inputs of amplitude at most `amp` whose coefficients fit the codes,
    /// with `sp = step/16` pixels and `g = max column Σ|A| / (64·√N)` (2.65
    /// for DCT8, 1.93 for DCT4, 1.89 for DST4): mean squared error at most
    /// `1.08·sp²/12 + 1/12 + 0.01`; max error at most `g²·sp/2 + 1 + amp/100`.
    fn error_bounds(t: Transform, step: i32, amp: f64) -> (f64, f64) {
        let sp = step as f64 / 16.0;
        let g = gain(t);
        (
            1.08 * sp * sp / 12.0 + 1.0 / 12.0 + 0.01,
            g * g * sp / 2.0 + 1.0 + amp / 100.0,
        )
    }

    /// `max column Σ|A| / (64·√N)`: how much one coefficient's error can add to a pixel's.
    fn gain(t: Transform) -> f64 {
        let n = t.size();
        let colsum = (0..n)
            .map(|k| (0..n).map(|u| t.coef(u, k).abs()).sum::<i32>())
            .max()
            .unwrap() as f64;
        colsum / (64.0 * (n as f64).sqrt())
    }

    #[test]
    fn gains_are_as_documented() {
        let g: Vec<String> = Transform::ALL
            .iter()
            .map(|&t| format!("{:.2}", gain(t)))
            .collect();
        assert_eq!(g, ["2.65", "1.93", "1.89"]);
    }

    #[test]
    fn near_orthogonal() {
        // A·Aᵀ ≈ 64²·N·I: the basis functions are nearly orthonormal once scaled.
        for t in Transform::ALL {
            let n = t.size();
            for i in 0..n {
                for j in 0..n {
                    let s: i64 = (0..n).map(|k| (t.coef(i, k) * t.coef(j, k)) as i64).sum();
                    let want = if i == j { 4096 * n as i64 } else { 0 };
                    assert!(
                        (s - want).abs() <= 4096 * n as i64 / 100,
                        "{t:?} ({i},{j}): {s}"
                    );
                }
            }
        }
    }
}

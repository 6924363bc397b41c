//! Softmax on every adapter this machine has, against the f64 reference of
//! `wcodec::cpu::softmax`, for row lengths from 1 to 152064 (multi-block),
//! batched rows, temperatures from 1e-3 to 2.5, and log-softmax.
//!
//! Tolerances. With z = (x − max)/T and n the row length:
//! * probabilities: relative L2 error < 1e-5 per row, |Σp − 1| < 2e-5, and
//!   each p within `p · ((8 + 4·|z|·log2 e) · 2^-23 + n · 2^-24) + 1e-37`:
//!   WGSL's exp2 is accurate to 3 + 2·|a| ULP for an argument a = z·log2 e,
//!   the argument itself carries |a|·2^-24 of rounding, each block's
//!   rescaling adds another exp2, and a sum of n positive terms in any order
//!   loses at most n·2^-24 (rigorous; the L2 and sum checks are the tight ones);
//! * log-probabilities: within `2e-6 + 2e-6 · |ref|` (the argument's
//!   rounding grows with |z|, log2 of the sum is good to ~2^-21).
//!
//! Inputs are fresh random logits (normal, σ = 3, never zero), plus rows with
//! ties, NaN and ±∞ (sanitised as the reference does); outputs are poisoned.

mod common;

use common::{Rng, ctx, poison};
use wcodec::cpu::softmax::softmax_f64;
use wcodec::wgpu::context::GpuContext;
use wcodec::wgpu::softmax::{Softmax, SoftmaxOptions, SoftmaxTuning};

fn check(
    ctx: &GpuContext,
    x: &[f32],
    rows: usize,
    n: usize,
    t: f32,
    log: bool,
    tuning: SoftmaxTuning,
) {
    let want = softmax_f64(x, rows, n, t, log).unwrap();
    let s = Softmax::new(
        ctx,
        None,
        n,
        rows,
        n,
        &SoftmaxOptions {
            temperature: t,
            log,
            tuning,
        },
    )
    .unwrap();
    s.write_logits(&ctx.queue, x).unwrap();
    poison(ctx, &s.out);
    s.execute(&ctx.device, &ctx.queue);
    let got = s.read_out(ctx).unwrap();
    let label = format!("{s:?} T={t}");
    for r in 0..rows {
        let (g, w) = (&got[r * n..(r + 1) * n], &want[r * n..(r + 1) * n]);
        let row = &x[r * n..(r + 1) * n];
        let m = row
            .iter()
            .map(|&v| wcodec::cpu::softmax::sanitize(v) as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        if log {
            for i in 0..n {
                if w[i] < -(f32::MAX as f64) {
                    // Not representable in f32 (a sanitised NaN or -inf at a low temperature).
                    assert_eq!(g[i], f32::NEG_INFINITY, "{label} row {r}: logp[{i}]");
                    continue;
                }
                let err = (g[i] as f64 - w[i]).abs();
                assert!(
                    err <= 2e-6 + 2e-6 * w[i].abs(),
                    "{label} row {r}: logp[{i}] = {}, want {} ({err:e})",
                    g[i],
                    w[i]
                );
            }
        } else {
            let (mut num, mut den, mut sum) = (0f64, 0f64, 0f64);
            for i in 0..n {
                let z = (wcodec::cpu::softmax::sanitize(row[i]) as f64 - m) / t as f64;
                let tol = w[i]
                    * ((8.0 + 4.0 * z.abs() * std::f64::consts::LOG2_E) * 2f64.powi(-23)
                        + n as f64 * 2f64.powi(-24))
                    + 1e-37;
                let err = (g[i] as f64 - w[i]).abs();
                assert!(
                    err <= tol,
                    "{label} row {r}: p[{i}] = {}, want {} ({err:e} > {tol:e})",
                    g[i],
                    w[i]
                );
                num += (g[i] as f64 - w[i]).powi(2);
                den += w[i] * w[i];
                sum += g[i] as f64;
            }
            let rel = (num / den).sqrt();
            assert!(rel < 1e-5, "{label} row {r}: relative L2 {rel:e}");
            assert!((sum - 1.0).abs() < 2e-5, "{label} row {r}: Σp = {sum}");
        }
    }
}

#[test]
fn softmax_rows_of_every_length_and_temperature() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(11);
    for (rows, n) in [
        (1, 1),
        (1, 7),
        (3, 1000),
        (1, 50257),
        (2, 152064),
        (5, 4099),
    ] {
        for (t, log) in [
            (1.0f32, false),
            (0.7, true),
            (1e-3, false),
            (2.5, false),
            (1.0, true),
        ] {
            let x = rng.normals(rows * n, 3.0);
            check(&ctx, &x, rows, n, t, log, SoftmaxTuning::default());
        }
    }
}

#[test]
fn softmax_ties_and_non_finite_inputs() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(12);
    let n = 3000;
    let mut x = rng.normals(4 * n, 2.0);
    // Row 0: many ties at the maximum; row 1: NaN and -inf entries;
    // row 2: +inf entries (they share all the mass); row 3: a constant row.
    for i in (0..n).step_by(7) {
        x[i] = 9.0;
    }
    x[n + 5] = f32::NAN;
    x[n + 6] = f32::NEG_INFINITY;
    x[2 * n + 10] = f32::INFINITY;
    x[2 * n + 2000] = f32::INFINITY;
    x[3 * n..].iter_mut().for_each(|v| *v = -1.5);
    for log in [false, true] {
        check(&ctx, &x, 4, n, 1.0, log, SoftmaxTuning::default());
    }
}

#[test]
fn softmax_every_tuning_candidate() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(13);
    for t in SoftmaxTuning::candidates() {
        if t.wg > ctx.limits.max_compute_invocations_per_workgroup {
            continue;
        }
        let x = rng.normals(2 * 20011, 3.0);
        check(&ctx, &x, 2, 20011, 0.9, false, t);
        check(&ctx, &x, 2, 20011, 0.9, true, t);
    }
}

#[test]
fn softmax_rejects_bad_input() {
    let Some(ctx) = ctx() else { return };
    let o = SoftmaxOptions::default();
    assert!(Softmax::new(&ctx, None, 0, 1, 0, &o).is_err());
    assert!(
        Softmax::new(
            &ctx,
            None,
            10,
            1,
            10,
            &SoftmaxOptions {
                temperature: 0.0,
                ..o
            }
        )
        .is_err()
    );
    assert!(
        Softmax::new(
            &ctx,
            None,
            10,
            1,
            10,
            &SoftmaxOptions {
                temperature: f32::NAN,
                ..o
            }
        )
        .is_err()
    );
    let s = Softmax::new(&ctx, None, 10, 2, 10, &o).unwrap();
    assert!(s.write_logits(&ctx.queue, &[0.0; 10]).is_err());
    assert!(s.set_temperature(&ctx.queue, -1.0).is_err());
    let small = ctx
        .buffer("small", 16, wgpu::BufferUsages::STORAGE)
        .unwrap();
    assert!(Softmax::new(&ctx, Some(&small), 100, 1, 100, &o).is_err());
}

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

use common::{Rng, assert_softmax_close, ctx, poison};
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
    assert_softmax_close(&format!("{s:?} T={t}"), x, &got, &want, rows, n, t, log);
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

//! GEMV on every adapter and reduction path this machine has (lavapipe in CI,
//! the H100 by hand), against the f64 reference of `wcodec::cpu::gemv`.
//!
//! Tolerances (each output, and over all outputs):
//! * every output within the rigorous bound `γ_(n+3) · Σ|w·x| + u·|y|`
//!   (`GemvRef::bound`, u = 2^-24): what f32 arithmetic can lose in a sum of
//!   n products in any order, with or without fused multiply-adds;
//! * relative L2 error below 1e-5 for every weight dtype. The reference
//!   multiplies exactly the stored weights (f16 values, int8 codes and their
//!   scales) and the x values the kernel reads (rounded to f16 for f16 x), so
//!   the only error left is f32 accumulation, ~2^-24 · √n per output
//!   (~3e-6 at n = 14336): 1e-5 leaves a 3× margin and fails on any
//!   missing, doubled or misplaced term.
//!
//! The tensor-core kernel (`coop` tunings, cooperative matrices) multiplies
//! f16 by f16 exactly but its f32 accumulation need not round to nearest
//! (NVIDIA's tensor cores truncate): its outputs must lie within 16× the
//! bound above and its relative L2 error below 1e-3 (the brief's limit; the
//! error is printed, and expected near 1e-7).
//!
//! Inputs are fresh random data (normal, never zero); y is poisoned with NaN
//! before every run.

mod common;

use common::{Rng, ctx, poison};
use wcodec::codec::quant::f32_to_f16_bits;
use wcodec::cpu::gemv::{Weights, gemv_f64, rel_l2};
use wcodec::wgpu::context::GpuContext;
use wcodec::wgpu::gemv::{
    Gemv, GemvOptions, GemvTuning, GemvWeights, ReducePath, VecDtype, WeightDtype, subgroup_max,
};

/// Host weights of one dtype, drawn like real weights (σ = 0.02).
struct HostW {
    f32: Vec<f32>,
    f16: Vec<u16>,
    q: Vec<i8>,
    scales: Vec<f32>,
}

impl HostW {
    fn new(rng: &mut Rng, rows: usize, cols: usize) -> HostW {
        let w = rng.normals(rows * cols, 0.02);
        let f16 = w.iter().map(|&v| f32_to_f16_bits(v)).collect();
        let q = wcodec::codec::quant::quantize(&w, rows, cols, 8, &Default::default()).unwrap();
        HostW {
            f32: w,
            f16,
            q: q.q.iter().map(|&b| b as i8).collect(),
            scales: q.scales,
        }
    }
    fn weights(&self, d: WeightDtype) -> Weights<'_> {
        match d {
            WeightDtype::F32 => Weights::F32(&self.f32),
            WeightDtype::F16 => Weights::F16(&self.f16),
            WeightDtype::I8 => Weights::I8 {
                q: &self.q,
                scales: &self.scales,
            },
        }
    }
}

/// Paths this device can run.
fn paths(ctx: &GpuContext) -> Vec<ReducePath> {
    let mut p = vec![ReducePath::Workgroup];
    if ctx.has(wgpu::Features::SUBGROUP) {
        p.insert(0, ReducePath::Subgroup);
    }
    p
}

struct Case {
    rows: usize,
    cols: usize,
    batch: usize,
    dtype: WeightDtype,
    x_dtype: VecDtype,
    bias: bool,
    path: ReducePath,
    tuning: Option<GemvTuning>,
    part_bytes: Option<u64>,
}

/// The one test body: upload, run on poisoned y, compare with f64; the
/// relative L2 error.
fn check(ctx: &GpuContext, rng: &mut Rng, c: &Case) -> f64 {
    let hw = HostW::new(rng, c.rows, c.cols);
    let w = hw.weights(c.dtype);
    let bias = c.bias.then(|| rng.normals(c.rows, 0.5));
    let mut x = rng.normals(c.batch * c.cols, 1.0);
    if c.x_dtype == VecDtype::F16 {
        // The reference must see what the kernel sees.
        x.iter_mut()
            .for_each(|v| *v = half::f16::from_bits(f32_to_f16_bits(*v)).to_f32());
    }
    let want = gemv_f64(&w, c.rows, c.cols, &x, c.batch, bias.as_deref()).unwrap();
    let gw =
        GemvWeights::upload_split(ctx, &w, c.rows, c.cols, bias.as_deref(), c.part_bytes).unwrap();
    let g = Gemv::new(
        ctx,
        &gw,
        &GemvOptions {
            batch: c.batch,
            x_dtype: c.x_dtype,
            path: c.path,
            tuning: c.tuning,
            max_partials: false,
        },
    )
    .unwrap();
    let label = format!("{g:?} x {} bias {}", c.x_dtype.name(), c.bias);
    let coop = g.tuning.coop;
    let (slack, max_l2) = if coop { (16.0, 1e-3) } else { (1.0, 1e-5) };
    g.write_x(&ctx.queue, &x).unwrap();
    let mut worst = 0f64;
    for rep in 0..2 {
        poison(ctx, &g.y);
        g.execute(&ctx.device, &ctx.queue);
        let got = g.read_y(ctx).unwrap();
        assert_eq!(got.len(), want.y.len());
        for (i, (&gv, &wv)) in got.iter().zip(&want.y).enumerate() {
            let b = bias.as_ref().map_or(0.0, |bb| bb[i % c.rows] as f64);
            let err = (gv as f64 - wv).abs();
            assert!(
                err <= slack * want.bound(i, b),
                "{label} rep {rep}: y[{i}] = {gv}, want {wv} (error {err:e} > {slack} × bound {:e})",
                want.bound(i, b)
            );
        }
        let e = rel_l2(&got, &want.y);
        assert!(e < max_l2, "{label}: relative L2 error {e:e}");
        worst = worst.max(e);
    }
    worst
}

#[test]
fn gemv_every_dtype_path_batch_and_x_type() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(1);
    for path in paths(&ctx) {
        for dtype in WeightDtype::ALL {
            for (batch, x_dtype, bias) in [
                (1, VecDtype::F32, false),
                (1, VecDtype::F16, true),
                (3, VecDtype::F32, true),
                (8, VecDtype::F16, false),
            ] {
                // Odd shapes: padded rows, partial row blocks, columns not a multiple of a step.
                for (rows, cols) in [(1, 1), (37, 100), (203, 517)] {
                    check(
                        &ctx,
                        &mut rng,
                        &Case {
                            rows,
                            cols,
                            batch,
                            dtype,
                            x_dtype,
                            bias,
                            path,
                            tuning: None,
                            part_bytes: None,
                        },
                    );
                }
            }
        }
    }
}

#[test]
fn gemv_long_rows_and_many_rows() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(2);
    for path in paths(&ctx) {
        for dtype in WeightDtype::ALL {
            check(
                &ctx,
                &mut rng,
                &Case {
                    rows: 64,
                    cols: 14336,
                    batch: 1,
                    dtype,
                    x_dtype: VecDtype::F32,
                    bias: false,
                    path,
                    tuning: None,
                    part_bytes: None,
                },
            );
            check(
                &ctx,
                &mut rng,
                &Case {
                    rows: 4099,
                    cols: 64,
                    batch: 2,
                    dtype,
                    x_dtype: VecDtype::F16,
                    bias: true,
                    path,
                    tuning: None,
                    part_bytes: None,
                },
            );
        }
    }
}

#[test]
fn gemv_every_tuning_candidate() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(3);
    for path in paths(&ctx) {
        for dtype in WeightDtype::ALL {
            for batch in [1u32, 4, 8] {
                for t in GemvTuning::candidates(dtype, batch, path) {
                    let case = Case {
                        rows: 150,
                        cols: 333,
                        batch: batch as usize,
                        dtype,
                        x_dtype: VecDtype::F32,
                        bias: true,
                        path,
                        tuning: Some(t),
                        part_bytes: None,
                    };
                    check(&ctx, &mut rng, &case);
                }
            }
        }
    }
}

#[test]
fn gemv_weights_split_into_row_blocks() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(4);
    for dtype in WeightDtype::ALL {
        // 7 rows of 208 padded columns per block.
        let pb = Some((7 * 208 * dtype.size()) as u64);
        check(
            &ctx,
            &mut rng,
            &Case {
                rows: 100,
                cols: 200,
                batch: 2,
                dtype,
                x_dtype: VecDtype::F32,
                bias: true,
                path: ReducePath::Auto,
                tuning: None,
                part_bytes: pb,
            },
        );
    }
}

#[test]
fn gemv_rejects_bad_shapes_with_errors() {
    let Some(ctx) = ctx() else { return };
    let w = vec![0.5f32; 12];
    assert!(GemvWeights::upload(&ctx, &Weights::F32(&w), 5, 3, None).is_err());
    assert!(GemvWeights::upload(&ctx, &Weights::F32(&w), 0, 0, None).is_err());
    assert!(GemvWeights::upload(&ctx, &Weights::F32(&w), 4, 3, Some(&[1.0])).is_err());
    let q = vec![1i8; 12];
    assert!(
        GemvWeights::upload(
            &ctx,
            &Weights::I8 {
                q: &q,
                scales: &[1.0; 3]
            },
            4,
            3,
            None
        )
        .is_err()
    );
    let gw = GemvWeights::upload(&ctx, &Weights::F32(&w), 4, 3, None).unwrap();
    assert!(
        Gemv::new(
            &ctx,
            &gw,
            &GemvOptions {
                batch: 9,
                ..Default::default()
            }
        )
        .is_err()
    );
    let bad = GemvTuning {
        wg: 100,
        nr: 1,
        unroll: 1,
        tpr: 32,
        i8_magic: true,
        blocks: 1,
        xor: false,
        coop: false,
    };
    assert!(
        Gemv::new(
            &ctx,
            &gw,
            &GemvOptions {
                tuning: Some(bad),
                ..Default::default()
            }
        )
        .is_err()
    );
    let g = Gemv::new(&ctx, &gw, &GemvOptions::default()).unwrap();
    assert!(g.write_x(&ctx.queue, &[1.0; 4]).is_err());
    if !ctx.has_coop_f16() {
        // The tensor-core kernel is refused cleanly where it cannot run.
        let w16 = vec![0x3c00u16; 32 * 32];
        let g16 = GemvWeights::upload(&ctx, &Weights::F16(&w16), 32, 32, None).unwrap();
        let e = Gemv::new(
            &ctx,
            &g16,
            &GemvOptions {
                batch: 2,
                x_dtype: VecDtype::F16,
                tuning: Some(GemvTuning::coop_candidates()[0]),
                ..Default::default()
            },
        );
        assert!(e.is_err());
    }
    if !ctx.has(wgpu::Features::SUBGROUP) {
        assert!(
            Gemv::new(
                &ctx,
                &gw,
                &GemvOptions {
                    path: ReducePath::Subgroup,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }
}

/// The tensor-core context, or `None` after a skip line.
fn coop_ctx() -> Option<common::Gpu> {
    let ctx = ctx()?;
    if !ctx.has_coop_f16() {
        eprintln!(
            "skipped: {} has no 16x16x16 f16->f32 cooperative matrices (EXPERIMENTAL_COOPERATIVE_MATRIX {}, SHADER_F16 {}, configurations: {})",
            ctx.describe(),
            ctx.has(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
            ctx.has(wgpu::Features::SHADER_F16),
            ctx.coop_summary()
        );
        return None;
    }
    Some(ctx)
}

fn coop_case(rows: usize, cols: usize, batch: usize, bias: bool, t: GemvTuning) -> Case {
    Case {
        rows,
        cols,
        batch,
        dtype: WeightDtype::F16,
        x_dtype: VecDtype::F16,
        bias,
        path: ReducePath::Auto,
        tuning: Some(t),
        part_bytes: None,
    }
}

#[test]
fn gemv_coop_odd_shapes_and_batches() {
    let Some(ctx) = coop_ctx() else { return };
    let mut rng = Rng(5);
    let t = GemvTuning::coop_candidates()[0];
    let mut worst = 0f64;
    // Rows and columns not multiples of 16 (a moved-back last tile, zero
    // column padding), one exact tile, more tiles than a workgroup holds.
    for (rows, cols) in [
        (16, 16),
        (17, 8),
        (37, 100),
        (203, 517),
        (4099, 64),
        (300, 2560),
    ] {
        for (batch, bias) in [(2, false), (3, true), (8, true), (1, false), (5, false)] {
            worst = worst.max(check(
                &ctx,
                &mut rng,
                &coop_case(rows, cols, batch, bias, t),
            ));
        }
    }
    eprintln!("coop: worst relative L2 error {worst:.2e}");
}

#[test]
fn gemv_coop_every_tuning_candidate() {
    let Some(ctx) = coop_ctx() else { return };
    let mut rng = Rng(6);
    for t in GemvTuning::coop_candidates() {
        for batch in [2, 8] {
            let e = check(&ctx, &mut rng, &coop_case(333, 200, batch, true, t));
            eprintln!("coop {t:?} batch {batch}: relative L2 error {e:.2e}");
        }
    }
}

#[test]
fn gemv_coop_row_blocks_and_refusals() {
    let Some(ctx) = coop_ctx() else { return };
    let mut rng = Rng(7);
    let t = GemvTuning::coop_candidates()[0];
    // Blocks of 20 rows of 208 padded columns: a partial tile in every block.
    let case = Case {
        part_bytes: Some(20 * 208 * 2),
        ..coop_case(100, 200, 4, true, t)
    };
    check(&ctx, &mut rng, &case);
    // Blocks smaller than a tile, f32 x or f32 weights: refused with an error.
    let w16 = vec![0x3c00u16; 100 * 200];
    let small =
        GemvWeights::upload_split(&ctx, &Weights::F16(&w16), 100, 200, None, Some(7 * 208 * 2))
            .unwrap();
    let opts = GemvOptions {
        batch: 2,
        x_dtype: VecDtype::F16,
        path: ReducePath::Auto,
        tuning: Some(t),
        max_partials: false,
    };
    assert!(Gemv::new(&ctx, &small, &opts).is_err());
    let whole = GemvWeights::upload(&ctx, &Weights::F16(&w16), 100, 200, None).unwrap();
    assert!(
        Gemv::new(
            &ctx,
            &whole,
            &GemvOptions {
                x_dtype: VecDtype::F32,
                ..opts
            }
        )
        .is_err()
    );
    let w32 = vec![1.0f32; 100 * 200];
    let g32 = GemvWeights::upload(&ctx, &Weights::F32(&w32), 100, 200, None).unwrap();
    assert!(Gemv::new(&ctx, &g32, &opts).is_err());
}

/// The sampler's order on a logit: NaN → −f32::MAX, ±inf clamped.
fn sanitize(v: f32) -> f32 {
    if v.is_nan() {
        -f32::MAX
    } else {
        v.clamp(-f32::MAX, f32::MAX)
    }
}

/// The max-partials epilogue: each workgroup's (sanitised maximum, lowest
/// row) per vector, against the CPU over the GPU's own y, with the
/// workgroup → rows map of the kernel (row blocks of `part_rows` rows, `rw`
/// rows per workgroup, the last one short). Data: random f16 weights (or
/// int8 with scales and a bias); the largest row copied into rows of other
/// workgroups and of its own (ties across and inside workgroups); rows with
/// a +inf, a −inf and a NaN weight (±inf outputs, clamped; NaN outputs,
/// −f32::MAX); in one case a whole first workgroup of NaN rows. The
/// partials buffer is poisoned before every run.
#[test]
fn gemv_max_partials_match_the_cpu_on_the_gpu_output() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(77);
    let sgmax = subgroup_max(&ctx);
    let cols = 128;
    let mut cases = 0;
    for path in paths(&ctx) {
        for batch in [1usize, 3, 8] {
            let cands = GemvTuning::candidates(WeightDtype::F16, batch as u32, path);
            let mut tunings = vec![
                cands[0],
                GemvTuning {
                    blocks: 3,
                    ..cands[0]
                },
            ];
            tunings.extend(cands.iter().find(|t| t.blocks > 1));
            tunings.extend(cands.iter().find(|t| t.xor));
            tunings.dedup();
            for (ti, t) in tunings.into_iter().enumerate() {
                let rw = t.rows_per_workgroup(path, sgmax) as usize;
                // Rows: a few workgroups and a short last one.
                let rows = 7 * rw + 13;
                let i8w = ti == 1;
                let nan_wg = ti == 0 && batch == 3;
                // Row blocks of ~3 workgroups (not a multiple of rw) in one case.
                let part_rows = if ti == 0 { 3 * rw + 5 } else { rows };
                let mut w16: Vec<u16> = rng
                    .normals(rows * cols, 0.05)
                    .iter()
                    .map(|&v| f32_to_f16_bits(v))
                    .collect();
                // The largest row (weight 1 at column 0, x[0] = 1000), copied (ties).
                let mut big: Vec<u16> = w16[cols..2 * cols].to_vec();
                big[0] = 0x3c00;
                for r in [1, 2, rw + 1, 3 * rw + 2, 6 * rw, rows - 1] {
                    w16[r * cols..(r + 1) * cols].copy_from_slice(&big);
                }
                w16[(2 * rw + 3) * cols] = 0x7c00; // +inf
                w16[(4 * rw + 1) * cols + 5] = 0xfc00; // -inf
                w16[(5 * rw + 2) * cols + 7] = 0x7e00; // NaN
                w16[(rows - 2) * cols] = 0x7c00; // +inf in the short last workgroup
                if nan_wg {
                    for r in 0..rw {
                        w16[r * cols + 3] = 0x7e00;
                    }
                }
                let ties = [1, 2, rw + 1, 3 * rw + 2, 6 * rw, rows - 1];
                let (q, scales): (Vec<i8>, Vec<f32>) = if i8w {
                    let mut q: Vec<i8> = rng
                        .normals(rows * cols, 40.0)
                        .iter()
                        .map(|v| v.clamp(-127.0, 127.0) as i8)
                        .collect();
                    let mut sc: Vec<f32> =
                        (0..rows).map(|r| 0.01 + (r % 5) as f32 * 0.003).collect();
                    let mut row1: Vec<i8> = q[cols..2 * cols].to_vec();
                    row1[0] = 127;
                    for r in ties {
                        q[r * cols..(r + 1) * cols].copy_from_slice(&row1);
                        sc[r] = 0.05;
                    }
                    (q, sc)
                } else {
                    (Vec::new(), Vec::new())
                };
                let (dtype, w) = if i8w {
                    (
                        WeightDtype::I8,
                        Weights::I8 {
                            q: &q,
                            scales: &scales,
                        },
                    )
                } else {
                    (WeightDtype::F16, Weights::F16(&w16))
                };
                let bias = i8w.then(|| {
                    let mut b = rng.normals(rows, 0.5);
                    for r in ties {
                        b[r] = 0.25;
                    }
                    b
                });
                let es = dtype.size();
                let gw = GemvWeights::upload_split(
                    &ctx,
                    &w,
                    rows,
                    cols,
                    bias.as_deref(),
                    Some((part_rows * cols * es) as u64),
                )
                .unwrap();
                let t = if i8w {
                    GemvTuning {
                        blocks: 3,
                        ..GemvTuning::candidates(dtype, batch as u32, path)[0]
                    }
                } else {
                    t
                };
                let rw = t.rows_per_workgroup(path, sgmax) as usize;
                let g = Gemv::new(
                    &ctx,
                    &gw,
                    &GemvOptions {
                        batch,
                        x_dtype: VecDtype::F16,
                        path,
                        tuning: Some(t),
                        max_partials: true,
                    },
                )
                .unwrap();
                let label = format!("{g:?} rows {rows} part {part_rows}");
                // The workgroups' row ranges, in partial order.
                let mut ranges = Vec::new();
                let mut r0 = 0;
                while r0 < rows {
                    let n = part_rows.min(rows - r0);
                    for s in (0..n).step_by(rw) {
                        ranges.push((r0 + s, r0 + (s + rw).min(n)));
                    }
                    r0 += n;
                }
                assert_eq!(g.parts_per_row, ranges.len(), "{label}");
                for rep in 0..2 {
                    // x[0] large: the tied rows (weight 1 / 127 there) are the
                    // largest of their workgroups.
                    let mut x = rng.normals(batch * cols, 1.0);
                    for xb in x.chunks_mut(cols) {
                        xb[0] = 1000.0;
                    }
                    g.write_x(&ctx.queue, &x).unwrap();
                    poison(&ctx, g.partials.as_ref().unwrap());
                    g.execute(&ctx.device, &ctx.queue);
                    let y = g.read_y(&ctx).unwrap();
                    let parts = g.read_partials(&ctx).unwrap();
                    assert_eq!(parts.len(), batch * ranges.len());
                    let mut saw_tie = false;
                    for b in 0..batch {
                        let yb = &y[b * rows..(b + 1) * rows];
                        for (k, &(lo, hi)) in ranges.iter().enumerate() {
                            let (mut m, mut mi) = (sanitize(yb[lo]), lo);
                            for (i, &v) in yb.iter().enumerate().take(hi).skip(lo + 1) {
                                let v = sanitize(v);
                                if v > m {
                                    (m, mi) = (v, i);
                                } else if v == m {
                                    saw_tie = true;
                                }
                            }
                            let [pv, pi] = parts[b * ranges.len() + k];
                            let pv = f32::from_bits(pv);
                            assert!(
                                pv == m && pi as usize == mi,
                                "{label} rep {rep} vector {b} workgroup {k} rows {lo}..{hi}: GPU ({pv}, {pi}) CPU ({m}, {mi})"
                            );
                        }
                    }
                    assert!(saw_tie, "{label}: no ties were tested");
                    cases += 1;
                }
            }
        }
    }
    assert!(cases >= 12);
}

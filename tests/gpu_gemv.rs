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
    Gemv, GemvOptions, GemvTuning, GemvWeights, ReducePath, VecDtype, WeightDtype,
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

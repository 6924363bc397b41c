//! Compressed GEMV on every adapter and ballot path this machine has: the
//! int8 matrix stays a coded plane in device memory, and y equals the GEMV on
//! the decoded weights within f32 rounding, for every prediction mode, edge
//! tiles on both sides, every probability precision, f32 and f16 x, planes
//! made by the encoder's own choices and from a `.wcodec` file. Results are
//! identical run to run; a corrupt stream is reported, not a crash.
//!
//! Tolerance: both the compressed GEMV and the plain int8 GEMV are within the
//! rigorous bound `γ_(n+3) · Σ|q·s·x| + u·|y|` of the exact product of the
//! decoded weights (`GemvRef::bound`), so they differ by at most the sum of
//! two bounds; both are also checked against the f64 reference directly.

mod common;

use common::{Rng, ctx, poison};
use wcodec::codec::plane::{PlaneOptions, encode_plane};
use wcodec::codec::predict::Mode;
use wcodec::codec::tile::Grid;
use wcodec::cpu::gemv::{Weights, gemv_f64, rel_l2};
use wcodec::wgpu::context::GpuContext;
use wcodec::wgpu::gemv::{Gemv, GemvOptions, GemvWeights, ReducePath, VecDtype};
use wcodec::wgpu::gemv_rans::{
    CompressedWeights, RansGemv, RansGemvOptions, RansGemvTuning, tuning,
};

/// Int8 codes drawn like quantised weights, with some smooth rows so that
/// predictive modes matter.
fn codes(rng: &mut Rng, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let w = rng.normals(rows * cols, 0.02);
    let mut q = wcodec::codec::quant::quantize(&w, rows, cols, 8, &Default::default()).unwrap();
    for r in (0..rows).step_by(5) {
        for c in 0..cols {
            q.q[r * cols + c] = ((c as i32 / 3 + r as i32) % 200 - 100) as i8 as u8;
        }
    }
    (q.q, q.scales)
}

/// Both paths where the device has subgroups (of ≥ 32 lanes: no barrier in
/// the decode loop; narrower, as lavapipe's 8: ballots combined in workgroup
/// memory), else the workgroup path.
fn paths(ctx: &GpuContext) -> Vec<ReducePath> {
    let mut p = vec![ReducePath::Workgroup];
    if ctx.has(wgpu::Features::SUBGROUP) {
        p.insert(0, ReducePath::Subgroup);
    }
    p
}

#[allow(clippy::too_many_arguments)]
fn check(
    ctx: &GpuContext,
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    opts: &PlaneOptions,
    x_dtype: VecDtype,
    bias: bool,
    path: ReducePath,
    tuning: Option<RansGemvTuning>,
) {
    let (q, scales) = codes(rng, rows, cols);
    check_q(
        ctx, rng, &q, &scales, rows, cols, opts, x_dtype, bias, path, tuning, None, 0,
    );
}

/// `check` on given codes (`fused`: as `RansGemvOptions::fused`); returns
/// the plane's table count and y.
#[allow(clippy::too_many_arguments)]
fn check_q(
    ctx: &GpuContext,
    rng: &mut Rng,
    q: &[u8],
    scales: &[f32],
    rows: usize,
    cols: usize,
    opts: &PlaneOptions,
    x_dtype: VecDtype,
    bias: bool,
    path: ReducePath,
    tuning: Option<RansGemvTuning>,
    fused: Option<bool>,
    diag: u32,
) -> (usize, Vec<f32>) {
    let plane = encode_plane(q, Grid::two_d(rows, cols), opts).unwrap();
    let view = plane.view();
    let scales = scales.to_vec();
    // The CPU decode is the reference of the weights.
    let mut dec = vec![0u8; rows * cols];
    view.decode_into(&mut dec, &Default::default()).unwrap();
    assert_eq!(dec, q);
    let qi: Vec<i8> = dec.iter().map(|&b| b as i8).collect();
    let b = bias.then(|| rng.normals(rows, 0.3));
    let mut x = rng.normals(cols, 1.0);
    if x_dtype == VecDtype::F16 {
        x.iter_mut().for_each(|v| {
            *v = half::f16::from_bits(wcodec::codec::quant::f32_to_f16_bits(*v)).to_f32()
        });
    }
    let w = Weights::I8 {
        q: &qi,
        scales: &scales,
    };
    let want = gemv_f64(&w, rows, cols, &x, 1, b.as_deref()).unwrap();
    let cw = CompressedWeights::from_plane(ctx, &view, Some(&scales), b.as_deref()).unwrap();
    let g = RansGemv::new(
        ctx,
        &cw,
        &RansGemvOptions {
            x_dtype,
            path,
            tuning,
            fused,
            diag,
        },
    )
    .unwrap();
    if let Some(f) = fused {
        assert_eq!(g.fused, f && g.tuning.rounds > 0, "{g:?}");
    }
    g.write_x(&ctx.queue, &x).unwrap();
    let plain_w = GemvWeights::upload(ctx, &w, rows, cols, b.as_deref()).unwrap();
    let plain = Gemv::new(
        ctx,
        &plain_w,
        &GemvOptions {
            batch: 1,
            x_dtype,
            ..Default::default()
        },
    )
    .unwrap();
    plain.write_x(&ctx.queue, &x).unwrap();
    plain.execute(&ctx.device, &ctx.queue);
    let yp = plain.read_y(ctx).unwrap();
    let label = format!(
        "{g:?} modes {:?} p{} bias {bias}",
        opts.force_mode, opts.prob_bits
    );
    let mut first: Option<Vec<f32>> = None;
    for rep in 0..2 {
        poison(ctx, &g.y);
        g.execute(&ctx.device, &ctx.queue);
        let y = g.read_y(ctx).unwrap();
        g.check_stream(ctx).unwrap();
        let peak = g.resident_peak(ctx).unwrap();
        if diag & 64 != 0 && g.fused {
            // the probe counted this run's workgroups in and out: at least one
            // was resident, and the count was cleared after the last run
            assert!(peak >= 1, "{label}: occupancy probe read {peak}");
        } else {
            assert_eq!(
                peak, 0,
                "{label}: the probe's words are written without DIAG 64"
            );
        }
        for i in 0..rows {
            let bb = b.as_ref().map_or(0.0, |v| v[i] as f64);
            let bound = want.bound(i, bb);
            let e = (y[i] as f64 - want.y[i]).abs();
            assert!(
                e <= bound,
                "{label} rep {rep}: y[{i}] = {} want {} (error {e:e} > {bound:e})",
                y[i],
                want.y[i]
            );
            let d = (y[i] as f64 - yp[i] as f64).abs();
            assert!(
                d <= 2.0 * bound,
                "{label}: compressed {} vs plain GEMV {} at row {i}",
                y[i],
                yp[i]
            );
        }
        assert!(rel_l2(&y, &want.y) < 1e-5, "{label}");
        match &first {
            None => first = Some(y),
            Some(f) => assert!(
                f.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{label}: results differ run to run"
            ),
        }
    }
    // the codes (≤ 1 byte each here), 64 KiB of decode tables, the tile
    // index, scales, bias and 8.4 KB of zeros after the stream
    assert!(
        cw.bytes < (rows * cols) as u64 + 80_000,
        "device bytes {} for {} codes",
        cw.bytes,
        rows * cols
    );
    (view.tables.len(), first.unwrap())
}

/// The tile kernel on a plane with several decode tables (its work list
/// groups tiles by table), every tuning that fits, both kernels agreeing.
#[test]
fn compressed_gemv_tiles_several_tables() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(45);
    let (rows, cols) = (320, 200);
    // Row bands of very different spreads: the encoder picks several tables.
    let mut q = vec![0u8; rows * cols];
    for r in 0..rows {
        let sd = [1.0, 6.0, 30.0, 90.0][(r / 64) % 4];
        for c in 0..cols {
            q[r * cols + c] = (rng.normal() * sd).round().clamp(-128.0, 127.0) as i8 as u8;
        }
    }
    let scales = rng.normals(rows, 0.01);
    let opts = PlaneOptions {
        max_tables: 4,
        ..Default::default()
    };
    let limit = ctx.limits.max_compute_workgroup_storage_size;
    for path in paths(&ctx) {
        for t in RansGemvTuning::candidates(limit, RansGemvTuning::fused_on(&ctx, path)) {
            let (n, _) = check_q(
                &ctx,
                &mut rng,
                &q,
                &scales,
                rows,
                cols,
                &opts,
                VecDtype::F32,
                true,
                path,
                Some(t),
                None,
                0,
            );
            assert!(n > 1, "the plane has {n} table(s)");
        }
    }
}

#[test]
fn compressed_gemv_every_mode_and_edge() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(41);
    for path in paths(&ctx) {
        for mode in [
            None,
            Some(Mode::None),
            Some(Mode::Left),
            Some(Mode::Top),
            Some(Mode::Avg),
            Some(Mode::Planar),
        ] {
            for &(rows, cols) in &[(64, 64), (100, 130), (1, 1), (17, 200)] {
                let opts = PlaneOptions {
                    force_mode: mode,
                    ..Default::default()
                };
                check(
                    &ctx,
                    &mut rng,
                    rows,
                    cols,
                    &opts,
                    VecDtype::F32,
                    rows % 2 == 0,
                    path,
                    None,
                );
            }
        }
    }
}

#[test]
fn compressed_gemv_precisions_x_types_and_tunings() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(42);
    let limit = ctx.limits.max_compute_workgroup_storage_size;
    for path in paths(&ctx) {
        for pb in [10, 11, 12] {
            let opts = PlaneOptions {
                prob_bits: pb,
                ..Default::default()
            };
            check(
                &ctx,
                &mut rng,
                130,
                300,
                &opts,
                VecDtype::F16,
                true,
                path,
                None,
            );
        }
        for t in RansGemvTuning::candidates(limit, RansGemvTuning::fused_on(&ctx, path)) {
            check(
                &ctx,
                &mut rng,
                200,
                520,
                &PlaneOptions::default(),
                VecDtype::F32,
                false,
                path,
                Some(t),
            );
        }
        check(
            &ctx,
            &mut rng,
            257,
            2560,
            &PlaneOptions::default(),
            VecDtype::F16,
            false,
            path,
            None,
        );
    }
}

#[test]
fn compressed_gemv_from_a_wcodec_file() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(43);
    let (rows, cols) = (96, 200);
    let w = rng.normals(rows * cols, 0.02);
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let opts = wcodec::codec::encoder::EncodeOptions {
        quant_bits: Some(8),
        ..Default::default()
    };
    let t = wcodec::codec::encoder::encode_tensor(
        "lm_head.weight",
        wcodec::dtype::DType::F32,
        &[rows, cols],
        &bytes,
        &opts,
    )
    .unwrap();
    let file = wcodec::format::WcodecFile::from_bytes(
        wcodec::format::writer::to_bytes(None, &[t]).unwrap(),
    )
    .unwrap();
    let canon = wcodec::codec::decoder::decode_tensor(&file, 0).unwrap();
    let qi: Vec<i8> = canon[..rows * cols].iter().map(|&b| b as i8).collect();
    let scales: Vec<f32> = canon[rows * cols..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let x = rng.normals(cols, 1.0);
    let want = gemv_f64(
        &Weights::I8 {
            q: &qi,
            scales: &scales,
        },
        rows,
        cols,
        &x,
        1,
        None,
    )
    .unwrap();
    let cw = CompressedWeights::from_file(&ctx, &file, "lm_head.weight", None).unwrap();
    let g = RansGemv::new(&ctx, &cw, &RansGemvOptions::default()).unwrap();
    g.write_x(&ctx.queue, &x).unwrap();
    poison(&ctx, &g.y);
    g.execute(&ctx.device, &ctx.queue);
    let y = g.read_y(&ctx).unwrap();
    g.check_stream(&ctx).unwrap();
    for (i, (&yi, &wi)) in y.iter().zip(&want.y).enumerate() {
        assert!((yi as f64 - wi).abs() <= want.bound(i, 0.0), "row {i}");
    }
    assert!(CompressedWeights::from_file(&ctx, &file, "missing", None).is_err());
}

#[test]
fn compressed_gemv_reports_corrupt_streams() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(44);
    let (rows, cols) = (64, 128);
    let (q, scales) = codes(&mut rng, rows, cols);
    let mut plane = encode_plane(&q, Grid::two_d(rows, cols), &PlaneOptions::default()).unwrap();
    // Flip words in the middle of the second tile's stream.
    let mid = (plane.index[1].offset as usize + plane.stream.len()) / 2;
    for k in mid..mid + 8 {
        plane.stream[k] ^= 0x5a5a;
    }
    let cw = CompressedWeights::from_plane(&ctx, &plane.view(), Some(&scales), None).unwrap();
    let g = RansGemv::new(&ctx, &cw, &RansGemvOptions::default()).unwrap();
    g.write_x(&ctx.queue, &rng.normals(cols, 1.0)).unwrap();
    g.execute(&ctx.device, &ctx.queue);
    let _ = g.read_y(&ctx).unwrap();
    assert!(g.check_stream(&ctx).is_err());
    assert!(g.check_stream(&ctx).is_ok(), "the flag clears");
    assert!(g.write_x(&ctx.queue, &[1.0; 3]).is_err());
    // The FUSED kernel in every form (asked for on any path) reports it too.
    let limit = ctx.limits.max_compute_workgroup_storage_size;
    for path in paths(&ctx) {
        let wide = RansGemvTuning::fused_on(&ctx, path);
        for t in fused_forms(&ctx, limit, wide) {
            let g = RansGemv::new(
                &ctx,
                &cw,
                &RansGemvOptions {
                    path,
                    tuning: Some(t),
                    fused: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
            g.write_x(&ctx.queue, &rng.normals(cols, 1.0)).unwrap();
            g.execute(&ctx.device, &ctx.queue);
            let _ = g.read_y(&ctx).unwrap();
            assert!(g.check_stream(&ctx).is_err(), "{g:?}");
        }
    }
    let bad = tuning(4, 1 << 20, 0);
    assert!(
        RansGemv::new(
            &ctx,
            &cw,
            &RansGemvOptions {
                tuning: Some(bad),
                ..Default::default()
            }
        )
        .is_err()
    );
}

/// Tile-kernel tunings of the FUSED kernel that fit this device, with every
/// ILP / DIRECT form among them.
fn fused_forms(ctx: &GpuContext, limit: u32, wide: bool) -> Vec<RansGemvTuning> {
    let max_inv = ctx.limits.max_compute_invocations_per_workgroup;
    let mut v: Vec<RansGemvTuning> = RansGemvTuning::candidates_for(limit, true, wide)
        .into_iter()
        .filter(|t| t.rounds > 0 && t.nw * 32 <= max_inv)
        .collect();
    // small workgroups of each form, so that short work lists have dead entries
    for (ilp, direct) in [(1, false), (1, true), (2, false), (2, true)] {
        v.push(RansGemvTuning {
            ilp,
            direct,
            ..tuning(2, 256, 3)
        });
    }
    for (ilp, direct) in [(1, false), (1, true), (2, false), (2, true)] {
        assert!(
            v.iter().any(|t| t.ilp == ilp && t.direct == direct),
            "no FUSED form ilp {ilp} direct {direct} fits ({limit} bytes)"
        );
    }
    v
}

/// The FUSED kernel (full-width NONE / PLANAR tiles multiplied inside the
/// decode loop) in every ILP / DIRECT form, on every path this machine has
/// (asked for where subgroups are narrower than 32 lanes, whose row sums go
/// through workgroup memory in the butterfly's order): right against the CPU
/// reference, and the same y bit for bit from every form and path, and with
/// the tiles of 64 full rows through the general step instead of the coded
/// one (DIAG 128). Shapes
/// with a short bottom band, a short last column (its tiles go to the side
/// dispatch), several decode tables, PLANAR tiles, f16 x.
#[test]
fn compressed_gemv_fused_forms_agree_bit_for_bit() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(46);
    let limit = ctx.limits.max_compute_workgroup_storage_size;
    let cases = [
        (300, 448, None, 1, VecDtype::F32),
        (130, 200, Some(Mode::Planar), 1, VecDtype::F16),
        (320, 256, None, 4, VecDtype::F32),
    ];
    for (rows, cols, mode, tables, xd) in cases {
        let (mut q, scales) = codes(&mut rng, rows, cols);
        if tables > 1 {
            // Row bands of very different spreads: the encoder picks several tables.
            for r in 0..rows {
                let sd = [1.0, 6.0, 30.0, 90.0][(r / 64) % 4];
                for c in 0..cols {
                    q[r * cols + c] = (rng.normal() * sd).round().clamp(-128.0, 127.0) as i8 as u8;
                }
            }
        }
        let opts = PlaneOptions {
            force_mode: mode,
            max_tables: tables,
            ..Default::default()
        };
        let mut want: Option<Vec<u32>> = None;
        let mut n = 0;
        for path in paths(&ctx) {
            let wide = RansGemvTuning::fused_on(&ctx, path);
            let forms = fused_forms(&ctx, limit, wide);
            // DIAG 128: every form with the full tiles through the general
            // step too, no coded-step loop; DIAG 64: the occupancy probe
            // (results unchanged)
            let runs = forms
                .iter()
                .flat_map(|&t| [(t, 0), (t, 128)])
                .chain([(forms[0], 64)]);
            for (t, diag) in runs {
                // the same x and bias each time
                let mut r = Rng(7);
                let (nt, y) = check_q(
                    &ctx,
                    &mut r,
                    &q,
                    &scales,
                    rows,
                    cols,
                    &opts,
                    xd,
                    true,
                    path,
                    Some(t),
                    Some(true),
                    diag,
                );
                assert!(tables == 1 || nt > 1, "the plane has {nt} table(s)");
                let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                match &want {
                    None => want = Some(bits),
                    Some(w) => assert!(
                        *w == bits,
                        "{rows}x{cols} {} {t:?} diag {diag}: y differs from the first FUSED form's",
                        path.name()
                    ),
                }
                n += 1;
            }
        }
        assert!(n >= 4);
    }
}

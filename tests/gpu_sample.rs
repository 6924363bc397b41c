//! Sampling on every adapter this machine has gives exactly the CPU
//! reference's token (`wcodec::cpu::sample`) for the same seed and step:
//! greedy, temperature, top-k, top-p and combinations, over many fresh random
//! rows of logits, including ties, top-k = 1, top-p = 1, temperatures near 0,
//! and non-finite logits. Tokens are poisoned before every call.

mod common;

use common::{Rng, ctx, poison, run_wcodec};
use wcodec::cpu::sample::{SampleParams, distance, ranked, sample_row, token_at};
use wcodec::wgpu::context::GpuContext;
use wcodec::wgpu::sample::{Sampler, SamplerOptions, SamplerTuning};

/// Run `calls` calls of a sampler over `x` (`rows × n`) and compare every token.
fn check(
    ctx: &GpuContext,
    x: &[f32],
    rows: usize,
    n: usize,
    p: &SampleParams,
    calls: u64,
    tuning: SamplerTuning,
) {
    let s = Sampler::new(
        ctx,
        None,
        n,
        rows,
        n,
        p,
        &SamplerOptions {
            probs: false,
            fixed_step: false,
            tuning,
            mappable_tokens: false,
        },
    )
    .unwrap();
    s.write_logits(&ctx.queue, x).unwrap();
    let start: Vec<u64> = (0..rows as u64).map(|r| r * 1000 + 17).collect();
    s.set_steps(&ctx.queue, &start).unwrap();
    for call in 0..calls {
        poison(ctx, &s.tokens);
        s.execute(&ctx.device, &ctx.queue);
        let got = s.read_tokens(ctx).unwrap();
        for r in 0..rows {
            let t = sample_row(&x[r * n..(r + 1) * n], p, start[r] + call, r as u32).unwrap();
            assert_eq!(
                got[r], t.token,
                "{s:?}: row {r} call {call}: GPU token {} but CPU {t:?}",
                got[r]
            );
        }
    }
    let steps = s.read_steps(ctx).unwrap();
    assert_eq!(steps, start.iter().map(|v| v + calls).collect::<Vec<_>>());
}

fn params(t: f32, k: u32, p: f32, seed: u64) -> SampleParams {
    SampleParams {
        temperature: t,
        top_k: k,
        top_p: p,
        seed,
    }
}

#[test]
fn sampling_matches_the_cpu_token_for_token() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(21);
    for &(rows, n) in &[(4, 1000), (2, 50257), (8, 37), (1, 1)] {
        for &(t, k, p) in &[
            (1.0f32, 0u32, 1.0f32),
            (1.0, 50, 0.9),
            (0.7, 0, 0.9),
            (1.3, 50, 1.0),
            (1.0, 2, 1.0),
            (0.8, 0, 0.05),
            (1.0, 100_000, 0.5),
            (2.0, 5, 0.999),
        ] {
            let x = rng.normals(rows * n, 3.0);
            check(
                &ctx,
                &x,
                rows,
                n,
                &params(t, k, p, rng.next_u64()),
                3,
                SamplerTuning::default(),
            );
        }
    }
}

#[test]
fn sampling_greedy_ties_and_extremes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(22);
    let n = 3001;
    let rows = 6;
    let mut x = rng.normals(rows * n, 2.0);
    // Row 0: ties everywhere (logits on a coarse grid); row 1: all equal;
    // row 2: NaN and ±inf; row 3: several maxima; row 4: a huge spread;
    // row 5: values on a 1e-4 grid (distances tie after quantisation).
    for v in &mut x[..n] {
        *v = (*v * 2.0).round() / 2.0;
    }
    x[n..2 * n].iter_mut().for_each(|v| *v = 0.25);
    x[2 * n + 3] = f32::NAN;
    x[2 * n + 4] = f32::INFINITY;
    x[2 * n + 900] = f32::INFINITY;
    x[2 * n + 5] = f32::NEG_INFINITY;
    for i in [10, 500, 2999] {
        x[3 * n + i] = 20.0;
    }
    for (i, v) in x[4 * n..5 * n].iter_mut().enumerate() {
        *v = if i % 3 == 0 {
            1e30 * (i as f32 / n as f32)
        } else {
            -1e30
        };
    }
    for v in &mut x[5 * n..] {
        *v = (*v * 1e4).round() * 1e-4;
    }
    for &(t, k, p) in &[
        (0.0f32, 0u32, 1.0f32), // greedy by temperature
        (1.0, 1, 1.0),          // greedy by top-k = 1
        (1.0, 0, 1.0),          // top-p = 1, no top-k
        (1e-3, 0, 1.0),         // near-greedy
        (1e-6, 7, 0.9),
        (1.0, 3, 0.3),
        (5.0, 0, 0.95),
        (1.0, 2000, 1.0),
    ] {
        check(
            &ctx,
            &x,
            rows,
            n,
            &params(t, k, p, rng.next_u64()),
            4,
            SamplerTuning::default(),
        );
    }
}

#[test]
fn sampling_many_random_rows_and_parameters() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(23);
    // 40 rounds of 16 rows with random sizes of spread, random parameters.
    for _ in 0..40 {
        let n = 1 + rng.below(5000) as usize;
        let sigma = [0.1, 1.0, 3.0, 10.0][rng.below(4) as usize];
        let x = rng.normals(16 * n, sigma);
        let t = [0.0f32, 1e-4, 0.3, 1.0, 1.7][rng.below(5) as usize];
        let k = [0u32, 1, 2, 10, 50, 1000][rng.below(6) as usize];
        let p = [1.0f32, 0.99, 0.9, 0.5, 0.1, 1e-6][rng.below(6) as usize];
        check(
            &ctx,
            &x,
            16,
            n,
            &params(t, k, p, rng.next_u64()),
            2,
            SamplerTuning::default(),
        );
    }
}

#[test]
fn sampling_every_tuning_candidate() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(24);
    for t in SamplerTuning::candidates() {
        if t.select_wg > ctx.limits.max_compute_invocations_per_workgroup {
            continue;
        }
        let x = rng.normals(3 * 20011, 3.0);
        check(
            &ctx,
            &x,
            3,
            20011,
            &params(1.0, 50, 0.9, rng.next_u64()),
            2,
            t,
        );
        check(
            &ctx,
            &x,
            3,
            20011,
            &params(0.9, 0, 0.8, rng.next_u64()),
            2,
            t,
        );
        // Greedy with the maximum tied across blocks of every split: the first index wins.
        let mut xt = x.clone();
        for r in 0..3 {
            for i in [20010, 9000, 777 + r, 15000] {
                xt[r * 20011 + i] = 50.0;
            }
        }
        check(
            &ctx,
            &xt,
            3,
            20011,
            &params(1.0, 1, 1.0, rng.next_u64()),
            2,
            t,
        );
        check(
            &ctx,
            &xt,
            3,
            20011,
            &params(1.0, 3, 0.9, rng.next_u64()),
            2,
            t,
        );
    }
}

#[test]
fn sampler_with_probabilities_and_fixed_step() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(25);
    let (rows, n) = (2, 7777);
    let x = rng.normals(rows * n, 3.0);
    let p = params(0.8, 40, 0.95, 99);
    let s = Sampler::new(
        &ctx,
        None,
        n,
        rows,
        n,
        &p,
        &SamplerOptions {
            probs: true,
            fixed_step: true,
            ..Default::default()
        },
    )
    .unwrap();
    s.write_logits(&ctx.queue, &x).unwrap();
    for _ in 0..3 {
        poison(&ctx, &s.tokens);
        poison(&ctx, &s.softmax.out);
        s.execute(&ctx.device, &ctx.queue);
        let got = s.read_tokens(&ctx).unwrap();
        for r in 0..rows {
            assert_eq!(
                got[r],
                sample_row(&x[r * n..(r + 1) * n], &p, 0, r as u32)
                    .unwrap()
                    .token
            );
        }
        let probs = s.softmax.read_out(&ctx).unwrap();
        let want = wcodec::cpu::softmax::softmax_f64(&x, rows, n, 0.8, false).unwrap();
        assert!(wcodec::cpu::gemv::rel_l2(&probs, &want) < 1e-5);
    }
    assert_eq!(s.read_steps(&ctx).unwrap(), vec![0, 0]);
}

#[test]
fn sampler_rejects_bad_parameters() {
    let Some(ctx) = ctx() else { return };
    let o = SamplerOptions::default();
    for bad in [
        params(-1.0, 0, 1.0, 0),
        params(1.0, 0, 0.0, 0),
        params(1.0, 0, 1.5, 0),
        params(f32::NAN, 0, 1.0, 0),
    ] {
        assert!(
            Sampler::new(&ctx, None, 10, 1, 10, &bad, &o).is_err(),
            "{bad:?}"
        );
    }
    let mut s = Sampler::new(&ctx, None, 10, 2, 10, &params(1.0, 0, 1.0, 0), &o).unwrap();
    assert!(s.set_params(&ctx.queue, &params(1.0, 0, -0.5, 0)).is_err());
    assert!(s.set_steps(&ctx.queue, &[1]).is_err());
    assert!(s.write_logits(&ctx.queue, &[0.0; 3]).is_err());
}

#[test]
fn sampling_top_k_around_the_fast_path_capacity() {
    // `select` collects the tokens of the coarse bins up to the top-k bin
    // when they are at most 512 (its fast path), else takes the general
    // path: both sides of the limit, with and without top-p, and ties.
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(26);
    let n = 20011;
    let mut x = rng.normals(2 * n, 3.0);
    // Row 1: logits on a coarse grid (many equal distances).
    for v in &mut x[n..] {
        *v = (*v * 4.0).round() / 4.0;
    }
    for &(t, k, p) in &[
        (1.0f32, 200u32, 1.0f32),
        (1.0, 400, 0.9),
        (1.0, 500, 1.0),
        (1.0, 512, 0.95),
        (1.0, 513, 1.0),
        (0.5, 700, 0.7),
        (3.0, 300, 0.2),
    ] {
        check(
            &ctx,
            &x,
            2,
            n,
            &params(t, k, p, rng.next_u64()),
            3,
            SamplerTuning::default(),
        );
    }
}

/// The row maximum from external max partials (as the GEMV's epilogue
/// writes them; here made on the CPU from chunks of 1 to 30 tokens, some
/// empty partials (−f32::MAX, no index), all shuffled: the result must not
/// depend on their order): the same tokens as the CPU, greedy and sampling,
/// over rows with ties across partials, NaN and ±inf.
#[test]
fn sampling_with_external_max_partials() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(23);
    let (n, rows) = (20011, 3);
    let mut x = rng.normals(rows * n, 2.0);
    for v in &mut x[..n] {
        *v = (*v * 2.0).round() / 2.0;
    }
    for i in [7, 4000, 19999] {
        x[n + i] = 30.0;
    }
    x[2 * n + 3] = f32::NAN;
    x[2 * n + 50] = f32::INFINITY;
    x[2 * n + 9000] = f32::INFINITY;
    x[2 * n + 5] = f32::NEG_INFINITY;
    let sanitize = |v: f32| {
        if v.is_nan() {
            -f32::MAX
        } else {
            v.clamp(-f32::MAX, f32::MAX)
        }
    };
    let mut per_row: Vec<Vec<[u32; 2]>> = Vec::new();
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let mut parts = Vec::new();
        let mut i = 0;
        while i < n {
            let len = (1 + rng.below(30) as usize).min(n - i);
            let (mut m, mut mi) = (sanitize(row[i]), i);
            for (j, &v) in row.iter().enumerate().take(i + len).skip(i + 1) {
                if sanitize(v) > m {
                    (m, mi) = (sanitize(v), j);
                }
            }
            parts.push([m.to_bits(), mi as u32]);
            i += len;
        }
        for _ in 0..5 {
            parts.push([(-f32::MAX).to_bits(), u32::MAX]);
        }
        per_row.push(parts);
    }
    let np = per_row.iter().map(|p| p.len()).max().unwrap();
    let mut flat = Vec::new();
    for mut parts in per_row {
        // Pad with empty partials, then shuffle.
        parts.resize(np, [(-f32::MAX).to_bits(), u32::MAX]);
        for i in (1..parts.len()).rev() {
            parts.swap(i, rng.below(i as u64 + 1) as usize);
        }
        flat.extend(parts.iter().flat_map(|p| [p[0], p[1]]));
    }
    use wgpu::BufferUsages as U;
    let buf = ctx
        .create_buffer(
            "test.partials",
            (flat.len() * 4) as u64,
            U::STORAGE | U::COPY_DST,
        )
        .unwrap();
    ctx.queue.write_buffer(&buf, 0, bytemuck::cast_slice(&flat));
    for &(t, k, p) in &[
        (0.0f32, 0u32, 1.0f32),
        (1.0, 1, 1.0),
        (0.8, 50, 0.9),
        (1.0, 0, 0.95),
    ] {
        for tuning in [
            SamplerTuning::default(),
            SamplerTuning {
                max_split: false,
                ..SamplerTuning::default()
            },
        ] {
            let sp = params(t, k, p, rng.next_u64());
            let s = Sampler::with_max_partials(
                &ctx,
                None,
                Some((&buf, np)),
                n,
                rows,
                n,
                &sp,
                &SamplerOptions {
                    tuning,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(s.ext_max());
            // No max_part dispatch: prepare (+ select).
            assert_eq!(s.stages(), 1 + !sp.is_greedy() as usize);
            s.write_logits(&ctx.queue, &x).unwrap();
            for call in 0..3u64 {
                poison(&ctx, &s.tokens);
                s.execute(&ctx.device, &ctx.queue);
                let got = s.read_tokens(&ctx).unwrap();
                for r in 0..rows {
                    let want = sample_row(&x[r * n..(r + 1) * n], &sp, call, r as u32).unwrap();
                    assert_eq!(
                        got[r], want.token,
                        "{s:?} row {r} call {call}: CPU {want:?}"
                    );
                }
            }
        }
    }
    // Too small a partials buffer is refused.
    assert!(
        Sampler::with_max_partials(
            &ctx,
            None,
            Some((&buf, np + 1)),
            n,
            rows,
            n,
            &params(1.0, 0, 1.0, 1),
            &SamplerOptions::default(),
        )
        .is_err()
    );
}

/// Temperature alone (no top-k cut, top-p 1) takes the plain draw: the
/// weights laid out in index order, found through the `prepare` blocks'
/// totals and then one block's prefix sums (`diag` 7: 3). Rows of one
/// block, of many, of more blocks than `select` has owners for (each owner
/// then walks two blocks), flat rows, one dominant token, a temperature near
/// 0 and a top-k ≥ n, with every tuning (blocks of 4096 tokens summed by 256
/// to 512 owners, so one or several words each), each checked against the
/// CPU's token, which differs from the (d, index) order's.
#[test]
fn temperature_alone_takes_the_plain_draw() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(31);
    let t0 = SamplerTuning::default();
    let block = (t0.prepare_wg * t0.prepare_words * 8) as usize;
    let (rows, n) = (4, 5 * block + 333);
    let mut x = rng.normals(rows * n, 3.0);
    // Row 1 flat; row 2 one token far above the rest; row 3 a few on top.
    x[n..2 * n].iter_mut().for_each(|v| *v = 1.25);
    x[2 * n + 4097] = 60.0;
    for i in [5, 9000, 20000, n - 1] {
        x[3 * n + i] = 14.0;
    }
    let plain = [
        params(1.0, 0, 1.0, 41),
        params(0.7, 0, 1.0, 42),
        params(0.02, 0, 1.0, 43),
        params(1.3, n as u32, 1.0, 44),
        params(1.0, u32::MAX, 1.0, 45),
    ];
    for p in &plain {
        assert!(p.draws_in_index_order(n));
        let got = paths(&ctx, &x, rows, n, p, t0);
        assert_eq!(got, vec![3; rows], "{p:?}");
        check(&ctx, &x, rows, n, p, 6, t0);
    }
    // Index order differs from version 1's (d, index) order: the same U
    // lands on another token in most draws.
    let p = plain[0];
    let row = &x[..n];
    let m = row.iter().copied().fold(f32::MIN, f32::max);
    let ds: Vec<u32> = row.iter().map(|&v| distance(m, v, p.scale())).collect();
    let cand = ranked(&ds);
    let differs = (0..20u64)
        .filter(|&st| {
            let t = sample_row(row, &p, st, 0).unwrap();
            token_at(cand.iter().copied(), t.u).unwrap() != t.token
        })
        .count();
    assert!(differs > 15, "{differs}");
    // Every tuning the adapter can run (owners of one to four words).
    for t in SamplerTuning::candidates() {
        if t.select_wg > ctx.limits.max_compute_invocations_per_workgroup {
            continue;
        }
        check(&ctx, &x, rows, n, &plain[1], 2, t);
    }
    // A top-k below n or a top-p below 1 does not.
    for p in [
        params(1.0, n as u32 - 1, 1.0, 46),
        params(1.0, 0, 0.9999, 47),
    ] {
        assert!(!p.draws_in_index_order(n));
        let got = paths(&ctx, &x, rows, n, &p, t0);
        assert!(got.iter().all(|&g| g < 3), "{p:?}: {got:?}");
    }
    // A top-k at least the candidates but below n cuts nothing either, yet
    // keeps (d, index) order: the general path with no cut (row 2, one
    // candidate, fits the blocks' local lists).
    let mut xz = x.clone();
    for v in xz.iter_mut().step_by(2) {
        *v = -1e4;
    }
    let p = params(1.0, (n * 3 / 4) as u32, 1.0, 49);
    assert!(!p.draws_in_index_order(n));
    let got = paths(&ctx, &xz, rows, n, &p, t0);
    assert_eq!(got, vec![2, 2, 0, 2], "{got:?}");
    check(&ctx, &xz, rows, n, &p, 4, t0);
    // More blocks than owners (512): owners of two blocks each.
    let n = 515 * block + 7;
    let mut x = rng.normals(n, 2.0);
    x[514 * block + 3] = 16.0;
    x[block / 2] = 16.0;
    let p = params(1.0, 0, 1.0, 48);
    assert_eq!(paths(&ctx, &x, 1, n, &p, t0), vec![3]);
    check(&ctx, &x, 1, n, &p, 8, t0);
}

/// `wcodec bench kernels --stages` times the sampler's parts: the cold-cache
/// pass (after an untimed copy), the fast path's stops, the row maximum alone
/// and each dispatch prefix; every timed variant is checked.
#[test]
fn bench_kernels_times_the_sampler_stages() {
    let Some(ctx) = ctx() else { return };
    drop(ctx);
    let args = [
        "bench",
        "kernels",
        "--quick",
        "--no-sweep",
        "--stages",
        "--reps",
        "3",
        "--only",
        "sample top-k 50 top-p 0.9 5003",
    ];
    let (ok, t) = run_wcodec(&args);
    assert!(ok, "{t}");
    for part in [
        "ok (token",
        "(cold caches)",
        "(cold data, warm code)",
        "select stops at the top-k bin",
        "select stops after collecting",
        "only the row maximum",
        "first 1 of",
        "a timed pass of one workgroup",
        "split lists128 ",
    ] {
        assert!(t.contains(part), "no {part:?} in: {t}");
    }
    assert!(!t.contains("FAIL"), "{t}");
}

/// The path `select` takes for each row (`diag` 7: 0 the blocks' local
/// lists, 1 the fast path over the row's distances, 2 the general path,
/// 3 the plain draw).
fn paths(
    ctx: &GpuContext,
    x: &[f32],
    rows: usize,
    n: usize,
    p: &SampleParams,
    tuning: SamplerTuning,
) -> Vec<u32> {
    diag_tokens(ctx, x, rows, n, p, SamplerTuning { diag: 7, ..tuning })
}

/// The tokens of one call with `tuning` (its `diag` says what they mean).
fn diag_tokens(
    ctx: &GpuContext,
    x: &[f32],
    rows: usize,
    n: usize,
    p: &SampleParams,
    tuning: SamplerTuning,
) -> Vec<u32> {
    let s = Sampler::new(
        ctx,
        None,
        n,
        rows,
        n,
        p,
        &SamplerOptions {
            tuning,
            ..Default::default()
        },
    )
    .unwrap();
    s.write_logits(&ctx.queue, x).unwrap();
    poison(ctx, &s.tokens);
    s.execute(&ctx.device, &ctx.queue);
    s.read_tokens(ctx).unwrap()
}

/// With a top-k, `select` reads the union of the `prepare` blocks' local
/// candidate lists when every block's is complete, else the row: rows built
/// to take each path (a block over its list's capacity while the row's
/// top-k bin is small, blocks with fewer candidates than k, a flat row, a
/// row of more blocks than `select` reads lists of), each checked to take
/// it and to give the CPU's tokens, the default tuning (lists of 128)
/// against the tuning without lists.
#[test]
fn sampling_from_local_lists_and_their_fallbacks() {
    let Some(ctx) = ctx() else { return };
    let t = SamplerTuning::default();
    assert_eq!(t.local_cap, 128, "the default tuning has local lists");
    let block = (t.prepare_wg * t.prepare_words * 8) as usize;
    let no_lists = SamplerTuning { local_cap: 0, ..t };
    let mut rng = Rng(27);
    let (rows, n) = (5, 5 * block - 1234);
    let mut x = rng.normals(rows * n, 1.0);
    // Row 0: plain normal logits (every block's list complete).
    // Row 1: block 0 holds 60 tokens far above the rest (the row's top-k
    // bin), block 1 has 200 equal tokens above its other ones: its list
    // overflows (200 > 128) but the row's bins up to c_k hold 60 tokens.
    for i in 0..60 {
        x[n + 7 * i + 3] = 12.0 + i as f32 * 1e-3;
    }
    for i in 0..200 {
        x[n + block + 11 * i] = 6.0;
    }
    // Row 2: all equal (over every capacity). Row 3: 40 tokens so far above
    // the rest that only they have weights > 0: every block has fewer
    // candidates than k and lists all of them.
    x[2 * n..3 * n].iter_mut().for_each(|v| *v = -0.5);
    for i in 0..40 {
        x[3 * n + 470 * i + 1] = 30.0 + i as f32 * 1e-2;
    }
    // Row 4: 110 such tokens in each of the 5 blocks (every list complete
    // for any k, 110 ≤ 128), so with k = 1000 the union's bins up to c_k
    // hold 550 > 512 tokens: the general path after reading the lists.
    for b in 0..5 {
        for i in 0..110 {
            x[4 * n + b * block + 17 * i] = 30.0 + (i % 97) as f32 * 0.1;
        }
    }
    let cases = [
        (params(1.0, 50, 0.9, 5), [0, 1, 2, 0, 0]),
        (params(1.0, 50, 1.0, 6), [0, 1, 2, 0, 0]),
        // Near-greedy: a few candidates per row, lists everywhere but the flat row.
        (params(2e-3, 50, 0.9, 7), [0, 0, 2, 0, 0]),
        (params(1.0, 1000, 0.9, 8), [2, 2, 2, 0, 2]),
    ];
    for (p, want) in &cases {
        assert_eq!(paths(&ctx, &x, rows, n, p, t), want, "{p:?}");
        check(&ctx, &x, rows, n, p, 2, t);
        check(&ctx, &x, rows, n, p, 2, no_lists);
    }
    // Every tuning with lists uses them where they fit (row 3).
    let p = params(1.0, 50, 0.9, 10);
    for lt in SamplerTuning::candidates() {
        if lt.local_cap == 0 || lt.select_wg > ctx.limits.max_compute_invocations_per_workgroup {
            continue;
        }
        let got = paths(&ctx, &x, rows, n, &p, lt);
        assert_eq!(got[3], 0, "{lt:?}: {got:?}");
        check(&ctx, &x, rows, n, &p, 1, lt);
    }
    // More blocks than `select` reads lists of: the pass over the row.
    let n = 256 * block + 5;
    let x = rng.normals(n, 3.0);
    let p = params(1.0, 50, 0.9, 9);
    assert_eq!(paths(&ctx, &x, 1, n, &p, t), vec![1]);
    check(&ctx, &x, 1, n, &p, 1, t);
}

/// One sampler reused across parameter changes (`set_params`): top-k on
/// and off, greedy, k past the lists' capacity and back. Every call gives
/// the CPU's token for its step, so no call reads a list left by another.
#[test]
fn sampler_reused_across_parameters() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(28);
    let (rows, n) = (3, 17011);
    let mut x = rng.normals(rows * n, 2.0);
    // Row 2: logits on a coarse grid (overflowing lists).
    for v in &mut x[2 * n..] {
        *v = (*v * 2.0).round() / 2.0;
    }
    let first = params(1.0, 50, 0.9, 3);
    let mut s = Sampler::new(&ctx, None, n, rows, n, &first, &SamplerOptions::default()).unwrap();
    s.write_logits(&ctx.queue, &x).unwrap();
    let seq = [
        first,
        params(1.0, 0, 0.9, 4),
        params(0.7, 20, 1.0, 5),
        params(1.0, 1, 1.0, 6),
        params(1.0, 1000, 0.95, 7),
        params(0.0, 0, 1.0, 8),
        params(1.3, 50, 0.9, 9),
        params(1.0, 5, 0.5, 10),
    ];
    for (step, p) in seq.iter().enumerate() {
        s.set_params(&ctx.queue, p).unwrap();
        poison(&ctx, &s.tokens);
        s.execute(&ctx.device, &ctx.queue);
        let got = s.read_tokens(&ctx).unwrap();
        for r in 0..rows {
            let want = sample_row(&x[r * n..(r + 1) * n], p, step as u64, r as u32)
                .unwrap()
                .token;
            assert_eq!(got[r], want, "call {step} {p:?} row {r}");
        }
    }
}

/// Without a top-k (top-p alone) or with one past the fast path,
/// `select`'s general path reads `prepare`'s bucket lists (the row's
/// tokens grouped by coarse bin) instead of passing over the row: rows
/// built to take each way (`diag` 8: 3 the bucket lists, 4 the bucket lists
/// and then a pass over the row for the token when more than 512 tokens
/// share its distance, 2 passes over the row: a top-k ≤ 512 whose ties
/// overflow the fast path, or a row of more than 256 blocks), each checked
/// to take it and to give the CPU's tokens, with the default blocks and
/// with blocks of two words an invocation.
#[test]
fn general_path_reads_bucket_lists_and_falls_back() {
    let Some(ctx) = ctx() else { return };
    let t = SamplerTuning::default();
    let block = (t.prepare_wg * t.prepare_words * 8) as usize;
    let two_words = SamplerTuning::candidates()
        .into_iter()
        .find(|c| {
            c.prepare_words == 2 && c.select_wg <= ctx.limits.max_compute_invocations_per_workgroup
        })
        .expect("a tuning with two words an invocation");
    let mut rng = Rng(29);
    let (rows, n) = (4, 3 * block + 777);
    let mut x = rng.normals(rows * n, 3.0);
    // Row 1: all equal (n tokens share distance 0). Row 3: 400 equal
    // tokens above the rest (most draws land on them), spread over every
    // block: the token is the r-th of them in index order, gathered from
    // four blocks' lists.
    x[n..2 * n].iter_mut().for_each(|v| *v = -0.5);
    for v in &mut x[3 * n..] {
        *v = 25.0 + (*v / 3.0).clamp(-4.0, 4.0);
    }
    for i in 0..400 {
        x[3 * n + (i * 7919) % n] = 30.0;
    }
    let cases = [
        (params(1.0, 0, 0.9999, 11), vec![3, 4, 3, 3]),
        (params(0.8, 0, 0.9, 12), vec![3, 4, 3, 3]),
        (params(1.7, 0, 0.3, 13), vec![3, 4, 3, 3]),
        (params(1.0, 2000, 0.95, 14), vec![3, 4, 3, 3]),
        // A top-k of the fast path: no bucket lists, the flat row's ties
        // send it to the passes over the row.
        (
            params(1.0, 50, 0.9, 15),
            vec![u32::MAX, 2, u32::MAX, u32::MAX],
        ),
    ];
    for (p, want) in &cases {
        let got = diag_tokens(&ctx, &x, rows, n, p, SamplerTuning { diag: 8, ..t });
        for r in 0..rows {
            if want[r] != u32::MAX {
                assert_eq!(got[r], want[r], "{p:?} row {r}: {got:?}");
            }
        }
        check(&ctx, &x, rows, n, p, 3, t);
        check(&ctx, &x, rows, n, p, 2, two_words);
    }
    // More blocks than `select` reads lists of: the passes over the row.
    let n = 256 * block + 5;
    let x = rng.normals(n, 3.0);
    let p = params(1.0, 0, 0.9, 16);
    assert_eq!(
        diag_tokens(&ctx, &x, 1, n, &p, SamplerTuning { diag: 8, ..t }),
        vec![2]
    );
    check(&ctx, &x, 1, n, &p, 1, t);
}

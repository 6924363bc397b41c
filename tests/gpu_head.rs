//! The decoder head on every adapter this machine has: hidden state → GEMV →
//! softmax → sample gives the CPU reference's token from the GPU's logits,
//! for one and for several sequences, and the per-token loop allocates
//! nothing after warm-up (wgpu's own resource counters and the buffer pool).

mod common;

use common::{Rng, ctx, run_wcodec};
use wcodec::codec::quant::f32_to_f16_bits;
use wcodec::cpu::gemv::{Weights, gemv_f64, rel_l2};
use wcodec::cpu::sample::{SampleParams, sample_row};
use wcodec::wgpu::gemv::{GemvOptions, GemvWeights, VecDtype};
use wcodec::wgpu::head::{AllocCounters, Head, HeadOptions};

fn f16_weights(rng: &mut Rng, rows: usize, cols: usize) -> Vec<u16> {
    rng.normals(rows * cols, 0.05)
        .iter()
        .map(|&v| f32_to_f16_bits(v))
        .collect()
}

#[test]
fn head_tokens_match_the_cpu_and_allocate_nothing_per_token() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(31);
    let (vocab, hidden) = (5003, 384);
    let w = f16_weights(&mut rng, vocab, hidden);
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), vocab, hidden, None).unwrap();
    // Ties for the maximum: rows with weight 1 at column 0 (x[0] = 100 makes
    // them the largest) and otherwise equal, inside one GEMV workgroup
    // (10, 11) and across workgroups.
    let mut wt = w.clone();
    let mut tied = wt[10 * hidden..11 * hidden].to_vec();
    tied[0] = 0x3c00;
    for r in [10, 11, 1000, 3001, vocab - 1] {
        wt[r * hidden..(r + 1) * hidden].copy_from_slice(&tied);
    }
    let gwt = GemvWeights::upload(&ctx, &Weights::F16(&wt), vocab, hidden, None).unwrap();
    let cases = [
        (
            1usize,
            SampleParams {
                temperature: 0.8,
                top_k: 50,
                top_p: 0.9,
                seed: 5,
            },
        ),
        (
            4,
            SampleParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.95,
                seed: 6,
            },
        ),
        (
            2,
            SampleParams {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
                seed: 7,
            },
        ),
    ];
    // With the row maximum from the GEMV's max partials (the default) and
    // from the sampler's own dispatch; greedy and sampling with ties.
    let tie_cases = [
        (
            3usize,
            SampleParams {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
                seed: 8,
            },
        ),
        (
            1,
            SampleParams {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
                seed: 9,
            },
        ),
        (
            2,
            SampleParams {
                temperature: 0.7,
                top_k: 40,
                top_p: 0.9,
                seed: 10,
            },
        ),
    ];
    let all = cases
        .iter()
        .map(|&(b, sp)| (b, sp, false))
        .chain(tie_cases.iter().map(|&(b, sp)| (b, sp, true)));
    for ((batch, sp, ties), fused) in all.flat_map(|c| [(c, true), (c, false)]) {
        let (w, gw) = if ties { (&wt, &gwt) } else { (&w, &gw) };
        let opts = HeadOptions {
            gemv: GemvOptions {
                batch,
                x_dtype: VecDtype::F16,
                ..Default::default()
            },
            sample: sp,
            // Both ways of waiting for a token: blocking in the driver, spinning on polls.
            block: batch == 2,
            // Both ways of reading the tokens: a copy into a readback buffer,
            // and mapping the sampler's own buffer where the device can.
            copy_tokens: batch == 4,
            no_fused_max: !fused,
            // The sampler's pre-warm (default) changes no token and no step
            // counter; the cases with ties (greedy, top-k 40) run without it.
            no_prewarm: ties,
            ..Default::default()
        };
        let mut head = Head::new(&ctx, gw, &opts).unwrap();
        assert_eq!(head.fused_max(), fused);
        let label = format!("fused max {fused} ties {ties}");
        assert_eq!(
            head.direct_read,
            batch != 4 && ctx.has(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS)
        );
        let steps: Vec<u64> = (0..batch as u64).map(|b| 100 * b).collect();
        head.set_steps(&ctx.queue, &steps).unwrap();
        let mut before = AllocCounters::default();
        for tok in 0..24u64 {
            if tok == 4 {
                ctx.wait().unwrap();
                before = AllocCounters::read(&ctx);
            }
            let mut x = rng.normals(batch * hidden, 1.0);
            if ties {
                for xb in x.chunks_mut(hidden) {
                    xb[0] = 100.0;
                }
            }
            let hidden_in = if tok % 3 == 2 {
                None
            } else {
                Some(x.as_slice())
            };
            let got = head.step(&ctx, hidden_in, tok % 5 == 0).unwrap().0.to_vec();
            // The CPU sampler on the GPU's logits must pick the same tokens.
            let logits = head.gemv.read_y(&ctx).unwrap();
            for b in 0..batch {
                let t = sample_row(
                    &logits[b * vocab..(b + 1) * vocab],
                    &sp,
                    steps[b] + tok,
                    b as u32,
                )
                .unwrap();
                assert_eq!(
                    got[b], t.token,
                    "{label} batch {batch} token {tok} sequence {b}: GPU {} CPU {t:?}",
                    got[b]
                );
                if ties && sp.temperature == 0.0 {
                    assert_eq!(got[b], 10, "{label}: greedy with ties takes the first");
                }
            }
            if let Some(x) = hidden_in {
                let xr: Vec<f32> = x
                    .iter()
                    .map(|&v| half::f16::from_bits(f32_to_f16_bits(v)).to_f32())
                    .collect();
                let want = gemv_f64(&Weights::F16(w), vocab, hidden, &xr, batch, None).unwrap();
                assert!(
                    rel_l2(&logits, &want.y) < 1e-5,
                    "batch {batch} token {tok}: logits off"
                );
            }
        }
        ctx.wait().unwrap();
        let after = AllocCounters::read(&ctx);
        // `read_y` above goes through the pool (a reused readback buffer): compare
        // device objects, which the token loop must not create.
        assert!(
            after.wgpu_counters,
            "wgpu's counters are compiled into the tests"
        );
        assert_eq!(
            (
                after.buffers,
                after.buffer_memory,
                after.bind_groups,
                after.compute_pipelines,
                after.memory_allocations
            ),
            (
                before.buffers,
                before.buffer_memory,
                before.bind_groups,
                before.compute_pipelines,
                before.memory_allocations
            ),
            "the token loop allocated: before {before:?}, after {after:?}"
        );
        assert_eq!(
            head.sampler.read_steps(&ctx).unwrap(),
            steps.iter().map(|s| s + 24).collect::<Vec<_>>()
        );
    }
}

/// The pre-warm's `select` (dummy outputs; the sampler's lists and
/// histograms of the token before, read only) walks the same path as the
/// real one: with `diag` 7 both write the path taken instead of a token.
/// Each parameter set and hidden state is held for two tokens (the
/// pre-warm reads the lists of the token before) and the sets take
/// different paths: top-k 50 the
/// local lists (0), top-k 150 overflows them (1: the row's distances).
/// Temperature alone takes the plain draw (3) and is pre-warmed along it.
/// With top-p alone or a top-k above the fast path's 512 (the general path,
/// 2) there is no pre-warm: its tokens stay as they were.
/// Greedy heads pre-warm only `prepare`, and a head
/// without the pre-warm has none.
#[test]
fn prewarm_walks_the_path_of_the_real_select() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(35);
    let (vocab, hidden) = (50257, 64);
    let w = f16_weights(&mut rng, vocab, hidden);
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), vocab, hidden, None).unwrap();
    // top-k u32::MAX here stands for temperature alone (top-k 0, top-p 1).
    let sp = |top_k| SampleParams {
        temperature: 1.0,
        top_k: if top_k == u32::MAX { 0 } else { top_k },
        top_p: if top_k == u32::MAX { 1.0 } else { 0.9 },
        seed: 3,
    };
    for batch in [1usize, 3] {
        let opts = HeadOptions {
            gemv: GemvOptions {
                batch,
                x_dtype: VecDtype::F16,
                ..Default::default()
            },
            sample: sp(50),
            sampler: wcodec::wgpu::sample::SamplerTuning {
                diag: 7,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut head = Head::new(&ctx, &gw, &opts).unwrap();
        let mut warm = head.sampler.read_prewarm_tokens(&ctx).unwrap().unwrap();
        assert_eq!(
            warm,
            vec![u32::MAX; batch],
            "poisoned before the first token"
        );
        let mut paths = Vec::new();
        for (tok, k) in [
            50,
            50,
            150,
            150,
            0,
            0,
            2000,
            2000,
            50,
            50,
            u32::MAX,
            u32::MAX,
            0,
            0,
        ]
        .into_iter()
        .enumerate()
        {
            head.sampler.set_params(&ctx.queue, &sp(k)).unwrap();
            // The same hidden state (so the same logits) for both tokens of a pair.
            let x = rng.normals(batch * hidden, 1.0);
            let hidden_in = (tok % 2 == 0).then_some(x.as_slice());
            let got = head.step(&ctx, hidden_in, false).unwrap().0.to_vec();
            assert!(got.iter().all(|&p| p == got[0]), "{got:?}");
            let before = warm.clone();
            warm = head.sampler.read_prewarm_tokens(&ctx).unwrap().unwrap();
            let label =
                format!("batch {batch} token {tok} top-k {k}: real {got:?}, pre-warm {warm:?}");
            if k == 0 || (k > 512 && k != u32::MAX) {
                assert_eq!(got[0], 2, "{label}");
                assert_eq!(warm, before, "{label}: no pre-warm off the short paths");
            } else if tok % 2 == 1 {
                assert_eq!(warm, got, "{label}");
                paths.push(got[0]);
            }
        }
        assert_eq!(
            paths,
            [0, 1, 0, 3],
            "batch {batch}: the paths the test means to cover"
        );
    }
    // Greedy: no select to pre-warm; off: nothing.
    let greedy = SampleParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 3,
    };
    for no_prewarm in [false, true] {
        let mut head = Head::new(
            &ctx,
            &gw,
            &HeadOptions {
                sample: greedy,
                no_prewarm,
                ..Default::default()
            },
        )
        .unwrap();
        let x = rng.normals(hidden, 1.0);
        head.step(&ctx, Some(&x), false).unwrap();
        let want = (!no_prewarm).then(|| vec![u32::MAX]);
        assert_eq!(head.sampler.read_prewarm_tokens(&ctx).unwrap(), want);
    }
    // With the sampler's own row maximum there is no pre-warm.
    let head = Head::new(
        &ctx,
        &gw,
        &HeadOptions {
            no_fused_max: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(head.sampler.read_prewarm_tokens(&ctx).unwrap(), None);
}

/// Regression: the commands recorded ahead for the next token depend on the
/// sampling parameters (greedy runs `prepare` alone, with one block; the
/// pre-warm depends on the top-k), so changing them between tokens must not
/// reuse a stale command buffer. A new hidden state every token (so that the
/// recorded copy matches) and parameters switched every token or two: every
/// token is the CPU's, and every step counter advanced once per token.
#[test]
fn head_switches_sampling_parameters_between_tokens() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(36);
    let (vocab, hidden) = (50257, 64);
    let w = f16_weights(&mut rng, vocab, hidden);
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), vocab, hidden, None).unwrap();
    let sp = |t: f32, k: u32, p: f32| SampleParams {
        temperature: t,
        top_k: k,
        top_p: p,
        seed: 11,
    };
    let plan = [
        sp(0.0, 0, 1.0),
        sp(0.0, 0, 1.0),
        sp(1.0, 50, 0.9),
        sp(1.0, 50, 0.9),
        sp(0.0, 0, 1.0),
        sp(0.8, 0, 0.9),
        sp(1.0, 2000, 0.95),
        sp(1.0, 50, 0.9),
        sp(0.0, 0, 1.0),
        sp(1.0, 50, 0.9),
        sp(0.9, 0, 1.0),
        sp(0.9, 0, 1.0),
        sp(1.0, 2000, 0.95),
        sp(1.1, 0, 1.0),
        sp(1.0, 50, 0.9),
    ];
    for (batch, no_prewarm) in [(1usize, false), (2, true)] {
        let mut head = Head::new(
            &ctx,
            &gw,
            &HeadOptions {
                gemv: GemvOptions {
                    batch,
                    x_dtype: VecDtype::F16,
                    ..Default::default()
                },
                sample: plan[0],
                no_prewarm,
                ..Default::default()
            },
        )
        .unwrap();
        for (tok, p) in plan.iter().enumerate() {
            // Through the head, or straight through its sampler.
            if tok % 2 == 0 {
                head.set_params(&ctx.queue, p).unwrap();
            } else {
                head.sampler.set_params(&ctx.queue, p).unwrap();
            }
            let x = rng.normals(batch * hidden, 1.0);
            let got = head.step(&ctx, Some(&x), false).unwrap().0.to_vec();
            let logits = head.gemv.read_y(&ctx).unwrap();
            for b in 0..batch {
                let want = sample_row(&logits[b * vocab..(b + 1) * vocab], p, tok as u64, b as u32)
                    .unwrap();
                assert_eq!(
                    got[b], want.token,
                    "batch {batch} token {tok} {p:?} sequence {b}: CPU {want:?}"
                );
            }
        }
        assert_eq!(
            head.sampler.read_steps(&ctx).unwrap(),
            vec![plan.len() as u64; batch]
        );
    }
}

#[test]
fn head_loop_without_readbacks_of_logits_keeps_every_counter() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(32);
    let (vocab, hidden) = (2000, 256);
    let w = f16_weights(&mut rng, vocab, hidden);
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), vocab, hidden, None).unwrap();
    let opts = HeadOptions {
        gemv: GemvOptions {
            batch: 1,
            x_dtype: VecDtype::F32,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut head = Head::new(&ctx, &gw, &opts).unwrap();
    let xs: Vec<Vec<f32>> = (0..4).map(|_| rng.normals(hidden, 1.0)).collect();
    for x in &xs {
        head.step(&ctx, Some(x), false).unwrap();
    }
    ctx.wait().unwrap();
    let before = AllocCounters::read(&ctx);
    for i in 0..40 {
        head.step(&ctx, Some(&xs[i % 4]), i % 7 == 0).unwrap();
    }
    ctx.wait().unwrap();
    let after = AllocCounters::read(&ctx);
    assert!(after.wgpu_counters);
    assert_eq!(before, after, "the token loop allocated");
    assert_eq!(head.steps_done, 44);
    // The counters do see an allocation (so the equality above means something).
    let extra = ctx
        .create_buffer("extra", 4096, wgpu::BufferUsages::STORAGE)
        .unwrap();
    let c = AllocCounters::read(&ctx);
    assert!(
        c.buffers > after.buffers && c.buffer_memory > after.buffer_memory,
        "{c:?}"
    );
    drop(extra);
}

#[test]
fn head_rejects_bad_input() {
    let Some(ctx) = ctx() else { return };
    let w = vec![0x3c00u16; 64 * 32];
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), 64, 32, None).unwrap();
    let mut head = Head::new(&ctx, &gw, &HeadOptions::default()).unwrap();
    assert!(head.step(&ctx, Some(&[1.0; 31]), false).is_err());
    assert!(head.set_steps(&ctx.queue, &[1, 2]).is_err());
    let bad = HeadOptions {
        sample: SampleParams {
            top_p: 2.0,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(Head::new(&ctx, &gw, &bad).is_err());
    // The head still works after a rejected call.
    assert!(head.step(&ctx, Some(&[1.0; 32]), false).is_ok());
}

/// The empty round trip (`step_floor`) in both ways of reading the tokens:
/// its phases are in order, and the head's next tokens are still the CPU's.
#[test]
fn floor_round_trip_in_both_read_modes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(33);
    let (vocab, hidden) = (1500, 128);
    let w = f16_weights(&mut rng, vocab, hidden);
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), vocab, hidden, None).unwrap();
    let sp = SampleParams {
        temperature: 1.0,
        top_k: 20,
        top_p: 0.9,
        seed: 9,
    };
    for copy_tokens in [false, true] {
        let opts = HeadOptions {
            gemv: GemvOptions {
                batch: 1,
                x_dtype: VecDtype::F16,
                ..Default::default()
            },
            sample: sp,
            copy_tokens,
            ..Default::default()
        };
        let mut head = Head::new(&ctx, &gw, &opts).unwrap();
        for tok in 0..6u64 {
            let t = head.step_floor(&ctx).unwrap();
            assert!(
                t.recorded <= t.submitted && t.submitted <= t.done && t.done <= t.total,
                "copy_tokens {copy_tokens}: {t:?}"
            );
            let x = rng.normals(hidden, 1.0);
            let got = head.step(&ctx, Some(&x), false).unwrap().0[0];
            let logits = head.gemv.read_y(&ctx).unwrap();
            let want = sample_row(&logits, &sp, tok, 0).unwrap().token;
            assert_eq!(got, want, "copy_tokens {copy_tokens} token {tok}");
        }
    }
}

/// `wcodec bench head` on a `vocab × hidden` head for `batch` (e.g. "1,3")
/// and `tokens` timed tokens (2 warm-up tokens, 10 ms of warming, quiet),
/// then `extra`: (success, output).
fn bench_head(
    vocab: &str,
    hidden: &str,
    batch: &str,
    tokens: &str,
    extra: &[&str],
) -> (bool, String) {
    let mut args = vec![
        "bench",
        "head",
        "--vocab",
        vocab,
        "--hidden",
        hidden,
        "--batch",
        batch,
        "--tokens",
        tokens,
        "--warmup",
        "2",
        "--warm-ms",
        "10",
        "-q",
    ];
    args.extend_from_slice(extra);
    run_wcodec(&args)
}

/// The JSON report in `bench head --json`'s output.
fn head_json(t: &str) -> serde_json::Value {
    let json = &t[t.find('{').expect("JSON")..=t.rfind('}').expect("JSON")];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {t}"))
}

/// `wcodec bench head` runs every mode it offers (fused and unfused row
/// maximum, copied tokens, blocking waits) and finds no allocation per token.
#[test]
fn bench_head_runs_every_mode() {
    let Some(ctx) = ctx() else { return };
    drop(ctx);
    for extra in [
        &["--fused-max", "on,off"][..],
        &["--copy-tokens", "--block"][..],
        &["--prewarm", "on,off"][..],
    ] {
        let (ok, t) = bench_head("700", "64", "1,3", "5", extra);
        assert!(ok, "{extra:?}: {t}");
        assert!(t.contains("allocations in loop"), "{extra:?}: {t}");
        assert!(!t.contains("YES"), "{extra:?}: {t}");
        if extra[0] == "--prewarm" {
            // One run each way per batch: the table's `warm` column.
            let warm: Vec<&str> = t
                .lines()
                .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
                .map(|l| l.split_whitespace().nth(3).unwrap_or(""))
                .collect();
            assert_eq!(warm, ["on", "off", "on", "off"], "{t}");
        }
    }
    // The column says what the head did: no pre-warm with an unfused maximum.
    let (ok, t) = bench_head(
        "700",
        "64",
        "1",
        "5",
        &["--prewarm", "on", "--fused-max", "off"],
    );
    assert!(ok, "{t}");
    let row = t
        .lines()
        .find(|l| l.trim_start().starts_with('1'))
        .unwrap_or("");
    assert_eq!(row.split_whitespace().nth(3), Some("off"), "{t}");
    // Nor for parameters that take select's general path (top-p alone);
    // temperature alone is pre-warmed along its plain draw.
    for (p, want) in [
        (["--top-k", "0", "--top-p", "0.9"], "off"),
        (["--top-k", "0", "--top-p", "1.0"], "on"),
    ] {
        let mut extra = vec!["--prewarm", "on"];
        extra.extend_from_slice(&p);
        let (ok, t) = bench_head("700", "64", "1", "5", &extra);
        assert!(ok, "{t}");
        let row = t
            .lines()
            .find(|l| l.trim_start().starts_with('1'))
            .unwrap_or("");
        assert_eq!(row.split_whitespace().nth(3), Some(want), "{p:?}: {t}");
    }
    let (ok, t) = bench_head("700", "64", "1", "5", &["--prewarm", "sometimes"]);
    assert!(!ok && t.contains("--prewarm sometimes"), "{t}");
}

/// `Head::step_parts` waits for its own work: after each part (the GEMV
/// alone, the sampler alone, both, an empty pass) nothing is left in flight
/// (a mapping of the token buffer would not have waited for a GEMV-only
/// submission), in spinning and in blocking mode; and `bench head` reports
/// the parts (the GEMV alone takes longer than an empty pass).
#[test]
fn head_parts_wait_for_their_work() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(9);
    let (rows, cols) = (32768, 1024);
    let w: Vec<u16> = rng
        .normals(rows * cols, 0.02)
        .iter()
        .map(|&v| f32_to_f16_bits(v))
        .collect();
    let gw = GemvWeights::upload(&ctx, &Weights::F16(&w), rows, cols, None).unwrap();
    for block in [false, true] {
        let mut head = Head::new(
            &ctx,
            &gw,
            &HeadOptions {
                block,
                ..Default::default()
            },
        )
        .unwrap();
        for (gemv, sampler) in [(true, false), (false, true), (true, true), (false, false)] {
            for _ in 0..3 {
                let t = head.step_parts(&ctx, gemv, sampler).unwrap();
                let st = ctx.device.poll(wgpu::PollType::Poll).unwrap();
                assert!(
                    st.is_queue_empty(),
                    "block {block} gemv {gemv} sampler {sampler}: work in flight after {t:?}"
                );
                assert!(t.done >= t.submitted && t.total >= t.done, "{t:?}");
            }
        }
    }
    drop(ctx);
    let (ok, t) = bench_head("32768", "1024", "1", "9", &["--json"]);
    assert!(ok, "{t}");
    let v = head_json(&t);
    let r = &v["runs"][0];
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    let (empty, gemv, sampler) = (f("empty_pass_us"), f("gemv_only_us"), f("sampler_only_us"));
    assert!(empty > 0.0 && gemv > empty && sampler > 0.0, "{r}");
}

/// `bench head --gemv-tunings/--sampler-tunings` runs one head per pair, in
/// order, each with the tunings asked for (reported in the JSON), and
/// refuses an index past the candidates, naming the flag.
#[test]
fn bench_head_sweeps_tunings() {
    let Some(ctx) = ctx() else { return };
    drop(ctx);
    let (ok, t) = bench_head(
        "700",
        "64",
        "1",
        "3",
        &[
            "--json",
            "--gemv-tunings",
            "1,0",
            "--sampler-tunings",
            "0,2",
        ],
    );
    assert!(ok, "{t}");
    let v = head_json(&t);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "{v}");
    let g = |i: usize| runs[i]["gemv_tuning"].as_str().unwrap().to_string();
    let s = |i: usize| runs[i]["sampler_tuning"].as_str().unwrap().to_string();
    // GEMV tuning 1 for the first two runs, 0 for the last two; samplers 0, 2, 0, 2.
    assert_eq!(g(0), g(1));
    assert_eq!(g(2), g(3));
    assert_ne!(g(0), g(2));
    assert_eq!(s(0), s(2));
    assert_eq!(s(1), s(3));
    assert_ne!(s(0), s(1));
    let (ok, t) = bench_head("700", "64", "1", "3", &["--sampler-tunings", "999"]);
    assert!(!ok && t.contains("--sampler-tunings 999"), "{t}");
}

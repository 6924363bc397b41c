//! `wcodec bench head`: the decoder head (hidden state → GEMV → softmax →
//! sample) token by token: wall time per token including the submission and
//! the 4-byte-per-sequence readback, tokens per second, GPU time per token
//! (timestamps), and the device allocations during the timed loop (none).

use serde::Serialize;

use crate::cli::bench_infer::{Stats, quantize_rows, stats, to_f16};
use crate::cpu::gemv::Weights;
use crate::cpu::sample::SampleParams;
use crate::synth::normals;
use crate::wgpu::context::{AdapterChoice, ContextOptions, GpuContext};
use crate::wgpu::gemv::GemvTuning;
use crate::wgpu::gemv::{GemvOptions, GemvWeights, ReducePath, VecDtype, WeightDtype};
use crate::wgpu::head::{AllocCounters, Head, HeadOptions};
use crate::wgpu::sample::SamplerTuning;

/// `default`, `all` or comma-separated indices below `n`.
fn pick(spec: &str, n: usize, what: &str) -> anyhow::Result<Vec<Option<usize>>> {
    match spec.trim() {
        "default" => Ok(vec![None]),
        "all" => Ok((0..n).map(Some).collect()),
        list => list
            .split(',')
            .map(|s| {
                let i: usize = s
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--{what} {s}: not an index"))?;
                anyhow::ensure!(i < n, "--{what} {i}: there are {n} candidates");
                Ok(Some(i))
            })
            .collect(),
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct HeadArgs {
    #[arg(long, default_value_t = 50257)]
    pub vocab: usize,
    #[arg(long, default_value_t = 2560)]
    pub hidden: usize,
    /// Weights: f16, f32 or i8 (int8 + per-row scales).
    #[arg(long, default_value = "f16")]
    pub dtype: String,
    /// Sequences per token step (1..=8), comma-separated for several runs.
    #[arg(long, default_value = "1,8")]
    pub batch: String,
    /// Timed tokens per run.
    #[arg(long, default_value_t = 300)]
    pub tokens: usize,
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Then keep stepping for this long before timing: an idle GPU runs at
    /// low clocks (the H100 idles at 345 MHz and needs a few hundred ms of
    /// load to reach 1980 MHz).
    #[arg(long, default_value_t = 500)]
    pub warm_ms: u64,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 50)]
    pub top_k: u32,
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep the hidden state on the device (no upload per token).
    #[arg(long)]
    pub no_upload: bool,
    /// Also write the softmax probabilities every token.
    #[arg(long)]
    pub probs: bool,
    /// Block in the driver while waiting for each token (default: spin on polls).
    #[arg(long)]
    pub block: bool,
    /// Copy the tokens into a readback buffer even where the sampler's own
    /// buffer can be mapped (MAPPABLE_PRIMARY_BUFFERS).
    #[arg(long)]
    pub copy_tokens: bool,
    /// Row maximum for the sampler: from the GEMV's max partials ("on", the
    /// default), from the sampler's own `max_part` dispatch ("off"), or
    /// both, one run each ("on,off").
    #[arg(long, default_value = "on")]
    pub fused_max: String,
    /// Same as `--fused-max off`.
    #[arg(long)]
    pub no_fused_max: bool,
    /// Pre-warm the sampler's kernels on dummy data in the shadow of the
    /// GEMV ("on", the default), or not ("off"), or both, one run each
    /// ("on,off").
    #[arg(long, default_value = "on")]
    pub prewarm: String,
    /// GEMV tunings to run the head with: indices into the GEMV's
    /// candidates for the dtype and batch (`bench kernels` lists them in
    /// order; 0 is the default), comma-separated, or "all".
    #[arg(long, default_value = "default")]
    pub gemv_tunings: String,
    /// Sampler tunings to run the head with: indices into
    /// `SamplerTuning::candidates()` (0 is the default), comma-separated,
    /// or "all". The sampler's caches are cold after the GEMV, so the best
    /// tuning here need not be the one `bench kernels` picks.
    #[arg(long, default_value = "default")]
    pub sampler_tunings: String,
    #[arg(long)]
    pub adapter: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct HeadRun {
    pub batch: usize,
    pub upload: bool,
    /// Blocking waits (else spinning polls).
    pub block: bool,
    /// Tokens mapped from the sampler's buffer (else copied to a readback buffer).
    pub direct_read: bool,
    /// The sampler's row maximum came from the GEMV's max partials.
    pub fused_max: bool,
    /// The head pre-warms the sampler's kernels in the GEMV's shadow: asked
    /// for, and the parameters allow it (a top-k of at most 512, greedy, or
    /// temperature alone; `Sampler::prewarm_applies`).
    pub prewarm: bool,
    /// The GEMV's and the sampler's tunings (Debug form).
    pub gemv_tuning: String,
    pub sampler_tuning: String,
    /// Wall time per token step, with the readback.
    pub wall: Stats,
    /// GPU time per token step (timestamps around the compute pass).
    pub gpu: Stats,
    /// Medians, µs from the step's start: command buffer submitted, next
    /// token's commands recorded (overlapping the GPU's work).
    pub submitted_us: f64,
    pub recorded_us: f64,
    /// Median µs from the step's start until the wait saw the result.
    pub done_us: f64,
    /// Median non-blocking polls per step (0 when blocking).
    pub polls: f64,
    /// The same round trip with no work: one submission of only the
    /// 4-byte-per-sequence copy, mapped and waited for the same way.
    pub floor: Stats,
    pub floor_submitted_us: f64,
    /// Round trips of parts of the head (wall time, median µs; submitted
    /// like the token step, waited for until the queue reports the work
    /// done, no readback): an empty compute pass, the GEMV alone, the
    /// sampler alone (its caches warm: no GEMV before it).
    pub empty_pass_us: f64,
    pub gemv_only_us: f64,
    pub sampler_only_us: f64,
    pub tokens_per_s: f64,
    pub before: AllocCounters,
    pub after: AllocCounters,
    pub allocated_during_loop: bool,
    pub last_tokens: Vec<u32>,
}

#[derive(Debug, Serialize)]
pub struct HeadReport {
    pub device: String,
    pub vocab: usize,
    pub hidden: usize,
    pub dtype: String,
    pub params: String,
    pub runs: Vec<HeadRun>,
}

pub fn run(a: &HeadArgs, quiet: bool) -> anyhow::Result<()> {
    let dtype = WeightDtype::parse(&a.dtype)
        .ok_or_else(|| anyhow::anyhow!("--dtype {} is not f16, f32 or i8", a.dtype))?;
    let batches: Vec<usize> = a
        .batch
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()?;
    let sp = SampleParams {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
    };
    sp.check()?;
    anyhow::ensure!(a.tokens > 0, "--tokens must be > 0");
    let ctx = GpuContext::new(&ContextOptions {
        adapter: a.adapter.map_or(AdapterChoice::Best, AdapterChoice::Index),
        ..Default::default()
    })?;
    if !quiet {
        eprintln!("device: {}", ctx.describe());
    }
    let w = normals(a.vocab * a.hidden, 0.02, 3);
    let gw = match dtype {
        WeightDtype::F32 => GemvWeights::upload(&ctx, &Weights::F32(&w), a.vocab, a.hidden, None)?,
        WeightDtype::F16 => {
            GemvWeights::upload(&ctx, &Weights::F16(&to_f16(&w)), a.vocab, a.hidden, None)?
        }
        WeightDtype::I8 => {
            let (q, s) = quantize_rows(&w, a.vocab, a.hidden)?;
            GemvWeights::upload(
                &ctx,
                &Weights::I8 { q: &q, scales: &s },
                a.vocab,
                a.hidden,
                None,
            )?
        }
    };
    drop(w);
    let x_dtype = if dtype == WeightDtype::F32 {
        VecDtype::F32
    } else {
        VecDtype::F16
    };
    let fused: Vec<bool> = if a.no_fused_max {
        vec![false]
    } else {
        a.fused_max
            .split(',')
            .map(|s| match s.trim() {
                "on" => Ok(true),
                "off" => Ok(false),
                o => Err(anyhow::anyhow!("--fused-max {o}: on or off")),
            })
            .collect::<Result<_, _>>()?
    };
    let prewarms: Vec<bool> = a
        .prewarm
        .split(',')
        .map(|s| match s.trim() {
            "on" => Ok(true),
            "off" => Ok(false),
            o => Err(anyhow::anyhow!("--prewarm {o}: on or off")),
        })
        .collect::<Result<_, _>>()?;
    let samplers = SamplerTuning::candidates();
    let sampler_picks = pick(&a.sampler_tunings, samplers.len(), "sampler-tunings")?;
    let path = if ctx.has(wgpu::Features::SUBGROUP) {
        ReducePath::Subgroup
    } else {
        ReducePath::Workgroup
    };
    let mut combos = Vec::new();
    for &batch in &batches {
        let gemvs = GemvTuning::candidates(dtype, batch as u32, path);
        for g in pick(&a.gemv_tunings, gemvs.len(), "gemv-tunings")? {
            for &s in &sampler_picks {
                for &fuse in &fused {
                    for &warm in &prewarms {
                        combos.push((
                            batch,
                            fuse,
                            warm,
                            g.map(|i| gemvs[i]),
                            s.map(|i| samplers[i]),
                        ));
                    }
                }
            }
        }
    }
    let mut runs = Vec::new();
    for (batch, fuse, prewarm, gemv_tuning, sampler_tuning) in combos {
        let opts = HeadOptions {
            gemv: GemvOptions {
                batch,
                x_dtype,
                path: ReducePath::Auto,
                tuning: gemv_tuning,
                max_partials: false,
            },
            sample: sp,
            probs: a.probs,
            block: a.block,
            copy_tokens: a.copy_tokens,
            no_fused_max: !fuse,
            no_prewarm: !prewarm,
            sampler: sampler_tuning.unwrap_or_default(),
        };
        let mut head = Head::new(&ctx, &gw, &opts)?;
        let fused_max = head.fused_max();
        // What the head does, not what was asked (none with an unfused
        // maximum, nor where the parameters take select's general path).
        let prewarm = head.sampler.prewarm_applies();
        let gemv_tuning = format!("{:?}", head.gemv.tuning);
        let sampler_tuning = format!("{:?}", opts.sampler);
        // A few distinct hidden states, rotated (uploaded per token unless --no-upload).
        let xs: Vec<Vec<f32>> = (0..4)
            .map(|i| normals(batch * a.hidden, 1.0, 100 + i))
            .collect();
        head.set_hidden(&ctx.queue, &xs[0])?;
        let upload = !a.no_upload;
        let hid = |i: usize| {
            if upload {
                Some(xs[i % xs.len()].as_slice())
            } else {
                None
            }
        };
        for i in 0..a.warmup {
            head.step(&ctx, hid(i), i % 2 == 0)?;
        }
        let tw = std::time::Instant::now();
        let mut i = 0;
        while tw.elapsed().as_millis() < a.warm_ms as u128 {
            head.step(&ctx, hid(i), false)?;
            i += 1;
        }
        ctx.wait()?;
        let before = AllocCounters::read(&ctx);
        let mut wall = Vec::with_capacity(a.tokens);
        let (mut sub, mut rec, mut done, mut polls) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let t_all = std::time::Instant::now();
        for i in 0..a.tokens {
            let t0 = std::time::Instant::now();
            head.step(&ctx, hid(i), false)?;
            wall.push(t0.elapsed().as_secs_f64());
            sub.push(head.last_timing.submitted);
            rec.push(head.last_timing.recorded);
            done.push(head.last_timing.done);
            polls.push(head.last_timing.polls as f64 * 1e-6);
        }
        let total = t_all.elapsed().as_secs_f64();
        let mut gpu = Vec::with_capacity(a.tokens);
        for i in 0..a.tokens {
            if let (_, Some(s)) = head.step(&ctx, hid(i), true)? {
                gpu.push(s);
            }
        }
        ctx.wait()?;
        let after = AllocCounters::read(&ctx);
        // The floor (after the loops' allocation check: it is not a token
        // step): the same submission/mapping/wait without the work.
        let (mut floor, mut floor_sub) = (Vec::with_capacity(a.tokens), Vec::new());
        for _ in 0..a.tokens {
            let t = head.step_floor(&ctx)?;
            floor.push(t.total);
            floor_sub.push(t.submitted);
        }
        let mut part = |g: bool, s: bool| -> anyhow::Result<f64> {
            let mut v = Vec::with_capacity(a.tokens);
            for _ in 0..a.tokens {
                v.push(head.step_parts(&ctx, g, s)?.total);
            }
            Ok(stats(&v, false).median_us)
        };
        let empty_pass_us = part(false, false)?;
        let gemv_only_us = part(true, false)?;
        let sampler_only_us = part(false, true)?;
        let direct_read = head.direct_read;
        let (last, _) = head.step(&ctx, hid(0), false)?;
        let r = HeadRun {
            batch,
            upload,
            block: a.block,
            direct_read,
            fused_max,
            prewarm,
            gemv_tuning,
            sampler_tuning,
            wall: stats(&wall, false),
            gpu: stats(&gpu, true),
            submitted_us: stats(&sub, false).median_us,
            recorded_us: stats(&rec, false).median_us,
            done_us: stats(&done, false).median_us,
            polls: stats(&polls, false).median_us,
            floor: stats(&floor, false),
            floor_submitted_us: stats(&floor_sub, false).median_us,
            empty_pass_us,
            gemv_only_us,
            sampler_only_us,
            tokens_per_s: (batch * a.tokens) as f64 / total,
            allocated_during_loop: before != after,
            before,
            after,
            last_tokens: last.to_vec(),
        };
        if !quiet {
            if a.gemv_tunings != "default" || a.sampler_tunings != "default" {
                eprintln!("  GEMV {}; sampler {}", r.gemv_tuning, r.sampler_tuning);
            }
            eprintln!(
                "  batch {batch} ({}, max {}, {}): wall {:.1} µs/token step (p90 {:.1}; submitted at {:.1}, next recorded at {:.1}, result seen at {:.1} after {:.0} polls), GPU {:.1} µs, {:.0} tokens/s; empty round trip {:.1} µs (submitted at {:.1}); round trips of an empty pass {:.1}, the GEMV alone {:.1}, the sampler alone {:.1} µs; allocations during the loop: {}",
                if r.direct_read {
                    "tokens mapped directly"
                } else {
                    "tokens copied to a readback buffer"
                },
                if r.fused_max {
                    "fused into the GEMV"
                } else {
                    "by the sampler"
                },
                if r.prewarm {
                    "sampler pre-warmed"
                } else {
                    "no pre-warm"
                },
                r.wall.median_us,
                r.wall.p90_us,
                r.submitted_us,
                r.recorded_us,
                r.done_us,
                r.polls,
                r.gpu.median_us,
                r.tokens_per_s,
                r.floor.median_us,
                r.floor_submitted_us,
                r.empty_pass_us,
                r.gemv_only_us,
                r.sampler_only_us,
                if r.allocated_during_loop {
                    "YES"
                } else {
                    "none"
                }
            );
        }
        runs.push(r);
    }
    let report = HeadReport {
        device: ctx.describe(),
        vocab: a.vocab,
        hidden: a.hidden,
        dtype: dtype.name().into(),
        params: format!(
            "T {} top-k {} top-p {} seed {}",
            a.temperature, a.top_k, a.top_p, a.seed
        ),
        runs,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("device: {}", report.device);
        println!(
            "head {}×{} {} ({}), target ≤ 150 µs per token with the readback (torch 226 µs)",
            a.vocab, a.hidden, report.dtype, report.params
        );
        println!(
            "{:>5} {:>7} {:>5} {:>5} {:>12} {:>12} {:>12} {:>12} {:>12}  allocations in loop",
            "batch",
            "upload",
            "fmax",
            "warm",
            "wall µs",
            "wall p90",
            "GPU µs",
            "tokens/s",
            "empty trip"
        );
        for r in &report.runs {
            println!(
                "{:>5} {:>7} {:>5} {:>5} {:>12.1} {:>12.1} {:>12.1} {:>12.0} {:>12.1}  {}{}",
                r.batch,
                r.upload,
                if r.fused_max { "on" } else { "off" },
                if r.prewarm { "on" } else { "off" },
                r.wall.median_us,
                r.wall.p90_us,
                r.gpu.median_us,
                r.tokens_per_s,
                r.floor.median_us,
                if r.allocated_during_loop {
                    "YES"
                } else {
                    "none"
                },
                if r.after.wgpu_counters {
                    ""
                } else {
                    " (wgpu counters not compiled in: pool bytes only)"
                }
            );
        }
    }
    if let Some(r) = report.runs.iter().find(|r| r.allocated_during_loop) {
        anyhow::bail!(
            "the token loop allocated device resources (batch {}): before {:?}, after {:?}",
            r.batch,
            r.before,
            r.after
        );
    }
    Ok(())
}

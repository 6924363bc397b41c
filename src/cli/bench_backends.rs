//! `wcodec bench --backends wgpu,cuda`: one table from one process — for
//! each kernel the wgpu (WGSL) time, the CUDA time (the NVRTC mirror of the
//! same algorithm, or cuBLAS for GEMV where it applies) and wgpu's time as a
//! ratio to CUDA's, beside the device copy bandwidth measured in the same
//! run. Decode: INT8 and BF16 weights drawn like MiniLM's, 16 MiB and 1 GiB
//! of output by default; GEMV 50257×2560 (f16, f32, int8), 4096², 14336×4096
//! and batch 8; softmax over 50257 logits (1 and 8 rows); sampling (top-k
//! 50, top-p 0.9, greedy). wgpu is timed with timestamp queries, CUDA with
//! events; both are medians of many runs, inputs rotated past the 50 MB L2
//! where they are small, and every timed output is checked (decode: byte for
//! byte against the source; GEMV and softmax: relative L2 < 1e-5 against
//! f64; sampling: the CPU's token).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::backend::Backend;
use crate::cli::bench_gpu::{make_input, parse_sizes, time_resident};
use crate::cli::bench_infer::{copy_bandwidth, quantize_rows, time_passes, to_f16};
use crate::cpu::gemv::{Weights, gemv_f64, rel_l2};
use crate::cpu::sample::{SampleParams, sample_row};
use crate::synth::normals;
#[cfg(feature = "cuda")]
use crate::wgpu::bench::median;
use crate::wgpu::context::{ContextOptions, GpuContext};
use crate::wgpu::gemv::{Gemv, GemvOptions, GemvWeights, VecDtype};
use crate::wgpu::plan::Tuning;
use crate::wgpu::sample::{Sampler, SamplerOptions};
use crate::wgpu::softmax::{Softmax, SoftmaxOptions};

/// Options of the cross-backend bench.
#[derive(Debug, Clone)]
pub struct BackendsBench {
    pub backends: Vec<Backend>,
    /// Decode output sizes.
    pub sizes: Vec<String>,
    /// Timed runs per measurement (the median is reported).
    pub reps: usize,
    /// Small shapes (a smoke run).
    pub quick: bool,
    pub json: bool,
    pub out: Option<PathBuf>,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kernel: String,
    pub size: String,
    /// Bytes moved per run (for GB/s): read + written.
    pub bytes: u64,
    pub wgpu_us: Option<f64>,
    pub wgpu_variant: String,
    pub cuda_us: Option<f64>,
    /// What CUDA ran: "NVRTC mirror", "cuBLAS sgemv", "cuMemcpyDtoD", ...
    pub cuda_path: String,
    /// wgpu time / CUDA time (> 1: wgpu slower).
    pub ratio: Option<f64>,
    pub check: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub wgpu_device: Option<String>,
    pub cuda_device: Option<String>,
    pub rows: Vec<Row>,
}

/// A measurement: µs, variant or path, check.
type Meas = Option<(f64, String, String)>;

fn gbps(bytes: u64, us: f64) -> f64 {
    bytes as f64 / (us * 1e-6) / 1e9
}

/// Enough copies that one run reads more than twice the L2.
fn copies_for(bytes: u64) -> usize {
    (100_000_000u64.div_ceil(bytes.max(1)) as usize).clamp(1, 8)
}

fn l2_check(e: f64) -> String {
    if e < 1e-5 {
        format!("ok (rel L2 {e:.1e})")
    } else {
        format!("FAIL (rel L2 {e:.1e})")
    }
}

/// The CUDA side, or the reason there is none.
#[cfg(feature = "cuda")]
type Cuda = crate::cuda::CudaBackend;
#[cfg(not(feature = "cuda"))]
type Cuda = ();

#[cfg(feature = "cuda")]
fn open_cuda() -> anyhow::Result<Cuda> {
    Ok(crate::cuda::CudaBackend::new()?)
}
#[cfg(not(feature = "cuda"))]
fn open_cuda() -> anyhow::Result<Cuda> {
    Backend::Cuda.open()?;
    unreachable!("opening CUDA fails without the feature")
}

pub fn run(a: &BackendsBench, quiet: bool) -> anyhow::Result<()> {
    for b in &a.backends {
        if *b == Backend::Cpu {
            bail!("bench --backends compares GPU backends: wgpu and cuda");
        }
    }
    let ctx = if a.backends.contains(&Backend::Wgpu) {
        Some(GpuContext::new(&ContextOptions::default()).context("opening wgpu")?)
    } else {
        None
    };
    let cuda = if a.backends.contains(&Backend::Cuda) {
        Some(open_cuda().context("opening CUDA")?)
    } else {
        None
    };
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let mut report = Report {
        wgpu_device: ctx.as_ref().map(|c| c.describe()),
        #[cfg(feature = "cuda")]
        cuda_device: cuda.as_ref().map(|c| c.describe()),
        #[cfg(not(feature = "cuda"))]
        cuda_device: None,
        rows: Vec::new(),
    };
    let reps = a.reps.max(3);
    let push = |rows: &mut Vec<Row>, kernel: &str, size: String, bytes: u64, w: Meas, c: Meas| {
        let ratio = match (&w, &c) {
            (Some((wu, ..)), Some((cu, ..))) if *cu > 0.0 => Some(wu / cu),
            _ => None,
        };
        let check = [
            w.as_ref().map(|m| format!("wgpu {}", m.2)),
            c.as_ref().map(|m| format!("cuda {}", m.2)),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        let row = Row {
            kernel: kernel.into(),
            size,
            bytes,
            wgpu_us: w.as_ref().map(|m| m.0),
            wgpu_variant: w.as_ref().map_or(String::new(), |m| m.1.clone()),
            cuda_us: c.as_ref().map(|m| m.0),
            cuda_path: c.as_ref().map_or(String::new(), |m| m.1.clone()),
            ratio,
            check,
        };
        if !quiet {
            eprintln!(
                "  {:<34} {:>8} wgpu {:>10} µs  cuda {:>10} µs  ratio {:>6}  {}",
                row.kernel,
                row.size,
                row.wgpu_us.map_or("-".into(), |v| format!("{v:.1}")),
                row.cuda_us.map_or("-".into(), |v| format!("{v:.1}")),
                row.ratio.map_or("-".into(), |v| format!("{v:.2}")),
                row.check
            );
        }
        rows.push(row);
    };

    // ---- device copy
    say("device copy bandwidth".into());
    let copy_bytes: u64 = if a.quick { 64 << 20 } else { 1 << 30 };
    let wcopy = match &ctx {
        Some(c) => Some(copy_bandwidth(c, copy_bytes, reps.min(20))?),
        None => None,
    };
    let ccopy = cuda_copy(cuda.as_ref(), copy_bytes as usize, reps.min(20))?;
    let cmeas = ccopy.map(|(_, ms)| (ms * 1e3, "cuMemcpyDtoD".to_string(), "ok".to_string()));
    if let Some(wc) = &wcopy {
        push(
            &mut report.rows,
            "device copy: wgpu copy shader",
            crate::cli::human(wc.bytes),
            2 * wc.bytes,
            Some((wc.shader.median_us, "copy_u32.wgsl".into(), "ok".into())),
            cmeas.clone(),
        );
        if let Some(d) = &wc.device {
            push(
                &mut report.rows,
                "device copy: wgpu copy command",
                crate::cli::human(wc.bytes),
                2 * wc.bytes,
                Some((d.median_us, "vkCmdCopyBuffer".into(), "ok".into())),
                cmeas.clone(),
            );
        }
    } else {
        push(
            &mut report.rows,
            "device copy",
            crate::cli::human(copy_bytes),
            2 * copy_bytes,
            None,
            cmeas,
        );
    }

    // ---- decode
    let sizes = parse_sizes(&a.sizes)?;
    let tune = Tuning::from_env()?;
    for kind in ["int8", "bf16"] {
        for (si, &bytes) in sizes.iter().enumerate() {
            say(format!("decode {kind} {}", crate::cli::human(bytes)));
            let inp = make_input(kind, bytes, "2d", 0x5eed + bytes + si as u64)?;
            let w = match &ctx {
                Some(c) => {
                    let (ms, _, _, _, variants) = time_resident(c, &inp, &tune, reps)?;
                    c.trim_pool();
                    Some((
                        ms * 1e3,
                        variants.join("; "),
                        "ok (bytes = source)".to_string(),
                    ))
                }
                None => None,
            };
            let cm = cuda_decode(cuda.as_ref(), &inp.file, &inp.data, reps)?;
            push(
                &mut report.rows,
                &format!("decode {kind}"),
                crate::cli::human(bytes),
                bytes,
                w,
                cm,
            );
        }
    }

    // ---- GEMV
    let (v, h) = if a.quick { (5003, 512) } else { (50257, 2560) };
    let (sq, big) = if a.quick {
        (512, (1434, 512))
    } else {
        (4096, (14336, 4096))
    };
    for (name, dtype, rows, cols, batch) in [
        ("gemv f16", "f16", v, h, 1usize),
        ("gemv f32", "f32", v, h, 1),
        ("gemv i8 (x f16)", "i8", v, h, 1),
        ("gemv f16", "f16", sq, sq, 1),
        ("gemv f16", "f16", big.0, big.1, 1),
        ("gemv f16 batch 8", "f16", v, h, 8),
    ] {
        say(format!("{name} {rows}x{cols}"));
        let w32 = normals(rows * cols, 0.02, 7 + rows as u64);
        let (f16w, q) = match dtype {
            "f16" => (to_f16(&w32), None),
            "i8" => (Vec::new(), Some(quantize_rows(&w32, rows, cols)?)),
            _ => (Vec::new(), None),
        };
        let wts = match dtype {
            "f16" => Weights::F16(&f16w),
            "i8" => {
                let (q, s) = q.as_ref().unwrap();
                Weights::I8 { q, scales: s }
            }
            _ => Weights::F32(&w32),
        };
        let x_f16 = dtype != "f32";
        let mut x = normals(batch * cols, 1.0, 99);
        if x_f16 {
            x.iter_mut().for_each(|v| {
                *v = half::f16::from_bits(crate::codec::quant::f32_to_f16_bits(*v)).to_f32()
            });
        }
        let want = gemv_f64(&wts, rows, cols, &x, batch, None)?;
        let wm = match &ctx {
            Some(c) => Some(wgpu_gemv(
                c, &wts, rows, cols, &x, batch, x_f16, &want.y, reps,
            )?),
            None => None,
        };
        let (cm, wbytes) = cuda_gemv(
            cuda.as_ref(),
            &wts,
            rows,
            cols,
            &x,
            batch,
            x_f16,
            &want.y,
            reps,
        )?;
        let bytes = wbytes.unwrap_or((rows * cols * wts_size(dtype)) as u64)
            + (batch * cols * if x_f16 { 2 } else { 4 }) as u64
            + (batch * rows * 4) as u64;
        push(
            &mut report.rows,
            name,
            format!("{rows}x{cols}"),
            bytes,
            wm,
            cm,
        );
    }

    // ---- softmax
    for rows in [1usize, 8] {
        let n = if a.quick { 5003 } else { 50257 };
        say(format!("softmax {rows}x{n}"));
        let x = normals(rows * n, 3.0, 5 + n as u64);
        let want = crate::cpu::softmax::softmax_f64(&x, rows, n, 1.0, false)?;
        let wm = match &ctx {
            Some(c) => {
                let s = Softmax::new(c, None, n, rows, n, &SoftmaxOptions::default())?;
                s.write_logits(&c.queue, &x)?;
                let st = time_passes(c, 5, reps, |pass, _| s.encode(pass))?;
                let e = rel_l2(&s.read_out(c)?, &want);
                Some((
                    st.median_us,
                    format!("wg{} e{}", s.tuning.wg, s.tuning.e),
                    l2_check(e),
                ))
            }
            None => None,
        };
        let cm = cuda_softmax(cuda.as_ref(), &x, rows, n, &want, reps)?;
        push(
            &mut report.rows,
            "softmax",
            format!("{rows}x{n}"),
            (rows * n * 8) as u64,
            wm,
            cm,
        );
    }

    // ---- sampling
    let n = if a.quick { 5003 } else { 50257 };
    for (label, p) in [
        (
            "sample top-k 50 top-p 0.9",
            SampleParams {
                temperature: 1.0,
                top_k: 50,
                top_p: 0.9,
                seed: 42,
            },
        ),
        (
            "sample greedy",
            SampleParams {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
                seed: 42,
            },
        ),
    ] {
        say(format!("{label} {n}"));
        let x = normals(n, 3.0, 11 + n as u64);
        let cpu = sample_row(&x, &p, 0, 0)?.token;
        let wm = match &ctx {
            Some(c) => {
                let s = Sampler::new(
                    c,
                    None,
                    n,
                    1,
                    n,
                    &p,
                    &SamplerOptions {
                        probs: false,
                        fixed_step: true,
                        ..Default::default()
                    },
                )?;
                s.write_logits(&c.queue, &x)?;
                let st = time_passes(c, 5, reps, |pass, _| s.encode(pass))?;
                let got = s.read_tokens(c)?[0];
                let check = if got == cpu {
                    format!("ok (token {got})")
                } else {
                    format!("FAIL (token {got}, CPU {cpu})")
                };
                Some((st.median_us, "default".into(), check))
            }
            None => None,
        };
        let cm = cuda_sample(cuda.as_ref(), &x, n, &p, cpu, reps)?;
        push(
            &mut report.rows,
            label,
            format!("{n}"),
            (n * 4 * 2) as u64,
            wm,
            cm,
        );
    }

    print_table(&report);
    let json = serde_json::to_string_pretty(&report)?;
    if a.json {
        println!("{json}");
    }
    if let Some(p) = &a.out {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    if report.rows.iter().any(|r| r.check.contains("FAIL")) {
        bail!("a timed kernel failed its check (rows marked FAIL)");
    }
    Ok(())
}

fn wts_size(dtype: &str) -> usize {
    match dtype {
        "f16" => 2,
        "i8" => 1,
        _ => 4,
    }
}

/// The one table.
pub fn print_table(r: &Report) {
    println!("wgpu: {}", r.wgpu_device.as_deref().unwrap_or("-"));
    println!("cuda: {}", r.cuda_device.as_deref().unwrap_or("-"));
    println!(
        "{:<32} {:>11} {:>10} {:>9} {:>10} {:>9} {:>9}  {:<20} check",
        "kernel", "size", "wgpu µs", "GB/s", "CUDA µs", "GB/s", "wgpu/CUDA", "CUDA path"
    );
    for row in &r.rows {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let g =
            |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}", gbps(row.bytes, v)));
        println!(
            "{:<32} {:>11} {:>10} {:>9} {:>10} {:>9} {:>9}  {:<20} {}",
            row.kernel,
            row.size,
            f(row.wgpu_us),
            g(row.wgpu_us),
            f(row.cuda_us),
            g(row.cuda_us),
            row.ratio.map_or("-".into(), |v| format!("{v:.2}x")),
            row.cuda_path,
            row.check
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn wgpu_gemv(
    ctx: &GpuContext,
    w: &Weights<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    x_f16: bool,
    want: &[f64],
    reps: usize,
) -> anyhow::Result<(f64, String, String)> {
    let first = GemvWeights::upload(ctx, w, rows, cols, None)?;
    let copies = copies_for(first.weight_bytes());
    let mut ws = vec![first];
    for _ in 1..copies {
        ws.push(GemvWeights::upload(ctx, w, rows, cols, None)?);
    }
    let opts = GemvOptions {
        batch,
        x_dtype: if x_f16 { VecDtype::F16 } else { VecDtype::F32 },
        ..Default::default()
    };
    let gs: Vec<Gemv> = ws
        .iter()
        .map(|w| Gemv::new(ctx, w, &opts))
        .collect::<crate::Result<_>>()?;
    for g in &gs {
        g.write_x(&ctx.queue, x)?;
    }
    let st = time_passes(ctx, 3, reps, |pass, i| gs[i % gs.len()].encode(pass))?;
    let e = rel_l2(&gs[0].read_y(ctx)?, want);
    let t = gs[0].tuning;
    let v = format!(
        "{} wg{} nr{} u{} ({copies} copies)",
        gs[0].path.name(),
        t.wg,
        t.nr,
        t.unroll
    );
    drop(gs);
    drop(ws);
    ctx.trim_pool();
    Ok((st.median_us, v, l2_check(e)))
}

#[cfg(feature = "cuda")]
fn cuda_copy(c: Option<&Cuda>, bytes: usize, reps: usize) -> anyhow::Result<Option<(f64, f64)>> {
    match c {
        Some(c) => Ok(Some(c.copy_bandwidth(bytes, reps)?)),
        None => Ok(None),
    }
}

#[cfg(feature = "cuda")]
fn cuda_decode(
    c: Option<&Cuda>,
    file: &crate::format::WcodecFile,
    data: &[u8],
    reps: usize,
) -> anyhow::Result<Meas> {
    use crate::cuda::decode::{CudaDecoder, Output};
    let Some(c) = c else { return Ok(None) };
    let per = (data.len() + file.file_len()) as u64;
    let copies = (256u64 << 20).div_ceil(per).clamp(1, 8) as usize;
    let decs: Vec<CudaDecoder> = (0..copies)
        .map(|_| CudaDecoder::new(c, file))
        .collect::<crate::Result<_>>()?;
    let preps: Vec<_> = decs
        .iter()
        .map(|d| d.prepare(0, Output::Canonical))
        .collect::<crate::Result<_>>()?;
    for (d, p) in decs.iter().zip(&preps) {
        d.launch(p)?;
        d.finish(p)?;
        if c.read(&p.out, 0, p.out_bytes)? != data {
            bail!("the CUDA decode differs from the source ({})", p.variant());
        }
    }
    let mut ms = c.time_runs(3, reps, |i| decs[i % copies].launch(&preps[i % copies]))?;
    for (d, p) in decs.iter().zip(&preps) {
        d.finish(p)?;
    }
    Ok(Some((
        median(&mut ms) * 1e3,
        format!("NVRTC mirror ({})", preps[0].variant()),
        "ok (bytes = source)".into(),
    )))
}

#[cfg(feature = "cuda")]
#[allow(clippy::too_many_arguments)]
fn cuda_gemv(
    c: Option<&Cuda>,
    w: &Weights<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    x_f16: bool,
    want: &[f64],
    reps: usize,
) -> anyhow::Result<(Meas, Option<u64>)> {
    use crate::cuda::gemv::CudaGemv;
    let Some(c) = c else { return Ok((None, None)) };
    let first = CudaGemv::new(c, w, rows, cols, None, batch, x_f16)?;
    let wb = first.weight_bytes();
    let copies = copies_for(wb);
    let mut gs = vec![first];
    for _ in 1..copies {
        gs.push(CudaGemv::new(c, w, rows, cols, None, batch, x_f16)?);
    }
    for g in &gs {
        g.write_x(c, x)?;
    }
    let mut ms = c.time_runs(3, reps, |i| gs[i % copies].launch(c))?;
    gs[0].poison_y(c)?;
    gs[0].launch(c)?;
    let e = rel_l2(&gs[0].read_y(c)?, want);
    Ok((
        Some((
            median(&mut ms) * 1e3,
            format!("{} ({copies} copies)", gs[0].path.name()),
            l2_check(e),
        )),
        Some(wb),
    ))
}

#[cfg(feature = "cuda")]
fn cuda_softmax(
    c: Option<&Cuda>,
    x: &[f32],
    rows: usize,
    n: usize,
    want: &[f64],
    reps: usize,
) -> anyhow::Result<Meas> {
    use crate::cuda::softmax::CudaSoftmax;
    let Some(c) = c else { return Ok(None) };
    let s = CudaSoftmax::new(c, n, rows, 1.0, false, Default::default())?;
    s.write_logits(c, x)?;
    let mut ms = c.time_runs(5, reps, |_| s.launch(c))?;
    c.memset(&s.out, 0, 0xff, rows * n * 4)?;
    s.launch(c)?;
    let e = rel_l2(&s.read_out(c)?, want);
    Ok(Some((
        median(&mut ms) * 1e3,
        format!("NVRTC mirror (wg{} e{})", s.tuning.wg, s.tuning.e),
        l2_check(e),
    )))
}

#[cfg(feature = "cuda")]
fn cuda_sample(
    c: Option<&Cuda>,
    x: &[f32],
    n: usize,
    p: &SampleParams,
    cpu: u32,
    reps: usize,
) -> anyhow::Result<Meas> {
    use crate::cuda::sample::CudaSampler;
    let Some(c) = c else { return Ok(None) };
    let s = CudaSampler::new(c, n, 1, p, false, Default::default())?;
    s.write_logits(c, x)?;
    let mut ms = c.time_runs(5, reps, |_| s.launch(c))?;
    c.memset(&s.tokens, 0, 0xff, 4)?;
    s.launch(c)?;
    let got = s.read_tokens(c)?[0];
    let check = if got == cpu {
        format!("ok (token {got})")
    } else {
        format!("FAIL (token {got}, CPU {cpu})")
    };
    Ok(Some((median(&mut ms) * 1e3, "NVRTC mirror".into(), check)))
}

#[cfg(not(feature = "cuda"))]
fn cuda_copy(_: Option<&Cuda>, _: usize, _: usize) -> anyhow::Result<Option<(f64, f64)>> {
    Ok(None)
}
#[cfg(not(feature = "cuda"))]
fn cuda_decode(
    _: Option<&Cuda>,
    _: &crate::format::WcodecFile,
    _: &[u8],
    _: usize,
) -> anyhow::Result<Meas> {
    Ok(None)
}
#[cfg(not(feature = "cuda"))]
#[allow(clippy::too_many_arguments)]
fn cuda_gemv(
    _: Option<&Cuda>,
    _: &Weights<'_>,
    _: usize,
    _: usize,
    _: &[f32],
    _: usize,
    _: bool,
    _: &[f64],
    _: usize,
) -> anyhow::Result<(Meas, Option<u64>)> {
    Ok((None, None))
}
#[cfg(not(feature = "cuda"))]
fn cuda_softmax(
    _: Option<&Cuda>,
    _: &[f32],
    _: usize,
    _: usize,
    _: &[f64],
    _: usize,
) -> anyhow::Result<Meas> {
    Ok(None)
}
#[cfg(not(feature = "cuda"))]
fn cuda_sample(
    _: Option<&Cuda>,
    _: &[f32],
    _: usize,
    _: &SampleParams,
    _: u32,
    _: usize,
) -> anyhow::Result<Meas> {
    Ok(None)
}

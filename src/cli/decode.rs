//! `wcodec decode`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::backend::Backend;
use crate::codec::decoder::{decode_tensor, output_tensors, render};
use crate::cpu::decode::{DecodeOptions, decode_to_safetensors};
use crate::dtype::DType;
use crate::format::WcodecFile;

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Input .wcodec file; without one, the embedded sample is decoded and verified.
    pub input: Option<PathBuf>,
    /// Output safetensors file (default: the input with extension .safetensors,
    /// or wcodec-sample.safetensors for the sample).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output dtype: f32, f16 or bf16 cast float tensors; int8 writes quantised
    /// tensors as int8 plus `<name>.scale` (per row), lossy tensors as int8
    /// plus `<name>.tile_scale` (per 64×64 tile). Default: each tensor's source dtype.
    #[arg(long, value_parser = ["f32", "f16", "bf16", "int8"])]
    pub dtype: Option<String>,
    /// Where to decode: auto (the best GPU, else the CPU, saying why), gpu, or cpu.
    #[arg(long, default_value = "auto", value_parser = ["auto", "gpu", "cpu"])]
    pub device: String,
    /// GPU adapter number (see `wcodec devices`); implies a GPU decode.
    #[arg(long)]
    pub adapter: Option<usize>,
    /// The backend: cpu, wgpu or cuda (overrides --device; default:
    /// `WCODEC_BACKEND` if it names one backend).
    #[arg(long, value_parser = ["cpu", "wgpu", "cuda"])]
    pub backend: Option<String>,
}

/// The GPU context `--device` asks for: `None` for the CPU. Under `auto` a
/// missing GPU, or only a software one, means the CPU, with one line saying why.
fn gpu_for(
    a: &DecodeArgs,
    device: &str,
    quiet: bool,
) -> anyhow::Result<Option<crate::wgpu::GpuContext>> {
    use crate::wgpu::context::{AdapterChoice, ContextOptions, GpuContext};
    let device = if a.adapter.is_some() && device == "auto" {
        "gpu"
    } else {
        device
    };
    let opts = ContextOptions {
        adapter: a.adapter.map_or(AdapterChoice::Best, AdapterChoice::Index),
        ..Default::default()
    };
    match device {
        "cpu" => Ok(None),
        "gpu" => Ok(Some(GpuContext::new(&opts)?)),
        _ => match GpuContext::new(&opts) {
            Ok(c) if c.info.device_type == wgpu::DeviceType::Cpu => {
                if !quiet {
                    eprintln!(
                        "wcodec: decoding on the CPU: the only GPU adapter is a software one ({}); --device gpu uses it",
                        c.info.name
                    );
                }
                Ok(None)
            }
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                if !quiet {
                    eprintln!("wcodec: decoding on the CPU: {e}");
                }
                Ok(None)
            }
        },
    }
}

pub fn run(a: &DecodeArgs, quiet: bool) -> anyhow::Result<()> {
    let dtype = a
        .dtype
        .as_deref()
        .map(|s| DType::parse_cli(s).expect("clap checked the value"));
    let opts = DecodeOptions {
        dtype,
        ..Default::default()
    };
    let (file, out, sample) = match &a.input {
        Some(p) => {
            let f = WcodecFile::open(p)?;
            (
                f,
                a.output
                    .clone()
                    .unwrap_or_else(|| super::default_output(p, "safetensors")),
                false,
            )
        }
        None => {
            let f = WcodecFile::from_bytes(crate::sample::SAMPLE.to_vec())
                .context("the embedded sample")?;
            (
                f,
                a.output
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("wcodec-sample.safetensors")),
                true,
            )
        }
    };
    let total: u64 = file.tensors.iter().map(|t| t.source_bytes() as u64).sum();
    let backend = match &a.backend {
        Some(s) => Some(Backend::parse(s)?),
        None => match Backend::from_env()? {
            Some(v) if v.len() == 1 => Some(v[0]),
            Some(v) => bail!(
                "{} names {} backends; decode takes one (--backend)",
                crate::backend::ENV,
                v.len()
            ),
            None => None,
        },
    };
    let device = match backend {
        Some(Backend::Cpu) => "cpu",
        Some(Backend::Wgpu) => "gpu",
        Some(Backend::Cuda) => "cuda",
        None => a.device.as_str(),
    };
    let gpu = if device == "cuda" {
        None
    } else {
        gpu_for(a, device, quiet)?
    };
    let pb = super::progress(total, quiet, "decode");
    let t0 = std::time::Instant::now();
    let what = || {
        format!(
            "decoding {}",
            a.input
                .as_ref()
                .map_or("the embedded sample".into(), |p| p.display().to_string())
        )
    };
    let cuda_result = if device == "cuda" {
        Some(decode_cuda(&file, &out, dtype, &pb).with_context(what)?)
    } else {
        None
    };
    let gpu_result = match &gpu {
        Some(ctx) => {
            let run = || -> crate::Result<String> {
                let mut dec =
                    crate::wgpu::GpuDecoder::new(ctx, crate::wgpu::GpuDecodeOptions::from_env()?)?;
                let r = crate::wgpu::decode_to_safetensors(&mut dec, &file, &out, dtype, &|b| {
                    pb.inc(b as u64)
                })?;
                Ok(format!(
                    "{} ({} path, {} chunks, working memory {} on the device + {} staging)",
                    ctx.info.name,
                    dec.path().name(),
                    r.chunks,
                    super::human(r.peak_working_bytes),
                    super::human(r.staging_bytes)
                ))
            };
            match run() {
                Ok(s) => Some(s),
                // under auto, a limit of the GPU path (not a bad file) falls back to the CPU
                Err(crate::Error::Gpu(m)) if device == "auto" && a.adapter.is_none() => {
                    if !quiet {
                        eprintln!("wcodec: decoding on the CPU: the GPU decode failed: {m}");
                    }
                    pb.set_position(0);
                    None
                }
                Err(e) => return Err(anyhow::Error::new(e).context(what())),
            }
        }
        None => None,
    };
    let on = match cuda_result.or(gpu_result) {
        Some(s) => s,
        None => {
            decode_to_safetensors(&file, &out, &opts, &|b| pb.inc(b as u64)).with_context(what)?;
            "the cpu".to_string()
        }
    };
    pb.finish_and_clear();
    let dt = t0.elapsed().as_secs_f64();
    if sample {
        verify_output(&file, &out, dtype)?;
    }
    if !quiet {
        let what = match &a.input {
            Some(p) => p.display().to_string(),
            None => format!(
                "the embedded sample ({}, {} bytes)",
                crate::sample::SAMPLE_PATH,
                crate::sample::SAMPLE.len()
            ),
        };
        println!(
            "decoded {} tensors from {what} on {on}: {} in {:.3} s ({:.0} MB/s) to {}",
            file.tensors.len(),
            super::human(total),
            dt,
            total as f64 / dt / 1e6,
            out.display()
        );
        if sample {
            let mut by_enc = std::collections::BTreeMap::new();
            for t in &file.tensors {
                *by_enc.entry(t.encoding.name()).or_insert(0) += 1;
            }
            println!("  encodings: {by_enc:?}");
            println!(
                "  verified: every tensor's checksum matches, and the written file reads back with the same bytes"
            );
        }
    }
    Ok(())
}

/// Decode on CUDA (canonical bytes on the device, rendered on the host).
#[cfg(feature = "cuda")]
fn decode_cuda(
    file: &WcodecFile,
    out: &std::path::Path,
    dtype: Option<DType>,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<String> {
    let c = crate::cuda::CudaBackend::new()?;
    crate::cuda::decode::decode_to_safetensors(&c, file, out, dtype, &|b| pb.inc(b as u64))?;
    Ok(c.describe())
}

#[cfg(not(feature = "cuda"))]
fn decode_cuda(
    _file: &WcodecFile,
    _out: &std::path::Path,
    _dtype: Option<DType>,
    _pb: &indicatif::ProgressBar,
) -> anyhow::Result<String> {
    Ok(Backend::Cuda.open().map(|_| String::new())?)
}

/// Read `out` back and compare every written tensor with a fresh reference
/// decode (whose checksum is verified) rendered the same way.
fn verify_output(
    file: &WcodecFile,
    out: &std::path::Path,
    dtype: Option<DType>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(out).with_context(|| format!("reading back {}", out.display()))?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).context("the written file does not parse")?;
    for (t, e) in file.tensors.iter().enumerate() {
        let want = render(e, decode_tensor(file, t)?, dtype);
        for (o, w) in output_tensors(e, dtype).iter().zip(want) {
            let v = st
                .tensor(&o.name)
                .with_context(|| format!("tensor {} missing from the output", o.name))?;
            if v.data() != w.as_slice() || v.shape() != o.shape.as_slice() {
                bail!(
                    "tensor {}: the written bytes differ from the reference decode",
                    o.name
                );
            }
        }
    }
    Ok(())
}

//! `wcodec bench`: `--cpu` measures the CPU codec against zstd on the same
//! bytes, in the same run.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::codec::checksum;
use crate::codec::encoder::{EncodeOptions, EncodedTensor, encode_tensor, floats_to_f32};
use crate::codec::quant::quantize;
use crate::dtype::DType;
use crate::error::Location;
use crate::format::WcodecFile;
use crate::format::writer::to_bytes;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: Option<BenchWhat>,
    /// Benchmark the CPU encoder and decoder against zstd -3 and -19.
    #[arg(long)]
    pub cpu: bool,
    /// A safetensors model whose 2-D float tensors are quantised to per-row
    /// absmax INT8 for the CPU bench (default: all-MiniLM-L6-v2 from the fetch
    /// cache if present, else synthetic weights drawn like it).
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// Size of the synthetic INT8 input in MiB, when no model is used.
    #[arg(long, default_value_t = 64)]
    pub size_mib: usize,
    /// Timed repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// One table comparing GPU backends (wgpu, cuda) on decode, GEMV,
    /// softmax and sampling, with the device copy bandwidth.
    #[arg(long)]
    pub backends: Option<String>,
    /// Decode output sizes for --backends (K, M, G: powers of 1024).
    #[arg(long, value_delimiter = ',', default_values = ["16M", "1G"])]
    pub sizes: Vec<String>,
    /// Timed runs per measurement for --backends (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub gpu_reps: usize,
    /// Small shapes for --backends (a smoke run).
    #[arg(long)]
    pub quick: bool,
    /// Also write the --backends table as JSON to this file.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// Rate–distortion table of a model: lossy against absmax INTk, fixed and entropy-coded.
    Rd(super::bench_rd::RdArgs),
    /// GPU benchmarks.
    #[command(flatten)]
    Gpu(super::bench_gpu::GpuBench),
}

/// One measured row.
#[derive(Serialize, Debug, Clone)]
pub struct Row {
    pub what: String,
    pub threads: usize,
    /// Megabytes (10^6) of uncompressed data per second.
    pub mb_per_s: f64,
    pub ratio: f64,
}

#[derive(Serialize, Debug)]
pub struct CpuReport {
    pub machine: String,
    pub cores: usize,
    pub data: String,
    pub bytes: usize,
    pub rows: Vec<Row>,
    /// Decode throughput on all cores over one core.
    pub decode_scaling: f64,
}

pub fn run(a: &BenchArgs, quiet: bool) -> anyhow::Result<()> {
    match &a.what {
        Some(BenchWhat::Rd(r)) => return super::bench_rd::run(r, quiet),
        Some(BenchWhat::Gpu(g)) => return super::bench_gpu::run(g, quiet),
        None => {}
    }
    if let Some(b) = &a.backends {
        let opts = super::bench_backends::BackendsBench {
            backends: crate::backend::Backend::parse_list(b)?,
            sizes: a.sizes.clone(),
            reps: a.gpu_reps,
            quick: a.quick,
            json: a.json,
            out: a.out.clone(),
        };
        return super::bench_backends::run(&opts, quiet);
    }
    anyhow::ensure!(
        a.cpu,
        "say what to benchmark: --cpu, --backends wgpu,cuda, decode, load or rd FILE"
    );
    let r = cpu_bench(a, quiet)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "machine: {} ({} cores); data: {} ({} bytes)",
            r.machine, r.cores, r.data, r.bytes
        );
        println!(
            "{:<44} {:>7} {:>10} {:>8}",
            "what", "threads", "MB/s", "ratio"
        );
        for row in &r.rows {
            println!(
                "{:<44} {:>7} {:>10.0} {:>8.4}",
                row.what, row.threads, row.mb_per_s, row.ratio
            );
        }
        println!(
            "decode scaling, {} cores over 1: {:.2}x",
            r.cores, r.decode_scaling
        );
    }
    Ok(())
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `reps` runs of `f` (after one warm-up run).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .expect("a thread pool")
}

/// Tensors to measure: (name, shape, bytes).
type Tensors = Vec<(String, Vec<usize>, Vec<u8>)>;

/// The INT8 tensors to measure, with a description of where they came from.
fn int8_data(a: &BenchArgs) -> anyhow::Result<(String, Tensors)> {
    let model = a.model.clone().or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = std::env::var_os("WCODEC_CACHE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(home).join(".cache/wcodec"))
            .join("all-MiniLM-L6-v2/model.safetensors");
        p.exists().then_some(p)
    });
    if let Some(p) = model {
        let m = crate::io::safetensors::SafeInput::open(&p)?;
        let mut out = Vec::new();
        for t in m
            .tensors
            .iter()
            .filter(|t| t.dtype.is_split_float() && t.shape.len() == 2)
        {
            let w = floats_to_f32(t.dtype, m.data(t));
            let q = quantize(
                &w,
                t.shape[0],
                t.shape[1],
                8,
                &Location::tensor(&t.name, "data"),
            )?;
            out.push((t.name.clone(), t.shape.clone(), q.q));
        }
        anyhow::ensure!(!out.is_empty(), "{} has no 2-D float tensors", p.display());
        Ok((format!("per-row absmax INT8 of {}", p.display()), out))
    } else {
        let n = a.size_mib << 20;
        let v = crate::synth::int8_weights(n, 1);
        Ok((
            format!("{} MiB of INT8 drawn like all-MiniLM-L6-v2", a.size_mib),
            vec![("synthetic".into(), vec![n / 4096, 4096], v)],
        ))
    }
}

fn cpu_bench(a: &BenchArgs, quiet: bool) -> anyhow::Result<CpuReport> {
    let (desc, tensors) = int8_data(a)?;
    let bytes: usize = tensors.iter().map(|t| t.2.len()).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = EncodeOptions::default();
    let mut rows = Vec::new();
    let say = |m: &str| {
        if !quiet {
            eprintln!("bench: {m}");
        }
    };
    let one = pool(1);
    let all = pool(cores);

    say("wcodec encode, 1 thread");
    let mut enc: Vec<EncodedTensor> = Vec::new();
    let t_enc = one.install(|| {
        time(a.reps.min(3), || {
            enc = tensors
                .iter()
                .map(|(n, s, b)| encode_tensor(n, DType::I8, s, b, &opts).unwrap())
                .collect();
        })
    });
    let stored: usize = enc.iter().map(|e| e.coded_bytes()).sum();
    let ratio = bytes as f64 / stored as f64;
    rows.push(Row {
        what: "wcodec encode (int8)".into(),
        threads: 1,
        mb_per_s: bytes as f64 / t_enc / 1e6,
        ratio,
    });
    let file = WcodecFile::from_bytes(to_bytes(None, &enc)?)
        .context("reading back the encoded bench file")?;
    let mut outs: Vec<Vec<u8>> = file
        .tensors
        .iter()
        .map(|t| vec![0u8; t.decoded_bytes()])
        .collect();
    let decode_all = |outs: &mut Vec<Vec<u8>>| {
        for (i, o) in outs.iter_mut().enumerate() {
            crate::codec::decoder::decode_tensor_into(&file, i, o).expect("bench data decodes");
        }
    };
    let mut dec = Vec::new();
    for (threads, p) in [(1usize, &one), (cores, &all)] {
        say(&format!("wcodec decode, {threads} threads"));
        let t = p.install(|| time(a.reps, || decode_all(&mut outs)));
        dec.push(bytes as f64 / t / 1e6);
        rows.push(Row {
            what: "wcodec decode (int8, checksum verified)".into(),
            threads,
            mb_per_s: dec[dec.len() - 1],
            ratio,
        });
    }
    for (o, t) in outs.iter().zip(&tensors) {
        anyhow::ensure!(*o == t.2, "decode mismatch in {}", t.0);
    }
    let concat: Vec<u8> = tensors.iter().flat_map(|t| t.2.iter().copied()).collect();
    for level in [3, 19] {
        say(&format!("zstd -{level}"));
        let mut c = Vec::new();
        let t_c = time(if level == 19 { 1 } else { a.reps.min(3) }, || {
            c = zstd::bulk::compress(&concat, level).unwrap()
        });
        let mut d = vec![0u8; concat.len()];
        let t_d = time(a.reps, || {
            let n = zstd::bulk::Decompressor::new()
                .unwrap()
                .decompress_to_buffer(&c, &mut d)
                .unwrap();
            assert_eq!(n, concat.len());
        });
        // The same integrity check the wcodec decode does.
        anyhow::ensure!(checksum(&d) == checksum(&concat), "zstd round trip failed");
        let r = concat.len() as f64 / c.len() as f64;
        rows.push(Row {
            what: format!("zstd -{level} encode"),
            threads: 1,
            mb_per_s: concat.len() as f64 / t_c / 1e6,
            ratio: r,
        });
        rows.push(Row {
            what: format!("zstd -{level} decode"),
            threads: 1,
            mb_per_s: concat.len() as f64 / t_d / 1e6,
            ratio: r,
        });
    }
    Ok(CpuReport {
        machine: machine(),
        cores,
        data: desc,
        bytes,
        rows,
        decode_scaling: dec[1] / dec[0],
    })
}

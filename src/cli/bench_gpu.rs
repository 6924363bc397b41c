//! `wcodec bench decode` and `wcodec bench load`: the GPU decoder's speed.
//!
//! * `decode`: INT8 weights drawn from MiniLM's INT8 histogram and BF16
//!   weights drawn from its exponent histogram (never zeros), 16 MiB, 256 MiB
//!   and 1 GiB of output each: GPU time of the decode alone (timestamp
//!   queries, input resident, buffers rotated past the L2), wall time with
//!   upload and readback, output GB/s, the device copy bandwidth measured in
//!   the same run and decode traffic as a fraction of it, the compression
//!   ratio, and nvCOMP's figures beside them. `--probes` also times the
//!   fast kernel with one stage removed at a time (no output writes, no
//!   table lookups, no staging, no decode), to show what limits it;
//!   `--sweep` times kernel variants on the largest input of each kind.
//!   Every decode (not the probes) is checked byte for byte against its source.
//! * `load`: a model into GPU buffers from its `.wcodec`, against plain wgpu
//!   uploads of its safetensors.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::codec::decoder::{decode_tensor, render};
use crate::codec::encoder::{EncodeOptions, encode_tensor};
use crate::dtype::DType;
use crate::format::WcodecFile;
use crate::io::safetensors::SafeInput;
use crate::wgpu::bench::{copy_bandwidth, median};
use crate::wgpu::benchdata::{bf16_weights, int8_weights, lossy_weights};
use crate::wgpu::context::{AdapterChoice, ContextOptions, GpuContext, GpuTimer};
use crate::wgpu::plan::{Tuning, parse_path};
use crate::wgpu::shaders::{DecodePath, FastProbe};
use crate::wgpu::{GpuDecodeOptions, GpuDecoder, read_tensor};

#[derive(clap::Subcommand, Debug)]
pub enum GpuBench {
    /// GPU decode speed on INT8 and BF16 weights (16 MiB, 256 MiB, 1 GiB).
    Decode(DecodeBenchArgs),
    /// Load a model into GPU buffers: from its .wcodec vs plain uploads of its safetensors.
    Load(LoadBenchArgs),
    /// Inference kernels: GEMV (f32/f16/int8, batch 1 and 8), compressed GEMV, softmax, sampling.
    Kernels(crate::cli::bench_kernels::KernelsArgs),
    /// The decoder head token by token: latency, tokens/s, allocations.
    Head(crate::cli::bench_head::HeadArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct DecodeBenchArgs {
    /// Output sizes (K, M, G suffixes: powers of 1024).
    #[arg(long, value_delimiter = ',', default_values = ["16M", "256M", "1G"])]
    pub sizes: Vec<String>,
    /// Weight kinds: int8 (lossless INT8), bf16 (lossless BF16) and lossy
    /// (an F32 tensor coded lossily, with transform tiles, whose file is
    /// about as large as the int8 file of the same size; decoded to int8
    /// pixels and compared with the int8 decode's speed).
    #[arg(long, value_delimiter = ',', default_values = ["int8", "bf16"])]
    pub kinds: Vec<String>,
    /// Add the lossy kind (same as listing it in --kinds).
    #[arg(long)]
    pub lossy: bool,
    /// Bits per weight of the lossy kind's file (at 2, about half of the
    /// tiles of the benchmark's weights get a transform, as on MiniLM).
    #[arg(long, default_value_t = 2.0)]
    pub lossy_bpw: f64,
    /// Timed decodes per input (GPU time; the median is reported), each
    /// input after 0.5 s of untimed decodes that bring the GPU clock to boost.
    #[arg(long, default_value_t = 100)]
    pub reps: usize,
    /// Wall-clock decodes per input (upload + decode + readback).
    #[arg(long, default_value_t = 3)]
    pub wall_reps: usize,
    /// GPU adapter number (see `wcodec devices`).
    #[arg(long)]
    pub adapter: Option<usize>,
    /// Force a decode path.
    #[arg(long, value_parser = ["subgroup", "workgroup"])]
    pub path: Option<String>,
    /// Layout of the weights: 2d (rows of 4096, 64x64 tiles) or 1d (4096-symbol tiles).
    #[arg(long, default_value = "2d", value_parser = ["2d", "1d"])]
    pub layout: String,
    /// Also time kernel variants on the largest input of each kind.
    #[arg(long)]
    pub sweep: bool,
    /// Only the sweep variants whose names contain one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub sweep_only: Vec<String>,
    /// Also time the fast kernel with one stage removed at a time, on every
    /// input (the outputs of these are wrong and not checked).
    #[arg(long)]
    pub probes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the raw bytes of every int8 and bf16 input (exactly the bytes
    /// the timed run decodes, for the same --sizes) to this directory, with
    /// `manifest.json` (kind, bytes, file, xxh3-64), and exit without timing
    /// anything: the inputs of `scripts/peers_nvcomp.py`.
    #[arg(long)]
    pub dump_inputs: Option<PathBuf>,
    /// nvCOMP measured on the same bytes in this run: the JSON written by
    /// `scripts/peers_nvcomp.py`. Each of its entries must carry the
    /// xxh3-64 of this run's input of its kind and size. Without it the
    /// table quotes nvCOMP 6.0.0's H100 figures from run 62 (BENCHMARKS.md).
    #[arg(long)]
    pub peers: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct LoadBenchArgs {
    /// The model: a safetensors file, or a lossless .wcodec (its safetensors
    /// is then decoded on the CPU to a temporary file, untimed).
    pub model: PathBuf,
    /// The model's .wcodec, when `model` is safetensors (default: encode it
    /// losslessly to a temporary file first, untimed).
    #[arg(long)]
    pub wcodec: Option<PathBuf>,
    /// Timed loads of each kind (the first, with pipeline compilation, is reported apart).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// GPU adapter number (see `wcodec devices`).
    #[arg(long)]
    pub adapter: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(b: &GpuBench, quiet: bool) -> anyhow::Result<()> {
    match b {
        GpuBench::Decode(a) => decode(a, quiet),
        GpuBench::Load(a) => load(a, quiet),
        GpuBench::Kernels(a) => crate::cli::bench_kernels::run(a, quiet),
        GpuBench::Head(a) => crate::cli::bench_head::run(a, quiet),
    }
}

pub(crate) fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1u64 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1u64 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("size {s:?}"))?;
    Ok(n * mul)
}

fn context(adapter: Option<usize>) -> anyhow::Result<GpuContext> {
    let opts = ContextOptions {
        adapter: adapter.map_or(AdapterChoice::Best, AdapterChoice::Index),
        ..Default::default()
    };
    Ok(GpuContext::new(&opts)?)
}

/// One nvCOMP measurement from `scripts/peers_nvcomp.py`.
#[derive(serde::Deserialize, Serialize, Clone, Debug)]
struct PeerEntry {
    kind: String,
    bytes: u64,
    xxh3: String,
    /// e.g. "nvCOMP 6.0.0 ANS |u1".
    codec: String,
    /// The entry the table quotes for its input (the script marks one per
    /// input: `|u1` for int8, `<f2` for bf16, nvCOMP's float mode).
    primary: bool,
    compressed_bytes: u64,
    ratio: f64,
    /// Median GPU time of one decode (CUDA events), and output GB/s.
    decode_ms: f64,
    decode_gbs: f64,
    /// The decode matched the input byte for byte.
    verified: bool,
    /// The GPU the script ran on (torch's device name).
    #[serde(default)]
    device: String,
}

/// The peers file, checked: readable, JSON of the right form, every
/// entry verified and of sane figures.
fn read_peers(path: &std::path::Path) -> anyhow::Result<Vec<PeerEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the peers file {}", path.display()))?;
    let v: Vec<PeerEntry> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not the JSON of scripts/peers_nvcomp.py",
            path.display()
        )
    })?;
    for e in &v {
        if !e.verified {
            bail!(
                "{}: {} {} {}: the peer's decode did not match its input",
                path.display(),
                e.codec,
                e.kind,
                e.bytes
            );
        }
        if !(e.decode_gbs.is_finite() && e.decode_gbs > 0.0 && e.ratio.is_finite() && e.ratio > 0.0)
        {
            bail!(
                "{}: {} {} {}: decode_gbs {} / ratio {} are not positive numbers",
                path.display(),
                e.codec,
                e.kind,
                e.bytes,
                e.decode_gbs,
                e.ratio
            );
        }
    }
    Ok(v)
}

/// The peers file's primary entry for this input, after checking that it
/// was measured on the same bytes.
fn measured_peer<'a>(
    peers: &'a [PeerEntry],
    path: &std::path::Path,
    kind: &str,
    data: &[u8],
) -> anyhow::Result<Option<&'a PeerEntry>> {
    let ours = crate::codec::checksum_string(crate::codec::checksum(data));
    for e in peers
        .iter()
        .filter(|e| e.kind == kind && e.bytes == data.len() as u64)
    {
        if e.xxh3 != ours {
            bail!(
                "{}: {} {} {}: measured on bytes of {} but this run's input is {ours} (dump and bench with the same --sizes)",
                path.display(),
                e.codec,
                kind,
                e.bytes,
                e.xxh3
            );
        }
    }
    Ok(peers
        .iter()
        .find(|e| e.primary && e.kind == kind && e.bytes == data.len() as u64))
}

/// Where the quoted nvCOMP figures come from when no `--peers` file is given.
const QUOTED_PEER: &str = "nvCOMP 6.0.0 ANS, H100, BENCHMARKS.md run 62";

/// nvCOMP 6.0.0's ANS on this benchmark's inputs on the H100 (run 62,
/// scripts/peers_nvcomp.py: int8 as `|u1`, bf16 in its `<f2` float mode; the
/// figures CODEC.md §10 gave, 151-528 GB/s, were an older nvCOMP's), and the
/// issue's targets.
fn peer(kind: &str, bytes: u64) -> (Option<f64>, Option<f64>, Option<f64>) {
    // (nvCOMP GB/s, nvCOMP ratio, target GB/s)
    match (kind, bytes) {
        ("int8", b) if b == 1 << 30 => (Some(983.5), Some(1.0583), Some(550.0)),
        ("int8", b) if b == 256 << 20 => (Some(756.0), Some(1.0583), None),
        ("int8", b) if b == 128 << 20 => (Some(646.5), Some(1.0583), None),
        ("int8", b) if b == 16 << 20 => (Some(178.7), Some(1.0583), Some(160.0)),
        ("bf16", b) if b == 1 << 30 => (Some(1331.1), Some(1.4439), Some(550.0)),
        ("bf16", b) if b == 256 << 20 => (Some(975.5), Some(1.4439), None),
        ("bf16", b) if b == 128 << 20 => (Some(776.7), Some(1.4440), None),
        ("bf16", b) if b == 16 << 20 => (Some(215.1), Some(1.4440), None),
        _ => (None, None, None),
    }
}

#[derive(Serialize, Clone)]
struct DecodeResult {
    kind: String,
    layout: String,
    output_bytes: u64,
    shape: Vec<usize>,
    file_bytes: u64,
    ratio: f64,
    encode_s: f64,
    /// Bytes the decode reads (compressed data, descriptors).
    input_bytes: u64,
    chunks: usize,
    gpu_ms: f64,
    gpu_min_ms: f64,
    gpu_gbs: f64,
    /// (input + output bytes) / GPU time.
    traffic_gbs: f64,
    /// traffic_gbs / device copy bandwidth.
    fraction_of_copy: f64,
    /// (input + output bytes) / device copy bandwidth: the time of a decode
    /// bound by memory alone.
    copy_floor_ms: f64,
    /// Upload + decode + readback.
    wall_ms: f64,
    wall_gbs: f64,
    /// Upload + decode (outputs stay on the device).
    wall_no_readback_ms: f64,
    nvcomp_gbs: Option<f64>,
    nvcomp_ratio: Option<f64>,
    /// Where the nvCOMP figures come from: quoted from run 62, or measured in this
    /// run on the same bytes (`--peers`).
    nvcomp_source: Option<String>,
    target_gbs: Option<f64>,
    meets_target: Option<bool>,
    variants: Vec<String>,
    path: String,
    verified: bool,
    /// The lossy kind: its tiles, and its speed against the int8 file of
    /// the same size.
    lossy: Option<LossyFacts>,
}

#[derive(Serialize, Clone)]
struct LossyFacts {
    weights: u64,
    bits_per_weight: f64,
    tiles: usize,
    /// Tiles coded with a transform (DCT8, DCT4, DST4), and with a predictor.
    transform_tiles: usize,
    predicted_tiles: usize,
    /// Tiles per type (SPATIAL, DCT8, DCT4, DST4).
    by_type: Vec<(String, usize)>,
    /// The int8 lossless file decoded here for comparison.
    int8_output_bytes: u64,
    int8_file_bytes: u64,
    int8_gpu_ms: f64,
    /// int8 GPU ms / lossy GPU ms: speed at equal compressed size (the
    /// issue's target: ≥ 0.70 on the H100).
    speed_vs_int8: f64,
    /// Weights per second, lossy over int8.
    weights_per_s_vs_int8: f64,
}

#[derive(Serialize, Clone)]
struct ProbeResult {
    kind: String,
    output_bytes: u64,
    /// The stage removed (see `FastProbe`).
    probe: String,
    variants: Vec<String>,
    gpu_ms: f64,
    gpu_gbs: f64,
    /// GPU ms of the full decode less this one: what the removed stage costs.
    saved_ms: f64,
    error: Option<String>,
}

#[derive(Serialize, Clone)]
struct SweepResult {
    kind: String,
    output_bytes: u64,
    tuning: String,
    variants: Vec<String>,
    gpu_ms: f64,
    gpu_gbs: f64,
    error: Option<String>,
}

#[derive(Serialize)]
struct DecodeBench {
    device: String,
    copy_shader_gbs: f64,
    copy_command_gbs: f64,
    copy_gbs: f64,
    timestamps: bool,
    results: Vec<DecodeResult>,
    probes: Vec<ProbeResult>,
    sweep: Vec<SweepResult>,
}

/// A generated input: its bytes, shape, dtype, and its encoded file.
pub(crate) struct Input {
    /// The decoder's first output (the source for lossless kinds; the int8
    /// pixels for lossy).
    pub data: Vec<u8>,
    pub shape: Vec<usize>,
    pub file: WcodecFile,
    pub encode_s: f64,
    /// Output dtype the decoder is asked for.
    pub dtype: Option<DType>,
}

/// The lossy kind: F32 weights ([`lossy_weights`], rows of 4096) coded at
/// about `bpw` bits per weight (a step found on a sample, then fixed), as
/// many as make a file of about `file_bytes`.
pub(crate) fn make_lossy_input(file_bytes: u64, bpw: f64, seed: u64) -> anyhow::Result<Input> {
    use crate::codec::encoder::LossyOptions;
    use crate::codec::ratecontrol::{Target, encode_tensor_to_target};
    let cols = 4096usize;
    let opts = |target| EncodeOptions {
        lossy: Some(LossyOptions {
            target,
            per_tensor: true,
            config: Default::default(),
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    // the step for `bpw`, found on 256 rows
    let sample = lossy_weights(256, cols, seed ^ 0x5a);
    let st = encode_tensor_to_target(
        "sample",
        DType::F32,
        &[256, cols],
        &sample,
        &opts(Target::Bpw(bpw)),
    )?;
    let rel_step = st.lossy.as_ref().map(|l| l.rel_step).unwrap_or(0.5);
    let achieved = 8.0 * st.coded_bytes() as f64 / sample.len() as f64;
    let rows =
        ((8.0 * file_bytes as f64 / achieved / cols as f64 / 64.0).round() as usize).max(1) * 64;
    let w = lossy_weights(rows, cols, seed);
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    drop(w);
    let shape = vec![rows, cols];
    let t = encode_tensor(
        "weights",
        DType::F32,
        &shape,
        &bytes,
        &opts(Target::RelStep(rel_step)),
    )?;
    drop(bytes);
    let file = WcodecFile::from_bytes(crate::format::writer::to_bytes(None, &[t])?)?;
    let encode_s = t0.elapsed().as_secs_f64();
    let mut data = decode_tensor(&file, 0)?;
    data.truncate(rows * cols);
    Ok(Input {
        data,
        shape,
        file,
        encode_s,
        dtype: Some(DType::I8),
    })
}

/// Tiles of a lossy file: (total, transform, predicted, per type).
fn lossy_tile_counts(file: &WcodecFile) -> (usize, usize, usize, Vec<(String, usize)>) {
    use crate::codec::lossy::LossyParams;
    use crate::codec::predict::Mode;
    use crate::format::reader::PlaneInfo;
    let (mut n, mut tr, mut pr) = (0, 0, 0);
    let mut by = [0usize; 4];
    for e in &file.tensors {
        if let PlaneInfo::Rans { index, .. } = &e.planes[0] {
            for te in index.iter().filter(|te| te.mode.is_lossy()) {
                n += 1;
                tr += (te.mode != Mode::Spatial) as usize;
                pr += LossyParams::unpack(te.params)
                    .is_ok_and(|p| p.pred != crate::codec::lossy::Predictor::None)
                    as usize;
                if let Some(i) = Mode::LOSSY.iter().position(|&m| m == te.mode) {
                    by[i] += 1;
                }
            }
        }
    }
    let by = Mode::LOSSY
        .iter()
        .zip(by)
        .map(|(m, c)| (m.name().to_string(), c))
        .collect();
    (n, tr, pr, by)
}

/// The raw bytes of an int8 or bf16 input of `bytes` bytes.
fn raw_input(kind: &str, bytes: u64, seed: u64) -> anyhow::Result<(DType, Vec<u8>)> {
    Ok(match kind {
        "int8" => (DType::I8, int8_weights(bytes as usize, seed)),
        "bf16" => (DType::BF16, bf16_weights(bytes as usize / 2, seed)),
        _ => bail!("unknown kind {kind:?}: expected int8, bf16 or lossy"),
    })
}

/// The seed of input `si` (in the sorted sizes) of `size` bytes: the dump
/// and the timed run draw the same bytes.
fn input_seed(size: u64, si: usize) -> u64 {
    0x5eed + size + si as u64
}

#[derive(Serialize)]
struct DumpEntry {
    kind: String,
    bytes: u64,
    file: String,
    xxh3: String,
}

/// `--dump-inputs`: every int8 / bf16 input's bytes and a manifest.
fn dump_inputs(
    dir: &std::path::Path,
    kinds: &[String],
    sizes: &[u64],
    say: &dyn Fn(String),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut manifest = Vec::new();
    for kind in kinds {
        if kind == "lossy" {
            say("dump: the lossy kind has no raw peer input; skipped".into());
            continue;
        }
        for (si, &size) in sizes.iter().enumerate() {
            let (_, data) = raw_input(kind, size, input_seed(size, si))?;
            let file = format!("{kind}_{size}.bin");
            let path = dir.join(&file);
            crate::io::atomic::write_atomic(&path, |w| {
                w.write_all(&data).map_err(|e| crate::Error::io(&path, e))
            })?;
            let xxh3 = crate::codec::checksum_string(crate::codec::checksum(&data));
            say(format!(
                "dump: {} ({} bytes, {xxh3})",
                path.display(),
                data.len()
            ));
            manifest.push(DumpEntry {
                kind: kind.clone(),
                bytes: data.len() as u64,
                file,
                xxh3,
            });
        }
    }
    let path = dir.join("manifest.json");
    let body = serde_json::to_vec_pretty(&manifest)?;
    crate::io::atomic::write_atomic(&path, |w| {
        w.write_all(&body).map_err(|e| crate::Error::io(&path, e))
    })?;
    say(format!("dump: {}", path.display()));
    Ok(())
}

pub(crate) fn make_input(kind: &str, bytes: u64, layout: &str, seed: u64) -> anyhow::Result<Input> {
    let (dtype, data) = raw_input(kind, bytes, seed)?;
    let n = data.len() / dtype.size();
    let shape = if layout == "1d" || n % 4096 != 0 {
        vec![n]
    } else {
        vec![n / 4096, 4096]
    };
    let t0 = Instant::now();
    let t = encode_tensor("weights", dtype, &shape, &data, &EncodeOptions::default())?;
    let bytes = crate::format::writer::to_bytes(None, &[t])?;
    let encode_s = t0.elapsed().as_secs_f64();
    Ok(Input {
        data,
        shape,
        file: WcodecFile::from_bytes(bytes)?,
        encode_s,
        dtype: None,
    })
}

/// Seconds of untimed decodes before each timing: an idle GPU runs far
/// below its boost clock (the H100: 345 MHz idle, about 1980 MHz after a few
/// hundred ms of sustained load), and short timings were 2-4x too slow.
pub(crate) const WARM_UP_S: f64 = 0.5;

/// Keep the GPU busy with decodes of `r` for at least `secs` of wall time,
/// in submissions of about 50 ms each (few CPU gaps), so that the timing
/// after it runs at the boost clock.
pub(crate) fn warm_up(
    dec: &GpuDecoder,
    r: &crate::wgpu::decode::Resident,
    secs: f64,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut n = 1usize;
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        dec.spin_resident(r, n)?;
        let dt = t.elapsed().as_secs_f64().max(1e-6);
        // aim each submission at about 50 ms of work
        n = ((n as f64 * 0.05 / dt) as usize).clamp(1, 4096);
    }
    Ok(())
}

/// GPU-timed resident decodes, after `WARM_UP_S` of untimed ones:
/// (median ms, min ms, input bytes, chunks, variants).
pub(crate) fn time_resident(
    ctx: &GpuContext,
    inp: &Input,
    tune: &Tuning,
    reps: usize,
) -> anyhow::Result<(f64, f64, u64, usize, Vec<String>)> {
    // a probe's outputs are wrong by design
    let verify = tune.probe == FastProbe::None;
    let out_bytes = inp.data.len() as u64;
    let binding = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let opts = GpuDecodeOptions {
        tuning: tune.clone(),
        staging_bytes: (out_bytes + (64 << 20)).min(binding),
        batch_bytes: 0,
        dtype: inp.dtype,
        ..Default::default()
    };
    let mut dec = GpuDecoder::new(ctx, opts)?;
    // rotate between copies that together pass the 50 MB L2
    let per = out_bytes + inp.file.file_len() as u64;
    let copies = (256u64 << 20).div_ceil(per).clamp(1, 8) as usize;
    let r = dec.resident(&inp.file, copies)?;
    for set in 0..copies {
        dec.run_resident(&inp.file, &r, set, None, true)?;
        let got = read_tensor(ctx, &r.outputs(set)[0])?;
        if verify && got != inp.data {
            bail!(
                "the GPU decode differs from the source ({})",
                r.variants.join("; ")
            );
        }
    }
    warm_up(&dec, &r, WARM_UP_S)?;
    let mut timer = GpuTimer::new(ctx, r.chunks as u32);
    let mut times = Vec::with_capacity(reps);
    for i in 0..reps.max(1) {
        let t0 = Instant::now();
        let gpu = dec.run_resident(&inp.file, &r, i % copies, timer.as_mut(), false)?;
        times.push(gpu.unwrap_or_else(|| t0.elapsed().as_secs_f64()));
    }
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok((
        median(&mut times) * 1e3,
        min * 1e3,
        r.input_bytes,
        r.chunks,
        r.variants.clone(),
    ))
}

/// Wall-clock decodes with the streaming decoder: (upload + decode + readback, upload + decode) in ms.
fn time_wall(
    ctx: &GpuContext,
    inp: &Input,
    tune: &Tuning,
    reps: usize,
) -> anyhow::Result<(f64, f64)> {
    let opts = GpuDecodeOptions {
        tuning: tune.clone(),
        dtype: inp.dtype,
        ..Default::default()
    };
    let mut dec = GpuDecoder::new(ctx, opts)?;
    // warm: pipelines, ring, pool
    let (t, _) = dec.decode_to_buffers(&inp.file)?;
    if read_tensor(ctx, &t[0])? != inp.data {
        bail!("the streamed GPU decode differs from the source");
    }
    drop(t);
    let (mut full, mut noread) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let (t, _) = dec.decode_to_buffers(&inp.file)?;
        ctx.wait()?;
        let t1 = t0.elapsed().as_secs_f64();
        let bytes = read_tensor(ctx, &t[0])?;
        let t2 = t0.elapsed().as_secs_f64();
        std::hint::black_box(&bytes);
        noread.push(t1 * 1e3);
        full.push(t2 * 1e3);
    }
    Ok((median(&mut full), median(&mut noread)))
}

/// Kernel variants worth comparing (few: each costs a pipeline build and a timing).
fn sweep_tunings(ctx: &GpuContext, base: &Tuning) -> Vec<(String, Tuning, Option<bool>)> {
    let mut v: Vec<(String, Tuning, Option<bool>)> = Vec::new();
    let t = |f: &dyn Fn(&mut Tuning)| {
        let mut x = base.clone();
        f(&mut x);
        x
    };
    let c = ctx.checks;
    for w in [4, 16] {
        v.push((format!("fast-warps={w}"), t(&|x| x.fast_warps = w), c));
    }
    for wgs in [528, 1056, 4224, 8192] {
        v.push((format!("fast-wgs={wgs}"), t(&|x| x.fast_wgs = wgs), c));
    }
    for ilp in [1, 2] {
        for w in [8, 16, 32] {
            v.push((
                format!("staged warps={w} ilp={ilp}"),
                t(&|x| {
                    x.fast_direct = Some(false);
                    x.fast_warps = w;
                    x.fast_ilp = ilp;
                }),
                c,
            ));
        }
    }
    for (w, wgs) in [
        (4, 0),
        (8, 0),
        (16, 0),
        (32, 0),
        (16, 264),
        (32, 132),
        (32, 264),
    ] {
        for ilp in [1, 2] {
            v.push((
                format!("direct warps={w} ilp={ilp} wgs={wgs}"),
                t(&|x| {
                    x.fast_direct = Some(true);
                    x.fast_warps = w;
                    x.fast_ilp = ilp;
                    x.fast_wgs = wgs;
                }),
                c,
            ));
        }
    }
    v.push((
        "path=workgroup".into(),
        t(&|x| x.path = Some(DecodePath::Workgroup)),
        c,
    ));
    v.push(("fast=off".into(), t(&|x| x.fast = false), c));
    // the fast lossy kernel (lossy inputs): warps, a 16-row scratch (its stage), off
    for w in [1, 2, 3] {
        v.push((format!("fast-warps={w}"), t(&|x| x.fast_warps = w), c));
    }
    for w in [2, 3, 4] {
        v.push((
            format!("fast-warps={w} rows=16"),
            t(&|x| {
                x.fast_warps = w;
                x.lossy_rows = 16;
            }),
            c,
        ));
    }
    v.push(("fast-lossy=off".into(), t(&|x| x.fast_lossy = false), c));
    v.push(("wgpu-checks=on".into(), base.clone(), Some(true)));
    v
}

/// Timed decodes of each probe and sweep variant (at most).
const PROBE_REPS: usize = 50;

/// The probes: the fast kernel with one stage removed.
const PROBES: [FastProbe; 4] = [
    FastProbe::NoStore,
    FastProbe::NoLut,
    FastProbe::NoStage,
    FastProbe::NoDecode,
];

/// Stack of the rayon workers that generate and encode the inputs: a 1 GiB
/// encode nests stolen tile jobs deep on a worker's stack (a run on the
/// H100 overflowed rayon's default 2 MiB), so give them room.
const WORKER_STACK: usize = 64 << 20;

fn decode(a: &DecodeBenchArgs, quiet: bool) -> anyhow::Result<()> {
    // ignore the error if the global pool exists already
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK)
        .build_global();
    let a = a.clone();
    std::thread::Builder::new()
        .name("bench-decode".into())
        .stack_size(WORKER_STACK)
        .spawn(move || decode_run(&a, quiet))?
        .join()
        .map_err(|_| anyhow::anyhow!("the decode benchmark panicked"))?
}

/// `--sizes` as bytes, smallest first.
pub(crate) fn parse_sizes(sizes: &[String]) -> anyhow::Result<Vec<u64>> {
    let mut v: Vec<u64> = sizes
        .iter()
        .map(|s| parse_size(s))
        .collect::<anyhow::Result<_>>()?;
    v.sort();
    Ok(v)
}

fn decode_run(a: &DecodeBenchArgs, quiet: bool) -> anyhow::Result<()> {
    let sizes = parse_sizes(&a.sizes)?;
    if let Some(dir) = &a.dump_inputs {
        let say = |s: String| {
            if !quiet {
                println!("{s}");
            }
        };
        return dump_inputs(dir, &a.kinds, &sizes, &say);
    }
    let peers = match &a.peers {
        Some(p) => Some((p.clone(), read_peers(p)?)),
        None => None,
    };
    let mut ctx = context(a.adapter)?;
    let mut tune = Tuning::from_env()?;
    if let Some(p) = &a.path {
        tune.path = Some(parse_path(p)?);
    }
    let say = |s: String| {
        if !quiet && !a.json {
            println!("{s}");
        }
    };
    say(format!("device: {}", ctx.describe()));
    say(format!(
        "timing: {} decodes per input (median; probes and sweep {}), each input after {WARM_UP_S} s of untimed decodes (GPU clock to boost)",
        a.reps,
        a.reps.min(PROBE_REPS)
    ));
    let (copy_shader, copy_cmd) = copy_bandwidth(&ctx, 1 << 30, 10)?;
    let copy = copy_shader.max(copy_cmd);
    say(format!(
        "device copy: {copy_shader:.0} GB/s (copy shader), {copy_cmd:.0} GB/s (copy command), read + write"
    ));
    let mut results = Vec::new();
    let mut probes = Vec::new();
    let mut sweep = Vec::new();
    let mut kinds = a.kinds.clone();
    if a.lossy && !kinds.iter().any(|k| k == "lossy") {
        kinds.push("lossy".into());
    }
    for kind in &kinds {
        for (si, &size) in sizes.iter().enumerate() {
            let seed = input_seed(size, si);
            // the lossy kind: the int8 file of this size first (its size and speed)
            let mut int8_ref = None;
            let inp = if kind == "lossy" {
                let i8in = make_input("int8", size, &a.layout, seed)?;
                let (ms, _, _, _, _) = time_resident(&ctx, &i8in, &tune, a.reps)?;
                let fb = i8in.file.file_len() as u64;
                int8_ref = Some((size, fb, ms));
                drop(i8in);
                ctx.trim_pool();
                make_lossy_input(fb, a.lossy_bpw, seed)?
            } else {
                make_input(kind, size, &a.layout, seed)?
            };
            let bytes = inp.data.len() as u64;
            let file_bytes = inp.file.file_len() as u64;
            let ratio = bytes as f64 / file_bytes as f64;
            say(format!(
                "{kind} {} {:?}: ratio {ratio:.4} ({file_bytes} bytes), encoded in {:.2} s",
                crate::cli::human(bytes),
                inp.shape,
                inp.encode_s
            ));
            // the peers' entries for this input, checked before any timing
            let (mut nvcomp_gbs, mut nvcomp_ratio, target_gbs) = peer(kind, bytes);
            let mut nvcomp_source = nvcomp_gbs.map(|_| QUOTED_PEER.to_string());
            if let Some((path, v)) = &peers {
                if let Some(e) = measured_peer(v, path, kind, &inp.data)? {
                    nvcomp_gbs = Some(e.decode_gbs);
                    nvcomp_ratio = Some(e.ratio);
                    nvcomp_source = Some(format!("measured in this run: {}", e.codec));
                    say(format!(
                        "  {}: ratio {:.4}, decode {:.3} ms = {:.1} GB/s (same bytes, {}; on {})",
                        e.codec,
                        e.ratio,
                        e.decode_ms,
                        e.decode_gbs,
                        e.xxh3,
                        if e.device.is_empty() {
                            "an unnamed device"
                        } else {
                            &e.device
                        }
                    ));
                } else {
                    say(format!(
                        "  {}: no primary entry for {kind} {bytes}; the table quotes run 62",
                        path.display()
                    ));
                }
                for e in v
                    .iter()
                    .filter(|e| !e.primary && e.kind == *kind && e.bytes == bytes)
                {
                    say(format!(
                        "  also {}: ratio {:.4}, decode {:.1} GB/s",
                        e.codec, e.ratio, e.decode_gbs
                    ));
                }
            }
            let (gpu_ms, gpu_min_ms, input_bytes, chunks, variants) =
                time_resident(&ctx, &inp, &tune, a.reps)?;
            let (wall_ms, wall_no_readback_ms) = time_wall(&ctx, &inp, &tune, a.wall_reps)?;
            let gpu_gbs = bytes as f64 / gpu_ms / 1e6;
            let lossy = int8_ref.map(|(i8_bytes, i8_file, i8_ms)| {
                let (tiles, transform_tiles, predicted_tiles, by_type) =
                    lossy_tile_counts(&inp.file);
                LossyFacts {
                    weights: bytes,
                    bits_per_weight: 8.0 * file_bytes as f64 / bytes as f64,
                    tiles,
                    transform_tiles,
                    predicted_tiles,
                    by_type,
                    int8_output_bytes: i8_bytes,
                    int8_file_bytes: i8_file,
                    int8_gpu_ms: i8_ms,
                    speed_vs_int8: i8_ms / gpu_ms * (file_bytes as f64 / i8_file as f64),
                    weights_per_s_vs_int8: (bytes as f64 / gpu_ms) / (i8_bytes as f64 / i8_ms),
                }
            });
            if let Some(l) = &lossy {
                say(format!(
                    "  lossy: {} weights at {:.3} bits/weight; {} tiles, {} with a transform ({}), {} with a predictor; int8 file of {} bytes decodes in {:.3} ms",
                    l.weights,
                    l.bits_per_weight,
                    l.tiles,
                    l.transform_tiles,
                    l.by_type
                        .iter()
                        .map(|(n, c)| format!("{n} {c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    l.predicted_tiles,
                    l.int8_file_bytes,
                    l.int8_gpu_ms
                ));
            }
            let traffic_gbs = (bytes + input_bytes) as f64 / gpu_ms / 1e6;
            let r = DecodeResult {
                kind: kind.clone(),
                layout: a.layout.clone(),
                output_bytes: bytes,
                shape: inp.shape.clone(),
                file_bytes,
                ratio,
                encode_s: inp.encode_s,
                input_bytes,
                chunks,
                gpu_ms,
                gpu_min_ms,
                gpu_gbs,
                traffic_gbs,
                fraction_of_copy: traffic_gbs / copy,
                copy_floor_ms: (bytes + input_bytes) as f64 / copy / 1e6,
                wall_ms,
                wall_gbs: bytes as f64 / wall_ms / 1e6,
                wall_no_readback_ms,
                nvcomp_gbs,
                nvcomp_ratio,
                nvcomp_source,
                target_gbs,
                meets_target: target_gbs.map(|t| gpu_gbs >= t),
                variants,
                path: GpuDecoder::new(
                    &ctx,
                    GpuDecodeOptions {
                        tuning: tune.clone(),
                        ..Default::default()
                    },
                )?
                .path()
                .name()
                .into(),
                verified: true,
                lossy,
            };
            say(format!(
                "  GPU {gpu_ms:.3} ms = {gpu_gbs:.1} GB/s output, {traffic_gbs:.0} GB/s traffic = {:.0} % of copy{}; wall {wall_ms:.1} ms = {:.2} GB/s with upload and readback ({wall_no_readback_ms:.1} ms without readback); {}",
                100.0 * r.fraction_of_copy,
                match (nvcomp_gbs, target_gbs) {
                    (Some(n), Some(t)) => format!(
                        "; nvCOMP {n:.0} GB/s ({}), target {t:.0} GB/s: {}",
                        r.nvcomp_source.as_deref().unwrap_or("?"),
                        if gpu_gbs >= t { "met" } else { "NOT met" }
                    ),
                    (Some(n), None) => format!(
                        "; nvCOMP {n:.0} GB/s ({})",
                        r.nvcomp_source.as_deref().unwrap_or("?")
                    ),
                    _ => String::new(),
                },
                r.wall_gbs,
                r.variants.join("; ")
            ));
            if let Some(l) = &r.lossy {
                say(format!(
                    "  lossy vs int8 at equal compressed size: {:.0} % of int8's speed (target ≥ 70 %), {:.2}x its weights per second",
                    100.0 * l.speed_vs_int8,
                    l.weights_per_s_vs_int8
                ));
            }
            results.push(r);
            if a.probes {
                for probe in PROBES {
                    let t = Tuning {
                        probe,
                        ..tune.clone()
                    };
                    let res = time_resident(&ctx, &inp, &t, a.reps.min(PROBE_REPS));
                    ctx.trim_pool();
                    let p = match res {
                        Ok((ms, _, _, _, variants)) => {
                            say(format!(
                                "  probe {:<10} {ms:8.3} ms {:7.1} GB/s  (saves {:+.3} ms)  {}",
                                probe.name(),
                                bytes as f64 / ms / 1e6,
                                gpu_ms - ms,
                                variants.join("; ")
                            ));
                            ProbeResult {
                                kind: kind.clone(),
                                output_bytes: bytes,
                                probe: probe.name().into(),
                                variants,
                                gpu_ms: ms,
                                gpu_gbs: bytes as f64 / ms / 1e6,
                                saved_ms: gpu_ms - ms,
                                error: None,
                            }
                        }
                        Err(e) => {
                            say(format!("  probe {:<10} failed: {e:#}", probe.name()));
                            ProbeResult {
                                kind: kind.clone(),
                                output_bytes: bytes,
                                probe: probe.name().into(),
                                variants: vec![],
                                gpu_ms: f64::NAN,
                                gpu_gbs: f64::NAN,
                                saved_ms: f64::NAN,
                                error: Some(format!("{e:#}")),
                            }
                        }
                    };
                    probes.push(p);
                }
            }
            if a.sweep && si + 1 == sizes.len() {
                for (name, t, checks) in sweep_tunings(&ctx, &tune) {
                    if !a.sweep_only.is_empty() && !a.sweep_only.iter().any(|p| name.contains(p)) {
                        continue;
                    }
                    let was = ctx.checks;
                    ctx.checks = checks;
                    let res = time_resident(&ctx, &inp, &t, a.reps.min(PROBE_REPS));
                    ctx.checks = was;
                    ctx.trim_pool();
                    let s = match res {
                        Ok((ms, _, _, _, variants)) => {
                            say(format!(
                                "  sweep {name:<20} {ms:8.3} ms {:7.1} GB/s  {}",
                                bytes as f64 / ms / 1e6,
                                variants.join("; ")
                            ));
                            SweepResult {
                                kind: kind.clone(),
                                output_bytes: bytes,
                                tuning: name,
                                variants,
                                gpu_ms: ms,
                                gpu_gbs: bytes as f64 / ms / 1e6,
                                error: None,
                            }
                        }
                        Err(e) => {
                            say(format!("  sweep {name:<20} failed: {e:#}"));
                            SweepResult {
                                kind: kind.clone(),
                                output_bytes: bytes,
                                tuning: name,
                                variants: vec![],
                                gpu_ms: f64::NAN,
                                gpu_gbs: f64::NAN,
                                error: Some(format!("{e:#}")),
                            }
                        }
                    };
                    sweep.push(s);
                }
            }
            drop(inp);
            ctx.trim_pool();
        }
    }
    let report = DecodeBench {
        device: ctx.describe(),
        copy_shader_gbs: copy_shader,
        copy_command_gbs: copy_cmd,
        copy_gbs: copy,
        timestamps: ctx.has(wgpu::Features::TIMESTAMP_QUERY),
        results,
        probes,
        sweep,
    };
    let json = serde_json::to_string_pretty(&report)?;
    if a.json {
        println!("{json}");
    }
    if let Some(p) = &a.out {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    if !quiet && !a.json {
        println!();
        println!(
            "{:<5} {:>9} {:>7} {:>9} {:>8} {:>8} {:>7} {:>9} {:>9}  nvCOMP GB/s (ratio)",
            "kind", "size", "ratio", "GPU ms", "GB/s", "target", "% copy", "floor ms", "wall ms",
        );
        for r in &report.results {
            println!(
                "{:<5} {:>9} {:>7.4} {:>9.3} {:>8.1} {:>8} {:>6.0}% {:>9.3} {:>9.1}  {}",
                r.kind,
                crate::cli::human(r.output_bytes),
                r.ratio,
                r.gpu_ms,
                r.gpu_gbs,
                r.target_gbs.map_or("-".into(), |t| format!(
                    "{t:.0}{}",
                    if r.gpu_gbs >= t { " ok" } else { " NO" }
                )),
                100.0 * r.fraction_of_copy,
                r.copy_floor_ms,
                r.wall_ms,
                match (r.nvcomp_gbs, r.nvcomp_ratio) {
                    (Some(n), Some(q)) => format!(
                        "{n:.0} ({q:.4}){}",
                        if r.nvcomp_source
                            .as_deref()
                            .is_some_and(|s| s.starts_with("measured"))
                        {
                            ", measured here"
                        } else {
                            ", quoted (run 62)"
                        }
                    ),
                    _ => "-".into(),
                }
            );
        }
        if !report.probes.is_empty() {
            println!("probes (one stage removed; saves = full decode - probe):");
            for p in &report.probes {
                println!(
                    "  {:<5} {:>9} {:<10} {:>9.3} ms {:>8.1} GB/s  saves {:+.3} ms",
                    p.kind,
                    crate::cli::human(p.output_bytes),
                    p.probe,
                    p.gpu_ms,
                    p.gpu_gbs,
                    p.saved_ms
                );
            }
        }
        if !report.sweep.is_empty() {
            println!("sweep:");
            for s in &report.sweep {
                println!(
                    "  {:<5} {:>9} {:<16} {:>9.3} ms {:>8.1} GB/s  {}",
                    s.kind,
                    crate::cli::human(s.output_bytes),
                    s.tuning,
                    s.gpu_ms,
                    s.gpu_gbs,
                    s.variants.join("; ")
                );
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct LoadBench {
    device: String,
    model: String,
    tensors: usize,
    safetensors_bytes: u64,
    wcodec_bytes: u64,
    ratio: f64,
    /// Plain uploads of the safetensors: first load, then the median of the rest.
    safetensors_first_ms: f64,
    safetensors_ms: f64,
    wcodec_first_ms: f64,
    wcodec_ms: f64,
    /// wcodec GPU decode time alone (timestamps), median.
    wcodec_gpu_ms: Option<f64>,
    speedup: f64,
    verified: bool,
    /// Host wall time of the .wcodec loads by phase (mean over the timed loads).
    wcodec_phases: LoadPhases,
}

#[derive(Serialize, Default)]
struct LoadPhases {
    open_ms: f64,
    plan_ms: f64,
    stage_ms: f64,
    acquire_ms: f64,
    submit_ms: f64,
    wait_ms: f64,
}

fn load(a: &LoadBenchArgs, quiet: bool) -> anyhow::Result<()> {
    let ctx = context(a.adapter)?;
    let dir = tempfile::tempdir()?;
    let is_wcodec = a.model.extension().is_some_and(|e| e == "wcodec");
    let (st_path, wpath) = if is_wcodec {
        let st = dir.path().join("model.safetensors");
        let f = WcodecFile::open(&a.model)?;
        if f.tensors
            .iter()
            .any(|t| t.encoding == crate::codec::Encoding::Quant)
        {
            bail!(
                "{} is quantised: give the source safetensors and --wcodec",
                a.model.display()
            );
        }
        crate::cpu::decode::decode_to_safetensors(&f, &st, &Default::default(), &|_| {})?;
        (st, a.model.clone())
    } else {
        let w = match &a.wcodec {
            Some(p) => p.clone(),
            None => {
                let p = dir.path().join("model.wcodec");
                crate::cpu::encode::encode_file(&a.model, &p, &EncodeOptions::default(), &|_| {})?;
                p
            }
        };
        (a.model.clone(), w)
    };
    // warm the page cache for both files: the loads compare decoders, not disks
    let st_bytes = std::fs::read(&st_path)?.len() as u64;
    let wc_bytes = std::fs::read(&wpath)?.len() as u64;
    let mut st_times = Vec::new();
    for _ in 0..a.reps.max(2) {
        let t0 = Instant::now();
        let input = SafeInput::open(&st_path)?;
        let mut bufs = Vec::with_capacity(input.tensors.len());
        for t in &input.tensors {
            let data = input.data(t);
            let size = (data.len() as u64).div_ceil(4).max(1) * 4;
            let b = ctx.create_buffer(
                &t.name,
                size,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            )?;
            if data.len() % 4 == 0 {
                ctx.queue.write_buffer(&b, 0, data);
            } else {
                let mut v = data.to_vec();
                v.resize(size as usize, 0);
                ctx.queue.write_buffer(&b, 0, &v);
            }
            bufs.push(b);
        }
        ctx.queue.submit([]);
        ctx.wait()?;
        st_times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let st_first = st_times.remove(0);
    let mut dec = GpuDecoder::new(
        &ctx,
        GpuDecodeOptions {
            timestamps: true,
            ..Default::default()
        },
    )?;
    let mut wc_times = Vec::new();
    let mut gpu_times = Vec::new();
    let mut verified = false;
    let mut tensors = 0;
    let mut phases = LoadPhases::default();
    for rep in 0..a.reps.max(2) {
        let t0 = Instant::now();
        let file = WcodecFile::open(&wpath)?;
        let open_s = t0.elapsed().as_secs_f64();
        let (ts, rep_report) = dec.decode_to_buffers(&file)?;
        ctx.wait()?;
        wc_times.push(t0.elapsed().as_secs_f64() * 1e3);
        if rep > 0 {
            let p = rep_report.phases;
            let n = (a.reps.max(2) - 1) as f64;
            phases.open_ms += 1e3 * open_s / n;
            phases.plan_ms += 1e3 * p.plan_s / n;
            phases.acquire_ms += 1e3 * p.acquire_s / n;
            phases.stage_ms += 1e3 * p.stage_s / n;
            phases.submit_ms += 1e3 * p.submit_s / n;
            phases.wait_ms += 1e3 * p.wait_s / n;
        }
        if let Some(g) = rep_report.gpu_s {
            gpu_times.push(g * 1e3);
        }
        if rep == 0 {
            // every output against the CPU reference
            let mut k = 0;
            for (t, e) in file.tensors.iter().enumerate() {
                for want in render(e, decode_tensor(&file, t)?, None) {
                    if read_tensor(&ctx, &ts[k])? != want {
                        bail!(
                            "tensor {}: the GPU load differs from the CPU decode",
                            ts[k].name
                        );
                    }
                    k += 1;
                }
            }
            verified = true;
            tensors = ts.len();
        }
    }
    let wc_first = wc_times.remove(0);
    if !gpu_times.is_empty() {
        gpu_times.remove(0);
    }
    let r = LoadBench {
        device: ctx.describe(),
        model: a.model.display().to_string(),
        tensors,
        safetensors_bytes: st_bytes,
        wcodec_bytes: wc_bytes,
        ratio: st_bytes as f64 / wc_bytes as f64,
        safetensors_first_ms: st_first,
        safetensors_ms: median(&mut st_times),
        wcodec_first_ms: wc_first,
        wcodec_ms: median(&mut wc_times),
        wcodec_gpu_ms: (!gpu_times.is_empty()).then(|| median(&mut gpu_times)),
        speedup: 0.0,
        verified,
        wcodec_phases: phases,
    };
    let r = LoadBench {
        speedup: r.safetensors_ms / r.wcodec_ms,
        ..r
    };
    let json = serde_json::to_string_pretty(&r)?;
    if a.json {
        println!("{json}");
    }
    if let Some(p) = &a.out {
        std::fs::write(p, &json)?;
    }
    if !quiet && !a.json {
        println!("device: {}", r.device);
        println!(
            "{}: {} tensors, safetensors {} B, wcodec {} B (ratio {:.4})",
            r.model, r.tensors, r.safetensors_bytes, r.wcodec_bytes, r.ratio
        );
        println!(
            "  plain uploads of the safetensors: {:.2} ms (first {:.2} ms)",
            r.safetensors_ms, r.safetensors_first_ms
        );
        println!(
            "  .wcodec decoded on the GPU:       {:.2} ms (first, with pipeline builds, {:.2} ms){}",
            r.wcodec_ms,
            r.wcodec_first_ms,
            r.wcodec_gpu_ms
                .map_or(String::new(), |g| format!("; GPU decode time {g:.3} ms"))
        );
        let p = &r.wcodec_phases;
        println!(
            "    host time by phase (mean): open {:.2} ms, plan {:.2}, staging copies and dispatch set-up {:.2}, \
             waiting for a staging buffer {:.2}, submits {:.2}, final wait {:.2}",
            p.open_ms, p.plan_ms, p.stage_ms, p.acquire_ms, p.submit_ms, p.wait_ms
        );
        println!(
            "  speedup {:.2}x; every tensor checked against the CPU reference",
            r.speedup
        );
    }
    Ok(())
}

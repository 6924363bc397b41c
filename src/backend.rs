//! Backends as values: [`Backend::Cpu`], [`Backend::Wgpu`], [`Backend::Cuda`],
//! chosen on the command line (`--backend`, `--backends a,b,c`) or by the
//! environment (`WCODEC_BACKEND`), and [`Live`], an opened backend with one
//! entry point per kernel, so that one test body or one benchmark row runs
//! on every backend the build has.
//!
//! * decode: the canonical bytes of every tensor ([`Live::decode_each`]),
//!   compared byte for byte across backends; dequantised outputs
//!   ([`Live::dequant`]);
//! * GEMV, softmax, sampling: one-shot calls on fresh device buffers whose
//!   outputs are poisoned (NaN or 0xffffffff) first, so an output a kernel
//!   fails to write shows.
//!
//! `Backend::Cuda` needs the `cuda` feature; without it, opening it is a
//! clear "built without the cuda feature" error.

use std::fmt;
use std::str::FromStr;

use crate::codec::decoder::render;
use crate::codec::encoder::{EncodedPlane, EncodedTensor};
use crate::codec::plane::CodedPlane;
use crate::codec::{Encoding, float_split};
use crate::cpu::gemv::Weights;
use crate::cpu::sample::SampleParams;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::WcodecFile;
use crate::format::reader::{PlaneInfo, PlaneRef};

/// The environment variable naming the backend(s) to use (`cpu`, `wgpu`,
/// `cuda`, a comma-separated list, or `all`).
pub const ENV: &str = "WCODEC_BACKEND";

/// A backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// The reference codec and f32 kernels on the CPU (rayon).
    Cpu,
    /// WGSL kernels through wgpu (Vulkan, Metal, DX12; lavapipe in CI).
    Wgpu,
    /// CUDA kernels compiled by NVRTC, and cuBLAS (feature `cuda`).
    Cuda,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Cpu, Backend::Wgpu, Backend::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this build has the backend (CUDA needs the `cuda` feature).
    pub fn compiled(self) -> bool {
        !matches!(self, Backend::Cuda) || cfg!(feature = "cuda")
    }

    /// The backends this build has.
    pub fn compiled_list() -> Vec<Backend> {
        Backend::ALL.into_iter().filter(|b| b.compiled()).collect()
    }

    /// `cpu`, `wgpu` (also `gpu`) or `cuda`.
    pub fn parse(s: &str) -> Result<Backend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Backend::Cpu),
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda),
            o => Err(Error::Param(format!(
                "unknown backend {o:?}: expected cpu, wgpu or cuda"
            ))),
        }
    }

    /// A comma-separated list (`cpu,wgpu,cuda`) or `all` (every compiled backend).
    pub fn parse_list(s: &str) -> Result<Vec<Backend>> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(Backend::compiled_list());
        }
        let mut v: Vec<Backend> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let b = Backend::parse(part)?;
            if !v.contains(&b) {
                v.push(b);
            }
        }
        if v.is_empty() {
            return Err(Error::Param(format!("no backend in {s:?}")));
        }
        Ok(v)
    }

    /// `WCODEC_BACKEND`, if set.
    pub fn from_env() -> Result<Option<Vec<Backend>>> {
        match std::env::var(ENV) {
            Ok(s) if !s.trim().is_empty() => Backend::parse_list(&s)
                .map(Some)
                .map_err(|e| Error::Param(format!("{ENV}: {e}"))),
            _ => Ok(None),
        }
    }

    /// Whether `WCODEC_BACKEND` (if set) includes this backend: tests run a
    /// backend's variant only then.
    pub fn enabled_by_env(self) -> bool {
        match Backend::from_env() {
            Ok(Some(v)) => v.contains(&self),
            _ => true,
        }
    }

    /// Open the backend: the best wgpu adapter, or CUDA device 0.
    pub fn open(self) -> Result<Live> {
        match self {
            Backend::Cpu => Ok(Live::Cpu),
            Backend::Wgpu => Ok(Live::Wgpu(Box::new(crate::wgpu::GpuContext::new(
                &Default::default(),
            )?))),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Live::Cuda(Box::new(crate::cuda::CudaBackend::new()?))),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => Err(Error::Cuda(
                "this wcodec was built without the cuda feature (cargo build --features cuda)"
                    .into(),
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Backend> {
        Backend::parse(s)
    }
}

/// An opened backend.
pub enum Live {
    Cpu,
    Wgpu(Box<crate::wgpu::GpuContext>),
    #[cfg(feature = "cuda")]
    Cuda(Box<crate::cuda::CudaBackend>),
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Live({})", self.describe())
    }
}

/// The canonical bytes of tensor `t` on the CPU, without the checksum check
/// (stream errors are still errors): what the reference decoder produced.
pub fn cpu_canonical(file: &WcodecFile, t: usize) -> Result<Vec<u8>> {
    let e = &file.tensors[t];
    let mut out = vec![0u8; e.decoded_bytes()];
    let planes = file.planes(t);
    let loc = |p: usize| file.loc(&e.name, format!("planes[{p}]"));
    match (e.encoding, planes.as_slice()) {
        (Encoding::Raw, [PlaneRef::Raw(b)]) => out.copy_from_slice(b),
        (Encoding::Int8, [PlaneRef::Coded(p)]) => {
            p.decode_into(&mut out, &loc(0))?;
            if e.dtype == DType::U8 {
                out.iter_mut().for_each(|b| *b ^= 0x80);
            }
        }
        (Encoding::FloatSplit, [PlaneRef::Coded(p), PlaneRef::Raw(raw)]) => {
            let mut coded = vec![0u8; e.numel];
            p.decode_into(&mut coded, &loc(0))?;
            float_split::merge(e.dtype, &coded, raw, &mut out);
        }
        (Encoding::Quant | Encoding::Lossy, [PlaneRef::Coded(p), PlaneRef::Raw(scales)]) => {
            p.decode_into(&mut out[..e.numel], &loc(0))?;
            out[e.numel..].copy_from_slice(scales);
        }
        _ => unreachable!("the reader validated the plane layout"),
    }
    Ok(out)
}

/// A new in-memory file holding the tensors `keep` of `file` (planes copied
/// as they are: the same streams, tables, index and checksums).
pub fn subset_file(file: &WcodecFile, keep: &[usize]) -> Result<WcodecFile> {
    fn role(r: &str) -> &'static str {
        match r {
            "symbols" => "symbols",
            "exponent" => "exponent",
            "sign_mantissa" => "sign_mantissa",
            "high" => "high",
            "low" => "low",
            "q" => "q",
            "scales" => "scales",
            "coef" => "coef",
            _ => "data",
        }
    }
    let b = file.bytes();
    let mut tensors = Vec::with_capacity(keep.len());
    for &t in keep {
        let e = &file.tensors[t];
        let planes = e
            .planes
            .iter()
            .map(|p| match p {
                PlaneInfo::Raw { role: r, data } => EncodedPlane::Raw {
                    role: role(r),
                    bytes: b[data.clone()].to_vec(),
                },
                PlaneInfo::Rans {
                    role: r,
                    grid,
                    prob_bits,
                    tail,
                    tables,
                    index,
                    stream,
                    ..
                } => EncodedPlane::Coded {
                    role: role(r),
                    plane: CodedPlane {
                        grid: *grid,
                        prob_bits: *prob_bits,
                        tail: *tail,
                        tables: tables.clone(),
                        index: index.clone(),
                        stream: b[stream.clone()]
                            .chunks_exact(2)
                            .map(|c| u16::from_le_bytes([c[0], c[1]]))
                            .collect(),
                    },
                },
            })
            .collect();
        tensors.push(EncodedTensor {
            name: e.name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
            encoding: e.encoding,
            checksum: e.checksum,
            planes,
            quant: e.quant,
            lossy: e.lossy,
            quant_sums: None,
        });
    }
    let bytes = crate::format::writer::to_bytes(file.header.metadata.clone(), &tensors)?;
    WcodecFile::from_bytes(bytes)
}

/// Why the wgpu decoder cannot take tensor `t`, if it cannot (it takes every
/// tensor now, lossy transform tiles included).
pub fn wgpu_unsupported(_file: &WcodecFile, _t: usize) -> Option<String> {
    None
}

/// Where byte `off` of tensor `t`'s canonical bytes comes from: the plane,
/// tile and position in the tile (or the raw plane / scale it copies).
pub fn locate(file: &WcodecFile, t: usize, off: usize) -> String {
    let e = &file.tensors[t];
    let tile_of = |elem: usize| -> String {
        match &e.planes[0] {
            PlaneInfo::Rans { grid, .. } => {
                let (row, col) = (elem / grid.cols.max(1), elem % grid.cols.max(1));
                let tile = (row / grid.tile_h) * grid.tiles_x() + col / grid.tile_w;
                let r = grid.tile(tile.min(grid.num_tiles().saturating_sub(1)));
                format!(
                    "planes[0] tile {tile} (tile row {}, column {}; element {elem})",
                    row - r.r0,
                    col - r.c0
                )
            }
            PlaneInfo::Raw { .. } => format!("element {elem}"),
        }
    };
    match e.encoding {
        Encoding::Raw => format!("raw byte {off}"),
        Encoding::Int8 => tile_of(off),
        Encoding::FloatSplit => {
            let size = e.dtype.size();
            format!(
                "{}, byte {} of the {}",
                tile_of(off / size),
                off % size,
                e.dtype
            )
        }
        Encoding::Quant | Encoding::Lossy if off < e.numel => tile_of(off),
        Encoding::Quant => format!("planes[1] scale of row {}", (off - e.numel) / 4),
        Encoding::Lossy => format!("planes[1] scale of tile {}", (off - e.numel) / 4),
    }
}

fn poison_wgpu(ctx: &crate::wgpu::GpuContext, buf: &wgpu::Buffer) {
    ctx.queue
        .write_buffer(buf, 0, &vec![0xffu8; buf.size() as usize]);
}

impl Live {
    pub fn backend(&self) -> Backend {
        match self {
            Live::Cpu => Backend::Cpu,
            Live::Wgpu(_) => Backend::Wgpu,
            #[cfg(feature = "cuda")]
            Live::Cuda(_) => Backend::Cuda,
        }
    }

    /// One line about the device.
    pub fn describe(&self) -> String {
        match self {
            Live::Cpu => format!(
                "cpu ({} threads)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            Live::Wgpu(c) => format!("wgpu: {}", c.describe()),
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => format!("cuda: {}", c.describe()),
        }
    }

    /// The canonical bytes of every tensor of `file`, in order, handed to
    /// `sink(t, bytes or error)`; no checksum is checked (the caller
    /// compares). A tensor the backend cannot decode gets an
    /// [`Error::Unsupported`]; a backend failure that stops the whole
    /// decode is returned.
    pub fn decode_each(
        &self,
        file: &WcodecFile,
        sink: &mut dyn FnMut(usize, Result<Vec<u8>>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Live::Cpu => {
                for t in 0..file.tensors.len() {
                    sink(t, cpu_canonical(file, t))?;
                }
                Ok(())
            }
            Live::Wgpu(ctx) => {
                let keep: Vec<usize> = (0..file.tensors.len())
                    .filter(|&t| wgpu_unsupported(file, t).is_none())
                    .collect();
                let mut got: Vec<Option<Result<Vec<u8>>>> = Vec::new();
                got.resize_with(file.tensors.len(), || None);
                if !keep.is_empty() {
                    let sub = subset_file(file, &keep)?;
                    let opts = crate::wgpu::GpuDecodeOptions {
                        poison: true,
                        ..crate::wgpu::GpuDecodeOptions::from_env()?
                    };
                    let mut dec = crate::wgpu::GpuDecoder::new(ctx, opts)?;
                    let mut stream = crate::wgpu::CanonStream::new(&mut dec, &sub)?;
                    let owner: Vec<usize> = stream.jobs().iter().map(|j| keep[j.tensor]).collect();
                    let mut cur: Option<(usize, Vec<u8>)> = None;
                    loop {
                        match stream.next_piece() {
                            Ok(Some((job, piece, _last))) => {
                                let t = owner[job];
                                match &mut cur {
                                    Some((ct, bytes)) if *ct == t => {
                                        bytes.extend_from_slice(&piece);
                                        stream.recycle(piece);
                                    }
                                    _ => {
                                        if let Some((ct, bytes)) = cur.take() {
                                            got[ct] = Some(Ok(bytes));
                                        }
                                        cur = Some((t, piece));
                                    }
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                // the stream stops: the tensor it was on fails
                                let t = cur
                                    .take()
                                    .map(|c| c.0)
                                    .or_else(|| keep.iter().copied().find(|&t| got[t].is_none()));
                                if let Some(t) = t {
                                    got[t] = Some(Err(e));
                                }
                                break;
                            }
                        }
                    }
                    if let Some((ct, bytes)) = cur.take() {
                        got[ct] = Some(Ok(bytes));
                    }
                }
                for (t, g) in got.into_iter().enumerate() {
                    let r = match g {
                        Some(r) => r,
                        None => Err(match wgpu_unsupported(file, t) {
                            Some(m) => Error::Unsupported {
                                loc: file.loc(&file.tensors[t].name, "encoding"),
                                msg: m,
                            },
                            None => Error::Gpu(format!(
                                "tensor {:?} was not decoded: the wgpu decode stopped at an earlier tensor",
                                file.tensors[t].name
                            )),
                        }),
                    };
                    sink(t, r)?;
                }
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => {
                let dec = crate::cuda::decode::CudaDecoder::new(c, file)?;
                for t in 0..file.tensors.len() {
                    sink(t, dec.decode_bytes(t))?;
                }
                Ok(())
            }
        }
    }

    /// The canonical bytes of tensor `t` (no checksum check).
    pub fn decode_one(&self, file: &WcodecFile, t: usize) -> Result<Vec<u8>> {
        match self {
            Live::Cpu => cpu_canonical(file, t),
            Live::Wgpu(_) => {
                let sub = subset_file(file, &[t])?;
                let mut out = None;
                self.decode_each(&sub, &mut |_, r| {
                    out = Some(r);
                    Ok(())
                })?;
                out.unwrap_or_else(|| Err(Error::Gpu("no tensor decoded".into())))
            }
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => crate::cuda::decode::CudaDecoder::new(c, file)?.decode_bytes(t),
        }
    }

    /// A `quant` or `lossy` tensor dequantised to `dtype` (f32, f16, bf16):
    /// the bytes [`render`] gives, computed by the backend.
    pub fn dequant(&self, file: &WcodecFile, t: usize, dtype: DType) -> Result<Vec<u8>> {
        let e = &file.tensors[t];
        if !matches!(e.encoding, Encoding::Quant | Encoding::Lossy) || !dtype.is_split_float() {
            return Err(Error::Param(format!(
                "tensor {:?}: only quant and lossy tensors are dequantised, to f32, f16 or bf16",
                e.name
            )));
        }
        match self {
            Live::Cpu => Ok(render(e, cpu_canonical(file, t)?, Some(dtype))
                .into_iter()
                .next()
                .unwrap_or_default()),
            Live::Wgpu(ctx) => {
                if let Some(m) = wgpu_unsupported(file, t) {
                    return Err(Error::Unsupported {
                        loc: file.loc(&e.name, "encoding"),
                        msg: m,
                    });
                }
                let sub = subset_file(file, &[t])?;
                let opts = crate::wgpu::GpuDecodeOptions {
                    dtype: Some(dtype),
                    poison: true,
                    ..crate::wgpu::GpuDecodeOptions::from_env()?
                };
                let mut dec = crate::wgpu::GpuDecoder::new(ctx, opts)?;
                let (ts, _) = dec.decode_to_buffers(&sub)?;
                let first = ts
                    .first()
                    .ok_or_else(|| Error::Gpu("no output tensor".into()))?;
                crate::wgpu::read_tensor(ctx, first)
            }
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => {
                crate::cuda::decode::CudaDecoder::new(c, file)?.decode_dequant(t, dtype)
            }
        }
    }

    /// `y[b] = scale ⊙ (W · x[b]) + bias` for `batch` vectors (`x_f16`: the
    /// vectors are read as f16). y is poisoned before the kernel runs.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv(
        &self,
        w: &Weights<'_>,
        rows: usize,
        cols: usize,
        x: &[f32],
        batch: usize,
        bias: Option<&[f32]>,
        x_f16: bool,
    ) -> Result<Vec<f32>> {
        match self {
            Live::Cpu => crate::cpu::gemv::gemv_f32(w, rows, cols, x, batch, bias, x_f16),
            Live::Wgpu(ctx) => {
                use crate::wgpu::gemv::{Gemv, GemvOptions, GemvWeights, VecDtype};
                let gw = GemvWeights::upload(ctx, w, rows, cols, bias)?;
                let g = Gemv::new(
                    ctx,
                    &gw,
                    &GemvOptions {
                        batch,
                        x_dtype: if x_f16 { VecDtype::F16 } else { VecDtype::F32 },
                        ..Default::default()
                    },
                )?;
                g.write_x(&ctx.queue, x)?;
                poison_wgpu(ctx, &g.y);
                g.execute(&ctx.device, &ctx.queue);
                g.read_y(ctx)
            }
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => {
                let g = crate::cuda::gemv::CudaGemv::new(c, w, rows, cols, bias, batch, x_f16)?;
                g.write_x(c, x)?;
                g.poison_y(c)?;
                g.launch(c)?;
                g.read_y(c)
            }
        }
    }

    /// Softmax (or log-softmax) of `rows` rows of `n` logits at temperature
    /// `t`; the output is poisoned before the kernels run.
    pub fn softmax(&self, x: &[f32], rows: usize, n: usize, t: f32, log: bool) -> Result<Vec<f32>> {
        match self {
            Live::Cpu => crate::cpu::softmax::softmax_f32(x, rows, n, t, log),
            Live::Wgpu(ctx) => {
                use crate::wgpu::softmax::{Softmax, SoftmaxOptions};
                let s = Softmax::new(
                    ctx,
                    None,
                    n,
                    rows,
                    n,
                    &SoftmaxOptions {
                        temperature: t,
                        log,
                        ..Default::default()
                    },
                )?;
                s.write_logits(&ctx.queue, x)?;
                poison_wgpu(ctx, &s.out);
                s.execute(&ctx.device, &ctx.queue);
                s.read_out(ctx)
            }
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => {
                use crate::cuda::softmax::CudaSoftmax;
                let s = CudaSoftmax::new(c, n, rows, t, log, Default::default())?;
                s.write_logits(c, x)?;
                c.memset(&s.out, 0, 0xff, rows * n * 4)?;
                s.launch(c)?;
                s.read_out(c)
            }
        }
    }

    /// `calls` sampling calls over the same logits (`rows × n`), row `r`'s
    /// step counter starting at `steps[r]` and advancing by one per call:
    /// the tokens of each call, then the step counters after the last.
    /// Tokens are poisoned (0xffffffff) before every call.
    pub fn sample(
        &self,
        x: &[f32],
        rows: usize,
        n: usize,
        p: &SampleParams,
        steps: &[u64],
        calls: u64,
    ) -> Result<(Vec<Vec<u32>>, Vec<u64>)> {
        if steps.len() != rows || x.len() != rows * n {
            return Err(Error::Param(format!(
                "{} logits and {} steps for {rows} rows of {n}",
                x.len(),
                steps.len()
            )));
        }
        match self {
            Live::Cpu => {
                let mut out = Vec::new();
                for call in 0..calls {
                    let s: Vec<u64> = steps.iter().map(|s| s + call).collect();
                    out.push(crate::cpu::sample::sample(x, rows, n, p, &s)?);
                }
                Ok((out, steps.iter().map(|s| s + calls).collect()))
            }
            Live::Wgpu(ctx) => {
                use crate::wgpu::sample::{Sampler, SamplerOptions};
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
                        ..Default::default()
                    },
                )?;
                s.write_logits(&ctx.queue, x)?;
                s.set_steps(&ctx.queue, steps)?;
                let mut out = Vec::new();
                for _ in 0..calls {
                    poison_wgpu(ctx, &s.tokens);
                    s.execute(&ctx.device, &ctx.queue);
                    out.push(s.read_tokens(ctx)?);
                }
                Ok((out, s.read_steps(ctx)?))
            }
            #[cfg(feature = "cuda")]
            Live::Cuda(c) => {
                use crate::cuda::sample::CudaSampler;
                let s = CudaSampler::new(c, n, rows, p, true, Default::default())?;
                s.write_logits(c, x)?;
                s.set_steps(c, steps)?;
                let mut out = Vec::new();
                for _ in 0..calls {
                    c.memset(&s.tokens, 0, 0xff, rows * 4)?;
                    s.launch(c)?;
                    out.push(s.read_tokens(c)?);
                }
                Ok((out, s.read_steps(c)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_and_list() {
        assert_eq!(Backend::parse("CPU").unwrap(), Backend::Cpu);
        assert_eq!(Backend::parse("gpu").unwrap(), Backend::Wgpu);
        assert_eq!(
            Backend::parse_list("cpu, wgpu,cuda,cpu").unwrap(),
            vec![Backend::Cpu, Backend::Wgpu, Backend::Cuda]
        );
        assert_eq!(
            Backend::parse_list("all").unwrap(),
            Backend::compiled_list()
        );
        assert!(Backend::parse("metal").is_err());
        assert!(Backend::parse_list(",").is_err());
        assert_eq!("cuda".parse::<Backend>().unwrap().to_string(), "cuda");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = Backend::Cuda.open().unwrap_err().to_string();
        assert!(e.contains("built without the cuda feature"), "{e}");
        assert!(!Backend::Cuda.compiled());
    }
}

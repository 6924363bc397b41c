//! Decode on CUDA (`kernels/decode.cu`): a `.wcodec` file's tensors into
//! their canonical bytes (exactly [`crate::codec::decoder::decode_tensor`]'s)
//! or, for `quant` and `lossy` tensors, dequantised f32/f16/bf16 (exactly
//! [`crate::codec::decoder::render`]'s), every encoding and mode included,
//! lossy transform tiles too.
//!
//! The whole file goes to the device once ([`CudaDecoder::new`]); each coded
//! plane is one launch of the fused kernel, with the plane's decode lookup
//! tables built on the host ([`crate::codec::rans::decode_lut`]). A tile
//! that fails FORMAT.md §4 is reported as [`Error::Corrupt`] naming the file,
//! tensor and first bad tile, with the CPU reference's reason for that tile.

use cudarc::driver::{CudaFunction, DeviceRepr, LaunchConfig, PushKernelArg};

use crate::codec::Encoding;
use crate::codec::decoder::{output_tensors, render};
use crate::codec::predict::Mode;
use crate::codec::rans;
use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::format::WcodecFile;
use crate::format::reader::{PlaneInfo, PlaneRef, TensorEntry};

use super::{CudaBackend, DevBuf, kernels};

/// Warps (tiles decoded at once) per block.
pub const WARPS: u32 = 8;

/// Blocks per SM the kernel's registers allow at least (`__launch_bounds__`;
/// `WCODEC_CUDA_MINB` overrides).
pub const MINB: u32 = 1;
/// The most u32 words a warp stages (4224 u16 words: an incompressible
/// 4096-symbol tile with its state block).
pub const MAX_STAGE_U32: u32 = 2112;
/// The stage sizes (u32 words per warp) the decoder picks from: the
/// smallest that holds the plane's longest tile (the largest otherwise).
pub const STAGE_SIZES: [u32; 5] = [128, 256, 512, 1088, MAX_STAGE_U32];

const K_BYTES: u32 = 0;
const K_SPLIT: u32 = 1;
const K_DEQ_ROW: u32 = 2;
const K_DEQ_TILE: u32 = 3;

fn dt_code(d: DType) -> Result<u32> {
    Ok(match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        d => return Err(Error::Param(format!("{d} is not a float output"))),
    })
}

/// The kernel's parameter block (`struct Params` in `decode.cu`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeParams {
    stream: u64,
    index: u64,
    lut: u64,
    out: u64,
    aux: u64,
    errs: u64,
    rows: u32,
    cols: u32,
    tile_h: u32,
    tile_w: u32,
    tiles_x: u32,
    ntiles: u32,
    nwords: u32,
    prob_bits: u32,
    tail_bits: u32,
    tail_base: u32,
    kind: u32,
    src: u32,
    dst: u32,
    xor80: u32,
    tile_first: u32,
    tile_count: u32,
}

// SAFETY: `#[repr(C)]` with the field order, types and size (112 bytes, no
// padding) of `struct Params` in decode.cu.
unsafe impl DeviceRepr for DecodeParams {}

/// What to produce for a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The canonical bytes (the checksum's input).
    Canonical,
    /// `quant` / `lossy` tensors dequantised to this float dtype.
    Dequant(DType),
}

/// One launch of the decode kernel over a coded plane, ready to go.
pub struct PlaneJob {
    f: CudaFunction,
    cfg: LaunchConfig,
    params: DecodeParams,
    _lut: DevBuf,
    /// The kernel variant (defines), for reports.
    pub variant: String,
    pub ntiles: u32,
}

/// A tensor's decode, set up: launches and copies that need no host work.
pub struct Prepared {
    pub tensor: usize,
    job: Option<PlaneJob>,
    /// (dst offset, src offset in the file buffer, len): raw bytes copied into the output.
    copies: Vec<(usize, usize, usize)>,
    pub out: DevBuf,
    pub out_bytes: usize,
    errs: DevBuf,
}

impl Prepared {
    pub fn variant(&self) -> &str {
        self.job.as_ref().map_or("copy", |j| j.variant.as_str())
    }
}

/// The decoder of one file on a [`CudaBackend`].
pub struct CudaDecoder<'a> {
    pub cuda: &'a CudaBackend,
    pub file: &'a WcodecFile,
    dev: DevBuf,
}

impl<'a> CudaDecoder<'a> {
    /// Put the file on the device.
    pub fn new(cuda: &'a CudaBackend, file: &'a WcodecFile) -> Result<CudaDecoder<'a>> {
        let dev = cuda.upload(file.bytes())?;
        Ok(CudaDecoder { cuda, file, dev })
    }

    /// Bytes the file occupies on the device.
    pub fn file_bytes(&self) -> usize {
        self.dev.bytes
    }

    /// Set up tensor `t`'s decode into a new output buffer.
    pub fn prepare(&self, t: usize, output: Output) -> Result<Prepared> {
        let e = &self.file.tensors[t];
        let out_bytes = match output {
            Output::Canonical => e.decoded_bytes(),
            Output::Dequant(d) => {
                if !matches!(e.encoding, Encoding::Quant | Encoding::Lossy) {
                    return Err(Error::Param(format!(
                        "tensor {:?} is {}: only quant and lossy tensors are dequantised",
                        e.name,
                        e.encoding.name()
                    )));
                }
                dt_code(d)?;
                e.numel * d.size()
            }
        };
        let out = self.cuda.alloc(out_bytes)?;
        // poisoned, so that a byte the kernel fails to write shows
        self.cuda.memset(&out, 0, 0xa5, out_bytes)?;
        let errs = self.cuda.alloc(12)?;
        let mut copies = Vec::new();
        let raw_range = |p: &PlaneInfo| match p {
            PlaneInfo::Raw { data, .. } => data.clone(),
            PlaneInfo::Rans { .. } => unreachable!("the reader checked the planes"),
        };
        let job = match (e.encoding, output) {
            (Encoding::Raw, _) => {
                let r = raw_range(&e.planes[0]);
                copies.push((0, r.start, r.len()));
                None
            }
            (Encoding::Int8, _) => {
                let xor = if e.dtype == DType::U8 { 0x80 } else { 0 };
                Some(self.plane_job(e, K_BYTES, 0, 0, xor, 0, out.ptr(), errs.ptr())?)
            }
            (Encoding::FloatSplit, _) => {
                let r = raw_range(&e.planes[1]);
                let src = dt_code(e.dtype)?;
                Some(self.plane_job(
                    e,
                    K_SPLIT,
                    src,
                    0,
                    0,
                    self.dev.at(r.start),
                    out.ptr(),
                    errs.ptr(),
                )?)
            }
            (Encoding::Quant | Encoding::Lossy, Output::Canonical) => {
                let r = raw_range(&e.planes[1]);
                copies.push((e.numel, r.start, r.len()));
                Some(self.plane_job(e, K_BYTES, 0, 0, 0, 0, out.ptr(), errs.ptr())?)
            }
            (Encoding::Quant | Encoding::Lossy, Output::Dequant(d)) => {
                let r = raw_range(&e.planes[1]);
                let kind = if e.encoding == Encoding::Quant {
                    K_DEQ_ROW
                } else {
                    K_DEQ_TILE
                };
                Some(self.plane_job(
                    e,
                    kind,
                    0,
                    dt_code(d)?,
                    0,
                    self.dev.at(r.start),
                    out.ptr(),
                    errs.ptr(),
                )?)
            }
        };
        Ok(Prepared {
            tensor: t,
            job,
            copies,
            out,
            out_bytes,
            errs,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn plane_job(
        &self,
        e: &TensorEntry,
        kind: u32,
        src: u32,
        dst: u32,
        xor80: u32,
        aux: u64,
        out: u64,
        errs: u64,
    ) -> Result<PlaneJob> {
        let PlaneInfo::Rans {
            grid,
            prob_bits,
            tail,
            tables,
            index,
            index_range,
            stream,
            ..
        } = &e.planes[0]
        else {
            unreachable!("the reader checked the planes")
        };
        let ntiles = grid.num_tiles();
        if ntiles > u32::MAX as usize || stream.len() / 2 > u32::MAX as usize {
            return Err(Error::Unsupported {
                loc: self.file.loc(&e.name, "planes[0]"),
                msg: "planes of 2^32 tiles or stream words or more are not decoded on CUDA".into(),
            });
        }
        let nwords = (stream.len() / 2) as u32;
        let lossy = e.encoding == Encoding::Lossy;
        let modes = lossy
            || index
                .iter()
                .any(|t| !matches!(t.mode, Mode::None | Mode::Planar));
        // the stage holds the longest tile, up to MAX_STAGE_U32
        let mut longest = 0u32;
        for (t, te) in index.iter().enumerate() {
            let end = index.get(t + 1).map_or(nwords, |n| n.offset);
            let nw = end.saturating_sub(te.offset);
            longest = longest.max(((te.offset & 1) + nw + 1) >> 1);
        }
        let ntab = tables.len().clamp(1, 4) as u32;
        let tb = if modes { 4096 } else { 0 };
        let mut warps = WARPS;
        // a few stage sizes, so that few kernel variants are compiled
        let mut stage = STAGE_SIZES
            .into_iter()
            .find(|&s| s >= longest)
            .unwrap_or(MAX_STAGE_U32);
        let smem = |warps: u32, stage: u32| ntab * 16384 + warps * (stage.max(1) * 4 + tb);
        while smem(warps, stage) > self.cuda.smem_optin && warps > 1 {
            warps /= 2;
        }
        if smem(warps, stage) > self.cuda.smem_optin {
            stage = 0;
        }
        let shared = smem(warps, stage);
        // blocks per SM the registers must allow (`WCODEC_CUDA_MINB`)
        let minb = std::env::var("WCODEC_CUDA_MINB")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(MINB)
            .clamp(1, 32);
        let defines = [
            ("MINB", minb as i64),
            ("WARPS", warps as i64),
            ("STAGE_U32", stage as i64),
            ("NTAB", ntab as i64),
            ("MODES", modes as i64),
            ("LOSSY", lossy as i64),
        ];
        let f = self
            .cuda
            .function("decode", kernels::DECODE, &defines, "rans_decode")?;
        self.cuda.allow_smem(&f, shared)?;
        let per_sm = self.cuda.blocks_per_sm(&f, warps * 32, shared)?.max(1);
        let blocks = (self.cuda.sms * per_sm)
            .min((ntiles as u32).div_ceil(warps))
            .max(1);
        let mut lut = Vec::with_capacity(ntab as usize * 4096);
        for t in tables.iter() {
            lut.extend_from_slice(&rans::decode_lut(t)[..]);
        }
        let lut_bytes: Vec<u8> = lut.iter().flat_map(|v| v.to_le_bytes()).collect();
        let lut_buf = self.cuda.upload(&lut_bytes)?;
        let params = DecodeParams {
            stream: self.dev.at(stream.start),
            index: self.dev.at(index_range.start),
            lut: lut_buf.ptr(),
            out,
            aux,
            errs,
            rows: grid.rows as u32,
            cols: grid.cols as u32,
            tile_h: grid.tile_h as u32,
            tile_w: grid.tile_w as u32,
            tiles_x: grid.tiles_x() as u32,
            ntiles: ntiles as u32,
            nwords,
            prob_bits: *prob_bits,
            tail_bits: tail.bits as u32,
            tail_base: tail.base as u32,
            kind,
            src,
            dst,
            xor80,
            tile_first: 0,
            tile_count: ntiles as u32,
        };
        if grid.rows > u32::MAX as usize || grid.cols > u32::MAX as usize {
            return Err(Error::Unsupported {
                loc: self.file.loc(&e.name, "planes[0]"),
                msg: "grids of 2^32 rows or columns are not decoded on CUDA".into(),
            });
        }
        Ok(PlaneJob {
            f,
            cfg: LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (warps * 32, 1, 1),
                shared_mem_bytes: shared,
            },
            params,
            _lut: lut_buf,
            variant: format!(
                "warps={warps} stage={stage} tables={ntab} modes={} lossy={} blocks={blocks} per_sm={per_sm} minb={minb}",
                modes as u8, lossy as u8
            ),
            ntiles: ntiles as u32,
        })
    }

    /// Enqueue the decode (asynchronous): reset the error words, launch,
    /// copy the raw parts. Touches no host memory but the parameters.
    pub fn launch(&self, p: &Prepared) -> Result<()> {
        for &(dst, src, len) in &p.copies {
            self.cuda.copy(&p.out, dst, &self.dev, src, len)?;
        }
        if let Some(j) = &p.job {
            self.cuda.memset(&p.errs, 0, 0, 12)?;
            self.cuda.launch("rans_decode", &j.f, j.cfg, |b| {
                b.arg(&j.params);
            })?;
        }
        Ok(())
    }

    /// Wait for a launched decode and check its error words.
    pub fn finish(&self, p: &Prepared) -> Result<()> {
        self.cuda.sync()?;
        let Some(j) = &p.job else { return Ok(()) };
        let w = self.cuda.read(&p.errs, 0, 12)?;
        let word = |i: usize| u32::from_le_bytes(w[4 * i..4 * i + 4].try_into().unwrap());
        let (bits, first, done) = (word(0), !word(1), word(2));
        let e = &self.file.tensors[p.tensor];
        if bits != 0 {
            return Err(self.tile_error(p.tensor, first as usize, bits));
        }
        if done != j.ntiles {
            return Err(Error::Cuda(format!(
                "tensor {:?}: the decode finished {done} of {} tiles",
                e.name, j.ntiles
            )));
        }
        Ok(())
    }

    /// The error of a tile the kernel flagged: the CPU reference's reason.
    fn tile_error(&self, t: usize, tile: usize, bits: u32) -> Error {
        let e = &self.file.tensors[t];
        let loc = Location {
            file: self.file.path().map(|p| p.to_path_buf()),
            tensor: Some(e.name.clone()),
            field: Some(format!("tile {tile}")),
        };
        let planes = self.file.planes(t);
        let reason = match planes.first() {
            Some(PlaneRef::Coded(v)) if tile < v.grid.num_tiles() => {
                let luts = v.luts();
                let mut buf = vec![0u8; crate::codec::tile::MAX_TILE_SYMBOLS];
                match v.decode_tile(tile, &luts, &mut buf) {
                    Err(te) => te.to_string(),
                    Ok(()) => format!(
                        "the CUDA decoder flags this tile (bits {bits:#x}) but the CPU reference decodes it"
                    ),
                }
            }
            _ => format!("the CUDA decoder flags tile {tile} (bits {bits:#x})"),
        };
        Error::corrupt(loc, reason)
    }

    /// Decode tensor `t` into a device buffer (checked for stream errors,
    /// not for the checksum).
    pub fn decode(&self, t: usize, output: Output) -> Result<Prepared> {
        let p = self.prepare(t, output)?;
        self.launch(&p)?;
        self.finish(&p)?;
        Ok(p)
    }

    /// Tensor `t`'s canonical bytes, read back (stream errors are errors;
    /// the checksum is not checked).
    pub fn decode_bytes(&self, t: usize) -> Result<Vec<u8>> {
        let p = self.decode(t, Output::Canonical)?;
        self.cuda.read(&p.out, 0, p.out_bytes)
    }

    /// Tensor `t`'s canonical bytes, read back; the checksum is verified.
    pub fn decode_canonical(&self, t: usize) -> Result<Vec<u8>> {
        let bytes = self.decode_bytes(t)?;
        let e = &self.file.tensors[t];
        let actual = crate::codec::checksum(&bytes);
        if actual != e.checksum {
            return Err(Error::Checksum {
                loc: self.file.loc(&e.name, "checksum"),
                stored: e.checksum,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Tensor `t` (quant or lossy) dequantised on the device to `dtype`, read back.
    pub fn decode_dequant(&self, t: usize, dtype: DType) -> Result<Vec<u8>> {
        let p = self.decode(t, Output::Dequant(dtype))?;
        self.cuda.read(&p.out, 0, p.out_bytes)
    }
}

/// Decode every tensor to a safetensors file on CUDA: canonical bytes
/// decoded on the device (every checksum checked), casts and dequantisation
/// rendered on the host from them, as the wgpu path does.
pub fn decode_to_safetensors(
    cuda: &CudaBackend,
    file: &WcodecFile,
    out: &std::path::Path,
    dtype: Option<DType>,
    on_tensor: &(dyn Fn(usize) + Sync),
) -> Result<()> {
    if let Some(p) = file.path() {
        crate::io::atomic::refuse_overwrite(p, out)?;
    }
    let dec = CudaDecoder::new(cuda, file)?;
    let outs: Vec<crate::io::safetensors::OutTensor> = file
        .tensors
        .iter()
        .flat_map(|e| output_tensors(e, dtype))
        .collect();
    let mut owner = Vec::with_capacity(outs.len());
    for (t, e) in file.tensors.iter().enumerate() {
        for _ in 0..output_tensors(e, dtype).len() {
            owner.push(t);
        }
    }
    let mut ready: std::collections::VecDeque<Vec<u8>> = Default::default();
    crate::io::safetensors::write_streaming(out, file.header.metadata.as_ref(), &outs, |i, w| {
        if ready.is_empty() {
            let t = owner[i];
            ready = render(&file.tensors[t], dec.decode_canonical(t)?, dtype).into();
        }
        let b = ready
            .pop_front()
            .ok_or_else(|| Error::Cuda(format!("output {} was not rendered", outs[i].name)))?;
        w.write_all(&b).map_err(|e| Error::io(out, e))?;
        on_tensor(b.len());
        Ok(())
    })
}

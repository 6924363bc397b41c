//! Decode a `.wcodec` file on the GPU (mirrors [`crate::cpu::decode`]):
//! into one `wgpu::Buffer` per output tensor ([`GpuDecoder::decode_to_buffers`],
//! [`decode_file`] on a caller's device), or to a safetensors file
//! ([`decode_to_safetensors`]) with bounded memory.
//!
//! Streaming: compressed bytes go from the memory-mapped file into a ring of
//! two mapped staging buffers, are copied to a ring of two device input
//! buffers and decoded there, so that filling one staging buffer overlaps the
//! GPU's copy and decode of the other. A plane larger than one staging chunk
//! or one storage binding is cut into chunks at tile or band boundaries;
//! small tensors share a dispatch. Beside the outputs, device memory holds the
//! input ring, one staged-output chunk and a little scratch; the report gives
//! the high-water mark.
//!
//! Every chunk is one dispatch of `shaders/rans_decode*.wgsl` (and, for
//! grids whose rows do not start on a word, one of `render_unaligned.wgsl`
//! per such plane). Tile errors land in an error buffer read at the end
//! (buffers) or per chunk (streams); the streaming paths also check every
//! tensor's checksum on the bytes they read back.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use xxhash_rust::xxh3::Xxh3Default;

use crate::codec::decoder::{output_tensors, render};
use crate::codec::predict::Mode;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::WcodecFile;
use crate::io::safetensors::{OutTensor, write_streaming};

use super::context::{GpuContext, GpuTimer, Kernel, PooledBuffer};
use super::plan::*;
use super::shaders::{self, DecodePath, DecodeVariant, FastOut, FastVariant};

/// Decoder settings.
#[derive(Debug, Clone)]
pub struct GpuDecodeOptions {
    /// Output dtype (see [`crate::codec::decoder::output_tensors`]); `None` keeps the source's.
    pub dtype: Option<DType>,
    pub tuning: Tuning,
    /// Bytes of each staging buffer (one input chunk); clamped to the device's limits.
    pub staging_bytes: u64,
    /// Outputs of at most this many bytes share dispatches.
    pub batch_bytes: u64,
    /// `decode_to_buffers` only: decode the canonical bytes once more, read
    /// them back and check every tensor's checksum.
    pub verify: bool,
    /// Time each dispatch with timestamp queries (if the device can).
    pub timestamps: bool,
    /// Fill every output and staged buffer with 0xA5 before decoding, so
    /// that a byte the decoder fails to write shows (tests).
    pub poison: bool,
}

impl Default for GpuDecodeOptions {
    fn default() -> Self {
        GpuDecodeOptions {
            dtype: None,
            tuning: Tuning::default(),
            staging_bytes: 64 << 20,
            batch_bytes: 16 << 20,
            verify: false,
            timestamps: false,
            poison: false,
        }
    }
}

impl GpuDecodeOptions {
    /// Defaults with the `WCODEC_GPU_*` tuning variables applied.
    pub fn from_env() -> Result<GpuDecodeOptions> {
        Ok(GpuDecodeOptions {
            tuning: Tuning::from_env()?,
            ..Default::default()
        })
    }
}

/// One decoded tensor in GPU memory.
#[derive(Debug)]
pub struct GpuTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Bytes of the tensor (its buffer is this rounded up to a multiple of 4).
    pub bytes: u64,
    pub buffer: wgpu::Buffer,
}

/// What a decode did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DecodeReport {
    pub device: String,
    pub path: String,
    pub variants: Vec<String>,
    pub tensors: usize,
    /// Bytes of every output tensor.
    pub output_bytes: u64,
    /// Bytes uploaded (compressed data with descriptors and tables).
    pub input_bytes: u64,
    pub chunks: usize,
    pub wall_s: f64,
    /// Sum of the decode passes' GPU time, when timed.
    pub gpu_s: Option<f64>,
    /// The decoder's device memory beside the outputs: its pool's high-water
    /// mark (the input ring, staged outputs, scratch, error words).
    pub peak_working_bytes: u64,
    /// Host-visible staging memory (the two upload buffers).
    pub staging_bytes: u64,
    /// Where the host's wall time went (seconds).
    pub phases: Phases,
}

/// Host-side wall time of one decode, by phase (seconds).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Phases {
    /// Planning: jobs, chunks, output buffers.
    pub plan_s: f64,
    /// Waiting for a staging buffer to come back from the device.
    pub acquire_s: f64,
    /// Laying out chunks in staging memory (the copy of the compressed bytes
    /// into mapped memory) and building their dispatches.
    pub stage_s: f64,
    /// Recording and submitting command buffers.
    pub submit_s: f64,
    /// The final wait for the device, and the error-word readback.
    pub wait_s: f64,
}

/// A part's place in the buffer the kernel writes.
#[derive(Debug, Clone)]
struct Placed {
    /// Offset of output byte `base` in that buffer.
    region: u64,
    /// `round_down(out.start, ALIGN)`.
    base: u64,
    out: Range<u64>,
}

/// The output binding of a chunk.
struct OutBinding<'a> {
    buffer: &'a wgpu::Buffer,
    offset: u64,
    size: u64,
}

enum Src<'a> {
    File(Range<usize>),
    Bytes(&'a [u8]),
}

/// A chunk's input: the plan words, then data pieces at 16-byte offsets.
struct InputLayout<'a> {
    pieces: Vec<(u64, Src<'a>)>,
    data_len: u64,
}

impl<'a> InputLayout<'a> {
    /// Reserve `len` bytes (at least) for `src`; returns the data offset.
    fn add(&mut self, src: Src<'a>, len: u64) -> u64 {
        let at = self.data_len;
        self.data_len = round_up(at + len.max(4), 16);
        self.pieces.push((at, src));
        at
    }
}

/// One dispatch: kernel, bind group, workgroups.
struct Dispatch {
    kernel: Arc<Kernel>,
    bind: wgpu::BindGroup,
    workgroups: u32,
}

/// A chunk ready to encode.
struct Prepared {
    /// The decode dispatches (fast kernels, general kernel), one compute pass.
    dispatches: Vec<Dispatch>,
    /// render_unaligned passes: kernel, bind group, workgroups.
    unaligned: Vec<(Arc<Kernel>, wgpu::BindGroup, u32)>,
    /// Regions to zero before the decode: (buffer, offset, size).
    clears: Vec<(wgpu::Buffer, u64, u64)>,
    /// Bytes of the input buffer the chunk uses.
    input_bytes: u64,
    /// Where the data pieces start in the input buffer (after the plan).
    data_off: u64,
    /// Copies of raw parts from the input: (part, input offset, size).
    raw: Vec<(usize, u64, u64)>,
    _scratch: Option<PooledBuffer>,
}

impl Prepared {
    fn encode(&self, enc: &mut wgpu::CommandEncoder, timer: Option<&mut GpuTimer>) {
        for (b, off, size) in &self.clears {
            enc.clear_buffer(b, *off, Some(*size));
        }
        {
            let tw = timer.and_then(|t| t.next_pass());
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wcodec.decode"),
                timestamp_writes: tw,
            });
            for d in &self.dispatches {
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, &d.bind, &[]);
                pass.dispatch_workgroups(d.workgroups, 1, 1);
            }
        }
        for (k, bg, n) in &self.unaligned {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wcodec.render_unaligned"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&k.pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*n, 1, 1);
        }
    }
}

/// One slot of the upload ring.
struct RingSlot {
    staging: wgpu::Buffer,
    mapped: Arc<AtomicBool>,
    pending: Option<wgpu::SubmissionIndex>,
    input: PooledBuffer,
}

/// The GPU decoder: a context plus its tuning and upload ring.
pub struct GpuDecoder<'c> {
    ctx: &'c GpuContext,
    opts: GpuDecodeOptions,
    path: DecodePath,
    limits: Limits,
    /// Largest staging buffer the options allow.
    staging_cap: u64,
    ring: Vec<RingSlot>,
    next: usize,
    dummy: PooledBuffer,
    variants: Vec<DecodeVariant>,
    fast_variants: Vec<FastVariant>,
    uploaded: u64,
    phases: Phases,
}

fn copy_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

impl<'c> GpuDecoder<'c> {
    pub fn new(ctx: &'c GpuContext, opts: GpuDecodeOptions) -> Result<GpuDecoder<'c>> {
        let path = pick_path(
            opts.tuning.path,
            ctx.has(wgpu::Features::SUBGROUP),
            ctx.info.subgroup_min_size,
            ctx.info.subgroup_max_size,
        )?;
        let l = &ctx.limits;
        let binding = round_down(
            l.max_storage_buffer_binding_size.min(l.max_buffer_size),
            ALIGN,
        );
        let staging = round_up(opts.staging_bytes.clamp(4 << 20, binding), ALIGN);
        let limits = Limits {
            input: staging - (1 << 20),
            binding,
            batch_out: opts.batch_bytes.min(binding / 4),
            batch_staged: (4 * opts.batch_bytes).clamp(1 << 20, binding),
            scratch: binding.min(256 << 20),
            segments: 2048,
        };
        let dummy = ctx.buffer("wcodec.dummy", 256, wgpu::BufferUsages::STORAGE)?;
        Ok(GpuDecoder {
            ctx,
            opts,
            path,
            limits,
            staging_cap: staging,
            ring: Vec::new(),
            next: 0,
            dummy,
            variants: Vec::new(),
            fast_variants: Vec::new(),
            uploaded: 0,
            phases: Phases::default(),
        })
    }

    /// Make the upload ring hold chunks of `need` bytes: two mapped staging
    /// buffers and two device input buffers, sized to the work (at most the
    /// staging size of the options).
    fn ensure_ring(&mut self, need: u64) -> Result<()> {
        let ctx = self.ctx;
        let size = round_up(need.max(1 << 16), 1 << 16).min(self.staging_cap);
        if !self.ring.is_empty() && self.ring[0].staging.size() >= size {
            return Ok(());
        }
        ctx.wait()?;
        self.ring.clear();
        for i in 0..2 {
            let staging = ctx.scoped("allocating a staging buffer", || {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("wcodec.staging{i}")),
                    size,
                    usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: true,
                })
            })?;
            let input = ctx.buffer(&format!("wcodec.input{i}"), size, copy_usage())?;
            self.ring.push(RingSlot {
                staging,
                mapped: Arc::new(AtomicBool::new(true)),
                pending: None,
                input,
            });
        }
        self.next = 0;
        Ok(())
    }

    /// Bytes the ring must hold for these chunks.
    fn ring_need(chunks: &[Chunk]) -> u64 {
        chunks
            .iter()
            .map(|c| c.input_bytes + 64 * 1024 + 512 * c.parts.len() as u64)
            .max()
            .unwrap_or(0)
    }

    pub fn path(&self) -> DecodePath {
        self.path
    }

    pub fn context(&self) -> &GpuContext {
        self.ctx
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Wait until ring slot `i`'s staging buffer is mapped again.
    fn acquire(&mut self, i: usize) -> Result<()> {
        let slot = &mut self.ring[i];
        for _ in 0..10_000 {
            if slot.mapped.load(Ordering::Acquire) {
                slot.pending = None;
                return Ok(());
            }
            let poll = match slot.pending.clone() {
                Some(idx) => wgpu::PollType::Wait {
                    submission_index: Some(idx),
                    timeout: None,
                },
                None => wgpu::PollType::wait_indefinitely(),
            };
            self.ctx
                .device
                .poll(poll)
                .map_err(|e| Error::Gpu(format!("waiting for an upload: {e}")))?;
            self.ctx.check_health()?;
        }
        Err(Error::Gpu(
            "a staging buffer never came back from the device".into(),
        ))
    }

    /// Unmap ring slot `i`, copy its first `bytes` into its input buffer.
    fn upload(&mut self, i: usize, bytes: u64, enc: &mut wgpu::CommandEncoder) {
        let slot = &mut self.ring[i];
        slot.staging.unmap();
        slot.mapped.store(false, Ordering::Release);
        enc.copy_buffer_to_buffer(&slot.staging, 0, &slot.input, 0, bytes);
        self.uploaded += bytes;
    }

    /// After the submission that used ring slot `i`: map it for the next use.
    fn recycle(&mut self, i: usize, sub: wgpu::SubmissionIndex) {
        let slot = &mut self.ring[i];
        let flag = slot.mapped.clone();
        slot.staging.map_async(wgpu::MapMode::Write, .., move |r| {
            if r.is_ok() {
                flag.store(true, Ordering::Release);
            }
        });
        slot.pending = Some(sub);
    }

    /// Lay out chunk `c` in ring slot `slot`'s (mapped) staging buffer and
    /// build its kernels. `placed[i]` is part i's place in `out`; `input`
    /// is the device buffer the chunk will be copied to.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &mut self,
        file: &WcodecFile,
        jobs: &[OutJob],
        c: &Chunk,
        staging: &wgpu::Buffer,
        input: &wgpu::Buffer,
        out: &OutBinding<'_>,
        placed: &[Placed],
        errs: &wgpu::Buffer,
    ) -> Result<Prepared> {
        let ctx = self.ctx;
        let mut max_tables = 1u32;
        let mut modes = false;
        let mut lossy = false;
        for p in &c.parts {
            if let Part::Seg { job, tiles, .. } = p {
                let pl = plane_of(file, jobs[*job].tensor);
                lossy |= file.tensors[jobs[*job].tensor].encoding == crate::codec::Encoding::Lossy;
                max_tables = max_tables.max(pl.tables.len() as u32);
                // PLANAR is applied as tiles are written; the others need the tile buffers
                modes |= pl.index[tiles.clone()]
                    .iter()
                    .any(|e| !matches!(e.mode, Mode::None | Mode::Planar));
            }
        }
        let sg32 = self.path == DecodePath::SubgroupWide
            && ctx.info.subgroup_min_size == 32
            && ctx.info.subgroup_max_size == 32;
        let variant = pick_variant(
            self.path,
            sg32,
            max_tables,
            modes,
            lossy,
            &self.opts.tuning,
            ctx.limits.max_compute_workgroup_storage_size,
            ctx.limits
                .max_compute_invocations_per_workgroup
                .min(ctx.limits.max_compute_workgroup_size_x),
        )?;
        let per_unit = variant.tiles as usize;
        // ---- the fast kernel: the tiles it may take, and its variant per output kind
        let wg_bytes = ctx.limits.max_compute_workgroup_storage_size;
        let wg_threads = ctx
            .limits
            .max_compute_invocations_per_workgroup
            .min(ctx.limits.max_compute_workgroup_size_x);
        let tune = &self.opts.tuning;
        let fpath = if tune.fast {
            fast_path(self.path, sg32)
        } else {
            None
        };
        // per part: its fast output kind and candidate tiles (tile in segment, table, words)
        type Cands = Option<(FastOut, Vec<(u32, u8, u32)>)>;
        let mut cands: Vec<Cands> = vec![None; c.parts.len()];
        let mut fvariants: Vec<FastVariant> = Vec::new();
        if let Some(fpath) = fpath {
            let mut words_by: Vec<(FastOut, Vec<u32>)> = Vec::new();
            for (pi, p) in c.parts.iter().enumerate() {
                let Part::Seg { job, tiles, .. } = p else {
                    continue;
                };
                let Producer::Kernel { kind, .. } = jobs[*job].producer else {
                    continue;
                };
                // lossy planes: the fast lossy kernel (full tiles, any type)
                let is_lossy =
                    file.tensors[jobs[*job].tensor].encoding == crate::codec::Encoding::Lossy;
                let fo = if is_lossy {
                    kind.fast_lossy_out().filter(|_| tune.fast_lossy)
                } else {
                    kind.fast_out()
                };
                let Some(fo) = fo else {
                    continue;
                };
                let pl = plane_of(file, jobs[*job].tensor);
                if !aligned(&pl.grid, kind.elem_size()) {
                    continue;
                }
                let mut v = Vec::new();
                for t in tiles.clone() {
                    let e = &pl.index[t];
                    let cand = if is_lossy {
                        fast_lossy_candidate(&pl.grid, t)
                    } else {
                        fast_candidate(&pl.grid, e, t)
                    };
                    if cand {
                        let nw = (pl.tile_end(t) - e.offset as u64) as u32;
                        v.push(((t - tiles.start) as u32, e.table, nw));
                    }
                }
                if v.is_empty() {
                    continue;
                }
                let words = v.iter().map(|x| x.2);
                match words_by.iter_mut().find(|w| w.0 == fo) {
                    Some(w) => w.1.extend(words),
                    None => words_by.push((fo, words.collect())),
                }
                cands[pi] = Some((fo, v));
            }
            for (fo, mut w) in words_by {
                if let Some(fv) = pick_fast_variant(fpath, fo, tune, &mut w, wg_bytes, wg_threads) {
                    fvariants.push(fv);
                }
            }
        }
        // fast tables (plan words, relative) and lists; groups: (variant, segment, table, list start, count)
        let mut luts: Vec<u32> = Vec::new();
        let mut lists: Vec<u32> = Vec::new();
        let mut groups: Vec<(usize, usize, usize, usize, usize)> = Vec::new();
        let mut seg_lut: Vec<Option<usize>> = Vec::new();
        let mut general_tiles = 0usize;
        let nseg = c
            .parts
            .iter()
            .filter(|p| matches!(p, Part::Seg { .. }))
            .count();
        let mut tables: Vec<u32> = Vec::new();
        let mut segs: Vec<[u32; SEG_WORDS]> = Vec::new();
        let mut lay = InputLayout {
            pieces: Vec::new(),
            data_len: 0,
        };
        let mut raw = Vec::new();
        let mut units = 0u32;
        let mut unaligned = Vec::new(); // segment numbers
        let mut scratch_words = 0u64;
        for (pi, p) in c.parts.iter().enumerate() {
            let j = match p {
                Part::Seg { job, .. } | Part::Copy { job } => &jobs[*job],
            };
            let Part::Seg {
                tiles,
                out: part_out,
                slot: err_slot,
                ..
            } = p
            else {
                let (src, len) = match &j.producer {
                    Producer::File(r) => (Src::File(r.clone()), r.len() as u64),
                    Producer::Host(b) => (Src::Bytes(b.as_slice()), b.len() as u64),
                    Producer::Kernel { .. } => unreachable!("copy parts are not kernel jobs"),
                };
                let at = lay.add(src, len);
                raw.push((pi, at, round_up(len.max(4), 4)));
                continue;
            };
            let Producer::Kernel { kind, aux } = &j.producer else {
                unreachable!("seg parts are kernel jobs")
            };
            let pl = plane_of(file, j.tensor);
            let g = pl.grid;
            let (t0, t1) = (tiles.start, tiles.end);
            let mut f = [0u32; SEG_WORDS];
            f[S_UNIT_START] = units;
            units += (t1 - t0).div_ceil(per_unit) as u32;
            f[S_TILE_FIRST] = t0 as u32;
            f[S_TILE_COUNT] = (t1 - t0) as u32;
            f[S_ROWS] = g.rows as u32;
            f[S_COLS] = g.cols as u32;
            f[S_TILE_H] = g.tile_h as u32;
            f[S_TILE_W] = g.tile_w as u32;
            f[S_TILES_X] = g.tiles_x() as u32;
            f[S_PROB_BITS] = pl.prob_bits;
            f[S_TAIL] = pl.tail.bits as u32 | (pl.tail.base as u32) << 8;
            f[S_NTABLES] = pl.tables.len() as u32;
            f[S_TABLE_OFF] = (HDR_WORDS + nseg * SEG_WORDS + tables.len()) as u32;
            for t in pl.tables {
                for s in 0..256 {
                    tables.push(t.freq[s] | t.cum[s] << 16);
                }
            }
            let ib = pl.index_range.start + 8 * t0;
            f[S_INDEX_BASE] =
                (lay.add(Src::File(ib..ib + 8 * (t1 - t0)), 8 * (t1 - t0) as u64) / 4) as u32;
            let w_lo = pl.index[t0].offset as u64;
            let w_hi = pl.tile_end(t1 - 1);
            let b0 = round_down(pl.stream.start as u64 + 2 * w_lo, 4) as usize;
            let b1 = (round_up(pl.stream.start as u64 + 2 * w_hi, 4) as usize).min(file.file_len());
            f[S_STREAM_BASE] = (lay.add(Src::File(b0..b1), (b1 - b0) as u64 + 4) / 4) as u32;
            f[S_WORD_ORIGIN] = ((b0 - pl.stream.start) / 2) as u32;
            f[S_WORD_LO] = w_lo as u32;
            f[S_WORD_HI] = w_hi as u32;
            let rows = pl.rows(t0, t1);
            let el = pl.elems(t0, t1);
            let (row_org, col_org) = if g.rows == 1 {
                (0, el.start as usize)
            } else {
                (rows.start, 0)
            };
            f[S_ROW_ORG] = row_org as u32;
            f[S_COL_ORG] = col_org as u32;
            match kind {
                OutKind::Split { src, .. } => {
                    let rb = crate::codec::float_split::raw_bytes_per_element(*src) as u64;
                    let r = aux.clone().expect("a float-split job has its raw plane");
                    let (a, b) = (
                        r.start + (el.start * rb) as usize,
                        r.start + (el.end * rb) as usize,
                    );
                    f[S_RAW_BASE] = (lay.add(Src::File(a..b), (b - a) as u64 + 16) / 4) as u32;
                }
                OutKind::Deq { .. } => {
                    let r = aux.clone().expect("a quant job has its scales");
                    let (a, b) = (r.start + 4 * rows.start, r.start + 4 * rows.end);
                    f[S_SCALE_BASE] = (lay.add(Src::File(a..b), (b - a) as u64) / 4) as u32;
                }
                OutKind::DeqTile { .. } => {
                    let r = aux.clone().expect("a lossy job has its tile scales");
                    let (a, b) = (r.start + 4 * t0, r.start + 4 * t1);
                    f[S_SCALE_BASE] = (lay.add(Src::File(a..b), (b - a) as u64) / 4) as u32;
                }
                OutKind::Bytes { .. } => {}
            }
            let elem = kind.elem_size();
            let pc = &placed[pi];
            debug_assert_eq!(&pc.out, part_out);
            // element e of the output sits at element e + adj - first of the window
            let pos = part_out.start - pc.base + pc.region - out.offset;
            let adj = pos / elem;
            f[S_OUT_ADJ] = u32::try_from(adj)
                .map_err(|_| Error::Gpu("an output window offset overflows".into()))?;
            let mut k = kind.code();
            if file.tensors[j.tensor].encoding == crate::codec::Encoding::Lossy {
                k |= F_LOSSY;
            }
            if !aligned(&g, elem) {
                k |= F_SCRATCH;
                f[S_SCRATCH_BASE] = scratch_words as u32;
                scratch_words += 1024 * (t1 - t0) as u64;
                let first = pos / 4;
                let last = (pos + part_out.end - part_out.start).div_ceil(4);
                f[S_U_WORD_FIRST] = first as u32;
                f[S_U_WORD_COUNT] = (last - first) as u32;
                f[S_U_ELO] = adj as u32;
                f[S_U_EHI] = (adj + (part_out.end - part_out.start) / elem) as u32;
                unaligned.push((segs.len(), pi));
            }
            f[S_KIND] = k;
            f[S_ERR_SLOT] = *err_slot as u32;
            // the tiles the fast kernel takes: lists per table
            let mut fast_tiles = 0usize;
            let mut lut_at = None;
            if let Some((fo, v)) = &cands[pi]
                && let Some(fi) = fvariants.iter().position(|x| x.out == *fo)
            {
                let maxw = fvariants[fi].max_words();
                let mut per_table: Vec<Vec<u32>> = vec![Vec::new(); pl.tables.len()];
                for &(rel, tab, nw) in v {
                    if nw <= maxw {
                        per_table[tab as usize].push(rel);
                    }
                }
                if matches!(fo, FastOut::Lossy { .. }) {
                    // tiles of one type and predictor together: a fast lossy
                    // workgroup runs the rebuild phases its slowest tile needs
                    for list in &mut per_table {
                        list.sort_by_key(|&rel| {
                            let e = &pl.index[t0 + rel as usize];
                            (e.mode as u32, (e.params >> 12) & 3)
                        });
                    }
                }
                let mut mask = 0u32;
                for (k, list) in per_table.iter().enumerate() {
                    if !list.is_empty() {
                        mask |= 1 << k;
                        fast_tiles += list.len();
                        groups.push((fi, segs.len(), k, lists.len(), list.len()));
                        lists.extend_from_slice(list);
                    }
                }
                if mask != 0 {
                    f[S_FAST] = mask | maxw << 16;
                    lut_at = Some(luts.len());
                    for t in pl.tables {
                        luts.extend_from_slice(&crate::codec::rans::decode_lut(t)[..]);
                    }
                }
            }
            general_tiles += (t1 - t0) - fast_tiles;
            seg_lut.push(lut_at);
            segs.push(f);
        }
        // plan words: header, segments, tables; then one 256-byte block per
        // unaligned segment (header + that segment) for render_unaligned
        let mut plan: Vec<u32> = vec![nseg as u32, units, 0, 0];
        for s in &segs {
            plan.extend_from_slice(s);
        }
        plan.extend_from_slice(&tables);
        // the fast kernel's tables and lists, then one block of group records
        // per variant (256-byte aligned: each is bound on its own)
        let lut_base = plan.len();
        plan.extend_from_slice(&luts);
        for (si, at) in seg_lut.iter().enumerate() {
            if let Some(at) = at {
                plan[HDR_WORDS + si * SEG_WORDS + S_LUT_OFF] = (lut_base + at) as u32;
            }
        }
        let list_base = plan.len();
        plan.extend_from_slice(&lists);
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let mut fast_blocks = Vec::new(); // (variant, plan word, words, workgroups)
        for (fi, fv) in fvariants.iter().enumerate() {
            let mine: Vec<_> = groups.iter().filter(|g| g.0 == fi).collect();
            if mine.is_empty() {
                continue;
            }
            let counts: Vec<u32> = mine.iter().map(|g| g.4 as u32).collect();
            let target = match tune.fast_wgs {
                0 if cpu => u32::MAX,
                0 => FAST_WORKGROUPS,
                n => n,
            };
            let max_rounds = if cpu { CPU_FAST_ROUNDS } else { 1 << 20 };
            let lay_out = fast_layout(
                &counts,
                fv.tiles_per_round(),
                target,
                max_rounds,
                ctx.limits.max_compute_workgroups_per_dimension,
            );
            while plan.len() % (ALIGN as usize / 4) != 0 {
                plan.push(0);
            }
            let at = plan.len();
            let total_wg: u32 = lay_out.iter().map(|x| x.0).sum();
            plan.extend_from_slice(&[mine.len() as u32, total_wg, 0, 0]);
            let mut first = 0u32;
            for (g, &(wgs, rounds)) in mine.iter().zip(&lay_out) {
                let (_, si, table, list, count) = **g;
                let lut = lut_base + seg_lut[si].expect("a fast segment has tables") + 4096 * table;
                plan.extend_from_slice(&[
                    first,
                    wgs,
                    (list_base + list) as u32,
                    count as u32,
                    lut as u32,
                    si as u32,
                    rounds,
                    0,
                ]);
                first += wgs;
            }
            fast_blocks.push((*fv, at, plan.len() - at, total_wg));
        }
        let mut blocks = Vec::new();
        for &(si, _) in &unaligned {
            while plan.len() % (ALIGN as usize / 4) != 0 {
                plan.push(0);
            }
            blocks.push(4 * plan.len() as u64);
            plan.extend_from_slice(&[1, 0, 0, 0]);
            plan.extend_from_slice(&segs[si]);
        }
        let plan_bytes = round_up(4 * plan.len() as u64, ALIGN);
        let total = plan_bytes + round_up(lay.data_len.max(16), ALIGN);
        if total > staging.size() || total > input.size() {
            return Err(Error::Gpu(format!(
                "a chunk needs {total} input bytes; the staging buffers hold {}",
                staging.size()
            )));
        }
        {
            let bytes = file.bytes();
            let mut view = staging
                .slice(0..total)
                .get_mapped_range_mut()
                .map_err(|e| Error::Gpu(format!("writing a staging buffer: {e}")))?;
            // (destination offset, source) for every byte of the chunk, gaps as zeros
            static ZEROS: [u8; 4096] = [0; 4096];
            let mut jobs: Vec<(usize, &[u8])> = Vec::with_capacity(2 * lay.pieces.len() + 2);
            jobs.push((0, bytemuck::cast_slice(&plan)));
            let mut cursor = 4 * plan.len();
            let gap = |jobs: &mut Vec<(usize, &[u8])>, from: usize, to: usize| {
                let mut at = from;
                while at < to {
                    let n = (to - at).min(ZEROS.len());
                    jobs.push((at, &ZEROS[..n]));
                    at += n;
                }
            };
            for (at, src) in &lay.pieces {
                let a = (plan_bytes + at) as usize;
                gap(&mut jobs, cursor, a);
                let s: &[u8] = match src {
                    Src::File(r) => &bytes[r.clone()],
                    Src::Bytes(b) => b,
                };
                jobs.push((a, s));
                cursor = a + s.len();
            }
            gap(&mut jobs, cursor, total as usize);
            let mut whole = view.slice(..);
            let len = whole.len();
            if jobs.iter().any(|(a, s)| a + s.len() > len) {
                return Err(Error::Gpu(format!(
                    "a chunk's layout overruns its {len}-byte staging buffer"
                )));
            }
            crate::wgpu::context::parallel_copy(whole.as_raw_ptr(), len, &jobs);
        }
        let scratch = if scratch_words > 0 {
            Some(ctx.buffer(
                "wcodec.scratch",
                4 * scratch_words,
                wgpu::BufferUsages::STORAGE,
            )?)
        } else {
            None
        };
        let scratch_buf: &wgpu::Buffer = scratch.as_deref().unwrap_or(&self.dummy);
        let data = wgpu::BufferBinding {
            buffer: input,
            offset: plan_bytes,
            size: wgpu::BufferSize::new(total - plan_bytes),
        };
        let out_b = wgpu::BufferBinding {
            buffer: out.buffer,
            offset: out.offset,
            size: wgpu::BufferSize::new(out.size),
        };
        let plan_b = wgpu::BufferBinding {
            buffer: input,
            offset: 0,
            size: wgpu::BufferSize::new(plan_bytes),
        };
        let mut dispatches = Vec::new();
        for &(fv, at, words, total_wg) in &fast_blocks {
            let kernel = ctx.kernel(&fv.source(), &fv.constants())?;
            let bind = kernel.bind_group(
                &ctx.device,
                "wcodec.decode.fast",
                &[
                    data.clone(),
                    plan_b.clone(),
                    wgpu::BufferBinding {
                        buffer: input,
                        offset: 4 * at as u64,
                        size: wgpu::BufferSize::new(4 * words as u64),
                    },
                    out_b.clone(),
                    errs.as_entire_buffer_binding(),
                ],
            );
            dispatches.push(Dispatch {
                kernel,
                bind,
                workgroups: total_wg,
            });
            if !self.fast_variants.contains(&fv) {
                self.fast_variants.push(fv);
            }
        }
        // the general kernel, for the tiles the fast one does not take
        if general_tiles > 0 {
            let kernel = ctx.kernel(&variant.source(), &variant.constants())?;
            let bind = kernel.bind_group(
                &ctx.device,
                "wcodec.decode",
                &[
                    data.clone(),
                    plan_b.clone(),
                    out_b.clone(),
                    scratch_buf.as_entire_buffer_binding(),
                    errs.as_entire_buffer_binding(),
                ],
            );
            let workgroups = dispatch_size(
                units,
                self.opts.tuning.workgroups,
                &ctx.info,
                &ctx.limits,
                lossy,
            );
            dispatches.push(Dispatch {
                kernel,
                bind,
                workgroups,
            });
            if !self.variants.contains(&variant) {
                self.variants.push(variant);
            }
        }
        let mut prepared = Prepared {
            dispatches,
            unaligned: Vec::new(),
            clears: Vec::new(),
            input_bytes: total,
            data_off: plan_bytes,
            raw,
            _scratch: None,
        };
        if !unaligned.is_empty() {
            let rk = ctx.kernel(&shaders::render_unaligned(), &[("WG", 256.0)])?;
            for (&(si, pi), &blk) in unaligned.iter().zip(&blocks) {
                let pc = &placed[pi];
                prepared.clears.push((
                    out.buffer.clone(),
                    pc.region,
                    round_up(pc.out.end - pc.base, 4),
                ));
                let words = segs[si][S_U_WORD_COUNT];
                let bg = rk.bind_group(
                    &ctx.device,
                    "wcodec.render_unaligned",
                    &[
                        wgpu::BufferBinding {
                            buffer: input,
                            offset: blk,
                            size: wgpu::BufferSize::new(4 * (HDR_WORDS + SEG_WORDS) as u64),
                        },
                        data.clone(),
                        scratch_buf.as_entire_buffer_binding(),
                        out_b.clone(),
                    ],
                );
                prepared
                    .unaligned
                    .push((rk.clone(), bg, words.div_ceil(256).clamp(1, 4096)));
            }
        }
        prepared._scratch = scratch;
        Ok(prepared)
    }

    /// Submit chunk `c`: upload its input through the ring, decode into
    /// `out`, then let `after` encode copies (into outputs or a readback).
    #[allow(clippy::too_many_arguments)]
    fn submit_chunk(
        &mut self,
        file: &WcodecFile,
        jobs: &[OutJob],
        c: &Chunk,
        out: ChunkOut<'_>,
        errs: &wgpu::Buffer,
        timer: Option<&mut GpuTimer>,
        after: &mut AfterDecode<'_>,
    ) -> Result<(wgpu::SubmissionIndex, Vec<Placed>)> {
        let ctx = self.ctx;
        let slot = self.next;
        self.next = (self.next + 1) % self.ring.len();
        let t_acquire = Instant::now();
        self.acquire(slot)?;
        let t_stage = Instant::now();
        self.phases.acquire_s += (t_stage - t_acquire).as_secs_f64();
        let staging = self.ring[slot].staging.clone();
        let input = (*self.ring[slot].input).clone();
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wcodec.chunk"),
            });
        let (placed, prepared) = match out {
            ChunkOut::Direct { dest, clear_first } => {
                let Part::Seg { out, .. } = &c.parts[0] else {
                    unreachable!("a direct chunk is one segment")
                };
                let base = round_down(out.start, ALIGN);
                let placed = vec![Placed {
                    region: base,
                    base,
                    out: out.clone(),
                }];
                let ob = OutBinding {
                    buffer: dest,
                    offset: base,
                    size: round_up(out.end, 4).min(dest.size()) - base,
                };
                let mut p = self.prepare(file, jobs, c, &staging, &input, &ob, &placed, errs)?;
                // an unaligned plane decoded in place: its buffer is zeroed once, before its first chunk
                p.clears.clear();
                if clear_first {
                    enc.clear_buffer(dest, 0, None);
                }
                (placed, p)
            }
            ChunkOut::Staged(sb) => {
                let (placed, _) = place_staged(c, jobs);
                let ob = OutBinding {
                    buffer: sb,
                    offset: 0,
                    size: sb.size(),
                };
                let p = self.prepare(file, jobs, c, &staging, &input, &ob, &placed, errs)?;
                (placed, p)
            }
        };
        let t_submit = Instant::now();
        self.phases.stage_s += (t_submit - t_stage).as_secs_f64();
        self.upload(slot, prepared.input_bytes, &mut enc);
        if c.parts.iter().any(|p| matches!(p, Part::Seg { .. })) {
            prepared.encode(&mut enc, timer);
        }
        after(&mut enc, &prepared, &placed, &input);
        let sub = ctx.queue.submit([enc.finish()]);
        self.recycle(slot, sub.clone());
        self.phases.submit_s += t_submit.elapsed().as_secs_f64();
        Ok((sub, placed))
    }

    /// Decode every tensor into its own new buffer (STORAGE | COPY_SRC | COPY_DST).
    pub fn decode_to_buffers(
        &mut self,
        file: &WcodecFile,
    ) -> Result<(Vec<GpuTensor>, DecodeReport)> {
        let t_start = Instant::now();
        self.phases = Phases::default();
        let ctx = self.ctx;
        let jobs = jobs(file, Render::As(self.opts.dtype))?;
        let (chunks, slots) = chunks(file, &jobs, &self.limits)?;
        self.ensure_ring(Self::ring_need(&chunks))?;
        let mut outs = Vec::with_capacity(jobs.len());
        for j in &jobs {
            let buffer = ctx.create_buffer(&j.name, round_up(j.bytes.max(4), 4), copy_usage())?;
            if self.opts.poison {
                ctx.queue
                    .write_buffer(&buffer, 0, &vec![0xA5u8; buffer.size() as usize]);
            }
            outs.push(GpuTensor {
                name: j.name.clone(),
                dtype: j.dtype,
                shape: j.shape.clone(),
                bytes: j.bytes,
                buffer,
            });
        }
        let errs = self.error_buffer(slots)?;
        let mut timer = if self.opts.timestamps {
            GpuTimer::new(ctx, chunks.len() as u32)
        } else {
            None
        };
        self.phases.plan_s = t_start.elapsed().as_secs_f64();
        // jobs cut into several chunks are decoded in place; the rest go through a staged buffer
        let mut spans = vec![0usize; jobs.len()];
        for c in &chunks {
            for p in &c.parts {
                if let Part::Seg { job, .. } = p {
                    spans[*job] += 1;
                }
            }
        }
        let mut cleared = vec![false; jobs.len()];
        // one size for every staged buffer, so that the pool reuses them
        let staged_size = chunks
            .iter()
            .map(|c| place_staged(c, &jobs).1)
            .max()
            .unwrap_or(ALIGN);
        for c in &chunks {
            let direct = match c.parts.as_slice() {
                [Part::Seg { job, .. }] => {
                    spans[*job] > 1 || jobs[*job].bytes > self.limits.batch_out
                }
                _ => false,
            };
            if direct {
                let Part::Seg { job, .. } = &c.parts[0] else {
                    unreachable!()
                };
                let Producer::Kernel { kind, .. } = jobs[*job].producer else {
                    unreachable!()
                };
                let clear_first =
                    !aligned(&plane_of(file, jobs[*job].tensor).grid, kind.elem_size())
                        && !cleared[*job];
                cleared[*job] = true;
                let out = ChunkOut::Direct {
                    dest: &outs[*job].buffer,
                    clear_first,
                };
                self.submit_chunk(
                    file,
                    &jobs,
                    c,
                    out,
                    &errs,
                    timer.as_mut(),
                    &mut |_, _, _, _| {},
                )?;
            } else {
                let sb = ctx.buffer("wcodec.staged", staged_size, copy_usage())?;
                if self.opts.poison {
                    ctx.queue
                        .write_buffer(&sb, 0, &vec![0xA5u8; sb.size() as usize]);
                }
                let outs_ref = &outs;
                let mut copies = |enc: &mut wgpu::CommandEncoder,
                                  p: &Prepared,
                                  placed: &[Placed],
                                  input: &wgpu::Buffer| {
                    for (pi, part) in c.parts.iter().enumerate() {
                        match part {
                            Part::Seg { job, out, .. } => {
                                let pc = &placed[pi];
                                enc.copy_buffer_to_buffer(
                                    &sb,
                                    pc.region,
                                    &outs_ref[*job].buffer,
                                    0,
                                    round_up(out.end - pc.base, 4),
                                );
                            }
                            Part::Copy { job } => {
                                if let Some(&(_, at, len)) = p.raw.iter().find(|r| r.0 == pi) {
                                    enc.copy_buffer_to_buffer(
                                        input,
                                        p.data_off + at,
                                        &outs_ref[*job].buffer,
                                        0,
                                        len,
                                    );
                                }
                            }
                        }
                    }
                };
                self.submit_chunk(
                    file,
                    &jobs,
                    c,
                    ChunkOut::Staged(&sb),
                    &errs,
                    timer.as_mut(),
                    &mut copies,
                )?;
            }
        }
        if let Some(t) = timer.as_mut() {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            t.resolve(&mut enc);
            ctx.queue.submit([enc.finish()]);
        }
        let t_wait = Instant::now();
        ctx.wait()?;
        let words = ctx.read_buffer(&errs, 0, errs.size())?;
        self.phases.wait_s = t_wait.elapsed().as_secs_f64();
        if std::env::var_os("WCODEC_GPU_DEBUG_KEEP").is_none() {
            self.check_errors(file, &jobs, &chunks, bytemuck::cast_slice(&words))?;
        }
        let gpu_s = match timer.as_mut() {
            Some(t) => Some(t.read(ctx)?.iter().sum()),
            None => None,
        };
        if self.opts.verify {
            let mut hashes = ChecksumSink::new(file)?;
            let mut s = CanonStream::new(self, file)?;
            while let Some((job, piece, _)) = s.next_piece()? {
                hashes.feed(job, &piece)?;
                s.recycle(piece);
            }
            hashes.finish()?;
        }
        let report = self.report(file, &jobs, chunks.len(), t_start, gpu_s);
        Ok((outs, report))
    }

    /// The kernel variants this decoder has run, fast ones first.
    pub fn variant_names(&self) -> Vec<String> {
        self.fast_variants
            .iter()
            .map(|v| v.describe())
            .chain(self.variants.iter().map(|v| v.describe()))
            .collect()
    }

    fn error_buffer(&self, slots: usize) -> Result<PooledBuffer> {
        let n = (ERR_WORDS * slots.max(1)) as u64;
        let errs = self.ctx.buffer("wcodec.errors", 4 * n, copy_usage())?;
        let init: Vec<u32> = (0..n)
            .map(|i| {
                if i as usize % ERR_WORDS == 1 {
                    u32::MAX
                } else {
                    0
                }
            })
            .collect();
        self.ctx
            .queue
            .write_buffer(&errs, 0, bytemuck::cast_slice(&init));
        Ok(errs)
    }

    /// Turn the error words of the chunks' segments into an error naming the
    /// first bad tensor and tile.
    fn check_errors(
        &self,
        file: &WcodecFile,
        jobs: &[OutJob],
        chunks: &[Chunk],
        w: &[u32],
    ) -> Result<()> {
        for c in chunks {
            for p in &c.parts {
                if let Part::Seg {
                    job, slot, tiles, ..
                } = p
                {
                    let (bits, tile, done) = (
                        w[ERR_WORDS * slot],
                        w[ERR_WORDS * slot + 1],
                        w[ERR_WORDS * slot + 2],
                    );
                    if done as usize != tiles.len() {
                        let e = &file.tensors[jobs[*job].tensor];
                        return Err(Error::Gpu(format!(
                            "{}: the device finished {done} of {} tiles of this chunk: it cut the decode short (a driver loop limit?)",
                            file.loc(&e.name, "planes[0]"),
                            tiles.len()
                        )));
                    }
                    if bits != 0 {
                        let e = &file.tensors[jobs[*job].tensor];
                        let loc = file.loc(&e.name, format!("planes[0] tile {tile}"));
                        if bits & E_SUBGROUP != 0 {
                            return Err(Error::Gpu(format!(
                                "{loc}: {} (run with WCODEC_GPU_PATH=workgroup)",
                                describe_errors(E_SUBGROUP)
                            )));
                        }
                        return Err(Error::corrupt(
                            loc,
                            format!("{} (GPU decode)", describe_errors(bits)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn report(
        &self,
        file: &WcodecFile,
        jobs: &[OutJob],
        chunks: usize,
        t0: Instant,
        gpu_s: Option<f64>,
    ) -> DecodeReport {
        DecodeReport {
            device: self.ctx.describe(),
            path: self.path.name().to_string(),
            variants: self.variant_names(),
            tensors: file.tensors.len(),
            output_bytes: jobs.iter().map(|j| j.bytes).sum(),
            input_bytes: self.uploaded,
            chunks,
            wall_s: t0.elapsed().as_secs_f64(),
            gpu_s,
            peak_working_bytes: self.ctx.pool_bytes().1,
            staging_bytes: self.ring.iter().map(|r| r.staging.size()).sum(),
            phases: self.phases,
        }
    }
}

/// A file decoded on the device without uploads: its input already in device
/// buffers, its dispatches prepared, `copies` sets of (input, output)
/// buffers to rotate between, so that repeated decodes can be timed alone.
/// Only for files whose chunks each hold one plane (files of large tensors);
/// chunks that only copy file bytes (lossy tile scales as int8 output) are
/// not decode work and are left out (those outputs stay unwritten).
pub struct Resident {
    sets: Vec<ResidentSet>,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub chunks: usize,
    pub variants: Vec<String>,
}

struct ResidentSet {
    prepared: Vec<Prepared>,
    _inputs: Vec<wgpu::Buffer>,
    outputs: Vec<GpuTensor>,
    errs: PooledBuffer,
}

impl Resident {
    pub fn sets(&self) -> usize {
        self.sets.len()
    }
    /// The output tensors of set `i`.
    pub fn outputs(&self, i: usize) -> &[GpuTensor] {
        &self.sets[i].outputs
    }
}

impl GpuDecoder<'_> {
    /// Upload `file` once per copy and prepare its dispatches (see [`Resident`]).
    pub fn resident(&mut self, file: &WcodecFile, copies: usize) -> Result<Resident> {
        let ctx = self.ctx;
        let jobs = jobs(file, Render::As(self.opts.dtype))?;
        let (chunks, slots) = chunks(file, &jobs, &self.limits)?;
        let copy_only = |c: &Chunk| c.parts.iter().all(|p| matches!(p, Part::Copy { .. }));
        let chunks: Vec<Chunk> = chunks.into_iter().filter(|c| !copy_only(c)).collect();
        if chunks
            .iter()
            .any(|c| !matches!(c.parts.as_slice(), [Part::Seg { .. }]))
        {
            return Err(Error::Gpu(
                "resident decoding needs files whose chunks are single planes (large tensors)"
                    .into(),
            ));
        }
        self.ensure_ring(Self::ring_need(&chunks))?;
        let mut sets = Vec::new();
        let mut input_bytes = 0;
        for copy in 0..copies.max(1) {
            let errs = self.error_buffer(slots)?;
            let mut outputs = Vec::new();
            for j in &jobs {
                let buffer =
                    ctx.create_buffer(&j.name, round_up(j.bytes.max(4), 4), copy_usage())?;
                outputs.push(GpuTensor {
                    name: j.name.clone(),
                    dtype: j.dtype,
                    shape: j.shape.clone(),
                    bytes: j.bytes,
                    buffer,
                });
            }
            let mut prepared = Vec::new();
            let mut inputs = Vec::new();
            for c in &chunks {
                let Part::Seg { job, out, .. } = &c.parts[0] else {
                    unreachable!("checked above")
                };
                let slot = self.next;
                self.next = (self.next + 1) % self.ring.len();
                self.acquire(slot)?;
                let staging = self.ring[slot].staging.clone();
                let input = ctx.create_buffer(
                    "wcodec.resident.input",
                    Self::ring_need(std::slice::from_ref(c)),
                    copy_usage(),
                )?;
                let dest = outputs[*job].buffer.clone();
                let base = round_down(out.start, ALIGN);
                let placed = vec![Placed {
                    region: base,
                    base,
                    out: out.clone(),
                }];
                let ob = OutBinding {
                    buffer: &dest,
                    offset: base,
                    size: round_up(out.end, 4).min(dest.size()) - base,
                };
                let mut p = self.prepare(file, &jobs, c, &staging, &input, &ob, &placed, &errs)?;
                p.clears.clear();
                let mut enc = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wcodec.resident"),
                    });
                let slot_buf = &mut self.ring[slot];
                slot_buf.staging.unmap();
                slot_buf.mapped.store(false, Ordering::Release);
                enc.copy_buffer_to_buffer(&slot_buf.staging, 0, &input, 0, p.input_bytes);
                if copy == 0 {
                    input_bytes += p.input_bytes;
                }
                let sub = ctx.queue.submit([enc.finish()]);
                self.recycle(slot, sub);
                prepared.push(p);
                inputs.push(input);
            }
            sets.push(ResidentSet {
                prepared,
                _inputs: inputs,
                outputs,
                errs,
            });
        }
        ctx.wait()?;
        Ok(Resident {
            sets,
            input_bytes,
            output_bytes: jobs.iter().map(|j| j.bytes).sum(),
            chunks: chunks.len(),
            variants: self.variant_names(),
        })
    }

    /// Decode a resident file `n` times (sets in turn) in one submission and
    /// wait: untimed work that keeps the GPU busy, e.g. to bring its clock
    /// up to boost before timing (an idle GPU starts far below it).
    pub fn spin_resident(&self, r: &Resident, n: usize) -> Result<()> {
        let ctx = self.ctx;
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wcodec.resident.spin"),
            });
        for i in 0..n {
            for p in &r.sets[i % r.sets.len()].prepared {
                p.encode(&mut enc, None);
            }
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait()
    }

    /// Decode set `set` of a resident file once; returns the GPU seconds of
    /// its decode passes (timestamps) if `timer` is given, and checks the
    /// tile errors when `check` (then the first call also has them).
    pub fn run_resident(
        &self,
        file: &WcodecFile,
        r: &Resident,
        set: usize,
        timer: Option<&mut GpuTimer>,
        check: bool,
    ) -> Result<Option<f64>> {
        let ctx = self.ctx;
        let rs = &r.sets[set];
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wcodec.resident.run"),
            });
        if check {
            let n = rs.errs.size() / 4;
            let init: Vec<u32> = (0..n)
                .map(|i| {
                    if i as usize % ERR_WORDS == 1 {
                        u32::MAX
                    } else {
                        0
                    }
                })
                .collect();
            ctx.queue
                .write_buffer(&rs.errs, 0, bytemuck::cast_slice(&init));
        }
        let mut timer = timer;
        for p in &rs.prepared {
            p.encode(&mut enc, timer.as_deref_mut());
        }
        if let Some(t) = timer.as_deref() {
            t.resolve(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        if check {
            let jobs = jobs(file, Render::As(self.opts.dtype))?;
            let (chunks, _) = chunks(file, &jobs, &self.limits)?;
            let chunks: Vec<Chunk> = chunks
                .into_iter()
                .filter(|c| c.parts.iter().any(|p| matches!(p, Part::Seg { .. })))
                .collect();
            let words = ctx.read_buffer(&rs.errs, 0, rs.errs.size())?;
            self.check_errors(file, &jobs, &chunks, bytemuck::cast_slice(&words))?;
        }
        match timer {
            Some(t) => Ok(Some(t.read(ctx)?.iter().sum())),
            None => Ok(None),
        }
    }
}

/// Copies encoded after a chunk's decode: (encoder, the chunk, its parts' places, its input buffer).
type AfterDecode<'a> =
    dyn FnMut(&mut wgpu::CommandEncoder, &Prepared, &[Placed], &wgpu::Buffer) + 'a;

/// Where a chunk's kernel writes.
enum ChunkOut<'a> {
    /// In place, into an output buffer (zeroed first if `clear_first`).
    Direct {
        dest: &'a wgpu::Buffer,
        clear_first: bool,
    },
    /// Into a staged buffer, each part at its own offset.
    Staged(&'a wgpu::Buffer),
}

/// A vector of `len` bytes to be overwritten whole, from the recycled ones
/// in `spare` where one is large enough (its pages already touched).
fn spare_vec(spare: &mut Vec<Vec<u8>>, len: usize) -> Vec<u8> {
    // pieces of 1 MiB or more only (small ones are cheap to allocate), the
    // smallest spare that fits, at most twice the piece: a piece its consumer
    // keeps (a tensor's bytes) must not pin a much larger allocation
    let fit = spare
        .iter()
        .enumerate()
        .filter(|(_, v)| len >= 1 << 20 && v.capacity() >= len && v.capacity() <= 2 * len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    match fit {
        Some(i) => {
            // its old bytes stay: the caller overwrites all `len` of them
            // (copy_out), so only a longer piece's tail is zeroed
            let mut v = spare.swap_remove(i);
            v.resize(len, 0);
            v
        }
        None => vec![0u8; len],
    }
}

/// The canonical bytes of every tensor (quant: int8 codes, then scales),
/// in file order, piece by piece: a pull-based decode with two chunks in
/// flight, so memory stays at a few chunks whatever the file's size.
/// Pieces belong to the jobs of [`jobs`]`(file, Render::Canonical)`.
pub struct CanonStream<'d, 'c, 'f> {
    dec: &'d mut GpuDecoder<'c>,
    file: &'f WcodecFile,
    jobs: Vec<OutJob>,
    chunks: Vec<Chunk>,
    errs: PooledBuffer,
    err_bytes: u64,
    last_chunk: Vec<usize>,
    next_chunk: usize,
    /// One size for every staged and readback buffer (the largest chunk's).
    staged_size: u64,
    flight: VecDeque<InFlight>,
    ready: VecDeque<(usize, Vec<u8>, bool)>,
    /// Pieces given back by the consumer ([`recycle`](Self::recycle)).
    spare: Vec<Vec<u8>>,
    t_start: Instant,
}

struct InFlight {
    chunk: usize,
    placed: Vec<Placed>,
    readback: PooledBuffer,
    done: Arc<AtomicBool>,
    size: u64,
    sub: wgpu::SubmissionIndex,
    /// The readback was read and unmapped: it may go back to the pool.
    idle: bool,
}

impl Drop for InFlight {
    /// A readback not drained to the end (an error, or a stream dropped
    /// early) may be mapped, or become mapped when its pending mapping
    /// resolves: it is destroyed instead of pooled, so that no later user of
    /// the context gets a mapped buffer.
    fn drop(&mut self) {
        if !self.idle {
            self.readback.discard();
        }
    }
}

impl<'d, 'c, 'f> CanonStream<'d, 'c, 'f> {
    pub fn new(
        dec: &'d mut GpuDecoder<'c>,
        file: &'f WcodecFile,
    ) -> Result<CanonStream<'d, 'c, 'f>> {
        let jobs = jobs(file, Render::Canonical)?;
        let (chunks, slots) = chunks(file, &jobs, &dec.limits)?;
        dec.ensure_ring(GpuDecoder::ring_need(&chunks))?;
        let errs = dec.error_buffer(slots)?;
        let staged_size = chunks
            .iter()
            .map(|c| place_staged(c, &jobs).1)
            .max()
            .unwrap_or(ALIGN);
        let mut last_chunk = vec![0usize; jobs.len()];
        for (ci, c) in chunks.iter().enumerate() {
            for p in &c.parts {
                match p {
                    Part::Seg { job, .. } | Part::Copy { job } => last_chunk[*job] = ci,
                }
            }
        }
        Ok(CanonStream {
            dec,
            file,
            jobs,
            chunks,
            errs,
            err_bytes: 4 * (ERR_WORDS * slots.max(1)) as u64,
            staged_size,
            last_chunk,
            next_chunk: 0,
            flight: VecDeque::new(),
            ready: VecDeque::new(),
            spare: Vec::new(),
            t_start: Instant::now(),
        })
    }

    pub fn jobs(&self) -> &[OutJob] {
        &self.jobs
    }

    fn submit_next(&mut self) -> Result<()> {
        let ci = self.next_chunk;
        self.next_chunk += 1;
        let ctx = self.dec.ctx;
        let c = &self.chunks[ci];
        let size = self.staged_size;
        let sb = ctx.buffer("wcodec.staged", size, copy_usage())?;
        if self.dec.opts.poison {
            ctx.queue
                .write_buffer(&sb, 0, &vec![0xA5u8; sb.size() as usize]);
        }
        let rb_size = size + self.err_bytes;
        let readback = ctx.buffer(
            "wcodec.readback",
            rb_size,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let (errs, err_bytes) = (&self.errs, self.err_bytes);
        let mut copy =
            |enc: &mut wgpu::CommandEncoder, _: &Prepared, _: &[Placed], _: &wgpu::Buffer| {
                enc.copy_buffer_to_buffer(&sb, 0, &readback, 0, size);
                enc.copy_buffer_to_buffer(errs, 0, &readback, size, err_bytes);
            };
        let (sub, placed) = self.dec.submit_chunk(
            self.file,
            &self.jobs,
            c,
            ChunkOut::Staged(&sb),
            &self.errs,
            None,
            &mut copy,
        )?;
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        readback.map_async(wgpu::MapMode::Read, 0..rb_size, move |r| {
            if r.is_ok() {
                d2.store(true, Ordering::Release);
            }
        });
        self.flight.push_back(InFlight {
            chunk: ci,
            placed,
            readback,
            done,
            size: rb_size,
            sub,
            idle: false,
        });
        Ok(())
    }

    fn drain(&mut self, mut f: InFlight) -> Result<()> {
        let ctx = self.dec.ctx;
        for _ in 0..10_000 {
            if f.done.load(Ordering::Acquire) {
                break;
            }
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(f.sub.clone()),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu(format!("waiting for a readback: {e}")))?;
            ctx.check_health()?;
        }
        if !f.done.load(Ordering::Acquire) {
            return Err(Error::Gpu("a readback never completed".into()));
        }
        // The mapping is done: whatever happens below, unmap afterwards so
        // the buffer goes back to the pool idle.
        let read = self.read_chunk(&f);
        f.readback.unmap();
        f.idle = true;
        read
    }

    /// The pieces of a drained readback `f` (mapped) into `ready`.
    fn read_chunk(&mut self, f: &InFlight) -> Result<()> {
        // Straight from the mapped range into the pieces (recycled vectors
        // where the consumer gives them back): a whole-chunk copy into fresh
        // memory first cost more than the decode (page faults, see
        // `context::copy_out`).
        let view = f
            .readback
            .slice(0..f.size)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("reading back: {e}")))?;
        let c = &self.chunks[f.chunk];
        let staged = (f.size - self.err_bytes) as usize;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&view[staged..]);
        self.dec
            .check_errors(self.file, &self.jobs, std::slice::from_ref(c), &words)?;
        for (pi, p) in c.parts.iter().enumerate() {
            match p {
                Part::Seg { job, out, .. } => {
                    let pc = &f.placed[pi];
                    let a = (pc.region + out.start - pc.base) as usize;
                    let len = (out.end - out.start) as usize;
                    let mut piece = spare_vec(&mut self.spare, len);
                    crate::wgpu::context::copy_out(&view[a..a + len], &mut piece);
                    self.ready
                        .push_back((*job, piece, self.last_chunk[*job] == f.chunk));
                }
                Part::Copy { job } => {
                    let b: Vec<u8> = match &self.jobs[*job].producer {
                        Producer::File(r) => self.file.bytes()[r.clone()].to_vec(),
                        Producer::Host(b) => b.as_ref().clone(),
                        Producer::Kernel { .. } => unreachable!("copy parts are not kernel jobs"),
                    };
                    self.ready.push_back((*job, b, true));
                }
            }
        }
        Ok(())
    }

    /// Give a piece from [`next_piece`](Self::next_piece) back once it is
    /// written: a later piece reuses its memory.
    pub fn recycle(&mut self, piece: Vec<u8>) {
        const KEEP: usize = 2;
        if piece.capacity() >= 1 << 20 {
            if self.spare.len() == KEEP {
                // keep the largest
                if let Some((i, _)) = self
                    .spare
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, v)| v.capacity())
                    .filter(|(_, v)| v.capacity() < piece.capacity())
                {
                    self.spare[i] = piece;
                }
            } else {
                self.spare.push(piece);
            }
        }
    }

    /// The next piece: (job, bytes, whether it is the job's last piece).
    pub fn next_piece(&mut self) -> Result<Option<(usize, Vec<u8>, bool)>> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Ok(Some(p));
            }
            // keep two chunks in flight: the GPU decodes one while the host reads the other
            while self.flight.len() < 2 && self.next_chunk < self.chunks.len() {
                self.submit_next()?;
            }
            match self.flight.pop_front() {
                Some(f) => self.drain(f)?,
                None => return Ok(None),
            }
        }
    }

    pub fn report(&self) -> DecodeReport {
        self.dec
            .report(self.file, &self.jobs, self.chunks.len(), self.t_start, None)
    }
}

/// Units a workgroup may take on an adapter that bounds loops: llvmpipe
/// (lavapipe) stops every loop of an invocation once the invocation has run
/// 65535 loop iterations in all (gallivm's loop limiter), silently; a unit
/// costs a few hundred to about 1200 iterations (AVG tiles more), so
/// workgroups there take at most this many units.
const CPU_UNITS_PER_WORKGROUP: u32 = 8;

/// The same for chunks with lossy tiles, whose rebuild (a transform's three
/// phases) costs up to about 1500 more iterations a tile.
const CPU_LOSSY_UNITS_PER_WORKGROUP: u32 = 2;

/// Rounds (tiles per slot) of a fast-kernel workgroup on such an adapter: a
/// round costs at most about 1000 loop iterations there.
const CPU_FAST_ROUNDS: u32 = 16;

/// Workgroups of a fast dispatch on a GPU (`WCODEC_GPU_FAST_WGS` overrides):
/// a few per SM on large GPUs, so that the tiles of a large plane spread
/// evenly and each workgroup's table load is paid for many tiles.
pub const FAST_WORKGROUPS: u32 = 2048;

/// Persistent workgroups for `units` units: `want` if set, else 8192 on
/// GPUs; never more than the units or the dispatch limit, and on CPU
/// adapters enough that no workgroup loops over too many units.
pub fn dispatch_size(
    units: u32,
    want: u32,
    info: &wgpu::AdapterInfo,
    limits: &wgpu::Limits,
    lossy: bool,
) -> u32 {
    let cpu = info.device_type == wgpu::DeviceType::Cpu;
    let mut n = match want {
        0 if cpu => units,
        0 => 8192,
        n => n,
    };
    if cpu {
        let per = if lossy {
            CPU_LOSSY_UNITS_PER_WORKGROUP
        } else {
            CPU_UNITS_PER_WORKGROUP
        };
        n = n.max(units.div_ceil(per));
    }
    n.min(units)
        .min(limits.max_compute_workgroups_per_dimension)
        .max(1)
}

/// Place every part of a chunk in a staged buffer, one after another.
fn place_staged(c: &Chunk, jobs: &[OutJob]) -> (Vec<Placed>, u64) {
    let mut at = 0u64;
    let mut v = Vec::with_capacity(c.parts.len());
    for p in &c.parts {
        let (base, out) = match p {
            Part::Seg { out, .. } => (round_down(out.start, ALIGN), out.clone()),
            Part::Copy { job } => (0, 0..jobs[*job].bytes),
        };
        v.push(Placed {
            region: at,
            base,
            out: out.clone(),
        });
        at += round_up(round_up(out.end, 4) - base, ALIGN).max(ALIGN);
    }
    (v, at.max(ALIGN))
}

/// Checks each tensor's checksum over the canonical pieces fed to it, in order.
pub struct ChecksumSink<'f> {
    file: &'f WcodecFile,
    jobs: Vec<OutJob>,
    hasher: Option<(usize, Xxh3Default)>,
}

impl<'f> ChecksumSink<'f> {
    pub fn new(file: &'f WcodecFile) -> Result<ChecksumSink<'f>> {
        Ok(ChecksumSink {
            file,
            jobs: jobs(file, Render::Canonical)?,
            hasher: None,
        })
    }

    pub fn feed(&mut self, job: usize, piece: &[u8]) -> Result<()> {
        let t = self.jobs[job].tensor;
        match &mut self.hasher {
            Some((cur, h)) if *cur == t => h.update(piece),
            _ => {
                self.finish()?;
                let mut h = Xxh3Default::new();
                h.update(piece);
                self.hasher = Some((t, h));
            }
        }
        Ok(())
    }

    /// Check the tensor being hashed, if any.
    pub fn finish(&mut self) -> Result<()> {
        if let Some((t, h)) = self.hasher.take() {
            let e = &self.file.tensors[t];
            let actual = h.digest();
            if actual != e.checksum {
                return Err(Error::Checksum {
                    loc: self.file.loc(&e.name, "checksum"),
                    stored: e.checksum,
                    actual,
                });
            }
        }
        Ok(())
    }
}

/// Decode a file into new buffers, one per output tensor, on a device the
/// caller created (its enabled features and limits decide the kernel path).
pub fn decode_file(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    file: &WcodecFile,
    opts: &GpuDecodeOptions,
) -> Result<(Vec<GpuTensor>, DecodeReport)> {
    let ctx = GpuContext::from_device(device.clone(), queue.clone());
    let mut dec = GpuDecoder::new(&ctx, opts.clone())?;
    dec.decode_to_buffers(file)
}

/// Decode every tensor to a safetensors file, written atomically, checking
/// every checksum on the bytes read back. Casts (`dtype`) and dequantisation
/// are rendered on the host from the checked canonical bytes, as the CPU
/// path does; `on_tensor(bytes)` is called as each output tensor is written.
pub fn decode_to_safetensors(
    dec: &mut GpuDecoder<'_>,
    file: &WcodecFile,
    out: &Path,
    dtype: Option<DType>,
    on_tensor: &(dyn Fn(usize) + Sync),
) -> Result<DecodeReport> {
    if let Some(p) = file.path() {
        crate::io::atomic::refuse_overwrite(p, out)?;
    }
    let outs: Vec<OutTensor> = file
        .tensors
        .iter()
        .flat_map(|e| output_tensors(e, dtype))
        .collect();
    let mut owner = Vec::with_capacity(outs.len()); // output -> (tensor, k-th output of it)
    for (t, e) in file.tensors.iter().enumerate() {
        for k in 0..output_tensors(e, dtype).len() {
            owner.push((t, k));
        }
    }
    let mut stream = CanonStream::new(dec, file)?;
    // a tensor whose written outputs are its canonical jobs streams straight through
    let straight: Vec<bool> = file
        .tensors
        .iter()
        .enumerate()
        .map(|(t, e)| {
            let want: Vec<(String, DType)> = output_tensors(e, dtype)
                .into_iter()
                .map(|o| (o.name, o.dtype))
                .collect();
            let have: Vec<(String, DType)> = stream
                .jobs()
                .iter()
                .filter(|j| j.tensor == t)
                .map(|j| (j.name.clone(), j.dtype))
                .collect();
            want == have
        })
        .collect();
    let tensor_of: Vec<usize> = stream.jobs().iter().map(|j| j.tensor).collect();
    let mut hasher = ChecksumSink::new(file)?;
    let mut rendered: VecDeque<Vec<u8>> = VecDeque::new();
    let mut held: Option<(usize, Vec<u8>, bool)> = None;
    write_streaming(out, file.header.metadata.as_ref(), &outs, |i, w| {
        let (t, k) = owner[i];
        let next = |stream: &mut CanonStream<'_, '_, '_>,
                    held: &mut Option<(usize, Vec<u8>, bool)>|
         -> Result<Option<(usize, Vec<u8>, bool)>> {
            match held.take() {
                Some(p) => Ok(Some(p)),
                None => stream.next_piece(),
            }
        };
        if straight[t] {
            // the pieces of the k-th canonical job of tensor t
            let mut seen_job = None;
            loop {
                let Some((job, piece, last)) = next(&mut stream, &mut held)? else {
                    return Err(Error::Gpu(format!(
                        "the GPU stream ended before tensor {}",
                        outs[i].name
                    )));
                };
                if tensor_of[job] != t || seen_job.is_some_and(|j| j != job) {
                    return Err(Error::Gpu(format!(
                        "the GPU stream is out of order at tensor {}",
                        outs[i].name
                    )));
                }
                seen_job = Some(job);
                hasher.feed(job, &piece)?;
                w.write_all(&piece).map_err(|e| Error::io(out, e))?;
                on_tensor(piece.len());
                stream.recycle(piece);
                if last {
                    break;
                }
            }
            let _ = k;
        } else {
            if k == 0 {
                let mut canon_bytes = Vec::new();
                while let Some((job, piece, last)) = next(&mut stream, &mut held)? {
                    if tensor_of[job] != t {
                        held = Some((job, piece, last));
                        break;
                    }
                    hasher.feed(job, &piece)?;
                    canon_bytes.extend_from_slice(&piece);
                    stream.recycle(piece);
                }
                hasher.finish()?;
                rendered = render(&file.tensors[t], canon_bytes, dtype).into();
            }
            let b = rendered
                .pop_front()
                .ok_or_else(|| Error::Gpu(format!("output {} was not rendered", outs[i].name)))?;
            w.write_all(&b).map_err(|e| Error::io(out, e))?;
            on_tensor(b.len());
        }
        Ok(())
    })?;
    hasher.finish()?;
    Ok(stream.report())
}

/// Read back a decoded tensor's bytes (tests, tools).
pub fn read_tensor(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<u8>> {
    ctx.read_buffer(&t.buffer, 0, t.bytes)
}

//! Planning a GPU decode without touching the GPU: what each output tensor
//! is made of, how planes are cut into chunks that fit the device's binding
//! and staging limits, how small tensors are batched, and the exact words the
//! kernel reads (segment descriptors, tables, input layout).
//!
//! The layouts here are shared with `shaders/lib/segment.wgsl` (field
//! numbers `S_*`, kinds `K_*`), which every decode kernel and
//! `shaders/render_unaligned.wgsl` prepend; a unit test checks its values.

use std::ops::Range;
use std::sync::Arc;

use crate::codec::decoder::{output_tensors, render};
use crate::codec::freq::FreqTable;
use crate::codec::plane::TileEntry;
use crate::codec::rans::Tail;
use crate::codec::tile::Grid;
use crate::codec::{Encoding, float_split};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::WcodecFile;
use crate::format::reader::PlaneInfo;

use super::shaders::{DecodePath, DecodeVariant, FastOut, FastProbe, FastVariant, LutKind};

// ---- layout shared with the shaders
pub const SEG_WORDS: usize = 32;
pub const HDR_WORDS: usize = 4;
pub const S_UNIT_START: usize = 0;
pub const S_TILE_FIRST: usize = 1;
pub const S_TILE_COUNT: usize = 2;
pub const S_ROWS: usize = 3;
pub const S_COLS: usize = 4;
pub const S_TILE_H: usize = 5;
pub const S_TILE_W: usize = 6;
pub const S_TILES_X: usize = 7;
pub const S_PROB_BITS: usize = 8;
pub const S_TAIL: usize = 9;
pub const S_NTABLES: usize = 10;
pub const S_TABLE_OFF: usize = 11;
pub const S_INDEX_BASE: usize = 12;
pub const S_STREAM_BASE: usize = 13;
pub const S_WORD_ORIGIN: usize = 14;
pub const S_WORD_LO: usize = 15;
pub const S_WORD_HI: usize = 16;
pub const S_KIND: usize = 17;
pub const S_OUT_ADJ: usize = 18;
pub const S_ROW_ORG: usize = 19;
pub const S_COL_ORG: usize = 20;
pub const S_RAW_BASE: usize = 21;
pub const S_SCALE_BASE: usize = 22;
pub const S_SCRATCH_BASE: usize = 23;
pub const S_ERR_SLOT: usize = 24;
pub const S_U_WORD_FIRST: usize = 25;
pub const S_U_WORD_COUNT: usize = 26;
pub const S_U_ELO: usize = 27;
pub const S_U_EHI: usize = 28;
/// Tiles of the segment the fast kernel decodes: a mask of tables (bits
/// 0..4) and the longest such tile in words (bits 16..32); 0 for none.
pub const S_FAST: usize = 29;
/// Plan word of the segment's host-built decode tables (4096 words each); 0: none.
pub const S_LUT_OFF: usize = 30;

// ---- the fast kernels' group records (shaders/lib/segment.wgsl, read by rans_fast.wgsl)
pub const GRP_HDR: usize = 4;
pub const GRP_WORDS: usize = 8;

pub const K_BYTES: u32 = 0;
pub const K_SPLIT: u32 = 1;
pub const K_DEQ: u32 = 2;
pub const K_LDEQ: u32 = 3;
pub const F_XOR80: u32 = 0x1000;
pub const F_SCRATCH: u32 = 0x2000;
/// The segment's plane holds lossy tiles (modes 5..=8; shaders/rans_lossy.wgsl).
pub const F_LOSSY: u32 = 0x4000;

pub const E_STATES: u32 = 1;
pub const E_UNDERFLOW: u32 = 2;
pub const E_TRAILING: u32 = 4;
pub const E_FINAL: u32 = 8;
pub const E_INDEX: u32 = 16;
pub const E_SUBGROUP: u32 = 32;

/// Alignment of every binding window and staged region (the largest
/// `min_storage_buffer_offset_alignment` wgpu allows).
pub const ALIGN: u64 = 256;

/// Words of the error buffer per segment: (error bits, first bad tile, tiles finished).
pub const ERR_WORDS: usize = 3;

fn dt_code(d: DType) -> u32 {
    match d {
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => 0,
    }
}

/// What the error bits of a segment mean, in the words of `rans::TileError`.
pub fn describe_errors(bits: u32) -> String {
    let mut v = Vec::new();
    if bits & E_STATES != 0 {
        v.push("malformed initial states");
    }
    if bits & E_UNDERFLOW != 0 {
        v.push("word stream ended early");
    }
    if bits & E_TRAILING != 0 {
        v.push("words left unread");
    }
    if bits & E_FINAL != 0 {
        v.push("a lane does not end in its tail state");
    }
    if bits & E_INDEX != 0 {
        v.push("bad tile-index entry");
    }
    if bits & E_SUBGROUP != 0 {
        v.push("the device's subgroup size does not suit this kernel variant");
    }
    v.join(", ")
}

pub fn round_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

pub fn round_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// What the kernel writes for a coded plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    /// The plane's bytes (int8 values, quant codes); U8 flips the sign bit.
    Bytes { xor80: bool },
    /// Float-split planes merged into `src` floats, converted to `dst`.
    Split { src: DType, dst: DType },
    /// Quant codes times their row's scale, as `dst`.
    Deq { dst: DType },
    /// Lossy pixels times their tile's scale, as `dst`.
    DeqTile { dst: DType },
}

impl OutKind {
    pub fn code(self) -> u32 {
        match self {
            OutKind::Bytes { xor80 } => K_BYTES | if xor80 { F_XOR80 } else { 0 },
            OutKind::Split { src, dst } => K_SPLIT | dt_code(src) << 4 | dt_code(dst) << 8,
            OutKind::Deq { dst } => K_DEQ | dt_code(dst) << 8,
            OutKind::DeqTile { dst } => K_LDEQ | dt_code(dst) << 8,
        }
    }
    /// What the fast lossy kernel writes for this kind, if it can.
    pub fn fast_lossy_out(self) -> Option<FastOut> {
        match self {
            OutKind::Bytes { xor80: false } => Some(FastOut::Lossy { dq: 3 }),
            OutKind::DeqTile { dst } => Some(FastOut::Lossy { dq: dt_code(dst) }),
            _ => None,
        }
    }
    /// What the fast kernel writes for this kind, if it can.
    pub fn fast_out(self) -> Option<FastOut> {
        match self {
            OutKind::Bytes { .. } => Some(FastOut::Bytes),
            OutKind::Split { src, dst } => Some(FastOut::Split {
                src: dt_code(src),
                dst: dt_code(dst),
            }),
            OutKind::Deq { .. } | OutKind::DeqTile { .. } => None,
        }
    }
    /// Bytes per output element.
    pub fn elem_size(self) -> u64 {
        match self {
            OutKind::Bytes { .. } => 1,
            OutKind::Split { dst, .. } | OutKind::Deq { dst } | OutKind::DeqTile { dst } => {
                dst.size() as u64
            }
        }
    }
}

/// Where an output's bytes come from.
#[derive(Debug, Clone)]
pub enum Producer {
    /// The decode kernel, from the tensor's coded plane (plane 0).
    Kernel {
        kind: OutKind,
        /// The raw plane: float-split's raw bytes, quant's row scales, lossy's tile scales.
        aux: Option<Range<usize>>,
    },
    /// Bytes of the file, as they are (raw tensors, quant scales for int8 output).
    File(Range<usize>),
    /// Bytes rendered on the host (raw tensors cast to another dtype).
    Host(Arc<Vec<u8>>),
}

/// One output tensor of the decode.
#[derive(Debug, Clone)]
pub struct OutJob {
    /// Index in `file.tensors`.
    pub tensor: usize,
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: u64,
    pub producer: Producer,
}

/// Whether the GPU kinds produce the canonical bytes (so the checksum can
/// be taken on them) or a rendering of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Canonical bytes only (quant → int8 codes + scales; floats in their own dtype).
    Canonical,
    /// The outputs of `output_tensors(entry, want)`, rendered on the GPU.
    As(Option<DType>),
}

/// The outputs of every tensor, in file order (the order of
/// `output_tensors`), and how each is produced.
pub fn jobs(file: &WcodecFile, render_as: Render) -> Result<Vec<OutJob>> {
    let mut out = Vec::new();
    for (t, e) in file.tensors.iter().enumerate() {
        let want = match render_as {
            Render::Canonical => {
                if matches!(e.encoding, Encoding::Quant | Encoding::Lossy) {
                    Some(DType::I8)
                } else {
                    None
                }
            }
            Render::As(w) => w,
        };
        let outs = output_tensors(e, want);
        let bytes_of = |o: &crate::io::safetensors::OutTensor| o.bytes() as u64;
        match e.encoding {
            Encoding::Raw => {
                let PlaneInfo::Raw { data, .. } = &e.planes[0] else {
                    unreachable!("the reader checked the planes")
                };
                let o = &outs[0];
                let producer = if o.dtype == e.dtype {
                    Producer::File(data.clone())
                } else {
                    let r = render(e, file.bytes()[data.clone()].to_vec(), want);
                    Producer::Host(Arc::new(r.into_iter().next().unwrap_or_default()))
                };
                out.push(OutJob {
                    tensor: t,
                    name: o.name.clone(),
                    dtype: o.dtype,
                    shape: o.shape.clone(),
                    bytes: bytes_of(o),
                    producer,
                });
            }
            Encoding::Int8 => {
                let o = &outs[0];
                out.push(OutJob {
                    tensor: t,
                    name: o.name.clone(),
                    dtype: o.dtype,
                    shape: o.shape.clone(),
                    bytes: bytes_of(o),
                    producer: Producer::Kernel {
                        kind: OutKind::Bytes {
                            xor80: e.dtype == DType::U8,
                        },
                        aux: None,
                    },
                });
            }
            Encoding::FloatSplit => {
                let PlaneInfo::Raw { data, .. } = &e.planes[1] else {
                    unreachable!("the reader checked the planes")
                };
                let o = &outs[0];
                out.push(OutJob {
                    tensor: t,
                    name: o.name.clone(),
                    dtype: o.dtype,
                    shape: o.shape.clone(),
                    bytes: bytes_of(o),
                    producer: Producer::Kernel {
                        kind: OutKind::Split {
                            src: e.dtype,
                            dst: o.dtype,
                        },
                        aux: Some(data.clone()),
                    },
                });
            }
            Encoding::Lossy | Encoding::Quant => {
                // int8 codes (lossy: pixels) + their scales as they are, or
                // dequantised by the kernel (per row; lossy: per tile)
                let PlaneInfo::Raw { data, .. } = &e.planes[1] else {
                    unreachable!("the reader checked the planes")
                };
                if outs[0].dtype == DType::I8 {
                    out.push(OutJob {
                        tensor: t,
                        name: outs[0].name.clone(),
                        dtype: DType::I8,
                        shape: outs[0].shape.clone(),
                        bytes: bytes_of(&outs[0]),
                        producer: Producer::Kernel {
                            kind: OutKind::Bytes { xor80: false },
                            aux: None,
                        },
                    });
                    out.push(OutJob {
                        tensor: t,
                        name: outs[1].name.clone(),
                        dtype: DType::F32,
                        shape: outs[1].shape.clone(),
                        bytes: bytes_of(&outs[1]),
                        producer: Producer::File(data.clone()),
                    });
                } else {
                    let o = &outs[0];
                    out.push(OutJob {
                        tensor: t,
                        name: o.name.clone(),
                        dtype: o.dtype,
                        shape: o.shape.clone(),
                        bytes: bytes_of(o),
                        producer: Producer::Kernel {
                            kind: if e.encoding == Encoding::Lossy {
                                OutKind::DeqTile { dst: o.dtype }
                            } else {
                                OutKind::Deq { dst: o.dtype }
                            },
                            aux: Some(data.clone()),
                        },
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The coded plane of a kernel job.
pub struct PlaneRefs<'a> {
    pub grid: Grid,
    pub prob_bits: u32,
    pub tail: Tail,
    pub tables: &'a [FreqTable],
    pub index: &'a [TileEntry],
    pub index_range: Range<usize>,
    pub stream: Range<usize>,
}

pub fn plane_of(file: &WcodecFile, tensor: usize) -> PlaneRefs<'_> {
    match &file.tensors[tensor].planes[0] {
        PlaneInfo::Rans {
            grid,
            prob_bits,
            tail,
            tables,
            index,
            index_range,
            stream,
            ..
        } => PlaneRefs {
            grid: *grid,
            prob_bits: *prob_bits,
            tail: *tail,
            tables,
            index,
            index_range: index_range.clone(),
            stream: stream.clone(),
        },
        PlaneInfo::Raw { .. } => unreachable!("a kernel job's plane 0 is coded"),
    }
}

impl PlaneRefs<'_> {
    pub fn stream_words(&self) -> u64 {
        (self.stream.len() / 2) as u64
    }
    pub fn tile_end(&self, t: usize) -> u64 {
        self.index
            .get(t + 1)
            .map_or(self.stream_words(), |e| e.offset as u64)
    }
    /// Tiles one chunk boundary may fall between: 1 for single-row grids, a band otherwise.
    pub fn granule(&self) -> usize {
        if self.grid.rows == 1 {
            1
        } else {
            self.grid.tiles_x()
        }
    }
    /// The output elements of tiles `t0..t1` (whole granules).
    pub fn elems(&self, t0: usize, t1: usize) -> Range<u64> {
        let g = self.grid;
        if g.rows == 1 {
            let a = g.tile(t0);
            let b = g.tile(t1 - 1);
            a.c0 as u64..(b.c0 + b.w) as u64
        } else {
            let a = g.tile(t0);
            let b = g.tile(t1 - 1);
            (a.r0 * g.cols) as u64..((b.r0 + b.h) * g.cols) as u64
        }
    }
    pub fn rows(&self, t0: usize, t1: usize) -> Range<usize> {
        let a = self.grid.tile(t0);
        let b = self.grid.tile(t1 - 1);
        a.r0..b.r0 + b.h
    }
}

/// True if every output word of this grid and element size belongs to one tile.
pub fn aligned(grid: &Grid, elem: u64) -> bool {
    grid.rows == 1 || (grid.cols as u64 * elem) % 4 == 0
}

/// A piece of a chunk: tiles of one kernel job, or a whole byte-copied job.
#[derive(Debug, Clone)]
pub enum Part {
    Seg {
        job: usize,
        tiles: Range<usize>,
        out: Range<u64>,
        slot: usize,
    },
    Copy {
        job: usize,
    },
}

/// One dispatch's worth of work.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    pub parts: Vec<Part>,
    /// Bytes of input the chunk uploads (an upper bound, with padding).
    pub input_bytes: u64,
    /// Bytes of a staged output layout holding every part.
    pub staged_bytes: u64,
    /// Jobs whose output this chunk completes.
    pub completes: Vec<usize>,
}

/// Limits the planner respects.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Input bytes per chunk (the staging buffers' size, less the descriptors).
    pub input: u64,
    /// Bytes of one output binding window.
    pub binding: u64,
    /// Jobs with at most this many output bytes are batched.
    pub batch_out: u64,
    /// Output bytes of one batch (its staged buffer).
    pub batch_staged: u64,
    /// Bytes of tile-major scratch per chunk (unaligned grids).
    pub scratch: u64,
    /// Segments per chunk.
    pub segments: usize,
}

/// Per-segment input estimate for tiles `t0..t1`.
fn seg_input(p: &PlaneRefs, kind: OutKind, t0: usize, t1: usize) -> u64 {
    let words = p.tile_end(t1 - 1) - p.index[t0].offset as u64;
    let mut b = 8 * (t1 - t0) as u64 + 2 * words + 16 + 32;
    let e = p.elems(t0, t1);
    match kind {
        OutKind::Split { src, .. } => {
            b += (e.end - e.start) * float_split::raw_bytes_per_element(src) as u64 + 32
        }
        OutKind::Deq { .. } => b += 4 * p.rows(t0, t1).len() as u64 + 32,
        OutKind::DeqTile { .. } => b += 4 * (t1 - t0) as u64 + 32,
        OutKind::Bytes { .. } => {}
    }
    // tables (1 KiB each) and the fast kernel's: host-built tables (16 KiB
    // each), a list entry per tile, group records
    b + (1024 + 16384) * p.tables.len() as u64
        + 4 * (t1 - t0) as u64
        + 4 * (SEG_WORDS + 4 * GRP_WORDS) as u64
}

/// A tile the fast kernel may take, whatever its word count: a full tile
/// (4096 symbols) of mode NONE or PLANAR. It takes it if its words fit the
/// stage and its table is in the segment's `S_FAST` mask; the general
/// kernel tests the same (rans_decode.wgsl `tile_info`).
pub fn fast_candidate(grid: &Grid, e: &TileEntry, t: usize) -> bool {
    let r = grid.tile(t);
    r.h * r.w == crate::codec::tile::MAX_TILE_SYMBOLS
        && matches!(
            e.mode,
            crate::codec::predict::Mode::None | crate::codec::predict::Mode::Planar
        )
}

/// A lossy tile the fast lossy kernel (rans_fast_lossy.wgsl) may take: a
/// full 64×64 tile (any lossy type fits it); the general kernel skips the
/// listed ones by the same `S_FAST` test.
pub fn fast_lossy_candidate(grid: &Grid, t: usize) -> bool {
    let r = grid.tile(t);
    r.h == 64 && r.w == 64
}

/// The fast kernel's path for the general kernel's: subgroups of exactly
/// 32, narrow subgroups, or workgroup memory; none for other wide subgroups.
pub fn fast_path(path: DecodePath, sg32: bool) -> Option<DecodePath> {
    match path {
        DecodePath::SubgroupWide if sg32 => Some(DecodePath::SubgroupWide),
        DecodePath::SubgroupWide => None,
        p => Some(p),
    }
}

/// The fast variant for tiles of `words` u16 words each (any order): the
/// wanted warps per workgroup with a stage that holds every tile, or, if
/// that does not fit, one that holds 99 % of them (the rest go to the
/// general kernel), or fewer warps. `None` if nothing fits.
pub fn pick_fast_variant(
    path: DecodePath,
    out: FastOut,
    tune: &Tuning,
    words: &mut [u32],
    wg_bytes: u32,
    wg_threads: u32,
) -> Option<FastVariant> {
    if words.is_empty() {
        return None;
    }
    words.sort_unstable();
    // u32 for a tile of nw words at either alignment, in steps of 64
    let cap = match tune.fast_stage {
        0 => 2048,
        w => (w / 2 / 64 * 64).clamp(64, 2048),
    };
    // the lossy kernel's stage is also its transform scratch: 8 rows at
    // least (`lossy_rows` rows if set)
    let floor = match out {
        FastOut::Lossy { .. } => 64 * tune.lossy_rows.max(8),
        _ => 64,
    };
    let cap = cap.max(floor);
    let need = |nw: u32| (((nw + 2) / 2).div_ceil(64) * 64).max(floor);
    let full = need(words[words.len() - 1]).min(cap);
    let p99 = need(words[(words.len() - 1) * 99 / 100]).min(cap);
    // Automatic choices (0 / None), measured on the H100 (BENCHMARKS.md):
    // on subgroups of 32, large planes take two tiles a slot with words read
    // through the cache (no stage) and big workgroups (32 slots for bytes,
    // 16 for float-split, whose merge needs more registers); smaller planes
    // one tile a slot and 16 slots, staged where the stage fits, so that
    // every SM gets work. Elsewhere: staged, one tile a slot, 8 slots.
    let wide = path == DecodePath::SubgroupWide;
    let tiles = words.len() as u32;
    // the lossy kernel decodes one tile a slot into workgroup memory and
    // rebuilds it there: no ILP, always staged, 8 slots at most by default
    let lossy = matches!(out, FastOut::Lossy { .. });
    let ilp = match tune.fast_ilp {
        _ if lossy => 1,
        0 if wide && tiles >= FAST_ILP_TILES => 2,
        0 => 1,
        n => n.clamp(1, 2),
    };
    let mut want = match tune.fast_warps {
        0 if lossy => 8,
        0 if wide && ilp == 2 && out == FastOut::Bytes => 32,
        0 if wide => 16,
        0 => 8,
        n => n,
    }
    .clamp(1, (wg_threads / 32).max(1));
    if tune.fast_warps == 0 {
        // a small plane: smaller workgroups, so that every SM gets some
        while want > 4 && tiles < want * ilp * FAST_MIN_WGS {
            want /= 2;
        }
    }
    let mk = |warps: u32, stage_u32: u32| FastVariant {
        path,
        warps,
        stage_u32,
        out,
        probe: tune.probe,
        ilp,
        direct: stage_u32 == 0,
    };
    // the largest stage (a multiple of 64 u32) that fits `warps`
    let fit = |warps: u32| -> u32 {
        let v = mk(warps, 0);
        let free = (wg_bytes / 4).saturating_sub(v.workgroup_bytes() / 4);
        (free / (warps * ilp) / 64 * 64).min(cap)
    };
    let direct = !lossy
        && tune
            .fast_direct
            .unwrap_or(wide && (ilp == 2 || fit(want) < full));
    if direct {
        return (mk(want, 0).workgroup_bytes() <= wg_bytes).then(|| mk(want, 0));
    }
    if fit(want) >= full {
        return Some(mk(want, full));
    }
    if fit(want) >= p99 && fit(want) >= floor {
        return Some(mk(want, fit(want)));
    }
    for warps in (1..want).rev() {
        if fit(warps) >= full {
            return Some(mk(warps, full));
        }
    }
    let s = fit(1);
    (s >= floor).then(|| mk(1, s))
}

/// Workgroups a fast dispatch should have at least (about 1 per SM on the
/// H100's 132): automatic tunings shrink the workgroup for smaller planes.
pub const FAST_MIN_WGS: u32 = 128;

/// Fast tiles of one output kind from which the automatic tuning decodes
/// two tiles a slot (on subgroups of 32): 64 MiB of INT8.
pub const FAST_ILP_TILES: u32 = 16384;

/// Workgroups and rounds of the fast kernel's groups of `counts` tiles:
/// about `target` workgroups in all (`warps` tiles a round each: the
/// variant's `tiles_per_round`),
/// at most `max_rounds` rounds each and `max_wgs` workgroups in all.
/// Returns (workgroups, rounds) per group.
pub fn fast_layout(
    counts: &[u32],
    warps: u32,
    target: u32,
    max_rounds: u32,
    max_wgs: u32,
) -> Vec<(u32, u32)> {
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    let per_round = warps.max(1) as u64;
    let mut rounds = total
        .div_ceil(per_round * target.max(1) as u64)
        .clamp(1, max_rounds.max(1) as u64);
    loop {
        let v: Vec<(u32, u32)> = counts
            .iter()
            .map(|&c| {
                let wgs = (c as u64).div_ceil(per_round * rounds).max(1);
                let r = (c as u64).div_ceil(wgs * per_round).max(1);
                (wgs as u32, r as u32)
            })
            .collect();
        let sum: u64 = v.iter().map(|x| x.0 as u64).sum();
        if sum <= max_wgs as u64 || rounds >= 1 << 20 {
            return v;
        }
        rounds *= 2;
    }
}

/// Cut every job into chunks. Jobs are taken in order; consecutive small
/// jobs share a chunk; a large job gets chunks of its own, cut at tile (1-D)
/// or band (2-D) boundaries.
pub fn chunks(file: &WcodecFile, jobs: &[OutJob], lim: &Limits) -> Result<(Vec<Chunk>, usize)> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut cur = Chunk::default();
    let mut slots = 0usize;
    let flush = |cur: &mut Chunk, out: &mut Vec<Chunk>| {
        if !cur.parts.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for (ji, j) in jobs.iter().enumerate() {
        let e = &file.tensors[j.tensor];
        match &j.producer {
            Producer::File(_) | Producer::Host(_) => {
                let need = round_up(j.bytes, 16) + 16;
                if need > lim.input {
                    return Err(Error::Gpu(format!(
                        "tensor {}: {} raw bytes do not fit a {}-byte staging chunk",
                        j.name, j.bytes, lim.input
                    )));
                }
                if cur.input_bytes + need > lim.input
                    || cur.staged_bytes + round_up(j.bytes, ALIGN) > lim.batch_staged
                {
                    flush(&mut cur, &mut out);
                }
                cur.parts.push(Part::Copy { job: ji });
                cur.input_bytes += need;
                cur.staged_bytes += round_up(j.bytes.max(4), ALIGN);
                cur.completes.push(ji);
            }
            Producer::Kernel { kind, .. } => {
                let p = plane_of(file, j.tensor);
                if p.grid.symbols() as u64 >= 1 << 32 || p.stream.len() as u64 >= 1 << 33 {
                    return Err(Error::Gpu(format!(
                        "tensor {}: {} elements; the GPU kernels index elements and stream words in 32 bits, so planes stop below 2^32 elements; decode it on the CPU",
                        e.name,
                        p.grid.symbols()
                    )));
                }
                let nt = p.grid.num_tiles();
                let elem = kind.elem_size();
                let gran = p.granule();
                let whole_in = seg_input(&p, *kind, 0, nt);
                let whole_out = round_up(j.bytes + ALIGN, ALIGN);
                let unaligned = !aligned(&p.grid, elem);
                let whole_scratch = if unaligned { 4096 * nt as u64 } else { 0 };
                let small = j.bytes <= lim.batch_out
                    && whole_in <= lim.input
                    && whole_out <= lim.binding
                    && whole_scratch <= lim.scratch;
                if small {
                    let scratch_now: u64 = 0; // per-chunk scratch is checked below
                    let _ = scratch_now;
                    if cur.input_bytes + whole_in > lim.input
                        || cur.staged_bytes + whole_out > lim.binding
                        || cur.parts.len() >= lim.segments
                        || chunk_scratch(file, jobs, &cur) + whole_scratch > lim.scratch
                    {
                        flush(&mut cur, &mut out);
                    }
                    let el = p.elems(0, nt);
                    cur.parts.push(Part::Seg {
                        job: ji,
                        tiles: 0..nt,
                        out: el.start * elem..el.end * elem,
                        slot: slots,
                    });
                    slots += 1;
                    cur.input_bytes += whole_in;
                    cur.staged_bytes += whole_out;
                    cur.completes.push(ji);
                    continue;
                }
                // A large job: chunks of whole granules, on their own.
                flush(&mut cur, &mut out);
                let mut t0 = 0usize;
                while t0 < nt {
                    let mut t1 = (t0 + gran).min(nt);
                    let fits = |t1: usize| {
                        let el = p.elems(t0, t1);
                        let lo = el.start * elem;
                        let hi = el.end * elem;
                        let window = round_up(hi, 4) - round_down(lo, ALIGN);
                        seg_input(&p, *kind, t0, t1) <= lim.input
                            && window <= lim.binding
                            && (!unaligned || 4096 * (t1 - t0) as u64 <= lim.scratch)
                    };
                    if !fits(t1) {
                        return Err(Error::Gpu(format!(
                            "tensor {}: one {} of tiles {t0}..{t1} exceeds the device's limits (input {} B, binding {} B); decode it on the CPU",
                            e.name,
                            if gran == 1 { "tile" } else { "band" },
                            lim.input,
                            lim.binding
                        )));
                    }
                    // grow by doubling, then bisect
                    let mut step = gran;
                    while t1 < nt && fits((t1 + step).min(nt)) {
                        t1 = (t1 + step).min(nt);
                        step *= 2;
                    }
                    while step > gran {
                        step /= 2;
                        let step_g = step / gran * gran;
                        if step_g >= gran && t1 < nt && fits((t1 + step_g).min(nt)) {
                            t1 = (t1 + step_g).min(nt);
                        }
                    }
                    let el = p.elems(t0, t1);
                    let input = seg_input(&p, *kind, t0, t1);
                    let mut c = Chunk {
                        parts: vec![Part::Seg {
                            job: ji,
                            tiles: t0..t1,
                            out: el.start * elem..el.end * elem,
                            slot: slots,
                        }],
                        input_bytes: input,
                        staged_bytes: round_up(
                            round_up(el.end * elem, 4) - round_down(el.start * elem, ALIGN),
                            ALIGN,
                        ),
                        completes: Vec::new(),
                    };
                    slots += 1;
                    if t1 == nt {
                        c.completes.push(ji);
                    }
                    out.push(c);
                    t0 = t1;
                }
            }
        }
    }
    flush(&mut cur, &mut out);
    Ok((out, slots))
}

/// Scratch bytes the unaligned segments of a chunk need.
pub fn chunk_scratch(file: &WcodecFile, jobs: &[OutJob], c: &Chunk) -> u64 {
    c.parts
        .iter()
        .map(|p| match p {
            Part::Seg { job, tiles, .. } => {
                let j = &jobs[*job];
                let Producer::Kernel { kind, .. } = j.producer else {
                    return 0;
                };
                if aligned(&plane_of(file, j.tensor).grid, kind.elem_size()) {
                    0
                } else {
                    4096 * tiles.len() as u64
                }
            }
            Part::Copy { .. } => 0,
        })
        .sum()
}

/// Tuning of the decode kernel (environment: `WCODEC_GPU_*`).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Force a path; `None` picks the best the adapter has.
    pub path: Option<DecodePath>,
    /// Tiles per workgroup wanted (fewer if workgroup memory is short).
    pub tiles: u32,
    /// Words staged per tile (0: none).
    pub stage_words: u32,
    /// Force the lookup-table layout.
    pub lut: Option<LutKind>,
    /// Persistent workgroups per dispatch (0: automatic).
    pub workgroups: u32,
    /// Use the fast kernel for the tiles it takes.
    pub fast: bool,
    /// Tiles per workgroup round (slots of 32 invocations) of the fast
    /// kernel wanted, fewer if memory is short (0: automatic, see
    /// `pick_fast_variant`).
    pub fast_warps: u32,
    /// Workgroups of a fast dispatch wanted (0: automatic).
    pub fast_wgs: u32,
    /// At most this many u16 words staged per fast tile (0: as the tiles need);
    /// longer tiles go to the general kernel.
    pub fast_stage: u32,
    /// A measurement probe (bench only: the outputs are wrong).
    pub probe: FastProbe,
    /// At most this many tile rows in a lossy tile's transform scratch
    /// (8, 16, 32 or 64; 0: as many as workgroup memory allows); for the
    /// fast lossy kernel, at least this many (0: 8).
    pub lossy_rows: u32,
    /// Fast tiles per slot, decoded interleaved (1 or 2; 0: automatic).
    pub fast_ilp: u32,
    /// Fast kernel: read words from the input buffer instead of staging
    /// them (None: automatic).
    pub fast_direct: Option<bool>,
    /// Use the fast lossy kernel for full lossy tiles (with `fast`).
    pub fast_lossy: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            path: None,
            tiles: 4,
            stage_words: 2048,
            lut: None,
            workgroups: 0,
            fast: true,
            fast_warps: 0,
            fast_wgs: 0,
            fast_stage: 0,
            probe: FastProbe::None,
            lossy_rows: 0,
            fast_ilp: 0,
            fast_direct: None,
            fast_lossy: true,
        }
    }
}

impl Tuning {
    /// Defaults, overridden by `WCODEC_GPU_PATH` (subgroup|workgroup),
    /// `WCODEC_GPU_TILES`, `WCODEC_GPU_STAGE`, `WCODEC_GPU_LUT` (slot32|split),
    /// `WCODEC_GPU_WGS` (the general kernel), `WCODEC_GPU_FAST` (0: general
    /// kernel only), `WCODEC_GPU_FAST_WARPS`, `WCODEC_GPU_FAST_WGS`,
    /// `WCODEC_GPU_FAST_STAGE`, `WCODEC_GPU_FAST_ILP` (1|2),
    /// `WCODEC_GPU_FAST_DIRECT` (1: no stage), `WCODEC_GPU_LOSSY_ROWS` and
    /// `WCODEC_GPU_FAST_LOSSY` (0: lossy tiles through the general kernel only).
    pub fn from_env() -> Result<Tuning> {
        let mut t = Tuning::default();
        if let Ok(p) = std::env::var("WCODEC_GPU_PATH") {
            t.path = Some(parse_path(&p)?);
        }
        if let Some(v) = env_num("WCODEC_GPU_TILES")? {
            if !(1..=8).contains(&v) {
                return Err(Error::Param(format!("WCODEC_GPU_TILES={v} not in 1..=8")));
            }
            t.tiles = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_STAGE")? {
            t.stage_words = v / 2 * 2;
        }
        if let Ok(v) = std::env::var("WCODEC_GPU_LUT") {
            t.lut = Some(match v.as_str() {
                "slot32" => LutKind::Slot32,
                "split" => LutKind::Split,
                _ => {
                    return Err(Error::Param(format!(
                        "WCODEC_GPU_LUT={v:?}: expected slot32 or split"
                    )));
                }
            });
        }
        if let Some(v) = env_num("WCODEC_GPU_WGS")? {
            t.workgroups = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST")? {
            t.fast = v != 0;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST_LOSSY")? {
            t.fast_lossy = v != 0;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST_WARPS")? {
            if !(1..=32).contains(&v) {
                return Err(Error::Param(format!(
                    "WCODEC_GPU_FAST_WARPS={v} not in 1..=32"
                )));
            }
            t.fast_warps = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST_WGS")? {
            t.fast_wgs = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST_STAGE")? {
            t.fast_stage = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_LOSSY_ROWS")? {
            if ![0, 8, 16, 32, 64].contains(&v) {
                return Err(Error::Param(format!(
                    "WCODEC_GPU_LOSSY_ROWS={v}: expected 8, 16, 32 or 64"
                )));
            }
            t.lossy_rows = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST_ILP")? {
            if !(1..=2).contains(&v) {
                return Err(Error::Param(format!(
                    "WCODEC_GPU_FAST_ILP={v} not in 1..=2"
                )));
            }
            t.fast_ilp = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_FAST_DIRECT")? {
            t.fast_direct = Some(v != 0);
        }
        Ok(t)
    }
}

/// `subgroup`, `subgroup-narrow` or `workgroup`.
pub fn parse_path(s: &str) -> Result<DecodePath> {
    Ok(match s {
        "subgroup" => DecodePath::SubgroupWide,
        "subgroup-narrow" => DecodePath::SubgroupNarrow,
        "workgroup" => DecodePath::Workgroup,
        _ => {
            return Err(Error::Param(format!(
                "GPU path {s:?}: expected subgroup or workgroup"
            )));
        }
    })
}

/// The path an adapter runs best: a subgroup path if it has SUBGROUP and
/// its subgroup sizes suit one, else the workgroup path. `subgroup` asked
/// of an adapter with narrow subgroups means the narrow subgroup path.
pub fn pick_path(
    want: Option<DecodePath>,
    has_subgroup: bool,
    sg_min: u32,
    sg_max: u32,
) -> Result<DecodePath> {
    let wide_ok = has_subgroup && sg_min >= 32 && sg_min.is_power_of_two() && sg_max <= 128;
    let narrow_ok = has_subgroup && sg_min >= 4 && sg_max <= 32;
    match want {
        Some(DecodePath::Workgroup) => Ok(DecodePath::Workgroup),
        Some(DecodePath::SubgroupWide | DecodePath::SubgroupNarrow) => {
            if wide_ok {
                Ok(DecodePath::SubgroupWide)
            } else if narrow_ok {
                Ok(DecodePath::SubgroupNarrow)
            } else if !has_subgroup {
                Err(Error::Gpu(
                    "the subgroup path was asked for, but the device has no SUBGROUP feature"
                        .into(),
                ))
            } else {
                Err(Error::Gpu(format!(
                    "the subgroup path was asked for, but subgroup sizes {sg_min}..{sg_max} suit neither variant"
                )))
            }
        }
        None => Ok(if wide_ok {
            DecodePath::SubgroupWide
        } else if narrow_ok {
            DecodePath::SubgroupNarrow
        } else {
            DecodePath::Workgroup
        }),
    }
}

/// The kernel variant for a chunk: as many tiles per workgroup as wanted
/// and memory allows, the one-read table layout if the tables fit.
/// `lossy` (chunks with lossy tiles) implies `modes`.
#[allow(clippy::too_many_arguments)]
pub fn pick_variant(
    path: DecodePath,
    sg32: bool,
    tables: u32,
    modes: bool,
    lossy: bool,
    tune: &Tuning,
    wg_bytes: u32,
    wg_threads: u32,
) -> Result<DecodeVariant> {
    let tables = tables.clamp(1, 4);
    let kinds: &[LutKind] = match tune.lut {
        Some(LutKind::Slot32) => &[LutKind::Slot32, LutKind::Split],
        Some(LutKind::Split) => &[LutKind::Split],
        None => &[LutKind::Slot32, LutKind::Split],
    };
    let stages = if tune.stage_words > 0 {
        vec![tune.stage_words, tune.stage_words / 2, 0]
    } else {
        vec![0]
    };
    // lossy chunks: the transform scratch holds as many tile rows as fit
    let rows: &[u32] = if lossy { &[64, 32, 16, 8] } else { &[64] };
    for &stage_words in &stages {
        for &lut_kind in kinds {
            for tiles in (1..=tune.tiles.max(1)).rev() {
                for &lx_rows in rows {
                    if tune.lossy_rows != 0 && lx_rows > tune.lossy_rows {
                        continue;
                    }
                    let v = DecodeVariant {
                        path,
                        tiles,
                        lut_kind,
                        lut_tables: tables,
                        stage_words,
                        modes: modes || lossy,
                        lossy,
                        lx_rows,
                        sg32,
                    };
                    if v.workgroup_bytes() <= wg_bytes && v.threads() <= wg_threads {
                        return Ok(v);
                    }
                }
            }
        }
    }
    Err(Error::Gpu(format!(
        "no decode kernel variant fits {wg_bytes} bytes of workgroup memory"
    )))
}

/// The number in environment variable `k` (None when unset); an error
/// naming the variable when it is not a number. The GPU tuning knobs
/// (`WCODEC_GPU_*`) are read through it.
pub(crate) fn env_num(k: &str) -> Result<Option<u32>> {
    match std::env::var(k) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::Param(format!("{k}={v:?} is not a number"))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every constant of shaders/lib/segment.wgsl (the kernels' side of the
    /// plan layout) has the value plan.rs writes, or the format's mode code;
    /// and every constant the kernels are handed is listed here.
    #[test]
    fn segment_wgsl_matches_the_plan() {
        use crate::codec::predict::Mode;
        let src = include_str!("../../shaders/lib/segment.wgsl");
        let m = |x: Mode| x as u8 as u64;
        let want: &[(&str, u64)] = &[
            ("SEG_WORDS", SEG_WORDS as u64),
            ("HDR_WORDS", HDR_WORDS as u64),
            ("S_UNIT_START", S_UNIT_START as u64),
            ("S_TILE_FIRST", S_TILE_FIRST as u64),
            ("S_TILE_COUNT", S_TILE_COUNT as u64),
            ("S_ROWS", S_ROWS as u64),
            ("S_COLS", S_COLS as u64),
            ("S_TILE_H", S_TILE_H as u64),
            ("S_TILE_W", S_TILE_W as u64),
            ("S_TILES_X", S_TILES_X as u64),
            ("S_PROB_BITS", S_PROB_BITS as u64),
            ("S_TAIL", S_TAIL as u64),
            ("S_NTABLES", S_NTABLES as u64),
            ("S_TABLE_OFF", S_TABLE_OFF as u64),
            ("S_INDEX_BASE", S_INDEX_BASE as u64),
            ("S_STREAM_BASE", S_STREAM_BASE as u64),
            ("S_WORD_ORIGIN", S_WORD_ORIGIN as u64),
            ("S_WORD_LO", S_WORD_LO as u64),
            ("S_WORD_HI", S_WORD_HI as u64),
            ("S_KIND", S_KIND as u64),
            ("S_OUT_ADJ", S_OUT_ADJ as u64),
            ("S_ROW_ORG", S_ROW_ORG as u64),
            ("S_COL_ORG", S_COL_ORG as u64),
            ("S_RAW_BASE", S_RAW_BASE as u64),
            ("S_SCALE_BASE", S_SCALE_BASE as u64),
            ("S_SCRATCH_BASE", S_SCRATCH_BASE as u64),
            ("S_ERR_SLOT", S_ERR_SLOT as u64),
            ("S_U_WORD_FIRST", S_U_WORD_FIRST as u64),
            ("S_U_WORD_COUNT", S_U_WORD_COUNT as u64),
            ("S_U_ELO", S_U_ELO as u64),
            ("S_U_EHI", S_U_EHI as u64),
            ("S_FAST", S_FAST as u64),
            ("S_LUT_OFF", S_LUT_OFF as u64),
            ("K_BYTES", K_BYTES as u64),
            ("K_SPLIT", K_SPLIT as u64),
            ("K_DEQ", K_DEQ as u64),
            ("K_LDEQ", K_LDEQ as u64),
            ("F_XOR80", F_XOR80 as u64),
            ("F_SCRATCH", F_SCRATCH as u64),
            ("F_LOSSY", F_LOSSY as u64),
            ("E_STATES", E_STATES as u64),
            ("E_UNDERFLOW", E_UNDERFLOW as u64),
            ("E_TRAILING", E_TRAILING as u64),
            ("E_FINAL", E_FINAL as u64),
            ("E_INDEX", E_INDEX as u64),
            ("E_SUBGROUP", E_SUBGROUP as u64),
            ("GRP_HDR", GRP_HDR as u64),
            ("GRP_WORDS", GRP_WORDS as u64),
            ("M_NONE", m(Mode::None)),
            ("M_LEFT", m(Mode::Left)),
            ("M_TOP", m(Mode::Top)),
            ("M_AVG", m(Mode::Avg)),
            ("M_PLANAR", m(Mode::Planar)),
            ("M_SPATIAL", m(Mode::Spatial)),
            ("M_DCT8", m(Mode::Dct8)),
            ("M_DCT4", m(Mode::Dct4)),
            ("M_DST4", m(Mode::Dst4)),
        ];
        let mut got = Vec::new();
        for line in src.lines() {
            let Some(rest) = line.strip_prefix("const ") else {
                continue;
            };
            let (name, value) = rest
                .split_once(": u32 = ")
                .unwrap_or_else(|| panic!("unexpected constant line {line:?}"));
            let v = value.trim_end_matches(';').trim_end_matches('u');
            let v = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            }
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            got.push((name, v));
        }
        let mut w: Vec<(&str, u64)> = want.to_vec();
        w.sort();
        got.sort();
        assert_eq!(got, w);
    }

    #[test]
    fn env_num_reads_numbers_and_names_the_variable_otherwise() {
        // Variables of this test alone (no other test reads or writes them).
        let (set, bad, unset) = (
            "WCODEC_TEST_ENV_NUM_SET",
            "WCODEC_TEST_ENV_NUM_BAD",
            "WCODEC_TEST_ENV_NUM_UNSET",
        );
        // SAFETY: these names are used by this test only, and the process's
        // other threads do not write the environment.
        unsafe {
            std::env::set_var(set, "24");
            std::env::set_var(bad, "2x");
            std::env::remove_var(unset);
        }
        assert_eq!(env_num(set).unwrap(), Some(24));
        assert_eq!(env_num(unset).unwrap(), None);
        let e = env_num(bad).unwrap_err().to_string();
        assert!(e.contains(bad) && e.contains("2x"), "{e}");
    }

    #[test]
    fn variants_fit_lavapipe_and_h100() {
        let t = Tuning::default();
        for (mem, threads, max_tables) in
            [(32 << 10, 1024, 4), (48 << 10, 1024, 4), (16 << 10, 256, 2)]
        {
            for tables in 1..=max_tables {
                for modes in [false, true] {
                    let v = pick_variant(
                        DecodePath::SubgroupWide,
                        false,
                        tables,
                        modes,
                        false,
                        &t,
                        mem,
                        threads,
                    )
                    .unwrap();
                    assert!(v.workgroup_bytes() <= mem, "{v:?}");
                }
            }
        }
        // the common case on the H100: one table, no modes, 4 tiles, staged, one-read tables
        let v = pick_variant(
            DecodePath::SubgroupWide,
            true,
            1,
            false,
            false,
            &t,
            48 << 10,
            1024,
        )
        .unwrap();
        assert_eq!(
            (v.tiles, v.lut_kind, v.stage_words),
            (4, LutKind::Slot32, 2048)
        );
    }

    #[test]
    fn lossy_variants_fit_lavapipe_and_h100() {
        let t = Tuning::default();
        for (mem, threads, max_tables) in
            [(32 << 10, 1024, 4), (48 << 10, 1024, 4), (16 << 10, 256, 1)]
        {
            for tables in 1..=max_tables {
                let v = pick_variant(
                    DecodePath::SubgroupWide,
                    false,
                    tables,
                    true,
                    true,
                    &t,
                    mem,
                    threads,
                )
                .unwrap();
                assert!(v.lossy && v.modes && v.workgroup_bytes() <= mem, "{v:?}");
                assert!([8, 16, 32, 64].contains(&v.lx_rows), "{v:?}");
            }
        }
        // the H100: whole-tile scratch (in the stage area), three tiles a workgroup
        let v = pick_variant(
            DecodePath::SubgroupWide,
            true,
            1,
            true,
            true,
            &t,
            48 << 10,
            1024,
        )
        .unwrap();
        assert_eq!((v.tiles, v.lx_rows, v.lut_kind), (3, 64, LutKind::Slot32));
        // a cap on the rows
        let capped = Tuning {
            lossy_rows: 8,
            ..Tuning::default()
        };
        let v = pick_variant(
            DecodePath::Workgroup,
            false,
            1,
            true,
            true,
            &capped,
            48 << 10,
            1024,
        )
        .unwrap();
        assert_eq!(v.lx_rows, 8);
    }

    #[test]
    fn fast_variants_fit_the_h100() {
        // the automatic choice on the H100: direct, two tiles a slot, 32
        // slots; fewer slots for a small plane
        let auto = |tiles: usize| {
            pick_fast_variant(
                DecodePath::SubgroupWide,
                FastOut::Bytes,
                &Tuning::default(),
                &mut vec![1880; tiles],
                48 << 10,
                1024,
            )
            .unwrap()
        };
        let v = auto(262144);
        assert!(v.direct && v.ilp == 2 && v.warps == 32, "{v:?}");
        assert!(v.workgroup_bytes() <= 48 << 10);
        // 16 MiB: one tile a slot, 16 slots, direct (the stage does not fit 16)
        let v = auto(4096);
        assert!(v.direct && v.ilp == 1 && v.warps == 16, "{v:?}");
        let v = auto(100);
        assert!(v.warps == 4 && v.ilp == 1, "{v:?}");
        // BF16 exponents, 16 MiB: staged, 16 slots
        let v = pick_fast_variant(
            DecodePath::SubgroupWide,
            FastOut::Split { src: 2, dst: 2 },
            &Tuning::default(),
            &mut vec![720; 2048],
            48 << 10,
            1024,
        )
        .unwrap();
        assert!(!v.direct && v.ilp == 1 && v.warps == 16, "{v:?}");
        // lavapipe (narrow subgroups): staged, 8 slots
        let v = pick_fast_variant(
            DecodePath::SubgroupNarrow,
            FastOut::Bytes,
            &Tuning::default(),
            &mut vec![1880; 262144],
            32 << 10,
            1024,
        )
        .unwrap();
        assert!(!v.direct && v.ilp == 1, "{v:?}");
        // staged
        let t = Tuning {
            fast_warps: 8,
            fast_ilp: 1,
            fast_direct: Some(false),
            ..Default::default()
        };
        let pick = |words: &[u32], mem| {
            pick_fast_variant(
                DecodePath::SubgroupWide,
                FastOut::Bytes,
                &t,
                &mut words.to_vec(),
                mem,
                1024,
            )
            .unwrap()
        };
        // INT8 weights (about 1880 words a tile): 8 tiles a workgroup, 46 KiB
        let v = pick(&[1850, 1892, 1870], 48 << 10);
        assert_eq!((v.warps, v.stage_u32), (8, 960));
        assert!(v.workgroup_bytes() <= 48 << 10 && v.max_words() >= 1892);
        // BF16 exponents (about 710 words)
        let v = pick(&[700, 720], 48 << 10);
        assert_eq!((v.warps, v.stage_u32), (8, 384));
        // nearly incompressible tiles: fewer tiles a workgroup, all staged
        let v = pick(&[2100; 10], 48 << 10);
        assert!(v.warps < 8 && v.max_words() >= 2100, "{v:?}");
        // one outlier in 200 does not shrink the workgroup
        let mut w = vec![1800u32; 199];
        w.push(4000);
        let v = pick(&w, 48 << 10);
        assert!(v.warps == 8 && v.max_words() >= 1800 && v.max_words() < 4000);
        // lavapipe's 32 KiB
        let v = pick(&[1892], 32 << 10);
        assert!(v.workgroup_bytes() <= 32 << 10 && v.max_words() >= 1892);
    }

    #[test]
    fn fast_layout_spreads_tiles() {
        // 1 GiB of INT8: 262144 tiles, one group
        let l = fast_layout(&[262144], 8, 2048, 1 << 20, 65535);
        assert_eq!(l, vec![(2048, 16)]);
        // 16 MiB: every slot one tile
        let l = fast_layout(&[4096], 8, 2048, 1 << 20, 65535);
        assert_eq!(l, vec![(512, 1)]);
        // four tables, uneven
        let l = fast_layout(&[70000, 2000, 11000, 48000], 8, 2048, 1 << 20, 65535);
        for (&(w, r), c) in l.iter().zip([70000u32, 2000, 11000, 48000]) {
            assert!(w * r * 8 >= c && (w * (r - 1) * 8) < c, "{w} {r} {c}");
        }
        // the dispatch limit and the round limit
        let l = fast_layout(&[10_000_000], 1, 1 << 30, 1 << 20, 65535);
        assert!(l[0].0 <= 65535 && l[0].0 as u64 * l[0].1 as u64 >= 10_000_000);
        let l = fast_layout(&[100000], 4, u32::MAX, 16, 65535);
        assert!(l[0].1 <= 16);
    }

    #[test]
    fn paths_follow_subgroup_sizes() {
        assert_eq!(
            pick_path(None, true, 32, 32).unwrap(),
            DecodePath::SubgroupWide
        );
        assert_eq!(
            pick_path(None, true, 32, 64).unwrap(),
            DecodePath::SubgroupWide
        );
        assert_eq!(
            pick_path(None, true, 8, 8).unwrap(),
            DecodePath::SubgroupNarrow
        );
        assert_eq!(
            pick_path(None, true, 8, 32).unwrap(),
            DecodePath::SubgroupNarrow
        );
        assert_eq!(
            pick_path(None, true, 4, 128).unwrap(),
            DecodePath::Workgroup
        );
        assert_eq!(
            pick_path(None, false, 32, 32).unwrap(),
            DecodePath::Workgroup
        );
        assert!(pick_path(Some(DecodePath::SubgroupWide), false, 32, 32).is_err());
        assert_eq!(
            pick_path(Some(DecodePath::Workgroup), true, 32, 32).unwrap(),
            DecodePath::Workgroup
        );
    }
}

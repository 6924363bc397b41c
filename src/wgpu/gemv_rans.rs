//! Compressed GEMV on wgpu (`shaders/gemv_rans_i8.wgsl`): `y = scale ⊙ (Q·x) + bias`
//! with Q, an int8 matrix, kept in device memory as its `.wcodec` coded plane
//! (stream, tile index, decode tables; the VRAM of the compressed size) and
//! decoded tile by tile into workgroup memory by the GEMV itself; Q is never
//! materialised. Two kernels:
//! - the tile kernel (`gemv_rans_tiles.wgsl` + `gemv_rans_reduce.wgsl`, the
//!   default): workgroups of `nw` 32-lane decoders share one decode table in
//!   workgroup memory and take tiles of a work list; each tile's 64 row sums
//!   go to a partials buffer, which a second pass adds in column order. On
//!   subgroups of ≥ 32 lanes (or when asked) full-width NONE / PLANAR tiles
//!   are multiplied inside the decode loop (FUSED: no tile buffer; with
//!   [`RansGemvTuning::ilp`] 2 two tiles a decoder interleaved, with
//!   [`RansGemvTuning::direct`] words read from the stream, not staged);
//!   other tiles are rebuilt in workgroup memory by a side dispatch;
//! - the band kernel (`gemv_rans_i8.wgsl`, `rounds` 0): a workgroup per band
//!   of 64 rows, its tiles' products added in a fixed order.
//!
//! Both give the same results run to run.
//!
//! Sources: a `quant` tensor (int8 codes + per-row scales) or an `int8`
//! tensor of dtype I8 from a `.wcodec` file ([`CompressedWeights::from_file`]),
//! or any 2-D coded plane ([`CompressedWeights::from_plane`]).

use std::sync::Arc;

use crate::codec::Encoding;
use crate::codec::plane::PlaneView;
use crate::codec::rans;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::reader::{PlaneRef, WcodecFile};
use crate::wgpu::context::{Binding, GpuContext, Kernel, KernelSource, PooledBuffer};
use crate::wgpu::gemv::{ReducePath, VecDtype, grid, resolve_path, upload_f32};
use crate::wgpu::plan::env_num;

/// Work split of the compressed GEMV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RansGemvTuning {
    /// Tile decoders (32 invocations each) per workgroup.
    pub nw: u32,
    /// Stream words staged in workgroup memory per decoder (even).
    pub capw: u32,
    /// 0: the band kernel (`gemv_rans_i8.wgsl`, a workgroup per 64 rows);
    /// otherwise the tile kernel (`gemv_rans_tiles.wgsl`), each workgroup
    /// taking `rounds` rounds of `nw` tiles (`nw · ilp` where FUSED), then a
    /// reduction pass.
    pub rounds: u32,
    /// FUSED tile kernel only (elsewhere 1): tiles per decoder and round,
    /// decoded interleaved step by step (1 or 2), as the fast decoder's ILP.
    pub ilp: u32,
    /// FUSED tile kernel only: words read from the stream buffer through the
    /// cache instead of staged (`capw` unused there): workgroup memory holds
    /// the decode table alone, and on subgroups of ≥ 32 lanes the tile loop
    /// has no barrier.
    pub direct: bool,
}

/// `RansGemvTuning { nw, capw, rounds, ilp: 1, direct: false }`.
pub const fn tuning(nw: u32, capw: u32, rounds: u32) -> RansGemvTuning {
    RansGemvTuning {
        nw,
        capw,
        rounds,
        ilp: 1,
        direct: false,
    }
}

impl RansGemvTuning {
    /// Tiles per decoder and round in the kernel built with `fused`.
    pub fn ilp_in(&self, fused: bool) -> u32 {
        if fused && self.rounds > 0 {
            self.ilp
        } else {
            1
        }
    }

    /// Whether the kernel built with `fused` reads words directly.
    pub fn direct_in(&self, fused: bool) -> bool {
        fused && self.rounds > 0 && self.direct
    }

    /// Workgroup memory the kernel needs; `fused`: the FUSED tile kernel
    /// (no tile buffer), `wide`: on subgroups of ≥ 32 lanes (FUSED row sums
    /// by subgroup shuffles, else through workgroup memory).
    pub fn workgroup_bytes(&self, fused: bool, wide: bool) -> u32 {
        if self.rounds == 0 {
            return self.nw * (self.capw * 2 + 4096 + 16 + 12) + 8;
        }
        let ilp = self.ilp_in(fused);
        let stage = if self.direct_in(fused) {
            4
        } else {
            self.nw * ilp * self.capw * 2
        };
        let tile = if fused { 4 } else { self.nw * 4096 };
        let sums = if fused && !wide {
            2 * self.nw * 32 * 4
        } else {
            4
        };
        4 * 4096 + stage + tile + sums + self.nw * (16 + 12 * ilp) + 8
    }

    /// Whether [`RansGemv::new`] runs the FUSED tile kernel on `path` by
    /// default (subgroups of at least 32 lanes).
    pub fn fused_on(ctx: &GpuContext, path: ReducePath) -> bool {
        ctx.has(wgpu::Features::SUBGROUP)
            && ctx.info.subgroup_min_size >= 32
            && matches!(path, ReducePath::Subgroup | ReducePath::Auto)
    }

    /// Whether [`RansGemv::new`] runs the FUSED tile kernel on `path` when
    /// not told: `WCODEC_GPU_CGEMV_FUSED` (0|1) if set, else
    /// [`RansGemvTuning::fused_on`].
    pub fn fused_default(ctx: &GpuContext, path: ReducePath) -> Result<bool> {
        Ok(env_num("WCODEC_GPU_CGEMV_FUSED")?.map_or(Self::fused_on(ctx, path), |v| v != 0))
    }

    /// The variants worth timing that fit the device, the default first;
    /// `fused` as [`RansGemvTuning::fused_on`].
    pub fn candidates(ctx_limit: u32, fused: bool) -> Vec<RansGemvTuning> {
        Self::candidates_for(ctx_limit, fused, fused)
    }

    /// [`RansGemvTuning::candidates`] for a FUSED kernel on any path
    /// (`wide`: subgroups of ≥ 32 lanes).
    pub fn candidates_for(ctx_limit: u32, fused: bool, wide: bool) -> Vec<RansGemvTuning> {
        // H100, 50257×2560 int8 (bench kernels --only compressed, 2026-11-24):
        // 1054, 1072, 1096, 1231, 1302, 1570, 1609, 2264, 1239 µs; the band
        // kernel's best 1986 µs.
        let wide_list = [
            (8, 256, 2),
            (16, 256, 2),
            (12, 1024, 2),
            (8, 1792, 2),
            (8, 1792, 4),
            (8, 1024, 2),
            (6, 2048, 2),
            (4, 2048, 4),
            (8, 1792, 1),
        ];
        // The fast decoder's forms: (nw, capw, rounds, ilp, direct). Direct
        // ones stage nothing (capw unused). H100 with the coded step
        // (session 10, run 56): nw32 r1 direct 288.3 µs (the default on wide
        // subgroups), r2 293.4, r4 300.6; ILP 2 358.2 (nw32 r1), 380.1
        // (nw32 r2), 345.5 (nw16 r2); nw16 r2 direct 418; nw8 r2 direct 782;
        // staged 860-1500. Before it (session 3): nw32 r2 direct 447.8.
        let fast = [
            (32, 256, 1, 1, true),
            (32, 256, 2, 1, true),
            (32, 256, 4, 1, true),
            (32, 256, 1, 2, true),
            (32, 256, 2, 2, true),
            (16, 256, 2, 2, true),
            (16, 256, 4, 2, true),
            (8, 256, 4, 2, true),
            (16, 256, 2, 1, true),
            (8, 256, 2, 1, true),
            (8, 512, 2, 2, false),
            (4, 1792, 2, 2, false),
        ];
        let all = [
            (4, 2048, 4),
            (4, 2048, 8),
            (8, 2048, 2),
            (8, 2048, 4),
            (4, 3072, 4),
            (2, 2048, 8),
            (2, 1024, 4),
            (1, 2048, 4),
            (2, 1024, 0),
            (2, 2048, 0),
            (1, 2048, 0),
            (4, 1024, 0),
            (4, 2048, 0),
            (8, 1024, 0),
            (2, 4096, 0),
        ];
        let plain = |&(nw, capw, rounds): &(u32, u32, u32)| tuning(nw, capw, rounds);
        let fast_t =
            |&(nw, capw, rounds, ilp, direct): &(u32, u32, u32, u32, bool)| RansGemvTuning {
                ilp,
                direct,
                ..tuning(nw, capw, rounds)
            };
        // On wide subgroups the direct forms lead (measured); elsewhere
        // (lane exchanges through workgroup memory, unmeasured) the staged ones.
        let lead: Vec<RansGemvTuning> = match (fused, wide) {
            (true, true) => fast
                .iter()
                .map(fast_t)
                .chain(wide_list.iter().map(plain))
                .collect(),
            (true, false) => wide_list
                .iter()
                .map(plain)
                .chain(fast.iter().map(fast_t))
                .collect(),
            _ => Vec::new(),
        };
        let v: Vec<RansGemvTuning> = lead
            .into_iter()
            .chain(all.iter().map(plain))
            .filter(|t| t.workgroup_bytes(fused, wide) <= ctx_limit)
            .collect();
        if v.is_empty() {
            vec![tuning(1, 512, 0)]
        } else {
            v
        }
    }

    /// `self` with the fields set by `WCODEC_GPU_CGEMV_NW`, `_CAPW`,
    /// `_ROUNDS` (0: the band kernel), `_ILP` (1|2) and `_DIRECT` (0|1).
    pub fn from_env(self) -> Result<RansGemvTuning> {
        let mut t = self;
        if let Some(v) = env_num("WCODEC_GPU_CGEMV_NW")? {
            t.nw = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_CGEMV_CAPW")? {
            t.capw = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_CGEMV_ROUNDS")? {
            t.rounds = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_CGEMV_ILP")? {
            if !(1..=2).contains(&v) {
                return Err(Error::Param(format!(
                    "WCODEC_GPU_CGEMV_ILP={v} not in 1..=2"
                )));
            }
            t.ilp = v;
        }
        if let Some(v) = env_num("WCODEC_GPU_CGEMV_DIRECT")? {
            t.direct = v != 0;
        }
        Ok(t)
    }

    /// A short name: `tiles nw8 capw256 r2` (`… ilp2 direct`), `nw2 capw1024`.
    pub fn name(&self, fused: bool) -> String {
        if self.rounds == 0 {
            return format!("nw{} capw{}", self.nw, self.capw);
        }
        let mut s = if self.direct_in(fused) {
            format!("tiles nw{} r{}", self.nw, self.rounds)
        } else {
            format!("tiles nw{} capw{} r{}", self.nw, self.capw, self.rounds)
        };
        if self.ilp_in(fused) > 1 {
            s += &format!(" ilp{}", self.ilp);
        }
        if self.direct_in(fused) {
            s += " direct";
        }
        s
    }

    /// The override constants; `sg_wide` only for the subgroup path (the
    /// tile kernel is FUSED where it is `Some(true)`).
    pub fn constants(
        &self,
        x_half: bool,
        scale: bool,
        bias: bool,
        sg_wide: Option<bool>,
    ) -> Vec<(&'static str, f64)> {
        self.constants_with(x_half, scale, bias, sg_wide, sg_wide == Some(true))
    }

    /// [`RansGemvTuning::constants`] with FUSED chosen (tile kernel only;
    /// on any path).
    pub fn constants_with(
        &self,
        x_half: bool,
        scale: bool,
        bias: bool,
        sg_wide: Option<bool>,
        fused: bool,
    ) -> Vec<(&'static str, f64)> {
        let fused = fused && self.rounds > 0;
        let ilp = self.ilp_in(fused);
        let direct = self.direct_in(fused);
        let mut c = vec![
            ("NW", self.nw as f64),
            ("CAPW", self.capw as f64),
            ("X_HALF", x_half as u32 as f64),
            ("HAS_SCALE", scale as u32 as f64),
            ("HAS_BIAS", bias as u32 as f64),
            (
                "STAGE_WORDS",
                if direct {
                    1.0
                } else {
                    (self.nw * ilp * self.capw / 2) as f64
                },
            ),
            (
                "TILE_WORDS",
                if fused { 1.0 } else { (self.nw * 1024) as f64 },
            ),
            ("BAL_WORDS", (self.nw * ilp * 3) as f64),
        ];
        if self.rounds > 0 {
            // The tile kernel: scale and bias belong to the reduction pass.
            c.retain(|(k, _)| !k.starts_with("HAS_"));
            c.push(("ROUNDS", self.rounds as f64));
            c.push(("FUSED", fused as u32 as f64));
            c.push(("ILP", ilp as f64));
            c.push(("DIRECT", direct as u32 as f64));
            c.push((
                "SUM_WORDS",
                if fused && sg_wide != Some(true) {
                    (2 * self.nw * 32) as f64
                } else {
                    1.0
                },
            ));
        }
        if let Some(w) = sg_wide {
            c.push(("SG_WIDE", w as u32 as f64));
        }
        c
    }
}

const BINDINGS: &[Binding] = &[
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::Uniform,
];

const REDUCE_BINDINGS: &[Binding] = &[
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::Uniform,
];

/// The reduction pass of the tile kernel.
pub fn reduce_source() -> KernelSource {
    KernelSource {
        name: "gemv_rans_reduce",
        source: concat!(
            include_str!("../../shaders/gemv_rans_reduce.wgsl"),
            include_str!("../../shaders/lib/gemv_rans_row.wgsl")
        )
        .into(),
        entry: "main",
        bindings: REDUCE_BINDINGS,
        features: wgpu::Features::empty(),
        trusted: false,
    }
}

/// The reduction pass's constants.
pub fn reduce_constants(scale: bool, bias: bool) -> Vec<(&'static str, f64)> {
    vec![
        ("HAS_SCALE", scale as u32 as f64),
        ("HAS_BIAS", bias as u32 as f64),
    ]
}

/// The kernel: ballots by subgroup (`Subgroup`) or in workgroup memory
/// (`Workgroup`); the tile kernel if `tiles`, else the band kernel.
pub fn source(path: ReducePath, tiles: bool) -> KernelSource {
    let body = if tiles {
        include_str!("../../shaders/gemv_rans_tiles.wgsl")
    } else {
        include_str!("../../shaders/gemv_rans_i8.wgsl")
    };
    let (name, ballot, entry, features) = match path {
        ReducePath::Workgroup if tiles => (
            "gemv_rans_tiles_wg",
            include_str!("../../shaders/lib/ballot_wg.wgsl"),
            include_str!("../../shaders/lib/rans_entry_wg.wgsl"),
            wgpu::Features::empty(),
        ),
        _ if tiles => (
            "gemv_rans_tiles_sg",
            include_str!("../../shaders/lib/ballot_sg.wgsl"),
            include_str!("../../shaders/lib/rans_entry_sg.wgsl"),
            wgpu::Features::SUBGROUP,
        ),
        ReducePath::Workgroup => (
            "gemv_rans_i8_wg",
            include_str!("../../shaders/lib/ballot_wg.wgsl"),
            include_str!("../../shaders/lib/rans_entry_wg.wgsl"),
            wgpu::Features::empty(),
        ),
        _ => (
            "gemv_rans_i8_sg",
            include_str!("../../shaders/lib/ballot_sg.wgsl"),
            include_str!("../../shaders/lib/rans_entry_sg.wgsl"),
            wgpu::Features::SUBGROUP,
        ),
    };
    KernelSource {
        name,
        // Overrides before their uses: naga's override processing expects it.
        source: format!(
            "{}\n{body}\n{}\n{}\n{ballot}\n{entry}\n{}",
            include_str!("../../shaders/lib/rans_tile.wgsl"),
            include_str!("../../shaders/lib/gemv_rans_helpers.wgsl"),
            // The band kernel stores its rows itself (the tile kernel's
            // reduction pass does for it).
            if tiles {
                ""
            } else {
                include_str!("../../shaders/lib/gemv_rans_row.wgsl")
            },
            if !tiles {
                ""
            } else if path == ReducePath::Workgroup {
                // Never called: FUSED adds through workgroup memory here.
                "fn shfl_xor(v: f32, m: u32) -> f32 { return v; }"
            } else {
                // FUSED row sums on wide subgroups (SG_WIDE).
                "fn shfl_xor(v: f32, m: u32) -> f32 { return subgroupShuffleXor(v, m); }"
            }
        )
        .into(),
        entry: "main",
        bindings: BINDINGS,
        features,
        // bounds come from wgpu's runtime checks unless WCODEC_GPU_CHECKS=0
        trusted: false,
    }
}

/// A coded int8 matrix in device memory.
pub struct CompressedWeights {
    pub rows: usize,
    pub cols: usize,
    prob_bits: u32,
    tail: rans::Tail,
    tiles_x: u32,
    tiles_y: u32,
    nwords: u32,
    stream: wgpu::Buffer,
    index: wgpu::Buffer,
    luts: wgpu::Buffer,
    rowdata: wgpu::Buffer,
    has_scale: bool,
    has_bias: bool,
    /// Decode table and prediction mode of each tile (the tile kernel's work
    /// lists group by them).
    tile_tables: Vec<u8>,
    tile_modes: Vec<u8>,
    /// Device bytes: stream + index + decode tables + scales/bias.
    pub bytes: u64,
    /// Bytes of the coded plane (stream + index + compact tables), as in the file.
    pub coded_bytes: u64,
}

impl std::fmt::Debug for CompressedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CompressedWeights({}×{}, {} device bytes)",
            self.rows, self.cols, self.bytes
        )
    }
}

impl CompressedWeights {
    /// Upload a coded plane of int8 values (64×64 tiles) with optional per-row
    /// scales and bias.
    pub fn from_plane(
        ctx: &GpuContext,
        plane: &PlaneView<'_>,
        scales: Option<&[f32]>,
        bias: Option<&[f32]>,
    ) -> Result<CompressedWeights> {
        let g = plane.grid;
        if (g.tile_h, g.tile_w) != (64, 64) {
            return Err(Error::Param(format!(
                "compressed GEMV needs 64×64 tiles, the plane has {}×{}",
                g.tile_h, g.tile_w
            )));
        }
        let (rows, cols) = (g.rows, g.cols);
        for (what, v) in [("scales", scales), ("bias", bias)] {
            if let Some(v) = v.filter(|v| v.len() != rows) {
                return Err(Error::Param(format!("{} {what} for {rows} rows", v.len())));
            }
        }
        if plane.stream.is_empty() || plane.stream.len() > u32::MAX as usize {
            return Err(Error::Param(format!(
                "a stream of {} words",
                plane.stream.len()
            )));
        }
        use wgpu::BufferUsages as U;
        let mut words: Vec<u32> = plane
            .stream
            .chunks(2)
            .map(|c| c[0] as u32 | (*c.get(1).unwrap_or(&0) as u32) << 16)
            .collect();
        // Zero words past the end, as far as the FUSED kernel's unclamped
        // coded reads can reach in a corrupt last tile (STREAM_PAD_U32).
        words.resize(words.len() + STREAM_PAD_U32, 0);
        let lim = ctx.limits.max_storage_buffer_binding_size;
        if (words.len() * 4) as u64 > lim {
            return Err(Error::Gpu(format!(
                "a stream of {} bytes exceeds the binding limit {lim}",
                words.len() * 4
            )));
        }
        let stream = ctx.create_buffer(
            "gemv_rans.stream",
            (words.len() * 4) as u64,
            U::STORAGE | U::COPY_DST,
        )?;
        ctx.queue
            .write_buffer(&stream, 0, bytemuck::cast_slice(&words));
        let idx: Vec<u32> = plane.index.iter().flat_map(|e| e.pack()).collect();
        let tile_tables: Vec<u8> = idx
            .chunks_exact(2)
            .map(|e| ((e[1] >> 4) & 3) as u8)
            .collect();
        let tile_modes: Vec<u8> = idx.chunks_exact(2).map(|e| (e[1] & 15) as u8).collect();
        let index = ctx.create_buffer(
            "gemv_rans.index",
            (idx.len() * 4) as u64,
            U::STORAGE | U::COPY_DST,
        )?;
        ctx.queue
            .write_buffer(&index, 0, bytemuck::cast_slice(&idx));
        if plane.tables.is_empty() || plane.tables.len() > 4 {
            return Err(Error::Param(format!(
                "a plane with {} tables",
                plane.tables.len()
            )));
        }
        // Four tables' room, so that the kernel needs no bounds check on a lookup.
        let mut lut = vec![0u32; 4 * 4096];
        for (i, t) in plane.tables.iter().enumerate() {
            lut[i * 4096..(i + 1) * 4096].copy_from_slice(&rans::decode_lut(t)[..]);
        }
        let luts = ctx.create_buffer(
            "gemv_rans.luts",
            (lut.len() * 4) as u64,
            U::STORAGE | U::COPY_DST,
        )?;
        ctx.queue.write_buffer(&luts, 0, bytemuck::cast_slice(&lut));
        let mut rd = scales.map_or_else(|| vec![1.0; rows], |s| s.to_vec());
        rd.extend_from_slice(bias.unwrap_or(&[]));
        let rowdata = upload_f32(ctx, "gemv_rans.rowdata", &rd)?;
        let mut tb = Vec::new();
        for t in plane.tables.iter() {
            t.write(&mut tb);
        }
        let coded_bytes = (plane.stream.len() * 2 + plane.index.len() * 8 + tb.len()) as u64;
        let bytes = stream.size() + index.size() + luts.size() + rowdata.size();
        ctx.check_health()?;
        Ok(CompressedWeights {
            rows,
            cols,
            prob_bits: plane.prob_bits,
            tail: plane.tail,
            tiles_x: g.tiles_x() as u32,
            tiles_y: g.tiles_y() as u32,
            nwords: plane.stream.len() as u32,
            stream,
            index,
            luts,
            rowdata,
            has_scale: scales.is_some(),
            has_bias: bias.is_some(),
            tile_tables,
            tile_modes,
            bytes,
            coded_bytes,
        })
    }

    /// Upload tensor `name` of a `.wcodec` file: a 2-D `quant` tensor (codes
    /// and per-row scales) or an `int8` tensor of dtype I8.
    pub fn from_file(
        ctx: &GpuContext,
        file: &WcodecFile,
        name: &str,
        bias: Option<&[f32]>,
    ) -> Result<CompressedWeights> {
        let t = file
            .tensors
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| Error::Param(format!("no tensor {name:?} in the file")))?;
        let e = &file.tensors[t];
        if e.shape.len() < 2 {
            return Err(Error::Param(format!(
                "tensor {name:?} has shape {:?}; a GEMV needs a matrix",
                e.shape
            )));
        }
        let planes = file.planes(t);
        match (e.encoding, e.dtype, planes.as_slice()) {
            (Encoding::Quant, _, [PlaneRef::Coded(p), PlaneRef::Raw(s)]) => {
                let scales: Vec<f32> = s
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Self::from_plane(ctx, p, Some(&scales), bias)
            }
            (Encoding::Int8, DType::I8, [PlaneRef::Coded(p)]) => {
                Self::from_plane(ctx, p, None, bias)
            }
            (enc, dt, _) => Err(Error::Param(format!(
                "tensor {name:?} is {} {dt}; the compressed GEMV takes quant or int8 (I8) tensors",
                enc.name()
            ))),
        }
    }
}

/// u32 words of zeros after a stream on the device. The FUSED kernel's
/// coded steps read their words unclamped (`fused_step_coded`): a tile starts at
/// u16 word ≤ nwords, and its reads stay below its state codes (≤ 8 + 62
/// words) + 126 coded steps × 32 words + 31, even in a corrupt stream.
const STREAM_PAD_U32: usize = (4096 + 70 + 32) / 2 + 1;
const _: () = assert!(2 * STREAM_PAD_U32 >= 8 + 62 + 126 * 32 + 32);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    tiles_x: u32,
    tiles_y: u32,
    prob_bits: u32,
    tail_bits: u32,
    tail_base: u32,
    nwords: u32,
    groups_x: u32,
    ngroups: u32,
    rows_pad: u32,
    /// FUSED: the leading chunks of full-height tiles (`work_list`).
    full_groups: u32,
}

/// The reduction pass's uniform (`gemv_rans_reduce.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    rows: u32,
    tiles_x: u32,
    rows_pad: u32,
    groups_x: u32,
}

/// The tuning of the non-FUSED side dispatch (the tiles FUSED does not take).
pub const fn tuning_side() -> RansGemvTuning {
    tuning(1, 1024, 4)
}

/// A non-FUSED dispatch of the tile kernel: kernel, bindings, grid, params.
type SideDispatch = (Arc<Kernel>, wgpu::BindGroup, (u32, u32), wgpu::Buffer);

/// The tile kernel's reduction pass, its non-FUSED side dispatch and buffers.
struct TilePass {
    kernel: Arc<Kernel>,
    bind: wgpu::BindGroup,
    grid: (u32, u32),
    side: Option<SideDispatch>,
    _keep: Vec<wgpu::Buffer>,
    _partials: PooledBuffer,
}

/// The tile kernel's work list: `list` by decode table, in chunks of
/// nw · ilp · rounds tiles of one table (0xffffffff: none), and how many
/// chunks lead that hold full-height tiles only (64 rows; with `fused`, the
/// FUSED kernel's coded steps take them: `Params::full_groups`). Without
/// `fused`: 0, the list in table order alone.
fn work_list(w: &CompressedWeights, chunk: usize, list: &[u32], fused: bool) -> (Vec<u32>, u32) {
    let full_h = |t: u32| fused && (t / w.tiles_x + 1) * 64 <= w.rows as u32;
    let mut work = Vec::new();
    let mut short = Vec::new();
    for table in 0..4u8 {
        let of = |full: bool| -> Vec<u32> {
            list.iter()
                .copied()
                .filter(|&i| w.tile_tables[i as usize] == table && full_h(i) == full)
                .collect()
        };
        for (l, out) in [(of(true), &mut work), (of(false), &mut short)] {
            for c in l.chunks(chunk) {
                out.extend_from_slice(c);
                out.resize(out.len() + chunk - c.len(), u32::MAX);
            }
        }
    }
    // (without `fused` every tile is in `short`: no leading full chunks)
    let full = (work.len() / chunk) as u32;
    work.extend_from_slice(&short);
    (work, full)
}

/// Options of a compressed GEMV.
#[derive(Debug, Clone, Copy, Default)]
pub struct RansGemvOptions {
    pub x_dtype: VecDtype,
    /// `Subgroup` needs SUBGROUP (subgroups of ≥ 32 lanes decode without
    /// barriers; narrower ones of up to 32 combine ballots through workgroup
    /// memory); `Auto` picks it where subgroups are ≥ 32 lanes, else `Workgroup`.
    pub path: ReducePath,
    /// None: the first of [`RansGemvTuning::candidates`], with the fields
    /// set by `WCODEC_GPU_CGEMV_*` ([`RansGemvTuning::from_env`]).
    pub tuning: Option<RansGemvTuning>,
    /// The FUSED tile kernel for full-width NONE / PLANAR tiles. None:
    /// `WCODEC_GPU_CGEMV_FUSED` (0|1) if set, else on subgroups of ≥ 32
    /// lanes only. Elsewhere it adds each row's products through workgroup
    /// memory (a barrier a step group; slower, the same bits).
    pub fused: Option<bool>,
    /// Diagnostics only: drop stages (the shader's `DIAG` bits; results are
    /// then wrong). 0 for real use.
    pub diag: u32,
}

/// A compressed GEMV bound to its weights and its own x and y.
pub struct RansGemv {
    pub rows: usize,
    pub cols: usize,
    pub x_dtype: VecDtype,
    pub path: ReducePath,
    pub tuning: RansGemvTuning,
    /// Whether full-width NONE / PLANAR tiles go through the FUSED kernel.
    pub fused: bool,
    kernel: Arc<Kernel>,
    bind: wgpu::BindGroup,
    grid: (u32, u32),
    _params: wgpu::Buffer,
    /// x, zero-padded to whole tiles.
    pub x: PooledBuffer,
    pub y: PooledBuffer,
    err: PooledBuffer,
    xlen: usize,
    reduce: Option<TilePass>,
}

impl std::fmt::Debug for RansGemv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RansGemv({}×{}, {}, {}{}, x {})",
            self.rows,
            self.cols,
            self.path.name(),
            self.tuning.name(self.fused),
            if self.fused { " fused" } else { "" },
            self.x_dtype.name()
        )
    }
}

impl RansGemv {
    pub fn new(
        ctx: &GpuContext,
        w: &CompressedWeights,
        opts: &RansGemvOptions,
    ) -> Result<RansGemv> {
        let has_sg = ctx.has(wgpu::Features::SUBGROUP);
        let (smin, smax) = (ctx.info.subgroup_min_size, ctx.info.subgroup_max_size);
        let wide = smin >= 32;
        let narrow =
            !wide && smax <= 32 && smin >= 1 && smax.is_power_of_two() && smin.is_power_of_two();
        let path = match opts.path {
            ReducePath::Auto if has_sg && wide => ReducePath::Subgroup,
            ReducePath::Auto => ReducePath::Workgroup,
            ReducePath::Subgroup if !(has_sg && (wide || narrow)) => {
                return Err(Error::Gpu(format!(
                    "the subgroup path of the compressed GEMV needs SUBGROUP and subgroups of one size class \
                     (all ≥ 32, or powers of two ≤ 32; this device: {smin}..{smax})"
                )));
            }
            p => resolve_path(ctx, p)?,
        };
        let limit = ctx.limits.max_compute_workgroup_storage_size;
        let sg_wide = (path == ReducePath::Subgroup).then_some(wide);
        let fused_ok = sg_wide == Some(true);
        let want_fused = match opts.fused {
            Some(f) => f,
            None => RansGemvTuning::fused_default(ctx, path)?,
        };
        let tuning = match opts.tuning {
            Some(t) => t,
            None => RansGemvTuning::candidates_for(limit, want_fused, fused_ok)[0].from_env()?,
        };
        let tiles = tuning.rounds > 0;
        let fused = tiles && want_fused;
        let wg_bytes = tuning.workgroup_bytes(fused, fused_ok);
        if tuning.nw == 0
            || tuning.nw > 32
            || tuning.rounds > 64
            || tuning.capw < 64
            || tuning.capw % 2 != 0
            || !(1..=2).contains(&tuning.ilp)
            || wg_bytes > limit
        {
            return Err(Error::Param(format!(
                "compressed GEMV tuning {tuning:?} ({wg_bytes} bytes of workgroup memory; the device has {limit})"
            )));
        }
        if tuning.nw * 32 > ctx.limits.max_compute_invocations_per_workgroup {
            return Err(Error::Gpu(format!(
                "{} decoders per workgroup exceed the device's invocations",
                tuning.nw
            )));
        }
        let x_half = opts.x_dtype == VecDtype::F16;
        // Subgroups of exactly 32 lanes: ballots take the first word (SG32).
        let sg32 = sg_wide == Some(true)
            && ctx.info.subgroup_min_size == 32
            && ctx.info.subgroup_max_size == 32;
        let consts_for = |t: &RansGemvTuning, f: bool| {
            let mut c = t.constants_with(x_half, w.has_scale, w.has_bias, sg_wide, f);
            if sg32 {
                c.push(("SG32", 1.0));
            }
            if opts.diag != 0 {
                c.push(("DIAG", opts.diag as f64));
            }
            c
        };
        let kernel = ctx.kernel(&source(path, tiles), &consts_for(&tuning, fused))?;
        use wgpu::BufferUsages as U;
        let xlen = w.tiles_x as usize * 64;
        let x = ctx.buffer(
            "gemv_rans.x",
            (xlen * opts.x_dtype.size()).max(16) as u64,
            U::STORAGE | U::COPY_DST,
        )?;
        ctx.queue.write_buffer(&x, 0, &vec![0u8; x.size() as usize]);
        let y = ctx.buffer(
            "gemv_rans.y",
            (w.rows * 4) as u64,
            U::STORAGE | U::COPY_SRC | U::COPY_DST,
        )?;
        let err = ctx.buffer("gemv_rans.err", 16, U::STORAGE | U::COPY_SRC | U::COPY_DST)?;
        ctx.queue.write_buffer(&err, 0, &[0u8; 16]);
        let rows_pad = w.tiles_y * 64;
        let params_for = |ngroups: u32, full_groups: u32, gx: u32| Params {
            rows: w.rows as u32,
            cols: w.cols as u32,
            tiles_x: w.tiles_x,
            tiles_y: w.tiles_y,
            prob_bits: w.prob_bits,
            tail_bits: w.tail.bits as u32,
            tail_base: w.tail.base as u32,
            nwords: w.nwords,
            groups_x: gx,
            ngroups,
            rows_pad,
            full_groups,
        };
        let mut reduce = None;
        let mut extra = Vec::new();
        let (bind, grid_main, params) = if tiles {
            // FUSED takes the full-width NONE / PLANAR tiles; the rest go to a
            // second, non-FUSED dispatch of the tile kernel.
            let full_w = w.cols % 64 == 0;
            let fusable = |t: usize| {
                let m = w.tile_modes[t];
                (m == 0 || m == 4) && (full_w || (t as u32 % w.tiles_x) + 1 < w.tiles_x)
            };
            let n = w.tile_tables.len();
            let (main_list, rest): (Vec<u32>, Vec<u32>) = if fused {
                (0..n as u32).partition(|&t| fusable(t as usize))
            } else {
                ((0..n as u32).collect(), Vec::new())
            };
            let partials = ctx.buffer(
                "gemv_rans.partials",
                (rows_pad as u64 * w.tiles_x as u64 * 4).max(16),
                U::STORAGE,
            )?;
            let mut disp = |t: &RansGemvTuning,
                            f: bool,
                            list: &[u32],
                            k: &Kernel|
             -> Result<(wgpu::BindGroup, (u32, u32), wgpu::Buffer)> {
                let chunk = (t.nw * t.rounds * t.ilp_in(f)) as usize;
                let (work, full_groups) = work_list(w, chunk, list, f);
                let ngroups = (work.len() / chunk) as u32;
                let (gx, gy) = grid(ctx, ngroups)?;
                let wb = ctx.create_buffer(
                    "gemv_rans.work",
                    (work.len().max(1) * 4) as u64,
                    U::STORAGE | U::COPY_DST,
                )?;
                if !work.is_empty() {
                    ctx.queue.write_buffer(&wb, 0, bytemuck::cast_slice(&work));
                }
                let params = ctx.create_buffer("gemv_rans.params", 48, U::UNIFORM | U::COPY_DST)?;
                ctx.queue.write_buffer(
                    &params,
                    0,
                    bytemuck::bytes_of(&params_for(ngroups, full_groups, gx)),
                );
                let bind = k.bind_group(
                    &ctx.device,
                    "gemv_rans_tiles",
                    &[
                        w.stream.as_entire_buffer_binding(),
                        w.index.as_entire_buffer_binding(),
                        w.luts.as_entire_buffer_binding(),
                        x.as_entire_buffer_binding(),
                        wb.as_entire_buffer_binding(),
                        partials.as_entire_buffer_binding(),
                        err.as_entire_buffer_binding(),
                        params.as_entire_buffer_binding(),
                    ],
                );
                extra.push(wb);
                Ok((bind, (gx, gy), params))
            };
            let main = disp(&tuning, fused, &main_list, &kernel)?;
            let mut side = None;
            if !rest.is_empty() {
                let ft = tuning_side();
                let k = ctx.kernel(&source(path, true), &consts_for(&ft, false))?;
                let (b, g, p) = disp(&ft, false, &rest, &k)?;
                side = Some((k, b, g, p));
            }
            let rk = ctx.kernel(&reduce_source(), &reduce_constants(w.has_scale, w.has_bias))?;
            let (rx, ry) = grid(ctx, (w.rows as u32).div_ceil(256))?;
            let rp = ReduceParams {
                rows: w.rows as u32,
                tiles_x: w.tiles_x,
                rows_pad,
                groups_x: rx,
            };
            let rparams = ctx.create_buffer(
                "gemv_rans.rparams",
                std::mem::size_of::<ReduceParams>() as u64,
                U::UNIFORM | U::COPY_DST,
            )?;
            ctx.queue.write_buffer(&rparams, 0, bytemuck::bytes_of(&rp));
            let rbind = rk.bind_group(
                &ctx.device,
                "gemv_rans_reduce",
                &[
                    partials.as_entire_buffer_binding(),
                    w.rowdata.as_entire_buffer_binding(),
                    y.as_entire_buffer_binding(),
                    rparams.as_entire_buffer_binding(),
                ],
            );
            extra.push(rparams);
            reduce = Some(TilePass {
                kernel: rk,
                bind: rbind,
                grid: (rx, ry),
                side,
                _keep: extra,
                _partials: partials,
            });
            main
        } else {
            let (gx, gy) = grid(ctx, w.tiles_y)?;
            let params = ctx.create_buffer("gemv_rans.params", 48, U::UNIFORM | U::COPY_DST)?;
            ctx.queue.write_buffer(
                &params,
                0,
                bytemuck::bytes_of(&params_for(w.tiles_y, 0, gx)),
            );
            let bind = kernel.bind_group(
                &ctx.device,
                "gemv_rans",
                &[
                    w.stream.as_entire_buffer_binding(),
                    w.index.as_entire_buffer_binding(),
                    w.luts.as_entire_buffer_binding(),
                    x.as_entire_buffer_binding(),
                    w.rowdata.as_entire_buffer_binding(),
                    y.as_entire_buffer_binding(),
                    err.as_entire_buffer_binding(),
                    params.as_entire_buffer_binding(),
                ],
            );
            (bind, (gx, gy), params)
        };
        ctx.check_health()?;
        Ok(RansGemv {
            rows: w.rows,
            cols: w.cols,
            x_dtype: opts.x_dtype,
            path,
            tuning,
            fused,
            kernel,
            bind,
            grid: grid_main,
            _params: params,
            x,
            y,
            err,
            xlen,
            reduce,
        })
    }

    /// Write x (`cols` values; f16 by integer round-to-nearest-even).
    pub fn write_x(&self, queue: &wgpu::Queue, x: &[f32]) -> Result<()> {
        if x.len() != self.cols {
            return Err(Error::Param(format!(
                "x has {} values, the matrix {} columns",
                x.len(),
                self.cols
            )));
        }
        let mut b = vec![0u8; self.xlen * self.x_dtype.size()];
        for (i, &v) in x.iter().enumerate() {
            match self.x_dtype {
                VecDtype::F32 => b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
                VecDtype::F16 => b[2 * i..2 * i + 2]
                    .copy_from_slice(&crate::codec::quant::f32_to_f16_bits(v).to_le_bytes()),
            }
        }
        queue.write_buffer(&self.x, 0, &b);
        Ok(())
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
        if let Some(r) = &self.reduce {
            if let Some((k, b, g, _)) = &r.side {
                pass.set_pipeline(&k.pipeline);
                pass.set_bind_group(0, b, &[]);
                pass.dispatch_workgroups(g.0, g.1, 1);
            }
            pass.set_pipeline(&r.kernel.pipeline);
            pass.set_bind_group(0, &r.bind, &[]);
            pass.dispatch_workgroups(r.grid.0, r.grid.1, 1);
        }
    }

    pub fn execute(&self, device: &wgpu::Device, queue: &wgpu::Queue) {
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("gemv_rans"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gemv_rans"),
                timestamp_writes: None,
            });
            self.encode(&mut pass);
        }
        queue.submit([enc.finish()]);
    }

    pub fn read_y(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let b = ctx.read_buffer(&self.y, 0, (self.rows * 4) as u64)?;
        Ok(bytemuck::cast_slice(&b).to_vec())
    }

    /// With `diag` 64 (FUSED): the most workgroups of the main dispatch
    /// resident at once since the buffer was last cleared (an occupancy
    /// probe: each workgroup counts itself in on entry and out at its end);
    /// clears the count. Otherwise 0.
    pub fn resident_peak(&self, ctx: &GpuContext) -> Result<u32> {
        let b = ctx.read_buffer(&self.err, 8, 4)?;
        ctx.queue.write_buffer(&self.err, 4, &[0u8; 8]);
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An error if any tile failed §4's end conditions since the last check
    /// (a corrupt stream); clears the flag.
    pub fn check_stream(&self, ctx: &GpuContext) -> Result<()> {
        let b = ctx.read_buffer(&self.err, 0, 4)?;
        if b != [0, 0, 0, 0] {
            ctx.queue.write_buffer(&self.err, 0, &[0u8; 16]);
            return Err(Error::Gpu("compressed GEMV: a tile of the stream is corrupt (docs/FORMAT.md §4 end conditions)".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::wgpu::layout::{check_struct, rust_fields};

    /// `Params` as the band and tile kernels declare it (the band kernel
    /// pads the last three), `ReduceParams` as the reduction pass does.
    #[test]
    fn uniforms_match_their_wgsl() {
        let fields = rust_fields!(Params: rows, cols, tiles_x, tiles_y, prob_bits, tail_bits,
            tail_base, nwords, groups_x, ngroups, rows_pad, full_groups);
        let size = std::mem::size_of::<Params>();
        for path in [ReducePath::Subgroup, ReducePath::Workgroup] {
            check_struct(&source(path, true).source, "Params", &fields, size).unwrap();
            // the band kernel reads the first nine
            let band: Vec<_> = fields
                .iter()
                .enumerate()
                .map(|(i, &(n, o, k))| (if i < 9 { n } else { "_pad" }, o, k))
                .collect();
            check_struct(&source(path, false).source, "Params", &band, size).unwrap();
        }
        let fields = rust_fields!(ReduceParams: rows, tiles_x, rows_pad, groups_x);
        let size = std::mem::size_of::<ReduceParams>();
        check_struct(&reduce_source().source, "Params", &fields, size).unwrap();
    }
}

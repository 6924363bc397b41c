//! GEMV on wgpu: `y = scale ⊙ (W·x) + bias` for 1 to 8 vectors sharing one
//! pass over W, with W in f32, f16 or int8 + per-row f32 scales, x in f32 or
//! f16, and f32 accumulation (`shaders/gemv*.wgsl`).
//!
//! Setup ([`GemvWeights::upload`], [`Gemv::new`]) allocates everything; the
//! per-call work ([`Gemv::encode`] / [`Gemv::execute`]) allocates nothing.
//!
//! Weights larger than the device's storage-binding limit are split into
//! row blocks, one binding and one dispatch each.

use std::sync::Arc;

use crate::cpu::gemv::Weights;
use crate::error::{Error, Result};
use crate::wgpu::context::{GpuContext, Kernel, PooledBuffer};
pub use crate::wgpu::gemv_gen::GemvSpec;
use crate::wgpu::gemv_gen::Params;
pub use crate::wgpu::kernels::{ReducePath, WeightDtype};

/// x and y element types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VecDtype {
    #[default]
    F32,
    F16,
}

impl VecDtype {
    pub fn size(self) -> usize {
        match self {
            VecDtype::F32 => 4,
            VecDtype::F16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            VecDtype::F32 => "f32",
            VecDtype::F16 => "f16",
        }
    }
}

/// The most vectors one pass computes.
pub const MAX_BATCH: usize = 8;

/// Work-split constants of the GEMV kernel (see `shaders/gemv.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GemvTuning {
    /// Invocations per workgroup.
    pub wg: u32,
    /// Rows a group computes together (1..=8).
    pub nr: u32,
    /// Steps loaded before use (1..=4).
    pub unroll: u32,
    /// Invocations per group on the workgroup path (power of two ≤ wg).
    pub tpr: u32,
    /// int8 → f32 by the exponent trick instead of a conversion.
    pub i8_magic: bool,
    /// Blocks of NR rows each group computes one after the other (fewer,
    /// longer-lived workgroups for short rows).
    pub blocks: u32,
    /// Subgroup path, batch 2, 4 or 8: reduce the B sums of a row by halving
    /// exchanges (`subgroupShuffleXor`, each lane keeping one half), about
    /// B + log2(G) shuffles instead of B · log2(G).
    pub xor: bool,
    /// Tensor cores (cooperative matrices; f16 W and x, subgroup path, see
    /// [`coop_possible`]): `nr` is then 16-row tiles per subgroup (1..=4),
    /// `unroll` 16-column steps per iteration (1..=8).
    pub coop: bool,
}

impl GemvTuning {
    /// The variants worth timing for a dtype and batch, the default first.
    pub fn candidates(dtype: WeightDtype, batch: u32, path: ReducePath) -> Vec<GemvTuning> {
        let t = |wg, nr, unroll, i8_magic| GemvTuning {
            wg,
            nr,
            unroll,
            tpr: 32,
            i8_magic,
            blocks: 1,
            xor: false,
            coop: false,
        };
        let tb = |wg, nr, unroll, blocks| GemvTuning {
            blocks,
            ..t(wg, nr, unroll, true)
        };
        let tx = |wg, nr, unroll| GemvTuning {
            xor: true,
            ..t(wg, nr, unroll, true)
        };
        let mut v = match (dtype, batch) {
            // H100 (full clocks, 50257×2560, x f16): wg128 nr1 u2 52.6 µs,
            // wg256 nr1 u2 53.7-53.9, nr2 u2 55.9, nr2 u2 wg512 54.7, nr2 u2
            // cvt 54.7, nr1 u4 55.6.
            (WeightDtype::I8, 1..=2) => vec![
                t(128, 1, 2, true),
                t(256, 1, 2, true),
                t(256, 2, 2, true),
                tb(256, 2, 2, 2),
                tb(256, 2, 2, 4),
                tb(256, 4, 2, 2),
                tb(128, 2, 2, 4),
                t(256, 4, 2, true),
                t(256, 2, 4, true),
                t(256, 4, 2, false),
                t(256, 2, 2, false),
                t(512, 2, 2, true),
                t(256, 1, 4, true),
                t(128, 2, 2, true),
                t(256, 2, 3, true),
                t(256, 1, 2, false),
                t(512, 1, 2, true),
                t(256, 1, 3, true),
                t(64, 1, 2, true),
                t(128, 1, 4, true),
            ],
            (WeightDtype::I8, _) => vec![
                t(256, 2, 2, true),
                t(256, 4, 1, true),
                t(256, 2, 1, true),
                t(256, 2, 1, false),
            ],
            (WeightDtype::F32, 1..=2) => vec![
                t(256, 2, 2, true),
                t(256, 2, 4, true),
                t(256, 4, 2, true),
                t(128, 2, 2, true),
            ],
            (_, 1..=2) => vec![
                t(256, 2, 4, true),
                t(256, 1, 4, true),
                tb(256, 2, 4, 2),
                tb(256, 1, 4, 2),
                t(128, 2, 4, true),
                t(512, 2, 4, true),
            ],
            // H100, 50257×2560 f16 batch 4 (x f16): nr2 u1 102.0 µs, nr2 u2
            // 102.3, nr4 u1 108.6; the xor form 209.4.
            (_, 3..=4) => vec![
                t(256, 2, 1, true),
                tx(256, 2, 2),
                t(256, 2, 2, true),
                t(256, 4, 1, true),
            ],
            // H100, 50257×2560 f16 batch 8 at full clocks: xor wg128 nr2 u2
            // 116.4 µs; plain nr2 u2 129.3, nr4 u1 133.1, nr2 u4 134.9.
            // Session 3: xor wg128 nr2 u1 113.7 / 115.9 / 114.6 µs in three runs
            // (nr2 u2 116.6 / 116.3 / 116.0); the tensor-core kernel (coop) 208+.
            // Session 7, with fma chains (gemv_gen.rs, run 39): xor wg128 nr2 u1
            // 106.8, xor wg256 nr4 u1 106.5, xor wg256 nr2 u2 108.9, xor wg128
            // nr2 u2 109.5; the plain forms 117.7 and slower.
            _ => vec![
                tx(128, 2, 1),
                tx(128, 2, 2),
                tx(64, 2, 2),
                tx(128, 4, 1),
                tx(256, 4, 1),
                tx(256, 2, 2),
                tx(256, 1, 4),
                tx(256, 2, 4),
                t(256, 2, 4, true),
                t(256, 1, 4, true),
                t(256, 4, 1, true),
                t(256, 2, 2, true),
                t(256, 8, 1, true),
                t(256, 2, 1, true),
            ],
        };
        if path == ReducePath::Workgroup || !matches!(batch, 2 | 4 | 8) {
            v.retain(|c| !c.xor);
        }
        if dtype != WeightDtype::I8 {
            v.retain(|c| c.i8_magic);
        }
        if path == ReducePath::Workgroup {
            // Workgroup memory holds WG · NR · B partial sums.
            v.retain(|c| (c.wg * c.nr * batch * 4) as usize <= 16 << 10);
            if v.is_empty() {
                v.push(t(128, 1, 2, true));
            }
        }
        v
    }

    /// The tensor-core variants worth timing (f16 W and x, batch ≥ 2), the
    /// default first.
    pub fn coop_candidates() -> Vec<GemvTuning> {
        let t = |wg, nr, unroll| GemvTuning {
            wg,
            nr,
            unroll,
            tpr: 32,
            i8_magic: true,
            blocks: 1,
            xor: false,
            coop: true,
        };
        vec![
            t(128, 1, 4),
            t(128, 1, 2),
            t(128, 1, 8),
            t(128, 2, 2),
            t(128, 2, 4),
            t(64, 1, 4),
            t(256, 1, 4),
            t(128, 4, 2),
            t(32, 1, 4),
        ]
    }

    /// The default variant for any shape (the first candidate).
    pub fn default_for(dtype: WeightDtype, batch: u32, path: ReducePath) -> GemvTuning {
        GemvTuning::candidates(dtype, batch, path)[0]
    }

    /// The default variant for a `rows × cols` weight matrix and x in f16
    /// (`x_half`) or f32: the first candidate, except where H100 timings
    /// picked another one for a class of shapes (BENCHMARKS.md).
    pub fn default_for_shape(
        dtype: WeightDtype,
        batch: u32,
        path: ReducePath,
        rows: usize,
        cols: usize,
        x_half: bool,
    ) -> GemvTuning {
        let c = GemvTuning::candidates(dtype, batch, path);
        let pick = |want: GemvTuning| c.iter().copied().find(|t| *t == want);
        let base = c[0];
        let special = match (dtype, batch, path) {
            // H100 (run at full clocks): up to ~32 K rows of ≥ 4096 columns, one
            // row per subgroup: 4096² 17.9 µs (nr2: 19.9), 14336×4096 45.5 µs.
            (WeightDtype::F16, 1, ReducePath::Subgroup) if rows <= 32768 && cols >= 4096 => {
                pick(GemvTuning { nr: 1, ..base })
            }
            // H100, 50257×2560 f16, batch 8 with x in f32 (run 21): four rows
            // per subgroup share each x load, 146.5 µs against 168.4 for
            // the f16-x default (whose x loads double in f32).
            (WeightDtype::F16, 5..=8, ReducePath::Subgroup) if !x_half => pick(GemvTuning {
                wg: 256,
                nr: 4,
                unroll: 1,
                xor: false,
                ..base
            }),
            _ => None,
        };
        special.unwrap_or(base)
    }

    /// Rows per workgroup: NR per group, `wg / group size` groups.
    pub fn rows_per_workgroup(&self, path: ReducePath, subgroup_max: u32) -> u32 {
        if self.coop {
            return 16 * self.nr * (self.wg / subgroup_max.clamp(1, self.wg)).max(1);
        }
        let group = if path == ReducePath::Workgroup {
            self.tpr
        } else {
            subgroup_max.clamp(1, self.wg)
        };
        self.nr * (self.wg / group).max(1) * self.blocks.max(1)
    }

    /// The generated kernel's specialisation for `dtype` and `path` (resolved).
    pub fn spec(
        &self,
        dtype: WeightDtype,
        path: ReducePath,
        batch: u32,
        x_half: bool,
        bias: bool,
        subgroup_max: u32,
    ) -> GemvSpec {
        GemvSpec {
            dtype,
            path,
            batch,
            nr: self.nr,
            unroll: self.unroll,
            wg: self.wg,
            tpr: if path == ReducePath::Workgroup {
                self.tpr
            } else {
                0
            },
            rw: self.rows_per_workgroup(path, subgroup_max),
            x_half,
            bias,
            i8_magic: dtype != WeightDtype::I8 || self.i8_magic,
            xor: self.xor && path == ReducePath::Subgroup,
            coop: false,
            sg_min: 0,
            max_partials: false,
        }
    }

    /// The tensor-core kernel's specialisation (a `coop` tuning; f16 W and
    /// x), for subgroups of `subgroup_min..=subgroup_max` lanes.
    pub fn coop_spec(
        &self,
        batch: u32,
        bias: bool,
        subgroup_min: u32,
        subgroup_max: u32,
    ) -> GemvSpec {
        let sg_max = subgroup_max.clamp(1, self.wg);
        GemvSpec {
            dtype: WeightDtype::F16,
            path: ReducePath::Subgroup,
            batch,
            nr: self.nr,
            unroll: self.unroll,
            wg: self.wg,
            tpr: 0,
            rw: self.rows_per_workgroup(ReducePath::Subgroup, sg_max),
            x_half: true,
            bias,
            i8_magic: true,
            xor: false,
            coop: true,
            sg_min: subgroup_min.clamp(1, sg_max),
            max_partials: false,
        }
    }

    fn check(&self, batch: u32) -> Result<()> {
        if self.coop {
            let ok = self.wg.is_power_of_two()
                && (32..=1024).contains(&self.wg)
                && (1..=4).contains(&self.nr)
                && (1..=8).contains(&self.unroll)
                && (1..=MAX_BATCH as u32).contains(&batch);
            return if ok {
                Ok(())
            } else {
                Err(Error::Param(format!(
                    "GEMV coop tuning {self:?} with batch {batch} is out of range"
                )))
            };
        }
        let ok = self.wg.is_power_of_two()
            && (32..=1024).contains(&self.wg)
            && (1..=8).contains(&self.nr)
            && (1..=4).contains(&self.unroll)
            && (1..=16).contains(&self.blocks)
            && (!self.xor || matches!(batch, 2 | 4 | 8))
            && self.tpr.is_power_of_two()
            && self.tpr <= self.wg
            && (1..=MAX_BATCH as u32).contains(&batch);
        if ok {
            Ok(())
        } else {
            Err(Error::Param(format!(
                "GEMV tuning {self:?} with batch {batch} is out of range"
            )))
        }
    }
}

/// One row block of the weights: its own buffer and binding.
struct WeightPart {
    row0: usize,
    rows: usize,
    buf: wgpu::Buffer,
}

/// A weight matrix in device memory, rows padded to whole kernel steps.
pub struct GemvWeights {
    pub rows: usize,
    pub cols: usize,
    pub dtype: WeightDtype,
    /// Elements per stored (padded) row.
    pub ld: usize,
    parts: Vec<WeightPart>,
    /// Per-row scales (int8), else one unused value.
    scales: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
    /// Device bytes of the weights (parts + scales + bias).
    pub bytes: u64,
}

impl std::fmt::Debug for GemvWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GemvWeights({}×{} {}, {} parts)",
            self.rows,
            self.cols,
            self.dtype.name(),
            self.parts.len()
        )
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl GemvWeights {
    /// Upload `w` (`rows × cols`, row-major) and an optional bias (`rows` values).
    pub fn upload(
        ctx: &GpuContext,
        w: &Weights<'_>,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
    ) -> Result<GemvWeights> {
        Self::upload_split(ctx, w, rows, cols, bias, None)
    }

    /// [`GemvWeights::upload`] with row blocks of at most `max_part_bytes`
    /// (default and cap: the device's storage-binding limit). Tests use small
    /// blocks to exercise the split on any device.
    pub fn upload_split(
        ctx: &GpuContext,
        w: &Weights<'_>,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
        max_part_bytes: Option<u64>,
    ) -> Result<GemvWeights> {
        w.check(rows, cols)?;
        if let Some(b) = bias.filter(|b| b.len() != rows) {
            return Err(Error::Param(format!(
                "bias has {} values for {rows} rows",
                b.len()
            )));
        }
        let dtype = match w {
            Weights::F32(_) => WeightDtype::F32,
            Weights::F16(_) => WeightDtype::F16,
            Weights::I8 { .. } => WeightDtype::I8,
        };
        let es = dtype.size();
        // Rows padded to whole steps; f16 rows to whole 16-column tiles where
        // the tensor-core kernel may run (zero columns, read by its last step).
        let pad = if dtype == WeightDtype::F16 && ctx.has_coop_f16() {
            16
        } else {
            dtype.step_elems()
        };
        let ld = cols.div_ceil(pad) * pad;
        let row_bytes = (ld * es) as u64;
        let limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        let limit = max_part_bytes.map_or(limit, |m| m.min(limit)) / 16 * 16;
        let rows_per_part = (limit / row_bytes) as usize;
        if rows_per_part == 0 {
            return Err(Error::Gpu(format!(
                "a weight row of {row_bytes} bytes exceeds the device's storage binding limit of {limit} bytes"
            )));
        }
        let raw: &[u8] = match w {
            Weights::F32(v) => bytemuck::cast_slice(v),
            Weights::F16(v) => bytemuck::cast_slice(v),
            Weights::I8 { q, .. } => bytemuck::cast_slice(q),
        };
        let mut parts = Vec::new();
        let mut bytes = 0u64;
        let mut row0 = 0;
        while row0 < rows {
            let n = rows_per_part.min(rows - row0);
            let size = n as u64 * row_bytes;
            let buf = ctx.create_buffer(
                &format!("gemv.w[{row0}..{}]", row0 + n),
                size,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            )?;
            let src = &raw[row0 * cols * es..(row0 + n) * cols * es];
            if ld == cols {
                ctx.queue.write_buffer(&buf, 0, src);
            } else {
                let mut padded = vec![0u8; size as usize];
                for r in 0..n {
                    padded[r * ld * es..r * ld * es + cols * es]
                        .copy_from_slice(&src[r * cols * es..(r + 1) * cols * es]);
                }
                ctx.queue.write_buffer(&buf, 0, &padded);
            }
            bytes += size;
            parts.push(WeightPart { row0, rows: n, buf });
            row0 += n;
        }
        let scale_vals: Vec<f32> = match w {
            Weights::I8 { scales, .. } => scales.to_vec(),
            _ => vec![1.0],
        };
        let scales = upload_f32(ctx, "gemv.scales", &scale_vals)?;
        let bias = bias.map(|b| upload_f32(ctx, "gemv.bias", b)).transpose()?;
        bytes += scales.size() + bias.as_ref().map_or(0, |b| b.size());
        ctx.check_health()?;
        Ok(GemvWeights {
            rows,
            cols,
            dtype,
            ld,
            parts,
            scales,
            bias,
            bytes,
        })
    }

    /// Bytes of W the kernel reads per pass (padded rows).
    pub fn weight_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.buf.size()).sum()
    }

    /// The fewest rows of any row block (binding).
    pub fn min_part_rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).min().unwrap_or(0)
    }

    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }
}

pub(crate) fn upload_f32(ctx: &GpuContext, label: &str, v: &[f32]) -> Result<wgpu::Buffer> {
    let buf = ctx.create_buffer(
        label,
        (v.len().max(1) * 4) as u64,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    )?;
    if !v.is_empty() {
        ctx.queue.write_buffer(&buf, 0, &f32_bytes(v));
    }
    Ok(buf)
}

/// How to run a GEMV.
#[derive(Debug, Clone, Copy, Default)]
pub struct GemvOptions {
    /// Vectors per pass, 1..=8 (0 means 1).
    pub batch: usize,
    pub x_dtype: VecDtype,
    pub path: ReducePath,
    /// Work split; `None` picks [`GemvTuning::default_for`].
    pub tuning: Option<GemvTuning>,
    /// Also write each workgroup's maximum of its y values per vector to
    /// [`Gemv::partials`] (the sampler's row maximum without a dispatch of
    /// its own; not the tensor-core kernel).
    pub max_partials: bool,
}

/// Resolve `Auto` against the device, or fail if a path is not available.
pub fn resolve_path(ctx: &GpuContext, path: ReducePath) -> Result<ReducePath> {
    let sg = ctx.has(wgpu::Features::SUBGROUP);
    match path {
        ReducePath::Auto if sg => Ok(ReducePath::Subgroup),
        ReducePath::Auto => Ok(ReducePath::Workgroup),
        ReducePath::Subgroup if !sg => Err(Error::Gpu(
            "the subgroup path needs SUBGROUP, which this device lacks".into(),
        )),
        p => Ok(p),
    }
}

/// The smallest subgroup size (32 if the adapter does not say, like [`subgroup_max`]).
pub fn subgroup_min(ctx: &GpuContext) -> u32 {
    match ctx.info.subgroup_min_size {
        0 => subgroup_max(ctx),
        n => n.clamp(1, subgroup_max(ctx)),
    }
}

/// `WCODEC_GPU_GEMV_COOP=1`: pick the tensor-core kernel by default where
/// [`coop_possible`] (f16 W and x, batch ≥ 2); otherwise (the default for
/// now) only an explicit `coop` tuning runs it.
pub fn coop_preferred() -> bool {
    std::env::var("WCODEC_GPU_GEMV_COOP").is_ok_and(|v| v == "1")
}

/// Why the tensor-core GEMV cannot run `weights` with `batch` vectors of
/// `x_dtype` on this device with `tuning` (`None`: it can).
pub fn coop_unavailable(
    ctx: &GpuContext,
    weights: &GemvWeights,
    batch: usize,
    x_dtype: VecDtype,
    tuning: &GemvTuning,
) -> Option<String> {
    if !ctx.has_coop_f16() {
        return Some(format!(
            "the device has no 16x16x16 f16->f32 cooperative matrices ({})",
            ctx.coop_summary()
        ));
    }
    if weights.dtype != WeightDtype::F16 || x_dtype != VecDtype::F16 {
        return Some(format!(
            "cooperative matrices take f16 W and f16 x, not {} and {}",
            weights.dtype.name(),
            x_dtype.name()
        ));
    }
    if weights.ld % 16 != 0 {
        return Some("the weights' rows are not padded to 16 columns".into());
    }
    if weights.min_part_rows() < 16 {
        return Some(format!(
            "a row block of {} rows is smaller than one 16-row tile",
            weights.min_part_rows()
        ));
    }
    if !(1..=MAX_BATCH).contains(&batch) {
        return Some(format!("batch {batch}"));
    }
    let spec = tuning.coop_spec(
        batch as u32,
        weights.has_bias(),
        subgroup_min(ctx),
        subgroup_max(ctx),
    );
    let stage = crate::wgpu::gemv_gen::coop_stage_bytes(&spec);
    if stage > ctx.limits.max_compute_workgroup_storage_size {
        return Some(format!(
            "{stage} bytes of workgroup memory exceed the device's {}",
            ctx.limits.max_compute_workgroup_storage_size
        ));
    }
    None
}

/// Whether the default tensor-core GEMV can run `weights` × `batch` vectors of `x_dtype`.
pub fn coop_possible(
    ctx: &GpuContext,
    weights: &GemvWeights,
    batch: usize,
    x_dtype: VecDtype,
) -> bool {
    coop_unavailable(
        ctx,
        weights,
        batch,
        x_dtype,
        &GemvTuning::coop_candidates()[0],
    )
    .is_none()
}

/// The largest subgroup size kernels must plan for (32 if the adapter does not say).
pub fn subgroup_max(ctx: &GpuContext) -> u32 {
    match ctx.info.subgroup_max_size {
        0 => 32,
        n => n.clamp(1, 128),
    }
}

/// Split `groups` workgroups into a 2-D grid within the device's per-dimension limit.
pub(crate) fn grid(ctx: &GpuContext, groups: u32) -> Result<(u32, u32)> {
    let max = ctx.limits.max_compute_workgroups_per_dimension.max(1);
    let gx = groups.clamp(1, max);
    let gy = groups.div_ceil(gx);
    if gy > max {
        return Err(Error::Gpu(format!(
            "{groups} workgroups exceed the device's {max}×{max} grid"
        )));
    }
    Ok((gx, gy))
}

/// A compiled GEMV bound to its weights and its own x and y buffers.
pub struct Gemv {
    pub rows: usize,
    pub cols: usize,
    pub batch: usize,
    pub dtype: WeightDtype,
    pub x_dtype: VecDtype,
    /// The path the kernel uses (resolved).
    pub path: ReducePath,
    pub tuning: GemvTuning,
    ld: usize,
    kernel: Arc<Kernel>,
    dispatches: Vec<(wgpu::BindGroup, (u32, u32))>,
    _params: Vec<wgpu::Buffer>,
    /// The input vectors: `batch × ld` elements of `x_dtype`, zero-padded.
    pub x: PooledBuffer,
    /// The output: `batch × rows` f32.
    pub y: PooledBuffer,
    /// Bytes of W read per pass.
    pub weight_bytes: u64,
    /// With [`GemvOptions::max_partials`]: `batch × parts_per_row` of
    /// `vec2<u32>` (sanitised maximum's bits, its row), vector b's at
    /// `b · parts_per_row`, one per workgroup over all row blocks.
    pub partials: Option<PooledBuffer>,
    /// Partials per vector (workgroups over all row blocks; 0 without them).
    pub parts_per_row: usize,
}

impl std::fmt::Debug for Gemv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Gemv({}×{} {} x{} {} {:?})",
            self.rows,
            self.cols,
            self.dtype.name(),
            self.batch,
            self.path.name(),
            self.tuning
        )
    }
}

impl Gemv {
    /// Build the kernel and its bindings for `weights` (all allocation happens here).
    pub fn new(ctx: &GpuContext, weights: &GemvWeights, opts: &GemvOptions) -> Result<Gemv> {
        let batch = opts.batch.max(1);
        if batch > MAX_BATCH {
            return Err(Error::Param(format!(
                "GEMV batch {batch} exceeds {MAX_BATCH}"
            )));
        }
        let mut path = resolve_path(ctx, opts.path)?;
        let tuning = match opts.tuning {
            Some(t) => t,
            None if batch >= 2
                && path == ReducePath::Subgroup
                && coop_preferred()
                && coop_possible(ctx, weights, batch, opts.x_dtype) =>
            {
                GemvTuning::coop_candidates()[0]
            }
            None => GemvTuning::default_for_shape(
                weights.dtype,
                batch as u32,
                path,
                weights.rows,
                weights.cols,
                opts.x_dtype == VecDtype::F16,
            ),
        };
        tuning.check(batch as u32)?;
        if tuning.coop {
            if let Some(why) = coop_unavailable(ctx, weights, batch, opts.x_dtype, &tuning) {
                return Err(Error::Gpu(format!(
                    "the tensor-core GEMV cannot run: {why}"
                )));
            }
            path = ReducePath::Subgroup;
        }
        if tuning.wg > ctx.limits.max_compute_invocations_per_workgroup {
            return Err(Error::Gpu(format!(
                "GEMV workgroup of {} exceeds the device's {} invocations",
                tuning.wg, ctx.limits.max_compute_invocations_per_workgroup
            )));
        }
        if opts.max_partials && tuning.coop {
            return Err(Error::Param(
                "GEMV max partials are not available with the tensor-core kernel".into(),
            ));
        }
        let sgmax = subgroup_max(ctx);
        let spec = if tuning.coop {
            tuning.coop_spec(batch as u32, weights.has_bias(), subgroup_min(ctx), sgmax)
        } else {
            tuning.spec(
                weights.dtype,
                path,
                batch as u32,
                opts.x_dtype == VecDtype::F16,
                weights.has_bias(),
                sgmax,
            )
        };
        let spec = GemvSpec {
            max_partials: opts.max_partials,
            ..spec
        };
        if opts.max_partials && spec.path == ReducePath::Workgroup {
            let need = spec.wg * spec.nr * spec.batch * 4 + 8 * spec.batch;
            if need > ctx.limits.max_compute_workgroup_storage_size {
                return Err(Error::Gpu(format!(
                    "GEMV with max partials needs {need} bytes of workgroup memory, the device has {}",
                    ctx.limits.max_compute_workgroup_storage_size
                )));
            }
        }
        let kernel = ctx.kernel(&crate::wgpu::kernels::gemv(&spec), &[])?;
        let ld = weights.ld;
        let xs = opts.x_dtype.size();
        // The tensor-core kernel reads 16 vectors (those past the batch zero).
        let x_vecs = if tuning.coop { 16 } else { batch };
        let x_bytes = (x_vecs * ld * xs) as u64;
        let y_bytes = (batch * weights.rows * 4) as u64;
        let lim = ctx.limits.max_storage_buffer_binding_size;
        if x_bytes > lim || y_bytes > lim {
            return Err(Error::Gpu(format!(
                "GEMV vectors of {x_bytes}/{y_bytes} bytes exceed the binding limit {lim}"
            )));
        }
        use wgpu::BufferUsages as U;
        let x = ctx.buffer("gemv.x", x_bytes, U::STORAGE | U::COPY_DST)?;
        let y = ctx.buffer("gemv.y", y_bytes, U::STORAGE | U::COPY_SRC | U::COPY_DST)?;
        // Pooled buffers may be reused: zero x so that its padding is zero.
        ctx.queue.write_buffer(&x, 0, &vec![0u8; x.size() as usize]);
        let rw = tuning.rows_per_workgroup(path, sgmax);
        // The coop kernel counts in f16 elements and 16-column steps.
        let (steps, w_stride, x_stride) = if tuning.coop {
            ((ld / 16) as u32, ld as u32, ld as u32)
        } else {
            (
                (ld / weights.dtype.step_elems()) as u32,
                (ld * weights.dtype.size() / 16) as u32,
                (ld * xs / 16) as u32,
            )
        };
        let bias_buf = weights.bias.as_ref().unwrap_or(&weights.scales);
        let parts_per_row: usize = weights
            .parts
            .iter()
            .map(|p| (p.rows as u32).div_ceil(rw) as usize)
            .sum();
        let partials = if opts.max_partials {
            let b = (batch * parts_per_row * 8) as u64;
            if b > lim {
                return Err(Error::Gpu(format!(
                    "GEMV max partials of {b} bytes exceed the binding limit {lim}"
                )));
            }
            Some(ctx.buffer("gemv.partials", b, U::STORAGE | U::COPY_SRC | U::COPY_DST)?)
        } else {
            None
        };
        let mut dispatches = Vec::new();
        let mut params = Vec::new();
        let mut part_base = 0u32;
        for part in &weights.parts {
            let groups = (part.rows as u32).div_ceil(rw);
            let (gx, gy) = grid(ctx, groups)?;
            let pr = Params {
                rows: part.rows as u32,
                row_base: part.row0 as u32,
                steps,
                w_stride,
                x_stride,
                y_stride: weights.rows as u32,
                groups_x: gx,
                scale_base: part.row0 as u32,
                part_base,
                part_stride: parts_per_row as u32,
                groups,
                pad0: 0,
            };
            part_base += groups;
            let pb = ctx.create_buffer(
                "gemv.params",
                std::mem::size_of::<Params>() as u64,
                U::UNIFORM | U::COPY_DST,
            )?;
            ctx.queue.write_buffer(&pb, 0, bytemuck::bytes_of(&pr));
            let mut entries = vec![
                part.buf.as_entire_buffer_binding(),
                x.as_entire_buffer_binding(),
                weights.scales.as_entire_buffer_binding(),
                bias_buf.as_entire_buffer_binding(),
                y.as_entire_buffer_binding(),
                pb.as_entire_buffer_binding(),
            ];
            if let Some(pt) = &partials {
                entries.push(pt.as_entire_buffer_binding());
            }
            let bg = kernel.bind_group(&ctx.device, "gemv", &entries);
            dispatches.push((bg, (gx, gy)));
            params.push(pb);
        }
        ctx.check_health()?;
        Ok(Gemv {
            rows: weights.rows,
            cols: weights.cols,
            batch,
            dtype: weights.dtype,
            x_dtype: opts.x_dtype,
            path,
            tuning,
            ld,
            kernel,
            dispatches,
            _params: params,
            x,
            y,
            weight_bytes: weights.weight_bytes(),
            partials,
            parts_per_row: if opts.max_partials { parts_per_row } else { 0 },
        })
    }

    /// Bytes of x one call holds (`batch × ld` elements).
    pub fn x_bytes(&self) -> usize {
        self.batch * self.ld * self.x_dtype.size()
    }

    /// Encode `x` (`batch × cols` values) in the kernel's x layout (f16 by
    /// integer round-to-nearest-even), into `out` (`x_bytes()` long, padding left
    /// as it is: zero).
    pub fn pack_x(&self, x: &[f32], out: &mut [u8]) -> Result<()> {
        if x.len() != self.batch * self.cols {
            return Err(Error::Param(format!(
                "x has {} values, the GEMV takes {}×{}",
                x.len(),
                self.batch,
                self.cols
            )));
        }
        if out.len() != self.x_bytes() {
            return Err(Error::Param(format!(
                "x buffer of {} bytes, need {}",
                out.len(),
                self.x_bytes()
            )));
        }
        let xs = self.x_dtype.size();
        if self.x_dtype == VecDtype::F16 {
            // Whole rows at once through `half`'s slice conversion (F16C where
            // the CPU has it): element by element this took ~4 ns a value, 110 µs
            // per token for 8 hidden states of 2560 on the H100 machine.
            if let Ok(h) = bytemuck::try_cast_slice_mut::<u8, half::f16>(out) {
                use half::slice::HalfFloatSliceExt;
                for b in 0..self.batch {
                    let row = &mut h[b * self.ld..b * self.ld + self.cols];
                    row.convert_from_f32_slice(&x[b * self.cols..(b + 1) * self.cols]);
                }
                return Ok(());
            }
        }
        for b in 0..self.batch {
            for c in 0..self.cols {
                let v = x[b * self.cols + c];
                let at = (b * self.ld + c) * xs;
                match self.x_dtype {
                    VecDtype::F32 => out[at..at + 4].copy_from_slice(&v.to_le_bytes()),
                    VecDtype::F16 => out[at..at + 2]
                        .copy_from_slice(&crate::codec::quant::f32_to_f16_bits(v).to_le_bytes()),
                }
            }
        }
        Ok(())
    }

    /// Write the input vectors (`batch × cols` values, converted to the x dtype).
    pub fn write_x(&self, queue: &wgpu::Queue, x: &[f32]) -> Result<()> {
        let mut bytes = vec![0u8; self.x_bytes()];
        self.pack_x(x, &mut bytes)?;
        queue.write_buffer(&self.x, 0, &bytes);
        Ok(())
    }

    /// Record the dispatches into an open compute pass.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        for (bg, (gx, gy)) in &self.dispatches {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }

    /// One submission computing `y` from the current `x`.
    pub fn execute(&self, device: &wgpu::Device, queue: &wgpu::Queue) {
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("gemv"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gemv"),
                timestamp_writes: None,
            });
            self.encode(&mut pass);
        }
        queue.submit([enc.finish()]);
    }

    /// Read the max partials back (`batch × parts_per_row` of (value bits,
    /// row); blocking; empty without them).
    pub fn read_partials(&self, ctx: &GpuContext) -> Result<Vec<[u32; 2]>> {
        let Some(pt) = &self.partials else {
            return Ok(Vec::new());
        };
        let b = ctx.read_buffer(pt, 0, (self.batch * self.parts_per_row * 8) as u64)?;
        Ok(b.chunks_exact(8)
            .map(|c| {
                [
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                ]
            })
            .collect())
    }

    /// Read `y` back (`batch × rows` values; blocking).
    pub fn read_y(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let b = ctx.read_buffer(&self.y, 0, (self.batch * self.rows * 4) as u64)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape-specific defaults are candidates, and only where measured.
    #[test]
    fn default_for_shape_picks() {
        let f16 = WeightDtype::F16;
        let sg = ReducePath::Subgroup;
        let first = |b| GemvTuning::candidates(f16, b, sg)[0];
        // Batch 8, x f32: four rows per subgroup, no xor.
        let t = GemvTuning::default_for_shape(f16, 8, sg, 50257, 2560, false);
        assert_eq!((t.wg, t.nr, t.unroll, t.xor), (256, 4, 1, false));
        assert!(GemvTuning::candidates(f16, 8, sg).contains(&t));
        // x f16, or the workgroup path, or batch 4: the first candidate.
        assert_eq!(
            GemvTuning::default_for_shape(f16, 8, sg, 50257, 2560, true),
            first(8)
        );
        assert_eq!(
            GemvTuning::default_for_shape(f16, 4, sg, 50257, 2560, false),
            first(4)
        );
        let wg = ReducePath::Workgroup;
        assert_eq!(
            GemvTuning::default_for_shape(f16, 8, wg, 50257, 2560, false),
            GemvTuning::candidates(f16, 8, wg)[0]
        );
        // Batch 1, up to 32 K rows of ≥ 4096 columns: one row per subgroup.
        assert_eq!(
            GemvTuning::default_for_shape(f16, 1, sg, 4096, 4096, true).nr,
            1
        );
        assert_eq!(
            GemvTuning::default_for_shape(f16, 1, sg, 50257, 2560, true),
            first(1)
        );
    }
}

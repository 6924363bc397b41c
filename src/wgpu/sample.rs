//! Token sampling on wgpu (`shaders/sample_f32.wgsl`): greedy, temperature,
//! top-k and top-p, exactly the algorithm of [`crate::cpu::sample`], so a
//! seed gives the same token here as on the CPU.
//!
//! A [`Sampler`] runs, in one compute pass: optionally the softmax
//! dispatches (probabilities for the caller), `prepare` (each workgroup
//! finds the row maximum itself, then distances and coarse histograms of its
//! part of the row; greedy rows end there) and `select` (one workgroup per
//! row: thresholds, draw, token). The token of each row
//! lands in [`Sampler::tokens`]; each row's step counter lives on the device
//! and advances by one per call, so a per-token loop uploads nothing.

use std::sync::Arc;

use crate::cpu::sample::{SampleParams, exp2_table};
use crate::error::{Error, Result};
use crate::wgpu::context::{Binding, GpuContext, Kernel, KernelSource, PooledBuffer};
use crate::wgpu::softmax::{Softmax, SoftmaxOptions, SoftmaxTuning};

/// Work split of the sampling kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SamplerTuning {
    pub softmax: SoftmaxTuning,
    /// `prepare` invocations per workgroup.
    pub prepare_wg: u32,
    /// `prepare` words (8 tokens each) per invocation.
    pub prepare_words: u32,
    /// `select` invocations (one workgroup per row; ≥ 256).
    pub select_wg: u32,
    /// The row maximum from a dispatch of its own (`max_part`: each block's
    /// maximum over its own tokens) instead of every `prepare` block reading
    /// the whole row.
    pub max_split: bool,
    /// Benchmarks only, 0 otherwise: `select`'s general path stops early
    /// (1: after the top-k fine pass, 2: after top-p, 3: before the token
    /// search), 4: `prepare` stops after the row maximum, 5: `select` stops
    /// once it has the top-k bin, 6: its fast path stops after collecting the
    /// candidates, to time each part; the token is then meaningless.
    /// 7: the token is the path `select` took (0: the local lists, 1: the
    /// fast path over the row, 2: the general path), for tests. 8: the
    /// general path runs through and the token is how it found the token
    /// (2: passes over the row's distances, 3: the bucket lists, 4: the
    /// bucket lists for the distances and a pass over the row for the token,
    /// when more than 512 tokens share its distance), for tests.
    pub diag: u32,
    /// Local candidate lists (0: none; even, ≤ 256): with a top-k, each
    /// `prepare` block also writes its candidates up to its local top-k bin
    /// when they are at most this many, and `select` reads the union of
    /// those lists instead of the row's distances and histograms when every
    /// block's list is complete (same token: see the shader's header).
    pub local_cap: u32,
}

impl SamplerTuning {
    /// The variants worth timing, the default first (`select_wg` is capped by the device).
    pub fn candidates() -> Vec<SamplerTuning> {
        let s = SoftmaxTuning::default();
        let t = |prepare_wg, prepare_words, select_wg| SamplerTuning {
            softmax: s,
            prepare_wg,
            prepare_words,
            select_wg,
            max_split: false,
            diag: 0,
            local_cap: 0,
        };
        let ts = |prepare_wg, prepare_words, select_wg| SamplerTuning {
            max_split: true,
            ..t(prepare_wg, prepare_words, select_wg)
        };
        // H100, top-k 50 + top-p 0.9 over 50257: split pwg512 30.0 µs, split
        // pwg1024 30.2, whole-row maximum in every block (pwg1024) 31.8;
        // greedy 10.5 split, 12.4 not. In the head (cold caches after the
        // GEMV, `bench head --sampler-tunings all`, run 22) these all take
        // 128.4-136.7 µs of GPU time; more, smaller `prepare` blocks
        // (pwg128: 50 of them) were slower there too (134.3-137.0).
        // Local lists of 128 (session 6, run 27): 26.1-26.7 µs against
        // 29.4 without (cold caches 36.6 against 41.9) and 121.7-122.2 µs
        // of head GPU time against 128.2; lists of 64 overflow on such rows
        // and fall back (head 132.3), lists of 256 cost more to read (123.4).
        let tl = |prepare_wg, prepare_words, select_wg, local_cap| SamplerTuning {
            local_cap,
            ..ts(prepare_wg, prepare_words, select_wg)
        };
        vec![
            tl(512, 1, 512, 128),
            ts(512, 1, 512),
            tl(512, 1, 512, 64),
            tl(512, 1, 512, 256),
            tl(1024, 1, 512, 128),
            ts(1024, 1, 512),
            t(1024, 1, 512),
            ts(256, 1, 512),
            ts(256, 2, 512),
            t(512, 1, 512),
            t(256, 2, 512),
            t(1024, 1, 256),
            t(512, 2, 1024),
        ]
    }

    /// Short name for benchmark tables, e.g. `pwg512 pw1 swg512 split lists128`.
    pub fn label(&self) -> String {
        let mut s = format!(
            "pwg{} pw{} swg{}",
            self.prepare_wg, self.prepare_words, self.select_wg
        );
        if self.max_split {
            s += " split";
        }
        if self.local_cap > 0 {
            s += &format!(" lists{}", self.local_cap);
        }
        s
    }

    pub fn constants(&self, auto_step: bool) -> Vec<(&'static str, f64)> {
        self.constants_ext(auto_step, false)
    }

    /// [`SamplerTuning::constants`], `ext_max`: the row maximum from a GEMV's
    /// max partials ([`Sampler::with_max_partials`]).
    pub fn constants_ext(&self, auto_step: bool, ext_max: bool) -> Vec<(&'static str, f64)> {
        vec![
            ("EXTMAX", ext_max as u32 as f64),
            ("PWG", self.prepare_wg as f64),
            ("PW", self.prepare_words as f64),
            ("SWG", self.select_wg as f64),
            ("AUTO_STEP", auto_step as u32 as f64),
            ("MAXSPLIT", self.max_split as u32 as f64),
            ("DIAG", self.diag as f64),
            ("LCAP", self.local_cap as f64),
        ]
    }

    fn check(&self, ctx: &GpuContext) -> Result<()> {
        let max = ctx.limits.max_compute_invocations_per_workgroup;
        let pow2 = |v: u32| v.is_power_of_two();
        let shapes_ok = pow2(self.prepare_wg)
            && pow2(self.select_wg)
            && self.prepare_wg >= 32
            && self.select_wg >= 256;
        let lists_ok = self.local_cap % 2 == 0 && self.local_cap <= 256;
        if !shapes_ok || !lists_ok || !(1..=16).contains(&self.prepare_words) || self.diag > 8 {
            return Err(Error::Param(format!(
                "sampler tuning {self:?} out of range"
            )));
        }
        if self.prepare_wg > max || self.select_wg > max {
            return Err(Error::Gpu(format!(
                "sampler workgroups {self:?} exceed the device's {max} invocations"
            )));
        }
        self.softmax.check(ctx)
    }
}

impl Default for SamplerTuning {
    fn default() -> Self {
        SamplerTuning::candidates()[0]
    }
}

const BINDINGS: &[Binding] = &[
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::Uniform,
    Binding::ReadOnly,
];

/// `lib/u64.wgsl` + `sample_f32.wgsl`, entry `max_part`, `prepare` or `select_token`.
pub fn source(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "prepare" => "sample_f32.prepare",
            "max_part" => "sample_f32.max_part",
            _ => "sample_f32.select",
        },
        source: format!(
            "{}\n{}",
            include_str!("../../shaders/lib/u64.wgsl"),
            include_str!("../../shaders/sample_f32.wgsl")
        )
        .into(),
        entry,
        bindings: BINDINGS,
        features: wgpu::Features::empty(),
        // bounds come from wgpu's runtime checks unless WCODEC_GPU_CHECKS=0
        trusted: false,
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    rows: u32,
    ld_in: u32,
    vec_ok: u32,
    nbs: u32,
    ld_d: u32,
    scale: f32,
    top_k: u32,
    p_fixed: u32,
    seed_lo: u32,
    seed_hi: u32,
    greedy: u32,
    xparts: u32,
    buckets: u32,
    plain: u32,
    _pad: u32,
}

/// Options of a sampler.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplerOptions {
    /// Also write the softmax probabilities (at the sampling temperature; at
    /// temperature 1 when greedy) to [`Softmax::out`].
    pub probs: bool,
    /// Advance each row's step counter after every call (else it stays put).
    pub fixed_step: bool,
    pub tuning: SamplerTuning,
    /// Put the tokens in a buffer the host can map directly (where the
    /// device has MAPPABLE_PRIMARY_BUFFERS): a token loop then maps it
    /// instead of copying 4 bytes per row into a readback buffer.
    pub mappable_tokens: bool,
}

/// Samples one token per row from `rows` rows of `n` logits.
pub struct Sampler {
    pub n: usize,
    pub rows: usize,
    pub params: SampleParams,
    pub tuning: SamplerTuning,
    pub probs: bool,
    /// The softmax (run only with `probs`; it also owns the input when the
    /// sampler has its own).
    pub softmax: Softmax,
    max_part: Option<Arc<Kernel>>,
    prepare: Arc<Kernel>,
    select: Arc<Kernel>,
    bind: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    nbs: u32,
    vec_ok: bool,
    ld_in: u32,
    ld_d: u32,
    /// Bucket-list words (vec4) per row, after all rows' distances.
    ld_b: u32,
    _table: wgpu::Buffer,
    _dist: PooledBuffer,
    _hist: PooledBuffer,
    /// Per-row step counters (u64), advanced on the device.
    pub steps: PooledBuffer,
    /// Per-row tokens (u32).
    pub tokens: PooledBuffer,
    /// External max partials per row (0: the sampler finds the maximum itself).
    xparts: u32,
    /// Dummy resources for [`Sampler::encode_prewarm`] (after [`Sampler::enable_prewarm`]).
    prewarm: Option<Prewarm>,
}

/// `select`'s fast-path capacity (CAP in sample_f32.wgsl; a unit test
/// checks they agree): with a top-k above it, `select` always takes its
/// general path.
const FAST_CAP: u32 = 512;

/// Rows of at most this many `prepare` blocks get bucket and local lists
/// (LC_BLOCKS in sample_f32.wgsl; a unit test checks they agree).
const LC_BLOCKS: u32 = 256;

/// Workgroups of a pre-warm's `select` (and of its `prepare` when greedy).
/// H100 head (50257×2560 f16, top-k 50 + top-p 0.9, GPU µs, against
/// 119.6-120.2 without): one `prepare` block and
/// one `select` workgroup 119.3-119.5; 13 blocks (one row's) and 1 select
/// 118.7; 13 and 16 116.2-116.3; 13 and 32 115.8; 13 and 64 115.8; 26 and
/// 32 115.9. Either kernel alone was slower than none (120.7-123.9): the
/// gain needs both, spread over many SMs, which points at per-SM caches.
/// Greedy heads pre-warm `prepare` alone with as many blocks (one real
/// block runs): 96.5-96.7 µs against 97.0-97.2 with one block and
/// 97.6-98.2 without.
const PREWARM_SPREAD: u32 = 32;

/// What the pre-warm dispatches bind instead of the sampler's own buffers
/// ([`Sampler::enable_prewarm`]).
struct Prewarm {
    /// `prepare`: dummy logits and max partials; its own scratch and outputs.
    prep: wgpu::BindGroup,
    /// `select`: the sampler's own histograms, lists and distances (from the
    /// last call: read only, never written by `select`); its own step
    /// counters and tokens.
    sel: wgpu::BindGroup,
    /// The tokens the pre-warm's `select` writes.
    tokens: PooledBuffer,
    _bufs: Vec<PooledBuffer>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sampler({}×{}, {:?}, {:?})",
            self.rows, self.n, self.params, self.tuning
        )
    }
}

impl Sampler {
    /// A sampler reading `logits` (row `r` at element `r · ld_in`), or its
    /// own input when `logits` is `None` (fill it with [`Sampler::write_logits`]).
    /// Step counters start at 0.
    pub fn new(
        ctx: &GpuContext,
        logits: Option<&wgpu::Buffer>,
        n: usize,
        rows: usize,
        ld_in: usize,
        params: &SampleParams,
        opts: &SamplerOptions,
    ) -> Result<Sampler> {
        Self::with_max_partials(ctx, logits, None, n, rows, ld_in, params, opts)
    }

    /// [`Sampler::new`] taking each row's maximum from `max_partials`
    /// (`Some((buffer, P))`: row r's P partials at `r · P`, each a
    /// `vec2<u32>` of the sanitised value's bits and its index, as
    /// [`crate::wgpu::gemv::Gemv::partials`] holds them after the GEMV ran in
    /// the same pass): `prepare` reduces them and no `max_part` runs.
    #[allow(clippy::too_many_arguments)]
    pub fn with_max_partials(
        ctx: &GpuContext,
        logits: Option<&wgpu::Buffer>,
        max_partials: Option<(&wgpu::Buffer, usize)>,
        n: usize,
        rows: usize,
        ld_in: usize,
        params: &SampleParams,
        opts: &SamplerOptions,
    ) -> Result<Sampler> {
        params.check()?;
        if let Some((b, np)) = max_partials {
            if np == 0 || b.size() < (rows * np * 8) as u64 || np > u32::MAX as usize / rows {
                return Err(Error::Param(format!(
                    "max partials buffer of {} bytes for {rows} rows of {np}",
                    b.size()
                )));
            }
        }
        opts.tuning.check(ctx)?;
        if n > (u32::MAX / 2) as usize {
            return Err(Error::Param(format!("rows of {n} logits are too long")));
        }
        let softmax_t = if params.temperature > 0.0 {
            params.temperature
        } else {
            1.0
        };
        let softmax = Softmax::new(
            ctx,
            logits,
            n,
            rows,
            ld_in,
            &SoftmaxOptions {
                temperature: softmax_t,
                log: false,
                tuning: opts.tuning.softmax,
            },
        )?;
        let ld_d = n.div_ceil(8);
        let per_block = (opts.tuning.prepare_wg * opts.tuning.prepare_words) as usize;
        let nbs = ld_d.div_ceil(per_block);
        let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
        if nbs > max || rows > max {
            return Err(Error::Gpu(format!(
                "sampler grid {nbs}×{rows} exceeds the device's {max} workgroups per dimension"
            )));
        }
        use wgpu::BufferUsages as U;
        let table = ctx.create_buffer("sample.exp2", 2048 * 4, U::STORAGE | U::COPY_DST)?;
        ctx.queue
            .write_buffer(&table, 0, bytemuck::cast_slice(exp2_table()));
        // The distances, then each row's bucket lists (one u32 per token of
        // every `prepare` block; written and read only for parameters that
        // take `select`'s general path).
        let ld_b = nbs * per_block * 2;
        let dist = ctx.buffer(
            "sample.dist",
            (rows * (ld_d + ld_b) * 16) as u64,
            U::STORAGE,
        )?;
        // The coarse histograms, then (max_split) one partial maximum per
        // block, then the local lists (a status and local_cap / 2 words each).
        let lists = match opts.tuning.local_cap {
            0 => 0,
            c => 1 + c as usize / 2,
        };
        let hist = ctx.buffer(
            "sample.hist",
            (rows * nbs * (257 + lists) * 16) as u64,
            U::STORAGE,
        )?;
        let steps = ctx.buffer(
            "sample.steps",
            (rows * 8) as u64,
            U::STORAGE | U::COPY_SRC | U::COPY_DST,
        )?;
        ctx.queue.write_buffer(&steps, 0, &vec![0u8; rows * 8]);
        let map = if opts.mappable_tokens && ctx.has(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS) {
            U::MAP_READ
        } else {
            U::empty()
        };
        let tokens = ctx.buffer(
            "sample.tokens",
            (rows * 4) as u64,
            U::STORAGE | U::COPY_SRC | U::COPY_DST | map,
        )?;
        let uniform = ctx.create_buffer(
            "sample.params",
            std::mem::size_of::<Params>() as u64,
            U::UNIFORM | U::COPY_DST,
        )?;
        let ext = max_partials.is_some();
        let consts = opts.tuning.constants_ext(!opts.fixed_step, ext);
        let prepare = ctx.kernel(&source("prepare"), &consts)?;
        let max_part = if opts.tuning.max_split && !ext {
            Some(ctx.kernel(&source("max_part"), &consts)?)
        } else {
            None
        };
        let select = ctx.kernel(&source("select_token"), &consts)?;
        let input: &wgpu::Buffer = match (&softmax.input, logits) {
            (Some(b), _) => b,
            (None, Some(b)) => b,
            (None, None) => unreachable!("the softmax owns the input when none is given"),
        };
        // The logits again as 16-byte words (their whole words), when there is one.
        let v4 = input.size() / 16 * 16;
        let vec_ok = v4 >= 16;
        let logits4 = if vec_ok {
            wgpu::BufferBinding {
                buffer: input,
                offset: 0,
                size: wgpu::BufferSize::new(v4),
            }
        } else {
            table.as_entire_buffer_binding()
        };
        let bind = prepare.bind_group(
            &ctx.device,
            "sample",
            &[
                input.as_entire_buffer_binding(),
                logits4,
                table.as_entire_buffer_binding(),
                dist.as_entire_buffer_binding(),
                hist.as_entire_buffer_binding(),
                steps.as_entire_buffer_binding(),
                tokens.as_entire_buffer_binding(),
                uniform.as_entire_buffer_binding(),
                match max_partials {
                    Some((b, _)) => b.as_entire_buffer_binding(),
                    None => table.as_entire_buffer_binding(),
                },
            ],
        );
        let s = Sampler {
            n,
            rows,
            params: *params,
            tuning: opts.tuning,
            probs: opts.probs,
            softmax,
            max_part,
            prepare,
            select,
            bind,
            uniform,
            nbs: nbs as u32,
            vec_ok,
            ld_in: ld_in as u32,
            ld_d: ld_d as u32,
            ld_b: ld_b as u32,
            _table: table,
            _dist: dist,
            _hist: hist,
            steps,
            tokens,
            xparts: max_partials.map_or(0, |(_, np)| np as u32),
            prewarm: None,
        };
        s.write_params(&ctx.queue)?;
        ctx.check_health()?;
        Ok(s)
    }

    fn write_params(&self, queue: &wgpu::Queue) -> Result<()> {
        let p = &self.params;
        let u = Params {
            n: self.n as u32,
            rows: self.rows as u32,
            ld_in: self.ld_in,
            vec_ok: self.vec_ok as u32,
            nbs: self.nbs,
            ld_d: self.ld_d,
            scale: if p.temperature > 0.0 { p.scale() } else { 0.0 },
            top_k: p.top_k,
            p_fixed: p.p_fixed(),
            seed_lo: p.seed as u32,
            seed_hi: (p.seed >> 32) as u32,
            greedy: p.is_greedy() as u32,
            xparts: self.xparts,
            buckets: self.uses_buckets() as u32,
            plain: self.draws_plain() as u32,
            _pad: 0,
        };
        queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&u));
        Ok(())
    }

    /// Whether the parameters send every row to `select`'s general path:
    /// top-p alone, or a top-k past the fast path's capacity (not greedy,
    /// not the plain draw of temperature alone).
    fn takes_general_path(&self) -> bool {
        let p = &self.params;
        !p.is_greedy() && !self.draws_plain() && (p.top_k == 0 || p.top_k > FAST_CAP)
    }

    /// Whether `prepare` writes bucket lists for `select`'s general path:
    /// where the parameters take it, on rows of at most LC_BLOCKS blocks.
    pub fn uses_buckets(&self) -> bool {
        self.takes_general_path() && self.nbs <= LC_BLOCKS
    }

    /// Whether the parameters take the plain draw (temperature alone:
    /// [`SampleParams::draws_in_index_order`]): `prepare` writes block
    /// totals, `select` searches their prefix sums, then one block's.
    pub fn draws_plain(&self) -> bool {
        self.params.draws_in_index_order(self.n)
    }

    /// Change the sampling parameters (small uploads; not meant per token).
    pub fn set_params(&mut self, queue: &wgpu::Queue, params: &SampleParams) -> Result<()> {
        params.check()?;
        self.params = *params;
        if params.temperature > 0.0 {
            self.softmax.set_temperature(queue, params.temperature)?;
        }
        self.write_params(queue)
    }

    /// Set each row's step counter.
    pub fn set_steps(&self, queue: &wgpu::Queue, steps: &[u64]) -> Result<()> {
        if steps.len() != self.rows {
            return Err(Error::Param(format!(
                "{} step counters for {} rows",
                steps.len(),
                self.rows
            )));
        }
        queue.write_buffer(&self.steps, 0, bytemuck::cast_slice(steps));
        Ok(())
    }

    /// Read the step counters (blocking).
    pub fn read_steps(&self, ctx: &GpuContext) -> Result<Vec<u64>> {
        let b = ctx.read_buffer(&self.steps, 0, (self.rows * 8) as u64)?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// Fill the sampler's own input (`rows × n` logits).
    pub fn write_logits(&self, queue: &wgpu::Queue, x: &[f32]) -> Result<()> {
        self.softmax.write_logits(queue, x)
    }

    /// Record all stages into an open compute pass.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.encode_stages(pass, usize::MAX);
    }

    /// Allocate what [`Sampler::encode_prewarm`] needs (once; a few hundred
    /// KB: dummy logits of one row, their max partials, small scratch).
    pub fn enable_prewarm(&mut self, ctx: &GpuContext) -> Result<()> {
        if self.prewarm.is_some() {
            return Ok(());
        }
        use wgpu::BufferUsages as U;
        let n = self.n;
        // Logits shaped like a model's (N(0, 3²), as `bench kernels` draws
        // them), so that `prepare` takes the same branches (local lists of
        // the right size) as on real rows.
        let logits = crate::synth::normals(n, 3.0, 0x5eed_1065);
        let lb = ((n * 4).div_ceil(16) * 16).max(16) as u64;
        let lg = ctx.buffer("sample.warm.logits", lb, U::STORAGE | U::COPY_DST)?;
        let mut bytes = bytemuck::cast_slice::<f32, u8>(&logits).to_vec();
        bytes.resize(lb as usize, 0);
        ctx.queue.write_buffer(&lg, 0, &bytes);
        let (mi, mv) =
            logits.iter().enumerate().fold(
                (0usize, f32::MIN),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        let np = self.xparts.max(1) as usize;
        let parts: Vec<u32> = (0..np).flat_map(|_| [mv.to_bits(), mi as u32]).collect();
        let xp = ctx.buffer(
            "sample.warm.partials",
            (np * 8) as u64,
            U::STORAGE | U::COPY_DST,
        )?;
        ctx.queue.write_buffer(&xp, 0, bytemuck::cast_slice(&parts));
        // Scratch and outputs, one set per dispatch: two dispatches writing
        // one buffer would get a barrier between them, and any barrier waits
        // for the work recorded before (the GEMV). Writes past these land
        // clamped on their last element; nothing reads them back.
        let small = |label: &str, size: usize| -> Result<PooledBuffer> {
            let b = ctx.buffer(
                label,
                size.max(16) as u64,
                U::STORAGE | U::COPY_SRC | U::COPY_DST,
            )?;
            ctx.queue.write_buffer(&b, 0, &vec![0u8; size.max(16)]);
            Ok(b)
        };
        // Room for row 0's distances and bucket lists where the uniform
        // (the real row count) puts them.
        let dist_p = small(
            "sample.warm.dist",
            (self.rows * self.ld_d as usize + self.ld_b as usize) * 16,
        )?;
        let hist_p = small("sample.warm.hist", 16)?;
        let steps_p = small("sample.warm.steps", self.rows * 8)?;
        let tokens_p = small("sample.warm.tokens", self.rows * 4)?;
        let steps_s = small("sample.warm.steps", self.rows * 8)?;
        let tokens_s = small("sample.warm.tokens", self.rows * 4)?;
        // Poisoned: a row the pre-warm never wrote reads u32::MAX.
        ctx.queue
            .write_buffer(&tokens_s, 0, &vec![0xffu8; (self.rows * 4).max(16)]);
        let v4 = wgpu::BufferBinding {
            buffer: &lg,
            offset: 0,
            size: wgpu::BufferSize::new(lb),
        };
        let group = |label: &str,
                     dist: &wgpu::Buffer,
                     hist: &wgpu::Buffer,
                     steps: &wgpu::Buffer,
                     tokens: &wgpu::Buffer| {
            self.prepare.bind_group(
                &ctx.device,
                label,
                &[
                    lg.as_entire_buffer_binding(),
                    v4.clone(),
                    self._table.as_entire_buffer_binding(),
                    dist.as_entire_buffer_binding(),
                    hist.as_entire_buffer_binding(),
                    steps.as_entire_buffer_binding(),
                    tokens.as_entire_buffer_binding(),
                    self.uniform.as_entire_buffer_binding(),
                    xp.as_entire_buffer_binding(),
                ],
            )
        };
        let prep = group("sample.warm.prepare", &dist_p, &hist_p, &steps_p, &tokens_p);
        let sel = group(
            "sample.warm.select",
            &self._dist,
            &self._hist,
            &steps_s,
            &tokens_s,
        );
        ctx.check_health()?;
        self.prewarm = Some(Prewarm {
            prep,
            sel,
            tokens: tokens_s,
            _bufs: vec![lg, xp, dist_p, hist_p, steps_p, tokens_p, steps_s],
        });
        Ok(())
    }

    /// Run `prepare` (one row's blocks; greedy: PREWARM_SPREAD) and `select`
    /// (PREWARM_SPREAD workgroups) on dummy data, to bring their code into
    /// the GPU's caches ([`Sampler::enable_prewarm`] first; else nothing is
    /// recorded). Record it right after the dispatch that produces the
    /// logits and before [`Sampler::encode`]: they share no written buffer
    /// with that dispatch (nor with each other), so no barrier holds them
    /// back and they run in the shadow of its last workgroups. The real
    /// `prepare` waits for them at its barrier (the pre-warm `select` binds
    /// the sampler's own histograms, read only), so a pre-warm must not
    /// outlast that shadow. After a GEMV has streamed its weights through
    /// L2, fetching the sampler's code cost more than its cold data (`bench
    /// kernels --stages`: 35.4 µs cold, 24.6 with cold data and warm code,
    /// 22.7 warm). Nothing the sampler computes depends on these dispatches.
    ///
    /// Only where `select` can take its short paths (a top-k of at most
    /// 512, or temperature alone and its plain draw: H100 head GPU 116.9-117.3
    /// µs against 119.1-119.2 without; greedy rows pre-warm `prepare`
    /// alone): with top-p alone, or a larger top-k, the pre-warm would walk
    /// the general path, which outlasts the GEMV's shadow (H100 head, top-p
    /// alone: 169.0 µs of GPU time against 147.9 without; with the bucket
    /// lists 144.2-144.3 against 138.9, and 150.9 against 144.8). Rows whose
    /// candidates tie beyond the fast path's capacity also take the general
    /// path; the pre-warm then costs time on such tokens, not correctness.
    pub fn encode_prewarm(&self, pass: &mut wgpu::ComputePass<'_>) {
        let Some(w) = &self.prewarm else {
            return;
        };
        if self.takes_general_path() {
            return;
        }
        let greedy = self.params.is_greedy();
        pass.set_pipeline(&self.prepare.pipeline);
        pass.set_bind_group(0, &w.prep, &[]);
        pass.dispatch_workgroups(if greedy { PREWARM_SPREAD } else { self.nbs }, 1, 1);
        if !greedy {
            pass.set_pipeline(&self.select.pipeline);
            pass.set_bind_group(0, &w.sel, &[]);
            pass.dispatch_workgroups(PREWARM_SPREAD, 1, 1);
        }
    }

    /// Whether [`Sampler::encode_prewarm`] records anything for the current
    /// parameters: enabled, and `select` can take a short path (greedy, a
    /// top-k of at most 512, or the plain draw of temperature alone).
    pub fn prewarm_applies(&self) -> bool {
        self.prewarm.is_some() && !self.takes_general_path()
    }

    /// The tokens the pre-warm's `select` wrote (tests: with `diag` 7, the
    /// path it took; u32::MAX where it wrote none). `None` without
    /// [`Sampler::enable_prewarm`].
    pub fn read_prewarm_tokens(&self, ctx: &GpuContext) -> Result<Option<Vec<u32>>> {
        let Some(w) = &self.prewarm else {
            return Ok(None);
        };
        let b = ctx.read_buffer(&w.tokens, 0, (self.rows * 4) as u64)?;
        Ok(Some(bytemuck::cast_slice(&b).to_vec()))
    }

    /// Whether the row maximum comes from external max partials.
    pub fn ext_max(&self) -> bool {
        self.xparts > 0
    }

    /// Record only the first `n` dispatches ([softmax statistics, normalize],
    /// [max_part], prepare, select): the benchmark times each stage's share this way.
    pub fn encode_stages(&self, pass: &mut wgpu::ComputePass<'_>, n: usize) {
        let mut left = n;
        let mut take = || {
            let go = left > 0;
            left = left.saturating_sub(1);
            go
        };
        if self.probs && take() {
            self.softmax.encode(pass);
        }
        let greedy = self.params.is_greedy();
        if let Some(k) = self.max_part.as_ref().filter(|_| take()) {
            pass.set_pipeline(&k.pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            pass.dispatch_workgroups(self.nbs, self.rows as u32, 1);
        }
        if take() {
            pass.set_pipeline(&self.prepare.pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            // Greedy: one block per row finds the first index of the maximum.
            let blocks = if greedy { 1 } else { self.nbs };
            pass.dispatch_workgroups(blocks, self.rows as u32, 1);
        }
        if !greedy && take() {
            pass.set_pipeline(&self.select.pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            pass.dispatch_workgroups(self.rows as u32, 1, 1);
        }
    }

    /// Dispatches [`Sampler::encode`] records.
    pub fn stages(&self) -> usize {
        self.probs as usize
            + self.max_part.is_some() as usize
            + 1
            + !self.params.is_greedy() as usize
    }

    /// One submission sampling every row.
    pub fn execute(&self, device: &wgpu::Device, queue: &wgpu::Queue) {
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("sample"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("sample"),
                timestamp_writes: None,
            });
            self.encode(&mut pass);
        }
        queue.submit([enc.finish()]);
    }

    /// Whether [`Sampler::tokens`] can be mapped for reading directly.
    pub fn tokens_mappable(&self) -> bool {
        self.tokens.usage().contains(wgpu::BufferUsages::MAP_READ)
    }

    /// Read the tokens (blocking).
    pub fn read_tokens(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        let b = ctx.read_buffer(&self.tokens, 0, (self.rows * 4) as u64)?;
        Ok(bytemuck::cast_slice(&b).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use crate::wgpu::layout::wgsl_const_u32;

    /// FAST_CAP and LC_BLOCKS mirror the shader's constants.
    #[test]
    fn constants_are_the_shaders() {
        let src = super::source("prepare").source;
        assert_eq!(wgsl_const_u32(&src, "CAP"), Ok(super::FAST_CAP));
        assert_eq!(wgsl_const_u32(&src, "LC_BLOCKS"), Ok(super::LC_BLOCKS));
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::wgpu::layout::{check_struct, rust_fields};

    #[test]
    fn params_match_the_wgsl() {
        let fields = rust_fields!(Params: n, rows, ld_in, vec_ok, nbs, ld_d, scale, top_k, p_fixed,
            seed_lo, seed_hi, greedy, xparts, buckets, plain, _pad);
        check_struct(
            &source("prepare").source,
            "Params",
            &fields,
            std::mem::size_of::<Params>(),
        )
        .unwrap();
    }
}

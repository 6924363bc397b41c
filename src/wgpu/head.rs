//! The decoder head: hidden state → GEMV (logits) → softmax → sample, one
//! token per sequence, for 1 to 8 sequences sharing one pass over W.
//!
//! Everything is allocated in [`Head::new`]. Each token ([`Head::step`]) is
//! one command buffer, one `queue.submit` and a readback of 4 bytes per
//! sequence through a buffer mapped for reading; a new hidden state, when
//! given, goes up through a buffer mapped for writing (no `write_buffer`,
//! which would allocate a staging buffer inside wgpu). The step counters of
//! the random draw advance on the device. [`AllocCounters`] shows that the
//! steady state creates no buffers, bind groups, pipelines or device memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::cpu::sample::SampleParams;
use crate::error::{Error, Result};
use crate::wgpu::context::{GpuContext, GpuTimer};
use crate::wgpu::gemv::{Gemv, GemvOptions, GemvWeights};
use crate::wgpu::sample::{Sampler, SamplerOptions, SamplerTuning};

/// Options of a head.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadOptions {
    /// The GEMV (its `batch` is the number of sequences, 1..=8).
    pub gemv: GemvOptions,
    pub sample: SampleParams,
    pub sampler: SamplerTuning,
    /// Also write the probabilities (the softmax output) every token.
    pub probs: bool,
    /// Wait for each token by blocking in the driver (`false`, the default:
    /// spin on non-blocking polls, the lowest latency at the cost of a core).
    pub block: bool,
    /// Copy the tokens into a separate readback buffer even where the
    /// sampler's own token buffer can be mapped (MAPPABLE_PRIMARY_BUFFERS).
    pub copy_tokens: bool,
    /// Let the sampler find the row maximum itself (its `max_part` dispatch
    /// with the default tuning) instead of taking it from the GEMV's max
    /// partials (the default; not available with the tensor-core GEMV,
    /// which then always runs unfused). For comparison (`bench head
    /// --no-fused-max`).
    pub no_fused_max: bool,
    /// Do not pre-warm the sampler: by default (with a top-k or greedy, and
    /// the row maximum from the GEMV) its two kernels also run on dummy data
    /// right after the GEMV's dispatch, in the shadow of the GEMV's last
    /// workgroups, so that their code is cached when the real dispatches
    /// start ([`Sampler::encode_prewarm`]; H100: 115.8 µs of GPU time
    /// against 119.7). For comparison (`bench head --prewarm on,off`).
    pub no_prewarm: bool,
}

/// Device-side resource counts (wgpu's internal counters, when the `counters`
/// feature of wgpu is compiled in; else zeros) and the context's pool bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct AllocCounters {
    /// Whether wgpu's counters are compiled in (else the wgpu fields are 0).
    pub wgpu_counters: bool,
    pub buffers: isize,
    pub buffer_memory: isize,
    pub bind_groups: isize,
    pub compute_pipelines: isize,
    pub shader_modules: isize,
    pub memory_allocations: isize,
    pub command_encoders: isize,
    pub pool_live_bytes: u64,
    pub pool_peak_bytes: u64,
}

impl AllocCounters {
    pub fn read(ctx: &GpuContext) -> AllocCounters {
        let c = ctx.device.get_internal_counters().hal;
        let (live, peak) = ctx.pool_bytes();
        AllocCounters {
            wgpu_counters: c.buffers.read() != 0,
            buffers: c.buffers.read(),
            buffer_memory: c.buffer_memory.read(),
            bind_groups: c.bind_groups.read(),
            compute_pipelines: c.compute_pipelines.read(),
            shader_modules: c.shader_modules.read(),
            memory_allocations: c.memory_allocations.read(),
            command_encoders: c.command_encoders.read(),
            pool_live_bytes: live,
            pool_peak_bytes: peak,
        }
    }
}

const PENDING: u8 = 0;
const MAPPED: u8 = 1;
const FAILED: u8 = 2;

fn map(buf: &wgpu::Buffer, mode: wgpu::MapMode, size: u64, flag: &Arc<AtomicU8>) {
    flag.store(PENDING, Ordering::Release);
    let f = flag.clone();
    buf.map_async(mode, 0..size, move |r| {
        f.store(if r.is_ok() { MAPPED } else { FAILED }, Ordering::Release)
    });
}

/// A decoder head with all its buffers.
pub struct Head {
    pub gemv: Gemv,
    pub sampler: Sampler,
    /// Sequences (GEMV batch).
    pub batch: usize,
    readback: wgpu::Buffer,
    /// The tokens are mapped straight from the sampler's buffer (no copy).
    pub direct_read: bool,
    read_flag: Arc<AtomicU8>,
    upload: wgpu::Buffer,
    upload_flag: Arc<AtomicU8>,
    /// Host bytes of one hidden-state upload (reused).
    scratch: Vec<u8>,
    tokens: Vec<u32>,
    timer: Option<GpuTimer>,
    block: bool,
    /// Tokens produced so far.
    pub steps_done: u64,
    /// The next token's commands, recorded during the last wait, whether
    /// they start with the hidden-state copy, and the sampling parameters
    /// they were recorded for (which dispatches run depends on them: a
    /// change through `sampler.set_params` makes them stale).
    prepared: Option<(wgpu::CommandBuffer, bool, SampleParams)>,
    /// Where the last step's wall time went.
    pub last_timing: StepTiming,
}

/// Host-side phases of one [`Head::step`], in seconds from its start.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StepTiming {
    /// The command buffer was submitted.
    pub submitted: f64,
    /// The next token's commands were recorded (the GPU is working meanwhile).
    pub recorded: f64,
    /// The wait saw both mappings complete.
    pub done: f64,
    /// The tokens were read (the step's wall time).
    pub total: f64,
    /// Non-blocking polls made while waiting (0 when blocking).
    pub polls: u32,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Head({:?}, {:?})", self.gemv, self.sampler)
    }
}

impl Head {
    /// Build the head over `weights` (`vocab × hidden`): all allocation happens here.
    pub fn new(ctx: &GpuContext, weights: &GemvWeights, opts: &HeadOptions) -> Result<Head> {
        let mut gemv_opts = opts.gemv;
        gemv_opts.max_partials = !opts.no_fused_max && !Self::coop_gemv(ctx, weights, opts);
        let gemv = match Gemv::new(ctx, weights, &gemv_opts) {
            Ok(g) => g,
            // E.g. no room for the epilogue's 8·B bytes of workgroup memory on
            // the workgroup path: run unfused (`Head::fused_max` says which).
            Err(_) if gemv_opts.max_partials => Gemv::new(
                ctx,
                weights,
                &GemvOptions {
                    max_partials: false,
                    ..gemv_opts
                },
            )?,
            Err(e) => return Err(e),
        };
        let batch = gemv.batch;
        let mut sampler = Sampler::with_max_partials(
            ctx,
            Some(&gemv.y),
            gemv.partials.as_deref().map(|b| (b, gemv.parts_per_row)),
            weights.rows,
            batch,
            weights.rows,
            &opts.sample,
            &SamplerOptions {
                probs: opts.probs,
                fixed_step: false,
                tuning: opts.sampler,
                mappable_tokens: !opts.copy_tokens,
            },
        )?;
        // Only with the row maximum from the GEMV: with the sampler's own
        // `max_part` the pre-warm cost more than it saved (H100 head 124.2
        // µs of GPU time against 122.3).
        if !opts.no_prewarm && sampler.ext_max() {
            sampler.enable_prewarm(ctx)?;
        }
        use wgpu::BufferUsages as U;
        let rb = (batch * 4).div_ceil(4) as u64 * 4;
        let readback = ctx.create_buffer("head.readback", rb.max(4), U::MAP_READ | U::COPY_DST)?;
        let xb = gemv.x_bytes() as u64;
        let upload = ctx.scoped("allocating head.upload", || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("head.upload"),
                size: xb,
                usage: U::MAP_WRITE | U::COPY_SRC,
                mapped_at_creation: true,
            })
        })?;
        let upload_flag = Arc::new(AtomicU8::new(MAPPED));
        let timer = GpuTimer::new(ctx, 1);
        ctx.check_health()?;
        let direct_read = sampler.tokens_mappable();
        Ok(Head {
            scratch: vec![0u8; gemv.x_bytes()],
            tokens: vec![0; batch],
            gemv,
            sampler,
            batch,
            direct_read,
            readback,
            read_flag: Arc::new(AtomicU8::new(PENDING)),
            upload,
            upload_flag,
            timer,
            block: opts.block,
            steps_done: 0,
            prepared: None,
            last_timing: StepTiming::default(),
        })
    }

    /// Whether the GEMV `opts` asks for would be the tensor-core kernel
    /// (which has no max-partials epilogue).
    fn coop_gemv(ctx: &GpuContext, weights: &GemvWeights, opts: &HeadOptions) -> bool {
        use crate::wgpu::gemv::{ReducePath, coop_possible, coop_preferred, resolve_path};
        match opts.gemv.tuning {
            Some(t) => t.coop,
            None => {
                let batch = opts.gemv.batch.max(1);
                batch >= 2
                    && resolve_path(ctx, opts.gemv.path).ok() == Some(ReducePath::Subgroup)
                    && coop_preferred()
                    && coop_possible(ctx, weights, batch, opts.gemv.x_dtype)
            }
        }
    }

    /// Whether the sampler takes the row maximum from the GEMV's max partials.
    pub fn fused_max(&self) -> bool {
        self.sampler.ext_max()
    }

    /// One token's commands: optionally the hidden-state copy, the compute
    /// pass (timestamps around it when `timed`), the token readback copy.
    fn record(&mut self, ctx: &GpuContext, copy: bool, timed: bool) -> wgpu::CommandBuffer {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("head.token"),
            });
        if copy {
            enc.copy_buffer_to_buffer(&self.upload, 0, &self.gemv.x, 0, self.upload.size());
        }
        {
            let tw = if timed {
                self.timer.as_mut().and_then(|t| t.next_pass())
            } else {
                None
            };
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("head"),
                timestamp_writes: tw,
            });
            self.gemv.encode(&mut pass);
            self.sampler.encode_prewarm(&mut pass);
            self.sampler.encode(&mut pass);
        }
        if let Some(t) = self.timer.as_ref().filter(|_| timed) {
            t.resolve(&mut enc);
        }
        if !self.direct_read {
            enc.copy_buffer_to_buffer(
                &self.sampler.tokens,
                0,
                &self.readback,
                0,
                (self.batch * 4) as u64,
            );
        }
        enc.finish()
    }

    /// The buffer the host maps to read the tokens.
    fn token_buffer(&self) -> &wgpu::Buffer {
        if self.direct_read {
            &self.sampler.tokens
        } else {
            &self.readback
        }
    }

    /// Wait for the readback (and the upload buffer's re-mapping when `up`),
    /// then copy the tokens out and unmap. Returns when (seconds after `t0`)
    /// the wait ended and the polls it took.
    fn wait_and_read(
        &mut self,
        ctx: &GpuContext,
        up: bool,
        t0: std::time::Instant,
    ) -> Result<(f64, u32)> {
        let (t_done, polls) = self.wait_flags(ctx, up, t0)?;
        let rb = (self.batch * 4) as u64;
        if self.read_flag.load(Ordering::Acquire) != MAPPED {
            return Err(Error::Gpu("mapping the token readback failed".into()));
        }
        {
            let view = self
                .token_buffer()
                .get_mapped_range(0..rb)
                .map_err(|e| Error::Gpu(format!("reading the tokens: {e}")))?;
            let mut tokens = std::mem::take(&mut self.tokens);
            for (t, c) in tokens.iter_mut().zip(view.chunks_exact(4)) {
                *t = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            drop(view);
            self.tokens = tokens;
        }
        self.token_buffer().unmap();
        Ok((t_done, polls))
    }

    /// Wait (spinning on polls, or blocking) until `read_flag` (and
    /// `upload_flag` when `up`) is set. Returns when (seconds after `t0`)
    /// the wait ended and the polls it took.
    fn wait_flags(&self, ctx: &GpuContext, up: bool, t0: std::time::Instant) -> Result<(f64, u32)> {
        let mut polls = 0u32;
        if self.block {
            ctx.wait()?;
        } else {
            // Spin until both mappings have completed (their callbacks run inside poll).
            loop {
                ctx.device
                    .poll(wgpu::PollType::Poll)
                    .map_err(|e| Error::Gpu(format!("polling the device: {e}")))?;
                polls += 1;
                let done = self.read_flag.load(Ordering::Acquire) != PENDING
                    && (!up || self.upload_flag.load(Ordering::Acquire) != PENDING);
                if done {
                    break;
                }
                std::hint::spin_loop();
            }
            ctx.check_health()?;
        }
        Ok((t0.elapsed().as_secs_f64(), polls))
    }

    /// The round trip without the work: one submission of only the 4-byte
    /// token copy, the same mapping and wait as [`Head::step`]. Its wall
    /// time is the floor that the host path puts under every token.
    pub fn step_floor(&mut self, ctx: &GpuContext) -> Result<StepTiming> {
        self.round_trip(ctx, "head.floor", false, |_, _| {})
    }

    /// One round trip running only part of the head (`gemv`, `sampler`: which
    /// dispatches go in the compute pass; neither: an empty pass), waited
    /// for (spinning or blocking as [`Head::step`]) until the queue reports
    /// all submitted work done (`on_submitted_work_done`: a mapping would
    /// wait only for the work that used the mapped buffer); no readback.
    /// `bench head` splits a token's wall time into its parts this way. Not
    /// a token step (its token is meaningless).
    pub fn step_parts(
        &mut self,
        ctx: &GpuContext,
        gemv: bool,
        sampler: bool,
    ) -> Result<StepTiming> {
        self.round_trip(ctx, "head.parts", true, |h, enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("head.parts"),
                timestamp_writes: None,
            });
            if gemv {
                h.gemv.encode(&mut pass);
            }
            if sampler {
                h.sampler.encode(&mut pass);
            }
        })
    }

    /// A submission of what `body` records, then the token readback (copy,
    /// mapping, wait) as in [`Head::step`], or (`all_done`) a wait until
    /// the queue reports all submitted work done, timed.
    fn round_trip(
        &mut self,
        ctx: &GpuContext,
        label: &str,
        all_done: bool,
        body: impl FnOnce(&Self, &mut wgpu::CommandEncoder),
    ) -> Result<StepTiming> {
        let t0 = std::time::Instant::now();
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        body(self, &mut enc);
        let rb = (self.batch * 4) as u64;
        if !self.direct_read && !all_done {
            enc.copy_buffer_to_buffer(&self.sampler.tokens, 0, &self.readback, 0, rb);
        }
        let cmd = enc.finish();
        let recorded = t0.elapsed().as_secs_f64();
        ctx.queue.submit([cmd]);
        let submitted = t0.elapsed().as_secs_f64();
        let (done, polls) = if all_done {
            // Nothing is mapped: `read_flag` (what `wait_flags` waits on)
            // is set by the queue's work-done callback instead.
            self.read_flag.store(PENDING, Ordering::Release);
            let f = self.read_flag.clone();
            ctx.queue
                .on_submitted_work_done(move || f.store(MAPPED, Ordering::Release));
            self.wait_flags(ctx, false, t0)?
        } else {
            map(
                self.token_buffer(),
                wgpu::MapMode::Read,
                rb,
                &self.read_flag,
            );
            self.wait_and_read(ctx, false, t0)?
        };
        Ok(StepTiming {
            submitted,
            recorded,
            done,
            total: t0.elapsed().as_secs_f64(),
            polls,
        })
    }

    /// Set the hidden states (`batch × hidden` values) outside the token loop.
    pub fn set_hidden(&self, queue: &wgpu::Queue, x: &[f32]) -> Result<()> {
        self.gemv.write_x(queue, x)
    }

    /// Set the step counters of the draws (one per sequence).
    pub fn set_steps(&self, queue: &wgpu::Queue, steps: &[u64]) -> Result<()> {
        self.sampler.set_steps(queue, steps)
    }

    /// Change the sampling parameters (the same as `sampler.set_params`:
    /// the commands recorded ahead for the next token are re-recorded when
    /// the parameters they were made for differ).
    pub fn set_params(&mut self, queue: &wgpu::Queue, params: &SampleParams) -> Result<()> {
        self.sampler.set_params(queue, params)
    }

    /// One token per sequence: optionally a new hidden state (`batch × hidden`
    /// values), then one submission and a `4 · batch`-byte readback. With
    /// `gpu_time`, the compute pass is timed with timestamps (read back with
    /// the tokens) and its seconds returned.
    pub fn step(
        &mut self,
        ctx: &GpuContext,
        hidden: Option<&[f32]>,
        gpu_time: bool,
    ) -> Result<(&[u32], Option<f64>)> {
        let t0 = std::time::Instant::now();
        if let Some(x) = hidden {
            if self.upload_flag.load(Ordering::Acquire) != MAPPED {
                return Err(Error::Gpu(
                    "the hidden-state upload buffer is not mapped (a previous step failed)".into(),
                ));
            }
            self.gemv.pack_x(x, &mut self.scratch)?;
            self.upload
                .get_mapped_range_mut(..)
                .map_err(|e| Error::Gpu(format!("mapping the hidden-state upload: {e}")))?
                .copy_from_slice(&self.scratch);
            self.upload.unmap();
        }
        let timed = gpu_time && self.timer.is_some();
        let want_copy = hidden.is_some();
        // The commands recorded during the previous token's wait, if they fit.
        let cmd = match self.prepared.take() {
            Some((cb, copy, params))
                if copy == want_copy && !timed && params == self.sampler.params =>
            {
                cb
            }
            _ => self.record(ctx, want_copy, timed),
        };
        ctx.queue.submit([cmd]);
        let t_submit = t0.elapsed().as_secs_f64();
        let rb = (self.batch * 4) as u64;
        map(
            self.token_buffer(),
            wgpu::MapMode::Read,
            rb,
            &self.read_flag,
        );
        if hidden.is_some() {
            map(
                &self.upload,
                wgpu::MapMode::Write,
                self.upload.size(),
                &self.upload_flag,
            );
        }
        // Record the next token's commands (same kind of step, untimed) while the GPU works.
        self.prepared = Some((
            self.record(ctx, want_copy, false),
            want_copy,
            self.sampler.params,
        ));
        let t_recorded = t0.elapsed().as_secs_f64();
        let (t_done, polls) = self.wait_and_read(ctx, hidden.is_some(), t0)?;
        let secs = if timed {
            self.timer
                .as_mut()
                .map(|t| t.read(ctx))
                .transpose()?
                .and_then(|v| v.first().copied())
        } else {
            None
        };
        self.steps_done += 1;
        self.last_timing = StepTiming {
            submitted: t_submit,
            recorded: t_recorded,
            done: t_done,
            total: t0.elapsed().as_secs_f64(),
            polls,
        };
        Ok((&self.tokens, secs))
    }
}

//! Softmax on wgpu (`shaders/softmax_f32.wgsl`): numerically stable, any row
//! length, batched rows, optional temperature and log-softmax.
//!
//! One dispatch (`fused`): every block of `WG · E` elements computes the
//! row's maximum and sum of exponentials itself, from the whole row (in L2),
//! then writes its own outputs; for rows up to a few 10⁴ elements that beats
//! a second dispatch. Or two dispatches in one compute pass: `stats` writes
//! one partial (block max, block sum of exponentials, index of the first
//! block max) per block; `normalize` combines a row's partials with
//! online-softmax rescaling and writes the outputs. Either way a row of
//! 50257 values spreads over many workgroups.

use std::sync::Arc;

use crate::cpu::softmax::check_temperature;
use crate::error::{Error, Result};
use crate::wgpu::context::{Binding, GpuContext, Kernel, KernelSource, PooledBuffer};

/// Work split of the softmax kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SoftmaxTuning {
    /// Invocations per workgroup (power of two).
    pub wg: u32,
    /// Elements per invocation per block.
    pub e: u32,
    /// One dispatch (every block computes the row totals) instead of two.
    pub fused: bool,
    /// Subgroup reductions (`shaders/softmax_sg.wgsl`); devices without
    /// subgroups run the same split with workgroup-tree reductions.
    pub sg: bool,
}

impl SoftmaxTuning {
    /// The variants worth timing, the default first.
    pub fn candidates() -> Vec<SoftmaxTuning> {
        let t = |wg, e, fused| SoftmaxTuning {
            wg,
            e,
            fused,
            sg: false,
        };
        let g = |wg, e, fused| SoftmaxTuning {
            sg: true,
            ..t(wg, e, fused)
        };
        vec![
            g(128, 4, false),
            g(256, 4, false),
            g(128, 8, false),
            g(256, 8, false),
            g(1024, 4, true),
            g(1024, 8, true),
            t(1024, 4, true),
            t(1024, 8, true),
            t(512, 8, true),
            t(256, 16, true),
            t(256, 4, false),
            t(128, 4, false),
            t(512, 4, false),
        ]
    }

    pub fn block(&self) -> u32 {
        self.wg * self.e
    }

    pub(crate) fn check(&self, ctx: &GpuContext) -> Result<()> {
        if !self.wg.is_power_of_two() || self.wg < 32 || !(1..=64).contains(&self.e) {
            return Err(Error::Param(format!(
                "softmax tuning {self:?} out of range"
            )));
        }
        if self.wg > ctx.limits.max_compute_invocations_per_workgroup {
            return Err(Error::Gpu(format!(
                "softmax workgroup of {} exceeds the device's {} invocations",
                self.wg, ctx.limits.max_compute_invocations_per_workgroup
            )));
        }
        Ok(())
    }

    pub fn constants(&self, log: bool) -> Vec<(&'static str, f64)> {
        vec![
            ("WG", self.wg as f64),
            ("E", self.e as f64),
            ("LOG", log as u32 as f64),
        ]
    }
}

impl Default for SoftmaxTuning {
    fn default() -> Self {
        SoftmaxTuning::candidates()[0]
    }
}

const BINDINGS: &[Binding] = &[
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::ReadWrite,
    Binding::Uniform,
];

/// `shaders/lib/softmax_row.wgsl` + `shaders/softmax_sg.wgsl` (subgroup reductions), entry `stats`, `normalize` or `fused`.
pub fn source_sg(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "stats" => "softmax_sg.stats",
            "fused" => "softmax_sg.fused",
            _ => "softmax_sg.normalize",
        },
        source: concat!(
            include_str!("../../shaders/lib/softmax_row.wgsl"),
            include_str!("../../shaders/softmax_sg.wgsl")
        )
        .into(),
        entry,
        bindings: BINDINGS,
        features: wgpu::Features::SUBGROUP,
        // bounds come from wgpu's runtime checks unless WCODEC_GPU_CHECKS=0
        trusted: false,
    }
}

/// `shaders/lib/softmax_row.wgsl` + `shaders/softmax_f32.wgsl`, entry `stats`, `normalize` or `fused`.
pub fn source(entry: &'static str) -> KernelSource {
    KernelSource {
        name: match entry {
            "stats" => "softmax_f32.stats",
            "fused" => "softmax_f32.fused",
            _ => "softmax_f32.normalize",
        },
        source: concat!(
            include_str!("../../shaders/lib/softmax_row.wgsl"),
            include_str!("../../shaders/softmax_f32.wgsl")
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
    ld_out: u32,
    nb: u32,
    c: f32,
    inv_t: f32,
    _p: u32,
}

/// Options of a softmax.
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxOptions {
    pub temperature: f32,
    /// Write log-probabilities instead of probabilities.
    pub log: bool,
    pub tuning: SoftmaxTuning,
}

impl Default for SoftmaxOptions {
    fn default() -> Self {
        SoftmaxOptions {
            temperature: 1.0,
            log: false,
            tuning: SoftmaxTuning::default(),
        }
    }
}

/// A softmax over `rows` rows of `n` logits held in a device buffer.
pub struct Softmax {
    pub n: usize,
    pub rows: usize,
    /// Blocks per row.
    pub nb: u32,
    pub tuning: SoftmaxTuning,
    pub log: bool,
    /// `stats` and `normalize`, or `fused` twice.
    stats: Arc<Kernel>,
    norm: Arc<Kernel>,
    bind: wgpu::BindGroup,
    params: wgpu::Buffer,
    ld_in: u32,
    /// The input logits, when this softmax owns them (`rows × n` f32).
    pub input: Option<PooledBuffer>,
    /// Per-block partials: `rows × nb` × (max, sum, first index of max, 0).
    pub partials: PooledBuffer,
    /// The output: `rows × n` f32 (probabilities or log-probabilities).
    pub out: PooledBuffer,
}

impl std::fmt::Debug for Softmax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Softmax({}×{}, {:?}, {} blocks/row, log {})",
            self.rows, self.n, self.tuning, self.nb, self.log
        )
    }
}

impl Softmax {
    /// A softmax reading `logits` (`rows` rows of `n` values, row `r` at
    /// element `r · ld_in`), or its own input buffer when `logits` is `None`
    /// (then `ld_in = n`; fill it with [`Softmax::write_logits`]).
    pub fn new(
        ctx: &GpuContext,
        logits: Option<&wgpu::Buffer>,
        n: usize,
        rows: usize,
        ld_in: usize,
        opts: &SoftmaxOptions,
    ) -> Result<Softmax> {
        check_temperature(opts.temperature)?;
        opts.tuning.check(ctx)?;
        let mut tuning = opts.tuning;
        if tuning.sg && !ctx.has(wgpu::Features::SUBGROUP) {
            tuning.sg = false;
        }
        let opts = &SoftmaxOptions { tuning, ..*opts };
        let src = if tuning.sg { source_sg } else { source };
        if n == 0 || rows == 0 || ld_in < n {
            return Err(Error::Param(format!(
                "softmax of {rows} rows of {n} (stride {ld_in})"
            )));
        }
        let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
        let nb = n.div_ceil(opts.tuning.block() as usize);
        if nb > max || rows > max {
            return Err(Error::Gpu(format!(
                "softmax grid {nb}×{rows} exceeds the device's {max} workgroups per dimension"
            )));
        }
        use wgpu::BufferUsages as U;
        let in_bytes = ((rows - 1) * ld_in + n) as u64 * 4;
        let input = match logits {
            Some(b) if b.size() < in_bytes => {
                return Err(Error::Param(format!(
                    "logits buffer of {} bytes, {rows} rows of {n} need {in_bytes}",
                    b.size()
                )));
            }
            Some(_) => None,
            None => Some(ctx.buffer("softmax.in", in_bytes, U::STORAGE | U::COPY_DST)?),
        };
        let lim = ctx.limits.max_storage_buffer_binding_size;
        let out_bytes = (rows * n * 4) as u64;
        if in_bytes > lim || out_bytes > lim {
            return Err(Error::Gpu(format!(
                "softmax rows of {out_bytes} bytes exceed the binding limit {lim}"
            )));
        }
        let partials = ctx.buffer(
            "softmax.partials",
            (rows * nb * 16) as u64,
            U::STORAGE | U::COPY_SRC,
        )?;
        let out = ctx.buffer(
            "softmax.out",
            out_bytes,
            U::STORAGE | U::COPY_SRC | U::COPY_DST,
        )?;
        let params = ctx.create_buffer("softmax.params", 32, U::UNIFORM | U::COPY_DST)?;
        let consts = opts.tuning.constants(opts.log);
        let (stats, norm) = if opts.tuning.fused {
            let k = ctx.kernel(&src("fused"), &consts)?;
            (k.clone(), k)
        } else {
            (
                ctx.kernel(&src("stats"), &consts)?,
                ctx.kernel(&src("normalize"), &consts)?,
            )
        };
        let inbuf: &wgpu::Buffer = match (&input, logits) {
            (Some(b), _) => b,
            (None, Some(b)) => b,
            (None, None) => unreachable!("one of them is set above"),
        };
        let bind = stats.bind_group(
            &ctx.device,
            "softmax",
            &[
                inbuf.as_entire_buffer_binding(),
                partials.as_entire_buffer_binding(),
                out.as_entire_buffer_binding(),
                params.as_entire_buffer_binding(),
            ],
        );
        let s = Softmax {
            n,
            rows,
            nb: nb as u32,
            tuning: opts.tuning,
            log: opts.log,
            stats,
            norm,
            bind,
            params,
            ld_in: ld_in as u32,
            input,
            partials,
            out,
        };
        s.set_temperature(&ctx.queue, opts.temperature)?;
        ctx.check_health()?;
        Ok(s)
    }

    /// `log2(e) / T` as the kernels use it (computed in f32).
    pub fn exp2_scale(t: f32) -> f32 {
        std::f32::consts::LOG2_E / t
    }

    /// Change the temperature (a 32-byte upload).
    pub fn set_temperature(&self, queue: &wgpu::Queue, t: f32) -> Result<()> {
        check_temperature(t)?;
        let c = Self::exp2_scale(t);
        if !c.is_finite() {
            return Err(Error::Param(format!("temperature {t} is too small")));
        }
        let p = Params {
            n: self.n as u32,
            rows: self.rows as u32,
            ld_in: self.ld_in,
            ld_out: self.n as u32,
            nb: self.nb,
            c,
            inv_t: 1.0 / t,
            _p: 0,
        };
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&p));
        Ok(())
    }

    /// Fill the softmax's own input (`rows × n` values).
    pub fn write_logits(&self, queue: &wgpu::Queue, x: &[f32]) -> Result<()> {
        let Some(inp) = &self.input else {
            return Err(Error::Param(
                "this softmax reads an external logits buffer".into(),
            ));
        };
        if x.len() != self.rows * self.n {
            return Err(Error::Param(format!(
                "{} logits for {}×{}",
                x.len(),
                self.rows,
                self.n
            )));
        }
        queue.write_buffer(inp, 0, bytemuck::cast_slice(x));
        Ok(())
    }

    /// Record the softmax (one or two dispatches).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.stats.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.nb, self.rows as u32, 1);
        if !self.tuning.fused {
            pass.set_pipeline(&self.norm.pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            pass.dispatch_workgroups(self.nb, self.rows as u32, 1);
        }
    }

    /// One submission computing `out` from the logits.
    pub fn execute(&self, device: &wgpu::Device, queue: &wgpu::Queue) {
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("softmax"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("softmax"),
                timestamp_writes: None,
            });
            self.encode(&mut pass);
        }
        queue.submit([enc.finish()]);
    }

    /// Read the output back (`rows × n` values; blocking).
    pub fn read_out(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let b = ctx.read_buffer(&self.out, 0, (self.rows * self.n * 4) as u64)?;
        Ok(bytemuck::cast_slice(&b).to_vec())
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::wgpu::layout::{check_struct, rust_fields};

    #[test]
    fn params_match_the_wgsl() {
        let fields = rust_fields!(Params: n, rows, ld_in, ld_out, nb, c, inv_t, _p);
        let size = std::mem::size_of::<Params>();
        for src in [source("stats"), source_sg("stats")] {
            check_struct(&src.source, "Params", &fields, size).unwrap();
        }
    }
}

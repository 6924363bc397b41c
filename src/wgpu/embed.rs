//! Tied embeddings on wgpu (`shaders/embed_rows.wgsl`): the next hidden
//! state of each sequence is the row of the head's weights at the token just
//! sampled, copied on the device, so that a token loop can run ahead of the
//! host (see [`crate::wgpu::head::Head::step_pipelined`]).

use crate::error::{Error, Result};
use crate::wgpu::context::{Binding, GpuContext, Kernel, KernelSource};
use crate::wgpu::gemv::{Gemv, GemvWeights, VecDtype};
use crate::wgpu::kernels::WeightDtype;
use std::sync::Arc;

const BINDINGS: &[Binding] = &[
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::Uniform,
];

/// `shaders/embed_rows.wgsl`.
pub fn source() -> KernelSource {
    KernelSource {
        name: "embed_rows",
        source: include_str!("../../shaders/embed_rows.wgsl").into(),
        entry: "main",
        bindings: BINDINGS,
        features: wgpu::Features::empty(),
        // every index is clamped in the shader
        trusted: true,
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    row0: u32,
    rows: u32,
    words: u32,
    batch: u32,
}

/// Copies row `tokens[b]` of the weights into vector b of a GEMV's x.
pub struct Embed {
    kernel: Arc<Kernel>,
    dispatches: Vec<(wgpu::BindGroup, (u32, u32))>,
    _params: Vec<wgpu::Buffer>,
}

impl std::fmt::Debug for Embed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Embed({} row blocks)", self.dispatches.len())
    }
}

impl Embed {
    /// For `gemv` over `weights` (f16 weights with f16 x, or f32 with f32:
    /// a row of W is then a vector of x), reading the tokens from `tokens`
    /// (u32 per sequence).
    pub fn new(
        ctx: &GpuContext,
        weights: &GemvWeights,
        gemv: &Gemv,
        tokens: &wgpu::Buffer,
    ) -> Result<Embed> {
        let same = matches!(
            (weights.dtype, gemv.x_dtype),
            (WeightDtype::F16, VecDtype::F16) | (WeightDtype::F32, VecDtype::F32)
        );
        if !same || gemv.tuning.coop {
            return Err(Error::Param(format!(
                "tied embeddings need f16 weights with f16 x or f32 with f32 (SIMT GEMV); \
                 have {} weights, {} x{}",
                weights.dtype.name(),
                gemv.x_dtype.name(),
                if gemv.tuning.coop {
                    ", tensor cores"
                } else {
                    ""
                }
            )));
        }
        let words = weights.ld * weights.dtype.size() / 4;
        let batch = gemv.batch;
        if gemv.x_bytes() != batch * words * 4 || tokens.size() < (batch * 4) as u64 {
            return Err(Error::Param(format!(
                "x of {} bytes or tokens of {} bytes for {batch} rows of {words} words",
                gemv.x_bytes(),
                tokens.size()
            )));
        }
        let kernel = ctx.kernel(&source(), &[])?;
        let gx = words.div_ceil(256) as u32;
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        if gx > max || batch as u32 > max {
            return Err(Error::Gpu(format!(
                "embedding grid {gx}×{batch} exceeds the device's {max} workgroups per dimension"
            )));
        }
        use wgpu::BufferUsages as U;
        let mut dispatches = Vec::new();
        let mut params = Vec::new();
        for (row0, rows, buf) in weights.row_blocks() {
            let pr = Params {
                row0: row0 as u32,
                rows: rows as u32,
                words: words as u32,
                batch: batch as u32,
            };
            let pb = ctx.create_buffer(
                "embed.params",
                std::mem::size_of::<Params>() as u64,
                U::UNIFORM | U::COPY_DST,
            )?;
            ctx.queue.write_buffer(&pb, 0, bytemuck::bytes_of(&pr));
            let bg = kernel.bind_group(
                &ctx.device,
                "embed",
                &[
                    buf.as_entire_buffer_binding(),
                    tokens.as_entire_buffer_binding(),
                    gemv.x.as_entire_buffer_binding(),
                    pb.as_entire_buffer_binding(),
                ],
            );
            dispatches.push((bg, (gx, batch as u32)));
            params.push(pb);
        }
        ctx.check_health()?;
        Ok(Embed {
            kernel,
            dispatches,
            _params: params,
        })
    }

    /// Record the dispatches (one per row block) into an open compute pass.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        for (bg, (gx, gy)) in &self.dispatches {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }
}

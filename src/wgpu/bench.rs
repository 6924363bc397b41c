//! Measurements for `wcodec bench decode` and `wcodec bench load`: the
//! device copy bandwidth, resident decode timing with timestamp queries,
//! and wall-clock decodes including upload and readback.

use std::time::Instant;

use crate::error::{Error, Result};

use super::context::{GpuContext, GpuTimer};
use super::shaders;

/// Median of a non-empty list.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The device's copy bandwidth in GB/s (bytes read plus bytes written per
/// second), from a copy shader over `bytes` and from `copy_buffer_to_buffer`;
/// returns (shader, copy command) medians over `reps`, GPU-timed when the
/// device has timestamps, else wall-timed.
pub fn copy_bandwidth(ctx: &GpuContext, bytes: u64, reps: usize) -> Result<(f64, f64)> {
    use wgpu::BufferUsages as U;
    let bytes = (bytes
        .min(ctx.limits.max_storage_buffer_binding_size)
        .min(ctx.limits.max_buffer_size)
        / 16)
        * 16;
    if bytes < 1 << 20 {
        return Err(Error::Gpu("too little memory for a bandwidth probe".into()));
    }
    let src = ctx.create_buffer(
        "bench.copy.src",
        bytes,
        U::STORAGE | U::COPY_SRC | U::COPY_DST,
    )?;
    let dst = ctx.create_buffer(
        "bench.copy.dst",
        bytes,
        U::STORAGE | U::COPY_SRC | U::COPY_DST,
    )?;
    // fill with something that is not zero
    let pattern: Vec<u8> = (0..(1u32 << 20))
        .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
        .collect();
    let mut off = 0;
    while off < bytes {
        let n = (bytes - off).min(pattern.len() as u64);
        ctx.queue.write_buffer(&src, off, &pattern[..n as usize]);
        off += n;
    }
    let params = ctx.create_buffer("bench.copy.params", 16, U::STORAGE | U::COPY_DST)?;
    let n_vec4 = (bytes / 16) as u32;
    ctx.queue
        .write_buffer(&params, 0, bytemuck::cast_slice(&[n_vec4, 0, 0, 0]));
    let k = ctx.kernel(&shaders::copy_u32(), &[("WG", 256.0)])?;
    let bg = k.bind_group(
        &ctx.device,
        "bench.copy",
        &[
            src.as_entire_buffer_binding(),
            dst.as_entire_buffer_binding(),
            params.as_entire_buffer_binding(),
        ],
    );
    let groups = n_vec4
        .div_ceil(256 * 8)
        .clamp(1, ctx.limits.max_compute_workgroups_per_dimension);
    let mut timer = GpuTimer::new(ctx, 2);
    let mut shader_s = Vec::new();
    let mut copy_s = Vec::new();
    for rep in 0..reps + 1 {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let t0 = Instant::now();
        {
            let tw = timer.as_mut().and_then(|t| t.next_pass());
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bench.copy"),
                timestamp_writes: tw,
            });
            pass.set_pipeline(&k.pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        }
        if let Some(t) = timer.as_ref() {
            t.resolve(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        let wall = t0.elapsed().as_secs_f64();
        let gpu = match timer.as_mut() {
            Some(t) => t.read(ctx)?[0],
            None => wall,
        };
        // copy_buffer_to_buffer, wall-timed around a lone submission
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        let t0 = Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        let c = t0.elapsed().as_secs_f64();
        if rep > 0 {
            shader_s.push(gpu);
            copy_s.push(c);
        }
    }
    let check = ctx.read_buffer(&dst, bytes - 64, 64)?;
    let want = ctx.read_buffer(&src, bytes - 64, 64)?;
    if check != want {
        return Err(Error::Gpu("the copy probe copied wrong bytes".into()));
    }
    Ok((
        2.0 * bytes as f64 / median(&mut shader_s) / 1e9,
        2.0 * bytes as f64 / median(&mut copy_s) / 1e9,
    ))
}

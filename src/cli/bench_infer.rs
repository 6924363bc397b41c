//! Shared pieces of the inference benchmarks (`wcodec bench kernels`,
//! `wcodec bench head`): timing with timestamp queries (median of many runs),
//! copy bandwidth measured in the same run, random data drawn like real weights.

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::wgpu::context::{GpuContext, GpuTimer};

/// Summary of repeated timings, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Stats {
    pub median_us: f64,
    pub min_us: f64,
    pub p90_us: f64,
    pub runs: usize,
    /// True if timed by GPU timestamps, false if by the wall clock.
    pub timestamps: bool,
}

pub fn stats(secs: &[f64], timestamps: bool) -> Stats {
    let mut v: Vec<f64> = secs.iter().map(|s| s * 1e6).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return Stats::default();
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        median_us: at(0.5),
        min_us: v[0],
        p90_us: at(0.9),
        runs: v.len(),
        timestamps,
    }
}

/// Time `reps` compute passes, each recorded by `f(pass, rep)`, with GPU
/// timestamps around each pass (all in one submission, after `warmup` untimed
/// passes). Without TIMESTAMP_QUERY, each pass is its own submission timed by
/// the wall clock.
pub fn time_passes(
    ctx: &GpuContext,
    warmup: usize,
    reps: usize,
    f: impl FnMut(&mut wgpu::ComputePass<'_>, usize),
) -> Result<Stats> {
    time_passes_after(ctx, warmup, reps, f, None)
}

/// [`time_passes`], each timed pass preceded by an untimed pass recorded by
/// `before` (e.g. one that streams a large buffer, so that the timed kernel
/// starts with the caches as a preceding GEMV leaves them).
pub fn time_passes_after(
    ctx: &GpuContext,
    warmup: usize,
    reps: usize,
    mut f: impl FnMut(&mut wgpu::ComputePass<'_>, usize),
    before: Option<&dyn Fn(&mut wgpu::ComputePass<'_>)>,
) -> Result<Stats> {
    // Warm-up: `warmup` passes, then more until ~250 ms of GPU work has run
    // back to back, so that clocks have left their idle state. 30 ms was not
    // enough on the H100: after a CPU phase (e.g. the f64 reference of the
    // batch-8 GEMV) the first variants of a sweep timed at idle SM clocks,
    // 470 µs instead of 116-135 µs for batch 8 in the same sweep (memory-bound
    // batch-1 kernels hardly notice; compute-heavier ones run 3-5× slower).
    //
    // `n` untimed passes in one submission, numbered from `done`; the wall
    // seconds per pass from the submission to the end of the wait.
    let mut done = 0usize;
    let mut untimed = |n: usize, done: &mut usize| -> Result<f64> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("warmup"),
                timestamp_writes: None,
            });
            for i in 0..n {
                f(&mut pass, *done + i);
            }
        }
        let t1 = std::time::Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        *done += n;
        Ok(t1.elapsed().as_secs_f64() / n as f64)
    };
    let mut n = warmup.max(1);
    let t0 = std::time::Instant::now();
    while done < 100_000 {
        let per = untimed(n, &mut done)?;
        let left = 0.25 - t0.elapsed().as_secs_f64();
        if left <= 0.0 {
            break;
        }
        n = ((left / per.max(1e-7)).ceil() as usize)
            .clamp(1, (100_000 - done.min(99_999)).min(5000));
    }
    // Then ~50 ms chunks until a chunk's time per pass stops falling (within
    // 3 %), at most 2 s in all. (Aimed at the first-variant outliers seen on
    // the H100 after a long CPU phase, 305-469 µs against 114-170: it did not
    // remove them, nor did a thrown-away timed round, since dropped.)
    let mut prev = f64::INFINITY;
    while t0.elapsed().as_secs_f64() < 2.0 {
        let per = untimed(n, &mut done)?;
        if per >= 0.97 * prev {
            break;
        }
        prev = per;
        n = ((0.05 / per.max(1e-7)).ceil() as usize).clamp(1, 5000);
    }
    if let Some(mut timer) = GpuTimer::new(ctx, reps as u32) {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for i in 0..reps {
            if let Some(b) = before {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("before"),
                    timestamp_writes: None,
                });
                b(&mut pass);
            }
            let tw = timer.next_pass();
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed"),
                timestamp_writes: tw,
            });
            f(&mut pass, i);
        }
        timer.resolve(&mut enc);
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        return Ok(stats(&timer.read(ctx)?, true));
    }
    let mut secs = Vec::with_capacity(reps);
    for i in 0..reps {
        if let Some(b) = before {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            b(&mut enc.begin_compute_pass(&Default::default()));
            ctx.queue.submit([enc.finish()]);
            ctx.wait()?;
        }
        let t0 = std::time::Instant::now();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            f(&mut pass, i);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        secs.push(t0.elapsed().as_secs_f64());
    }
    Ok(stats(&secs, false))
}

/// One dispatch of `copy_u32.wgsl` over two buffers of its own: the copy
/// bandwidth's shader, the one-workgroup pass, and the cache flush.
pub struct CopyPass {
    kernel: std::sync::Arc<crate::wgpu::context::Kernel>,
    bind: wgpu::BindGroup,
    groups: u32,
    /// Bytes copied (a multiple of 16).
    pub bytes: u64,
    pub src: wgpu::Buffer,
    pub dst: wgpu::Buffer,
    _params: wgpu::Buffer,
}

impl CopyPass {
    /// Buffers of `want_bytes` (capped by the device's binding size, whole
    /// 16-byte words), zeroed.
    pub fn new(ctx: &GpuContext, label: &str, want_bytes: u64) -> Result<CopyPass> {
        use wgpu::BufferUsages as U;
        let lim = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        let bytes = (want_bytes.min(lim) / 16 * 16).max(16);
        let usage = U::STORAGE | U::COPY_SRC | U::COPY_DST;
        let src = ctx.create_buffer(&format!("{label}.src"), bytes, usage)?;
        let dst = ctx.create_buffer(&format!("{label}.dst"), bytes, usage)?;
        let params = ctx.create_buffer(&format!("{label}.params"), 16, U::STORAGE | U::COPY_DST)?;
        let n = (bytes / 16) as u32;
        ctx.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&[n, 0, 0, 0]));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&src, 0, None);
        ctx.queue.submit([enc.finish()]);
        let wg = 256u32;
        let kernel = ctx.kernel(&crate::wgpu::shaders::copy_u32(), &[("WG", wg as f64)])?;
        let bind = kernel.bind_group(
            &ctx.device,
            label,
            &[
                src.as_entire_buffer_binding(),
                dst.as_entire_buffer_binding(),
                params.as_entire_buffer_binding(),
            ],
        );
        let groups = n
            .div_ceil(wg * 8)
            .clamp(1, ctx.limits.max_compute_workgroups_per_dimension);
        Ok(CopyPass {
            kernel,
            bind,
            groups,
            bytes,
            src,
            dst,
            _params: params,
        })
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.groups, 1, 1);
    }
}

/// A pass that copies 64 MiB (read + write: more than the H100's 50 MB L2):
/// recorded before a timed kernel, it leaves the caches as a
/// weight-streaming GEMV does.
pub struct CacheFlush(CopyPass);

impl CacheFlush {
    pub fn new(ctx: &GpuContext) -> Result<CacheFlush> {
        Ok(CacheFlush(CopyPass::new(ctx, "bench.flush", 64 << 20)?))
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.0.encode(pass)
    }
}

/// Copy bandwidth (bytes read + bytes written per second), measured now.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct CopyBandwidth {
    pub bytes: u64,
    /// `copy_u32.wgsl`, a plain copy shader.
    pub shader_gbps: f64,
    pub shader: Stats,
    /// `copy_buffer_to_buffer` (vkCmdCopyBuffer), if the device can time it.
    pub device_gbps: Option<f64>,
    pub device: Option<Stats>,
    /// A timed pass with one workgroup copying 4 KiB: the fixed cost that
    /// every timed kernel pays (launch, timestamps), not subtracted anywhere.
    pub null_pass: Stats,
}

impl CopyBandwidth {
    /// The best copy figure measured (the roofline results are quoted against).
    pub fn best_gbps(&self) -> f64 {
        self.device_gbps.unwrap_or(0.0).max(self.shader_gbps)
    }
}

/// Copy bandwidth: the copy shader, a one-workgroup pass, and
/// `copy_buffer_to_buffer` where the device can time it.
pub fn copy_bandwidth(ctx: &GpuContext, want_bytes: u64, reps: usize) -> Result<CopyBandwidth> {
    use wgpu::BufferUsages as U;
    let copy = CopyPass::new(ctx, "bench.copy", want_bytes)?;
    let bytes = copy.bytes;
    let shader = time_passes(ctx, 3, reps, |pass, _| copy.encode(pass))?;
    // One workgroup copying 4 KiB.
    let small = CopyPass::new(ctx, "bench.copy.small", 4096)?;
    let null_pass = time_passes(ctx, 3, reps, |pass, _| small.encode(pass))?;
    let gb = |s: &Stats| 2.0 * bytes as f64 / (s.median_us * 1e-6) / 1e9;
    let mut out = CopyBandwidth {
        bytes,
        shader_gbps: gb(&shader),
        shader,
        device_gbps: None,
        device: None,
        null_pass,
    };
    let (src, dst) = (&copy.src, &copy.dst);
    if ctx.has(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS) {
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("bench.copy.ts"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * reps as u32,
        });
        let resolve = ctx.create_buffer(
            "bench.copy.resolve",
            16 * reps as u64,
            U::QUERY_RESOLVE | U::COPY_SRC,
        )?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, dst, 0, bytes);
        for i in 0..reps as u32 {
            enc.write_timestamp(&set, 2 * i);
            enc.copy_buffer_to_buffer(src, 0, dst, 0, bytes);
            enc.write_timestamp(&set, 2 * i + 1);
        }
        enc.resolve_query_set(&set, 0..2 * reps as u32, &resolve, 0);
        ctx.queue.submit([enc.finish()]);
        let raw = ctx.read_buffer(&resolve, 0, 16 * reps as u64)?;
        let period = ctx.queue.get_timestamp_period() as f64;
        let ts: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let secs: Vec<f64> = ts
            .chunks_exact(2)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * period * 1e-9)
            .collect();
        let s = stats(&secs, true);
        if s.median_us > 0.0 {
            out.device_gbps = Some(gb(&s));
            out.device = Some(s);
        }
    }
    Ok(out)
}

/// f32 → f16 bits (integer round-to-nearest-even), in parallel.
pub fn to_f16(v: &[f32]) -> Vec<u16> {
    v.par_iter()
        .map(|&x| crate::codec::quant::f32_to_f16_bits(x))
        .collect()
}

/// Per-row absmax int8 quantisation (the codec's `quant`), rows in parallel.
pub fn quantize_rows(w: &[f32], rows: usize, cols: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    if w.len() != rows * cols {
        return Err(Error::Param("quantize_rows: shape".into()));
    }
    let parts: Vec<(Vec<i8>, f32)> = w
        .par_chunks(cols)
        .map(|row| {
            let q = crate::codec::quant::quantize(row, 1, cols, 8, &Default::default())
                .expect("finite weights");
            (q.q.iter().map(|&b| b as i8).collect(), q.scales[0])
        })
        .collect();
    let mut q = Vec::with_capacity(rows * cols);
    let mut s = Vec::with_capacity(rows);
    for (r, sc) in parts {
        q.extend_from_slice(&r);
        s.push(sc);
    }
    Ok((q, s))
}

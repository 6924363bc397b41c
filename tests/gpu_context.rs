//! The GPU context on whatever adapter this machine has (lavapipe in CI):
//! kernels compile and run, the pipeline cache and buffer pool reuse, timers time.
//! Without an adapter every test prints a skip line and passes.

use wcodec::wgpu::context::{ContextOptions, GpuContext, GpuTimer, map_read};
use wcodec::wgpu::shaders;

fn ctx() -> Option<GpuContext> {
    match GpuContext::new(&ContextOptions::default()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("SKIP: no GPU adapter ({e})");
            None
        }
    }
}

#[test]
fn copy_kernel_copies_and_is_cached() {
    let Some(ctx) = ctx() else { return };
    let n = 100_003usize; // vec4 count, not a multiple of the workgroup
    let data: Vec<u32> = (0..4 * n as u32)
        .map(|i| i.wrapping_mul(2654435761))
        .collect();
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    use wgpu::BufferUsages as U;
    let src = ctx
        .buffer("src", bytes.len() as u64, U::STORAGE | U::COPY_DST)
        .unwrap();
    let dst = ctx
        .buffer(
            "dst",
            bytes.len() as u64,
            U::STORAGE | U::COPY_SRC | U::COPY_DST,
        )
        .unwrap();
    let params = ctx.buffer("params", 16, U::STORAGE | U::COPY_DST).unwrap();
    ctx.queue.write_buffer(&src, 0, bytes);
    ctx.queue
        .write_buffer(&params, 0, bytemuck::cast_slice(&[n as u32, 0, 0, 0]));
    let k = ctx.kernel(&shaders::copy_u32(), &[("WG", 64.0)]).unwrap();
    let k2 = ctx.kernel(&shaders::copy_u32(), &[("WG", 64.0)]).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&k, &k2),
        "the second request must hit the cache"
    );
    let k3 = ctx.kernel(&shaders::copy_u32(), &[("WG", 128.0)]).unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&k, &k3),
        "other constants are another pipeline"
    );
    let bg = k.bind_group(
        &ctx.device,
        "copy",
        &[
            src.as_entire_buffer_binding(),
            dst.as_entire_buffer_binding(),
            params.as_entire_buffer_binding(),
        ],
    );
    let mut timer = GpuTimer::new(&ctx, 1);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let tw = timer.as_mut().and_then(|t| t.next_pass());
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("copy"),
            timestamp_writes: tw,
        });
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(37, 1, 1);
    }
    if let Some(t) = &timer {
        t.resolve(&mut enc);
    }
    ctx.queue.submit([enc.finish()]);
    let out = ctx.read_buffer(&dst, 0, bytes.len() as u64).unwrap();
    assert_eq!(out, bytes);
    if let Some(t) = timer.as_mut() {
        let secs = t.read(&ctx).unwrap();
        assert_eq!(secs.len(), 1);
        assert!(secs[0] >= 0.0 && secs[0] < 10.0, "{secs:?}");
    }
    assert!(ctx.cached_kernels() >= 2);
}

#[test]
fn pool_reuses_buffers() {
    let Some(ctx) = ctx() else { return };
    use wgpu::BufferUsages as U;
    let (_, peak0) = ctx.pool_bytes();
    for _ in 0..10 {
        let a = ctx.buffer("a", 1 << 20, U::STORAGE).unwrap();
        let b = ctx.buffer("b", (1 << 20) - 100, U::STORAGE).unwrap();
        assert!(a.size() >= 1 << 20 && b.size() >= (1 << 20) - 100);
    }
    let (live, peak) = ctx.pool_bytes();
    assert!(
        peak - peak0 <= 2 * (1 << 20) + 4096,
        "peak grew to {peak}: the pool does not reuse"
    );
    assert_eq!(live, peak);
    ctx.trim_pool();
    assert!(ctx.pool_bytes().0 < live);
    let m = ctx.buffer("m", 64, U::MAP_READ | U::COPY_DST).unwrap();
    let _ = map_read(&ctx, &m, 64).unwrap();
}

#[test]
fn errors_are_errors_not_panics() {
    let Some(ctx) = ctx() else { return };
    let r = ctx.buffer(
        "huge",
        ctx.limits.max_buffer_size + 1,
        wgpu::BufferUsages::STORAGE,
    );
    assert!(r.is_err());
    let bad = wcodec::wgpu::KernelSource {
        name: "broken",
        source: "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }".into(),
        entry: "main",
        bindings: &[],
        features: wgpu::Features::empty(),
        trusted: false,
    };
    let e = ctx.kernel(&bad, &[]).unwrap_err().to_string();
    assert!(e.contains("broken"), "{e}");
}

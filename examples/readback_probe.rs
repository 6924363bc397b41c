//! Where the time of a large readback goes on this device: the copy into a
//! mapped-for-read buffer and the wait, then the host's reads of the mapped
//! range (one thread into a fresh Vec, one thread into touched memory, and
//! several threads), each repeated on a reused buffer.
//!
//!     cargo run --release --example readback_probe [MiB]

use std::time::Instant;

use rayon::prelude::*;
use wcodec::wgpu::context::{ContextOptions, GpuContext, map_read};

fn main() -> anyhow::Result<()> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(128);
    let size = mib << 20;
    let ctx = GpuContext::new(&ContextOptions::default())?;
    println!("device: {}; {mib} MiB", ctx.describe());
    use wgpu::BufferUsages as U;
    let src = ctx.create_buffer("probe.src", size, U::STORAGE | U::COPY_SRC | U::COPY_DST)?;
    let data: Vec<u8> = (0..size).map(|i| ((i * 2654435761) >> 13) as u8).collect();
    ctx.queue.write_buffer(&src, 0, &data);
    ctx.wait()?;
    let gbs = |t: f64| size as f64 / t / 1e9;
    let t0 = Instant::now();
    let dst = ctx.create_buffer("probe.dst", size, U::MAP_READ | U::COPY_DST)?;
    println!(
        "create MAP_READ buffer: {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let mut touched = vec![1u8; size as usize];
    for round in 0..3 {
        // the copy and the map
        let copy_and_map = || -> anyhow::Result<f64> {
            let t = Instant::now();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&src, 0, &dst, 0, size);
            ctx.queue.submit([enc.finish()]);
            let slot = std::sync::Arc::new(std::sync::Mutex::new(false));
            let s2 = slot.clone();
            dst.map_async(wgpu::MapMode::Read, 0..size, move |r| {
                *s2.lock().unwrap() = r.is_ok();
            });
            ctx.wait()?;
            anyhow::ensure!(*slot.lock().unwrap(), "map failed");
            Ok(t.elapsed().as_secs_f64())
        };
        let tm = copy_and_map()?;
        let t = Instant::now();
        let v = dst.get_mapped_range(..)?.to_vec();
        let t_vec = t.elapsed().as_secs_f64();
        dst.unmap();
        anyhow::ensure!(v == data, "readback differs");
        drop(v);
        copy_and_map()?;
        let t = Instant::now();
        touched.copy_from_slice(&dst.get_mapped_range(..)?);
        let t_one = t.elapsed().as_secs_f64();
        dst.unmap();
        copy_and_map()?;
        let t = Instant::now();
        {
            let view = dst.get_mapped_range(..)?;
            touched
                .par_chunks_mut(1 << 20)
                .zip(view.par_chunks(1 << 20))
                .for_each(|(d, s)| d.copy_from_slice(s));
        }
        let t_par = t.elapsed().as_secs_f64();
        dst.unmap();
        anyhow::ensure!(touched == data, "parallel readback differs");
        // the same copies between two host Vecs, for scale
        let t = Instant::now();
        let v2 = data.clone();
        let t_host = t.elapsed().as_secs_f64();
        std::hint::black_box(&v2);
        println!(
            "round {round}: copy + map + wait {:.2} ms ({:.1} GB/s); mapped -> fresh Vec {:.2} ms ({:.2} GB/s); \
             mapped -> touched Vec {:.2} ms ({:.2} GB/s); mapped -> touched, {} threads {:.2} ms ({:.2} GB/s); \
             host Vec clone {:.2} ms ({:.2} GB/s)",
            tm * 1e3,
            gbs(tm),
            t_vec * 1e3,
            gbs(t_vec),
            t_one * 1e3,
            gbs(t_one),
            rayon::current_num_threads(),
            t_par * 1e3,
            gbs(t_par),
            t_host * 1e3,
            gbs(t_host)
        );
    }
    let t = Instant::now();
    let v = map_read(&ctx, &dst, 64)?;
    std::hint::black_box(v);
    println!("small map_read: {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
    Ok(())
}

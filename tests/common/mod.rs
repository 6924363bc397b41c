//! Shared helpers of the GPU tests: the context (or a skip line), random data
//! drawn like real weights and activations, poison.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use wcodec::wgpu::context::{ContextOptions, GpuContext};

/// GPU tests of one binary run one at a time: on lavapipe (a CPU device) tests
/// in parallel only compete for the same cores, and run many times slower.
static SERIAL: Mutex<()> = Mutex::new(());

/// A context held by one test at a time.
pub struct Gpu {
    pub ctx: GpuContext,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Gpu {
    type Target = GpuContext;
    fn deref(&self) -> &GpuContext {
        &self.ctx
    }
}

/// The machine's best adapter, or `None` after printing a skip line.
pub fn ctx() -> Option<Gpu> {
    ctx_with(&ContextOptions::default())
}

/// A context with options (e.g. without subgroups), or `None` after a skip line.
pub fn ctx_with(opts: &ContextOptions) -> Option<Gpu> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    match GpuContext::new(opts) {
        Ok(c) => {
            eprintln!("adapter: {}", c.describe());
            Some(Gpu {
                ctx: c,
                _turn: turn,
            })
        }
        Err(e) => {
            eprintln!("SKIP: no GPU adapter ({e})");
            None
        }
    }
}

/// A small deterministic generator (SplitMix64) for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// `n` values ~ N(0, sigma²), none exactly zero.
    pub fn normals(&mut self, n: usize, sigma: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = (self.normal() * sigma) as f32;
                if v == 0.0 { sigma as f32 * 1e-3 } else { v }
            })
            .collect()
    }
}

/// Overwrite a buffer with NaN bytes (0xff) so that an output the kernel fails
/// to write is caught.
pub fn poison(ctx: &GpuContext, buf: &wgpu::Buffer) {
    ctx.queue
        .write_buffer(buf, 0, &vec![0xffu8; buf.size() as usize]);
}

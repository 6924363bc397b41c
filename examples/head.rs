//! A decoder head on the GPU, token by token: random f16 weights drawn like a
//! language model's output projection, a new hidden state each token, top-k 50
//! + top-p 0.9 sampling. Prints the tokens and the wall time per token.
//!
//!     cargo run --release --example head -- [VOCAB] [HIDDEN] [TOKENS] [BATCH]

use wcodec::codec::quant::f32_to_f16_bits;
use wcodec::cpu::gemv::Weights;
use wcodec::cpu::sample::SampleParams;
use wcodec::wgpu::context::{ContextOptions, GpuContext};
use wcodec::wgpu::gemv::{GemvOptions, GemvWeights, VecDtype};
use wcodec::wgpu::head::{AllocCounters, Head, HeadOptions};

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (vocab, hidden, tokens, batch) = (arg(1, 50257), arg(2, 2560), arg(3, 100), arg(4, 1));
    let ctx = GpuContext::new(&ContextOptions::default())?;
    println!("{}", ctx.describe());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut gauss = move || {
        // A sum of 4 uniforms: close enough to normal for a demo.
        let mut s = 0.0f32;
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s += (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        s * 1.7
    };
    let w: Vec<u16> = (0..vocab * hidden)
        .map(|_| f32_to_f16_bits(0.02 * gauss()))
        .collect();
    let weights = GemvWeights::upload(&ctx, &Weights::F16(&w), vocab, hidden, None)?;
    let opts = HeadOptions {
        gemv: GemvOptions {
            batch,
            x_dtype: VecDtype::F16,
            ..Default::default()
        },
        sample: SampleParams {
            temperature: 1.0,
            top_k: 50,
            top_p: 0.9,
            seed: 1,
        },
        ..Default::default()
    };
    let mut head = Head::new(&ctx, &weights, &opts)?;
    let hiddens: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..batch * hidden).map(|_| gauss()).collect())
        .collect();
    for i in 0..5 {
        head.step(&ctx, Some(&hiddens[i % 4]), false)?;
    }
    let before = AllocCounters::read(&ctx);
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    for i in 0..tokens {
        let (t, _) = head.step(&ctx, Some(&hiddens[i % 4]), false)?;
        out.push(t[0]);
    }
    let dt = t0.elapsed().as_secs_f64();
    let after = AllocCounters::read(&ctx);
    println!("first tokens: {:?}", &out[..out.len().min(16)]);
    println!(
        "{tokens} steps of {batch} sequence(s): {:.1} µs per step, {:.0} tokens/s; device allocations in the loop: {}",
        dt / tokens as f64 * 1e6,
        (tokens * batch) as f64 / dt,
        if before == after { "none" } else { "some" }
    );
    Ok(())
}

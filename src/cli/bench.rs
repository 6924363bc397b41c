//! `wcodec bench`.

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// GPU benchmarks: `kernels` (GEMV, compressed GEMV, softmax, sampling) or `head`.
    #[command(subcommand)]
    pub gpu: Option<crate::cli::bench_gpu::GpuBench>,
    /// Benchmark the CPU paths against zstd.
    #[arg(long)]
    pub cpu: bool,
}

pub fn run(a: &BenchArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(g) = &a.gpu {
        return crate::cli::bench_gpu::run(g, quiet);
    }
    anyhow::bail!("bench is not written yet")
}

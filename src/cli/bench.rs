//! `wcodec bench`.

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Benchmark the CPU paths against zstd.
    #[arg(long)]
    pub cpu: bool,
    /// GPU benchmarks (`decode`, `load`).
    #[command(subcommand)]
    pub gpu: Option<super::bench_gpu::GpuBench>,
}

pub fn run(a: &BenchArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(g) = &a.gpu {
        return super::bench_gpu::run(g, quiet);
    }
    anyhow::bail!("bench is not written yet")
}

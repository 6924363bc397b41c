//! `wcodec bench`.

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Benchmark the CPU paths against zstd.
    #[arg(long)]
    pub cpu: bool,
}

pub fn run(_a: &BenchArgs, _quiet: bool) -> anyhow::Result<()> {
    anyhow::bail!("bench is not written yet")
}

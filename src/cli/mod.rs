//! The `wcodec` command line.

pub mod bench;
pub mod bench_backends;
pub mod bench_gpu;
pub mod bench_head;
pub mod bench_infer;
pub mod bench_kernels;
pub mod bench_rd;
pub mod decode;
pub mod devices;
pub mod encode;
pub mod info;
pub mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wcodec",
    version,
    about = "A codec for neural-network weights with a bit-exact GPU decoder"
)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Encode a safetensors file.
    Encode(encode::EncodeArgs),
    /// Decode a .wcodec file to safetensors (with no input: the embedded sample).
    Decode(decode::DecodeArgs),
    /// Show per-tensor encoding, ratio, bits/weight, modes and SNR.
    Info(info::InfoArgs),
    /// Decode every tensor and check its checksum.
    Verify(verify::VerifyArgs),
    /// Benchmarks against zstd (CPU) and the GPU paths.
    Bench(bench::BenchArgs),
    /// List GPU adapters with their backend, features and limits.
    Devices(devices::DevicesArgs),
}

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Command::Encode(a) => encode::run(a, cli.quiet),
        Command::Decode(a) => decode::run(a, cli.quiet),
        Command::Info(a) => info::run(a),
        Command::Verify(a) => verify::run(a, cli.quiet),
        Command::Bench(a) => bench::run(a, cli.quiet),
        Command::Devices(a) => devices::run(a),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wcodec: error: {e:#}");
            1
        }
    }
}

/// A progress bar over bytes, hidden with `--quiet` or when stderr is not a terminal.
pub fn progress(total: u64, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

pub fn default_output(input: &std::path::Path, ext: &str) -> PathBuf {
    input.with_extension(ext)
}

pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

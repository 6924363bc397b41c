//! `wcodec encode`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::codec::encoder::EncodeOptions;
use crate::cpu::encode::encode_file;

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Input safetensors file.
    pub input: PathBuf,
    /// Output .wcodec file (default: the input with extension .wcodec).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Quantise float tensors of rank ≥ 2: `int8` (8 bits).
    #[arg(long, value_parser = ["int8"])]
    pub quant: Option<String>,
    /// Quantise float tensors of rank ≥ 2 to k bits (2..=8), per-row absmax.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=8))]
    pub bits: Option<u32>,
    /// Probability precision of the rANS tables (10, 11 or 12).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(10..=12))]
    pub prob_bits: u32,
}

pub fn run(a: &EncodeArgs, quiet: bool) -> anyhow::Result<()> {
    let out = a.output.clone().unwrap_or_else(|| super::default_output(&a.input, "wcodec"));
    let quant_bits = match (&a.quant, a.bits) {
        (Some(_), Some(b)) if b != 8 => bail!("--quant int8 and --bits {b} disagree"),
        (Some(_), _) => Some(8),
        (None, b) => b,
    };
    let opts = EncodeOptions { quant_bits, prob_bits: a.prob_bits, ..Default::default() };
    let total = std::fs::metadata(&a.input).map_err(|e| crate::Error::io(&a.input, e))?.len();
    let pb = super::progress(total, quiet, "encode");
    let t0 = std::time::Instant::now();
    let (tensors, rep) = encode_file(&a.input, &out, &opts, &|t| pb.inc(t.source_bytes() as u64))
        .with_context(|| format!("encoding {}", a.input.display()))?;
    pb.finish_and_clear();
    if !quiet {
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "encoded {} tensors: {} -> {} ({:.4}x) in {:.2} s ({:.0} MB/s) to {}",
            rep.tensors,
            super::human(rep.source_bytes),
            super::human(rep.file_bytes),
            rep.source_bytes as f64 / rep.file_bytes as f64,
            dt,
            rep.source_bytes as f64 / dt / 1e6,
            out.display()
        );
        if let Some(snr) = rep.quant_snr_db {
            println!("quantised to {} bits: overall SNR {snr:.2} dB", quant_bits.unwrap());
            for t in tensors.iter().filter(|t| t.quant.is_some()) {
                let q = t.quant.unwrap();
                println!(
                    "  {:<60} SNR {:>6.2} dB  max |err| {:.3e}",
                    t.name,
                    q.snr_db.unwrap_or(f64::INFINITY),
                    q.max_abs_err
                );
            }
        }
    }
    Ok(())
}

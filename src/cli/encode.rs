//! `wcodec encode`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::codec::encoder::{EncodeOptions, LossyOptions};
use crate::codec::lossy::Predictor;
use crate::codec::lossy_enc::LossyConfig;
use crate::codec::predict::Mode;
use crate::codec::ratecontrol::Target;
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
    /// Lossy coding of float tensors of rank ≥ 2 to an average of B bits per
    /// weight (the whole file: scales, tables, index, header and lossless
    /// tensors included; or each tensor's own bytes with --per-tensor).
    #[arg(long, value_name = "B", conflicts_with_all = ["quant", "bits", "snr", "lossy_step"])]
    pub bpw: Option<f64>,
    /// Lossy coding to an SNR of D dB (pooled over the lossy tensors, or in
    /// every tensor with --per-tensor).
    #[arg(long, value_name = "D", conflicts_with_all = ["quant", "bits", "lossy_step"])]
    pub snr: Option<f64>,
    /// Lossy coding at a fixed nominal step, relative to each tensor's RMS.
    #[arg(long, value_name = "F", conflicts_with_all = ["quant", "bits"])]
    pub lossy_step: Option<f64>,
    /// Meet --bpw or --snr in every tensor on its own.
    #[arg(long)]
    pub per_tensor: bool,
    /// Lossy tile types the encoder may choose from (SPATIAL always).
    #[arg(long, value_delimiter = ',', default_value = "spatial,dct8,dct4,dst4",
          value_parser = ["spatial", "dct8", "dct4", "dst4"])]
    pub lossy_modes: Vec<String>,
    /// Lossy predictors the encoder may choose from (NONE always).
    #[arg(long, value_delimiter = ',', default_value = "none,left,top",
          value_parser = ["none", "left", "top"])]
    pub predictors: Vec<String>,
    /// Probability precision of the rANS tables (10, 11 or 12).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(10..=12))]
    pub prob_bits: u32,
}

pub fn run(a: &EncodeArgs, quiet: bool) -> anyhow::Result<()> {
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| super::default_output(&a.input, "wcodec"));
    let quant_bits = match (&a.quant, a.bits) {
        (Some(_), Some(b)) if b != 8 => bail!("--quant int8 and --bits {b} disagree"),
        (Some(_), _) => Some(8),
        (None, b) => b,
    };
    let lossy = lossy_options(a)?;
    if lossy.is_none() && a.per_tensor {
        bail!("--per-tensor needs --bpw or --snr");
    }
    let opts = EncodeOptions {
        quant_bits,
        lossy,
        prob_bits: a.prob_bits,
        ..Default::default()
    };
    let total = std::fs::metadata(&a.input)
        .map_err(|e| crate::Error::io(&a.input, e))?
        .len();
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
        if let Some(l) = &rep.lossy {
            print_lossy(&tensors, &rep, l, &opts);
        } else if let Some(snr) = rep.quant_snr_db {
            println!(
                "quantised to {} bits: overall SNR {snr:.2} dB",
                quant_bits.unwrap()
            );
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

fn lossy_options(a: &EncodeArgs) -> anyhow::Result<Option<LossyOptions>> {
    let target = match (a.bpw, a.snr, a.lossy_step) {
        (Some(b), _, _) => Target::Bpw(b),
        (_, Some(d), _) => Target::SnrDb(d),
        (_, _, Some(f)) => Target::RelStep(f),
        _ => return Ok(None),
    };
    let target = target.validate()?;
    if a.per_tensor && matches!(target, Target::RelStep(_)) {
        bail!("--per-tensor needs --bpw or --snr");
    }
    let modes = a
        .lossy_modes
        .iter()
        .map(|m| match m.as_str() {
            "dct8" => Mode::Dct8,
            "dct4" => Mode::Dct4,
            "dst4" => Mode::Dst4,
            _ => Mode::Spatial,
        })
        .collect();
    let predictors = a
        .predictors
        .iter()
        .map(|p| match p.as_str() {
            "left" => Predictor::Left,
            "top" => Predictor::Top,
            _ => Predictor::None,
        })
        .collect();
    Ok(Some(LossyOptions {
        target,
        per_tensor: a.per_tensor,
        config: LossyConfig {
            modes,
            predictors,
            ..Default::default()
        },
    }))
}

/// Per tensor and overall: bits per weight, SNR, max |error|, tile types.
fn print_lossy(
    tensors: &[crate::codec::encoder::EncodedTensor],
    rep: &crate::cpu::encode::EncodeReport,
    l: &crate::codec::ratecontrol::ModelReport,
    opts: &EncodeOptions,
) {
    use crate::codec::Encoding;
    use crate::codec::encoder::EncodedPlane;
    println!(
        "  {:<56} {:<11} {:>7} {:>9} {:>10}  tiles",
        "tensor", "encoding", "bits/w", "SNR dB", "max |err|"
    );
    let mut max_err = 0f64;
    for t in tensors {
        let bpw = 8.0 * t.coded_bytes() as f64 / t.numel().max(1) as f64;
        let (snr, err) = match &t.lossy {
            Some(h) => {
                max_err = max_err.max(h.max_abs_err);
                (
                    h.snr_db.map_or("exact".into(), |s| format!("{s:.2}")),
                    format!("{:.3e}", h.max_abs_err),
                )
            }
            None => ("lossless".into(), "0".into()),
        };
        let mut modes = std::collections::BTreeMap::new();
        if t.encoding == Encoding::Lossy {
            if let EncodedPlane::Coded { plane, .. } = &t.planes[0] {
                for e in &plane.index {
                    *modes.entry(e.name()).or_insert(0usize) += 1;
                }
            }
        }
        let modes: Vec<String> = modes.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        println!(
            "  {:<56} {:<11} {:>7.3} {:>9} {:>10}  {}",
            t.name,
            t.encoding.name(),
            bpw,
            snr,
            err,
            modes.join(" ")
        );
    }
    let target = opts.lossy.as_ref().map(|o| o.target);
    println!(
        "lossy: {:.4} bits/weight over the whole file ({} bytes, {} weights), SNR {} dB over the lossy tensors, max |err| {max_err:.3e}",
        l.bpw,
        rep.file_bytes,
        rep.numel,
        l.snr_db.map_or("-".into(), |s| format!("{s:.3}")),
    );
    if let Some(s) = l.search {
        println!(
            "rate control: target {:?} {} with relative step {:.5} after {} encodes",
            target.unwrap(),
            if s.met {
                "met"
            } else {
                "NOT met (out of the lossy mode's range)"
            },
            s.rel_step,
            s.evals
        );
    }
}

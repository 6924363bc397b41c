//! `wcodec decode`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::codec::decoder::{decode_tensor, output_tensors, render};
use crate::cpu::decode::{DecodeOptions, decode_to_safetensors};
use crate::dtype::DType;
use crate::format::WcodecFile;

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Input .wcodec file; without one, the embedded sample is decoded and verified.
    pub input: Option<PathBuf>,
    /// Output safetensors file (default: the input with extension .safetensors,
    /// or wcodec-sample.safetensors for the sample).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output dtype: f32, f16 or bf16 cast float tensors; int8 writes quantised
    /// tensors as int8 plus `<name>.scale`. Default: each tensor's source dtype.
    #[arg(long, value_parser = ["f32", "f16", "bf16", "int8"])]
    pub dtype: Option<String>,
}

pub fn run(a: &DecodeArgs, quiet: bool) -> anyhow::Result<()> {
    let dtype = a.dtype.as_deref().map(|s| DType::parse_cli(s).expect("clap checked the value"));
    let opts = DecodeOptions { dtype, ..Default::default() };
    let (file, out, sample) = match &a.input {
        Some(p) => {
            let f = WcodecFile::open(p)?;
            (f, a.output.clone().unwrap_or_else(|| super::default_output(p, "safetensors")), false)
        }
        None => {
            let f = WcodecFile::from_bytes(crate::sample::SAMPLE.to_vec()).context("the embedded sample")?;
            (f, a.output.clone().unwrap_or_else(|| PathBuf::from("wcodec-sample.safetensors")), true)
        }
    };
    let total: u64 = file.tensors.iter().map(|t| t.source_bytes() as u64).sum();
    let pb = super::progress(total, quiet, "decode");
    let t0 = std::time::Instant::now();
    decode_to_safetensors(&file, &out, &opts, &|b| pb.inc(b as u64))
        .with_context(|| format!("decoding {}", a.input.as_ref().map_or("the embedded sample".into(), |p| p.display().to_string())))?;
    pb.finish_and_clear();
    let dt = t0.elapsed().as_secs_f64();
    if sample {
        verify_output(&file, &out, dtype)?;
    }
    if !quiet {
        let what = match &a.input {
            Some(p) => p.display().to_string(),
            None => format!("the embedded sample ({}, {} bytes)", crate::sample::SAMPLE_PATH, crate::sample::SAMPLE.len()),
        };
        println!(
            "decoded {} tensors from {what} on the cpu: {} in {:.3} s ({:.0} MB/s) to {}",
            file.tensors.len(),
            super::human(total),
            dt,
            total as f64 / dt / 1e6,
            out.display()
        );
        if sample {
            let mut by_enc = std::collections::BTreeMap::new();
            for t in &file.tensors {
                *by_enc.entry(t.encoding.name()).or_insert(0) += 1;
            }
            println!("  encodings: {by_enc:?}");
            println!("  verified: every tensor's checksum matches, and the written file reads back with the same bytes");
        }
    }
    Ok(())
}

/// Read `out` back and compare every written tensor with a fresh reference
/// decode (whose checksum is verified) rendered the same way.
fn verify_output(file: &WcodecFile, out: &std::path::Path, dtype: Option<DType>) -> anyhow::Result<()> {
    let bytes = std::fs::read(out).with_context(|| format!("reading back {}", out.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).context("the written file does not parse")?;
    for (t, e) in file.tensors.iter().enumerate() {
        let want = render(e, decode_tensor(file, t)?, dtype);
        for (o, w) in output_tensors(e, dtype).iter().zip(want) {
            let v = st.tensor(&o.name).with_context(|| format!("tensor {} missing from the output", o.name))?;
            if v.data() != w.as_slice() || v.shape() != o.shape.as_slice() {
                bail!("tensor {}: the written bytes differ from the reference decode", o.name);
            }
        }
    }
    Ok(())
}

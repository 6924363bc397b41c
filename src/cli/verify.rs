//! `wcodec verify`: decode every tensor and check it.
//!
//! * `wcodec verify FILE`: on the CPU, every checksum.
//! * `wcodec verify --backends cpu,wgpu,cuda FILE` (or `WCODEC_BACKEND`):
//!   every tensor decoded on each backend; per tensor a hash (XXH3-64 of the
//!   canonical bytes) per backend and a verdict. Any difference, between
//!   backends or against the stored checksum, exits non-zero and names the
//!   first differing tile and byte.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use rayon::prelude::*;

use crate::backend::{Backend, cpu_canonical, locate};
use crate::codec::checksum;
use crate::codec::decoder::decode_tensor;
use crate::format::WcodecFile;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The .wcodec file.
    pub file: PathBuf,
    /// Decode on each of these backends (comma-separated: cpu, wgpu, cuda,
    /// or all) and compare them byte for byte. Default: `WCODEC_BACKEND`,
    /// else the CPU checksum check.
    #[arg(long)]
    pub backends: Option<String>,
}

pub fn run(a: &VerifyArgs, quiet: bool) -> anyhow::Result<()> {
    let backends = match &a.backends {
        Some(s) => Some(Backend::parse_list(s)?),
        None => Backend::from_env()?,
    };
    match backends {
        Some(b) => cross(a, &b, quiet),
        None => cpu_only(a, quiet),
    }
}

fn cpu_only(a: &VerifyArgs, quiet: bool) -> anyhow::Result<()> {
    let file = WcodecFile::open(&a.file)?;
    let t0 = Instant::now();
    let results: Vec<_> = (0..file.tensors.len())
        .into_par_iter()
        .map(|t| decode_tensor(&file, t).map(|_| ()))
        .collect();
    let mut bad = 0;
    for (t, r) in results.iter().enumerate() {
        let e = &file.tensors[t];
        match r {
            Ok(()) if !quiet => println!(
                "ok    {:<60} {:<11} {:016x}",
                e.name,
                e.encoding.name(),
                e.checksum
            ),
            Ok(()) => {}
            Err(err) => {
                bad += 1;
                eprintln!("FAIL  {err}");
            }
        }
    }
    if bad > 0 {
        bail!(
            "{bad} of {} tensors failed verification in {}",
            file.tensors.len(),
            a.file.display()
        );
    }
    if !quiet {
        println!(
            "verified {} tensors in {:.3} s: all checksums match",
            file.tensors.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What one backend made of one tensor.
enum Got {
    Hash(u64),
    Unsupported(String),
    Failed(String),
}

fn cross(a: &VerifyArgs, backends: &[Backend], quiet: bool) -> anyhow::Result<()> {
    let file = WcodecFile::open(&a.file)?;
    let nt = file.tensors.len();
    let mut lives = Vec::new();
    for &b in backends {
        match b.open() {
            Ok(l) => {
                if !quiet {
                    println!("{b}: {}", l.describe());
                }
                lives.push(l);
            }
            Err(e) => bail!("backend {b} is not available: {e}"),
        }
    }
    // every backend decodes every tensor; only hashes are kept
    let mut got: Vec<Vec<Got>> = Vec::new();
    let mut secs = Vec::new();
    for l in &lives {
        let mut v: Vec<Got> = Vec::with_capacity(nt);
        let t0 = Instant::now();
        l.decode_each(&file, &mut |_, r| {
            v.push(match r {
                Ok(b) => Got::Hash(checksum(&b)),
                Err(crate::Error::Unsupported { msg, .. }) => Got::Unsupported(msg),
                Err(e) => Got::Failed(e.to_string()),
            });
            Ok(())
        })?;
        secs.push(t0.elapsed().as_secs_f64());
        got.push(v);
    }
    if !quiet {
        print!("{:<56} {:<11}", "tensor", "encoding");
        for b in backends {
            print!(" {:<16}", b.name());
        }
        println!(" verdict");
    }
    let mut bad = 0usize;
    let mut unsupported = vec![0usize; backends.len()];
    let mut first_bad: Option<String> = None;
    for (t, e) in file.tensors.iter().enumerate() {
        let mut verdict = String::from("ok");
        let mut diffs = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            match &got[i][t] {
                Got::Hash(h) if *h == e.checksum => {}
                Got::Hash(h) => {
                    // find the first differing byte against the CPU reference
                    let what = match (cpu_canonical(&file, t), lives[i].decode_one(&file, t)) {
                        (Ok(want), Ok(mine)) if checksum(&want) == e.checksum => {
                            match mine.iter().zip(&want).position(|(x, y)| x != y) {
                                Some(k) => format!(
                                    "{b} differs at byte {k}: {} (got {:#04x}, want {:#04x})",
                                    locate(&file, t, k),
                                    mine[k],
                                    want[k]
                                ),
                                None => {
                                    format!("{b} gives {} bytes, want {}", mine.len(), want.len())
                                }
                            }
                        }
                        (Ok(_), _) => format!(
                            "{b} hash {h:016x}, stored checksum {:016x} (the CPU reference does not match it either)",
                            e.checksum
                        ),
                        (Err(err), _) => format!("{b} hash {h:016x}; CPU: {err}"),
                    };
                    diffs.push(what);
                }
                Got::Unsupported(_) => unsupported[i] += 1,
                Got::Failed(m) => diffs.push(format!("{b}: {m}")),
            }
        }
        if !diffs.is_empty() {
            bad += 1;
            verdict = format!("DIFFERENT: {}", diffs.join("; "));
            if first_bad.is_none() {
                first_bad = Some(format!("tensor {}: {}", e.name, diffs.join("; ")));
            }
        } else if backends
            .iter()
            .enumerate()
            .any(|(i, _)| matches!(got[i][t], Got::Unsupported(_)))
        {
            verdict = "ok (where supported)".into();
        }
        if !quiet || !diffs.is_empty() {
            print!("{:<56} {:<11}", e.name, e.encoding.name());
            for (i, _) in backends.iter().enumerate() {
                let cell = match &got[i][t] {
                    Got::Hash(h) => format!("{h:016x}"),
                    Got::Unsupported(_) => "n/a".into(),
                    Got::Failed(_) => "error".into(),
                };
                print!(" {cell:<16}");
            }
            println!(" {verdict}");
        }
    }
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    if !quiet {
        for (i, b) in backends.iter().enumerate() {
            println!(
                "{b}: {} tensors decoded in {:.3} s{}",
                nt - unsupported[i],
                secs[i],
                if unsupported[i] > 0 {
                    format!(
                        "; {} not supported ({})",
                        unsupported[i],
                        got[i]
                            .iter()
                            .find_map(|g| match g {
                                Got::Unsupported(m) => Some(m.as_str()),
                                _ => None,
                            })
                            .unwrap_or("")
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if bad > 0 {
        bail!(
            "verdict: {bad} of {nt} tensors differ across {} in {}; first: {}",
            names.join(", "),
            a.file.display(),
            first_bad.unwrap_or_default()
        );
    }
    if !quiet {
        let skipped: usize = unsupported.iter().sum();
        println!(
            "verdict: {} agree byte for byte on all {nt} tensors{}, every hash the stored checksum",
            names.join(" = "),
            if skipped > 0 {
                " (where supported)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

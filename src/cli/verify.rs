//! `wcodec verify`.

use std::path::PathBuf;

use anyhow::bail;
use rayon::prelude::*;

use crate::codec::decoder::decode_tensor;
use crate::format::WcodecFile;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The .wcodec file.
    pub file: PathBuf,
}

pub fn run(a: &VerifyArgs, quiet: bool) -> anyhow::Result<()> {
    let file = WcodecFile::open(&a.file)?;
    let t0 = std::time::Instant::now();
    let results: Vec<_> = (0..file.tensors.len())
        .into_par_iter()
        .map(|t| decode_tensor(&file, t).map(|_| ()))
        .collect();
    let mut bad = 0;
    for (t, r) in results.iter().enumerate() {
        let e = &file.tensors[t];
        match r {
            Ok(()) if !quiet => println!("ok    {:<60} {:<11} {:016x}", e.name, e.encoding.name(), e.checksum),
            Ok(()) => {}
            Err(err) => {
                bad += 1;
                eprintln!("FAIL  {err}");
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {} tensors failed verification in {}", file.tensors.len(), a.file.display());
    }
    if !quiet {
        println!("verified {} tensors in {:.3} s: all checksums match", file.tensors.len(), t0.elapsed().as_secs_f64());
    }
    Ok(())
}

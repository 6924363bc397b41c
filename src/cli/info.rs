//! `wcodec info`.

use std::path::PathBuf;

use serde::Serialize;

use crate::codec::Encoding;
use crate::codec::predict::Mode;
use crate::format::WcodecFile;
use crate::format::reader::PlaneInfo;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// The .wcodec file.
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub encoding: String,
    pub source_bytes: usize,
    pub stored_bytes: usize,
    pub ratio: f64,
    pub bits_per_weight: f64,
    /// Tiles per mode, for coded planes.
    pub modes: std::collections::BTreeMap<String, usize>,
    pub tables: usize,
    pub snr_db: Option<f64>,
    /// For lossy: the largest |w − w'| and the encoder's relative step.
    pub max_abs_err: Option<f64>,
    pub rel_step: Option<f64>,
    pub quant_bits: Option<u32>,
    /// For quant: bytes of the coded integer plane, and its ratio to k-bit packing.
    pub q_plane_bytes: Option<usize>,
    pub ratio_vs_packed: Option<f64>,
}

#[derive(Serialize)]
pub struct FileInfo {
    pub file: String,
    pub file_bytes: usize,
    pub header_bytes: usize,
    pub source_bytes: usize,
    pub ratio: f64,
    pub tensors: Vec<TensorInfo>,
    /// Per encoding: (tensors, source bytes, stored bytes).
    pub by_encoding: std::collections::BTreeMap<String, (usize, usize, usize)>,
    pub quant_snr_db: Option<f64>,
    pub quant_ratio_vs_packed: Option<f64>,
    /// All elements of all tensors, and 8 × file bytes over them.
    pub numel: usize,
    pub bits_per_weight: f64,
    /// Pooled SNR over the lossy tensors.
    pub lossy_snr_db: Option<f64>,
    /// Tiles per mode over all lossy tensors (mode, with `+LEFT`/`+TOP` for a predictor).
    pub lossy_modes: std::collections::BTreeMap<String, usize>,
}

/// Display order of mode names: by mode code, then predictor.
pub fn mode_order(name: &str) -> (u8, String) {
    let base = name.split('+').next().unwrap_or(name);
    let code = Mode::ALL
        .iter()
        .chain(Mode::LOSSY.iter())
        .find(|m| m.name() == base)
        .map_or(255, |m| *m as u8);
    (code, name.to_string())
}

/// `NAME:count` pairs in display order.
pub fn modes_line(modes: &std::collections::BTreeMap<String, usize>) -> String {
    let mut v: Vec<(&String, &usize)> = modes.iter().collect();
    v.sort_by_key(|(k, _)| mode_order(k));
    v.iter()
        .map(|(k, c)| format!("{k}:{c}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn collect(file: &WcodecFile, name: &str) -> FileInfo {
    let mut tensors = Vec::new();
    let mut by_encoding = std::collections::BTreeMap::new();
    let (mut sig, mut noise, mut qbytes, mut packed) = (0f64, 0f64, 0usize, 0f64);
    let (mut lsig, mut lnoise) = (0f64, 0f64);
    let mut lossy_modes = std::collections::BTreeMap::new();
    for e in &file.tensors {
        let stored = e.stored_bytes();
        let mut modes = std::collections::BTreeMap::new();
        let mut tables = 0;
        let mut q_plane_bytes = None;
        for p in &e.planes {
            if let PlaneInfo::Rans {
                index, tables: t, ..
            } = p
            {
                tables += t.len();
                for ent in index {
                    *modes.entry(ent.name()).or_insert(0) += 1;
                    if ent.mode.is_lossy() {
                        *lossy_modes.entry(ent.name()).or_insert(0) += 1;
                    }
                }
                if e.encoding == Encoding::Quant {
                    q_plane_bytes = Some(p.stored_bytes());
                }
            }
        }
        let q = e.quant;
        let ratio_vs_packed = q
            .zip(q_plane_bytes)
            .map(|(q, b)| e.numel as f64 * q.bits as f64 / 8.0 / b as f64);
        if let (Some(q), Some(b)) = (q, q_plane_bytes) {
            let snr = q.snr_db.unwrap_or(f64::INFINITY);
            sig += q.signal;
            noise += if snr.is_finite() {
                q.signal / 10f64.powf(snr / 10.0)
            } else {
                0.0
            };
            qbytes += b;
            packed += e.numel as f64 * q.bits as f64 / 8.0;
        }
        if let Some(l) = e.lossy {
            lsig += l.signal;
            lnoise += l.snr_db.map_or(0.0, |s| l.signal / 10f64.powf(s / 10.0));
        }
        let ent = by_encoding
            .entry(e.encoding.name().to_string())
            .or_insert((0, 0, 0));
        ent.0 += 1;
        ent.1 += e.source_bytes();
        ent.2 += stored;
        tensors.push(TensorInfo {
            name: e.name.clone(),
            dtype: e.dtype.name().to_string(),
            shape: e.shape.clone(),
            encoding: e.encoding.name().to_string(),
            source_bytes: e.source_bytes(),
            stored_bytes: stored,
            ratio: e.source_bytes() as f64 / stored.max(1) as f64,
            bits_per_weight: 8.0 * stored as f64 / e.numel.max(1) as f64,
            modes,
            tables,
            snr_db: q.and_then(|q| q.snr_db).or(e.lossy.and_then(|l| l.snr_db)),
            max_abs_err: e.lossy.map(|l| l.max_abs_err),
            rel_step: e.lossy.map(|l| l.rel_step),
            quant_bits: q.map(|q| q.bits),
            q_plane_bytes,
            ratio_vs_packed,
        });
    }
    let source: usize = tensors.iter().map(|t| t.source_bytes).sum();
    let numel: usize = file.tensors.iter().map(|e| e.numel).sum();
    FileInfo {
        file: name.to_string(),
        file_bytes: file.file_len(),
        header_bytes: file.data_start,
        source_bytes: source,
        ratio: source as f64 / file.file_len() as f64,
        tensors,
        by_encoding,
        quant_snr_db: (sig > 0.0).then(|| crate::codec::quant::snr_db(sig, noise)),
        quant_ratio_vs_packed: (qbytes > 0).then(|| packed / qbytes as f64),
        numel,
        bits_per_weight: 8.0 * file.file_len() as f64 / numel.max(1) as f64,
        lossy_snr_db: (lsig > 0.0).then(|| crate::codec::quant::snr_db(lsig, lnoise)),
        lossy_modes,
    }
}

pub fn run(a: &InfoArgs) -> anyhow::Result<()> {
    let file = WcodecFile::open(&a.file)?;
    let info = collect(&file, &a.file.display().to_string());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!(
        "{:<52} {:<5} {:<14} {:<11} {:>10} {:>7} {:>6} {:>3}  {:<28} SNR",
        "tensor", "dtype", "shape", "encoding", "stored", "ratio", "bits/w", "tab", "modes (tiles)"
    );
    for t in &info.tensors {
        let modes = modes_line(&t.modes);
        let snr = match (t.quant_bits, t.snr_db, t.max_abs_err) {
            (Some(b), Some(s), _) => format!(
                "{s:.2} dB ({b}-bit, {:.3}x vs packed)",
                t.ratio_vs_packed.unwrap_or(0.0)
            ),
            (Some(b), None, _) => format!("exact ({b}-bit)"),
            (None, s, Some(e)) => format!(
                "{} (lossy, max |err| {e:.2e})",
                s.map_or("exact".to_string(), |s| format!("{s:.2} dB"))
            ),
            _ => String::new(),
        };
        println!(
            "{:<52} {:<5} {:<14} {:<11} {:>10} {:>7.4} {:>6.3} {:>3}  {:<28} {}",
            t.name,
            t.dtype,
            format!("{:?}", t.shape),
            t.encoding,
            t.stored_bytes,
            t.ratio,
            t.bits_per_weight,
            t.tables,
            modes,
            snr
        );
    }
    println!();
    for (enc, (n, src, st)) in &info.by_encoding {
        println!(
            "{enc:<12} {n:>4} tensors  {src:>12} -> {st:>12} bytes  {:.4}x",
            *src as f64 / (*st).max(1) as f64
        );
    }
    println!(
        "file: {} bytes (header {}), source tensors {} bytes, ratio {:.4}x, {:.4} bits per weight ({} weights)",
        info.file_bytes,
        info.header_bytes,
        info.source_bytes,
        info.ratio,
        info.bits_per_weight,
        info.numel
    );
    if let Some(s) = info.lossy_snr_db {
        println!("lossy tensors: SNR {s:.3} dB (pooled)");
    }
    if !info.lossy_modes.is_empty() {
        println!("lossy tiles by type: {}", modes_line(&info.lossy_modes));
    }
    if let Some(s) = info.quant_snr_db {
        println!(
            "quantised tensors: overall SNR {s:.2} dB, coded integers {:.4}x smaller than k-bit packing",
            info.quant_ratio_vs_packed.unwrap_or(0.0)
        );
    }
    Ok(())
}

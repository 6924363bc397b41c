//! `wcodec bench rd FILE.safetensors`: the rate–distortion table of a model.
//!
//! Bits per weight count every byte of the file (8 × file bytes over all
//! elements of all tensors); SNRs are pooled over the tensors the lossy
//! modes touch (float tensors of rank ≥ 2), which are the same tensors for
//! every method. Rows:
//!
//! * absmax INTk, fixed rate: k-bit packed codes plus per-row f32 scales,
//!   the other tensors as wcodec stores them losslessly;
//! * absmax INTk + wcodec's entropy coding: a real `--bits k` file;
//! * lossy (`--bpw B`), with every tile type, and with SPATIAL tiles only
//!   (transforms off, predictors on), to show what the transforms add;
//! * at equal SNR: `--snr` set to each absmax INTk's SNR;
//! * per tensor, at the step of the `--bpw 3.2` point (or the middle one):
//!   the tiles that chose a transform or a predictor, and what they save.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::codec::Encoding;
use crate::codec::encoder::{
    EncodeOptions, EncodedPlane, EncodedTensor, LossyOptions, encode_lossy, floats_to_f32,
};
use crate::codec::lossy_enc::LossyConfig;
use crate::codec::predict::Mode;
use crate::codec::quant::{quantize, snr_db};
use crate::codec::ratecontrol::{self, Target};
use crate::error::Location;
use crate::io::safetensors::SafeInput;

#[derive(clap::Args, Debug)]
pub struct RdArgs {
    /// The model (safetensors).
    pub file: PathBuf,
    /// Bits-per-weight targets of the lossy rows.
    #[arg(long, value_delimiter = ',', default_value = "2,2.4,2.8,3.2,4,5,6")]
    pub bpw: Vec<f64>,
    /// Bit widths of the absmax rows (2..=8).
    #[arg(long, value_delimiter = ',', default_value = "8,6,5,4,3",
          value_parser = clap::value_parser!(u32).range(2..=8))]
    pub bits: Vec<u32>,
    /// Skip the SPATIAL-only rows.
    #[arg(long)]
    pub no_spatial_only: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct RdRow {
    pub method: String,
    pub target: String,
    /// Bits per weight of the whole file.
    pub bpw: f64,
    pub snr_db: f64,
    pub max_abs_err: f64,
    /// Lossy tiles, and those that chose a transform / a predictor.
    pub tiles: Option<usize>,
    pub transform_tiles: Option<usize>,
    pub predicted_tiles: Option<usize>,
    /// For a lossy target: whether rate control met it.
    pub met: Option<bool>,
    pub seconds: f64,
}

#[derive(Serialize, Debug, Clone)]
pub struct EqualSnr {
    pub bits: u32,
    pub snr_db: f64,
    /// Bits per weight: absmax fixed (codes only, as usually quoted), absmax
    /// fixed with scales and the rest of the file, absmax + entropy coding
    /// (file), lossy (file).
    pub fixed_codes: f64,
    pub fixed_file: f64,
    pub entropy_file: f64,
    pub lossy_file: f64,
    pub lossy_snr_db: f64,
    /// Whether the lossy mode reached the SNR (it tops out near 38 dB on
    /// all-MiniLM-L6-v2: its finest grid is 1/127 of a tile's absmax).
    pub met: bool,
    /// 1 − lossy / fixed_codes, and 1 − lossy / entropy_file, in percent.
    pub saving_vs_fixed_pct: f64,
    pub saving_vs_entropy_pct: f64,
}

#[derive(Serialize, Debug, Clone)]
pub struct TensorGain {
    pub tensor: String,
    pub tiles: usize,
    pub transform_tiles: usize,
    pub predicted_tiles: usize,
    /// Bits per weight saved by transforms (all modes against SPATIAL only,
    /// at the same step), with the SNR difference priced at 6.02 dB per bit.
    pub saved_bpw: f64,
    pub snr_gain_db: f64,
    /// Energy compaction of the 8×8 DCT on the tensor's whole blocks:
    /// 10·log10 of the arithmetic over the geometric mean of the 64
    /// coefficient variances (0 dB: no compaction).
    pub dct8_coding_gain_db: f64,
}

/// [`TensorGain::dct8_coding_gain_db`] of a `rows × cols` tensor.
pub fn dct8_coding_gain(w: &[f32], rows: usize, cols: usize) -> f64 {
    use crate::codec::transform::Transform;
    let mut var = [0f64; 64];
    let (mut x, mut c) = ([0f64; 64], [0f64; 64]);
    let mut blocks = 0usize;
    for r0 in (0..rows - rows % 8).step_by(8) {
        for c0 in (0..cols - cols % 8).step_by(8) {
            for k in 0..64 {
                x[k] = w[(r0 + k / 8) * cols + c0 + k % 8] as f64;
            }
            Transform::Dct8.forward(&x, &mut c);
            for k in 0..64 {
                var[k] += c[k] * c[k];
            }
            blocks += 1;
        }
    }
    if blocks == 0 || var.iter().any(|&v| v <= 0.0) {
        return 0.0;
    }
    let am = var.iter().sum::<f64>() / 64.0;
    let gm = (var.iter().map(|v| v.ln()).sum::<f64>() / 64.0).exp();
    10.0 * (am / gm).log10()
}

#[derive(Serialize, Debug)]
pub struct RdReport {
    pub file: String,
    pub weights: usize,
    pub lossy_weights: usize,
    pub rows: Vec<RdRow>,
    pub equal_snr: Vec<EqualSnr>,
    pub rel_step: f64,
    pub gains: Vec<TensorGain>,
}

struct Model {
    src: SafeInput,
    numel: usize,
}

impl Model {
    fn inputs(&self) -> Vec<ratecontrol::Input<'_>> {
        self.src
            .tensors
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.dtype,
                    t.shape.as_slice(),
                    self.src.data(t),
                )
            })
            .collect()
    }
}

/// Tiles, transform tiles and predicted tiles of a lossy tensor.
fn tile_counts(t: &EncodedTensor) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    if t.encoding != Encoding::Lossy {
        return c;
    }
    if let EncodedPlane::Coded { plane, .. } = &t.planes[0] {
        for e in &plane.index {
            c.0 += 1;
            c.1 += (e.mode != Mode::Spatial) as usize;
            c.2 += e.name().contains('+') as usize;
        }
    }
    c
}

fn lossy_opts(target: Target, spatial_only: bool) -> EncodeOptions {
    let mut config = LossyConfig::default();
    if spatial_only {
        config.modes = vec![Mode::Spatial];
    }
    EncodeOptions {
        lossy: Some(LossyOptions {
            target,
            per_tensor: false,
            config,
        }),
        ..Default::default()
    }
}

fn run_encode(
    m: &Model,
    opts: &EncodeOptions,
    method: &str,
    target: String,
) -> anyhow::Result<(RdRow, Vec<EncodedTensor>, Option<f64>)> {
    let t0 = Instant::now();
    let (ts, rep) = ratecontrol::encode_model(&m.inputs(), opts, m.src.metadata.as_ref())?;
    let (mut sig, mut noise, mut max_err) = (0f64, 0f64, 0f64);
    let (mut tiles, mut tr, mut pr) = (0, 0, 0);
    for t in &ts {
        if let Some((s, n)) = t.quant_sums {
            sig += s;
            noise += n;
        }
        if let Some(l) = &t.lossy {
            max_err = max_err.max(l.max_abs_err);
        }
        if let Some(q) = &t.quant {
            max_err = max_err.max(q.max_abs_err);
        }
        let c = tile_counts(t);
        tiles += c.0;
        tr += c.1;
        pr += c.2;
    }
    let lossy = opts.lossy.is_some();
    let row = RdRow {
        method: method.to_string(),
        target,
        bpw: 8.0 * rep.file_bytes as f64 / m.numel as f64,
        snr_db: snr_db(sig, noise),
        max_abs_err: max_err,
        tiles: lossy.then_some(tiles),
        transform_tiles: lossy.then_some(tr),
        predicted_tiles: lossy.then_some(pr),
        met: rep.search.map(|s| s.met),
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((row, ts, rep.search.map(|s| s.rel_step)))
}

pub fn rd_bench(a: &RdArgs, quiet: bool) -> anyhow::Result<RdReport> {
    let say = |s: &str| {
        if !quiet {
            eprintln!("bench rd: {s}");
        }
    };
    let src = SafeInput::open(&a.file)?;
    let numel: usize = src
        .tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    let m = Model { src, numel };
    let lossy_tensors: Vec<usize> = (0..m.src.tensors.len())
        .filter(|&i| {
            let t = &m.src.tensors[i];
            ratecontrol::is_lossy_candidate(t.dtype, &t.shape)
        })
        .collect();
    anyhow::ensure!(
        !lossy_tensors.is_empty(),
        "{} has no float tensors of rank ≥ 2",
        a.file.display()
    );
    let lossy_weights: usize = lossy_tensors
        .iter()
        .map(|&i| m.src.tensors[i].shape.iter().product::<usize>())
        .sum();
    // The other tensors as stored losslessly.
    say("lossless encode of the other tensors");
    let (lossless, _) = ratecontrol::encode_model(&m.inputs(), &EncodeOptions::default(), None)?;
    let other_bytes: usize = lossless
        .iter()
        .enumerate()
        .filter(|(i, _)| !lossy_tensors.contains(i))
        .map(|(_, t)| t.coded_bytes())
        .sum();
    let mut rows = Vec::new();
    let mut absmax = Vec::new();
    for &k in &a.bits {
        say(&format!("absmax INT{k}"));
        let t0 = Instant::now();
        let (mut sig, mut noise, mut max_err, mut bytes) = (0f64, 0f64, 0f64, other_bytes as f64);
        for &i in &lossy_tensors {
            let t = &m.src.tensors[i];
            let w = floats_to_f32(t.dtype, m.src.data(t));
            let cols = w.len() / t.shape[0];
            let q = quantize(&w, t.shape[0], cols, k, &Location::tensor(&t.name, "data"))?;
            sig += q.signal;
            noise += q.noise;
            for r in 0..q.rows {
                for c in 0..cols {
                    let e = (w[r * cols + c] as f64
                        - crate::codec::quant::dequant(q.q[r * cols + c], q.scales[r]) as f64)
                        .abs();
                    max_err = max_err.max(e);
                }
            }
            bytes += (w.len() as f64 * k as f64 / 8.0).ceil() + 4.0 * q.rows as f64;
        }
        let snr = snr_db(sig, noise);
        rows.push(RdRow {
            method: format!("absmax INT{k}, fixed rate"),
            target: format!("{k} bits + scales"),
            bpw: 8.0 * bytes / numel as f64,
            snr_db: snr,
            max_abs_err: max_err,
            tiles: None,
            transform_tiles: None,
            predicted_tiles: None,
            met: None,
            seconds: t0.elapsed().as_secs_f64(),
        });
        let fixed_file = 8.0 * bytes / numel as f64;
        say(&format!("absmax INT{k} + entropy coding (--bits {k})"));
        let opts = EncodeOptions {
            quant_bits: Some(k),
            ..Default::default()
        };
        let (row, _, _) = run_encode(
            &m,
            &opts,
            &format!("absmax INT{k} + wcodec entropy coding"),
            format!("--bits {k}"),
        )?;
        absmax.push((k, snr, fixed_file, row.bpw));
        rows.push(row);
    }
    let mut rel_step = None;
    let pick = a
        .bpw
        .iter()
        .position(|&b| (b - 3.2).abs() < 1e-9)
        .unwrap_or(a.bpw.len() / 2);
    for (i, &b) in a.bpw.iter().enumerate() {
        say(&format!("lossy --bpw {b}"));
        let (row, _, step) = run_encode(
            &m,
            &lossy_opts(Target::Bpw(b), false),
            "lossy, all tile types",
            format!("--bpw {b}"),
        )?;
        rows.push(row);
        if i == pick {
            rel_step = step;
        }
        if !a.no_spatial_only {
            say(&format!("lossy --bpw {b}, SPATIAL only"));
            let (row, _, _) = run_encode(
                &m,
                &lossy_opts(Target::Bpw(b), true),
                "lossy, SPATIAL only",
                format!("--bpw {b}"),
            )?;
            rows.push(row);
        }
    }
    let mut equal_snr = Vec::new();
    for &(k, snr, fixed_file, entropy_file) in &absmax {
        say(&format!("lossy --snr {snr:.3} (absmax INT{k})"));
        let (row, _, _) = run_encode(
            &m,
            &lossy_opts(Target::SnrDb(snr), false),
            "lossy, all tile types",
            format!("--snr {snr:.3}"),
        )?;
        equal_snr.push(EqualSnr {
            bits: k,
            snr_db: snr,
            fixed_codes: k as f64,
            fixed_file,
            entropy_file,
            lossy_file: row.bpw,
            lossy_snr_db: row.snr_db,
            met: row.met.unwrap_or(false),
            saving_vs_fixed_pct: 100.0 * (1.0 - row.bpw / k as f64),
            saving_vs_entropy_pct: 100.0 * (1.0 - row.bpw / entropy_file),
        });
        rows.push(row);
    }
    // Where transforms win: per tensor, all tile types against SPATIAL only at one step.
    let mut gains = Vec::new();
    let step = rel_step.unwrap_or(0.5);
    say(&format!(
        "transform gains per tensor at relative step {step:.4}"
    ));
    for &i in &lossy_tensors {
        let t = &m.src.tensors[i];
        let w = floats_to_f32(t.dtype, m.src.data(t));
        let all = encode_lossy(
            &t.name,
            t.dtype,
            &t.shape,
            &w,
            step,
            &lossy_opts(Target::RelStep(step), false),
        )?;
        let sp = encode_lossy(
            &t.name,
            t.dtype,
            &t.shape,
            &w,
            step,
            &lossy_opts(Target::RelStep(step), true),
        )?;
        let n = w.len() as f64;
        let snr = |e: &EncodedTensor| {
            let (s, z) = e.quant_sums.unwrap();
            snr_db(s, z)
        };
        let snr_gain = snr(&all) - snr(&sp);
        let bits_saved = 8.0 * (sp.coded_bytes() as f64 - all.coded_bytes() as f64) / n;
        let c = tile_counts(&all);
        gains.push(TensorGain {
            tensor: t.name.clone(),
            tiles: c.0,
            transform_tiles: c.1,
            predicted_tiles: c.2,
            saved_bpw: bits_saved + snr_gain / 6.02,
            snr_gain_db: snr_gain,
            dct8_coding_gain_db: dct8_coding_gain(&w, t.shape[0], w.len() / t.shape[0]),
        });
    }
    Ok(RdReport {
        file: a.file.display().to_string(),
        weights: numel,
        lossy_weights,
        rows,
        equal_snr,
        rel_step: step,
        gains,
    })
}

pub fn run(a: &RdArgs, quiet: bool) -> anyhow::Result<()> {
    let r = rd_bench(a, quiet)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{}: {} weights, {} in float tensors of rank ≥ 2 (the lossy ones); bits per weight count the whole file\n",
        r.file, r.weights, r.lossy_weights
    );
    println!(
        "| method | setting | bits/weight (file) | SNR (dB) | max abs err | tiles: transform / predicted / all | time (s) |"
    );
    println!("|---|---|---:|---:|---:|---|---:|");
    for row in &r.rows {
        let tiles = match (row.tiles, row.transform_tiles, row.predicted_tiles) {
            (Some(a), Some(t), Some(p)) => format!("{t} / {p} / {a}"),
            _ => String::new(),
        };
        println!(
            "| {} | {}{} | {:.3} | {:.2} | {:.3e} | {} | {:.1} |",
            row.method,
            row.target,
            if row.met == Some(false) {
                " (not reached)"
            } else {
                ""
            },
            row.bpw,
            row.snr_db,
            row.max_abs_err,
            tiles,
            row.seconds
        );
    }
    println!("\nAt equal SNR (lossy `--snr` set to each absmax INTk's SNR):\n");
    println!(
        "| absmax | SNR (dB) | fixed: codes | fixed: file | + entropy coding: file | lossy: file | lossy vs fixed codes | lossy vs entropy-coded |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for e in &r.equal_snr {
        if !e.met {
            println!(
                "| INT{} | {:.2} | {:.3} | {:.3} | {:.3} | not reached: {:.2} dB at {:.3} | | |",
                e.bits,
                e.snr_db,
                e.fixed_codes,
                e.fixed_file,
                e.entropy_file,
                e.lossy_snr_db,
                e.lossy_file
            );
            continue;
        }
        println!(
            "| INT{} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | −{:.1} % | −{:.1} % |",
            e.bits,
            e.snr_db,
            e.fixed_codes,
            e.fixed_file,
            e.entropy_file,
            e.lossy_file,
            e.saving_vs_fixed_pct,
            e.saving_vs_entropy_pct
        );
    }
    println!(
        "\nTransforms per tensor at relative step {:.4} (all tile types against SPATIAL only, same step; SNR priced at 6.02 dB per bit):\n",
        r.rel_step
    );
    println!(
        "| tensor | tiles | transform tiles | predicted tiles | SNR gain (dB) | bits/weight saved | DCT8 coding gain (dB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (mut tiles, mut tr, mut pr, mut saved, mut n) = (0, 0, 0, 0f64, 0f64);
    for g in &r.gains {
        println!(
            "| {} | {} | {} | {} | {:+.3} | {:+.4} | {:.3} |",
            g.tensor,
            g.tiles,
            g.transform_tiles,
            g.predicted_tiles,
            g.snr_gain_db,
            g.saved_bpw,
            g.dct8_coding_gain_db
        );
        tiles += g.tiles;
        tr += g.transform_tiles;
        pr += g.predicted_tiles;
        saved += g.saved_bpw * g.tiles as f64;
        n += g.tiles as f64;
    }
    println!(
        "| all | {tiles} | {tr} | {pr} | | {:+.4} (tile-weighted) | |",
        saved / n.max(1.0)
    );
    Ok(())
}

//! The lossy encoding end to end: random tensors through the encoder, the
//! container and the reference decoder; the decoded pixels are exactly the
//! encoder's reconstruction, the stored error figures are exactly the
//! decoded weights' errors, and rate control meets its targets.

mod common;

use proptest::prelude::*;
use wcodec::codec::decoder::{decode_tensor, dequantize_lossy};
use wcodec::codec::encoder::{EncodeOptions, LossyOptions, encode_tensor, floats_to_f32, rms};
use wcodec::codec::lossy::{self, LossyParams, Predictor};
use wcodec::codec::lossy_enc::{self, LossyConfig};
use wcodec::codec::predict::Mode;
use wcodec::codec::ratecontrol::{self, BPW_TOL, SNR_TOL, Target};
use wcodec::codec::{Encoding, grid_for_shape};
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::format::reader::PlaneInfo;
use wcodec::format::writer::to_bytes;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Gaussian rows of different spreads, like a dense layer.
    Dense,
    /// Smooth along both axes plus a little noise, like position embeddings.
    Smooth,
    /// Dense with a few huge outliers.
    Outliers,
    /// All zeros, or one nonzero.
    Zero,
    Spike,
}

fn weights(kind: Kind, rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = common::Rng(seed);
    let mut w = common::f32_weights(&mut rng, rows, cols);
    match kind {
        Kind::Dense => {}
        Kind::Smooth => {
            for (k, v) in w.iter_mut().enumerate() {
                let (i, j) = ((k / cols) as f32, (k % cols) as f32);
                *v = 0.05 * ((i / 7.0).sin() + (j / 11.0).cos()) + 0.05 * *v;
            }
        }
        Kind::Outliers => {
            for _ in 0..3 {
                let k = rng.below(w.len() as u64) as usize;
                w[k] = if rng.below(2) == 0 { 3.0 } else { -5.0 };
            }
        }
        Kind::Zero => w.iter_mut().for_each(|v| *v = 0.0),
        Kind::Spike => {
            w.iter_mut().for_each(|v| *v = 0.0);
            let k = rng.below(w.len() as u64) as usize;
            w[k] = -0.25;
        }
    }
    w
}

fn opts(target: Target, force: Option<(Mode, Predictor)>) -> EncodeOptions {
    EncodeOptions {
        lossy: Some(LossyOptions {
            target,
            per_tensor: true,
            config: LossyConfig {
                force,
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// Encode, write, read, decode; check everything the format promises.
fn check(
    dtype: DType,
    shape: &[usize],
    w32: &[f32],
    o: &EncodeOptions,
) -> Result<wcodec::codec::encoder::EncodedTensor, TestCaseError> {
    let data = wcodec::codec::decoder::f32_to_bytes(w32, dtype);
    let w = floats_to_f32(dtype, &data); // what the encoder sees
    let t = encode_tensor("t", dtype, shape, &data, o)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(t.encoding, Encoding::Lossy);
    let file = WcodecFile::from_bytes(to_bytes(None, std::slice::from_ref(&t)).unwrap())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let out = decode_tensor(&file, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let e = &file.tensors[0];
    let g = grid_for_shape(shape);
    prop_assert_eq!(out.len(), w.len() + 4 * g.num_tiles());
    // Pixels in range; they are the encoder's reconstruction at its step.
    prop_assert!(out[..w.len()].iter().all(|&p| p != 0x80));
    let h = e.lossy.unwrap();
    let cfg = o.lossy.as_ref().unwrap().config.clone();
    let r = rms(&w);
    let delta = if r > 0.0 { h.rel_step * r } else { 1.0 };
    let direct = lossy_enc::encode(&w, g, delta, &cfg);
    prop_assert!(
        out[..w.len()] == direct.pixels[..],
        "decoded pixels differ from the encoder's"
    );
    let scales: Vec<u8> = direct.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    prop_assert!(out[w.len()..] == scales[..]);
    // The header's figures are the decoded weights' errors.
    let back = dequantize_lossy(e, &out);
    let (mut sig, mut noise, mut max) = (0f64, 0f64, 0f64);
    for (&a, &b) in w.iter().zip(&back) {
        let d = a as f64 - b as f64;
        sig += a as f64 * a as f64;
        noise += d * d;
        max = max.max(d.abs());
    }
    // (JSON keeps f64s to within an ulp: serde_json parses without `float_roundtrip`.)
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    prop_assert!(
        near(h.max_abs_err, max),
        "max err {} vs {}",
        h.max_abs_err,
        max
    );
    prop_assert!(near(h.signal, sig), "signal {} vs {}", h.signal, sig);
    match h.snr_db {
        Some(s) => prop_assert!((s - 10.0 * (sig / noise).log10()).abs() < 1e-9),
        None => prop_assert_eq!(noise, 0.0),
    }
    // A forced (mode, predictor) is used on every tile it fits (but all-zero
    // tiles, which are SPATIAL with scale 0).
    if let Some((fm, fp)) = cfg.force {
        if let PlaneInfo::Rans { index, .. } = &e.planes[0] {
            for (ti, ent) in index.iter().enumerate() {
                let tr = g.tile(ti);
                let zero = out[w.len() + 4 * ti..w.len() + 4 * ti + 4] == [0; 4];
                if lossy::fits(fm, tr.h, tr.w) && fm != Mode::Spatial && !zero {
                    prop_assert_eq!(ent.mode, fm);
                    prop_assert_eq!(ent.lossy_params().pred, fp);
                }
            }
        }
    }
    Ok(t)
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(4),
        Just(8),
        Just(63),
        Just(64),
        Just(65),
        Just(72),
        Just(128),
        1usize..200
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Dense),
        3 => Just(Kind::Smooth),
        1 => Just(Kind::Outliers),
        1 => Just(Kind::Zero),
        1 => Just(Kind::Spike),
    ]
}

fn force() -> impl Strategy<Value = Option<(Mode, Predictor)>> {
    prop_oneof![
        3 => Just(None),
        2 => (
            proptest::sample::select(Mode::LOSSY.to_vec()),
            proptest::sample::select(Predictor::ALL.to_vec())
        )
            .prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn lossy_tensors_round_trip_exactly(
        rows in dim(), cols in dim(), rank3 in any::<bool>(), kind in kind(),
        d in 0usize..3, step in 0.02f64..3.0, force in force(), seed: u64,
    ) {
        let dtype = [DType::F32, DType::F16, DType::BF16][d];
        let shape = if rank3 && cols % 2 == 0 { vec![rows, cols / 2, 2] } else { vec![rows, cols] };
        let w = weights(kind, rows, cols, seed);
        check(dtype, &shape, &w, &opts(Target::RelStep(step), force))?;
    }
}

/// Every tile type and predictor, forced, on tiles with edges, at several steps.
#[test]
fn every_tile_type_and_predictor_decodes_exactly() {
    for (m, p) in Mode::LOSSY
        .iter()
        .flat_map(|&m| Predictor::ALL.map(|p| (m, p)))
    {
        for (kind, step) in [
            (Kind::Dense, 0.3),
            (Kind::Smooth, 0.05),
            (Kind::Outliers, 1.0),
        ] {
            let w = weights(kind, 136, 72, 9);
            check(
                DType::F32,
                &[136, 72],
                &w,
                &opts(Target::RelStep(step), Some((m, p))),
            )
            .unwrap_or_else(|e| panic!("{m:?} {p:?} {kind:?}: {e}"));
        }
    }
}

/// The SNR falls and the size shrinks as the step grows; at a small step the
/// lossy mode is near its INT8-per-tile ceiling.
#[test]
fn quality_is_monotone_in_the_step() {
    let w = weights(Kind::Dense, 256, 192, 4);
    let data = wcodec::codec::decoder::f32_to_bytes(&w, DType::F32);
    let mut last = (f64::INFINITY, usize::MAX);
    for step in [0.01, 0.1, 0.3, 0.6, 1.2, 2.5] {
        let t = encode_tensor(
            "t",
            DType::F32,
            &[256, 192],
            &data,
            &opts(Target::RelStep(step), None),
        )
        .unwrap();
        let snr = t.lossy.unwrap().snr_db.unwrap();
        let bytes = t.coded_bytes();
        assert!(
            snr < last.0 && bytes < last.1,
            "step {step}: {snr} dB, {bytes} bytes after {last:?}"
        );
        last = (snr, bytes);
    }
}

/// Per-tensor targets are met from the right side, within the tolerances.
#[test]
fn per_tensor_targets_are_met() {
    let w = weights(Kind::Dense, 192, 256, 11);
    let data = wcodec::codec::decoder::f32_to_bytes(&w, DType::F32);
    for b in [1.5, 3.0, 5.0] {
        let t = encode_tensor(
            "t",
            DType::F32,
            &[192, 256],
            &data,
            &opts(Target::Bpw(b), None),
        )
        .unwrap();
        let bpw = 8.0 * t.coded_bytes() as f64 / t.numel() as f64;
        assert!(bpw <= b && bpw >= b * (1.0 - BPW_TOL), "--bpw {b}: {bpw}");
    }
    for d in [8.0, 20.0] {
        let t = encode_tensor(
            "t",
            DType::F32,
            &[192, 256],
            &data,
            &opts(Target::SnrDb(d), None),
        )
        .unwrap();
        let s = t.lossy.unwrap().snr_db.unwrap();
        assert!(s >= d && s <= d + SNR_TOL, "--snr {d}: {s}");
    }
}

/// Whole-model targets count every byte of the file, and leave the
/// non-lossy tensors lossless.
#[test]
fn whole_model_targets_count_every_byte() {
    let mut rng = common::Rng(3);
    let a = common::f32_bytes(&weights(Kind::Dense, 200, 300, 1));
    let b = wcodec::codec::decoder::f32_to_bytes(&weights(Kind::Smooth, 128, 64, 2), DType::BF16);
    let bias = common::f32_bytes(&common::f32_weights(&mut rng, 1, 300));
    let ids: Vec<u8> = (0..64u64).flat_map(|i| i.to_le_bytes()).collect();
    let inputs: Vec<ratecontrol::Input> = vec![
        ("a", DType::F32, &[200, 300], &a),
        ("b", DType::BF16, &[128, 64], &b),
        ("bias", DType::F32, &[300], &bias),
        ("ids", DType::I64, &[64], &ids),
    ];
    let numel = (200 * 300 + 128 * 64 + 300 + 64) as f64;
    for target in [Target::Bpw(2.5), Target::SnrDb(14.0)] {
        let mut o = opts(target, None);
        o.lossy.as_mut().unwrap().per_tensor = false;
        let (ts, rep) = ratecontrol::encode_model(&inputs, &o, None).unwrap();
        let bytes = to_bytes(None, &ts).unwrap();
        assert_eq!(bytes.len() as u64, rep.file_bytes);
        let bpw = 8.0 * bytes.len() as f64 / numel;
        assert!((bpw - rep.bpw).abs() < 1e-12);
        let s = rep.search.unwrap();
        assert!(s.met, "{target:?}: {s:?}");
        match target {
            Target::Bpw(t) => assert!(bpw <= t && bpw >= t * (1.0 - BPW_TOL), "{bpw}"),
            Target::SnrDb(d) => {
                let snr = rep.snr_db.unwrap();
                assert!(snr >= d && snr <= d + SNR_TOL, "{snr}")
            }
            _ => unreachable!(),
        }
        let enc: Vec<Encoding> = ts.iter().map(|t| t.encoding).collect();
        assert_eq!(enc[..2], [Encoding::Lossy, Encoding::Lossy]);
        assert!(!enc[2..].contains(&Encoding::Lossy));
        // One relative step for all lossy tensors.
        assert_eq!(ts[0].lossy.unwrap().rel_step, ts[1].lossy.unwrap().rel_step);
        let f = WcodecFile::from_bytes(bytes).unwrap();
        assert!(decode_tensor(&f, 2).unwrap() == bias && decode_tensor(&f, 3).unwrap() == ids);
        for i in 0..2 {
            decode_tensor(&f, i).unwrap();
        }
    }
}

/// Bad lossy options are errors, not panics.
#[test]
fn bad_lossy_options_and_inputs_are_errors() {
    let data = common::f32_bytes(&[1.0, f32::NAN, 0.0, 2.0]);
    let e = encode_tensor(
        "t",
        DType::F32,
        &[2, 2],
        &data,
        &opts(Target::RelStep(0.5), None),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("NaN") && e.to_string().contains("tensor \"t\""),
        "{e}"
    );
    let ok = common::f32_bytes(&[1.0, 0.5, 0.0, 2.0]);
    for t in [
        Target::RelStep(0.0),
        Target::RelStep(f64::NAN),
        Target::Bpw(-1.0),
        Target::SnrDb(f64::INFINITY),
    ] {
        assert!(
            encode_tensor("t", DType::F32, &[2, 2], &ok, &opts(t, None)).is_err(),
            "{t:?}"
        );
    }
    let mut o = opts(Target::RelStep(0.5), None);
    o.quant_bits = Some(4);
    assert!(encode_tensor("t", DType::F32, &[2, 2], &ok, &o).is_err());
}

/// The parameters' bit layout is the one docs/FORMAT.md gives.
#[test]
fn params_layout() {
    let p = LossyParams {
        step: 0x123,
        pred: Predictor::Top,
    };
    assert_eq!(p.pack(), 0x123 | 2 << 12);
}

/// Huge, tiny (subnormal) and mixed magnitudes still make valid files whose
/// scales are finite, at any step.
#[test]
fn extreme_magnitudes_make_valid_files() {
    let mut rng = common::Rng(8);
    let n = 72 * 80;
    let sets: Vec<Vec<f32>> = vec![
        (0..n)
            .map(|_| {
                if rng.below(2) == 0 {
                    f32::MAX
                } else {
                    -f32::MAX
                }
            })
            .collect(),
        (0..n)
            .map(|_| (rng.below(2001) as f32 - 1000.0) * 1e-45)
            .collect(),
        (0..n)
            .map(|k| {
                if k % 97 == 0 {
                    3e38
                } else {
                    1e-30 * (k % 7) as f32
                }
            })
            .collect(),
        (0..n).map(|k| f32::from_bits(1 + (k as u32 % 5))).collect(),
    ];
    for (i, w) in sets.iter().enumerate() {
        for step in [1e-3, 0.5, 60.0] {
            let o = opts(Target::RelStep(step), None);
            check(DType::F32, &[72, 80], w, &o)
                .unwrap_or_else(|e| panic!("set {i} step {step}: {e}"));
        }
        for t in [Target::Bpw(2.0), Target::SnrDb(20.0)] {
            let data = common::f32_bytes(w);
            let e = encode_tensor("t", DType::F32, &[72, 80], &data, &opts(t, None)).unwrap();
            WcodecFile::from_bytes(to_bytes(None, &[e]).unwrap()).unwrap();
        }
    }
}

/// A whole-model target on a model with nothing to code lossily encodes it
/// losslessly, without a search.
#[test]
fn whole_model_target_without_lossy_tensors() {
    let ids: Vec<u8> = (0..64u64).flat_map(|i| i.to_le_bytes()).collect();
    let bias = common::f32_bytes(&[0.5; 300]);
    let inputs: Vec<ratecontrol::Input> = vec![
        ("bias", DType::F32, &[300], &bias),
        ("ids", DType::I64, &[64], &ids),
    ];
    let mut o = opts(Target::Bpw(2.0), None);
    o.lossy.as_mut().unwrap().per_tensor = false;
    let (ts, rep) = ratecontrol::encode_model(&inputs, &o, None).unwrap();
    assert!(rep.search.is_none() && rep.snr_db.is_none());
    assert!(ts.iter().all(|t| t.encoding != Encoding::Lossy));
}

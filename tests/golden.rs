//! Golden vectors (image-png style): small `.wcodec` files committed under
//! `tests/golden/`, one per case. Each test checks that
//!
//! * the committed file decodes to the known input (old files keep decoding);
//! * encoding the same input today gives the same bytes: exact compressed
//!   sizes and an exact file checksum (the encoder is deterministic).
//!
//! After an intended format or encoder change, regenerate with
//! `WCODEC_BLESS=1 cargo test --release --test golden` and update the sizes.

mod common;

use wcodec::codec::checksum;
use wcodec::codec::decoder::decode_tensor;
use wcodec::codec::encoder::{EncodeOptions, LossyOptions, encode_tensor};
use wcodec::codec::lossy::Predictor;
use wcodec::codec::lossy_enc::LossyConfig;
use wcodec::codec::predict::Mode;
use wcodec::codec::ratecontrol::Target;
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::format::writer::to_bytes;

struct Case {
    name: &'static str,
    dtype: DType,
    shape: &'static [usize],
    opts: EncodeOptions,
    /// Exact size of the encoded file, and its XXH3-64.
    size: usize,
    xxh3: u64,
}

fn input(case: &Case) -> Vec<u8> {
    let n: usize = case.shape.iter().product();
    let seed = case
        .name
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    match case.dtype {
        DType::I8 | DType::U8 if case.name.contains("smooth") => {
            let cols = case.shape[1];
            let mut rng = common::Rng(seed);
            (0..n)
                .map(|k| {
                    ((k / cols) as i32 / 2 - (k % cols) as i32 / 3 + rng.below(3) as i32) as i8
                        as u8
                })
                .collect()
        }
        DType::I8 | DType::U8 => wcodec::synth::int8_weights(n, seed),
        DType::BF16 if !case.name.contains("lossy") => wcodec::synth::bf16_weights(n, seed),
        DType::F32 | DType::F16 | DType::BF16 if case.name.contains("lossy") => {
            let mut rng = common::Rng(seed);
            let cols = n / case.shape[0];
            let mut w = common::f32_weights(&mut rng, case.shape[0], cols);
            if case.name.contains("smooth") {
                for (k, v) in w.iter_mut().enumerate() {
                    let (i, j) = ((k / cols) as f32, (k % cols) as f32);
                    *v = 0.05 * ((i / 7.0).sin() + (j / 11.0).cos()) + 0.05 * *v;
                }
            }
            wcodec::codec::decoder::f32_to_bytes(&w, case.dtype)
        }
        DType::F32 | DType::F16 => {
            let mut rng = common::Rng(seed);
            let w = common::f32_weights(&mut rng, case.shape[0], n / case.shape[0]);
            wcodec::codec::decoder::f32_to_bytes(&w, case.dtype)
        }
        _ => unreachable!(),
    }
}

fn lossy(target: Target, force: Option<(Mode, Predictor)>) -> EncodeOptions {
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

fn cases() -> Vec<Case> {
    let d = EncodeOptions::default;
    vec![
        Case {
            name: "int8_65x63",
            dtype: DType::I8,
            shape: &[65, 63],
            opts: d(),
            size: 4415,
            xxh3: 0x811630e7039f8eb0,
        },
        Case {
            name: "int8_300x257",
            dtype: DType::I8,
            shape: &[300, 257],
            opts: d(),
            size: 71632,
            xxh3: 0xe2cc1f1bea245bbf,
        },
        Case {
            name: "int8_smooth_200x130",
            dtype: DType::I8,
            shape: &[200, 130],
            opts: d(),
            size: 8114,
            xxh3: 0x24c1249001139bf2,
        },
        Case {
            name: "u8_avg_64x100",
            dtype: DType::U8,
            shape: &[64, 100],
            opts: EncodeOptions {
                force_mode: Some(Mode::Avg),
                ..d()
            },
            size: 7056,
            xxh3: 0xfaa222c124af610a,
        },
        Case {
            name: "int8_planar_p10_70x70",
            dtype: DType::I8,
            shape: &[70, 70],
            opts: EncodeOptions {
                force_mode: Some(Mode::Planar),
                prob_bits: 10,
                ..d()
            },
            size: 5160,
            xxh3: 0xd0a16d05a1f7b054,
        },
        Case {
            name: "bf16_10000",
            dtype: DType::BF16,
            shape: &[10000],
            opts: d(),
            size: 14044,
            xxh3: 0x26cf82f2e9cdbd88,
        },
        Case {
            name: "f32_100x130",
            dtype: DType::F32,
            shape: &[100, 130],
            opts: d(),
            size: 43940,
            xxh3: 0xfd99d4593eacd78a,
        },
        Case {
            name: "f16_100x130",
            dtype: DType::F16,
            shape: &[100, 130],
            opts: d(),
            size: 22780,
            xxh3: 0x1cc2537a2589389b,
        },
        Case {
            name: "f32_quant4_128x200",
            dtype: DType::F32,
            shape: &[128, 200],
            opts: EncodeOptions {
                quant_bits: Some(4),
                ..d()
            },
            size: 12132,
            xxh3: 0x4f615f6d1af5018a,
        },
        Case {
            name: "bf16_quant2_65x65",
            dtype: DType::BF16,
            shape: &[65, 65],
            opts: EncodeOptions {
                quant_bits: Some(2),
                ..d()
            },
            size: 1416,
            xxh3: 0xc17f8682a0e58bf6,
        },
        Case {
            name: "f32_lossy_130x200",
            dtype: DType::F32,
            shape: &[130, 200],
            opts: lossy(Target::RelStep(0.5), None),
            size: 11068,
            xxh3: 0x88923bc00c184c08,
        },
        Case {
            name: "f32_lossy_smooth_136x72",
            dtype: DType::F32,
            shape: &[136, 72],
            opts: lossy(Target::RelStep(0.08), None),
            size: 2940,
            xxh3: 0x2bcc475644a0f769,
        },
        Case {
            name: "bf16_lossy_dct4_left_70x72",
            dtype: DType::BF16,
            shape: &[70, 72],
            opts: lossy(Target::RelStep(0.3), Some((Mode::Dct4, Predictor::Left))),
            size: 3512,
            xxh3: 0x0d5d162a37181c1c,
        },
        Case {
            name: "f16_lossy_smooth_dst4_top_64x64",
            dtype: DType::F16,
            shape: &[64, 64],
            opts: lossy(Target::RelStep(0.1), Some((Mode::Dst4, Predictor::Top))),
            size: 1900,
            xxh3: 0xc8f094d90a10063f,
        },
        Case {
            name: "f32_lossy_smooth_dct8_72x136",
            dtype: DType::F32,
            shape: &[72, 136],
            opts: lossy(Target::RelStep(0.1), Some((Mode::Dct8, Predictor::None))),
            size: 2664,
            xxh3: 0x0966e870db343f52,
        },
        Case {
            name: "f32_lossy_bpw3_100x130",
            dtype: DType::F32,
            shape: &[100, 130],
            opts: lossy(Target::Bpw(3.0), None),
            size: 5516,
            xxh3: 0xd591b180bc79d4aa,
        },
    ]
}

#[test]
fn golden_files_decode_and_reencode_identically() {
    let bless = std::env::var_os("WCODEC_BLESS").is_some();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut report = Vec::new();
    for case in cases() {
        let data = input(&case);
        let t = encode_tensor(case.name, case.dtype, case.shape, &data, &case.opts).unwrap();
        let bytes = to_bytes(None, std::slice::from_ref(&t)).unwrap();
        let path = dir.join(format!("{}.wcodec", case.name));
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with WCODEC_BLESS=1)", path.display()));
        // The committed file decodes to the input (for quant: to the codes the quantiser makes).
        let f = WcodecFile::from_bytes(golden.clone()).unwrap();
        let out = decode_tensor(&f, 0).unwrap();
        let fresh = decode_tensor(&WcodecFile::from_bytes(bytes.clone()).unwrap(), 0).unwrap();
        if case.opts.quant_bits.is_none() && case.opts.lossy.is_none() {
            assert!(
                out == data,
                "{}: the golden file no longer decodes to its input",
                case.name
            );
        }
        assert_eq!(
            checksum(&out),
            checksum(&fresh),
            "{}: decoded bytes changed",
            case.name
        );
        report.push(format!(
            "{}: {} bytes, xxh3 {:016x}",
            case.name,
            bytes.len(),
            checksum(&bytes)
        ));
        assert!(
            golden == bytes,
            "{}: the encoder's output changed ({} bytes now, {} golden)",
            case.name,
            bytes.len(),
            golden.len()
        );
        if bless {
            // Blessing writes the files; the sizes are then copied from the report.
            eprintln!("{}", report.last().unwrap());
            continue;
        }
        assert_eq!(
            (bytes.len(), checksum(&bytes)),
            (case.size, case.xxh3),
            "{}: exact size and checksum",
            case.name
        );
    }
    eprintln!("{}", report.join("\n"));
}

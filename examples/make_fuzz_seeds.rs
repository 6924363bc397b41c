//! Write small valid `.wcodec` files as the fuzzers' seed corpus (fuzz/seeds/).
use wcodec::codec::encoder::{EncodeOptions, LossyOptions, encode_tensor};
use wcodec::codec::lossy::Predictor;
use wcodec::codec::lossy_enc::LossyConfig;
use wcodec::codec::predict::Mode;
use wcodec::codec::ratecontrol::Target;
use wcodec::dtype::DType;

fn lossy(force: Option<(Mode, Predictor)>) -> EncodeOptions {
    EncodeOptions {
        lossy: Some(LossyOptions {
            target: Target::RelStep(0.4),
            per_tensor: false,
            config: LossyConfig {
                force,
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

fn main() -> anyhow::Result<()> {
    let dir = std::path::Path::new("fuzz/seeds");
    std::fs::create_dir_all(dir)?;
    let int8 = wcodec::synth::int8_weights(70 * 90, 3);
    let bf16 = wcodec::synth::bf16_weights(1000, 4);
    let f32b: Vec<u8> = bf16.chunks(2).flat_map(|c| [0, 0, c[0], c[1]]).collect();
    let cases: Vec<(&str, Vec<wcodec::codec::encoder::EncodedTensor>)> = vec![
        (
            "int8",
            vec![encode_tensor(
                "a",
                DType::I8,
                &[70, 90],
                &int8,
                &EncodeOptions::default(),
            )?],
        ),
        (
            "avg",
            vec![encode_tensor(
                "a",
                DType::I8,
                &[70, 90],
                &int8,
                &EncodeOptions {
                    force_mode: Some(Mode::Avg),
                    ..Default::default()
                },
            )?],
        ),
        (
            "planar",
            vec![encode_tensor(
                "a",
                DType::U8,
                &[5, 900],
                &int8[..4500],
                &EncodeOptions {
                    force_mode: Some(Mode::Planar),
                    ..Default::default()
                },
            )?],
        ),
        (
            "bf16",
            vec![encode_tensor(
                "b",
                DType::BF16,
                &[1000],
                &bf16,
                &EncodeOptions::default(),
            )?],
        ),
        (
            "f32_quant",
            vec![
                encode_tensor(
                    "q",
                    DType::F32,
                    &[20, 50],
                    &f32b,
                    &EncodeOptions {
                        quant_bits: Some(3),
                        ..Default::default()
                    },
                )?,
                encode_tensor(
                    "r",
                    DType::I64,
                    &[2],
                    &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
                    &EncodeOptions::default(),
                )?,
            ],
        ),
        (
            "f32",
            vec![encode_tensor(
                "f",
                DType::F32,
                &[1000],
                &f32b,
                &EncodeOptions::default(),
            )?],
        ),
        (
            "lossy",
            vec![
                encode_tensor("l", DType::F32, &[20, 50], &f32b, &lossy(None))?,
                encode_tensor(
                    "t",
                    DType::F32,
                    &[16, 60],
                    &f32b[..16 * 60 * 4],
                    &lossy(Some((Mode::Dct4, Predictor::Left))),
                )?,
            ],
        ),
    ];
    for (name, t) in cases {
        let b = wcodec::format::writer::to_bytes(None, &t)?;
        std::fs::write(dir.join(format!("{name}.wcodec")), &b)?;
        println!("{name}: {} bytes", b.len());
    }
    Ok(())
}

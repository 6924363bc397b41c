//! Bad input: truncation at every byte and every section boundary, flipped
//! bytes in every part of a file, wrong magic and version, absurd shapes,
//! offsets and header lengths. Each gives a clear error; none panics, hangs or
//! allocates beyond what the file's size justifies; stream corruption is
//! caught and names the tensor.

mod common;

use serde_json::Value;
use wcodec::codec::decoder::decode_tensor;
use wcodec::codec::encoder::{EncodeOptions, LossyOptions, encode_tensor};
use wcodec::codec::lossy::Predictor;
use wcodec::codec::lossy_enc::LossyConfig;
use wcodec::codec::predict::Mode;
use wcodec::codec::ratecontrol::Target;
use wcodec::dtype::DType;
use wcodec::error::Error;
use wcodec::format::WcodecFile;
use wcodec::format::reader::PlaneInfo;
use wcodec::format::writer::to_bytes;

/// A small file with every encoding: int8 (2-D, predicted), float-split
/// (BF16 and F32), quant, raw, lossy (chosen tile types, and forced DCT8+TOP
/// with edge tiles too short for 8×8 blocks).
fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut rng = common::Rng(42);
    let int8 = common::int8_weights(&mut rng, 70 * 90, 12.0);
    let smooth: Vec<u8> = (0..64 * 64)
        .map(|k| ((k / 64) / 2 + (rng.below(3) as i32)) as i8 as u8)
        .collect();
    let w = common::f32_weights(&mut rng, 40, 100);
    let f32b = common::f32_bytes(&w);
    let bf16 = wcodec::codec::decoder::f32_to_bytes(&w, DType::BF16);
    let raw: Vec<u8> = (0..64).map(|i| i as u8).collect();
    let q = EncodeOptions {
        quant_bits: Some(4),
        ..Default::default()
    };
    let d = EncodeOptions::default();
    let tensors = vec![
        encode_tensor("int8", DType::I8, &[70, 90], &int8, &d).unwrap(),
        encode_tensor("smooth", DType::I8, &[64, 64], &smooth, &d).unwrap(),
        encode_tensor("f32", DType::F32, &[40, 100], &f32b, &d).unwrap(),
        encode_tensor("bf16", DType::BF16, &[4000], &bf16, &d).unwrap(),
        encode_tensor("quant", DType::F32, &[40, 100], &f32b, &q).unwrap(),
        encode_tensor("ids", DType::I64, &[8], &raw, &d).unwrap(),
        encode_tensor("lossy", DType::F32, &[40, 100], &f32b, &lossy(None)).unwrap(),
        encode_tensor(
            "lossy_dct",
            DType::BF16,
            &[70, 72],
            &smooth_bf16(70, 72),
            &lossy(Some((Mode::Dct8, Predictor::Top))),
        )
        .unwrap(),
    ];
    let canon = tensors
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let f = WcodecFile::from_bytes(to_bytes(None, &tensors).unwrap()).unwrap();
            decode_tensor(&f, i).unwrap()
        })
        .collect();
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), Value::String("pt".into()));
    (to_bytes(Some(meta), &tensors).unwrap(), canon)
}

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

fn smooth_bf16(rows: usize, cols: usize) -> Vec<u8> {
    let w: Vec<f32> = (0..rows * cols)
        .map(|k| ((k / cols) as f32 / 9.0).sin() * 0.1 + ((k % cols) as f32 / 5.0).cos() * 0.05)
        .collect();
    wcodec::codec::decoder::f32_to_bytes(&w, DType::BF16)
}

/// Open and decode everything; every tensor must decode to the original or
/// fail with an error. Returns the errors' messages.
fn open_and_decode(bytes: Vec<u8>, canon: &[Vec<u8>]) -> Vec<String> {
    let f = match WcodecFile::from_bytes(bytes) {
        Ok(f) => f,
        Err(e) => return vec![e.to_string()],
    };
    let mut errs = Vec::new();
    for i in 0..f.tensors.len() {
        match decode_tensor(&f, i) {
            Ok(out) => assert!(
                canon.get(i) == Some(&out),
                "tensor {} decoded to wrong bytes without an error",
                f.tensors[i].name
            ),
            Err(e) => errs.push(e.to_string()),
        }
    }
    errs
}

#[test]
fn the_sample_is_valid() {
    let (bytes, canon) = sample();
    assert!(open_and_decode(bytes, &canon).is_empty());
}

#[test]
fn every_truncation_is_rejected() {
    let (bytes, _) = sample();
    for len in 0..bytes.len() {
        let e = WcodecFile::from_bytes(bytes[..len].to_vec())
            .expect_err(&format!("truncated to {len} was accepted"));
        let m = e.to_string();
        assert!(!m.is_empty());
        if len >= 24 {
            assert!(
                m.contains("truncated") || m.contains("past the end"),
                "{len}: {m}"
            );
        }
    }
}

fn sections(f: &WcodecFile) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    for t in &f.tensors {
        for p in &t.planes {
            match p {
                PlaneInfo::Raw { data, .. } => out.push((format!("{}/raw", t.name), data.clone())),
                PlaneInfo::Rans {
                    tables_range,
                    index_range,
                    stream,
                    ..
                } => {
                    out.push((format!("{}/tables", t.name), tables_range.clone()));
                    out.push((format!("{}/index", t.name), index_range.clone()));
                    out.push((format!("{}/stream", t.name), stream.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn truncation_at_each_section_boundary_names_the_problem() {
    let (bytes, _) = sample();
    let f = WcodecFile::from_bytes(bytes.clone()).unwrap();
    let mut cuts = vec![8, 12, 16, 24, f.data_start - 1, f.data_start];
    for (_, r) in sections(&f) {
        cuts.push(r.start);
        cuts.push(r.end.saturating_sub(1));
    }
    for cut in cuts {
        let e = WcodecFile::from_bytes(bytes[..cut].to_vec())
            .expect_err("truncated file accepted")
            .to_string();
        assert!(e.contains("field"), "{cut}: {e}");
    }
}

#[test]
fn flipped_bytes_anywhere_are_caught() {
    let (bytes, canon) = sample();
    let f = WcodecFile::from_bytes(bytes.clone()).unwrap();
    // Every byte of the prefix and header, and a stride through the data.
    let positions: Vec<usize> = (0..f.data_start)
        .chain((f.data_start..bytes.len()).step_by(7))
        .collect();
    for pos in positions {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[pos] ^= bit;
            let _ = open_and_decode(b, &canon); // asserts no silent corruption, no panic
        }
    }
}

#[test]
fn stream_corruption_is_caught_and_names_the_tensor() {
    let (bytes, canon) = sample();
    let f = WcodecFile::from_bytes(bytes.clone()).unwrap();
    for (name, r) in sections(&f)
        .into_iter()
        .filter(|(n, _)| n.ends_with("/stream"))
    {
        let tensor = name.trim_end_matches("/stream");
        for pos in (r.start..r.end).step_by(((r.end - r.start) / 50).max(1)) {
            let mut b = bytes.clone();
            b[pos] ^= 0x5a;
            let errs = open_and_decode(b, &canon);
            assert!(
                !errs.is_empty(),
                "{tensor}: a flipped stream byte at {pos} went unnoticed"
            );
            assert!(
                errs.iter()
                    .all(|e| e.contains(&format!("tensor \"{tensor}\""))),
                "{errs:?}"
            );
        }
    }
}

#[test]
fn table_and_index_corruption_is_caught() {
    let (bytes, canon) = sample();
    let f = WcodecFile::from_bytes(bytes.clone()).unwrap();
    for (name, r) in sections(&f)
        .into_iter()
        .filter(|(n, _)| n.ends_with("/tables") || n.ends_with("/index"))
    {
        for pos in r.clone() {
            let mut b = bytes.clone();
            b[pos] ^= 0x24;
            let errs = open_and_decode(b, &canon);
            let tensor = name.split('/').next().unwrap();
            for e in &errs {
                assert!(e.contains(tensor), "{name}@{pos}: {e}");
            }
        }
    }
}

fn rewrite_header(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let hl = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let mut h: Value = serde_json::from_slice(&bytes[24..24 + hl]).unwrap();
    let old_start = (24 + hl).div_ceil(64) * 64;
    edit(&mut h);
    let hb = serde_json::to_vec(&h).unwrap();
    let mut out = bytes[..16].to_vec();
    out.extend_from_slice(&(hb.len() as u64).to_le_bytes());
    out.extend_from_slice(&hb);
    out.resize((24 + hb.len()).div_ceil(64) * 64, 0);
    out.extend_from_slice(&bytes[old_start..]);
    out
}

fn expect_format_error(bytes: Vec<u8>, needles: &[&str]) {
    match WcodecFile::from_bytes(bytes) {
        Err(e @ Error::Format { .. }) => {
            let m = e.to_string();
            for n in needles {
                assert!(m.contains(n), "{m:?} lacks {n:?}");
            }
        }
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(_) => panic!("accepted; expected an error mentioning {needles:?}"),
    }
}

#[test]
fn wrong_magic_version_flags_and_header_length() {
    let (bytes, _) = sample();
    let mut b = bytes.clone();
    b[0] = b'X';
    expect_format_error(b, &["magic", "not a .wcodec"]);
    let mut b = bytes.clone();
    b[8] = 2;
    expect_format_error(b, &["version", "2"]);
    let mut b = bytes.clone();
    b[12] = 1;
    expect_format_error(b, &["flags"]);
    let mut b = bytes.clone();
    b[16..24].copy_from_slice(&(1u64 << 63).to_le_bytes());
    expect_format_error(b, &["header_len", "exceeds"]);
    let mut b = bytes.clone();
    b[16..24].copy_from_slice(&(50u64 << 20).to_le_bytes());
    expect_format_error(b, &["header_len", "past the end"]);
    let mut b = bytes.clone();
    b.extend_from_slice(&[0; 3]);
    expect_format_error(b, &["data_len", "trailing"]);
    expect_format_error(
        rewrite_header(&bytes, |h| h["version"] = 9.into()),
        &["header.version"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["bogus"] = 1.into()),
        &["unknown field"],
    );
}

#[test]
fn absurd_shapes_and_offsets_are_rejected_before_allocation() {
    let (bytes, _) = sample();
    // element count overflow
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40])
        }),
        &["int8", "shape", "overflows"],
    );
    // huge but representable: the grid and index no longer match
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["shape"] = serde_json::json!([100000, 100000])
        }),
        &["int8", "disagrees with shape"],
    );
    // offsets past the data section, and a 2^63 offset
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][2]["planes"][0]["stream"]["offset"] = (1u64 << 63).into()
        }),
        &["f32", "planes[0].stream", "outside"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][5]["planes"][0]["data"]["offset"] = u64::MAX.into()
        }),
        &["ids", "outside"],
    );
    // overlapping sections
    expect_format_error(
        rewrite_header(&bytes, |h| {
            let o = h["tensors"][0]["planes"][0]["index"]["offset"].clone();
            h["tensors"][1]["planes"][0]["index"]["offset"] = o;
        }),
        &["overlaps"],
    );
    // raw plane length that disagrees with the shape
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][5]["shape"] = serde_json::json!([9])
        }),
        &["ids", "data.len"],
    );
    // wrong encoding, dtype, roles, table counts, tile shapes, probability bits
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][0]["encoding"] = "zip".into()),
        &["unknown encoding"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][0]["dtype"] = "Q7".into()),
        &["unknown dtype"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][2]["dtype"] = "I8".into()),
        &["float-split encoding of I8"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["planes"][0]["role"] = "x".into()
        }),
        &["role"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["planes"][0]["tables"]["count"] = 9.into()
        }),
        &["tables.count"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["planes"][0]["tile"] = serde_json::json!([32, 32])
        }),
        &["disagrees"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["planes"][0]["prob_bits"] = 16.into()
        }),
        &["prob_bits"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["planes"][0]["tail"]["bits"] = 0.into()
        }),
        &["tail"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][1]["name"] = "int8".into()),
        &["duplicate"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][0]["checksum"] = "md5:00".into()),
        &["checksum"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][4]["quant"]["bits"] = 12.into()),
        &["quant.bits"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["data_len"] = 5.into()),
        &["data_len"],
    );
}

#[test]
fn a_missing_file_names_the_path() {
    let e = WcodecFile::open(std::path::Path::new("/nonexistent/dir/x.wcodec"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/dir/x.wcodec"), "{e}");
}

#[test]
fn errors_from_files_name_the_file() {
    let (bytes, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.wcodec");
    let mut b = bytes.clone();
    b[8] = 3;
    std::fs::write(&p, b).unwrap();
    let e = WcodecFile::open(&p).unwrap_err().to_string();
    assert!(e.contains("bad.wcodec") && e.contains("version"), "{e}");
}

/// Rewrite the `meta` word of tile `tile` of `tensor`'s first plane.
fn set_meta(bytes: &[u8], tensor: &str, tile: usize, edit: impl Fn(u32) -> u32) -> Vec<u8> {
    let f = WcodecFile::from_bytes(bytes.to_vec()).unwrap();
    let (_, r) = sections(&f)
        .into_iter()
        .find(|(n, _)| *n == format!("{tensor}/index"))
        .unwrap();
    let at = r.start + 8 * tile + 4;
    let meta = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut b = bytes.to_vec();
    b[at..at + 4].copy_from_slice(&edit(meta).to_le_bytes());
    b
}

#[test]
fn lossy_fields_are_validated() {
    let (bytes, _) = sample();
    let f = WcodecFile::from_bytes(bytes.clone()).unwrap();
    let li = f.tensors.iter().position(|t| t.name == "lossy").unwrap();
    let di = f
        .tensors
        .iter()
        .position(|t| t.name == "lossy_dct")
        .unwrap();
    // The forced tensor really has DCT8+TOP tiles and SPATIAL edge tiles.
    if let PlaneInfo::Rans { index, .. } = &f.tensors[di].planes[0] {
        assert_eq!(index[0].name(), "DCT8+TOP");
        assert_eq!(index[2].mode, Mode::Spatial, "the 6-row edge tile");
    }
    // Header fields.
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][li].as_object_mut().unwrap().remove("lossy");
        }),
        &["lossy", "missing for a lossy tensor"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][0]["lossy"] = h["tensors"][li]["lossy"].clone()
        }),
        &["int8", "present on a tensor that is not lossy"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| h["tensors"][li]["dtype"] = "I8".into()),
        &["lossy encoding of I8"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][li]["shape"] = serde_json::json!([4000])
        }),
        &["lossy", "rank"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][li]["planes"][0]["role"] = "q".into()
        }),
        &["lossy", "role"],
    );
    expect_format_error(
        rewrite_header(&bytes, |h| {
            h["tensors"][li]["planes"][1]["data"]["len"] = 4.into()
        }),
        &["lossy", "planes[1].data.len"],
    );
    // Tile scales: finite, not negative.
    let (_, raw) = sections(&f)
        .into_iter()
        .find(|(n, _)| n == "lossy_dct/raw")
        .unwrap();
    for bad in [f32::NAN, f32::INFINITY, -1.0] {
        let mut b = bytes.clone();
        b[raw.start + 4..raw.start + 8].copy_from_slice(&bad.to_le_bytes());
        expect_format_error(b, &["lossy_dct", "planes[1].data[1]", "tile scale"]);
    }
    // Index entries: modes of the wrong kind, bad steps, predictors, reserved
    // bits, unknown codes, transforms on tiles that are not whole blocks.
    type Edit = Box<dyn Fn(u32) -> u32>;
    let cases: Vec<(&str, usize, Edit, &str)> = vec![
        (
            "lossy",
            0,
            Box::new(|m| m & !15),
            "mode NONE in a lossy plane",
        ),
        (
            "lossy",
            0,
            Box::new(|m| (m & !15) | 4),
            "mode PLANAR in a lossy plane",
        ),
        (
            "int8",
            0,
            Box::new(|m| (m & !15 & 0xff) | 5 | 16 << 8),
            "mode SPATIAL in a lossless plane",
        ),
        ("lossy", 0, Box::new(|m| m & !(0xfff << 8)), "lossy step 0"),
        (
            "lossy",
            0,
            Box::new(|m| m | 3 << 20),
            "unknown lossy predictor 3",
        ),
        (
            "lossy",
            0,
            Box::new(|m| m | 1 << 22),
            "reserved lossy parameter bits",
        ),
        (
            "lossy",
            0,
            Box::new(|m| m | 1 << 31),
            "reserved lossy parameter bits",
        ),
        (
            "lossy",
            0,
            Box::new(|m| (m & !15) | 9),
            "unknown mode code 9",
        ),
        (
            "lossy",
            0,
            Box::new(|m| (m & !15) | 15),
            "unknown mode code 15",
        ),
        (
            "lossy_dct",
            2,
            Box::new(|m| (m & !15) | 6),
            "mode DCT8 on a 6×64 tile",
        ),
        (
            "lossy_dct",
            2,
            Box::new(|m| (m & !15) | 8),
            "mode DST4 on a 6×64 tile",
        ),
    ];
    for (tensor, tile, edit, needle) in cases {
        expect_format_error(
            set_meta(&bytes, tensor, tile, edit),
            &[
                &format!("tensor \"{tensor}\""),
                &format!("index[{tile}]"),
                needle,
            ],
        );
    }
    // A valid entry with other parameters decodes to other pixels: the checksum catches it.
    let b = set_meta(&bytes, "lossy_dct", 0, |m| m ^ 1 << 8);
    let f2 = WcodecFile::from_bytes(b).unwrap();
    let e = decode_tensor(&f2, di).unwrap_err().to_string();
    assert!(e.contains("checksum") && e.contains("lossy_dct"), "{e}");
}

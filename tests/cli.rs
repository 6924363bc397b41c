//! The command line, end to end: the README's first command, round trips,
//! and every user error giving a clear message and a non-zero exit.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use wcodec::dtype::DType;
use wcodec::io::safetensors::{OutTensor, header_bytes};

fn wcodec(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wcodec"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small safetensors file with int8, f32, bf16 and i64 tensors.
fn write_model(path: &Path) -> Vec<u8> {
    let mut rng = common::Rng(5);
    let w = common::f32_weights(&mut rng, 96, 130);
    let tensors = [
        (
            OutTensor {
                name: "w.f32".into(),
                dtype: DType::F32,
                shape: vec![96, 130],
            },
            common::f32_bytes(&w),
        ),
        (
            OutTensor {
                name: "w.bf16".into(),
                dtype: DType::BF16,
                shape: vec![96, 130],
            },
            wcodec::codec::decoder::f32_to_bytes(&w, DType::BF16),
        ),
        (
            OutTensor {
                name: "q".into(),
                dtype: DType::I8,
                shape: vec![100, 70],
            },
            common::int8_weights(&mut rng, 7000, 9.0),
        ),
        (
            OutTensor {
                name: "ids".into(),
                dtype: DType::I64,
                shape: vec![4],
            },
            (0..32).collect(),
        ),
    ];
    let outs: Vec<OutTensor> = tensors.iter().map(|t| t.0.clone()).collect();
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), "pt".into());
    let mut bytes = header_bytes(Some(&meta), &outs);
    for t in &tensors {
        bytes.extend_from_slice(&t.1);
    }
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn decode_without_input_decodes_and_verifies_the_embedded_sample() {
    let dir = tempfile::tempdir().unwrap();
    let o = wcodec(&["decode"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("embedded sample") && t.contains("verified"),
        "{t}"
    );
    let out = std::fs::read(dir.path().join("wcodec-sample.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&out).unwrap();
    assert_eq!(st.len(), 10);
}

#[test]
fn encode_decode_is_byte_identical_and_info_verify_work() {
    let dir = tempfile::tempdir().unwrap();
    let src = write_model(&dir.path().join("m.safetensors"));
    let o = wcodec(&["encode", "m.safetensors", "-o", "m.wcodec"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = wcodec(
        &["decode", "m.wcodec", "-o", "back.safetensors", "--quiet"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read(dir.path().join("back.safetensors")).unwrap() == src,
        "decode is not byte-identical"
    );
    let o = wcodec(&["info", "m.wcodec"], dir.path());
    assert!(
        o.status.success() && text(&o).contains("float-split") && text(&o).contains("int8"),
        "{}",
        text(&o)
    );
    let o = wcodec(&["info", "m.wcodec", "--json"], dir.path());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["tensors"].as_array().unwrap().len(), 4);
    let o = wcodec(&["verify", "m.wcodec"], dir.path());
    assert!(
        o.status.success() && text(&o).contains("all checksums match"),
        "{}",
        text(&o)
    );
}

#[test]
fn quant_options_and_output_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("m.safetensors"));
    let o = wcodec(
        &["encode", "m.safetensors", "-o", "q.wcodec", "--bits", "4"],
        dir.path(),
    );
    assert!(
        o.status.success() && text(&o).contains("SNR"),
        "{}",
        text(&o)
    );
    for (dtype, want) in [("f16", "F16"), ("bf16", "BF16"), ("f32", "F32")] {
        let o = wcodec(
            &[
                "decode",
                "q.wcodec",
                "-o",
                "o.safetensors",
                "--dtype",
                dtype,
                "-q",
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        let b = std::fs::read(dir.path().join("o.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&b).unwrap();
        assert_eq!(format!("{:?}", st.tensor("w.f32").unwrap().dtype()), want);
    }
    let o = wcodec(
        &[
            "decode",
            "q.wcodec",
            "-o",
            "i.safetensors",
            "--dtype",
            "int8",
            "-q",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let b = std::fs::read(dir.path().join("i.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&b).unwrap();
    assert_eq!(st.tensor("w.f32").unwrap().dtype(), safetensors::Dtype::I8);
    assert_eq!(st.tensor("w.f32.scale").unwrap().shape(), &[96]);
    let o = wcodec(
        &["encode", "m.safetensors", "--quant", "int8", "--bits", "4"],
        dir.path(),
    );
    assert!(
        !o.status.success() && text(&o).contains("disagree"),
        "{}",
        text(&o)
    );
    let o = wcodec(&["encode", "m.safetensors", "--bits", "9"], dir.path());
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn lossy_options_info_decode_and_bench_rd() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("m.safetensors"));
    let o = wcodec(
        &["encode", "m.safetensors", "-o", "l.wcodec", "--bpw", "4"],
        dir.path(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("bits/weight over the whole file") && t.contains("Bpw(4.0) met"),
        "{t}"
    );
    let size = std::fs::metadata(dir.path().join("l.wcodec"))
        .unwrap()
        .len();
    let numel = 2 * 96 * 130 + 7000 + 64;
    assert!(8.0 * size as f64 / numel as f64 <= 4.0, "{size}");
    let o = wcodec(&["info", "l.wcodec"], dir.path());
    let t = text(&o);
    assert!(
        o.status.success()
            && t.contains("lossy")
            && t.contains("SPATIAL")
            && t.contains("lossy tiles by type"),
        "{t}"
    );
    let o = wcodec(&["info", "l.wcodec", "--json"], dir.path());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["lossy_snr_db"].as_f64().unwrap() > 10.0, "{j}");
    assert!(j["bits_per_weight"].as_f64().unwrap() <= 4.0);
    let o = wcodec(&["verify", "l.wcodec"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    for (dtype, want) in [("f16", "F16"), ("bf16", "BF16"), ("f32", "F32")] {
        let o = wcodec(
            &[
                "decode",
                "l.wcodec",
                "-o",
                "o.safetensors",
                "--dtype",
                dtype,
                "-q",
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        let b = std::fs::read(dir.path().join("o.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&b).unwrap();
        assert_eq!(format!("{:?}", st.tensor("w.f32").unwrap().dtype()), want);
    }
    let o = wcodec(
        &[
            "decode",
            "l.wcodec",
            "-o",
            "i.safetensors",
            "--dtype",
            "int8",
            "-q",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let b = std::fs::read(dir.path().join("i.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&b).unwrap();
    assert_eq!(st.tensor("w.bf16").unwrap().dtype(), safetensors::Dtype::I8);
    assert_eq!(st.tensor("w.bf16.tile_scale").unwrap().shape(), &[2, 3]);
    // --snr per tensor, and a fixed step.
    let o = wcodec(
        &[
            "encode",
            "m.safetensors",
            "-o",
            "s.wcodec",
            "--snr",
            "20",
            "--per-tensor",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = wcodec(&["info", "s.wcodec", "--json"], dir.path());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for t in j["tensors"].as_array().unwrap() {
        if t["encoding"] == "lossy" {
            let s = t["snr_db"].as_f64().unwrap();
            assert!((20.0..20.1).contains(&s), "{t}");
        }
    }
    let o = wcodec(
        &[
            "encode",
            "m.safetensors",
            "-o",
            "f.wcodec",
            "--lossy-step",
            "0.5",
            "--lossy-modes",
            "spatial,dct8",
            "--predictors",
            "none",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    // Conflicts and bad values.
    for args in [
        &["encode", "m.safetensors", "--bpw", "3", "--bits", "4"][..],
        &["encode", "m.safetensors", "--bpw", "3", "--snr", "10"],
        &["encode", "m.safetensors", "--per-tensor"],
        &["encode", "m.safetensors", "--bpw", "0"],
        &["encode", "m.safetensors", "--snr", "nan"],
        &["encode", "m.safetensors", "--lossy-step", "-1"],
        &[
            "encode",
            "m.safetensors",
            "--bpw",
            "3",
            "--lossy-modes",
            "dct16",
        ],
    ] {
        let o = wcodec(args, dir.path());
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("error"), "{args:?}: {}", text(&o));
    }
    // The RD table.
    let o = wcodec(
        &[
            "bench",
            "rd",
            "m.safetensors",
            "--bpw",
            "3",
            "--bits",
            "4",
            "-q",
        ],
        dir.path(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("absmax INT4, fixed rate")
            && t.contains("absmax INT4 + wcodec entropy coding")
            && t.contains("lossy, all tile types")
            && t.contains("lossy, SPATIAL only")
            && t.contains("At equal SNR"),
        "{t}"
    );
}

#[test]
fn user_errors_exit_nonzero_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("m.safetensors"));
    // missing input
    let o = wcodec(&["encode", "nope.safetensors"], dir.path());
    assert!(
        !o.status.success() && text(&o).contains("nope.safetensors"),
        "{}",
        text(&o)
    );
    let o = wcodec(&["decode", "nope.wcodec"], dir.path());
    assert!(
        !o.status.success() && text(&o).contains("nope.wcodec"),
        "{}",
        text(&o)
    );
    // output equal to input: refused, input untouched
    let before = std::fs::read(dir.path().join("m.safetensors")).unwrap();
    let o = wcodec(
        &["encode", "m.safetensors", "-o", "m.safetensors"],
        dir.path(),
    );
    assert!(
        !o.status.success() && text(&o).contains("refusing to overwrite"),
        "{}",
        text(&o)
    );
    assert!(std::fs::read(dir.path().join("m.safetensors")).unwrap() == before);
    let o = wcodec(
        &["encode", "m.safetensors", "-o", "m.wcodec", "-q"],
        dir.path(),
    );
    assert!(o.status.success());
    let o = wcodec(&["decode", "m.wcodec", "-o", "./m.wcodec"], dir.path());
    assert!(
        !o.status.success() && text(&o).contains("refusing to overwrite"),
        "{}",
        text(&o)
    );
    // not a wcodec file / not a safetensors file
    let o = wcodec(&["info", "m.safetensors"], dir.path());
    assert!(
        !o.status.success() && text(&o).contains("not a .wcodec file"),
        "{}",
        text(&o)
    );
    let o = wcodec(&["encode", "m.wcodec", "-o", "x.wcodec"], dir.path());
    assert!(
        !o.status.success() && text(&o).contains("safetensors"),
        "{}",
        text(&o)
    );
    // a corrupted stream: verify fails and names the tensor
    let mut b = std::fs::read(dir.path().join("m.wcodec")).unwrap();
    let f = wcodec::format::WcodecFile::from_bytes(b.clone()).unwrap();
    let t = f.tensors.iter().position(|t| t.name == "q").unwrap();
    if let wcodec::format::reader::PlaneInfo::Rans { stream, .. } = &f.tensors[t].planes[0] {
        b[stream.start + stream.len() / 2] ^= 0x33;
    }
    std::fs::write(dir.path().join("bad.wcodec"), &b).unwrap();
    let o = wcodec(&["verify", "bad.wcodec"], dir.path());
    assert!(
        !o.status.success() && text(&o).contains("tensor \"q\""),
        "{}",
        text(&o)
    );
    let o = wcodec(
        &["decode", "bad.wcodec", "-o", "bad.safetensors"],
        dir.path(),
    );
    assert!(
        !o.status.success() && text(&o).contains("tensor \"q\""),
        "{}",
        text(&o)
    );
    assert!(
        !dir.path().join("bad.safetensors").exists(),
        "a failed decode left an output file"
    );
}

/// A full disk, simulated with a file-size limit: the write fails cleanly,
/// no output (and no temporary file) is left behind.
#[test]
fn a_full_disk_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("m.safetensors"));
    let bin = env!("CARGO_BIN_EXE_wcodec");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 8; exec {bin} encode m.safetensors -o out.wcodec"
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("out.wcodec"), "{}", text(&o));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "left behind: {left:?}");
}

/// `bench decode --dump-inputs` writes the exact bytes it times (checked by
/// their xxh3 against the manifest), and `--peers` quotes a peer only when it
/// was measured on those bytes: a wrong checksum, an unverified decode or a
/// malformed file is an error naming the file.
#[test]
fn bench_decode_dumps_its_inputs_and_checks_peers_against_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = wcodec(
        &[
            "bench",
            "decode",
            "--sizes",
            "64K,32K",
            "--dump-inputs",
            "in",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("in/manifest.json")).unwrap())
            .unwrap();
    let m = manifest.as_array().unwrap();
    // int8 and bf16 (the default kinds), sizes sorted
    let got: Vec<(String, u64)> = m
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("int8".to_string(), 32768),
            ("int8".to_string(), 65536),
            ("bf16".to_string(), 32768),
            ("bf16".to_string(), 65536)
        ]
    );
    let mut peers = Vec::new();
    for e in m {
        let bytes = std::fs::read(dir.path().join("in").join(e["file"].as_str().unwrap())).unwrap();
        assert_eq!(bytes.len() as u64, e["bytes"].as_u64().unwrap());
        let h = wcodec::codec::checksum_string(wcodec::codec::checksum(&bytes));
        assert_eq!(e["xxh3"].as_str().unwrap(), h);
        // weights, not a constant
        let distinct = bytes.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 20, "{} distinct bytes", distinct);
        peers.push(serde_json::json!({
            "kind": e["kind"], "bytes": e["bytes"], "xxh3": h,
            "codec": "peer ANS |u1", "primary": true,
            "compressed_bytes": bytes.len() / 2, "ratio": 2.0,
            "decode_ms": 0.125, "decode_gbs": 123.0, "verified": true,
        }));
    }
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(dir.path().join(name), serde_json::to_vec(v).unwrap()).unwrap()
    };
    // a malformed file, an unverified decode, a checksum of other bytes
    let mut unverified = peers.clone();
    unverified[1]["verified"] = false.into();
    let mut other = peers.clone();
    other[2]["xxh3"] = "xxh3-64:0123456789abcdef".into();
    write("unverified.json", &serde_json::Value::Array(unverified));
    write("other.json", &serde_json::Value::Array(other));
    std::fs::write(dir.path().join("bad.json"), b"{\"kind\": 3").unwrap();
    let bench = |peers: &str| {
        wcodec(
            &[
                "bench",
                "decode",
                "--sizes",
                "64K,32K",
                "--reps",
                "2",
                "--wall-reps",
                "1",
                "--peers",
                peers,
            ],
            dir.path(),
        )
    };
    for (file, want) in [
        ("bad.json", "not the JSON of scripts/peers_nvcomp.py"),
        ("unverified.json", "did not match its input"),
        ("other.json", "xxh3-64:0123456789abcdef"),
        ("missing.json", "missing.json"),
    ] {
        let o = bench(file);
        let t = text(&o);
        // other.json fails at its input only where a GPU ran the bench
        if file == "other.json" && t.contains("GPU adapter") {
            continue;
        }
        assert!(!o.status.success(), "{file}: {t}");
        assert!(t.contains(want) && t.contains(file), "{file}: {t}");
    }
    write("peers.json", &serde_json::Value::Array(peers));
    let Some(_gpu) = common::ctx() else { return };
    let o = bench("peers.json");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches("123 (2.0000), measured here").count(), 4, "{t}");
}

//! One test body per kernel, run on every backend this build has
//! (`backend_tests!` makes `<body>::cpu`, `<body>::wgpu` and, with the
//! `cuda` feature, `<body>::cuda`):
//!
//! * `decode_matches_cpu`: every encoding (raw, int8 I8/U8, float-split
//!   F32/F16/BF16 with specials, quant 8 and 4 bits, lossy tiles of every
//!   type and predictor), every lossless mode forced, edge shapes, several
//!   tables: canonical bytes equal the CPU reference byte for byte, their
//!   checksum is the stored one, lossless tensors equal their source, and
//!   quant/lossy tensors dequantised on the backend (f32, f16, bf16) equal
//!   the CPU's rendering.
//! * `decode_rejects_corrupt_streams`: flipped stream bits: the backend
//!   rejects (an error naming the tensor, or bytes failing the checksum)
//!   exactly what the CPU rejects;
//! * `gemv_matches_f64`: f32, f16 and int8 weights, 1 to 8 vectors, bias or
//!   not, against `cpu::gemv::gemv_f64` within the rigorous bound
//!   `γ_(n+3)·Σ|w·x| + u·|y|` (docs/INFERENCE.md) and relative L2 < 1e-5;
//!   cuBLAS `gemmEx` (f16) gets twice the bound, since tensor cores
//!   accumulate in f32 with truncation (u = 2^-23 instead of 2^-24);
//! * `softmax_matches_f64`: the tolerances of docs/INFERENCE.md;
//! * `sampling_matches_cpu`: the exact token of `cpu::sample` for every
//!   call (wgpu and CUDA; the CPU backend is that reference).
//!
//! Inputs are fresh random weight-like data (never all zeros); outputs are
//! poisoned before each kernel. A backend the machine lacks prints a SKIP
//! line (set `WCODEC_REQUIRE_GPU` / `WCODEC_REQUIRE_CUDA` to fail instead);
//! `WCODEC_BACKEND=cuda` (or a list) runs only those backends' variants.

mod common;

use std::sync::Mutex;

use common::{Rng, assert_softmax_close};
use wcodec::backend::{Backend, Live, cpu_canonical, locate};
use wcodec::codec::Encoding;
use wcodec::codec::checksum;
use wcodec::codec::decoder::{decode_tensor, render};
use wcodec::codec::encoder::{EncodeOptions, EncodedTensor, LossyOptions, encode_tensor};
use wcodec::codec::lossy::Predictor;
use wcodec::codec::lossy_enc::LossyConfig;
use wcodec::codec::predict::Mode;
use wcodec::codec::quant::f32_to_f16_bits;
use wcodec::codec::ratecontrol::Target;
use wcodec::cpu::gemv::{Weights, gemv_f64, rel_l2};
use wcodec::cpu::sample::{SampleParams, sample_row};
use wcodec::cpu::softmax::softmax_f64;
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::format::reader::PlaneInfo;

/// One test at a time: GPU tests on lavapipe compete for the same cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Open `b` and run `body`, or print why the variant is skipped.
fn run(b: Backend, body: fn(&Live)) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !b.enabled_by_env() {
        eprintln!("SKIP: {b}: not in {}", wcodec::backend::ENV);
        return;
    }
    let live = match b.open() {
        Ok(l) => l,
        Err(e) => {
            let require = match b {
                Backend::Cpu => true,
                Backend::Wgpu => std::env::var_os("WCODEC_REQUIRE_GPU").is_some(),
                Backend::Cuda => std::env::var_os("WCODEC_REQUIRE_CUDA").is_some(),
            };
            if require {
                panic!("{b} is required but does not open: {e}");
            }
            eprintln!("SKIP: {b}: {e}");
            return;
        }
    };
    eprintln!("backend: {}", live.describe());
    body(&live);
}

macro_rules! backend_tests {
    ($($name:ident: [$($b:ident),*];)*) => {
        $(
            mod $name {
                $( backend_tests!(@one $name $b); )*
            }
        )*
    };
    (@one $name:ident cpu) => {
        #[test]
        fn cpu() {
            super::run(wcodec::backend::Backend::Cpu, super::$name)
        }
    };
    (@one $name:ident wgpu) => {
        #[test]
        fn wgpu() {
            super::run(wcodec::backend::Backend::Wgpu, super::$name)
        }
    };
    (@one $name:ident cuda) => {
        #[cfg(feature = "cuda")]
        #[test]
        fn cuda() {
            super::run(wcodec::backend::Backend::Cuda, super::$name)
        }
    };
}

backend_tests! {
    decode_matches_cpu: [cpu, wgpu, cuda];
    decode_rejects_corrupt_streams: [wgpu, cuda];
    gemv_matches_f64: [cpu, wgpu, cuda];
    softmax_matches_f64: [cpu, wgpu, cuda];
    sampling_matches_cpu: [wgpu, cuda];
}

// ---------------------------------------------------------------- data

fn smooth_i8(rng: &mut Rng, rows: usize, cols: usize) -> Vec<u8> {
    let (a, b) = (rng.below(7) as i64 - 3, rng.below(5) as i64 - 2);
    (0..rows * cols)
        .map(|k| {
            let (i, j) = ((k / cols) as i64, (k % cols) as i64);
            (a * i / 2 + b * j / 3 + rng.below(3) as i64 - 1) as i8 as u8
        })
        .collect()
}

/// Gaussian floats with specials (±0, ±inf, NaN, subnormals, f16 extremes).
fn floats(rng: &mut Rng, n: usize, sigma: f64, specials: bool) -> Vec<f32> {
    let sp = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-40,
        -3e-39,
        f32::MIN_POSITIVE,
        65504.0,
        1e-7,
        6e-8,
    ];
    let mut v = rng.normals(n, sigma);
    if specials {
        for (i, x) in v.iter_mut().enumerate() {
            if i % 97 == 5 {
                *x = sp[(i / 97) % sp.len()];
            }
        }
    }
    v
}

fn bytes_of(dtype: DType, v: &[f32]) -> Vec<u8> {
    wcodec::codec::decoder::f32_to_bytes(v, dtype)
}

fn enc(name: &str, dtype: DType, shape: &[usize], data: &[u8], o: &EncodeOptions) -> EncodedTensor {
    encode_tensor(name, dtype, shape, data, o).unwrap_or_else(|e| panic!("encoding {name}: {e}"))
}

fn forced(m: Mode) -> EncodeOptions {
    EncodeOptions {
        force_mode: Some(m),
        ..Default::default()
    }
}

fn lossy_opts(rel_step: f64, force: Option<(Mode, Predictor)>) -> EncodeOptions {
    EncodeOptions {
        lossy: Some(LossyOptions {
            target: Target::RelStep(rel_step),
            per_tensor: true,
            config: LossyConfig {
                force,
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// The test files: (file, the source bytes of each tensor).
fn decode_cases() -> Vec<(String, WcodecFile, Vec<Vec<u8>>)> {
    let mut rng = Rng(0x5eed);
    let mut out = Vec::new();
    let mut push = |what: &str, ts: Vec<(EncodedTensor, Vec<u8>)>| {
        let (enc, src): (Vec<EncodedTensor>, Vec<Vec<u8>>) = ts.into_iter().unzip();
        let bytes = wcodec::format::writer::to_bytes(None, &enc).unwrap();
        out.push((
            what.to_string(),
            WcodecFile::from_bytes(bytes).unwrap(),
            src,
        ));
    };
    // int8: every mode (forced and chosen), edge shapes, U8
    let shapes: [&[usize]; 9] = [
        &[1, 1],
        &[65, 63],
        &[1, 5000],
        &[5000, 1],
        &[10000],
        &[64, 64],
        &[130, 200],
        &[3, 50, 70],
        &[200, 4],
    ];
    for m in [
        None,
        Some(Mode::None),
        Some(Mode::Left),
        Some(Mode::Top),
        Some(Mode::Avg),
        Some(Mode::Planar),
    ] {
        let o = m.map_or_else(EncodeOptions::default, forced);
        let mut ts = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            let n: usize = s.iter().product();
            let (rows, cols) = if s.len() >= 2 {
                (s[0], n / s[0])
            } else {
                (1, n)
            };
            let data = if i % 2 == 0 {
                smooth_i8(&mut rng, rows, cols)
            } else {
                common::int8_weights(&mut rng, n, 12.0)
            };
            let dtype = if i == 2 { DType::U8 } else { DType::I8 };
            ts.push((enc(&format!("i8.{i}"), dtype, s, &data, &o), data));
        }
        push(&format!("int8 mode {m:?}"), ts);
    }
    // several tables: halves of very different spread
    {
        let mut data = common::int8_weights(&mut rng, 128 * 512, 2.0);
        data.extend(common::int8_weights(&mut rng, 128 * 512, 40.0));
        let t = enc(
            "tables",
            DType::I8,
            &[256, 512],
            &data,
            &EncodeOptions::default(),
        );
        push("several tables", vec![(t, data)]);
    }
    // float-split with specials, 1-D and 2-D; a raw tensor
    {
        let mut ts = Vec::new();
        for (i, dtype) in [DType::BF16, DType::F16, DType::F32]
            .into_iter()
            .enumerate()
        {
            for (j, shape) in [vec![9001], vec![70, 130]].into_iter().enumerate() {
                let n: usize = shape.iter().product();
                let data = bytes_of(dtype, &floats(&mut rng, n, 0.05, true));
                ts.push((
                    enc(
                        &format!("f.{i}.{j}"),
                        dtype,
                        &shape,
                        &data,
                        &EncodeOptions::default(),
                    ),
                    data,
                ));
            }
        }
        let raw: Vec<u8> = (0..4 * 333).map(|i| (i * 7 + 3) as u8).collect();
        ts.push((
            enc("raw", DType::I32, &[333], &raw, &EncodeOptions::default()),
            raw,
        ));
        push("float-split and raw", ts);
    }
    // quant 8 and 4 bits from every float dtype
    for bits in [8, 4] {
        let mut ts = Vec::new();
        for (i, dtype) in [DType::F32, DType::F16, DType::BF16]
            .into_iter()
            .enumerate()
        {
            let data = bytes_of(dtype, &floats(&mut rng, 130 * 200, 0.02, false));
            let o = EncodeOptions {
                quant_bits: Some(bits),
                ..Default::default()
            };
            ts.push((
                enc(&format!("q{bits}.{i}"), dtype, &[130, 200], &data, &o),
                data,
            ));
        }
        push(&format!("quant {bits} bits"), ts);
    }
    // lossy: every tile type and predictor forced, and chosen by the encoder
    {
        let mut ts = Vec::new();
        let mut k = 0;
        for m in Mode::LOSSY {
            for p in Predictor::ALL {
                let w: Vec<f32> = floats(&mut rng, 128 * 192, 0.02, false)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v + 0.03 * ((i / 192) as f32 / 9.0).sin())
                    .collect();
                let data = bytes_of(DType::F32, &w);
                let o = lossy_opts(0.3 + 0.2 * (k % 3) as f64, Some((m, p)));
                ts.push((
                    enc(
                        &format!("lossy.{}.{}", m.name(), p.name()),
                        DType::F32,
                        &[128, 192],
                        &data,
                        &o,
                    ),
                    data,
                ));
                k += 1;
            }
        }
        for (i, dtype) in [DType::BF16, DType::F16].into_iter().enumerate() {
            let data = bytes_of(dtype, &floats(&mut rng, 100 * 150, 0.02, false));
            ts.push((
                enc(
                    &format!("lossy.auto.{i}"),
                    dtype,
                    &[100, 150],
                    &data,
                    &lossy_opts(0.5, None),
                ),
                data,
            ));
        }
        push("lossy", ts);
    }
    // lossy tiles of chosen extreme codes (every type, predictor and step)
    {
        let ts = common::extreme_lossy_tensors(0xe47);
        let src = vec![Vec::new(); ts.len()];
        let bytes = wcodec::format::writer::to_bytes(None, &ts).unwrap();
        out.push((
            "lossy extreme codes".to_string(),
            WcodecFile::from_bytes(bytes).unwrap(),
            src,
        ));
    }
    out
}

// ---------------------------------------------------------------- decode

fn decode_matches_cpu(live: &Live) {
    for (what, file, src) in decode_cases() {
        let mut seen = 0;
        live.decode_each(&file, &mut |t, r| {
            seen += 1;
            let e = &file.tensors[t];
            let label = format!("{what}: tensor {} ({} {} {:?})", e.name, e.encoding.name(), e.dtype, e.shape);
            let got = r.unwrap_or_else(|err| panic!("{label}: {err}"));
            let want = cpu_canonical(&file, t).unwrap();
            if got != want {
                let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                panic!(
                    "{label}: {} bytes vs {}; first difference at byte {i} ({}): got {:02x?} want {:02x?}",
                    got.len(),
                    want.len(),
                    locate(&file, t, i),
                    &got[i..(i + 8).min(got.len())],
                    &want[i..(i + 8).min(want.len())]
                );
            }
            assert_eq!(checksum(&got), e.checksum, "{label}: checksum");
            if matches!(e.encoding, Encoding::Raw | Encoding::Int8 | Encoding::FloatSplit) {
                assert!(got == src[t], "{label}: the decode differs from the source bytes");
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(seen, file.tensors.len(), "{what}");
        // dequantisation on the backend
        for (t, e) in file.tensors.iter().enumerate() {
            if !matches!(e.encoding, Encoding::Quant | Encoding::Lossy) {
                continue;
            }
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                let want = render(e, decode_tensor(&file, t).unwrap(), Some(dtype)).remove(0);
                let got = live
                    .dequant(&file, t, dtype)
                    .unwrap_or_else(|err| panic!("{what}: {} to {dtype}: {err}", e.name));
                if got != want {
                    let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                    panic!(
                        "{what}: {} dequantised to {dtype}: first difference at byte {i} (element {}): got {:02x?} want {:02x?}",
                        e.name,
                        i / dtype.size(),
                        &got[i..(i + 4).min(got.len())],
                        &want[i..(i + 4).min(want.len())]
                    );
                }
            }
        }
    }
}

fn decode_rejects_corrupt_streams(live: &Live) {
    let mut rng = Rng(123);
    let ts = vec![
        enc(
            "a",
            DType::I8,
            &[128, 192],
            &common::int8_weights(&mut rng, 128 * 192, 10.0),
            &EncodeOptions::default(),
        ),
        enc(
            "b",
            DType::BF16,
            &[9000],
            &bytes_of(DType::BF16, &floats(&mut rng, 9000, 0.1, false)),
            &EncodeOptions::default(),
        ),
        enc(
            "c",
            DType::I8,
            &[70, 70],
            &smooth_i8(&mut rng, 70, 70),
            &forced(Mode::Avg),
        ),
        enc(
            "d",
            DType::F32,
            &[64, 128],
            &bytes_of(DType::F32, &floats(&mut rng, 64 * 128, 0.02, false)),
            &lossy_opts(0.4, None),
        ),
    ];
    let clean = wcodec::format::writer::to_bytes(None, &ts).unwrap();
    let file = WcodecFile::from_bytes(clean.clone()).unwrap();
    let mut streams = Vec::new();
    for e in &file.tensors {
        if let PlaneInfo::Rans { stream, .. } = &e.planes[0] {
            streams.push((e.name.clone(), stream.clone()));
        }
    }
    let (mut rejected, mut accepted) = (0, 0);
    for trial in 0..32 {
        let (name, r) = &streams[trial % streams.len()];
        let mut bytes = clean.clone();
        let pos = r.start + (rng.below(r.len() as u64) as usize);
        bytes[pos] ^= 1 << rng.below(8);
        if trial % 3 == 2 {
            bytes[r.start + rng.below(r.len() as u64) as usize] = rng.next_u64() as u8;
        }
        let f = WcodecFile::from_bytes(bytes).unwrap();
        let t = f.tensors.iter().position(|e| &e.name == name).unwrap();
        let cpu_rejects = decode_tensor(&f, t).is_err();
        let sub = wcodec::backend::subset_file(&f, &[t]).unwrap();
        let got = live.decode_one(&sub, 0);
        let rejects = match &got {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(name.as_str()),
                    "trial {trial}: the error does not name tensor {name}: {msg}"
                );
                true
            }
            Ok(b) => checksum(b) != f.tensors[t].checksum,
        };
        assert_eq!(
            rejects,
            cpu_rejects,
            "trial {trial}, tensor {name}: backend rejects {rejects}, CPU rejects {cpu_rejects} ({:?})",
            got.as_ref().err().map(|e| e.to_string())
        );
        if let Err(wcodec::Error::Corrupt { loc, .. }) = &got {
            assert!(
                loc.field.as_deref().is_some_and(|f| f.contains("tile ")),
                "{loc}"
            );
        }
        if rejects {
            rejected += 1;
        } else {
            accepted += 1;
        }
    }
    assert!(
        rejected > 0,
        "no corruption was caught ({accepted} accepted)"
    );
}

// ---------------------------------------------------------------- GEMV

fn gemv_matches_f64(live: &Live) {
    let mut rng = Rng(31);
    let cuda = live.backend() == Backend::Cuda;
    for &(rows, cols) in &[
        (1usize, 1usize),
        (3, 17),
        (64, 100),
        (257, 1000),
        (50, 4096),
        (300, 2560),
    ] {
        let wf = rng.normals(rows * cols, 0.02);
        let w16: Vec<u16> = wf.iter().map(|&v| f32_to_f16_bits(v)).collect();
        let q = wcodec::codec::quant::quantize(&wf, rows, cols, 8, &Default::default()).unwrap();
        let qi: Vec<i8> = q.q.iter().map(|&b| b as i8).collect();
        for &batch in &[1usize, 3, 8] {
            let bias = (batch != 3).then(|| rng.normals(rows, 0.5));
            let x = rng.normals(batch * cols, 1.0);
            let x16: Vec<f32> = x
                .iter()
                .map(|&v| half::f16::from_bits(f32_to_f16_bits(v)).to_f32())
                .collect();
            let cases: [(Weights<'_>, bool, &str); 4] = [
                (Weights::F32(&wf), false, "f32"),
                (Weights::F16(&w16), true, "f16"),
                (
                    Weights::I8 {
                        q: &qi,
                        scales: &q.scales,
                    },
                    true,
                    "i8 x f16",
                ),
                (
                    Weights::I8 {
                        q: &qi,
                        scales: &q.scales,
                    },
                    false,
                    "i8 x f32",
                ),
            ];
            for (w, x_f16, name) in cases {
                let xr = if x_f16 { &x16 } else { &x };
                let want = gemv_f64(&w, rows, cols, xr, batch, bias.as_deref()).unwrap();
                let got = live
                    .gemv(&w, rows, cols, &x, batch, bias.as_deref(), x_f16)
                    .unwrap_or_else(|e| panic!("{name} {rows}×{cols} batch {batch}: {e}"));
                assert_eq!(got.len(), want.y.len());
                // cuBLAS gemmEx on tensor cores truncates its f32 sums: u = 2^-23
                let factor = if cuda && name == "f16" { 2.0 } else { 1.0 };
                for (i, (&g, &wv)) in got.iter().zip(&want.y).enumerate() {
                    let b = bias.as_ref().map_or(0.0, |bb| bb[i % rows] as f64);
                    let bound = factor * want.bound(i, b);
                    assert!(
                        (g as f64 - wv).abs() <= bound,
                        "{name} {rows}×{cols} batch {batch}: y[{i}] = {g}, want {wv} (error {:e} > {bound:e})",
                        (g as f64 - wv).abs()
                    );
                }
                let e = rel_l2(&got, &want.y);
                assert!(
                    e < 1e-5,
                    "{name} {rows}×{cols} batch {batch}: relative L2 {e:e}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- softmax

fn check_softmax(live: &Live, x: &[f32], rows: usize, n: usize, t: f32, log: bool) {
    let want = softmax_f64(x, rows, n, t, log).unwrap();
    let got = live
        .softmax(x, rows, n, t, log)
        .unwrap_or_else(|e| panic!("{rows}×{n} T={t}: {e}"));
    assert_softmax_close(
        &format!("{rows}×{n} T={t} log={log}"),
        x,
        &got,
        &want,
        rows,
        n,
        t,
        log,
    );
}

fn softmax_matches_f64(live: &Live) {
    let mut rng = Rng(11);
    for (rows, n) in [
        (1, 1),
        (1, 7),
        (3, 1000),
        (1, 50257),
        (2, 152064),
        (5, 4099),
    ] {
        for (t, log) in [(1.0f32, false), (0.7, true), (1e-3, false), (2.5, false)] {
            let x = rng.normals(rows * n, 3.0);
            check_softmax(live, &x, rows, n, t, log);
        }
    }
    // ties, NaN and ±inf (sanitised as the reference does)
    let mut x = rng.normals(3 * 3001, 3.0);
    x[5] = f32::NAN;
    x[77] = f32::INFINITY;
    x[3001 + 9] = f32::NEG_INFINITY;
    for v in &mut x[2 * 3001..] {
        *v = 1.5;
    }
    check_softmax(live, &x, 3, 3001, 1.0, false);
    check_softmax(live, &x, 3, 3001, 0.5, true);
}

// ---------------------------------------------------------------- sampling

fn check_sampling(live: &Live, x: &[f32], rows: usize, n: usize, p: &SampleParams, calls: u64) {
    let start: Vec<u64> = (0..rows as u64).map(|r| r * 1000 + 17).collect();
    let (tokens, steps) = live
        .sample(x, rows, n, p, &start, calls)
        .unwrap_or_else(|e| panic!("{rows}×{n} {p:?}: {e}"));
    assert_eq!(tokens.len() as u64, calls);
    for (call, got) in tokens.iter().enumerate() {
        for r in 0..rows {
            let t =
                sample_row(&x[r * n..(r + 1) * n], p, start[r] + call as u64, r as u32).unwrap();
            assert_eq!(
                got[r], t.token,
                "{rows}×{n} {p:?}: row {r} call {call}: token {} but the CPU's {t:?}",
                got[r]
            );
        }
    }
    assert_eq!(steps, start.iter().map(|s| s + calls).collect::<Vec<_>>());
}

fn params(t: f32, k: u32, p: f32, seed: u64) -> SampleParams {
    SampleParams {
        temperature: t,
        top_k: k,
        top_p: p,
        seed,
    }
}

fn sampling_matches_cpu(live: &Live) {
    let mut rng = Rng(21);
    for &(rows, n) in &[(4usize, 1000usize), (2, 50257), (8, 37), (1, 1)] {
        for &(t, k, p) in &[
            (1.0f32, 0u32, 1.0f32),
            (1.0, 50, 0.9),
            (0.7, 0, 0.9),
            (1.3, 50, 1.0),
            (1.0, 2, 1.0),
            (0.8, 0, 0.05),
            (1.0, 100_000, 0.5),
            (0.9, 100_000, 1.0),
            (2.0, 5, 0.999),
            (0.0, 0, 1.0),
            (1.0, 1, 1.0),
        ] {
            let x = rng.normals(rows * n, 3.0);
            check_sampling(live, &x, rows, n, &params(t, k, p, rng.next_u64()), 3);
        }
    }
    // ties, a temperature near 0, non-finite logits, a long row
    let n = 3001;
    let mut x = rng.normals(3 * n, 3.0);
    for v in &mut x[..n] {
        *v = (*v * 2.0).round() / 2.0; // many equal logits
    }
    x[n + 5] = f32::NAN;
    x[n + 6] = f32::INFINITY;
    x[n + 7] = f32::INFINITY;
    x[2 * n + 1] = f32::NEG_INFINITY;
    for p in [
        params(1.0, 0, 1.0, 3),
        params(1e-6, 0, 1.0, 4),
        params(0.0, 0, 1.0, 5),
        params(1.0, 10, 0.7, 6),
    ] {
        check_sampling(live, &x, 3, n, &p, 4);
    }
    let x = rng.normals(152064, 2.0);
    check_sampling(live, &x, 1, 152064, &params(1.0, 50, 0.9, 7), 2);
}

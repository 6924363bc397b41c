//! The GPU decoder against the CPU reference, byte for byte: every encoding,
//! every predictor mode, every output dtype, edge shapes (1x1, 65x63, 1xN,
//! Nx1, 1-D, rank 3), several tables, a tensor larger than one storage
//! binding, and corrupt streams; through every path the adapter has
//! (subgroup and workgroup; `WCODEC_GPU_PATH` restricts to one). Output
//! buffers are poisoned before each decode. Without an adapter every test
//! prints a skip line and passes.

use wcodec::codec::decoder::{decode_tensor, output_tensors, render};
use wcodec::codec::encoder::{EncodeOptions, EncodedTensor, encode_tensor};
use wcodec::codec::predict::Mode;
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::format::reader::PlaneInfo;
use wcodec::wgpu::plan::{Tuning, parse_path};
use wcodec::wgpu::shaders::{DecodePath, LutKind};
use wcodec::wgpu::*;

fn ctx() -> Option<GpuContext> {
    match GpuContext::new(&ContextOptions::default()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("SKIP: no GPU adapter ({e})");
            None
        }
    }
}

/// The paths to test: `WCODEC_GPU_PATH` if set, else subgroup (if the
/// adapter has SUBGROUP) and workgroup.
fn paths(ctx: &GpuContext) -> Vec<DecodePath> {
    if let Ok(p) = std::env::var("WCODEC_GPU_PATH") {
        return vec![parse_path(&p).unwrap()];
    }
    let mut v = Vec::new();
    if ctx.has(wgpu::Features::SUBGROUP) {
        v.push(DecodePath::SubgroupWide);
    }
    v.push(DecodePath::Workgroup);
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn laplace_i8(&mut self, n: usize, scale: f64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                let v = -(self.unit() + 1e-12).ln() * scale;
                let s = if self.next() & 1 == 0 { 1.0 } else { -1.0 };
                (s * v).round().clamp(-127.0, 127.0) as i8 as u8
            })
            .collect()
    }
    /// Values with structure along rows and columns, for the predictors.
    fn smooth_i8(&mut self, rows: usize, cols: usize) -> Vec<u8> {
        let (a, b) = ((self.next() % 7) as i64 - 3, (self.next() % 5) as i64 - 2);
        (0..rows * cols)
            .map(|k| {
                let (i, j) = ((k / cols) as i64, (k % cols) as i64);
                let noise = (self.next() % 3) as i64 - 1;
                (a * i / 2 + b * j / 3 + noise) as i8 as u8
            })
            .collect()
    }
    fn gauss(&mut self) -> f64 {
        (-2.0 * (self.unit() + 1e-300).ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
    /// Gaussian weights, with specials sprinkled in when `specials`.
    fn floats(&mut self, n: usize, scale: f64, specials: bool) -> Vec<f32> {
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
        (0..n)
            .map(|i| {
                if specials && i % 97 == 5 {
                    sp[(i / 97) % sp.len()]
                } else {
                    (self.gauss() * scale) as f32
                }
            })
            .collect()
    }
}

fn bytes_of(dtype: DType, v: &[f32]) -> Vec<u8> {
    match dtype {
        DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::F16 => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        DType::BF16 => v
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect(),
        _ => unreachable!(),
    }
}

fn enc(
    name: &str,
    dtype: DType,
    shape: &[usize],
    data: &[u8],
    opts: &EncodeOptions,
) -> EncodedTensor {
    encode_tensor(name, dtype, shape, data, opts).unwrap_or_else(|e| panic!("encoding {name}: {e}"))
}

fn file_of(tensors: &[EncodedTensor]) -> WcodecFile {
    WcodecFile::from_bytes(wcodec::format::writer::to_bytes(None, tensors).unwrap()).unwrap()
}

fn forced(m: Option<Mode>) -> EncodeOptions {
    EncodeOptions {
        force_mode: m,
        ..Default::default()
    }
}

const MODES: [Option<Mode>; 6] = [
    None,
    Some(Mode::None),
    Some(Mode::Left),
    Some(Mode::Top),
    Some(Mode::Avg),
    Some(Mode::Planar),
];

/// Decode `file` on the GPU with `dtype` through `path` (and `tune`) and
/// compare every output with the CPU reference; also the canonical stream.
/// Returns the kernel variants that ran.
fn check(
    ctx: &GpuContext,
    file: &WcodecFile,
    dtype: Option<DType>,
    path: DecodePath,
    tune: Option<Tuning>,
    what: &str,
) -> Vec<String> {
    let mut opts = GpuDecodeOptions {
        dtype,
        poison: true,
        ..Default::default()
    };
    if let Some(t) = tune {
        opts.tuning = t;
    }
    opts.tuning.path = Some(path);
    let mut dec = GpuDecoder::new(ctx, opts).unwrap();
    let (got, rep) = dec
        .decode_to_buffers(file)
        .unwrap_or_else(|e| panic!("{what} {path:?} {dtype:?}: {e}"));
    let mut k = 0;
    for (t, e) in file.tensors.iter().enumerate() {
        let want = render(e, decode_tensor(file, t).unwrap(), dtype);
        for (o, w) in output_tensors(e, dtype).iter().zip(want) {
            let g = &got[k];
            k += 1;
            assert_eq!(
                (&g.name, g.dtype, &g.shape),
                (&o.name, o.dtype, &o.shape),
                "{what}"
            );
            let bytes = read_tensor(ctx, g).unwrap();
            if bytes != w {
                let i = bytes
                    .iter()
                    .zip(&w)
                    .position(|(a, b)| a != b)
                    .unwrap_or(bytes.len().min(w.len()));
                panic!(
                    "{what}: {path:?} {dtype:?} tensor {} ({} {:?} {}): {} bytes vs {}, first difference at byte {i}: got {:02x?} want {:02x?} [{}]",
                    o.name,
                    o.dtype,
                    o.shape,
                    e.encoding.name(),
                    bytes.len(),
                    w.len(),
                    &bytes[i..(i + 8).min(bytes.len())],
                    &w[i..(i + 8).min(w.len())],
                    rep.variants.join("; ")
                );
            }
        }
    }
    assert_eq!(k, got.len());
    // the host's time by phase is accounted, and within the decode's wall time
    let ph = rep.phases;
    let sum = ph.plan_s + ph.acquire_s + ph.stage_s + ph.submit_s + ph.wait_s;
    assert!(
        ph.plan_s > 0.0 && (rep.chunks == 0 || ph.stage_s > 0.0 && ph.submit_s > 0.0),
        "{what}: phases {ph:?}"
    );
    assert!(
        sum <= rep.wall_s + 1e-6,
        "{what}: phases {ph:?} exceed wall {}",
        rep.wall_s
    );
    // the canonical stream (what the safetensors writer and verify read)
    let mut sums = wcodec::wgpu::decode::ChecksumSink::new(file).unwrap();
    let mut s = CanonStream::new(&mut dec, file).unwrap();
    while let Some((job, piece, _)) = s
        .next_piece()
        .unwrap_or_else(|e| panic!("{what} {path:?} stream: {e}"))
    {
        sums.feed(job, &piece).unwrap();
    }
    sums.finish()
        .unwrap_or_else(|e| panic!("{what} {path:?} stream: {e}"));
    rep.variants
}

const SHAPES: &[&[usize]] = &[
    &[1, 1],
    &[65, 63],
    &[1, 5000],
    &[5000, 1],
    &[10000],
    &[64, 64],
    &[130, 200],
    &[5, 7, 9],
    &[2, 3],
    &[3],
    &[200, 4],
];

#[test]
fn int8_every_mode_and_shape() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(0x1234_5678);
    let mut ts = Vec::new();
    for (si, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let cols = if shape.len() >= 2 { n / shape[0] } else { n };
        for (mi, m) in MODES.iter().enumerate() {
            for dtype in [DType::I8, DType::U8] {
                let data = if mi % 2 == 0 {
                    rng.laplace_i8(n, 12.0)
                } else {
                    rng.smooth_i8(n / cols, cols)
                };
                ts.push(enc(
                    &format!("t{si}.m{mi}.{dtype}"),
                    dtype,
                    shape,
                    &data,
                    &forced(*m),
                ));
            }
        }
    }
    let file = file_of(&ts);
    for path in paths(&ctx) {
        check(&ctx, &file, None, path, None, "int8");
    }
}

#[test]
fn int8_every_kernel_variant() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(77);
    let mut ts = Vec::new();
    for (mi, m) in MODES.iter().enumerate() {
        ts.push(enc(
            &format!("a{mi}"),
            DType::I8,
            &[150, 130],
            &rng.smooth_i8(150, 130),
            &forced(*m),
        ));
        ts.push(enc(
            &format!("b{mi}"),
            DType::I8,
            &[9000],
            &rng.laplace_i8(9000, 30.0),
            &forced(*m),
        ));
    }
    // incompressible tiles (more words than a small stage holds)
    ts.push(enc(
        "noise",
        DType::I8,
        &[64, 256],
        &(0..64 * 256).map(|_| rng.next() as u8).collect::<Vec<_>>(),
        &forced(Some(Mode::None)),
    ));
    let file = file_of(&ts);
    for path in paths(&ctx) {
        for (tiles, lut, stage, fast) in [
            (1, LutKind::Slot32, 0, false),
            (2, LutKind::Split, 2048, true),
            (3, LutKind::Slot32, 512, false),
            (4, LutKind::Split, 0, true),
        ] {
            let tune = Tuning {
                tiles,
                lut: Some(lut),
                stage_words: stage,
                workgroups: 3,
                fast,
                fast_wgs: 2,
                ..Default::default()
            };
            check(
                &ctx,
                &file,
                None,
                path,
                Some(tune),
                &format!("variant tiles={tiles} {lut:?} stage={stage} fast={fast}"),
            );
        }
    }
}

#[test]
fn several_tables() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(99);
    // four regimes of tiles: the encoder should want more than one table
    let (r, c) = (256, 256);
    let mut data = vec![0u8; r * c];
    for i in 0..r {
        for j in 0..c {
            let regime = (i / 64 + j / 64) % 4;
            data[i * c + j] = match regime {
                0 => rng.laplace_i8(1, 1.0)[0],
                1 => rng.laplace_i8(1, 60.0)[0],
                2 => (rng.next() % 4) as u8,
                _ => (rng.next() % 200) as u8 ^ 0x55,
            };
        }
    }
    let t = enc(
        "mixed",
        DType::I8,
        &[r, c],
        &data,
        &EncodeOptions::default(),
    );
    let file = file_of(&[t]);
    let PlaneInfo::Rans { tables, .. } = &file.tensors[0].planes[0] else {
        panic!("not coded")
    };
    assert!(
        tables.len() >= 2,
        "the test needs a plane with several tables, got {}",
        tables.len()
    );
    for path in paths(&ctx) {
        check(&ctx, &file, None, path, None, "tables");
        let tune = Tuning {
            lut: Some(LutKind::Split),
            ..Default::default()
        };
        check(&ctx, &file, None, path, Some(tune), "tables split");
    }
}

#[test]
fn float_split_every_dtype_and_cast() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(4242);
    let mut ts = Vec::new();
    for dtype in [DType::BF16, DType::F16, DType::F32] {
        for (si, shape) in [
            &[1usize][..],
            &[3],
            &[4095],
            &[4096],
            &[4097],
            &[10001],
            &[65, 63],
            &[2, 3, 5],
        ]
        .iter()
        .enumerate()
        {
            let n: usize = shape.iter().product();
            for (mi, m) in [
                None,
                Some(Mode::Left),
                Some(Mode::Top),
                Some(Mode::Avg),
                Some(Mode::Planar),
            ]
            .iter()
            .enumerate()
            {
                let v = rng.floats(n, 0.05, si % 2 == 0);
                ts.push(enc(
                    &format!("{dtype}.s{si}.m{mi}"),
                    dtype,
                    shape,
                    &bytes_of(dtype, &v),
                    &forced(*m),
                ));
            }
        }
    }
    let file = file_of(&ts);
    let coded = file
        .tensors
        .iter()
        .filter(|e| e.encoding == wcodec::codec::Encoding::FloatSplit)
        .count();
    assert!(
        coded > ts.len() / 2,
        "most float tensors should be float-split ({coded} of {})",
        ts.len()
    );
    for path in paths(&ctx) {
        for dt in [None, Some(DType::F32), Some(DType::F16), Some(DType::BF16)] {
            check(&ctx, &file, dt, path, None, "float-split");
        }
    }
}

#[test]
fn quant_every_output() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(31337);
    let mut ts = Vec::new();
    for src in [DType::F32, DType::F16, DType::BF16] {
        for bits in [8, 4] {
            for (si, shape) in [
                &[65usize, 63][..],
                &[1, 100],
                &[100, 1],
                &[64, 64],
                &[3, 5, 7],
                &[130, 66],
            ]
            .iter()
            .enumerate()
            {
                let n: usize = shape.iter().product();
                for (mi, m) in [
                    None,
                    Some(Mode::Left),
                    Some(Mode::Top),
                    Some(Mode::Avg),
                    Some(Mode::Planar),
                ]
                .iter()
                .enumerate()
                {
                    // tiny weights in one row set make subnormal scales
                    let scale = if si == 4 { 1e-40 } else { 0.02 };
                    let v = rng.floats(n, scale, false);
                    let o = EncodeOptions {
                        quant_bits: Some(bits),
                        force_mode: *m,
                        ..Default::default()
                    };
                    ts.push(enc(
                        &format!("{src}.q{bits}.s{si}.m{mi}"),
                        src,
                        shape,
                        &bytes_of(src, &v),
                        &o,
                    ));
                }
            }
        }
    }
    let file = file_of(&ts);
    for path in paths(&ctx) {
        for dt in [
            None,
            Some(DType::I8),
            Some(DType::F32),
            Some(DType::F16),
            Some(DType::BF16),
        ] {
            check(&ctx, &file, dt, path, None, "quant");
        }
    }
}

#[test]
fn raw_tensors_and_casts() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(5);
    let ts = vec![
        enc("empty", DType::F32, &[0, 4], &[], &EncodeOptions::default()),
        enc(
            "tiny",
            DType::F32,
            &[3],
            &bytes_of(DType::F32, &rng.floats(3, 1.0, false)),
            &EncodeOptions::default(),
        ),
        enc(
            "ints",
            DType::I32,
            &[5, 3],
            &(0..60).map(|i| i as u8).collect::<Vec<_>>(),
            &EncodeOptions::default(),
        ),
        enc(
            "i8small",
            DType::I8,
            &[7],
            &[1, 2, 3, 4, 5, 6, 7],
            &EncodeOptions::default(),
        ),
        enc(
            "h",
            DType::F16,
            &[5],
            &bytes_of(DType::F16, &rng.floats(5, 1.0, false)),
            &EncodeOptions::default(),
        ),
        enc(
            "w",
            DType::I8,
            &[300, 40],
            &rng.laplace_i8(12000, 9.0),
            &EncodeOptions::default(),
        ),
    ];
    let file = file_of(&ts);
    assert!(
        file.tensors
            .iter()
            .any(|e| e.encoding == wcodec::codec::Encoding::Raw)
    );
    for path in paths(&ctx) {
        for dt in [None, Some(DType::F16), Some(DType::F32)] {
            check(&ctx, &file, dt, path, None, "raw");
        }
    }
}

/// A tensor larger than the adapter's storage binding (128 MiB on lavapipe):
/// it is cut into chunks at band boundaries; the 2-D grid is unaligned, so
/// chunks meet inside output words.
#[test]
fn larger_than_one_binding() {
    let Some(ctx) = ctx() else { return };
    let binding = ctx.limits.max_storage_buffer_binding_size;
    if binding > 256 << 20 {
        eprintln!(
            "SKIP: storage bindings of {binding} bytes; this test targets small-binding adapters (lavapipe)"
        );
        return;
    }
    let mut rng = Rng(8);
    let cols = 16383usize; // odd: rows start inside words
    let rows = (binding as usize + (8 << 20)) / cols + 1;
    let data = rng.laplace_i8(rows * cols, 20.0);
    let big = enc(
        "big",
        DType::I8,
        &[rows, cols],
        &data,
        &EncodeOptions::default(),
    );
    let file = file_of(&[big]);
    drop(data);
    for path in paths(&ctx) {
        check(&ctx, &file, None, path, None, "big");
    }
}

/// Flipped stream bytes: the decode never hangs, and reports the tensor.
#[test]
fn corrupt_streams_are_reported() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(123);
    let ts = vec![
        enc(
            "a",
            DType::I8,
            &[128, 192],
            &rng.laplace_i8(128 * 192, 10.0),
            &EncodeOptions::default(),
        ),
        enc(
            "b",
            DType::BF16,
            &[9000],
            &bytes_of(DType::BF16, &rng.floats(9000, 0.1, false)),
            &EncodeOptions::default(),
        ),
        enc(
            "c",
            DType::I8,
            &[70, 70],
            &rng.smooth_i8(70, 70),
            &forced(Some(Mode::Avg)),
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
    assert_eq!(streams.len(), 3);
    let mut cases = 0;
    for trial in 0..24 {
        let (name, r) = &streams[trial % streams.len()];
        let mut bytes = clean.clone();
        let pos = r.start + (rng.next() as usize % r.len());
        bytes[pos] ^= 1 << (rng.next() % 8);
        if trial % 3 == 2 {
            bytes[r.start + (rng.next() as usize % r.len())] = rng.next() as u8;
        }
        let f = WcodecFile::from_bytes(bytes).unwrap();
        let t = f.tensors.iter().position(|e| &e.name == name).unwrap();
        let cpu_fails = decode_tensor(&f, t).is_err();
        for path in paths(&ctx) {
            // every other trial through the fast kernel's interleaved, direct form
            let opts = GpuDecodeOptions {
                verify: true,
                tuning: Tuning {
                    path: Some(path),
                    fast_ilp: 1 + (trial as u32 / 2 % 2),
                    fast_direct: Some(trial / 2 % 2 == 1),
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut dec = GpuDecoder::new(&ctx, opts).unwrap();
            match dec.decode_to_buffers(&f) {
                Ok(_) => assert!(
                    !cpu_fails,
                    "trial {trial} {path:?}: the CPU rejects tensor {name}, the GPU accepted it"
                ),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(name.as_str()),
                        "trial {trial} {path:?}: the error does not name tensor {name}: {msg}"
                    );
                    assert!(
                        cpu_fails,
                        "trial {trial} {path:?}: the GPU rejects what the CPU accepts: {msg}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 0);
}

/// The library API on a device the caller created.
#[test]
fn decode_on_a_callers_device() {
    let (_inst, adapters) = wcodec::wgpu::context::enumerate();
    let Some(adapter) = adapters.into_iter().next() else {
        eprintln!("SKIP: no GPU adapter");
        return;
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("caller"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    let mut rng = Rng(1);
    let file = file_of(&[enc(
        "w",
        DType::I8,
        &[100, 100],
        &rng.laplace_i8(10000, 5.0),
        &EncodeOptions::default(),
    )]);
    let (ts, _) = decode_file(&device, &queue, &file, &GpuDecodeOptions::default()).unwrap();
    let ctx = GpuContext::from_device(device, queue);
    assert_eq!(
        read_tensor(&ctx, &ts[0]).unwrap(),
        decode_tensor(&file, 0).unwrap()
    );
}

/// `decode_to_safetensors` writes the same file as the CPU path.
#[test]
fn safetensors_match_the_cpu() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(9);
    let ts = vec![
        enc(
            "q",
            DType::F32,
            &[65, 63],
            &bytes_of(DType::F32, &rng.floats(65 * 63, 0.1, false)),
            &EncodeOptions {
                quant_bits: Some(8),
                ..Default::default()
            },
        ),
        enc(
            "b",
            DType::BF16,
            &[5000],
            &bytes_of(DType::BF16, &rng.floats(5000, 0.1, true)),
            &EncodeOptions::default(),
        ),
        enc(
            "i",
            DType::I8,
            &[33, 65],
            &rng.laplace_i8(33 * 65, 3.0),
            &EncodeOptions::default(),
        ),
        enc(
            "r",
            DType::F32,
            &[2],
            &bytes_of(DType::F32, &[1.0, 2.0]),
            &EncodeOptions::default(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m.wcodec");
    wcodec::format::write_file(&src, None, &ts).unwrap();
    let file = WcodecFile::open(&src).unwrap();
    for path in paths(&ctx) {
        for dt in [None, Some(DType::F16), Some(DType::I8)] {
            let a = dir.path().join("gpu.safetensors");
            let b = dir.path().join("cpu.safetensors");
            let opts = GpuDecodeOptions {
                tuning: Tuning {
                    path: Some(path),
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut dec = GpuDecoder::new(&ctx, opts).unwrap();
            decode_to_safetensors(&mut dec, &file, &a, dt, &|_| {}).unwrap();
            let copts = wcodec::cpu::decode::DecodeOptions {
                dtype: dt,
                ..Default::default()
            };
            wcodec::cpu::decode::decode_to_safetensors(&file, &b, &copts, &|_| {}).unwrap();
            assert!(
                std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
                "{path:?} {dt:?}: the files differ"
            );
        }
    }
}

/// A .wcodec (its bytes) of int8 tensors `w0`, `w1`, … of these shapes,
/// Laplace-distributed with growing scales.
fn int8_file(rng: &mut Rng, shapes: &[(usize, usize)]) -> Vec<u8> {
    let ts: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(rows, cols))| {
            enc(
                &format!("w{i}"),
                DType::I8,
                &[rows, cols],
                &rng.laplace_i8(rows * cols, 12.0 + 2.0 * i as f64),
                &EncodeOptions::default(),
            )
        })
        .collect();
    wcodec::format::writer::to_bytes(None, &ts).unwrap()
}

/// The CPU path's safetensors of `file` (written in `dir`), as bytes.
fn cpu_safetensors(file: &WcodecFile, dir: &std::path::Path) -> Vec<u8> {
    let p = dir.join("cpu.safetensors");
    wcodec::cpu::decode::decode_to_safetensors(file, &p, &Default::default(), &|_| {}).unwrap();
    let b = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    b
}

/// `decode_to_safetensors` over many chunks (4 MiB of input each), where
/// the stream hands the writer pieces of more than 1 MiB and reuses their
/// memory once written (`CanonStream::recycle`): the same file as the CPU.
#[test]
fn safetensors_match_the_cpu_across_many_chunks() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(10);
    let clean = int8_file(&mut rng, &[(1024, 5000), (700, 4096), (2048, 3000)]);
    let file = WcodecFile::from_bytes(clean).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let want = cpu_safetensors(&file, dir.path());
    for path in paths(&ctx) {
        let a = dir.path().join("gpu.safetensors");
        let opts = GpuDecodeOptions {
            tuning: Tuning {
                path: Some(path),
                ..Default::default()
            },
            staging_bytes: 4 << 20,
            poison: true,
            ..Default::default()
        };
        let mut dec = GpuDecoder::new(&ctx, opts).unwrap();
        let rep = decode_to_safetensors(&mut dec, &file, &a, None, &|_| {}).unwrap();
        assert!(rep.chunks >= 4, "{} chunks", rep.chunks);
        assert!(
            std::fs::read(&a).unwrap() == want,
            "{path:?}: the files differ"
        );
        std::fs::remove_file(&a).unwrap();
    }
}

/// A decode to a file that fails (a corrupt stream in the first of several
/// chunks, the next chunk's readback still in flight) and a stream dropped
/// after one piece leave the context usable: no readback buffer goes back
/// to the pool mapped (`InFlight`'s drop), and a clean decode on the same
/// context then writes the CPU's file. Regression: the next decode failed
/// with "a submission index that has not been returned" or "still mapped".
#[test]
fn failed_and_abandoned_streams_leave_the_context_usable() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(11);
    let clean = int8_file(&mut rng, &[(1024, 4096); 3]);
    let file = WcodecFile::from_bytes(clean.clone()).unwrap();
    let PlaneInfo::Rans { stream, .. } = &file.tensors[0].planes[0] else {
        panic!("w0 is not rANS-coded")
    };
    let mut bad = clean.clone();
    for k in 0..64 {
        let pos = stream.start + (stream.len() / 64) * k + (rng.next() as usize % 16);
        bad[pos] ^= 0x5a;
    }
    let bad = WcodecFile::from_bytes(bad).unwrap();
    assert!(
        decode_tensor(&bad, 0).is_err(),
        "the CPU accepts the corrupted w0"
    );
    let dir = tempfile::tempdir().unwrap();
    let want = cpu_safetensors(&file, dir.path());
    let opts = GpuDecodeOptions {
        staging_bytes: 4 << 20,
        ..Default::default()
    };
    let out = dir.path().join("gpu.safetensors");
    for round in 0..2 {
        let mut dec = GpuDecoder::new(&ctx, opts.clone()).unwrap();
        let e = decode_to_safetensors(&mut dec, &bad, &out, None, &|_| {}).unwrap_err();
        assert!(e.to_string().contains("w0"), "round {round}: {e}");
        assert!(
            !out.exists(),
            "round {round}: a failed decode left its output"
        );
        {
            let mut s = CanonStream::new(&mut dec, &file).unwrap();
            let (job, piece, _) = s.next_piece().unwrap().unwrap();
            assert!(job == 0 && !piece.is_empty());
        }
        let rep = decode_to_safetensors(&mut dec, &file, &out, None, &|_| {}).unwrap();
        assert!(rep.chunks >= 4, "{} chunks", rep.chunks);
        assert!(
            std::fs::read(&out).unwrap() == want,
            "round {round}: the files differ"
        );
        std::fs::remove_file(&out).unwrap();
    }
}

/// The fast kernel (shaders/rans_fast.wgsl) on the tiles it takes, mixed
/// with tiles it leaves to the general kernel in the same planes: full
/// 64x64 and 1x4096 tiles, NONE and PLANAR among LEFT/TOP/AVG, several
/// tables, U8, narrow tails (1- and 2-bit: 16 and 8 tail steps), tiles too
/// long for its stage, float-split BF16/F16/F32 with every cast; several
/// rounds per workgroup and one.
#[test]
fn fast_kernel_tiles() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(2026);
    let mut ts = Vec::new();
    // int8 2-D (cols % 64 == 0 and not), 1-D; default modes and forced ones
    for (si, shape) in [&[192usize, 320][..], &[130, 196], &[3 * 4096 + 100]]
        .iter()
        .enumerate()
    {
        let n: usize = shape.iter().product();
        let cols = if shape.len() >= 2 { n / shape[0] } else { n };
        for (mi, m) in [None, Some(Mode::None), Some(Mode::Planar), Some(Mode::Avg)]
            .iter()
            .enumerate()
        {
            for dtype in [DType::I8, DType::U8] {
                let data = if mi % 2 == 0 {
                    rng.laplace_i8(n, 9.0)
                } else {
                    rng.smooth_i8(n / cols, cols)
                };
                ts.push(enc(
                    &format!("i{si}.m{mi}.{dtype}"),
                    dtype,
                    shape,
                    &data,
                    &forced(*m),
                ));
            }
        }
    }
    // narrow tails: 2 and 4 distinct values
    for (k, span) in [(0, 2u64), (1, 4)] {
        let data: Vec<u8> = (0..128 * 192).map(|_| (rng.next() % span) as u8).collect();
        ts.push(enc(
            &format!("narrow{k}"),
            DType::I8,
            &[128, 192],
            &data,
            &EncodeOptions::default(),
        ));
    }
    // four regimes: several tables, every tile full
    let (r, c) = (256, 256);
    let mut data = vec![0u8; r * c];
    for i in 0..r {
        for j in 0..c {
            data[i * c + j] = match (i / 64 + j / 64) % 4 {
                0 => rng.laplace_i8(1, 1.0)[0],
                1 => rng.laplace_i8(1, 60.0)[0],
                2 => (rng.next() % 4) as u8,
                _ => (rng.next() % 200) as u8 ^ 0x55,
            };
        }
    }
    ts.push(enc(
        "mixed",
        DType::I8,
        &[r, c],
        &data,
        &EncodeOptions::default(),
    ));
    // mostly low-entropy tiles and one of noise: the noise tile is too long
    // for the stage the others choose (or a stage of 1024 words), and goes
    // to the general kernel
    let mut data = rng.laplace_i8(64 * 64 * 120, 0.7);
    for (i, v) in data[64 * 64 * 50..64 * 64 * 51].iter_mut().enumerate() {
        *v = (rng.next() >> (i % 7)) as u8;
    }
    ts.push(enc(
        "spiky",
        DType::I8,
        &[64, 64 * 120],
        &data,
        &forced(Some(Mode::None)),
    ));
    // one table for tiles of low and high entropy: with a stage of 1024
    // words the long ones go to the general kernel, whose table bit is set
    let mut data = Vec::new();
    for _ in 0..128 {
        for tx in 0..8 {
            data.extend(rng.laplace_i8(64, if tx % 2 == 0 { 1.5 } else { 40.0 }));
        }
    }
    ts.push(enc(
        "onetable",
        DType::I8,
        &[128, 512],
        &data,
        &EncodeOptions {
            max_tables: 1,
            force_mode: Some(Mode::None),
            ..Default::default()
        },
    ));
    let file = file_of(&ts);
    for path in paths(&ctx) {
        for (warps, wgs, stage, ilp, direct) in [
            (8, 0, 0, 1, false),
            (2, 3, 0, 1, false),
            (4, 5, 1024, 1, false),
            (4, 3, 0, 2, false),
            (3, 5, 1024, 2, false),
            (8, 0, 0, 1, true),
            (2, 3, 0, 2, true),
        ] {
            let tune = Tuning {
                fast_warps: warps,
                fast_wgs: wgs,
                fast_stage: stage,
                fast_ilp: ilp,
                fast_direct: Some(direct),
                ..Default::default()
            };
            let v = check(
                &ctx,
                &file,
                None,
                path,
                Some(tune),
                &format!(
                    "fast int8 warps={warps} wgs={wgs} stage={stage} ilp={ilp} direct={direct}"
                ),
            );
            assert!(
                v.iter().any(|v| v.starts_with("fast-")),
                "{path:?}: the fast kernel did not run: {v:?}"
            );
            // a direct kernel takes every full NONE/PLANAR tile, whatever its length
            assert!(
                v.iter().any(|v| !v.starts_with("fast-")),
                "{path:?}: the general kernel did not run: {v:?}"
            );
        }
    }
    // float-split, every dtype and cast
    let mut ts = Vec::new();
    for dtype in [DType::BF16, DType::F16, DType::F32] {
        for (k, n) in [3 * 4096usize, 2 * 4096 + 77].iter().enumerate() {
            let v = rng.floats(*n, 0.02, k == 1);
            ts.push(enc(
                &format!("{dtype}.{k}"),
                dtype,
                &[*n],
                &bytes_of(dtype, &v),
                &EncodeOptions::default(),
            ));
        }
    }
    let file = file_of(&ts);
    for path in paths(&ctx) {
        for (k, dt) in [None, Some(DType::F32), Some(DType::F16), Some(DType::BF16)]
            .into_iter()
            .enumerate()
        {
            let tune = Tuning {
                fast_wgs: 1,
                fast_ilp: 1 + (k as u32 % 2),
                fast_direct: Some(k >= 2),
                ..Default::default()
            };
            let v = check(&ctx, &file, dt, path, Some(tune), "fast float-split");
            assert!(
                v.iter().any(|v| v.starts_with("fast-")),
                "{path:?}: the fast kernel did not run: {v:?}"
            );
        }
    }
}

/// Weights with structure (a smooth low-rank part, rows of different
/// spread) and noise, like trained layers, so the lossy encoder's RD choice
/// picks transforms and predictors on some tiles and SPATIAL on others.
fn weightlike(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let (fa, fb) = (
        3.0 + (rng.next() % 9) as f64,
        5.0 + (rng.next() % 13) as f64,
    );
    let mut v = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        let s = 0.01 * (1.0 + rng.unit());
        for j in 0..cols {
            let smooth = 0.03 * ((i as f64 / fa).sin() + (j as f64 / fb).cos());
            let w = if j % 128 < 64 { smooth } else { 0.0 } + s * rng.gauss();
            v.push(w as f32);
        }
    }
    v
}

/// Lossy files: whole models at several `--bpw` targets (RD-chosen tile
/// types, edge shapes 1x1, 65x63, 1xN, non-multiples of 8, rank 3, a 1-D
/// tensor that stays lossless), and every tile type forced with every
/// predictor; decoded as the source dtype, as int8 pixels + tile scales,
/// and dequantised to f32, f16 and bf16, through every path, poisoned,
/// byte for byte against the CPU reference.
#[test]
fn lossy_every_type_shape_bpw_and_output() {
    use wcodec::codec::encoder::LossyOptions;
    use wcodec::codec::lossy::{LossyParams, Predictor};
    use wcodec::codec::lossy_enc::LossyConfig;
    use wcodec::codec::ratecontrol::{Target, encode_model};
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(0x10551);
    let lossy = |target, force| EncodeOptions {
        lossy: Some(LossyOptions {
            target,
            per_tensor: false,
            config: LossyConfig {
                force,
                ..Default::default()
            },
        }),
        ..Default::default()
    };
    let shapes: &[(&[usize], DType)] = &[
        (&[1, 1], DType::F32),
        (&[65, 63], DType::F32),
        (&[1, 5000], DType::BF16),
        (&[64, 64], DType::F16),
        (&[130, 200], DType::F32),
        (&[3, 50, 70], DType::BF16),
        (&[72, 40], DType::F32),
        (&[60, 52], DType::F16),
        (&[200, 12], DType::F32),
        (&[9000], DType::F32),
    ];
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(s, d)| {
            let n: usize = s.iter().product();
            let rows = if s.len() >= 2 { s[0] } else { 1 };
            bytes_of(*d, &weightlike(&mut rng, rows, n / rows))
        })
        .collect();
    let names: Vec<String> = (0..shapes.len()).map(|i| format!("w{i}")).collect();
    let inputs: Vec<(&str, DType, &[usize], &[u8])> = shapes
        .iter()
        .zip(&data)
        .zip(&names)
        .map(|(((s, d), b), n)| (n.as_str(), *d, *s, b.as_slice()))
        .collect();
    let mut files = Vec::new();
    for bpw in [2.0, 3.2, 5.0] {
        let (ts, _) = encode_model(&inputs, &lossy(Target::Bpw(bpw), None), None).unwrap();
        files.push((format!("--bpw {bpw}"), file_of(&ts)));
    }
    for m in Mode::LOSSY {
        let mut ts = Vec::new();
        for p in Predictor::ALL {
            let o = lossy(Target::RelStep(0.4), Some((m, p)));
            let (t, _) = encode_model(&inputs[4..7], &o, None).unwrap();
            ts.extend(t.into_iter().map(|mut t| {
                t.name = format!("{}.{}", t.name, p.name());
                t
            }));
        }
        files.push((format!("forced {}", m.name()), file_of(&ts)));
    }
    // what the files hold: tile types with each predictor
    let mut seen = std::collections::BTreeMap::new();
    for (_, f) in &files {
        for e in &f.tensors {
            if let PlaneInfo::Rans { index, .. } = &e.planes[0]
                && e.encoding == wcodec::codec::Encoding::Lossy
            {
                for te in index.iter() {
                    let p = LossyParams::unpack(te.params).unwrap().pred;
                    *seen.entry((te.mode.name(), p.name())).or_insert(0) += 1;
                }
            }
        }
    }
    eprintln!("lossy tiles by type and predictor: {seen:?}");
    for m in Mode::LOSSY {
        for p in Predictor::ALL {
            assert!(
                seen.contains_key(&(m.name(), p.name())),
                "no {m:?}+{p:?} tile"
            );
        }
    }
    // full 64x64 tiles go to the fast lossy kernel (rans_fast_lossy.wgsl)
    let full_tiles = |f: &WcodecFile| {
        f.tensors.iter().any(|e| {
            e.encoding == wcodec::codec::Encoding::Lossy
                && e.shape.len() >= 2
                && e.shape[0] >= 64
                && e.shape[1..].iter().product::<usize>() >= 64
        })
    };
    let no_fast = Tuning {
        fast_lossy: false,
        ..Default::default()
    };
    for path in paths(&ctx) {
        for (what, f) in &files {
            for dt in [
                None,
                Some(DType::I8),
                Some(DType::F32),
                Some(DType::F16),
                Some(DType::BF16),
            ] {
                let v = check(&ctx, f, dt, path, None, &format!("lossy {what}"));
                assert!(v.iter().any(|v| v.contains("lossy")), "{v:?}");
                if full_tiles(f) {
                    assert!(v.iter().any(|v| v.starts_with("fast-lossy-")), "{v:?}");
                }
                // the general kernel alone
                let v = check(
                    &ctx,
                    f,
                    dt,
                    path,
                    Some(no_fast.clone()),
                    &format!("lossy {what} general"),
                );
                assert!(!v.iter().any(|v| v.starts_with("fast-lossy-")), "{v:?}");
            }
        }
    }
}

/// Flipped bits in lossy streams: the GPU rejects (naming the tensor) exactly
/// what the CPU rejects, whether the rANS end checks or the checksum of the
/// rebuilt pixels catch it; nothing hangs.
#[test]
fn lossy_corrupt_streams_are_caught() {
    use wcodec::codec::encoder::LossyOptions;
    use wcodec::codec::lossy_enc::LossyConfig;
    use wcodec::codec::ratecontrol::Target;
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng(4242);
    let mut ts = Vec::new();
    for (i, force) in [
        None,
        Some((Mode::Dct8, wcodec::codec::lossy::Predictor::Left)),
        Some((Mode::Dst4, wcodec::codec::lossy::Predictor::Top)),
        Some((Mode::Spatial, wcodec::codec::lossy::Predictor::Left)),
    ]
    .into_iter()
    .enumerate()
    {
        let o = EncodeOptions {
            lossy: Some(LossyOptions {
                target: Target::RelStep(0.5),
                per_tensor: true,
                config: LossyConfig {
                    force,
                    ..Default::default()
                },
            }),
            ..Default::default()
        };
        let w = weightlike(&mut rng, 128, 136);
        ts.push(enc(
            &format!("l{i}"),
            DType::F32,
            &[128, 136],
            &bytes_of(DType::F32, &w),
            &o,
        ));
    }
    let clean = wcodec::format::writer::to_bytes(None, &ts).unwrap();
    let file = WcodecFile::from_bytes(clean.clone()).unwrap();
    let streams: Vec<_> = file
        .tensors
        .iter()
        .filter_map(|e| match &e.planes[0] {
            PlaneInfo::Rans { stream, .. } => Some((e.name.clone(), stream.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(streams.len(), 4);
    let (mut rejected, mut by_checksum) = (0, 0);
    for trial in 0..32 {
        let (name, r) = &streams[trial % streams.len()];
        let mut bytes = clean.clone();
        let pos = r.start + (rng.next() as usize % r.len());
        bytes[pos] ^= 1 << (rng.next() % 8);
        if trial % 4 == 3 {
            bytes[r.start + (rng.next() as usize % r.len())] = rng.next() as u8;
        }
        let f = WcodecFile::from_bytes(bytes).unwrap();
        let t = f.tensors.iter().position(|e| &e.name == name).unwrap();
        let cpu = decode_tensor(&f, t);
        for path in paths(&ctx) {
            for dtype in [None, Some(DType::I8)] {
                let opts = GpuDecodeOptions {
                    verify: true,
                    dtype,
                    tuning: Tuning {
                        path: Some(path),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let mut dec = GpuDecoder::new(&ctx, opts).unwrap();
                match dec.decode_to_buffers(&f) {
                    Ok(_) => assert!(
                        cpu.is_ok(),
                        "trial {trial} {path:?}: the CPU rejects tensor {name}, the GPU accepted it"
                    ),
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(msg.contains(name.as_str()), "trial {trial}: {msg}");
                        assert!(
                            cpu.is_err(),
                            "trial {trial} {path:?}: the GPU rejects what the CPU accepts: {msg}"
                        );
                        rejected += 1;
                        if matches!(e, wcodec::Error::Checksum { .. }) {
                            by_checksum += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("{rejected} rejections, {by_checksum} by the checksum");
    assert!(rejected > 0 && by_checksum > 0);
}

//! Shared test helpers: the real sample model, weight-like random data, and
//! for the GPU tests the context (or a skip line) and output poisoning.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use wcodec::codec::encoder::{EncodeOptions, EncodedTensor, encode_tensor};
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::io::safetensors::SafeInput;
use wcodec::wgpu::context::{ContextOptions, GpuContext};

/// all-MiniLM-L6-v2, if fetched (`scripts/fetch_minilm.sh`); otherwise prints
/// why the calling test is skipped and returns `None`.
pub fn minilm() -> Option<SafeInput> {
    let path = std::env::var_os("WCODEC_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("WCODEC_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/wcodec")
                });
            cache.join("all-MiniLM-L6-v2/model.safetensors")
        });
    if !path.exists() {
        eprintln!(
            "SKIP: all-MiniLM-L6-v2 not found at {} (run scripts/fetch_minilm.sh)",
            path.display()
        );
        if std::env::var_os("WCODEC_REQUIRE_MINILM").is_some() {
            panic!("WCODEC_REQUIRE_MINILM is set but the model is missing");
        }
        return None;
    }
    Some(SafeInput::open(&path).expect("the fetched model opens"))
}

/// A tensor as (name, dtype, shape, bytes).
pub type Tensor = (String, DType, Vec<usize>, Vec<u8>);

/// Every tensor of the model, with F32 tensors cast to `dtype` (RNE).
pub fn cast_model(m: &SafeInput, dtype: DType) -> Vec<Tensor> {
    m.tensors
        .iter()
        .map(|t| {
            let d = m.data(t);
            if t.dtype == DType::F32 && dtype != DType::F32 {
                let v = wcodec::codec::encoder::floats_to_f32(DType::F32, d);
                (
                    t.name.clone(),
                    dtype,
                    t.shape.clone(),
                    wcodec::codec::decoder::f32_to_bytes(&v, dtype),
                )
            } else {
                (t.name.clone(), t.dtype, t.shape.clone(), d.to_vec())
            }
        })
        .collect()
}

/// Encode tensors and round-trip them through the container in memory.
pub fn encode_all(tensors: &[Tensor], opts: &EncodeOptions) -> (Vec<EncodedTensor>, WcodecFile) {
    let enc: Vec<EncodedTensor> = tensors
        .iter()
        .map(|(n, d, s, b)| encode_tensor(n, *d, s, b, opts).expect("encodes"))
        .collect();
    let bytes = wcodec::format::writer::to_bytes(None, &enc).expect("serialises");
    let file = WcodecFile::from_bytes(bytes).expect("reads back");
    (enc, file)
}

/// A small, fast, seedable generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.next_u64()
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Laplacian with scale `b`.
    pub fn laplace(&mut self, b: f64) -> f64 {
        let u = self.uniform() - 0.5;
        -b * u.signum() * (1.0 - 2.0 * u.abs()).max(1e-300).ln()
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// `n` values ~ N(0, sigma²), none exactly zero.
    pub fn normals(&mut self, n: usize, sigma: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = (self.normal() * sigma) as f32;
                if v == 0.0 { sigma as f32 * 1e-3 } else { v }
            })
            .collect()
    }
}

/// Int8 weights like per-row-absmax quantised layers: Laplacian, clamped to ±127.
pub fn int8_weights(rng: &mut Rng, n: usize, scale: f64) -> Vec<u8> {
    (0..n)
        .map(|_| (rng.laplace(scale).round().clamp(-127.0, 127.0) as i8) as u8)
        .collect()
}

/// f32 weights like a dense layer: Gaussian with a per-row spread.
pub fn f32_weights(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let s = 0.02 * (1.0 + rng.uniform());
        for _ in 0..cols {
            v.push((rng.normal() * s) as f32);
        }
    }
    v
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// GPU tests of one binary run one at a time: on lavapipe (a CPU device) tests
/// in parallel only compete for the same cores, and run many times slower.
static SERIAL: Mutex<()> = Mutex::new(());

/// A context held by one test at a time.
pub struct Gpu {
    pub ctx: GpuContext,
    _turn: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Gpu {
    type Target = GpuContext;
    fn deref(&self) -> &GpuContext {
        &self.ctx
    }
}

/// The machine's best adapter, or `None` after printing a skip line.
pub fn ctx() -> Option<Gpu> {
    ctx_with(&ContextOptions::default())
}

/// A context with options (e.g. without subgroups), or `None` after a skip line.
pub fn ctx_with(opts: &ContextOptions) -> Option<Gpu> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    match GpuContext::new(opts) {
        Ok(c) => {
            eprintln!("adapter: {}", c.describe());
            Some(Gpu {
                ctx: c,
                _turn: turn,
            })
        }
        Err(e) => {
            eprintln!("SKIP: no GPU adapter ({e})");
            None
        }
    }
}

/// Overwrite a buffer with NaN bytes (0xff) so that an output the kernel fails
/// to write is caught.
pub fn poison(ctx: &GpuContext, buf: &wgpu::Buffer) {
    ctx.queue
        .write_buffer(buf, 0, &vec![0xffu8; buf.size() as usize]);
}

/// Lossy tensors whose codes are chosen, not encoded: every tile type and
/// predictor, at steps 1, 16 and the largest, with extreme blocks (every
/// code +127, −127 or −128; a DC code only; a single AC code; signs that
/// align with a basis function) and random codes over the whole byte range.
/// Shapes with edge tiles of 8 and 4 rows/columns. The checksum is the CPU
/// reference's (so a backend that disagrees fails it too).
pub fn extreme_lossy_tensors(seed: u64) -> Vec<EncodedTensor> {
    use wcodec::codec::encoder::EncodedPlane;
    use wcodec::codec::lossy::{self, LossyParams, MAX_STEP, Predictor};
    use wcodec::codec::plane::{PlaneOptions, encode_plane_fixed};
    use wcodec::codec::predict::Mode;
    use wcodec::format::header::LossyHeader;
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for (ti, shape) in [[64 * 16, 64 * 24], [136, 200], [68, 68]]
        .iter()
        .enumerate()
    {
        let grid = wcodec::codec::grid_for_shape(shape);
        let mut codes = vec![0u8; grid.symbols()];
        let mut picked = Vec::new();
        let mut combo = 0usize;
        for t in 0..grid.num_tiles() {
            let r = grid.tile(t);
            // every type and predictor in turn, where the tile fits it
            let (mode, pred) = loop {
                let m = Mode::LOSSY[combo % 4];
                let p = Predictor::ALL[(combo / 4) % 3];
                combo += 1;
                if lossy::fits(m, r.h, r.w) {
                    break (m, p);
                }
            };
            let step = [1, 16, MAX_STEP, 333][(t / 12) % 4];
            let fill = (t / 48) % 8;
            let n = lossy::transform_of(mode).map_or(1, |x| x.size());
            let pos = rng.below((n * n) as u64) as usize;
            let sign = if rng.below(2) == 0 { 1i32 } else { -1 };
            for i in 0..r.h {
                for j in 0..r.w {
                    let (u, v) = (i % n, j % n);
                    let c: i32 = match fill {
                        0 => 127,
                        1 => -127,
                        2 => -128,
                        3 => {
                            if u == 0 && v == 0 {
                                127 * sign
                            } else {
                                0
                            }
                        }
                        4 => {
                            if u * n + v == pos {
                                -127 * sign
                            } else {
                                0
                            }
                        }
                        5 => {
                            // signs of basis function 1 down the columns, alternating along rows
                            let s = if (u < n / 2) == (v % 2 == 0) { 1 } else { -1 };
                            127 * s * sign
                        }
                        6 => (rng.below(9) as i32) - 4,
                        _ => (rng.next() as u8) as i8 as i32,
                    };
                    codes[(r.r0 + i) * grid.cols + r.c0 + j] = c as i8 as u8;
                }
            }
            picked.push((mode, LossyParams { step, pred }.pack()));
        }
        // one table for the small tensors (so that small devices fit whole-tile scratch)
        let po = PlaneOptions {
            max_tables: if ti == 0 { 4 } else { 1 },
            ..Default::default()
        };
        let plane = encode_plane_fixed(&codes, grid, &picked, &po).unwrap();
        let scales: Vec<u8> = (0..grid.num_tiles())
            .flat_map(|t| (1e-3f32 * (1.0 + t as f32 / 7.0)).to_le_bytes())
            .collect();
        let numel: usize = shape.iter().product();
        let mut e = EncodedTensor {
            name: format!("extreme.{ti}"),
            dtype: if ti == 1 { DType::F16 } else { DType::F32 },
            shape: shape.to_vec(),
            encoding: wcodec::codec::Encoding::Lossy,
            checksum: 0,
            planes: vec![
                EncodedPlane::Coded {
                    role: "coef",
                    plane,
                },
                EncodedPlane::Raw {
                    role: "scales",
                    bytes: scales,
                },
            ],
            quant: None,
            lossy: Some(LossyHeader {
                rel_step: 1.0,
                snr_db: None,
                max_abs_err: 0.0,
                signal: 1.0,
            }),
            quant_sums: None,
        };
        let f = WcodecFile::from_bytes(
            wcodec::format::writer::to_bytes(None, std::slice::from_ref(&e)).unwrap(),
        )
        .unwrap();
        let canon = wcodec::backend::cpu_canonical(&f, 0).unwrap();
        assert_eq!(canon.len(), numel + 4 * grid.num_tiles());
        e.checksum = wcodec::codec::checksum(&canon);
        out.push(e);
    }
    out
}

/// Run the `wcodec` binary (`WCODEC_BIN` if set, e.g. where test binaries are
/// carried to another machine; else the one cargo built): success and the
/// text of stdout and stderr together.
pub fn run_wcodec(args: &[&str]) -> (bool, String) {
    let bin = std::env::var("WCODEC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wcodec").into());
    let o = std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("runs wcodec");
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), t)
}

/// A softmax (or log-softmax) output `got` against the f64 reference `want`
/// (`rows × n`, from `x` at temperature `t`), within the tolerances of
/// docs/INFERENCE.md: log-probabilities to 2e-6 absolute + 2e-6 relative
/// (−inf where the reference is below −f32::MAX); probabilities each within
/// (8 + 4·|z|·log2 e)·2⁻²³ + n·2⁻²⁴ relative, a relative L2 error below
/// 1e-5 per row and a row sum within 2e-5 of 1.
#[allow(clippy::too_many_arguments, dead_code)]
pub fn assert_softmax_close(
    label: &str,
    x: &[f32],
    got: &[f32],
    want: &[f64],
    rows: usize,
    n: usize,
    t: f32,
    log: bool,
) {
    use wcodec::cpu::softmax::sanitize;
    for r in 0..rows {
        let (g, w) = (&got[r * n..(r + 1) * n], &want[r * n..(r + 1) * n]);
        let row = &x[r * n..(r + 1) * n];
        let m = row
            .iter()
            .map(|&v| sanitize(v) as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        if log {
            for i in 0..n {
                if w[i] < -(f32::MAX as f64) {
                    // Not representable in f32 (a sanitised NaN or -inf at a low temperature).
                    assert_eq!(g[i], f32::NEG_INFINITY, "{label} row {r}: logp[{i}]");
                    continue;
                }
                let err = (g[i] as f64 - w[i]).abs();
                assert!(
                    err <= 2e-6 + 2e-6 * w[i].abs(),
                    "{label} row {r}: logp[{i}] = {}, want {} ({err:e})",
                    g[i],
                    w[i]
                );
            }
        } else {
            let (mut num, mut den, mut sum) = (0f64, 0f64, 0f64);
            for i in 0..n {
                let z = (sanitize(row[i]) as f64 - m) / t as f64;
                let tol = w[i]
                    * ((8.0 + 4.0 * z.abs() * std::f64::consts::LOG2_E) * 2f64.powi(-23)
                        + n as f64 * 2f64.powi(-24))
                    + 1e-37;
                let err = (g[i] as f64 - w[i]).abs();
                assert!(
                    err <= tol,
                    "{label} row {r}: p[{i}] = {}, want {} ({err:e} > {tol:e})",
                    g[i],
                    w[i]
                );
                num += (g[i] as f64 - w[i]).powi(2);
                den += w[i] * w[i];
                sum += g[i] as f64;
            }
            let rel = (num / den).sqrt();
            assert!(rel < 1e-5, "{label} row {r}: relative L2 {rel:e}");
            assert!((sum - 1.0).abs() < 2e-5, "{label} row {r}: Σp = {sum}");
        }
    }
}

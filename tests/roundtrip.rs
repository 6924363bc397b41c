//! Property tests: random shapes, distributions, dtypes, modes and
//! precisions round-trip exactly through the encoder, the container and the
//! reference decoder.

mod common;

use proptest::prelude::*;
use wcodec::codec::Encoding;
use wcodec::codec::decoder::decode_tensor;
use wcodec::codec::encoder::{EncodeOptions, encode_tensor, floats_to_f32};
use wcodec::codec::predict::Mode;
use wcodec::codec::quant::quantize;
use wcodec::dtype::DType;
use wcodec::error::Location;
use wcodec::format::WcodecFile;
use wcodec::format::writer::to_bytes;

#[derive(Debug, Clone, Copy)]
enum Dist {
    Constant(u8),
    Uniform,
    Skewed,
    Laplace(f64),
    /// Smooth ramps plus noise: where predictors pay.
    Smooth,
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        Just(63),
        Just(64),
        Just(65),
        Just(127),
        Just(128),
        Just(129),
        1usize..300,
    ]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![]),
        dim().prop_map(|a| vec![a]),
        (1usize..20000).prop_map(|a| vec![a]),
        (dim(), dim()).prop_map(|(a, b)| vec![a, b]),
        (dim(), dim(), 1usize..4).prop_map(|(a, b, c)| vec![a, b, c]),
    ]
}

fn dist() -> impl Strategy<Value = Dist> {
    prop_oneof![
        any::<u8>().prop_map(Dist::Constant),
        Just(Dist::Uniform),
        Just(Dist::Skewed),
        (0.3f64..60.0).prop_map(Dist::Laplace),
        Just(Dist::Smooth),
    ]
}

fn mode() -> impl Strategy<Value = Option<Mode>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(Mode::ALL.to_vec()).prop_map(Some)
    ]
}

fn bytes_for(dist: Dist, n: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut rng = common::Rng(seed);
    (0..n)
        .map(|k| match dist {
            Dist::Constant(c) => c,
            Dist::Uniform => rng.next() as u8,
            Dist::Skewed => {
                if rng.below(100) < 97 {
                    3
                } else {
                    rng.next() as u8
                }
            }
            Dist::Laplace(b) => rng.laplace(b).round().clamp(-128.0, 127.0) as i8 as u8,
            Dist::Smooth => {
                let (i, j) = ((k / cols.max(1)) as i64, (k % cols.max(1)) as i64);
                (i / 3 - j / 5 + (rng.below(3) as i64) - 1) as i8 as u8
            }
        })
        .collect()
}

/// Float elements whose bytes follow a distribution: exponents from `dist`
/// (kept finite), mantissas random.
fn floats_for(dtype: DType, dist: Dist, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = common::Rng(seed ^ 0xf00d);
    let exps = bytes_for(dist, n, 64, seed);
    let mut out = Vec::with_capacity(n * dtype.size());
    for e in exps {
        let e = (e % 30) as u32 + 100; // |v| in [2^-27, 2^2]
        let v =
            f32::from_bits((rng.below(2) as u32) << 31 | e << 23 | (rng.next() as u32 & 0x7f_ffff));
        out.extend_from_slice(&wcodec::codec::decoder::f32_to_bytes(&[v], dtype));
    }
    out
}

fn round_trip(
    name: &str,
    dtype: DType,
    shape: &[usize],
    data: &[u8],
    opts: &EncodeOptions,
) -> Result<(), TestCaseError> {
    let t = encode_tensor(name, dtype, shape, data, opts)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let file = WcodecFile::from_bytes(to_bytes(None, std::slice::from_ref(&t)).unwrap())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let out = decode_tensor(&file, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if t.encoding == Encoding::Quant {
        let bits = opts.quant_bits.unwrap();
        let cols = shape[1..].iter().product();
        let q = quantize(
            &floats_to_f32(dtype, data),
            shape[0],
            cols,
            bits,
            &Location::default(),
        )
        .unwrap();
        prop_assert_eq!(&out[..q.q.len()], &q.q[..]);
        let l = (1i32 << (bits - 1)) - 1;
        prop_assert!(q.q.iter().all(|&c| (c as i8 as i32).abs() <= l));
    } else {
        prop_assert!(
            out == data,
            "{} {:?} {:?} does not round-trip",
            dtype,
            shape,
            t.encoding
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn int8_round_trips(shape in shape(), dist in dist(), mode in mode(), pb in 10u32..=12, seed: u64, unsigned: bool) {
        let n: usize = shape.iter().product();
        let cols = if shape.len() >= 2 { n / shape[0] } else { n };
        let data = bytes_for(dist, n, cols, seed);
        let dtype = if unsigned { DType::U8 } else { DType::I8 };
        let opts = EncodeOptions { prob_bits: pb, force_mode: mode, ..Default::default() };
        round_trip("t", dtype, &shape, &data, &opts)?;
    }

    #[test]
    fn floats_round_trip(shape in shape(), dist in dist(), pb in 10u32..=12, seed: u64, d in 0usize..3, mode in mode()) {
        let dtype = [DType::F32, DType::F16, DType::BF16][d];
        let n: usize = shape.iter().product();
        let data = floats_for(dtype, dist, n, seed);
        // float planes are 1-D: only NONE and LEFT are meaningful, but every mode must decode
        let opts = EncodeOptions { prob_bits: pb, force_mode: mode, ..Default::default() };
        round_trip("t", dtype, &shape, &data, &opts)?;
    }

    #[test]
    fn quant_round_trips(rows in dim(), cols in dim(), bits in 2u32..=8, seed: u64, d in 0usize..3, mode in mode()) {
        let dtype = [DType::F32, DType::F16, DType::BF16][d];
        let mut rng = common::Rng(seed);
        let w = common::f32_weights(&mut rng, rows, cols);
        let data = wcodec::codec::decoder::f32_to_bytes(&w, dtype);
        let opts = EncodeOptions { quant_bits: Some(bits), force_mode: mode, ..Default::default() };
        round_trip("t", dtype, &[rows, cols], &data, &opts)?;
    }
}

/// Raw tensors of every other dtype, and empty tensors.
#[test]
fn raw_and_empty_tensors_round_trip() {
    let mut rng = common::Rng(7);
    for (dtype, shape) in [
        (DType::I64, vec![1, 512]),
        (DType::I32, vec![17]),
        (DType::F64, vec![3, 3]),
        (DType::BOOL, vec![9]),
        (DType::F32, vec![0, 5]),
        (DType::I8, vec![0]),
    ] {
        let n: usize = shape.iter().product::<usize>() * dtype.size();
        let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        round_trip("r", dtype, &shape, &data, &EncodeOptions::default()).unwrap();
    }
}

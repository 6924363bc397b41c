//! Criterion benchmarks of the CPU codec, with zstd on the same bytes.
//!
//!     cargo bench --bench codec
//!
//! Inputs are drawn like all-MiniLM-L6-v2's weights (`wcodec::synth`), never
//! zeros. Single-thread numbers run inside a one-thread rayon pool.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wcodec::codec::encoder::{EncodeOptions, encode_tensor};
use wcodec::codec::plane::{PlaneOptions, encode_plane};
use wcodec::codec::rans;
use wcodec::codec::tile::Grid;
use wcodec::dtype::DType;
use wcodec::format::WcodecFile;
use wcodec::format::writer::to_bytes;

const ROWS: usize = 1024;
const COLS: usize = 4096;

fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
}

fn int8(c: &mut Criterion) {
    let data = wcodec::synth::int8_weights(ROWS * COLS, 7);
    let grid = Grid::two_d(ROWS, COLS);
    let pool = one_thread();
    let plane = pool.install(|| encode_plane(&data, grid, &PlaneOptions::for_grid(&grid)).unwrap());
    let view = plane.view();
    let mut g = c.benchmark_group("int8");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("wcodec_encode_1t", |b| {
        b.iter(|| {
            pool.install(|| encode_plane(&data, grid, &PlaneOptions::for_grid(&grid)).unwrap())
        })
    });
    let mut out = vec![0u8; data.len()];
    g.bench_function("wcodec_decode_1t", |b| {
        b.iter(|| pool.install(|| view.decode_into(&mut out, &Default::default()).unwrap()))
    });
    g.bench_function("wcodec_decode_all_cores", |b| {
        b.iter(|| view.decode_into(&mut out, &Default::default()).unwrap())
    });
    assert!(out == data);
    for level in [3, 19] {
        let z = zstd::bulk::compress(&data, level).unwrap();
        eprintln!(
            "ratio: wcodec {:.4}, zstd -{level} {:.4}",
            data.len() as f64 / plane.coded_bytes() as f64,
            data.len() as f64 / z.len() as f64
        );
        g.bench_with_input(BenchmarkId::new("zstd_decode", level), &z, |b, z| {
            let mut d = vec![0u8; data.len()];
            b.iter(|| {
                zstd::bulk::Decompressor::new()
                    .unwrap()
                    .decompress_to_buffer(z, &mut d)
                    .unwrap()
            })
        });
    }
    g.bench_function("zstd_encode/3", |b| {
        b.iter(|| zstd::bulk::compress(&data, 3).unwrap())
    });
    g.finish();

    // One tile: the rANS kernel alone.
    let mut g = c.benchmark_group("int8_tile");
    g.throughput(Throughput::Bytes(4096));
    let lut = rans::decode_lut(&plane.tables[plane.index[0].table as usize]);
    let words = view.tile_words(0);
    let mut buf = [0u8; 4096];
    g.bench_function("decode_tile", |b| {
        b.iter(|| {
            rans::decode_tile(words, 4096, &lut, plane.prob_bits, plane.tail, &mut buf).unwrap()
        })
    });
    g.finish();
}

fn floats(c: &mut Criterion) {
    let n = ROWS * COLS / 2;
    let bf16 = wcodec::synth::bf16_weights(n, 3);
    let pool = one_thread();
    let t = pool.install(|| {
        encode_tensor(
            "w",
            DType::BF16,
            &[ROWS / 2, COLS],
            &bf16,
            &EncodeOptions::default(),
        )
        .unwrap()
    });
    let file = WcodecFile::from_bytes(to_bytes(None, &[t]).unwrap()).unwrap();
    let mut g = c.benchmark_group("bf16");
    g.throughput(Throughput::Bytes(bf16.len() as u64));
    g.sample_size(20);
    let mut out = vec![0u8; bf16.len()];
    g.bench_function("wcodec_decode_1t", |b| {
        b.iter(|| {
            pool.install(|| wcodec::codec::decoder::decode_tensor_into(&file, 0, &mut out).unwrap())
        })
    });
    let z = zstd::bulk::compress(&bf16, 3).unwrap();
    eprintln!(
        "bf16 ratio: wcodec {:.4}, zstd -3 {:.4}",
        bf16.len() as f64 / file.file_len() as f64,
        bf16.len() as f64 / z.len() as f64
    );
    g.bench_function("zstd_decode/3", |b| {
        let mut d = vec![0u8; bf16.len()];
        b.iter(|| {
            zstd::bulk::Decompressor::new()
                .unwrap()
                .decompress_to_buffer(&z, &mut d)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, int8, floats);
criterion_main!(benches);

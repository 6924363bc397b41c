//! `shaders/lossy_tile.wgsl`, the WGSL port of the lossy tile rebuild
//! (docs/FORMAT.md §5.1):
//!
//! * naga parses and validates it (no GPU needed);
//! * on any GPU adapter wgpu finds (lavapipe in CI), its standalone kernel
//!   rebuilds random and extreme tiles of every type, predictor and step bit
//!   for bit like the CPU reference. Without an adapter that test prints a
//!   skip line, unless `WCODEC_REQUIRE_GPU` is set;
//! * the kernel the GPU decoder actually runs (`shaders/rans_lossy.wgsl`
//!   inside `rans_decode.wgsl`) decodes files of chosen extreme codes (all
//!   ±127 or −128 at every step up to the largest, DC only, a single AC,
//!   basis-aligned signs, random) byte for byte like the CPU, as pixels and
//!   dequantised, through the subgroup and the workgroup paths
//!   (`decoder_rebuilds_extreme_tiles_like_the_cpu`; CUDA runs the same
//!   files in tests/backends.rs).

mod common;

use wcodec::codec::lossy::{self, LossyParams, MAX_STEP, Predictor};
use wcodec::codec::predict::Mode;

const SHADER: &str = include_str!("../shaders/lossy_tile.wgsl");

#[test]
fn the_shader_parses_and_validates() {
    let module = naga::front::wgsl::parse_str(SHADER)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string(SHADER)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}", e.emit_to_string(SHADER)));
    assert!(
        module
            .entry_points
            .iter()
            .any(|e| e.name == "rebuild_tiles"),
        "the standalone kernel is missing"
    );
}

struct Tile {
    h: usize,
    w: usize,
    mode: Mode,
    params: LossyParams,
    codes: Vec<u8>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random and extreme tiles of every type, predictor and step.
fn tiles() -> Vec<Tile> {
    let mut rng = Rng(17);
    let mut out = Vec::new();
    let steps = [1u32, 16, 100, MAX_STEP];
    let shapes = [
        (64usize, 64usize),
        (8, 64),
        (64, 8),
        (4, 4),
        (60, 52),
        (16, 24),
    ];
    for mode in Mode::LOSSY {
        for pred in Predictor::ALL {
            for &(h, w) in shapes.iter().chain([(63, 17), (1, 1), (5, 3)].iter()) {
                if !lossy::fits(mode, h, w) {
                    continue;
                }
                for &step in &steps {
                    let params = LossyParams { step, pred };
                    let n = h * w;
                    // Random codes over the whole byte range, small ones, and extremes.
                    let fills: Vec<Vec<u8>> = vec![
                        (0..n).map(|_| rng.next() as u8).collect(),
                        (0..n).map(|_| (rng.below(7) as i8 - 3) as u8).collect(),
                        vec![127; n],
                        vec![0x80; n],
                        (0..n)
                            .map(|k| if (k / w + k % w) % 2 == 0 { 127 } else { 0x81 })
                            .collect(),
                    ];
                    for codes in fills {
                        out.push(Tile {
                            h,
                            w,
                            mode,
                            params,
                            codes,
                        });
                    }
                }
            }
        }
    }
    // DC only, and a single AC at every position, for each transform (first block).
    for mode in [Mode::Dct8, Mode::Dct4, Mode::Dst4] {
        let n = lossy::transform_of(mode).unwrap().size();
        for pos in 0..n * n {
            for (c, step) in [(127i8, MAX_STEP), (-128, MAX_STEP), (-5, 16)] {
                let mut codes = vec![0u8; 16 * 16];
                codes[(pos / n) * 16 + pos % n] = c as u8;
                out.push(Tile {
                    h: 16,
                    w: 16,
                    mode,
                    params: LossyParams {
                        step,
                        pred: Predictor::None,
                    },
                    codes,
                });
            }
        }
    }
    out
}

fn cpu(t: &Tile) -> Vec<u8> {
    let mut x = t.codes.clone();
    lossy::reconstruct(t.mode, t.params, &mut x, t.h, t.w);
    x
}

fn gpu(tiles: &[Tile]) -> Option<Vec<Vec<u8>>> {
    use wgpu::util::DeviceExt;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(desc);
    let adapter =
        match pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        {
            Ok(a) => a,
            Err(e) => {
                if std::env::var_os("WCODEC_REQUIRE_GPU").is_some() {
                    panic!("WCODEC_REQUIRE_GPU is set but there is no adapter: {e}");
                }
                eprintln!("SKIP: no GPU adapter ({e}); the WGSL rebuild was only validated");
                return None;
            }
        };
    eprintln!("adapter: {:?}", adapter.get_info());
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device");
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("lossy_tile"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("rebuild_tiles"),
        layout: None,
        module: &module,
        entry_point: Some("rebuild_tiles"),
        compilation_options: Default::default(),
        cache: None,
    });
    // Tile table and word-aligned codes.
    let mut meta: Vec<u32> = Vec::new();
    let mut words: Vec<u32> = Vec::new();
    for t in tiles {
        meta.extend([
            words.len() as u32,
            t.h as u32 | (t.w as u32) << 16,
            t.mode as u32,
            t.params.pack(),
        ]);
        for c in t.codes.chunks(4) {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            words.push(u32::from_le_bytes(b));
        }
    }
    let size = (words.len() * 4) as u64;
    let tiles_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("tiles"),
        contents: bytemuck::cast_slice(&meta),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let codes_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("codes"),
        contents: bytemuck::cast_slice(&words),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let pixels = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("pixels"),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: tiles_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: codes_buf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: pixels.as_entire_binding(),
            },
        ],
    });
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(tiles.len() as u32, 1, 1);
    }
    enc.copy_buffer_to_buffer(&pixels, 0, &readback, 0, size);
    queue.submit([enc.finish()]);
    readback.map_async(wgpu::MapMode::Read, .., |r| {
        r.expect("mapping the readback buffer")
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the device finishes");
    let bytes = readback.get_mapped_range(..).expect("mapped").to_vec();
    let mut out = Vec::new();
    for (i, t) in tiles.iter().enumerate() {
        let o = meta[4 * i] as usize * 4;
        out.push(bytes[o..o + t.h * t.w].to_vec());
    }
    Some(out)
}

#[test]
fn gpu_rebuild_is_bit_exact_with_the_cpu() {
    let tiles = tiles();
    let Some(got) = gpu(&tiles) else { return };
    let mut by_type = std::collections::BTreeMap::new();
    for (t, g) in tiles.iter().zip(&got) {
        let want = cpu(t);
        assert!(
            *g == want,
            "{:?}+{:?} step {} {}×{}: GPU pixels differ from the CPU reference",
            t.mode,
            t.params.pred,
            t.params.step,
            t.h,
            t.w
        );
        *by_type
            .entry((t.mode.name(), t.params.pred.name()))
            .or_insert(0) += 1;
    }
    eprintln!("{} tiles bit-exact: {by_type:?}", tiles.len());
}

/// A real lossy file: the CPU rANS-decodes every tile's codes, the GPU
/// kernel rebuilds the pixels, and they equal the reference decoder's
/// output (whose checksum is verified), for RD-chosen and forced tile types.
#[test]
fn a_lossy_files_tiles_rebuild_identically_on_the_gpu() {
    use wcodec::codec::decoder::decode_tensor;
    use wcodec::codec::encoder::{EncodeOptions, LossyOptions, encode_tensor};
    use wcodec::codec::lossy_enc::LossyConfig;
    use wcodec::codec::rans;
    use wcodec::codec::ratecontrol::Target;
    use wcodec::dtype::DType;
    use wcodec::format::WcodecFile;
    use wcodec::format::reader::PlaneRef;

    let (rows, cols) = (136usize, 200usize);
    let mut rng = Rng(5);
    let w: Vec<f32> = (0..rows * cols)
        .map(|k| {
            let (i, j) = ((k / cols) as f32, (k % cols) as f32);
            let noise = (rng.below(2001) as f32 - 1000.0) / 1000.0;
            if j < 100.0 {
                0.05 * ((i / 7.0).sin() + (j / 11.0).cos()) + 0.005 * noise
            } else {
                0.03 * noise
            }
        })
        .collect();
    let data: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut forces = vec![None];
    for m in Mode::LOSSY {
        for p in Predictor::ALL {
            forces.push(Some((m, p)));
        }
    }
    let tensors: Vec<_> = forces
        .iter()
        .enumerate()
        .map(|(i, &force)| {
            let o = EncodeOptions {
                lossy: Some(LossyOptions {
                    target: Target::RelStep(0.3),
                    per_tensor: true,
                    config: LossyConfig {
                        force,
                        ..Default::default()
                    },
                }),
                ..Default::default()
            };
            encode_tensor(&format!("t{i}"), DType::F32, &[rows, cols], &data, &o).unwrap()
        })
        .collect();
    let file =
        WcodecFile::from_bytes(wcodec::format::writer::to_bytes(None, &tensors).unwrap()).unwrap();
    let mut tiles = Vec::new();
    let mut want = Vec::new();
    for ti in 0..file.tensors.len() {
        let pixels = decode_tensor(&file, ti).unwrap();
        let planes = file.planes(ti);
        let PlaneRef::Coded(p) = &planes[0] else {
            panic!("coef plane")
        };
        let luts = p.luts();
        for t in 0..p.grid.num_tiles() {
            let r = p.grid.tile(t);
            let e = p.index[t];
            let mut codes = vec![0u8; r.n()];
            rans::decode_tile(
                p.tile_words(t),
                r.n(),
                &luts[e.table as usize],
                p.prob_bits,
                p.tail,
                &mut codes,
            )
            .unwrap();
            let mut px = Vec::new();
            p.grid.gather(&pixels[..rows * cols], t, &mut px);
            tiles.push(Tile {
                h: r.h,
                w: r.w,
                mode: e.mode,
                params: e.lossy_params(),
                codes,
            });
            want.push(px);
        }
    }
    let Some(got) = gpu(&tiles) else { return };
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "tile {i} ({:?}+{:?}) differs",
            tiles[i].mode,
            tiles[i].params.pred
        );
    }
    eprintln!(
        "{} tiles of {} lossy tensors rebuilt identically",
        tiles.len(),
        file.tensors.len()
    );
}

/// The GPU decoder's own lossy kernel on extreme codes, every tile type,
/// predictor and step, through every path the adapter has, as int8 pixels
/// (+ tile scales) and dequantised to f32, f16 and bf16; with the transform
/// scratch as large as memory allows and cut to bands of 8 rows.
#[test]
fn decoder_rebuilds_extreme_tiles_like_the_cpu() {
    use wcodec::codec::decoder::{decode_tensor, output_tensors, render};
    use wcodec::dtype::DType;
    use wcodec::format::WcodecFile;
    use wcodec::wgpu::plan::Tuning;
    use wcodec::wgpu::shaders::{DecodePath, LutKind};
    use wcodec::wgpu::{GpuDecodeOptions, GpuDecoder, read_tensor};

    let Some(ctx) = common::ctx() else { return };
    let ts = common::extreme_lossy_tensors(0xe47);
    let whole =
        WcodecFile::from_bytes(wcodec::format::writer::to_bytes(None, &ts).unwrap()).unwrap();
    // the small tensors alone (one table: whole tiles fit the scratch on small devices)
    let small = wcodec::backend::subset_file(&whole, &[1, 2]).unwrap();
    let mut paths = vec![DecodePath::Workgroup];
    if ctx.has(wgpu::Features::SUBGROUP) {
        paths.push(DecodePath::SubgroupWide);
    }
    let mut ran = std::collections::BTreeSet::new();
    for (file, path) in [&whole, &small]
        .into_iter()
        .flat_map(|f| paths.iter().map(move |&p| (f, p)))
    {
        // the CPU reference accepts them (checksums are the CPU's pixels)
        let canon: Vec<Vec<u8>> = (0..file.tensors.len())
            .map(|t| decode_tensor(file, t).unwrap())
            .collect();
        for (dtype, lossy_rows, lut, fast_lossy) in [
            (Some(DType::I8), 0, None, false),
            (Some(DType::I8), 8, None, false),
            (Some(DType::I8), 0, Some(LutKind::Split), false),
            (None, 0, None, false),
            (Some(DType::F16), 16, None, false),
            (Some(DType::BF16), 0, Some(LutKind::Split), false),
            // full 64x64 tiles through the fast lossy kernel (rans_fast_lossy.wgsl)
            (Some(DType::I8), 0, None, true),
            (None, 0, None, true),
            (Some(DType::F16), 0, None, true),
            (Some(DType::BF16), 0, None, true),
        ] {
            let opts = GpuDecodeOptions {
                dtype,
                poison: true,
                verify: true,
                tuning: Tuning {
                    path: Some(path),
                    lossy_rows,
                    lut,
                    fast_lossy,
                    // one tile a workgroup leaves room for whole-tile scratch on 32 KiB devices
                    tiles: if lut.is_some() { 1 } else { 4 },
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut dec = GpuDecoder::new(&ctx, opts).unwrap();
            let (got, rep) = dec
                .decode_to_buffers(file)
                .unwrap_or_else(|e| panic!("{path:?} {dtype:?}: {e}"));
            assert!(
                rep.variants.iter().any(|v| v.contains("lossy")),
                "{:?}",
                rep.variants
            );
            ran.extend(rep.variants.iter().cloned());
            let mut k = 0;
            for (t, e) in file.tensors.iter().enumerate() {
                let want = render(e, canon[t].clone(), dtype);
                for (o, w) in output_tensors(e, dtype).iter().zip(want) {
                    let g = read_tensor(&ctx, &got[k]).unwrap();
                    k += 1;
                    if g != w {
                        let i = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(0);
                        panic!(
                            "{path:?} {dtype:?} {} ({}): first difference at byte {i}: {}",
                            o.name,
                            o.dtype,
                            wcodec::backend::locate(file, t, i / o.dtype.size())
                        );
                    }
                }
            }
        }
    }
    eprintln!("kernel variants: {ran:?}");
    assert!(ran.iter().any(|v| v.contains("lossy rows=8")), "{ran:?}");
    assert!(ran.iter().any(|v| v.contains("lossy rows=64")), "{ran:?}");
    assert!(ran.iter().any(|v| v.starts_with("fast-lossy-")), "{ran:?}");
}

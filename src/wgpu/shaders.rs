//! The WGSL kernels (`shaders/`), their bindings, and every combination of
//! override constants the crate uses, so that `tests/shaders.rs` can parse,
//! validate and translate each one with naga, without a GPU.

use std::borrow::Cow;
use std::sync::LazyLock;

use super::context::{Binding, KernelSource};

const LIB_FLOAT: &str = include_str!("../../shaders/lib_float.wgsl");
const SEGMENT: &str = include_str!("../../shaders/lib/segment.wgsl");
const RANS_IO: &str = include_str!("../../shaders/lib/rans_io.wgsl");
const RANS_DECODE: &str = include_str!("../../shaders/rans_decode.wgsl");
const RANS_LOSSY: &str = include_str!("../../shaders/rans_lossy.wgsl");
const PATH_SUBGROUP: &str = include_str!("../../shaders/rans_decode_subgroup.wgsl");
const PATH_WORKGROUP: &str = include_str!("../../shaders/rans_decode_workgroup.wgsl");
const RENDER_UNALIGNED: &str = include_str!("../../shaders/render_unaligned.wgsl");
const COPY_U32: &str = include_str!("../../shaders/copy_u32.wgsl");
const RANS_FAST: &str = include_str!("../../shaders/rans_fast.wgsl");
const FAST_SUBGROUP: &str = include_str!("../../shaders/rans_fast_subgroup.wgsl");
const FAST_WORKGROUP: &str = include_str!("../../shaders/rans_fast_workgroup.wgsl");
const FAST_LOSSY: &str = include_str!("../../shaders/rans_fast_lossy.wgsl");
const FAST_TILE: &str = include_str!("../../shaders/lib/fast_tile.wgsl");
const FAST_LOSSY_SUBGROUP: &str = include_str!("../../shaders/rans_fast_lossy_subgroup.wgsl");
const FAST_LOSSY_WORKGROUP: &str = include_str!("../../shaders/rans_fast_lossy_workgroup.wgsl");

static DECODE_SUBGROUP_SRC: LazyLock<String> = LazyLock::new(|| {
    [
        LIB_FLOAT,
        SEGMENT,
        RANS_IO,
        RANS_DECODE,
        RANS_LOSSY,
        PATH_SUBGROUP,
    ]
    .join("\n")
});
static DECODE_WORKGROUP_SRC: LazyLock<String> = LazyLock::new(|| {
    [
        LIB_FLOAT,
        SEGMENT,
        RANS_IO,
        RANS_DECODE,
        RANS_LOSSY,
        PATH_WORKGROUP,
    ]
    .join("\n")
});
static FAST_SUBGROUP_SRC: LazyLock<String> = LazyLock::new(|| {
    [
        LIB_FLOAT,
        SEGMENT,
        RANS_IO,
        RANS_FAST,
        FAST_TILE,
        FAST_SUBGROUP,
    ]
    .join("\n")
});
static FAST_WORKGROUP_SRC: LazyLock<String> = LazyLock::new(|| {
    [
        LIB_FLOAT,
        SEGMENT,
        RANS_IO,
        RANS_FAST,
        FAST_TILE,
        FAST_WORKGROUP,
    ]
    .join("\n")
});
static FAST_LOSSY_SUBGROUP_SRC: LazyLock<String> = LazyLock::new(|| {
    [
        LIB_FLOAT,
        SEGMENT,
        RANS_IO,
        FAST_LOSSY,
        FAST_TILE,
        FAST_LOSSY_SUBGROUP,
    ]
    .join("\n")
});
static FAST_LOSSY_WORKGROUP_SRC: LazyLock<String> = LazyLock::new(|| {
    [
        LIB_FLOAT,
        SEGMENT,
        RANS_IO,
        FAST_LOSSY,
        FAST_TILE,
        FAST_LOSSY_WORKGROUP,
    ]
    .join("\n")
});
static RENDER_UNALIGNED_SRC: LazyLock<String> =
    LazyLock::new(|| [LIB_FLOAT, SEGMENT, RENDER_UNALIGNED].join("\n"));

/// `shaders/copy_u32.wgsl`: the device-copy bandwidth probe.
pub fn copy_u32() -> KernelSource {
    KernelSource {
        name: "copy_u32",
        source: Cow::Borrowed(COPY_U32),
        entry: "main",
        bindings: &[Binding::ReadOnly, Binding::ReadWrite, Binding::ReadOnly],
        features: wgpu::Features::empty(),
        trusted: true,
    }
}

/// `shaders/render_unaligned.wgsl`: output words of unaligned grids, from tile-major scratch.
pub fn render_unaligned() -> KernelSource {
    KernelSource {
        name: "render_unaligned",
        source: Cow::Borrowed(RENDER_UNALIGNED_SRC.as_str()),
        entry: "main",
        bindings: &[
            Binding::ReadOnly,
            Binding::ReadOnly,
            Binding::ReadOnly,
            Binding::ReadWrite,
        ],
        features: wgpu::Features::empty(),
        trusted: true,
    }
}

/// How the lanes of a tile share its word stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodePath {
    /// Subgroup ballot; subgroups of 32 or more lanes (NVIDIA, AMD, Apple).
    SubgroupWide,
    /// Subgroup ballots summed across the tile's subgroups; subgroups of 4..32 (lavapipe, Intel).
    SubgroupNarrow,
    /// A prefix through workgroup memory; no SUBGROUP feature needed.
    Workgroup,
}

impl DecodePath {
    pub fn name(self) -> &'static str {
        match self {
            DecodePath::SubgroupWide => "subgroup",
            DecodePath::SubgroupNarrow => "subgroup-narrow",
            DecodePath::Workgroup => "workgroup",
        }
    }
}

/// How a plane's frequency tables sit in workgroup memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LutKind {
    /// One u32 per slot (symbol, frequency, offset): 16 KiB a table, one read a step.
    Slot32,
    /// One byte per slot plus (frequency, start) per symbol: 5 KiB a table, two reads a step.
    Split,
}

/// One compiled form of the decode kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeVariant {
    pub path: DecodePath,
    /// Tiles decoded together by one workgroup (32 invocations each).
    pub tiles: u32,
    pub lut_kind: LutKind,
    /// Tables held (1..=4).
    pub lut_tables: u32,
    /// u16 words of each tile staged in workgroup memory; 0 reads them from global memory.
    pub stage_words: u32,
    /// Reconstruction buffers for tiles with a predictor mode.
    pub modes: bool,
    /// Lossy tiles (shaders/rans_lossy.wgsl; needs `modes`), with a
    /// transform scratch of `lx_rows` tile rows (8, 16, 32 or 64; 64 words
    /// each) in the stage area.
    pub lossy: bool,
    pub lx_rows: u32,
    /// The subgroup path on subgroups of exactly 32 (NVIDIA): no ballot word select.
    pub sg32: bool,
}

impl DecodeVariant {
    pub fn threads(&self) -> u32 {
        32 * self.tiles
    }

    pub fn source(&self) -> KernelSource {
        let (name, src, features) = match self.path {
            DecodePath::Workgroup => (
                "rans_decode_workgroup",
                DECODE_WORKGROUP_SRC.as_str(),
                wgpu::Features::empty(),
            ),
            _ => (
                "rans_decode_subgroup",
                DECODE_SUBGROUP_SRC.as_str(),
                wgpu::Features::SUBGROUP,
            ),
        };
        KernelSource {
            name,
            source: Cow::Borrowed(src),
            entry: "main",
            bindings: &[
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::ReadWrite,
            ],
            features,
            trusted: true,
        }
    }

    /// The override constants of this variant.
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        let mut c = vec![
            ("TILES", self.tiles as f64),
            (
                "LUT_KIND",
                if self.lut_kind == LutKind::Slot32 {
                    0.0
                } else {
                    1.0
                },
            ),
            ("LUT_TABLES", self.lut_tables as f64),
            ("STAGE", if self.stage_words > 0 { 1.0 } else { 0.0 }),
            ("STAGE_WORDS", self.stage_words.max(2) as f64),
            ("MODES", if self.modes { 1.0 } else { 0.0 }),
            ("LOSSY", if self.lossy { 1.0 } else { 0.0 }),
            ("LX_ROWS", self.lx_rows.clamp(8, 64) as f64),
        ];
        if self.path != DecodePath::Workgroup {
            c.push((
                "SG_WIDE",
                if self.path == DecodePath::SubgroupWide {
                    1.0
                } else {
                    0.0
                },
            ));
            c.push((
                "SG32",
                if self.sg32 && self.path == DecodePath::SubgroupWide {
                    1.0
                } else {
                    0.0
                },
            ));
        }
        c
    }

    /// Workgroup memory the variant declares, in bytes.
    pub fn workgroup_bytes(&self) -> u32 {
        let lut = match self.lut_kind {
            LutKind::Slot32 => 4096,
            LutKind::Split => 1280,
        } * self.lut_tables;
        let stage = if self.stage_words > 0 {
            self.tiles * (self.stage_words / 2)
        } else {
            1
        };
        let stage = if self.lossy {
            stage.max(64 * self.lx_rows.clamp(8, 64))
        } else {
            stage
        };
        let tb = if self.modes { self.tiles * 1024 } else { 1 };
        let path = match self.path {
            DecodePath::SubgroupWide => 1,
            DecodePath::SubgroupNarrow => 24 * self.tiles,
            DecodePath::Workgroup => 3 * self.tiles,
        };
        4 * (lut + stage + tb + self.threads() + path)
    }

    pub fn describe(&self) -> String {
        format!(
            "{}{} tiles={} lut={}x{} stage={} modes={}{}",
            self.path.name(),
            if self.sg32 { "32" } else { "" },
            self.tiles,
            match self.lut_kind {
                LutKind::Slot32 => "slot32",
                LutKind::Split => "split",
            },
            self.lut_tables,
            self.stage_words,
            self.modes,
            if self.lossy {
                format!(" lossy rows={}", self.lx_rows)
            } else {
                String::new()
            }
        )
    }
}

/// What the fast kernel writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FastOut {
    /// Bytes (int8, U8 with the sign bit flipped, quant codes).
    Bytes,
    /// Float-split planes merged into `src` floats, written as `dst`
    /// (`DT_*` codes of lib_float.wgsl: 0 F32, 1 F16, 2 BF16).
    Split { src: u32, dst: u32 },
    /// Full lossy tiles rebuilt (shaders/rans_fast_lossy*.wgsl): `dq` 3 for
    /// int8 pixels, else the `DT_*` code of pixel × tile scale.
    Lossy { dq: u32 },
}

/// A measurement probe of the fast kernel: each removes one stage, so its
/// outputs are wrong (bench only; see `bench decode --probes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FastProbe {
    None,
    /// No output writes (the outputs are folded into a register).
    NoStore,
    /// No table lookups: every step uses one constant table entry.
    NoLut,
    /// No staging: the decode reads its words from global memory.
    NoStage,
    /// No decode: stage the words, then write them out.
    NoDecode,
}

impl FastProbe {
    pub fn code(self) -> u32 {
        match self {
            FastProbe::None => 0,
            FastProbe::NoStore => 1,
            FastProbe::NoLut => 2,
            FastProbe::NoStage => 3,
            FastProbe::NoDecode => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FastProbe::None => "none",
            FastProbe::NoStore => "no-store",
            FastProbe::NoLut => "no-lut",
            FastProbe::NoStage => "no-stage",
            FastProbe::NoDecode => "no-decode",
        }
    }
    pub fn parse(s: &str) -> Option<FastProbe> {
        [
            FastProbe::None,
            FastProbe::NoStore,
            FastProbe::NoLut,
            FastProbe::NoStage,
            FastProbe::NoDecode,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }
}

/// One compiled form of the fast kernel (`shaders/rans_fast*.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FastVariant {
    /// `SubgroupWide` means subgroups of exactly 32 (the only wide form).
    pub path: DecodePath,
    /// Tiles decoded together by one workgroup (32 invocations each).
    pub warps: u32,
    /// u32 of staged words per tile (a tile of up to `2 * stage_u32 - 1` words fits).
    pub stage_u32: u32,
    pub out: FastOut,
    pub probe: FastProbe,
    /// Tiles per slot (1 or 2), decoded interleaved: two independent
    /// dependency chains per lane.
    pub ilp: u32,
    /// Words read from the input buffer, not staged (`stage_u32` is 0).
    pub direct: bool,
}

impl FastVariant {
    /// Tiles a workgroup decodes per round.
    pub fn tiles_per_round(&self) -> u32 {
        self.warps * self.ilp
    }

    pub fn threads(&self) -> u32 {
        32 * self.warps
    }

    /// Longest tile (in u16 words) the stage holds, whatever its alignment.
    pub fn max_words(&self) -> u32 {
        if self.direct {
            // any tile (the general kernel's skip mask holds 16 bits)
            return 0xffff;
        }
        2 * self.stage_u32 - 1
    }

    /// Tile rows of the lossy kernel's transform scratch (its stage).
    pub fn lx_rows(&self) -> u32 {
        [64, 32, 16, 8]
            .into_iter()
            .find(|&r| 64 * r <= self.stage_u32)
            .unwrap_or(8)
    }

    pub fn source(&self) -> KernelSource {
        let lossy = matches!(self.out, FastOut::Lossy { .. });
        let (name, src, features) = match self.path {
            DecodePath::Workgroup if lossy => (
                "rans_fast_lossy_workgroup",
                FAST_LOSSY_WORKGROUP_SRC.as_str(),
                wgpu::Features::empty(),
            ),
            _ if lossy => (
                "rans_fast_lossy_subgroup",
                FAST_LOSSY_SUBGROUP_SRC.as_str(),
                wgpu::Features::SUBGROUP,
            ),
            DecodePath::Workgroup => (
                "rans_fast_workgroup",
                FAST_WORKGROUP_SRC.as_str(),
                wgpu::Features::empty(),
            ),
            _ => (
                "rans_fast_subgroup",
                FAST_SUBGROUP_SRC.as_str(),
                wgpu::Features::SUBGROUP,
            ),
        };
        KernelSource {
            name,
            source: Cow::Borrowed(src),
            entry: "main",
            bindings: &[
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadWrite,
                Binding::ReadWrite,
            ],
            features,
            trusted: true,
        }
    }

    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        let (out, src, dst) = match self.out {
            FastOut::Bytes => (0, 2, 2),
            FastOut::Split { src, dst } => (1, src, dst),
            FastOut::Lossy { dq } => {
                let mut c = vec![
                    ("WARPS", self.warps as f64),
                    ("STAGE_U32", self.stage_u32 as f64),
                    ("LX_ROWS", self.lx_rows() as f64),
                    ("DQ", dq as f64),
                ];
                match self.path {
                    DecodePath::SubgroupWide => c.push(("PREFIX", 0.0)),
                    DecodePath::SubgroupNarrow => c.push(("PREFIX", 1.0)),
                    DecodePath::Workgroup => {}
                }
                return c;
            }
        };
        let mut c = vec![
            ("WARPS", self.warps as f64),
            ("STAGE_U32", self.stage_u32 as f64),
            ("OUT", out as f64),
            ("SRC", src as f64),
            ("DST", dst as f64),
            ("PROBE", self.probe.code() as f64),
            ("ILP", self.ilp as f64),
            ("DIRECT", self.direct as u32 as f64),
        ];
        match self.path {
            DecodePath::SubgroupWide => c.push(("PREFIX", 0.0)),
            DecodePath::SubgroupNarrow => c.push(("PREFIX", 1.0)),
            DecodePath::Workgroup => {}
        }
        c
    }

    /// Workgroup memory the variant declares, in bytes.
    pub fn workgroup_bytes(&self) -> u32 {
        let extra = match self.path {
            DecodePath::SubgroupWide => 0,
            DecodePath::SubgroupNarrow | DecodePath::Workgroup => 24 * self.warps * self.ilp,
        };
        let stage = (self.warps * self.ilp * self.stage_u32).max(1);
        let tiles = match self.out {
            FastOut::Lossy { .. } => 1024 * self.warps,
            _ => 0,
        };
        4 * (4096 + stage + extra + tiles)
    }

    pub fn describe(&self) -> String {
        format!(
            "fast-{}{} warps={} {} out={}{}{}",
            if matches!(self.out, FastOut::Lossy { .. }) {
                "lossy-"
            } else {
                ""
            },
            match self.path {
                DecodePath::SubgroupWide => "subgroup32",
                DecodePath::SubgroupNarrow => "subgroup-narrow",
                DecodePath::Workgroup => "workgroup",
            },
            self.warps,
            if self.direct {
                "direct".to_string()
            } else {
                format!("stage={}", 2 * self.stage_u32)
            },
            match self.out {
                FastOut::Bytes => "bytes".to_string(),
                FastOut::Split { src, dst } => format!("split:{}>{}", dt_name(src), dt_name(dst)),
                FastOut::Lossy { dq: 3 } => format!("int8 rows={}", self.lx_rows()),
                FastOut::Lossy { dq } => format!("{} rows={}", dt_name(dq), self.lx_rows()),
            },
            if self.ilp > 1 {
                format!(" ilp={}", self.ilp)
            } else {
                String::new()
            },
            if self.probe == FastProbe::None {
                String::new()
            } else {
                format!(" probe={}", self.probe.name())
            }
        )
    }
}

fn dt_name(c: u32) -> &'static str {
    match c {
        0 => "f32",
        1 => "f16",
        _ => "bf16",
    }
}

/// Every fast variant the planner can choose (a spread of sizes), for validation.
pub fn all_fast_variants() -> Vec<FastVariant> {
    let mut v = Vec::new();
    let mut outs = vec![FastOut::Bytes];
    for src in 0..3 {
        for dst in 0..3 {
            outs.push(FastOut::Split { src, dst });
        }
    }
    for path in [
        DecodePath::SubgroupWide,
        DecodePath::SubgroupNarrow,
        DecodePath::Workgroup,
    ] {
        for (warps, stage_u32, ilp) in [
            (1, 2048, 1),
            (4, 1024, 1),
            (8, 960, 1),
            (8, 384, 1),
            (16, 512, 1),
            (4, 960, 2),
            (8, 0, 1),
            (8, 0, 2),
            (16, 0, 2),
        ] {
            for &out in &outs {
                v.push(FastVariant {
                    path,
                    warps,
                    stage_u32,
                    out,
                    probe: FastProbe::None,
                    ilp,
                    direct: stage_u32 == 0,
                });
            }
        }
        for (warps, stage_u32) in [
            (1, 512),
            (2, 1024),
            (4, 512),
            (5, 576),
            (4, 1024),
            (1, 4096),
        ] {
            for dq in 0..4 {
                v.push(FastVariant {
                    path,
                    warps,
                    stage_u32,
                    out: FastOut::Lossy { dq },
                    probe: FastProbe::None,
                    ilp: 1,
                    direct: false,
                });
            }
        }
        for probe in [
            FastProbe::NoStore,
            FastProbe::NoLut,
            FastProbe::NoStage,
            FastProbe::NoDecode,
        ] {
            for out in [FastOut::Bytes, FastOut::Split { src: 2, dst: 2 }] {
                v.push(FastVariant {
                    path,
                    warps: 8,
                    stage_u32: 1024,
                    out,
                    probe,
                    ilp: 1,
                    direct: false,
                });
            }
        }
    }
    v
}

/// Every decode variant the planner can choose, for validation.
pub fn all_decode_variants() -> Vec<DecodeVariant> {
    let mut v = Vec::new();
    for path in [
        DecodePath::SubgroupWide,
        DecodePath::SubgroupNarrow,
        DecodePath::Workgroup,
    ] {
        for tiles in [1, 2, 3, 4, 8] {
            for lut_kind in [LutKind::Slot32, LutKind::Split] {
                for lut_tables in 1..=4 {
                    for stage_words in [0, 2048, 4096] {
                        for (modes, lossy, lx_rows) in [
                            (false, false, 64),
                            (true, false, 64),
                            (true, true, 64),
                            (true, true, 16),
                        ] {
                            for sg32 in [false, true] {
                                if sg32 && path != DecodePath::SubgroupWide {
                                    continue;
                                }
                                v.push(DecodeVariant {
                                    path,
                                    tiles,
                                    lut_kind,
                                    lut_tables,
                                    stage_words,
                                    modes,
                                    lossy,
                                    lx_rows,
                                    sg32,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

/// Parse, validate, apply the constants, validate again and translate to
/// SPIR-V with naga: what a driver would get, checked without a GPU.
pub fn validate(src: &KernelSource, constants: &[(&str, f64)]) -> Result<(), String> {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let module =
        naga::front::wgsl::parse_str(&src.source).map_err(|e| e.emit_to_string(&src.source))?;
    let caps = if src.features.contains(wgpu::Features::SUBGROUP) {
        Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER
    } else {
        Capabilities::empty()
    };
    let subgroup_stages = if caps.is_empty() {
        naga::valid::ShaderStages::empty()
    } else {
        naga::valid::ShaderStages::COMPUTE
    };
    let subgroup_ops = if caps.is_empty() {
        naga::valid::SubgroupOperationSet::empty()
    } else {
        naga::valid::SubgroupOperationSet::all()
    };
    let mut val = Validator::new(ValidationFlags::all(), caps);
    val.subgroup_stages(subgroup_stages)
        .subgroup_operations(subgroup_ops);
    let info = val
        .validate(&module)
        .map_err(|e| e.emit_to_string(&src.source))?;
    let pc: naga::back::PipelineConstants =
        constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, src.entry)),
        &pc,
    )
    .map_err(|e| format!("{} with {constants:?}: {e}", src.name))?;
    let opts = naga::back::spv::Options::default();
    let pipe = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: src.entry.to_string(),
    };
    naga::back::spv::write_vec(&module, &info, &opts, Some(&pipe))
        .map_err(|e| format!("{} with {constants:?}: SPIR-V: {e}", src.name))?;
    Ok(())
}

//! The inference kernels' WGSL (`shaders/`), assembled from their parts, and
//! every combination of override constants the crate uses, so that
//! `tests/shaders_infer.rs` can parse, validate and specialise each one with
//! naga without a GPU.
//!
//! A kernel may be assembled from several files (a dtype part, a shared main
//! loop, a reduction path): the files are concatenated in a fixed order; the
//! name says which parts were used.

use std::borrow::Cow;

use super::context::{Binding, KernelSource};

/// The weight formats of the GEMV kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightDtype {
    F32,
    F16,
    /// int8 codes with one f32 scale per row.
    I8,
}

impl WeightDtype {
    pub const ALL: [WeightDtype; 3] = [WeightDtype::F32, WeightDtype::F16, WeightDtype::I8];

    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::F16 => "f16",
            WeightDtype::I8 => "i8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightDtype::F32 => 4,
            WeightDtype::F16 => 2,
            WeightDtype::I8 => 1,
        }
    }

    /// Elements per step of the kernel's main loop (`EPS` in the shader).
    pub fn step_elems(self) -> usize {
        match self {
            WeightDtype::F32 | WeightDtype::F16 => 8,
            WeightDtype::I8 => 16,
        }
    }

    pub fn parse(s: &str) -> Option<WeightDtype> {
        Some(match s {
            "f32" => WeightDtype::F32,
            "f16" => WeightDtype::F16,
            "i8" | "int8" => WeightDtype::I8,
            _ => return None,
        })
    }
}

/// How a kernel reduces across invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReducePath {
    /// Subgroups where the device has them, else workgroup memory.
    #[default]
    Auto,
    /// Subgroup operations (needs SUBGROUP).
    Subgroup,
    /// Workgroup memory and barriers only.
    Workgroup,
}

impl ReducePath {
    pub fn name(self) -> &'static str {
        match self {
            ReducePath::Auto => "auto",
            ReducePath::Subgroup => "subgroup",
            ReducePath::Workgroup => "workgroup",
        }
    }
}

/// The GEMV's bindings plus its max partials (binding 6).
const GEMV_MAX_BINDINGS: &[Binding] = &[
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::Uniform,
    Binding::ReadWrite,
];

/// The GEMV kernels' bindings (W, x, scales, bias, y, params).
pub const GEMV_BINDINGS: &[Binding] = GEMV_MAX_BINDINGS.split_at(6).0;

/// A generated GEMV kernel (`gemv_gen.rs`), specialised on `spec`; it has no
/// override constants (build it with an empty constant list).
pub fn gemv(spec: &super::gemv_gen::GemvSpec) -> KernelSource {
    KernelSource {
        name: intern(spec.name()),
        source: Cow::Owned(super::gemv_gen::gemv_wgsl(spec)),
        entry: "main",
        bindings: if spec.max_partials {
            GEMV_MAX_BINDINGS
        } else {
            GEMV_BINDINGS
        },
        features: if spec.coop {
            wgpu::Features::SUBGROUP
                | wgpu::Features::SHADER_F16
                | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        } else if spec.path == ReducePath::Workgroup {
            wgpu::Features::empty()
        } else {
            wgpu::Features::SUBGROUP
        },
        // Every index is clamped and every loop bounded by the kernel itself.
        trusted: true,
    }
}

/// A `'static` copy of a generated kernel's name (one per distinct name; the
/// set of names a process builds is small and fixed by the tuning tables).
pub fn intern(name: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = set.get(name.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Every kernel source with every constant combination the crate builds, for
/// validation without a GPU.
/// Override constants, by name.
pub type Constants = Vec<(&'static str, f64)>;

pub fn all_variants() -> Vec<(KernelSource, Vec<Constants>)> {
    let mut out = Vec::new();
    for dtype in WeightDtype::ALL {
        for path in [ReducePath::Subgroup, ReducePath::Workgroup] {
            let mut seen = std::collections::HashSet::new();
            for batch in 1..=8u32 {
                for x_half in [false, true] {
                    for t in super::gemv::GemvTuning::candidates(dtype, batch, path) {
                        for sg in [8, 32, 64] {
                            let spec = t.spec(dtype, path, batch, x_half, batch % 2 == 1, sg);
                            if seen.insert(spec) {
                                out.push((gemv(&spec), vec![Vec::new()]));
                            }
                            // With the max-partials epilogue, also with blocks > 1.
                            for blocks in [t.blocks, 3] {
                                let tb = super::gemv::GemvTuning { blocks, ..t };
                                let spec = super::gemv_gen::GemvSpec {
                                    max_partials: true,
                                    ..tb.spec(dtype, path, batch, x_half, batch % 2 == 1, sg)
                                };
                                if seen.insert(spec) {
                                    out.push((gemv(&spec), vec![Vec::new()]));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // The tensor-core GEMV: every coop tuning × batch × bias × subgroup sizes
    // (fixed 32; 32..64; 8..32).
    let mut seen = std::collections::HashSet::new();
    for t in super::gemv::GemvTuning::coop_candidates() {
        for batch in 1..=super::gemv::MAX_BATCH as u32 {
            for bias in [false, true] {
                for (lo, hi) in [(32, 32), (32, 64), (8, 32)] {
                    let spec = t.coop_spec(batch, bias, lo, hi);
                    if seen.insert(spec) {
                        out.push((gemv(&spec), vec![Vec::new()]));
                    }
                }
            }
        }
    }
    for entry in ["stats", "normalize", "fused"] {
        let combos = super::softmax::SoftmaxTuning::candidates()
            .iter()
            .flat_map(|t| [t.constants(false), t.constants(true)])
            .collect();
        out.push((super::softmax::source(entry), combos));
        let combos = super::softmax::SoftmaxTuning::candidates()
            .iter()
            .filter(|t| t.sg)
            .flat_map(|t| [t.constants(false), t.constants(true)])
            .collect();
        out.push((super::softmax::source_sg(entry), combos));
    }
    for path in [ReducePath::Subgroup, ReducePath::Workgroup] {
        for tiles in [false, true] {
            let mut combos = Vec::new();
            for t in super::gemv_rans::RansGemvTuning::candidates(48 << 10, true) {
                if (t.rounds > 0) != tiles {
                    continue;
                }
                for (xh, sc, bias) in [
                    (false, true, false),
                    (true, false, true),
                    (false, true, true),
                ] {
                    if path == ReducePath::Subgroup {
                        combos.push(t.constants(xh, sc, bias, Some(true)));
                        // subgroups of exactly 32 lanes
                        let mut c32 = t.constants(xh, sc, bias, Some(true));
                        c32.push(("SG32", 1.0));
                        combos.push(c32);
                        combos.push(t.constants(xh, sc, bias, Some(false)));
                        if tiles {
                            // the non-FUSED side dispatch on wide subgroups
                            combos.push(t.constants_with(xh, sc, bias, Some(true), false));
                            // FUSED asked for on narrow subgroups
                            combos.push(t.constants_with(xh, sc, bias, Some(false), true));
                        }
                    } else {
                        combos.push(t.constants(xh, sc, bias, None));
                        if tiles {
                            // FUSED asked for without subgroups
                            combos.push(t.constants_with(xh, sc, bias, None, true));
                        }
                    }
                }
            }
            out.push((super::gemv_rans::source(path, tiles), combos));
        }
    }
    out.push((
        super::gemv_rans::reduce_source(),
        [(false, false), (true, false), (true, true)]
            .iter()
            .map(|&(s, b)| super::gemv_rans::reduce_constants(s, b))
            .collect(),
    ));
    for entry in ["max_part", "prepare", "select_token"] {
        let combos = super::sample::SamplerTuning::candidates()
            .iter()
            .flat_map(|t| {
                // EXTMAX: the row maximum from a GEMV's max partials.
                [
                    t.constants(false),
                    t.constants(true),
                    t.constants_ext(false, true),
                    t.constants_ext(true, true),
                ]
            })
            // Every benchmark and test path (`diag`) of the default tuning.
            .chain((1..=8).map(|diag| {
                super::sample::SamplerTuning {
                    diag,
                    ..Default::default()
                }
                .constants(true)
            }))
            .collect();
        out.push((super::sample::source(entry), combos));
    }
    out
}

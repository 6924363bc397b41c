//! The WGSL kernels (`shaders/`), their bindings, and every combination of
//! override constants the crate uses (so that `tests/shaders.rs` can
//! parse and validate each one with naga, without a GPU).

use std::borrow::Cow;

use super::context::{Binding, KernelSource};

/// `shaders/copy_u32.wgsl`: the device-copy bandwidth probe.
pub fn copy_u32() -> KernelSource {
    KernelSource {
        name: "copy_u32",
        source: Cow::Borrowed(include_str!("../../shaders/copy_u32.wgsl")),
        entry: "main",
        bindings: &[Binding::ReadOnly, Binding::ReadWrite, Binding::ReadOnly],
        features: wgpu::Features::empty(),
    }
}

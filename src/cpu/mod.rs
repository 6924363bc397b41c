//! The CPU backend: the reference codec run on all cores with rayon, and the
//! f64 / exact references of the inference kernels.
//!
//! [`encode`] turns a safetensors file into a `.wcodec`; [`decode`] turns a
//! `.wcodec` back into safetensors with bounded memory. [`gemv`], [`softmax`]
//! and [`sample`] are the references the GPU kernels are tested against. The
//! GPU backend (`wgpu/`) mirrors these names.

pub mod decode;
pub mod encode;
pub mod gemv;
pub mod sample;
pub mod softmax;

//! The CPU backend: the reference codec run on all cores with rayon.
//!
//! [`encode`] turns a safetensors file into a `.wcodec`; [`decode`] turns a
//! `.wcodec` back into safetensors with bounded memory. The GPU backend
//! (`wgpu/`) mirrors these names.

pub mod decode;
pub mod encode;

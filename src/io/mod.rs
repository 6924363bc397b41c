//! File input and output: atomic writes, safetensors in and out.

pub mod atomic;
pub mod safetensors;

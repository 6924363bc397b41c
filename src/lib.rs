//! wcodec: a codec for neural-network weights.
//!
//! The CPU path in [`codec`] is the specification; every accelerated backend
//! is tested against it byte for byte. The container is in [`format`] and
//! documented in `docs/FORMAT.md`.

pub mod backend;
pub mod cli;
pub mod codec;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dtype;
pub mod error;
pub mod format;
pub mod io;
pub mod rng;
pub mod sample;
pub mod synth;
pub mod wgpu;

pub use error::{Error, Result};

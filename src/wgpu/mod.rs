//! The GPU backend on wgpu (Vulkan, Metal, DX12): WGSL kernels in `shaders/`,
//! bit-exact with the CPU reference in [`crate::codec`].
//!
//! * [`context`]: adapter, device, pipeline cache, buffer pool, timestamps;
//! * [`decode`]: `.wcodec` → GPU buffers or safetensors (mirrors [`crate::cpu::decode`]).

pub mod context;
pub mod shaders;

pub use context::{AdapterChoice, ContextOptions, GpuContext, GpuTimer, Kernel, KernelSource};

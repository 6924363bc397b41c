//! The GPU backend on wgpu (Vulkan, Metal, DX12): WGSL kernels in `shaders/`,
//! bit-exact with the CPU reference in [`crate::codec`].
//!
//! * [`context`]: adapter, device, pipeline cache, buffer pool, timestamps;
//! * [`decode`]: `.wcodec` → GPU buffers or safetensors (mirrors [`crate::cpu::decode`]).

pub mod bench;
pub mod benchdata;
pub mod context;
pub mod decode;
pub mod plan;
pub mod shaders;

pub use context::{AdapterChoice, ContextOptions, GpuContext, GpuTimer, Kernel, KernelSource};
pub use decode::{
    CanonStream, DecodeReport, GpuDecodeOptions, GpuDecoder, GpuTensor, decode_file, decode_to_safetensors, read_tensor,
};

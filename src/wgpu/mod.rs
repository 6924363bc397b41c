//! The GPU backend on wgpu (Vulkan, Metal, DX12): WGSL kernels in `shaders/`,
//! bit-exact with the CPU reference in [`crate::codec`].
//!
//! * [`context`]: adapter, device, pipeline cache, buffer pool, timestamps;
//! * [`decode`]: `.wcodec` → GPU buffers or safetensors (mirrors [`crate::cpu::decode`]);
//! * inference: [`gemv`], [`softmax`], [`sample`], [`head`] (mirror
//!   [`crate::cpu::gemv`], [`crate::cpu::softmax`], [`crate::cpu::sample`]),
//!   their WGSL assembled in [`kernels`].

pub mod bench;
pub mod benchdata;
pub mod context;
pub mod decode;
pub mod gemv;
pub mod gemv_gen;
pub mod gemv_rans;
pub mod head;
pub mod kernels;
#[cfg(test)]
pub(crate) mod layout;
pub mod plan;
pub mod sample;
pub mod shaders;
pub mod softmax;

pub use context::{AdapterChoice, ContextOptions, GpuContext, GpuTimer, Kernel, KernelSource};
pub use decode::{
    CanonStream, DecodeReport, GpuDecodeOptions, GpuDecoder, GpuTensor, decode_file,
    decode_to_safetensors, read_tensor,
};

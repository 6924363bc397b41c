//! Softmax on CUDA (`kernels/softmax.cu`): the mirror of
//! [`crate::wgpu::softmax`], the same two dispatches (`stats`, `normalize`)
//! and block decomposition, with warp-shuffle reductions.

use cudarc::driver::{CudaFunction, DeviceRepr, LaunchConfig, PushKernelArg};

use crate::cpu::softmax::check_temperature;
use crate::error::{Error, Result};

use super::{CudaBackend, DevBuf, kernels};

/// The kernel's parameter block (`struct SoftmaxParams` in softmax.cu).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SoftmaxParams {
    pub logits: u64,
    pub part: u64,
    pub out: u64,
    pub n: u32,
    pub rows: u32,
    pub ld_in: u32,
    pub ld_out: u32,
    pub nb: u32,
    pub c: f32,
    pub inv_t: f32,
    pub pad: u32,
}

// SAFETY: `#[repr(C)]`, the layout of `struct SoftmaxParams` (56 bytes).
unsafe impl DeviceRepr for SoftmaxParams {}

/// Threads per block and elements per thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaSoftmaxTuning {
    pub wg: u32,
    pub e: u32,
}

impl Default for CudaSoftmaxTuning {
    /// The wgpu default's split (256 × 4).
    fn default() -> Self {
        CudaSoftmaxTuning { wg: 256, e: 4 }
    }
}

/// A softmax over `rows` rows of `n` logits in its own device buffers.
pub struct CudaSoftmax {
    pub n: usize,
    pub rows: usize,
    pub nb: u32,
    pub log: bool,
    pub tuning: CudaSoftmaxTuning,
    stats: CudaFunction,
    norm: CudaFunction,
    pub(crate) params: SoftmaxParams,
    pub input: DevBuf,
    pub partials: DevBuf,
    pub out: DevBuf,
}

impl std::fmt::Debug for CudaSoftmax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaSoftmax({}×{}, {:?}, {} blocks/row, log {})",
            self.rows, self.n, self.tuning, self.nb, self.log
        )
    }
}

impl CudaSoftmax {
    pub fn new(
        cuda: &CudaBackend,
        n: usize,
        rows: usize,
        temperature: f32,
        log: bool,
        tuning: CudaSoftmaxTuning,
    ) -> Result<CudaSoftmax> {
        check_temperature(temperature)?;
        let c = std::f32::consts::LOG2_E / temperature;
        if !c.is_finite() {
            return Err(Error::Param(format!(
                "temperature {temperature} is too small"
            )));
        }
        if n == 0 || rows == 0 || n > u32::MAX as usize / 2 || rows > 65535 {
            return Err(Error::Param(format!("softmax of {rows} rows of {n}")));
        }
        if tuning.wg % 32 != 0 || !(32..=1024).contains(&tuning.wg) || !(1..=64).contains(&tuning.e)
        {
            return Err(Error::Param(format!(
                "softmax tuning {tuning:?} out of range"
            )));
        }
        let nb = n.div_ceil((tuning.wg * tuning.e) as usize) as u32;
        let defines = [
            ("WG", tuning.wg as i64),
            ("E", tuning.e as i64),
            ("LOG", log as i64),
        ];
        let stats = cuda.function("softmax", kernels::SOFTMAX, &defines, "softmax_stats")?;
        let norm = cuda.function("softmax", kernels::SOFTMAX, &defines, "softmax_normalize")?;
        let input = cuda.alloc(rows * n * 4)?;
        let partials = cuda.alloc(rows * nb as usize * 16)?;
        let out = cuda.alloc(rows * n * 4)?;
        let params = SoftmaxParams {
            logits: input.ptr(),
            part: partials.ptr(),
            out: out.ptr(),
            n: n as u32,
            rows: rows as u32,
            ld_in: n as u32,
            ld_out: n as u32,
            nb,
            c,
            inv_t: 1.0 / temperature,
            pad: 0,
        };
        Ok(CudaSoftmax {
            n,
            rows,
            nb,
            log,
            tuning,
            stats,
            norm,
            params,
            input,
            partials,
            out,
        })
    }

    /// Fill the input (`rows × n` logits).
    pub fn write_logits(&self, cuda: &CudaBackend, x: &[f32]) -> Result<()> {
        if x.len() != self.rows * self.n {
            return Err(Error::Param(format!(
                "{} logits for {}×{}",
                x.len(),
                self.rows,
                self.n
            )));
        }
        cuda.write(&self.input, 0, bytemuck::cast_slice(x))
    }

    fn cfg(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.nb, self.rows as u32, 1),
            block_dim: (self.tuning.wg, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Enqueue the statistics kernel only.
    pub fn launch_stats(&self, cuda: &CudaBackend) -> Result<()> {
        cuda.launch("softmax_stats", &self.stats, self.cfg(), |b| {
            b.arg(&self.params);
        })
    }

    /// Enqueue both kernels.
    pub fn launch(&self, cuda: &CudaBackend) -> Result<()> {
        self.launch_stats(cuda)?;
        cuda.launch("softmax_normalize", &self.norm, self.cfg(), |b| {
            b.arg(&self.params);
        })
    }

    /// Read the output (`rows × n`; blocking).
    pub fn read_out(&self, cuda: &CudaBackend) -> Result<Vec<f32>> {
        let b = cuda.read(&self.out, 0, self.rows * self.n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
}

//! GEMV on CUDA: `y[b] = scale ⊙ (W·x[b]) + bias` for 1 to 8 vectors, the
//! speed and accuracy reference of [`crate::wgpu::gemv`].
//!
//! * f32 weights, f32 x: cuBLAS `sgemv` (one vector) or `sgemm` (several);
//! * f16 weights, f16 x: cuBLAS `gemmEx` (f16 inputs, f32 output and
//!   compute type);
//! * int8 weights + per-row scales, f32 or f16 x: `kernels/gemv_i8.cu`
//!   (cuBLAS has no int8-weight × float-vector product), the mirror of the
//!   WGSL int8 kernel.
//!
//! Row-major W (`rows × cols`) is column-major `cols × rows` for cuBLAS, so
//! every call is `op(A) = Aᵀ`. A bias is copied into y first and the product
//! added with β = 1.

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::{CudaFunction, DeviceRepr, LaunchConfig, PushKernelArg};

use crate::codec::quant::f32_to_f16_bits;
use crate::cpu::gemv::Weights;
use crate::error::{Error, Result};

use super::{CudaBackend, DevBuf, err, kernels};

/// The most vectors one pass computes (as on wgpu).
pub const MAX_BATCH: usize = 8;

/// The int8 kernel's parameter block (`struct GemvI8Params` in gemv_i8.cu).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct GemvI8Params {
    w: u64,
    x: u64,
    scales: u64,
    bias: u64,
    y: u64,
    rows: u32,
    ld: u32,
    has_bias: u32,
    pad: u32,
}

// SAFETY: `#[repr(C)]`, the layout of `struct GemvI8Params` (56 bytes).
unsafe impl DeviceRepr for GemvI8Params {}

/// How a [`CudaGemv`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaGemvPath {
    /// cuBLAS `sgemv` / `sgemm`.
    Sgemv,
    /// cuBLAS `gemmEx`, f16 inputs.
    GemmEx,
    /// `gemv_i8.cu`.
    Int8Kernel,
}

impl CudaGemvPath {
    pub fn name(self) -> &'static str {
        match self {
            CudaGemvPath::Sgemv => "cuBLAS sgemv",
            CudaGemvPath::GemmEx => "cuBLAS gemmEx f16",
            CudaGemvPath::Int8Kernel => "NVRTC int8 kernel",
        }
    }
}

/// Weights, x, y and bias in device memory, ready to run.
pub struct CudaGemv {
    pub rows: usize,
    pub cols: usize,
    pub batch: usize,
    pub path: CudaGemvPath,
    /// x is f16 (f16 and int8 weights) or f32.
    pub x_f16: bool,
    /// Row stride of W and x in elements (int8: padded to 16).
    ld: usize,
    w: DevBuf,
    scales: Option<DevBuf>,
    bias_rep: Option<DevBuf>,
    pub x: DevBuf,
    pub y: DevBuf,
    i8: Option<(CudaFunction, GemvI8Params, LaunchConfig)>,
}

impl std::fmt::Debug for CudaGemv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaGemv({}×{}, batch {}, {}, x {})",
            self.rows,
            self.cols,
            self.batch,
            self.path.name(),
            if self.x_f16 { "f16" } else { "f32" }
        )
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl CudaGemv {
    /// Upload `w` (`rows × cols`) and set up `batch` vectors of x (f16 when
    /// `x_f16`). f16 weights need f16 x (cuBLAS `gemmEx` takes one input
    /// type); f32 weights need f32 x.
    pub fn new(
        cuda: &CudaBackend,
        w: &Weights<'_>,
        rows: usize,
        cols: usize,
        bias: Option<&[f32]>,
        batch: usize,
        x_f16: bool,
    ) -> Result<CudaGemv> {
        w.check(rows, cols)?;
        let batch = batch.max(1);
        if batch > MAX_BATCH {
            return Err(Error::Param(format!(
                "batch {batch}: at most {MAX_BATCH} vectors per pass"
            )));
        }
        if let Some(b) = bias.filter(|b| b.len() != rows) {
            return Err(Error::Param(format!(
                "bias has {} values for {rows} rows",
                b.len()
            )));
        }
        if rows > i32::MAX as usize || cols > i32::MAX as usize {
            return Err(Error::Param(format!(
                "{rows}×{cols} is too large for cuBLAS"
            )));
        }
        let path = match (w, x_f16) {
            (Weights::F32(_), false) => CudaGemvPath::Sgemv,
            (Weights::F16(_), true) => CudaGemvPath::GemmEx,
            (Weights::I8 { .. }, _) => CudaGemvPath::Int8Kernel,
            (Weights::F32(_), true) => {
                return Err(Error::Param(
                    "f32 weights on CUDA take f32 x (cuBLAS sgemv)".into(),
                ));
            }
            (Weights::F16(_), false) => {
                return Err(Error::Param(
                    "f16 weights on CUDA take f16 x (cuBLAS gemmEx has one input type)".into(),
                ));
            }
        };
        let ld = if path == CudaGemvPath::Int8Kernel {
            cols.div_ceil(16) * 16
        } else {
            cols
        };
        let w_dev = match w {
            Weights::F32(v) => cuda.upload(bytemuck::cast_slice(v))?,
            Weights::F16(v) => cuda.upload(bytemuck::cast_slice(v))?,
            Weights::I8 { q, .. } => {
                let raw: &[u8] = bytemuck::cast_slice(q);
                if ld == cols {
                    cuda.upload(raw)?
                } else {
                    let mut padded = vec![0u8; rows * ld];
                    for r in 0..rows {
                        padded[r * ld..r * ld + cols]
                            .copy_from_slice(&raw[r * cols..(r + 1) * cols]);
                    }
                    cuda.upload(&padded)?
                }
            }
        };
        let scales = match w {
            Weights::I8 { scales, .. } => Some(cuda.upload(&f32_bytes(scales))?),
            _ => None,
        };
        let bias_rep = match bias {
            Some(b) => {
                let rep: Vec<f32> = (0..batch).flat_map(|_| b.iter().copied()).collect();
                Some(cuda.upload(&f32_bytes(&rep))?)
            }
            None => None,
        };
        let xs = if x_f16 { 2 } else { 4 };
        let x = cuda.upload(&vec![0u8; batch * ld * xs])?;
        let y = cuda.alloc(batch * rows * 4)?;
        let i8 = if path == CudaGemvPath::Int8Kernel {
            let nr: u32 = if batch <= 4 { 4 } else { 2 };
            let warps = 8u32;
            let defines = [
                ("WARPS", warps as i64),
                ("NR", nr as i64),
                ("B", batch as i64),
                ("XF16", x_f16 as i64),
            ];
            let f = cuda.function("gemv_i8", kernels::GEMV_I8, &defines, "gemv_i8")?;
            let params = GemvI8Params {
                w: w_dev.ptr(),
                x: x.ptr(),
                scales: scales.as_ref().map_or(0, |s| s.ptr()),
                bias: bias_rep.as_ref().map_or(0, |b| b.ptr()),
                y: y.ptr(),
                rows: rows as u32,
                ld: ld as u32,
                has_bias: bias.is_some() as u32,
                pad: 0,
            };
            let cfg = LaunchConfig {
                grid_dim: ((rows as u32).div_ceil(warps * nr), 1, 1),
                block_dim: (warps * 32, 1, 1),
                shared_mem_bytes: 0,
            };
            Some((f, params, cfg))
        } else {
            None
        };
        Ok(CudaGemv {
            rows,
            cols,
            batch,
            path,
            x_f16,
            ld,
            w: w_dev,
            scales,
            bias_rep,
            x,
            y,
            i8,
        })
    }

    /// Bytes of W (and scales) one pass reads.
    pub fn weight_bytes(&self) -> u64 {
        (self.w.bytes + self.scales.as_ref().map_or(0, |s| s.bytes)) as u64
    }

    /// Write the vectors (`batch × cols` values; rounded to f16 when x is f16).
    pub fn write_x(&self, cuda: &CudaBackend, x: &[f32]) -> Result<()> {
        if x.len() != self.batch * self.cols {
            return Err(Error::Param(format!(
                "x has {} values, {}×{} needed",
                x.len(),
                self.batch,
                self.cols
            )));
        }
        let mut bytes = Vec::with_capacity(self.batch * self.ld * 4);
        for b in 0..self.batch {
            let row = &x[b * self.cols..(b + 1) * self.cols];
            for c in 0..self.ld {
                let v = row.get(c).copied().unwrap_or(0.0);
                if self.x_f16 {
                    bytes.extend_from_slice(&f32_to_f16_bits(v).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        cuda.write(&self.x, 0, &bytes)
    }

    /// Enqueue one pass.
    pub fn launch(&self, cuda: &CudaBackend) -> Result<()> {
        if let Some((f, params, cfg)) = &self.i8 {
            return cuda.launch("gemv_i8", f, *cfg, |b| {
                b.arg(params);
            });
        }
        let beta: f32 = if let Some(br) = &self.bias_rep {
            cuda.copy(&self.y, 0, br, 0, br.bytes)?;
            1.0
        } else {
            0.0
        };
        let alpha: f32 = 1.0;
        let (m, n, k) = (self.rows as i32, self.batch as i32, self.cols as i32);
        let h = *cuda.blas.handle();
        let t = cublasOperation_t::CUBLAS_OP_T;
        let nn = cublasOperation_t::CUBLAS_OP_N;
        // SAFETY: W is cols × rows column-major (lda = cols), X is cols × batch
        // (ldb = cols), Y rows × batch (ldc = rows), all live device buffers of
        // those sizes; alpha and beta are host scalars (the default pointer mode).
        let r = unsafe {
            match self.path {
                CudaGemvPath::Sgemv if self.batch == 1 => cudarc::cublas::result::sgemv(
                    h,
                    t,
                    k,
                    m,
                    &alpha,
                    self.w.ptr() as *const f32,
                    k,
                    self.x.ptr() as *const f32,
                    1,
                    &beta,
                    self.y.ptr() as *mut f32,
                    1,
                ),
                CudaGemvPath::Sgemv => cudarc::cublas::result::sgemm(
                    h,
                    t,
                    nn,
                    m,
                    n,
                    k,
                    &alpha,
                    self.w.ptr() as *const f32,
                    k,
                    self.x.ptr() as *const f32,
                    k,
                    &beta,
                    self.y.ptr() as *mut f32,
                    m,
                ),
                CudaGemvPath::GemmEx => cudarc::cublas::result::gemm_ex(
                    h,
                    t,
                    nn,
                    m,
                    n,
                    k,
                    &alpha as *const f32 as *const _,
                    self.w.ptr() as *const _,
                    cudaDataType_t::CUDA_R_16F,
                    k,
                    self.x.ptr() as *const _,
                    cudaDataType_t::CUDA_R_16F,
                    k,
                    &beta as *const f32 as *const _,
                    self.y.ptr() as *mut _,
                    cudaDataType_t::CUDA_R_32F,
                    m,
                    cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
                ),
                CudaGemvPath::Int8Kernel => unreachable!("handled above"),
            }
        };
        r.map_err(|e| err(self.path.name(), e))
    }

    /// Read y (`batch × rows`; blocking).
    pub fn read_y(&self, cuda: &CudaBackend) -> Result<Vec<f32>> {
        let b = cuda.read(&self.y, 0, self.batch * self.rows * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// Fill y with NaN (0xff bytes), so that an output not written shows.
    pub fn poison_y(&self, cuda: &CudaBackend) -> Result<()> {
        cuda.memset(&self.y, 0, 0xff, self.batch * self.rows * 4)
    }
}

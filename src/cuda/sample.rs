//! Token sampling on CUDA (`kernels/sample.cu`): the mirror of
//! [`crate::wgpu::sample`], the same stages (softmax `stats`, `prepare`,
//! `select`) and the exact algorithm of [`crate::cpu::sample`], so a seed
//! gives the same token as on the CPU and on wgpu.

use cudarc::driver::{CudaFunction, DeviceRepr, LaunchConfig, PushKernelArg};

use crate::cpu::sample::{SampleParams, exp2_table};
use crate::error::{Error, Result};

use super::softmax::{CudaSoftmax, CudaSoftmaxTuning};
use super::{CudaBackend, DevBuf, kernels};

/// The kernel's parameter block (`struct SampleParams` in sample.cu).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Params {
    logits: u64,
    soft: u64,
    exp2tab: u64,
    dist: u64,
    hcnt: u64,
    hw: u64,
    steps: u64,
    tokens: u64,
    n: u32,
    rows: u32,
    ld_in: u32,
    nb_soft: u32,
    nbs: u32,
    ld_d: u32,
    top_k: u32,
    p_fixed: u32,
    seed_lo: u32,
    seed_hi: u32,
    greedy: u32,
    scale: f32,
    plain: u32,
}

// SAFETY: `#[repr(C)]`, the layout of `struct SampleParams` (120 bytes).
unsafe impl DeviceRepr for Params {}

/// Work split (the wgpu sampler's default: prepare 256 × 2 words, select 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaSamplerTuning {
    pub softmax: CudaSoftmaxTuning,
    pub prepare_wg: u32,
    pub prepare_words: u32,
    pub select_wg: u32,
}

impl Default for CudaSamplerTuning {
    fn default() -> Self {
        CudaSamplerTuning {
            softmax: CudaSoftmaxTuning::default(),
            prepare_wg: 256,
            prepare_words: 2,
            select_wg: 1024,
        }
    }
}

/// A sampler over `rows` rows of `n` logits in its own device buffers.
pub struct CudaSampler {
    pub n: usize,
    pub rows: usize,
    pub params: SampleParams,
    pub tuning: CudaSamplerTuning,
    pub softmax: CudaSoftmax,
    prepare: CudaFunction,
    select: CudaFunction,
    p: Params,
    nbs: u32,
    _table: DevBuf,
    _dist: DevBuf,
    _hcnt: DevBuf,
    _hw: DevBuf,
    pub steps: DevBuf,
    pub tokens: DevBuf,
}

impl std::fmt::Debug for CudaSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaSampler({}×{}, {:?}, {:?})",
            self.rows, self.n, self.params, self.tuning
        )
    }
}

impl CudaSampler {
    /// Step counters start at 0; `auto_step` advances them by one per call.
    pub fn new(
        cuda: &CudaBackend,
        n: usize,
        rows: usize,
        params: &SampleParams,
        auto_step: bool,
        tuning: CudaSamplerTuning,
    ) -> Result<CudaSampler> {
        params.check()?;
        if n == 0 || n > (u32::MAX / 2) as usize || rows == 0 || rows > 65535 {
            return Err(Error::Param(format!("sampling {rows} rows of {n} logits")));
        }
        let t = tuning;
        if !t.prepare_wg.is_power_of_two()
            || !t.select_wg.is_power_of_two()
            || !(32..=1024).contains(&t.prepare_wg)
            || !(256..=1024).contains(&t.select_wg)
            || !(1..=16).contains(&t.prepare_words)
        {
            return Err(Error::Param(format!("sampler tuning {t:?} out of range")));
        }
        let softmax_t = if params.temperature > 0.0 {
            params.temperature
        } else {
            1.0
        };
        let softmax = CudaSoftmax::new(cuda, n, rows, softmax_t, false, t.softmax)?;
        let ld_d = n.div_ceil(8);
        let nbs = ld_d.div_ceil((t.prepare_wg * t.prepare_words) as usize);
        if nbs > 65535 {
            return Err(Error::Param(format!("rows of {n} logits are too long")));
        }
        let defines = [
            ("PWG", t.prepare_wg as i64),
            ("PW", t.prepare_words as i64),
            ("SWG", t.select_wg as i64),
            ("AUTO_STEP", auto_step as i64),
        ];
        let prepare = cuda.function("sample", kernels::SAMPLE, &defines, "sample_prepare")?;
        let select = cuda.function("sample", kernels::SAMPLE, &defines, "sample_select")?;
        let table: Vec<u8> = exp2_table().iter().flat_map(|v| v.to_le_bytes()).collect();
        let table = cuda.upload(&table)?;
        let dist = cuda.alloc(rows * ld_d * 16)?;
        let hcnt = cuda.alloc(rows * nbs * 256 * 4)?;
        let hw = cuda.alloc(rows * nbs * 256 * 8)?;
        let steps = cuda.upload(&vec![0u8; rows * 8])?;
        let tokens = cuda.alloc(rows * 4)?;
        let p = Params {
            logits: softmax.input.ptr(),
            soft: softmax.partials.ptr(),
            exp2tab: table.ptr(),
            dist: dist.ptr(),
            hcnt: hcnt.ptr(),
            hw: hw.ptr(),
            steps: steps.ptr(),
            tokens: tokens.ptr(),
            n: n as u32,
            rows: rows as u32,
            ld_in: n as u32,
            nb_soft: softmax.nb,
            nbs: nbs as u32,
            ld_d: ld_d as u32,
            ..Default::default()
        };
        let mut s = CudaSampler {
            n,
            rows,
            params: *params,
            tuning: t,
            softmax,
            prepare,
            select,
            p,
            nbs: nbs as u32,
            _table: table,
            _dist: dist,
            _hcnt: hcnt,
            _hw: hw,
            steps,
            tokens,
        };
        s.set_params(cuda, params)?;
        Ok(s)
    }

    /// Change the sampling parameters.
    pub fn set_params(&mut self, cuda: &CudaBackend, params: &SampleParams) -> Result<()> {
        params.check()?;
        if params.temperature > 0.0 && params.temperature != self.params.temperature {
            self.softmax = CudaSoftmax::new(
                cuda,
                self.n,
                self.rows,
                params.temperature,
                false,
                self.tuning.softmax,
            )?;
            self.p.logits = self.softmax.input.ptr();
            self.p.soft = self.softmax.partials.ptr();
        }
        self.params = *params;
        self.p.scale = if params.temperature > 0.0 {
            params.scale()
        } else {
            0.0
        };
        self.p.top_k = params.top_k;
        self.p.p_fixed = params.p_fixed();
        self.p.seed_lo = params.seed as u32;
        self.p.seed_hi = (params.seed >> 32) as u32;
        self.p.greedy = params.is_greedy() as u32;
        self.p.plain = params.draws_in_index_order(self.n) as u32;
        Ok(())
    }

    /// Set each row's step counter.
    pub fn set_steps(&self, cuda: &CudaBackend, steps: &[u64]) -> Result<()> {
        if steps.len() != self.rows {
            return Err(Error::Param(format!(
                "{} step counters for {} rows",
                steps.len(),
                self.rows
            )));
        }
        cuda.write(&self.steps, 0, bytemuck::cast_slice(steps))
    }

    /// Read the step counters.
    pub fn read_steps(&self, cuda: &CudaBackend) -> Result<Vec<u64>> {
        let b = cuda.read(&self.steps, 0, self.rows * 8)?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// Fill the input (`rows × n` logits).
    pub fn write_logits(&self, cuda: &CudaBackend, x: &[f32]) -> Result<()> {
        self.softmax.write_logits(cuda, x)
    }

    /// Enqueue every stage.
    pub fn launch(&self, cuda: &CudaBackend) -> Result<()> {
        self.softmax.launch_stats(cuda)?;
        if !self.params.is_greedy() {
            cuda.launch(
                "sample_prepare",
                &self.prepare,
                LaunchConfig {
                    grid_dim: (self.nbs, self.rows as u32, 1),
                    block_dim: (self.tuning.prepare_wg, 1, 1),
                    shared_mem_bytes: 0,
                },
                |b| {
                    b.arg(&self.p);
                },
            )?;
        }
        cuda.launch(
            "sample_select",
            &self.select,
            LaunchConfig {
                grid_dim: (self.rows as u32, 1, 1),
                block_dim: (self.tuning.select_wg, 1, 1),
                shared_mem_bytes: 0,
            },
            |b| {
                b.arg(&self.p);
            },
        )
    }

    /// Read the tokens (blocking).
    pub fn read_tokens(&self, cuda: &CudaBackend) -> Result<Vec<u32>> {
        let b = cuda.read(&self.tokens, 0, self.rows * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
}

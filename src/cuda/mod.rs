//! The CUDA cross-check backend (feature `cuda`): the same algorithms as the
//! WGSL kernels, written in CUDA C++ (`src/cuda/kernels/*.cu`) and compiled
//! at run time by NVRTC, plus cuBLAS as the GEMV reference.
//!
//! * [`CudaBackend`]: device 0, one stream, an NVRTC compile cache keyed by
//!   (kernel, defines), a cuBLAS handle, CUDA events for timing;
//! * [`decode`]: `.wcodec` tensors → canonical bytes or dequantised floats
//!   (mirrors `wgpu::decode`, lossy tiles included);
//! * inference: [`gemv`] (cuBLAS `sgemv`/`gemmEx`, an int8 kernel),
//!   [`softmax`], [`sample`] (mirror `wgpu::{gemv, softmax, sample}`).
//!
//! The libraries are loaded at run time (`dynamic-loading`): a build with the
//! feature runs on machines without CUDA, and [`CudaBackend::new`] then
//! returns one clear error instead of panicking.

pub mod decode;
pub mod gemv;
pub mod sample;
pub mod softmax;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::sys::{CUdevice_attribute, CUevent_flags, CUfunction_attribute};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
};

use crate::error::{Error, Result};

pub(crate) fn err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Cuda(format!("{what}: {e:?}"))
}

/// Kernel sources, one file per algorithm.
pub mod kernels {
    /// Tile decode, rebuild (lossless and lossy tiles) and render.
    pub const DECODE: &str = include_str!("kernels/decode.cu");
    /// Softmax `stats` and `normalize`.
    pub const SOFTMAX: &str = include_str!("kernels/softmax.cu");
    /// Sampling `prepare` and `select_token` (after softmax `stats`).
    pub const SAMPLE: &str = include_str!("kernels/sample.cu");
    /// int8 GEMV with per-row scales.
    pub const GEMV_I8: &str = include_str!("kernels/gemv_i8.cu");
}

/// Why the CUDA backend cannot start, or `None` if its libraries load.
/// Probes `libcuda`, `libnvrtc` and `libcublas` without panicking.
pub fn missing_library() -> Option<String> {
    // SAFETY: each probe only tries to dlopen the library's candidate names.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            return Some(
                "CUDA driver not found (libcuda.so.1): no NVIDIA driver on this machine".into(),
            );
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            return Some(
                "NVRTC not found (libnvrtc.so.13): the CUDA 13 runtime compiler is not installed"
                    .into(),
            );
        }
        if !cudarc::cublas::sys::is_culib_present() {
            return Some(
                "cuBLAS not found (libcublas.so.13): the CUDA 13 cuBLAS library is not installed"
                    .into(),
            );
        }
    }
    None
}

/// A device allocation (bytes), freed on drop.
pub struct DevBuf {
    slice: CudaSlice<u8>,
    ptr: u64,
    pub bytes: usize,
}

impl std::fmt::Debug for DevBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevBuf({:#x}, {} bytes)", self.ptr, self.bytes)
    }
}

impl DevBuf {
    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    /// The device address of byte `off`.
    pub fn at(&self, off: usize) -> u64 {
        debug_assert!(off <= self.bytes);
        self.ptr + off as u64
    }
    pub fn slice(&self) -> &CudaSlice<u8> {
        &self.slice
    }
}

/// A pair of timing events around some GPU work.
pub struct EventPair {
    start: CudaEvent,
    end: CudaEvent,
}

impl EventPair {
    /// Milliseconds between the two events (waits for the second).
    pub fn ms(&self) -> Result<f64> {
        self.start
            .elapsed_ms(&self.end)
            .map(|v| v as f64)
            .map_err(|e| err("cuEventElapsedTime", e))
    }
}

/// The CUDA backend: device 0, one stream, the NVRTC cache and cuBLAS.
pub struct CudaBackend {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub(crate) blas: cudarc::cublas::CudaBlas,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// The device's name.
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (i32, i32),
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Shared memory a block may opt in to, bytes.
    pub smem_optin: u32,
    /// Total device memory, bytes.
    pub memory: usize,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend({})", self.describe())
    }
}

/// Seconds of untimed runs before a timing (see [`CudaBackend::time_runs`]).
pub const WARM_UP_S: f64 = 0.5;

impl CudaBackend {
    /// Open device 0. Without the driver, NVRTC, cuBLAS or a device, a clear
    /// error (never a panic).
    pub fn new() -> Result<CudaBackend> {
        if let Some(m) = missing_library() {
            return Err(Error::Cuda(m));
        }
        let n = CudaContext::device_count().map_err(|e| err("cuDeviceGetCount", e))?;
        if n < 1 {
            return Err(Error::Cuda("the CUDA driver sees no device".into()));
        }
        let ctx = CudaContext::new(0).map_err(|e| err("creating the CUDA context", e))?;
        // One stream, synchronised by the host: no per-buffer events.
        // SAFETY: every buffer of this backend is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| err("cuStreamCreate", e))?;
        let blas =
            cudarc::cublas::CudaBlas::new(stream.clone()).map_err(|e| err("cublasCreate", e))?;
        let attr = |a| ctx.attribute(a).map_err(|e| err("cuDeviceGetAttribute", e));
        let sms = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let smem_optin =
            attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u32;
        let cc = ctx
            .compute_capability()
            .map_err(|e| err("compute capability", e))?;
        if cc.0 < 7 {
            return Err(Error::Cuda(format!(
                "compute capability {}.{}: the kernels need 7.0 or newer (warp-synchronous intrinsics)",
                cc.0, cc.1
            )));
        }
        let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let memory = ctx.total_mem().unwrap_or(0);
        Ok(CudaBackend {
            ctx,
            stream,
            blas,
            functions: Mutex::new(HashMap::new()),
            name,
            cc,
            sms,
            smem_optin,
            memory,
        })
    }

    /// One line about the device.
    pub fn describe(&self) -> String {
        format!(
            "{} (CUDA, sm_{}{}, {} SMs, {:.0} GiB)",
            self.name,
            self.cc.0,
            self.cc.1,
            self.sms,
            self.memory as f64 / (1u64 << 30) as f64
        )
    }

    /// A kernel compiled by NVRTC for this device, cached by (source name,
    /// defines, entry point).
    pub fn function(
        &self,
        name: &str,
        src: &str,
        defines: &[(&str, i64)],
        entry: &str,
    ) -> Result<CudaFunction> {
        let defs: Vec<String> = defines.iter().map(|(k, v)| format!("-D{k}={v}")).collect();
        let key = format!("{name}|{}|{entry}", defs.join(" "));
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(&key) {
            return Ok(f.clone());
        }
        let mut options = vec![
            format!("--gpu-architecture=compute_{}{}", self.cc.0, self.cc.1),
            "--std=c++17".to_string(),
            "--ftz=false".to_string(),
            "--prec-div=true".to_string(),
            "--prec-sqrt=true".to_string(),
        ];
        options.extend(defs);
        let opts = cudarc::nvrtc::CompileOptions {
            options,
            name: Some(format!("{name}.cu")),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(src, opts).map_err(|e| match e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => Error::Cuda(format!(
                "NVRTC could not compile {name}.cu ({}):\n{}",
                key,
                log.to_string_lossy()
            )),
            e => err(&format!("NVRTC on {name}.cu"), e),
        })?;
        let module = self
            .ctx
            .load_module(ptx)
            .map_err(|e| err(&format!("loading {name}.cu's PTX"), e))?;
        let f = module
            .load_function(entry)
            .map_err(|e| err(&format!("{name}.cu has no entry {entry}"), e))?;
        cache.insert(key, f.clone());
        Ok(f)
    }

    /// Number of kernels compiled so far.
    pub fn cached_functions(&self) -> usize {
        self.functions.lock().map_or(0, |c| c.len())
    }

    /// Allow `f` a dynamic shared-memory size above the default 48 KiB.
    pub(crate) fn allow_smem(&self, f: &CudaFunction, bytes: u32) -> Result<()> {
        if bytes > self.smem_optin {
            return Err(Error::Cuda(format!(
                "a kernel needs {bytes} bytes of shared memory, the device allows {}",
                self.smem_optin
            )));
        }
        f.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            bytes as i32,
        )
        .map_err(|e| err("cuFuncSetAttribute", e))
    }

    /// Resident blocks of `f` per SM at `threads` threads and `smem` bytes.
    pub(crate) fn blocks_per_sm(&self, f: &CudaFunction, threads: u32, smem: u32) -> Result<u32> {
        f.occupancy_max_active_blocks_per_multiprocessor(threads, smem as usize, None)
            .map_err(|e| err("cuOccupancyMaxActiveBlocksPerMultiprocessor", e))
    }

    /// Uninitialised device memory (at least 4 bytes, rounded up to 16).
    pub fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        let n = bytes.max(4).div_ceil(16) * 16;
        // SAFETY: the bytes are written before they are read (or poisoned).
        let slice = unsafe { self.stream.alloc::<u8>(n) }
            .map_err(|e| err(&format!("allocating {n} bytes on the device"), e))?;
        let ptr = {
            let (p, _rec) = slice.device_ptr(&self.stream);
            p
        };
        Ok(DevBuf { ptr, bytes, slice })
    }

    /// A new buffer holding `data` (padded with zeros to a multiple of 16).
    pub fn upload(&self, data: &[u8]) -> Result<DevBuf> {
        let b = self.alloc(data.len())?;
        self.memset(&b, 0, 0, b.slice.len())?;
        self.write(&b, 0, data)?;
        Ok(b)
    }

    /// Copy `data` into `dst` at byte `off` (blocking).
    pub fn write(&self, dst: &DevBuf, off: usize, data: &[u8]) -> Result<()> {
        if off + data.len() > dst.slice.len() {
            return Err(Error::Cuda(format!(
                "write of {} bytes at {off} past a buffer of {}",
                data.len(),
                dst.slice.len()
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: the range lies inside `dst`; the host slice outlives the
        // copy because the stream is synchronised before returning.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(dst.at(off), data, self.stream.cu_stream())
        }
        .map_err(|e| err("cuMemcpyHtoDAsync", e))?;
        self.sync()
    }

    /// Read `len` bytes of `src` from byte `off` (blocking).
    pub fn read(&self, src: &DevBuf, off: usize, len: usize) -> Result<Vec<u8>> {
        if off + len > src.slice.len() {
            return Err(Error::Cuda(format!(
                "read of {len} bytes at {off} past a buffer of {}",
                src.slice.len()
            )));
        }
        let mut out = vec![0u8; len];
        if len > 0 {
            self.sync()?;
            // SAFETY: the range lies inside `src`; the stream is synchronised
            // before `out` is used.
            unsafe {
                cudarc::driver::result::memcpy_dtoh_async(
                    &mut out,
                    src.at(off),
                    self.stream.cu_stream(),
                )
            }
            .map_err(|e| err("cuMemcpyDtoHAsync", e))?;
            self.sync()?;
        }
        Ok(out)
    }

    /// Set `len` bytes of `buf` from `off` to `value` (asynchronous).
    pub fn memset(&self, buf: &DevBuf, off: usize, value: u8, len: usize) -> Result<()> {
        if off + len > buf.slice.len() {
            return Err(Error::Cuda("memset past the buffer".into()));
        }
        // SAFETY: the range lies inside `buf`.
        unsafe {
            cudarc::driver::result::memset_d8_async(
                buf.at(off),
                value,
                len,
                self.stream.cu_stream(),
            )
        }
        .map_err(|e| err("cuMemsetD8Async", e))
    }

    /// Copy `len` bytes device to device (asynchronous).
    pub fn copy(
        &self,
        dst: &DevBuf,
        dst_off: usize,
        src: &DevBuf,
        src_off: usize,
        len: usize,
    ) -> Result<()> {
        if dst_off + len > dst.slice.len() || src_off + len > src.slice.len() {
            return Err(Error::Cuda("device copy past a buffer".into()));
        }
        // SAFETY: both ranges lie inside their buffers.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(
                dst.at(dst_off),
                src.at(src_off),
                len,
                self.stream.cu_stream(),
            )
        }
        .map_err(|e| err("cuMemcpyDtoDAsync", e))
    }

    /// Wait for the stream.
    pub fn sync(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| err("cuStreamSynchronize", e))
    }

    /// A timing event recorded on the stream now.
    pub fn event(&self) -> Result<CudaEvent> {
        let e = self
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("cuEventCreate", e))?;
        e.record(&self.stream)
            .map_err(|e| err("cuEventRecord", e))?;
        Ok(e)
    }

    /// Time the work `f` puts on the stream with a pair of events.
    pub fn timed(&self, f: impl FnOnce() -> Result<()>) -> Result<EventPair> {
        let start = self.event()?;
        f()?;
        let end = self.event()?;
        Ok(EventPair { start, end })
    }

    /// Milliseconds of `reps` runs of `f(i)`, each between its own pair of
    /// events, after untimed runs: at least `warmup`, and more until
    /// `WARM_UP_S` of wall time has passed, so that the GPU clock is at
    /// boost (an idle H100 runs at 345 MHz and needs a few hundred ms of
    /// load to reach about 1980 MHz).
    pub fn time_runs(
        &self,
        warmup: usize,
        reps: usize,
        mut f: impl FnMut(usize) -> Result<()>,
    ) -> Result<Vec<f64>> {
        let t0 = std::time::Instant::now();
        let mut i = 0usize;
        let mut batch = warmup.max(1);
        while i < warmup || t0.elapsed().as_secs_f64() < WARM_UP_S {
            let t = std::time::Instant::now();
            for _ in 0..batch {
                f(i)?;
                i += 1;
            }
            self.sync()?;
            // about 50 ms of work per batch
            let dt = t.elapsed().as_secs_f64().max(1e-6);
            batch = ((batch as f64 * 0.05 / dt) as usize).clamp(1, 100_000);
        }
        self.sync()?;
        let mut pairs = Vec::with_capacity(reps);
        for i in 0..reps.max(1) {
            pairs.push(self.timed(|| f(i))?);
        }
        self.sync()?;
        pairs.iter().map(|p| p.ms()).collect()
    }

    /// Launch `f` with `args` pushed by `push` (a thin wrapper that maps the
    /// driver's error).
    pub(crate) fn launch<'a>(
        &'a self,
        what: &str,
        f: &'a CudaFunction,
        cfg: LaunchConfig,
        push: impl FnOnce(&mut cudarc::driver::LaunchArgs<'a>),
    ) -> Result<()> {
        let mut b = self.stream.launch_builder(f);
        push(&mut b);
        // SAFETY: the callers pass parameter structs laid out as the kernels
        // declare them, and device addresses of live buffers whose sizes the
        // kernels respect.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| err(&format!("launching {what}"), e))
    }

    /// The device copy bandwidth (bytes read + written per second, GB/s) of
    /// `cuMemcpyDtoD` over `bytes`, median of `reps` event-timed copies.
    pub fn copy_bandwidth(&self, bytes: usize, reps: usize) -> Result<(f64, f64)> {
        let bytes = bytes / 16 * 16;
        let src = self.alloc(bytes)?;
        let dst = self.alloc(bytes)?;
        // something that is not zero
        let pattern: Vec<u8> = (0..(1u32 << 20))
            .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
            .collect();
        let mut off = 0;
        while off < bytes {
            let n = (bytes - off).min(pattern.len());
            self.write(&src, off, &pattern[..n])?;
            off += n;
        }
        let mut ms = self.time_runs(2, reps, |_| self.copy(&dst, 0, &src, 0, bytes))?;
        if self.read(&dst, bytes - 64, 64)? != self.read(&src, bytes - 64, 64)? {
            return Err(Error::Cuda("the copy probe copied wrong bytes".into()));
        }
        let med = crate::wgpu::bench::median(&mut ms);
        Ok((2.0 * bytes as f64 / (med * 1e-3) / 1e9, med))
    }
}

#[cfg(test)]
mod tests {
    use super::kernels;

    /// Every kernel variant the backend can ask for compiles with NVRTC
    /// (needs only libnvrtc, no GPU; skips with a line without it).
    #[test]
    fn every_kernel_variant_compiles_with_nvrtc() {
        // SAFETY: only probes for the library.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            eprintln!("SKIP: NVRTC not found (libnvrtc.so.13)");
            return;
        }
        let compile = |name: &str, src: &str, defines: &[(&str, i64)]| {
            let mut options = vec![
                "--gpu-architecture=compute_90".to_string(),
                "--std=c++17".to_string(),
            ];
            options.extend(defines.iter().map(|(k, v)| format!("-D{k}={v}")));
            let opts = cudarc::nvrtc::CompileOptions {
                options,
                ..Default::default()
            };
            if let Err(e) = cudarc::nvrtc::compile_ptx_with_opts(src, opts) {
                match e {
                    cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                        panic!("{name} {defines:?}:\n{}", log.to_string_lossy())
                    }
                    e => panic!("{name} {defines:?}: {e:?}"),
                }
            }
        };
        for ntab in [1, 4] {
            for (modes, lossy) in [(0, 0), (1, 0), (1, 1)] {
                for stage in [0, 1088] {
                    compile(
                        "decode",
                        kernels::DECODE,
                        &[
                            ("WARPS", 8),
                            ("STAGE_U32", stage),
                            ("NTAB", ntab),
                            ("MODES", modes),
                            ("LOSSY", lossy),
                        ],
                    );
                }
            }
        }
        for log in [0, 1] {
            compile(
                "softmax",
                kernels::SOFTMAX,
                &[("WG", 256), ("E", 4), ("LOG", log)],
            );
        }
        compile(
            "sample",
            kernels::SAMPLE,
            &[("PWG", 256), ("PW", 2), ("SWG", 1024), ("AUTO_STEP", 1)],
        );
        for (nr, b, xf16) in [(4, 1, 1), (4, 1, 0), (2, 8, 1)] {
            compile(
                "gemv_i8",
                kernels::GEMV_I8,
                &[("WARPS", 8), ("NR", nr), ("B", b), ("XF16", xf16)],
            );
        }
    }
}

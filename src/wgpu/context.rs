//! The GPU context: one per run. It picks the adapter, creates the device with
//! the features and limits the kernels need, caches compute pipelines by
//! (shader, entry point, constants), pools buffers, and times GPU work with
//! timestamp queries.
//!
//! Nothing here knows about the codec: the decoder ([`super::decode`]) and the
//! inference kernels build on the same three services:
//!
//! * [`GpuContext::kernel`]: a compiled pipeline plus its explicit bind-group
//!   layout, built once per ([`KernelSource`], constants) and cached;
//! * [`GpuContext::buffer`]: a pooled buffer that goes back to the pool when
//!   dropped, so that a steady state allocates nothing;
//! * [`GpuTimer`]: timestamp queries around compute passes.
//!
//! Errors from wgpu (validation, out of memory, a lost device) become
//! [`crate::Error::Gpu`] with a message; nothing here panics on a device error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// How a storage binding is used by a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    /// `var<storage, read>`
    ReadOnly,
    /// `var<storage, read_write>`
    ReadWrite,
    /// `var<uniform>`
    Uniform,
}

/// A WGSL compute kernel: its source, entry point and bindings (group 0, in order).
#[derive(Debug, Clone)]
pub struct KernelSource {
    /// A stable name; with the constants it keys the pipeline cache.
    pub name: &'static str,
    pub source: Cow<'static, str>,
    pub entry: &'static str,
    pub bindings: &'static [Binding],
    /// Device features the module needs to compile (e.g. `SUBGROUP`).
    pub features: wgpu::Features,
    /// The kernel bounds every loop and clamps every access itself, so it
    /// may run without wgpu's runtime checks (see [`GpuContext::checks`]).
    pub trusted: bool,
}

/// A compiled kernel: the pipeline and the bind-group layout it was built with.
#[derive(Debug)]
pub struct Kernel {
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl Kernel {
    /// Build a bind group from buffer bindings, one per declared binding, in order.
    pub fn bind_group(
        &self,
        device: &wgpu::Device,
        label: &str,
        buffers: &[wgpu::BufferBinding<'_>],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// Pipeline-cache key: shader name, entry point, override constants (by bits), checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    name: &'static str,
    entry: &'static str,
    constants: Vec<(String, u64)>,
    checked: bool,
}

/// One adapter as `wcodec devices` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub features: Vec<String>,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub min_storage_buffer_offset_alignment: u32,
    /// The adapter's cooperative-matrix configurations (`MxNxK A/B->C/R`),
    /// empty without EXPERIMENTAL_COOPERATIVE_MATRIX.
    pub cooperative_matrix: Vec<String>,
    /// Why this adapter cannot run the decoder, if it cannot.
    pub unusable: Option<String>,
}

/// The features the crate asks for when the adapter has them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::SUBGROUP
        | wgpu::Features::SUBGROUP_BARRIER
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SHADER_INT64
        // Only buffers created with MAP_* and other usages are affected: the
        // decoder head's token buffer (read by the host every token).
        | wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
}

/// One cooperative-matrix configuration as text, e.g. `16x16x16 f16->f32`.
pub fn coop_name(p: &wgpu::CooperativeMatrixProperties) -> String {
    format!(
        "{}x{}x{} {:?}->{:?}{}",
        p.m_size,
        p.n_size,
        p.k_size,
        p.ab_type,
        p.cr_type,
        if p.saturating_accumulation {
            " sat"
        } else {
            ""
        }
    )
    .to_lowercase()
}

/// Whether `props` offers 16×16×16 tiles of f16 A/B with f32 accumulation,
/// the configuration of the tensor-core GEMV (`gemv_gen.rs`).
pub fn coop_f16_f32_16(props: &[wgpu::CooperativeMatrixProperties]) -> bool {
    props.iter().any(|p| {
        p.m_size == 16
            && p.n_size == 16
            && p.k_size == 16
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    })
}

/// Feature names worth printing (the ones the kernels can use).
fn feature_names(f: wgpu::Features) -> Vec<String> {
    let named = [
        (wgpu::Features::SUBGROUP, "SUBGROUP"),
        (wgpu::Features::SUBGROUP_BARRIER, "SUBGROUP_BARRIER"),
        (wgpu::Features::SHADER_F16, "SHADER_F16"),
        (wgpu::Features::SHADER_INT64, "SHADER_INT64"),
        (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
        (
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            "TIMESTAMP_QUERY_INSIDE_PASSES",
        ),
        (
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
            "TIMESTAMP_QUERY_INSIDE_ENCODERS",
        ),
        (wgpu::Features::SHADER_F64, "SHADER_F64"),
        (
            wgpu::Features::MAPPABLE_PRIMARY_BUFFERS,
            "MAPPABLE_PRIMARY_BUFFERS",
        ),
        (
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
            "EXPERIMENTAL_COOPERATIVE_MATRIX",
        ),
    ];
    named
        .iter()
        .filter(|(bit, _)| f.contains(*bit))
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The smallest limits the decoder can work with; an adapter below them is listed as unusable.
fn unusable_reason(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Option<String> {
    if limits.max_compute_workgroup_storage_size < 16 << 10 {
        return Some(format!(
            "{} bytes of workgroup memory; the decoder needs 16 KiB",
            limits.max_compute_workgroup_storage_size
        ));
    }
    if limits.max_compute_invocations_per_workgroup < 32 {
        return Some("fewer than 32 invocations per workgroup".into());
    }
    if limits.max_storage_buffers_per_shader_stage < 5 {
        return Some(format!(
            "{} storage buffers per stage; the decoder needs 5",
            limits.max_storage_buffers_per_shader_stage
        ));
    }
    if info.backend == wgpu::Backend::Noop {
        return Some("the no-op backend".into());
    }
    None
}

fn summarize(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let l = a.limits();
    AdapterSummary {
        index,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        features: feature_names(a.features()),
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_buffer_size: l.max_buffer_size,
        max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
        cooperative_matrix: a
            .cooperative_matrix_properties()
            .iter()
            .map(coop_name)
            .collect(),
        unusable: unusable_reason(&info, &l),
    }
}

/// The backends searched: `WGPU_BACKEND` if set (e.g. `vulkan`, `gl`), else
/// Vulkan, Metal and DX12 (GL's compute support is too thin to be worth it).
pub fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends();
    wgpu::Instance::new(desc)
}

/// Every adapter of [`backends`], in a stable order (the `--adapter N` numbering).
pub fn enumerate() -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let inst = instance();
    let adapters = pollster::block_on(inst.enumerate_adapters(backends()));
    (inst, adapters)
}

/// Summaries of every adapter, for `wcodec devices`.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let (_inst, adapters) = enumerate();
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a))
        .collect()
}

/// Higher is better: discrete before integrated before virtual before CPU,
/// native backends before GL, SUBGROUP as a tie-breaker.
fn score(a: &wgpu::Adapter) -> i64 {
    let info = a.get_info();
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 1,
        wgpu::DeviceType::Cpu => 0,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 1,
        _ => 0,
    };
    let sg = a.features().contains(wgpu::Features::SUBGROUP) as i64;
    ty * 100 + backend * 10 + sg
}

/// Which adapter to open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The best usable adapter (see [`score`]).
    #[default]
    Best,
    /// The `N`-th adapter of [`list_adapters`].
    Index(usize),
}

/// Settings of a context.
#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    pub adapter: AdapterChoice,
    /// Do not request SUBGROUP even if the adapter has it (tests the fallback path).
    pub no_subgroups: bool,
    /// Do not request EXPERIMENTAL_COOPERATIVE_MATRIX even if the adapter has it.
    pub no_coop: bool,
}

/// Counts of the pool's device memory, in bytes.
#[derive(Debug, Default)]
struct PoolStats {
    live: AtomicU64,
    peak: AtomicU64,
}

impl PoolStats {
    fn add(&self, n: u64) {
        let now = self.live.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
    fn sub(&self, n: u64) {
        self.live.fetch_sub(n, Ordering::Relaxed);
    }
}

type PoolKey = (u64, u32); // (size, usage bits)

#[derive(Default)]
struct PoolInner {
    free: HashMap<PoolKey, Vec<wgpu::Buffer>>,
    /// Bytes held by free buffers.
    free_bytes: u64,
}

/// A buffer on loan from the pool; it returns there when dropped.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    key: PoolKey,
    pool: Arc<Mutex<PoolInner>>,
}

impl std::ops::Deref for PooledBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("a pooled buffer is present until dropped")
    }
}

impl PooledBuffer {
    /// Keep this buffer out of the pool: it is destroyed when dropped (a
    /// buffer whose mapping state is unknown must not be handed out again).
    pub fn discard(&mut self) {
        self.buffer.take();
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut p)) = (self.buffer.take(), self.pool.lock()) {
            p.free_bytes += self.key.0;
            p.free.entry(self.key).or_default().push(b);
        }
    }
}

/// Pool sizes: exact below 64 KiB (rounded to 256 B), else rounded up to a
/// multiple of 1/16 of the next power of two (at most 12.5 % waste), so that
/// chunk-sized buffers are reused across tensors of slightly different sizes.
pub fn pool_size_class(size: u64) -> u64 {
    let size = size.max(4);
    if size <= 64 << 10 {
        return size.div_ceil(256) * 256;
    }
    let p = size.next_power_of_two();
    let step = p / 16;
    size.div_ceil(step) * step
}

/// The context. Cheap to share by reference; the caches are behind mutexes.
pub struct GpuContext {
    /// Present when the context created the device itself.
    pub instance: Option<wgpu::Instance>,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    /// The adapter's cooperative-matrix configurations when the device was
    /// created with EXPERIMENTAL_COOPERATIVE_MATRIX (else empty; also empty
    /// for [`GpuContext::from_device`], which cannot see the adapter).
    pub coop: Vec<wgpu::CooperativeMatrixProperties>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
    pool: Arc<Mutex<PoolInner>>,
    stats: Arc<PoolStats>,
    /// Set by the device-lost callback.
    lost: Arc<Mutex<Option<String>>>,
    /// Errors no error scope caught (validation errors in other threads, etc.).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// wgpu's shader runtime checks (bounds, loop bounding): `None` (the
    /// default) keeps them for untrusted kernels only; `Some(b)` forces them
    /// on or off for every kernel (`WCODEC_GPU_CHECKS=1` or `0`).
    pub checks: Option<bool>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuContext({} on {:?})",
            self.info.name, self.info.backend
        )
    }
}

impl GpuContext {
    /// Open an adapter and create a device with every feature of
    /// [`wanted_features`] it has, and the adapter's own limits.
    pub fn new(opts: &ContextOptions) -> Result<GpuContext> {
        let (instance, adapters) = enumerate();
        if adapters.is_empty() {
            return Err(Error::Gpu(format!(
                "no GPU adapter found (backends {:?}; set WGPU_BACKEND to choose others)",
                backends()
            )));
        }
        let adapter = match opts.adapter {
            AdapterChoice::Index(i) => adapters.get(i).ok_or_else(|| {
                Error::Gpu(format!(
                    "adapter {i} does not exist; `wcodec devices` lists {} adapters",
                    adapters.len()
                ))
            })?,
            AdapterChoice::Best => adapters
                .iter()
                .filter(|a| unusable_reason(&a.get_info(), &a.limits()).is_none())
                .max_by_key(|a| score(a))
                .ok_or_else(|| Error::Gpu("no usable GPU adapter (see `wcodec devices`)".into()))?,
        };
        let info = adapter.get_info();
        if let Some(why) = unusable_reason(&info, &adapter.limits()) {
            return Err(Error::Gpu(format!(
                "adapter {} cannot run the decoder: {why}",
                info.name
            )));
        }
        let mut features = adapter.features() & wanted_features();
        if opts.no_subgroups {
            features.remove(wgpu::Features::SUBGROUP | wgpu::Features::SUBGROUP_BARRIER);
        }
        // Cooperative matrices (tensor cores) only where the adapter offers
        // the tiles the GEMV uses, with f16 shaders and subgroups.
        let coop_props = adapter.cooperative_matrix_properties();
        let coop = !opts.no_coop
            && adapter
                .features()
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && features.contains(wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP)
            && coop_f16_f32_16(&coop_props);
        let experimental = if coop {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
            // SAFETY: the experimental feature requested is cooperative
            // matrices, used only by the GEMV kernel of `gemv_gen.rs` whose
            // loads stay inside their bindings (see its header).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wcodec"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: experimental,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Gpu(format!("creating a device on {}: {e}", info.name)))?;
        let mut ctx = GpuContext::from_device(device, queue);
        if coop {
            ctx.coop = coop_props;
        }
        ctx.instance = Some(instance);
        ctx.install_handlers();
        Ok(ctx)
    }

    /// Wrap a device the caller created. Its features and limits are read
    /// from the device. The caller's error handlers are left alone; this
    /// context catches its own errors with error scopes.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> GpuContext {
        let info = device.adapter_info();
        let features = device.features();
        let limits = device.limits();
        let checks = std::env::var("WCODEC_GPU_CHECKS").ok().map(|v| v != "0");
        GpuContext {
            instance: None,
            device,
            queue,
            info,
            features,
            limits,
            coop: Vec::new(),
            pipelines: Mutex::new(HashMap::new()),
            pool: Arc::new(Mutex::new(PoolInner::default())),
            stats: Arc::new(PoolStats::default()),
            lost: Arc::new(Mutex::new(None)),
            uncaptured: Arc::new(Mutex::new(Vec::new())),
            checks,
        }
    }

    /// Record device loss and uncaptured errors instead of panicking (wgpu's
    /// default handler panics). Only for devices this context created.
    fn install_handlers(&self) {
        let lost = self.lost.clone();
        self.device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = lost.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        let unc = self.uncaptured.clone();
        self.device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut u) = unc.lock() {
                    u.push(e.to_string());
                }
            }));
    }

    /// A one-line description: name, backend, subgroup sizes.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, subgroups {}..{}{}{})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.subgroup_min_size,
            self.info.subgroup_max_size,
            if self.has(wgpu::Features::SUBGROUP) {
                ""
            } else {
                ", SUBGROUP off"
            },
            if self.has_coop_f16() {
                ", cooperative matrices"
            } else {
                ""
            }
        )
    }

    /// The cooperative-matrix configurations the device was created with, as
    /// text (`none` without EXPERIMENTAL_COOPERATIVE_MATRIX).
    pub fn coop_summary(&self) -> String {
        if self.coop.is_empty() {
            "none".into()
        } else {
            self.coop
                .iter()
                .map(coop_name)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    pub fn has(&self, f: wgpu::Features) -> bool {
        self.features.contains(f)
    }

    /// Whether the tensor-core GEMV can run here: cooperative matrices of
    /// 16×16×16 f16 → f32, f16 shaders and subgroups.
    pub fn has_coop_f16(&self) -> bool {
        self.has(
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
                | wgpu::Features::SHADER_F16
                | wgpu::Features::SUBGROUP,
        ) && coop_f16_f32_16(&self.coop)
    }

    /// An error if the device was lost or an uncaptured error was recorded.
    pub fn check_health(&self) -> Result<()> {
        if let Some(why) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::Gpu(format!("the device was lost ({why})")));
        }
        if let Ok(mut u) = self.uncaptured.lock() {
            if !u.is_empty() {
                let msg = u.join("; ");
                u.clear();
                return Err(Error::Gpu(msg));
            }
        }
        Ok(())
    }

    /// Run `f` inside out-of-memory and validation error scopes; an error
    /// either scope catches becomes [`Error::Gpu`] naming `what`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(Error::Gpu(format!("{what}: out of device memory ({e})")));
        }
        if let Some(e) = v {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        self.check_health()?;
        Ok(out)
    }

    /// The compiled kernel for `src` with `constants`, from the cache or built now.
    pub fn kernel(&self, src: &KernelSource, constants: &[(&str, f64)]) -> Result<Arc<Kernel>> {
        if !self.features.contains(src.features) {
            return Err(Error::Gpu(format!(
                "kernel {} needs features {:?} the device lacks",
                src.name,
                src.features.difference(self.features)
            )));
        }
        let checked = self.checks.unwrap_or(!src.trusted);
        let key = PipelineKey {
            name: src.name,
            entry: src.entry,
            constants: constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
            checked,
        };
        if let Some(k) = self.pipelines.lock().map_err(|_| poisoned())?.get(&key) {
            return Ok(k.clone());
        }
        let label = format!("{}{:?}", src.name, constants);
        let kernel = self.scoped(&format!("building kernel {label}"), || {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(src.name),
                source: wgpu::ShaderSource::Wgsl(src.source.clone()),
            };
            let module = if checked {
                self.device.create_shader_module(desc)
            } else {
                // SAFETY: every kernel of this crate clamps its own reads and
                // writes to the bound ranges and bounds every loop (see the
                // shaders' headers); tests run them on corrupt input.
                unsafe {
                    self.device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            };
            let entries: Vec<wgpu::BindGroupLayoutEntry> = src
                .bindings
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match b {
                            Binding::ReadOnly => {
                                wgpu::BufferBindingType::Storage { read_only: true }
                            }
                            Binding::ReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                            Binding::Uniform => wgpu::BufferBindingType::Uniform,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(src.name),
                    entries: &entries,
                });
            let pl = self
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(src.name),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(src.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            Kernel {
                name: label.clone(),
                pipeline,
                layout,
            }
        })?;
        let kernel = Arc::new(kernel);
        self.pipelines
            .lock()
            .map_err(|_| poisoned())?
            .insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Number of cached pipelines.
    pub fn cached_kernels(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// A buffer of at least `size` bytes from the pool (size rounded by
    /// [`pool_size_class`]), created if none is free. `usage` must match exactly.
    pub fn buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<PooledBuffer> {
        let class = pool_size_class(size);
        if class > self.limits.max_buffer_size {
            return Err(Error::Gpu(format!(
                "{label}: a buffer of {class} bytes exceeds the device's max_buffer_size {}",
                self.limits.max_buffer_size
            )));
        }
        let key = (class, usage.bits());
        {
            let mut p = self.pool.lock().map_err(|_| poisoned())?;
            if let Some(b) = p.free.get_mut(&key).and_then(|v| v.pop()) {
                p.free_bytes -= class;
                return Ok(PooledBuffer {
                    buffer: Some(b),
                    key,
                    pool: self.pool.clone(),
                });
            }
        }
        let buf = self.scoped(&format!("allocating {label} ({class} bytes)"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: class,
                usage,
                mapped_at_creation: false,
            })
        })?;
        self.stats.add(class);
        Ok(PooledBuffer {
            buffer: Some(buf),
            key,
            pool: self.pool.clone(),
        })
    }

    /// Allocate a buffer outside the pool (e.g. a tensor handed to the caller).
    pub fn create_buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        if size > self.limits.max_buffer_size {
            return Err(Error::Gpu(format!(
                "{label}: {size} bytes exceed the device's max_buffer_size {}",
                self.limits.max_buffer_size
            )));
        }
        self.scoped(&format!("allocating {label} ({size} bytes)"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        })
    }

    /// Bytes the pool holds (on loan or free) and their high-water mark.
    pub fn pool_bytes(&self) -> (u64, u64) {
        (
            self.stats.live.load(Ordering::Relaxed),
            self.stats.peak.load(Ordering::Relaxed),
        )
    }

    /// Drop every free pooled buffer (their memory returns to the device).
    pub fn trim_pool(&self) {
        if let Ok(mut p) = self.pool.lock() {
            let freed = p.free_bytes;
            p.free.clear();
            p.free_bytes = 0;
            self.stats.sub(freed);
        }
    }

    /// Block until all submitted work is done; a device error becomes an error.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.check_health()
    }

    /// Read back `size` bytes of `src` from `offset` (a blocking helper for
    /// tests and small reads; bulk readback goes through a staging ring).
    pub fn read_buffer(&self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let padded = size.div_ceil(4) * 4;
        if padded == 0 {
            return Ok(Vec::new());
        }
        let mut staging = self.buffer(
            "readback",
            padded,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        match map_read(self, &staging, padded) {
            Ok(mut out) => {
                out.truncate(size as usize);
                Ok(out)
            }
            Err(e) => {
                // its mapping may still resolve: never hand it out again
                staging.discard();
                Err(e)
            }
        }
    }
}

fn poisoned() -> Error {
    Error::Gpu("a GPU context lock was poisoned by an earlier panic".into())
}

/// Map `buf[..size]` for reading, wait, and copy it out.
pub fn map_read(ctx: &GpuContext, buf: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
    let slot = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    buf.map_async(wgpu::MapMode::Read, 0..size, move |r| {
        if let Ok(mut s) = s2.lock() {
            *s = Some(r);
        }
    });
    ctx.wait()?;
    let r = slot.lock().map_err(|_| poisoned())?.take();
    match r {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(Error::Gpu(format!("mapping a readback buffer: {e}"))),
        None => return Err(Error::Gpu("a readback mapping never completed".into())),
    }
    let out = {
        let view = buf
            .get_mapped_range(0..size)
            .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?;
        let mut out = vec![0u8; view.len()];
        copy_out(&view, &mut out);
        out
    };
    buf.unmap();
    Ok(out)
}

/// Copy `src` (e.g. a mapped range) into `dst` of the same length through
/// [`parallel_copy`]: on the H100's host one thread reads mapped memory at
/// 11-13 GB/s into touched memory but writes fresh pages at only 1.1-1.7
/// GB/s (a page fault each; `examples/readback_probe`); 16 threads read at
/// 50-57 GB/s and take their faults in parallel.
pub fn copy_out(src: &[u8], dst: &mut [u8]) {
    assert_eq!(src.len(), dst.len(), "copy_out: lengths differ");
    let len = dst.len();
    parallel_copy(std::ptr::NonNull::from(dst), len, &[(0, src)]);
}

/// A raw destination shared by the threads of [`parallel_copy`]; each writes
/// a disjoint range.
#[derive(Clone, Copy)]
struct Dest(std::ptr::NonNull<[u8]>);
// SAFETY: the pointer is only written through at disjoint ranges, while the
// caller holds what owns it (a mapping, or a borrowed slice).
unsafe impl Send for Dest {}
unsafe impl Sync for Dest {}

impl Dest {
    fn ptr(self) -> *mut u8 {
        self.0.as_ptr() as *mut u8
    }
}

/// Copy `jobs` (destination offset, bytes) into the mapped range at `dst`
/// (`len` bytes), splitting large pieces so that several threads write at
/// once: one thread copies into write-combined staging memory at about
/// 7 GB/s on the H100's host, far below what the bus takes.
/// The destination ranges must be disjoint and inside `len` (checked by the caller).
pub(crate) fn parallel_copy(dst: std::ptr::NonNull<[u8]>, len: usize, jobs: &[(usize, &[u8])]) {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 20;
    let d = Dest(dst);
    let mut work: Vec<(usize, &[u8])> = Vec::with_capacity(jobs.len());
    for &(at, src) in jobs {
        debug_assert!(at + src.len() <= len);
        for (i, part) in src.chunks(PIECE).enumerate() {
            work.push((at + i * PIECE, part));
        }
    }
    let copy = |&(at, src): &(usize, &[u8])| {
        // SAFETY: `at + src.len() <= len` (checked by the caller); the ranges
        // of `work` are disjoint, and `dst` stays valid for this call.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), d.ptr().add(at), src.len());
        }
    };
    if len < 4 * PIECE {
        work.iter().for_each(copy);
    } else {
        work.par_iter().for_each(copy);
    }
}

/// Timestamp queries around compute passes: `count` (begin, end) pairs.
pub struct GpuTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    pairs: u32,
    used: u32,
    period_ns: f64,
}

impl GpuTimer {
    /// `None` if the device has no TIMESTAMP_QUERY.
    pub fn new(ctx: &GpuContext, pairs: u32) -> Option<GpuTimer> {
        if !ctx.has(wgpu::Features::TIMESTAMP_QUERY) || pairs == 0 {
            return None;
        }
        let n = 2 * pairs;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: n,
        });
        let bytes = 8 * n as u64;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps.resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps.read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Some(GpuTimer {
            set,
            resolve,
            read,
            pairs,
            used: 0,
            period_ns: ctx.queue.get_timestamp_period() as f64,
        })
    }

    /// Timestamp writes for the next pass, or `None` when every pair is used.
    pub fn next_pass(&mut self) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        if self.used >= self.pairs {
            return None;
        }
        let i = self.used;
        self.used += 1;
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    /// Resolve the used queries into the readback buffer (encode before submit).
    pub fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        if self.used == 0 {
            return;
        }
        enc.resolve_query_set(&self.set, 0..2 * self.used, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, 16 * self.used as u64);
    }

    /// Seconds per used pair (call after the submission that resolved them has
    /// completed), and reset for reuse.
    pub fn read(&mut self, ctx: &GpuContext) -> Result<Vec<f64>> {
        if self.used == 0 {
            return Ok(Vec::new());
        }
        let raw = map_read(ctx, &self.read, 16 * self.used as u64)?;
        let ts: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        self.used = 0;
        Ok(ts
            .chunks_exact(2)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * self.period_ns * 1e-9)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_little_and_grow() {
        let mut prev = 0;
        for s in [
            1u64,
            255,
            256,
            257,
            65536,
            65537,
            1 << 20,
            (1 << 20) + 1,
            3 << 27,
            (1 << 30) - 1,
        ] {
            let c = pool_size_class(s);
            assert!(c >= s && c >= prev, "{s} -> {c}");
            assert!(c as f64 <= s.max(256) as f64 * 1.125 + 256.0, "{s} -> {c}");
            assert_eq!(c % 4, 0);
            prev = c;
        }
    }
}

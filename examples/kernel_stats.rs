//! The Vulkan driver's own statistics for the inference kernels
//! (VK_KHR_pipeline_executable_properties): registers, local memory
//! (spills), shared memory, instruction counts — whatever the driver
//! reports. Each kernel is turned into SPIR-V by naga exactly as wgpu does
//! with runtime checks off (`WCODEC_GPU_CHECKS=0`, the benchmark setting),
//! then built on a raw Vulkan device with statistics capture.
//!
//!   cargo run --release --example kernel_stats [-- FILTER] [--ir DIR]
//!
//! FILTER keeps kernels whose name contains it. `--ir DIR` also writes the
//! driver's internal representations (if it offers any) to DIR. It compiles
//! the first GEMV (`shaders/legacy/`) next to the generated one, so the
//! statistics show what changed.

use std::ffi::CStr;

use ash::vk;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use wcodec::wgpu::context::{Binding, KernelSource};
use wcodec::wgpu::gemv::{GemvTuning, ReducePath, WeightDtype};
use wcodec::wgpu::kernels;

type Consts = Vec<(&'static str, f64)>;

/// The first GEMV, assembled as it was.
fn legacy_gemv(dtype: WeightDtype, path: ReducePath) -> KernelSource {
    let part = match dtype {
        WeightDtype::F32 => include_str!("../shaders/legacy/gemv_f32.wgsl"),
        WeightDtype::F16 => include_str!("../shaders/legacy/gemv_f16.wgsl"),
        WeightDtype::I8 => include_str!("../shaders/legacy/gemv_i8.wgsl"),
    };
    let group = if path == ReducePath::Workgroup {
        include_str!("../shaders/legacy/group_wg.wgsl")
    } else {
        include_str!("../shaders/legacy/group_sg.wgsl")
    };
    KernelSource {
        name: kernels::intern(format!(
            "legacy_gemv_{}_{}",
            dtype.name(),
            if path == ReducePath::Workgroup {
                "wg"
            } else {
                "sg"
            }
        )),
        source: format!(
            "{part}\n{}\n{group}",
            include_str!("../shaders/legacy/gemv.wgsl")
        )
        .into(),
        entry: "main",
        bindings: kernels::GEMV_BINDINGS,
        features: if path == ReducePath::Workgroup {
            wgpu::Features::empty()
        } else {
            wgpu::Features::SUBGROUP
        },
        trusted: false,
    }
}

fn legacy_consts(
    dtype: WeightDtype,
    path: ReducePath,
    b: u32,
    nr: u32,
    u: u32,
    magic: bool,
) -> Consts {
    let wg = 256u32;
    let group = 32;
    let mut c = vec![
        ("WG", wg as f64),
        ("NR", nr as f64),
        ("B", b as f64),
        ("RW", (nr * wg / group) as f64),
        ("UNROLL", u as f64),
        ("X_HALF", (dtype != WeightDtype::F32) as u32 as f64),
        ("HAS_BIAS", 0.0),
    ];
    if path == ReducePath::Workgroup {
        c.push(("TPR", 32.0));
    }
    if dtype == WeightDtype::I8 {
        c.push(("I8_MAGIC", magic as u32 as f64));
    }
    c
}

/// Every kernel worth looking at: (source, constants, label).
fn kernel_list() -> Vec<(KernelSource, Consts, String)> {
    let mut out = Vec::new();
    let sg = ReducePath::Subgroup;
    let wgp = ReducePath::Workgroup;
    for (dtype, b, nr, u, magic, path) in [
        (WeightDtype::F16, 1, 2, 2, true, sg),
        (WeightDtype::F16, 1, 4, 1, true, sg),
        (WeightDtype::F32, 1, 2, 2, true, sg),
        (WeightDtype::I8, 1, 4, 1, true, sg),
        (WeightDtype::I8, 1, 4, 1, false, sg),
        (WeightDtype::I8, 1, 4, 1, true, wgp),
        (WeightDtype::F16, 8, 1, 2, true, sg),
        (WeightDtype::F16, 8, 1, 2, true, wgp),
    ] {
        let c = legacy_consts(dtype, path, b, nr, u, magic);
        let label = format!("b{b} nr{nr} u{u}{}", if magic { "" } else { " cvt" });
        out.push((legacy_gemv(dtype, path), c, label));
    }
    for (dtype, batch) in [
        (WeightDtype::F16, 1),
        (WeightDtype::F32, 1),
        (WeightDtype::I8, 1),
        (WeightDtype::F16, 8),
    ] {
        for path in [sg, wgp] {
            for t in GemvTuning::candidates(dtype, batch, path) {
                let spec = t.spec(dtype, path, batch, dtype != WeightDtype::F32, false, 32);
                out.push((kernels::gemv(&spec), Vec::new(), String::new()));
            }
        }
    }
    for (src, combos) in kernels::all_variants() {
        if src.name.starts_with("gemv_") && !src.name.starts_with("gemv_rans") {
            continue;
        }
        for c in combos {
            let label = c
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            out.push((src.clone(), c, label));
        }
    }
    out
}

/// SPIR-V as wgpu-hal writes it for a Vulkan 1.3 device with runtime checks off.
fn spirv(src: &KernelSource, consts: &Consts) -> Result<Vec<u32>, String> {
    let module =
        naga::front::wgsl::parse_str(&src.source).map_err(|e| e.emit_to_string(&src.source))?;
    let mut caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if src.features.contains(wgpu::Features::SUBGROUP) {
        caps |= Capabilities::SUBGROUP;
    }
    let mut val = Validator::new(ValidationFlags::all(), caps);
    val.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    let info = val
        .validate(&module)
        .map_err(|e| e.emit_to_string(&src.source))?;
    let pc: naga::back::PipelineConstants =
        consts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let (m2, i2) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, src.entry)),
        &pc,
    )
    .map_err(|e| e.to_string())?;
    let unchecked = naga::proc::BoundsCheckPolicy::Unchecked;
    let opts = naga::back::spv::Options {
        lang_version: (1, 6),
        flags: naga::back::spv::WriterFlags::empty(),
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: unchecked,
            buffer: unchecked,
            image_load: unchecked,
            binding_array: unchecked,
        },
        zero_initialize_workgroup_memory: naga::back::spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        emit_int_div_checks: false,
        fake_missing_bindings: true,
        ..Default::default()
    };
    let pipe = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: src.entry.to_string(),
    };
    naga::back::spv::write_vec(&m2, &i2, &opts, Some(&pipe)).map_err(|e| e.to_string())
}

struct Vk {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    pep: ash::khr::pipeline_executable_properties::Device,
    name: String,
}

fn open_vulkan() -> Result<Vk, String> {
    unsafe {
        let entry = ash::Entry::load().map_err(|e| format!("loading Vulkan: {e}"))?;
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        let instance = entry
            .create_instance(
                &vk::InstanceCreateInfo::default().application_info(&app),
                None,
            )
            .map_err(|e| format!("vkCreateInstance: {e}"))?;
        let pds = instance
            .enumerate_physical_devices()
            .map_err(|e| e.to_string())?;
        let want = ash::khr::pipeline_executable_properties::NAME;
        let mut pick = None;
        for &pd in &pds {
            let props = instance.get_physical_device_properties(pd);
            let exts = instance
                .enumerate_device_extension_properties(pd)
                .unwrap_or_default();
            let has = exts
                .iter()
                .any(|e| e.extension_name_as_c_str().ok() == Some(want));
            let name = props
                .device_name_as_c_str()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            let discrete = props.device_type == vk::PhysicalDeviceType::DISCRETE_GPU;
            eprintln!(
                "adapter {name} ({:?}): pipeline executable properties {}",
                props.device_type,
                if has { "yes" } else { "no" }
            );
            if has && (pick.is_none() || discrete) {
                pick = Some((pd, name));
            }
        }
        let (pd, name) = pick.ok_or("no adapter offers VK_KHR_pipeline_executable_properties")?;
        let qf = instance
            .get_physical_device_queue_family_properties(pd)
            .iter()
            .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or("no compute queue")? as u32;
        let prio = [1.0f32];
        let qci = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(qf)
            .queue_priorities(&prio)];
        let exts = [want.as_ptr()];
        let mut pe = vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR::default()
            .pipeline_executable_info(true);
        let mut v13 = vk::PhysicalDeviceVulkan13Features::default();
        let mut v12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut f2 = vk::PhysicalDeviceFeatures2::default()
            .push_next(&mut v12)
            .push_next(&mut v13);
        instance.get_physical_device_features2(pd, &mut f2);
        let mut v12e = vk::PhysicalDeviceVulkan12Features::default()
            .vulkan_memory_model(v12.vulkan_memory_model != 0)
            .vulkan_memory_model_device_scope(v12.vulkan_memory_model_device_scope != 0)
            .shader_int8(v12.shader_int8 != 0)
            .shader_float16(v12.shader_float16 != 0);
        let mut v13e = vk::PhysicalDeviceVulkan13Features::default()
            .subgroup_size_control(v13.subgroup_size_control != 0)
            .compute_full_subgroups(v13.compute_full_subgroups != 0);
        let dci = vk::DeviceCreateInfo::default()
            .queue_create_infos(&qci)
            .enabled_extension_names(&exts)
            .push_next(&mut pe)
            .push_next(&mut v12e)
            .push_next(&mut v13e);
        let device = instance
            .create_device(pd, &dci, None)
            .map_err(|e| format!("vkCreateDevice: {e}"))?;
        let pep = ash::khr::pipeline_executable_properties::Device::new(&instance, &device);
        Ok(Vk {
            _entry: entry,
            instance,
            device,
            pep,
            name,
        })
    }
}

fn stat_value(s: &vk::PipelineExecutableStatisticKHR<'_>) -> String {
    unsafe {
        match s.format {
            vk::PipelineExecutableStatisticFormatKHR::BOOL32 => (s.value.b32 != 0).to_string(),
            vk::PipelineExecutableStatisticFormatKHR::INT64 => s.value.i64.to_string(),
            vk::PipelineExecutableStatisticFormatKHR::UINT64 => s.value.u64.to_string(),
            vk::PipelineExecutableStatisticFormatKHR::FLOAT64 => format!("{:.3}", s.value.f64),
            _ => "?".into(),
        }
    }
}

fn cstr(b: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = b
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Build one kernel and return its statistics as "name=value" pairs.
fn stats(
    v: &Vk,
    src: &KernelSource,
    words: &[u32],
    ir_dir: Option<&std::path::Path>,
    tag: &str,
) -> Result<Vec<(String, String)>, String> {
    unsafe {
        let d = &v.device;
        let module = d
            .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(words), None)
            .map_err(|e| format!("vkCreateShaderModule: {e}"))?;
        let binds: Vec<vk::DescriptorSetLayoutBinding<'_>> = src
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(i as u32)
                    .descriptor_type(match b {
                        Binding::Uniform => vk::DescriptorType::UNIFORM_BUFFER,
                        _ => vk::DescriptorType::STORAGE_BUFFER,
                    })
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let dsl = d
            .create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&binds),
                None,
            )
            .map_err(|e| e.to_string())?;
        let layouts = [dsl];
        let pl = d
            .create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default().set_layouts(&layouts),
                None,
            )
            .map_err(|e| e.to_string())?;
        let entry = std::ffi::CString::new(src.entry).unwrap();
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(&entry);
        let ci = [vk::ComputePipelineCreateInfo::default()
            .flags(
                vk::PipelineCreateFlags::CAPTURE_STATISTICS_KHR
                    | vk::PipelineCreateFlags::CAPTURE_INTERNAL_REPRESENTATIONS_KHR,
            )
            .stage(stage)
            .layout(pl)];
        let t0 = std::time::Instant::now();
        let pipes = d
            .create_compute_pipelines(vk::PipelineCache::null(), &ci, None)
            .map_err(|(_, e)| format!("vkCreateComputePipelines: {e}"))?;
        let build_ms = t0.elapsed().as_secs_f64() * 1e3;
        let p = pipes[0];
        let mut out = vec![("build_ms".to_string(), format!("{build_ms:.0}"))];
        let execs = v
            .pep
            .get_pipeline_executable_properties(&vk::PipelineInfoKHR::default().pipeline(p))
            .map_err(|e| e.to_string())?;
        for (i, e) in execs.iter().enumerate() {
            let ei = vk::PipelineExecutableInfoKHR::default()
                .pipeline(p)
                .executable_index(i as u32);
            if execs.len() > 1 {
                out.push((format!("exec{i}"), cstr(&e.name)));
            }
            out.push(("subgroup".into(), e.subgroup_size.to_string()));
            for s in v
                .pep
                .get_pipeline_executable_statistics(&ei)
                .map_err(|e| e.to_string())?
            {
                out.push((cstr(&s.name), stat_value(&s)));
            }
            if let Some(dir) = ir_dir {
                let mut irs = v
                    .pep
                    .get_pipeline_executable_internal_representations(&ei)
                    .unwrap_or_default();
                let mut bufs: Vec<Vec<u8>> = irs.iter().map(|r| vec![0u8; r.data_size]).collect();
                for (r, b) in irs.iter_mut().zip(bufs.iter_mut()) {
                    r.p_data = b.as_mut_ptr().cast();
                }
                let mut n = irs.len() as u32;
                if n > 0 {
                    let _ = (v
                        .pep
                        .fp()
                        .get_pipeline_executable_internal_representations_khr)(
                        v.pep.device(),
                        &ei,
                        &mut n,
                        irs.as_mut_ptr(),
                    );
                }
                for (k, (r, b)) in irs.iter().zip(&bufs).enumerate() {
                    let name = cstr(&r.name).replace(|c: char| !c.is_ascii_alphanumeric(), "_");
                    let f = dir.join(format!("{tag}.{i}.{k}.{name}.txt"));
                    let text = if r.is_text != 0 {
                        CStr::from_bytes_until_nul(b)
                            .map(|c| c.to_string_lossy().into_owned())
                            .unwrap_or_else(|_| String::from_utf8_lossy(b).into_owned())
                    } else {
                        format!("({} bytes of binary)", b.len())
                    };
                    let _ = std::fs::write(&f, text);
                    out.push((format!("ir{k}"), format!("{name} {}B", b.len())));
                }
            }
        }
        d.destroy_pipeline(p, None);
        d.destroy_pipeline_layout(pl, None);
        d.destroy_descriptor_set_layout(dsl, None);
        d.destroy_shader_module(module, None);
        Ok(out)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut ir_dir = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--ir" {
            ir_dir = args.get(i + 1).map(std::path::PathBuf::from);
            i += 2;
        } else {
            filter = Some(args[i].clone());
            i += 1;
        }
    }
    if let Some(d) = &ir_dir {
        let _ = std::fs::create_dir_all(d);
    }
    let v = match open_vulkan() {
        Ok(v) => v,
        Err(e) => {
            // Still check that every kernel turns into SPIR-V.
            let list = kernel_list();
            let bad: Vec<String> = list
                .iter()
                .filter_map(|(s, c, _)| spirv(s, c).err().map(|e| format!("{}: {e}", s.name)))
                .collect();
            eprintln!(
                "kernel_stats: {e}; SPIR-V of {} kernels written, {} failed {bad:?}",
                list.len(),
                bad.len()
            );
            std::process::exit(2);
        }
    };
    println!("device: {}", v.name);
    for (n, (src, consts, label)) in kernel_list().into_iter().enumerate() {
        if filter
            .as_ref()
            .is_some_and(|f| !src.name.contains(f.as_str()))
        {
            continue;
        }
        let words = match spirv(&src, &consts) {
            Ok(w) => w,
            Err(e) => {
                println!("{} {label}: naga: {e}", src.name);
                continue;
            }
        };
        let tag = format!("{n:03}_{}", src.name);
        match stats(&v, &src, &words, ir_dir.as_deref(), &tag) {
            Ok(s) => {
                let kv: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{} [{label}] {}", src.name, kv.join("; "));
            }
            Err(e) => println!("{} [{label}]: {e}", src.name),
        }
    }
    unsafe {
        v.device.destroy_device(None);
        v.instance.destroy_instance(None);
    }
}

//! Every inference kernel (`shaders/`), assembled as the crate assembles it,
//! parses and validates with naga, and so does every combination of override
//! constants the crate builds: each is specialised (`process_overrides`) and
//! written to SPIR-V, the form the Vulkan driver receives. No GPU needed.

use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Exactly what wgpu grants a device with the kernel's declared features:
/// `SHADER_FLOAT16_IN_FLOAT32` (`unpack2x16float`) is a downlevel flag every
/// Vulkan, Metal and DX12 device has; subgroups only where declared. So a
/// kernel that declares no features is shown to need none.
fn caps(features: wgpu::Features) -> Capabilities {
    let mut c = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if features.contains(wgpu::Features::SUBGROUP) {
        c |= Capabilities::SUBGROUP;
    }
    if features.contains(wgpu::Features::SUBGROUP_BARRIER) {
        c |= Capabilities::SUBGROUP_BARRIER;
    }
    if features.contains(wgpu::Features::SHADER_F16) {
        c |= Capabilities::SHADER_FLOAT16;
    }
    c
}

#[test]
fn every_inference_kernel_and_constant_combination_validates() {
    let mut checked = 0usize;
    for (src, combos) in wcodec::wgpu::kernels::all_variants() {
        let module = naga::front::wgsl::parse_str(&src.source)
            .unwrap_or_else(|e| panic!("{}: {}", src.name, e.emit_to_string(&src.source)));
        let c = caps(src.features);
        let mut val = Validator::new(ValidationFlags::all(), c);
        if c.contains(Capabilities::SUBGROUP) {
            // What wgpu enables on a device with SUBGROUP.
            val.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
                .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        }
        let info = val
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", src.name, e.emit_to_string(&src.source)));
        assert!(
            module.entry_points.iter().any(|e| e.name == src.entry),
            "{}: no entry point {}",
            src.name,
            src.entry
        );
        for consts in combos {
            let pc: naga::back::PipelineConstants =
                consts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let (m2, i2) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, src.entry)),
                &pc,
            )
            .unwrap_or_else(|e| panic!("{} {consts:?}: {e}", src.name));
            let opts = naga::back::spv::Options::default();
            let pipe = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: src.entry.to_string(),
            };
            naga::back::spv::write_vec(&m2, &i2, &opts, Some(&pipe))
                .unwrap_or_else(|e| panic!("{} {consts:?}: {e}", src.name));
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} combinations checked");
}

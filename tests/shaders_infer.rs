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
    if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        c |= Capabilities::COOPERATIVE_MATRIX;
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
            let words = naga::back::spv::write_vec(&m2, &i2, &opts, Some(&pipe))
                .unwrap_or_else(|e| panic!("{} {consts:?}: {e}", src.name));
            if let Ok(dir) = std::env::var("WCODEC_DUMP_SPV") {
                // For `spirv-val` / `spirv-dis` by hand (WCODEC_DUMP_SPV_VERSION=1.3
                // etc.; default 1.6, what wgpu gives a Vulkan 1.3 driver).
                let o16 = naga::back::spv::Options {
                    lang_version: std::env::var("WCODEC_DUMP_SPV_VERSION")
                        .ok()
                        .and_then(|v| {
                            let (a, b) = v.split_once('.')?;
                            Some((a.parse().ok()?, b.parse().ok()?))
                        })
                        .unwrap_or((1, 6)),
                    ..Default::default()
                };
                let w16 = naga::back::spv::write_vec(&m2, &i2, &o16, Some(&pipe)).unwrap();
                let bytes: Vec<u8> = w16.iter().flat_map(|w| w.to_le_bytes()).collect();
                std::fs::write(format!("{dir}/{}.spv", src.name), bytes).unwrap();
            }
            assert!(!words.is_empty());
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} combinations checked");
}

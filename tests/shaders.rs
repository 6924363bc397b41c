//! Every WGSL kernel under every combination of override constants the crate
//! uses: parsed, validated, specialised and translated to SPIR-V by naga.
//! Needs no GPU.

use wcodec::wgpu::shaders::{self, all_decode_variants, all_fast_variants, validate};

#[test]
fn decode_kernel_every_variant() {
    let vs = all_decode_variants();
    assert!(vs.len() > 100);
    let mut failures = Vec::new();
    for v in &vs {
        if let Err(e) = validate(&v.source(), &v.constants()) {
            failures.push(format!("{}: {e}", v.describe()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants fail:\n{}",
        failures.len(),
        vs.len(),
        failures[..failures.len().min(3)].join("\n")
    );
}

#[test]
fn fast_kernel_every_variant() {
    let vs = all_fast_variants();
    let mut failures = Vec::new();
    for v in &vs {
        if let Err(e) = validate(&v.source(), &v.constants()) {
            failures.push(format!("{}: {e}", v.describe()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants fail:\n{}",
        failures.len(),
        vs.len(),
        failures[..failures.len().min(3)].join("\n")
    );
    let wg = vs
        .iter()
        .find(|v| v.path == shaders::DecodePath::Workgroup)
        .unwrap();
    assert!(wg.source().features.is_empty());
    assert!(!wg.source().source.contains("subgroupBallot"));
}

#[test]
fn helper_kernels() {
    for wg in [64.0, 128.0, 256.0] {
        validate(&shaders::copy_u32(), &[("WG", wg)]).unwrap();
        validate(&shaders::render_unaligned(), &[("WG", wg)]).unwrap();
    }
}

#[test]
fn workgroup_path_needs_no_subgroup_feature() {
    let v = all_decode_variants()
        .into_iter()
        .find(|v| v.path == shaders::DecodePath::Workgroup)
        .unwrap();
    assert!(v.source().features.is_empty());
    assert!(!v.source().source.contains("subgroupBallot"));
}

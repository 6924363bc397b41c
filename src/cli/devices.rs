//! `wcodec devices`: the GPU adapters wgpu finds, with backend, features and limits.

use crate::wgpu::context::list_adapters;

#[derive(clap::Args, Debug)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &DevicesArgs) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!(
            "no GPU adapters found (backends {:?}; WGPU_BACKEND chooses others)",
            crate::wgpu::context::backends()
        );
        return Ok(());
    }
    for s in &adapters {
        println!(
            "[{}] {} ({}, {})",
            s.index, s.name, s.backend, s.device_type
        );
        println!("    driver: {} {}", s.driver, s.driver_info);
        println!(
            "    subgroup size: {}..{}",
            s.subgroup_min_size, s.subgroup_max_size
        );
        println!(
            "    features: {}",
            if s.features.is_empty() {
                "-".to_string()
            } else {
                s.features.join(" ")
            }
        );
        println!(
            "    limits: storage binding {} B, buffer {} B, workgroup memory {} B, {} invocations/workgroup, {} workgroups/dim, offset alignment {}",
            s.max_storage_buffer_binding_size,
            s.max_buffer_size,
            s.max_compute_workgroup_storage_size,
            s.max_compute_invocations_per_workgroup,
            s.max_compute_workgroups_per_dimension,
            s.min_storage_buffer_offset_alignment
        );
        println!(
            "    cooperative matrices: {}",
            if s.cooperative_matrix.is_empty() {
                "-".to_string()
            } else {
                s.cooperative_matrix.join(", ")
            }
        );
        if let Some(u) = &s.unusable {
            println!("    unusable for decoding: {u}");
        }
    }
    Ok(())
}

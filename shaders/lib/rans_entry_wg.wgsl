// Compressed-GEMV entry point, workgroup ballots: decoder = invocation / 32.

fn init_ballot(dec: u32, lane: u32) {
    if (lane < 3u) {
        atomicStore(&bal[dec * 3u + lane], 0u);
    }
}

@compute @workgroup_size(NW * 32u)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    gemv_band(wid.x + wid.y * p.groups_x, lid, lid / 32u, lid % 32u);
}

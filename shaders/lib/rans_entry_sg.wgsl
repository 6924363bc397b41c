// Compressed-GEMV entry point, subgroup ballots: the invocations are
// numbered by subgroup (subgroup · size + lane) and a decoder is 32
// consecutive ones, inside one subgroup (SG_WIDE) or spanning several.

fn init_ballot(dec: u32, lane: u32) {
    if (lane < 3u) {
        atomicStore(&bal[dec * 3u + lane], 0u);
    }
}

@compute @workgroup_size(NW * 32u)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
) {
    SG_LANE = sg_lane;
    SG_SIZE = sg_size;
    let flat = sg_id * sg_size + sg_lane;
    gemv_band(wid.x + wid.y * p.groups_x, lid, min(flat / 32u, NW - 1u), flat % 32u);
}

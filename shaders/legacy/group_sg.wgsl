// GEMV groups as subgroups: a group is one subgroup of any size (from the
// subgroup builtins, so no assumption about how invocations map to
// subgroups); its partial sums are reduced with subgroupAdd. Needs SUBGROUP.

fn block_iters() -> u32 {
    return (RW / NR + NGROUPS - 1u) / NGROUPS;
}

fn group_reduce(acc: ptr<function, array<f32, MAXACC>>) {
    for (var i = 0u; i < NR * B; i++) {
        (*acc)[i] = subgroupAdd((*acc)[i]);
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
) {
    GROUP = sg_id;
    NGROUPS = nsg;
    LANE = sg_lane;
    GSIZE = sg_size;
    gemv_rows(wid.x + wid.y * p.groups_x);
}

// GEMV groups without subgroups: a group is TPR consecutive invocations
// (TPR a power of two dividing WG); partial sums are reduced in workgroup
// memory by a tree, all NR·B sums at once.

override TPR: u32 = 32u;

var<workgroup> red: array<f32, WG * NR * B>;

fn block_iters() -> u32 {
    return (RW / NR + WG / TPR - 1u) / (WG / TPR);
}

fn group_reduce(acc: ptr<function, array<f32, MAXACC>>) {
    let me = GROUP * TPR + LANE;
    let n = NR * B;
    for (var i = 0u; i < n; i++) {
        red[i * WG + me] = (*acc)[i];
    }
    for (var s = TPR / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if (LANE < s) {
            for (var i = 0u; i < n; i++) {
                red[i * WG + me] += red[i * WG + me + s];
            }
        }
    }
    workgroupBarrier();
    for (var i = 0u; i < n; i++) {
        (*acc)[i] = red[i * WG + me];
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    GROUP = lid / TPR;
    NGROUPS = WG / TPR;
    LANE = lid % TPR;
    GSIZE = TPR;
    gemv_rows(wid.x + wid.y * p.groups_x);
}

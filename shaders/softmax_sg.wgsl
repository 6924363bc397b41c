// Softmax with subgroup reductions: the kernels of softmax_f32.wgsl (read its
// header: same bindings, parameters, partials and results), with every
// workgroup reduction done as one subgroup operation, one barrier and a
// serial pass over the per-subgroup values (the same order in every
// invocation and every block, so all blocks agree bit for bit) instead of a
// log2(WG)-level tree with a barrier and, for (max, sum) pairs, two exp2 per
// level. Needs the SUBGROUP feature.
//
//   stats:     block max (and its first index), then the block's sum of
//              exp2((x − m_b)·c) from the elements it holds (E per invocation,
//              reloaded: they are in L1);
//   normalize: the row's (M, S) from its NB partials, then the block's outputs;
//   fused:     the row's (M, S) from the whole row (online rescaling per
//              invocation), then the block's outputs.
//
// Bounds: all indices are clamped into their bindings.

// (lib/softmax_row.wgsl comes first: constants, parameters, bindings, load.)

const NONE: u32 = 0xffffffffu;

// One slot per subgroup (subgroups have at least one invocation).
var<workgroup> wm: array<f32, WG>;
var<workgroup> wi: array<u32, WG>;
var<workgroup> ws: array<f32, WG>;

struct Sg {
    id: u32,
    n: u32,
    lane: u32,
}

fn wg_max(v: f32, g: Sg) -> f32 {
    let s = subgroupMax(v);
    if (g.lane == 0u) {
        wm[min(g.id, WG - 1u)] = s;
    }
    workgroupBarrier();
    var m = wm[0];
    for (var i = 1u; i < min(g.n, WG); i++) {
        m = max(m, wm[i]);
    }
    return m;
}

fn wg_min_u(v: u32, g: Sg) -> u32 {
    let s = subgroupMin(v);
    if (g.lane == 0u) {
        wi[min(g.id, WG - 1u)] = s;
    }
    workgroupBarrier();
    var m = wi[0];
    for (var i = 1u; i < min(g.n, WG); i++) {
        m = min(m, wi[i]);
    }
    return m;
}

fn wg_sum(v: f32, g: Sg) -> f32 {
    let s = subgroupAdd(v);
    if (g.lane == 0u) {
        ws[min(g.id, WG - 1u)] = s;
    }
    workgroupBarrier();
    var t = ws[0];
    for (var i = 1u; i < min(g.n, WG); i++) {
        t += ws[i];
    }
    return t;
}

// Block `blk` of a row's outputs from the row's maximum and sum.
fn write_block(row: u32, blk: u32, lid: u32, m: f32, s: f32) {
    let ln_s = log2(s) * 0.693147180559945309;
    let inv_s = 1.0 / s;
    let no = arrayLength(&out);
    if (row < p.rows) {
        for (var k = 0u; k < E; k++) {
            let i = blk * WG * E + k * WG + lid;
            if (i < p.n) {
                let d = load(row, i) - m;
                var v: f32;
                if (LOG) {
                    v = d * p.inv_t - ln_s;
                } else {
                    v = exp2(d * p.c) * inv_s;
                }
                out[min(row * p.ld_out + i, no - 1u)] = v;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    let g = Sg(sg_id, max(nsg, 1u), sg_lane);
    let blk = wid.x;
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    let first = blk * WG * E;
    var m = NEG_MAX;
    var idx = NONE;
    for (var k = 0u; k < E; k++) {
        let i = first + k * WG + lid;
        if (i < p.n) {
            let v = load(row, i);
            if (idx == NONE || v > m) {
                m = v;
                idx = i;
            }
        }
    }
    let bm = wg_max(m, g);
    let bi = wg_min_u(select(NONE, idx, idx != NONE && m == bm), g);
    var s = 0.0;
    for (var k = 0u; k < E; k++) {
        let i = first + k * WG + lid;
        if (i < p.n) {
            s += exp2((load(row, i) - bm) * p.c);
        }
    }
    let bs = wg_sum(s, g);
    if (lid == 0u && wid.y < p.rows && blk < p.nb) {
        part[min(wid.y * p.nb + blk, arrayLength(&part) - 1u)] =
            vec4<u32>(bitcast<u32>(bm), bitcast<u32>(bs), bi, 0u);
    }
}

@compute @workgroup_size(WG)
fn normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    let g = Sg(sg_id, max(nsg, 1u), sg_lane);
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    // This invocation's partials (b = lid, lid + WG, ...), online-combined.
    var m = NEG_MAX;
    var s = 0.0;
    let np1 = arrayLength(&part) - 1u;
    for (var b = lid; b < p.nb; b += WG) {
        let v = part[min(row * p.nb + b, np1)];
        let bm = bitcast<f32>(v.x);
        let bs = bitcast<f32>(v.y);
        if (bs != 0.0) {
            if (s == 0.0) {
                m = bm;
                s = bs;
            } else {
                let mm = max(m, bm);
                s = s * exp2((m - mm) * p.c) + bs * exp2((bm - mm) * p.c);
                m = mm;
            }
        }
    }
    let tm = wg_max(select(NEG_MAX, m, s != 0.0), g);
    var mine = 0.0;
    if (s != 0.0) {
        mine = s * exp2((m - tm) * p.c);
    }
    let ts = wg_sum(mine, g);
    write_block(wid.y, wid.x, lid, tm, ts);
}

@compute @workgroup_size(WG)
fn fused(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) nsg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
) {
    let g = Sg(sg_id, max(nsg, 1u), sg_lane);
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    // The whole row in this invocation's share (lib/softmax_row.wgsl).
    let q = row_scan(row, lid);
    let m = q.x;
    let s = q.y;
    let tm = wg_max(select(NEG_MAX, m, s != 0.0), g);
    var mine = 0.0;
    if (s != 0.0) {
        mine = s * exp2((m - tm) * p.c);
    }
    let ts = wg_sum(mine, g);
    write_block(wid.y, wid.x, lid, tm, ts);
}

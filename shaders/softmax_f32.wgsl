// Softmax over rows of f32 logits, numerically stable and any row length:
//   p = exp((x − M) / T) / S,  S = Σ exp((x − M) / T),  M = max x
// (or log-softmax (x − M) / T − ln S), in two dispatches:
//
//   stats:     grid (NB, rows). Block b of a row (BLOCK = WG · E elements)
//              writes its partial (m_b = block max, s_b = Σ exp2((x − m_b)·c),
//              the lowest index of the block max): part[row · NB + b].
//   normalize: grid (NB, rows). Every block combines its row's NB partials
//              (online-softmax rescaling: S = Σ s_b · exp2((m_b − M)·c)) and
//              writes its outputs.
//
// or in one dispatch (`fused`, for rows of up to ~64 K elements): grid
// (NB, rows); every block computes the row's (M, S) itself from the whole
// row (it is in L2; reading it NB times costs less than a second dispatch),
// then writes its own block's outputs. Every block computes the same totals
// in the same order, so all agree bit for bit.
//
// c = log2(e) / T comes from the host; exp2 replaces exp. Logits are
// sanitised on their bits: NaN → −f32::MAX, ±∞ → ±f32::MAX (as the CPU
// reference does), so no row gives NaN.
//
// Bindings: 0 logits (read), 1 partials (read_write, 4 words per block),
// 2 out (read_write), 3 params (uniform).
//
// Bounds: all indices are clamped into their bindings.

// (lib/softmax_row.wgsl comes first: constants, parameters, bindings, load.)

// A partial: max, sum of exp2((x − max)·c), index of the first max. s = 0: empty.
struct Part {
    m: f32,
    s: f32,
    idx: u32,
}

fn combine(a: Part, b: Part) -> Part {
    if (a.s == 0.0) {
        return b;
    }
    if (b.s == 0.0) {
        return a;
    }
    let m = max(a.m, b.m);
    var idx = min(a.idx, b.idx);
    if (a.m > b.m) {
        idx = a.idx;
    } else if (b.m > a.m) {
        idx = b.idx;
    }
    return Part(m, a.s * exp2((a.m - m) * p.c) + b.s * exp2((b.m - m) * p.c), idx);
}

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

// Combine every invocation's partial; the result is returned to all.
fn wg_combine(lid: u32, mine: Part) -> Part {
    red_m[lid] = mine.m;
    red_s[lid] = mine.s;
    red_i[lid] = mine.idx;
    for (var off = WG / 2u; off > 0u; off = off / 2u) {
        workgroupBarrier();
        if (lid < off) {
            let r = combine(Part(red_m[lid], red_s[lid], red_i[lid]), Part(red_m[lid + off], red_s[lid + off], red_i[lid + off]));
            red_m[lid] = r.m;
            red_s[lid] = r.s;
            red_i[lid] = r.idx;
        }
    }
    workgroupBarrier();
    let r = Part(red_m[0], red_s[0], red_i[0]);
    workgroupBarrier();
    return r;
}

// This invocation's partial over its E elements of block `blk`
// (element k·WG + lid of the block, so each load is coalesced).
fn thread_part(row: u32, blk: u32, lid: u32) -> Part {
    let first = blk * WG * E;
    var m = NEG_MAX;
    var idx = 0xffffffffu;
    var any = false;
    for (var k = 0u; k < E; k++) {
        let i = first + k * WG + lid;
        if (i < p.n) {
            let v = load(row, i);
            if (!any || v > m) {
                m = v;
                idx = i;
            }
            any = true;
        }
    }
    var s = 0.0;
    if (any) {
        for (var k = 0u; k < E; k++) {
            let i = first + k * WG + lid;
            if (i < p.n) {
                s += exp2((load(row, i) - m) * p.c);
            }
        }
    }
    return Part(m, s, idx);
}

fn store_part(row: u32, blk: u32, q: Part) {
    part[min(row * p.nb + blk, arrayLength(&part) - 1u)] = vec4<u32>(bitcast<u32>(q.m), bitcast<u32>(q.s), q.idx, 0u);
}

fn load_part(row: u32, blk: u32) -> Part {
    let v = part[min(row * p.nb + blk, arrayLength(&part) - 1u)];
    return Part(bitcast<f32>(v.x), bitcast<f32>(v.y), v.z);
}

// The row's total from its NB partials (every invocation gets it).
fn row_total(row: u32, lid: u32) -> Part {
    var acc = Part(NEG_MAX, 0.0, 0xffffffffu);
    for (var b = lid; b < p.nb; b += WG) {
        acc = combine(acc, load_part(row, b));
    }
    return wg_combine(lid, acc);
}

@compute @workgroup_size(WG)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let blk = wid.x;
    let row = wid.y;
    let q = wg_combine(lid, thread_part(row, blk, lid));
    if (lid == 0u && row < p.rows && blk < p.nb) {
        store_part(row, blk, q);
    }
}

// (M, S) of the whole row in this invocation's share (lib/softmax_row.wgsl).
fn row_part(row: u32, lid: u32) -> Part {
    let q = row_scan(row, lid);
    return Part(q.x, q.y, 0u);
}

@compute @workgroup_size(WG)
fn fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    let t = wg_combine(lid, row_part(row, lid));
    write_block(wid.y, wid.x, lid, t);
}

@compute @workgroup_size(WG)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let blk = wid.x;
    let row = wid.y;
    let t = row_total(row, lid);
    write_block(row, blk, lid, t);
}

// Block `blk` of a row's outputs from the row's totals.
fn write_block(row: u32, blk: u32, lid: u32, t: Part) {
    let ln_s = log2(t.s) * 0.693147180559945309;
    let inv_s = 1.0 / t.s;
    let no = arrayLength(&out);
    if (row < p.rows) {
        for (var k = 0u; k < E; k++) {
            let i = blk * WG * E + k * WG + lid;
            if (i < p.n) {
                let d = load(row, i) - t.m;
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

// Token sampling: greedy, temperature, top-k, top-p and their combinations,
// exactly the algorithm of src/cpu/sample.rs (read its header first). The
// file follows lib/u64.wgsl (u64 helpers, Philox).
//
// Dispatches, after softmax_f32.wgsl's `stats` (per block: max, sum, first
// index of the max) has run on the same logits:
//
//   prepare: grid (NBS, rows), PWG invocations. Each block of PWG · PW vec4
//            words (8 tokens a word) computes the row maximum M from the
//            softmax partials, each token's distance d (two f32 operations,
//            then integers), stores d as u16 pairs, and writes its coarse
//            histogram over bins d >> 8: (count, weight as u64) per bin.
//   select:  grid (rows), one workgroup of SWG (≥ 256) per row. Sums the
//            coarse histograms, finds the top-k boundary, the top-p boundary
//            and the drawn token with fine histograms of single coarse bins
//            (one pass each over the row's distances) and integer scans, then
//            finds the token's index with one more pass. Increments the row's
//            step counter when AUTO_STEP.
//
// Bindings: 0 logits, 1 softmax partials, 2 EXP2 table (2048 u32),
// 3 distances (vec4<u32> = 8 u16), 4 coarse histograms (vec4<u32> per bin:
// count, weight low, weight high, 0), 5 step counters (u64 per row),
// 6 tokens (u32 per row), 7 params.
//
// Bounds: all indices are clamped into their bindings; loops are bounded by
// the uniform's sizes.

override PWG: u32 = 256u;
override PW: u32 = 4u;
override SWG: u32 = 1024u;
override AUTO_STEP: bool = true;

struct Params {
    n: u32,          // row length
    rows: u32,
    ld_in: u32,      // logits row stride (elements)
    nb_soft: u32,    // softmax blocks per row
    nbs: u32,        // prepare blocks per row
    ld_d: u32,       // distance words (vec4) per row
    scale: f32,      // S = 2954.6394 / T
    top_k: u32,      // 0: all
    p_fixed: u32,    // floor(top_p · 2^24), 2^24 for 1
    seed_lo: u32,
    seed_hi: u32,
    greedy: u32,     // 1: argmax (T = 0 or k = 1)
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> soft: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> exp2tab: array<u32>;
@group(0) @binding(3) var<storage, read_write> dist: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> hist: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> steps: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(7) var<uniform> p: Params;

const NEG_MAX: f32 = -3.40282347e+38;
const D_MAX: u32 = 65535u;

fn sanitize(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return NEG_MAX;
    }
    return clamp(x, NEG_MAX, -NEG_MAX);
}

fn weight(d: u32) -> u32 {
    let dd = min(d, D_MAX);
    return exp2tab[min(dd & 2047u, arrayLength(&exp2tab) - 1u)] >> (dd >> 11u);
}

fn distance(m: f32, s: f32) -> u32 {
    let z = (m - s) * p.scale;
    if (z >= 65535.0) {
        return D_MAX;
    }
    return u32(z);
}

fn soft_part(row: u32, b: u32) -> vec4<u32> {
    return soft[min(row * p.nb_soft + b, arrayLength(&soft) - 1u)];
}

// ---------------------------------------------------------------- prepare

var<workgroup> pm: array<f32, PWG>;
var<workgroup> pc: array<atomic<u32>, 256>;
var<workgroup> pwl: array<atomic<u32>, 256>;
var<workgroup> pwh: array<atomic<u32>, 256>;

fn hist_add(bin: u32, cnt: u32, w: vec2<u32>) {
    if (cnt == 0u) {
        return;
    }
    atomicAdd(&pc[bin], cnt);
    let old = atomicAdd(&pwl[bin], w.x);
    let carry = select(0u, 1u, old + w.x < old);
    if (w.y + carry != 0u) {
        atomicAdd(&pwh[bin], w.y + carry);
    }
}

@compute @workgroup_size(PWG)
fn prepare(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let blk = wid.x;
    let row = min(wid.y, max(p.rows, 1u) - 1u);
    // The row maximum from the softmax partials (exact: a max of maxima).
    var m = NEG_MAX;
    for (var b = lid; b < p.nb_soft; b += PWG) {
        let s = soft_part(row, b);
        if (bitcast<f32>(s.y) != 0.0) {
            m = max(m, bitcast<f32>(s.x));
        }
    }
    pm[lid] = m;
    for (var b = lid; b < 256u; b += PWG) {
        atomicStore(&pc[b], 0u);
        atomicStore(&pwl[b], 0u);
        atomicStore(&pwh[b], 0u);
    }
    for (var off = PWG / 2u; off > 0u; off = off / 2u) {
        workgroupBarrier();
        if (lid < off) {
            pm[lid] = max(pm[lid], pm[lid + off]);
        }
    }
    workgroupBarrier();
    m = pm[0];
    // This invocation's words; equal bins in a run are added once.
    var run_bin = 0xffffffffu;
    var run_cnt = 0u;
    var run_w = vec2<u32>(0u, 0u);
    let nd = arrayLength(&dist);
    let nl = arrayLength(&logits);
    for (var k = 0u; k < PW; k++) {
        let j = (blk * PW + k) * PWG + lid;
        if (j < p.ld_d) {
            var packed: array<u32, 4>;
            for (var h = 0u; h < 4u; h++) {
                var pair = 0u;
                for (var e = 0u; e < 2u; e++) {
                    let i = j * 8u + h * 2u + e;
                    var d = D_MAX;
                    if (i < p.n) {
                        d = distance(m, sanitize(logits[min(row * p.ld_in + i, nl - 1u)]));
                    }
                    pair |= d << (16u * e);
                    let w = weight(d);
                    if (w > 0u) {
                        let bin = d >> 8u;
                        if (bin != run_bin) {
                            hist_add(min(run_bin, 255u), run_cnt, run_w);
                            run_bin = bin;
                            run_cnt = 0u;
                            run_w = vec2<u32>(0u, 0u);
                        }
                        run_cnt += 1u;
                        run_w = u64_add(run_w, vec2<u32>(w, 0u));
                    }
                }
                packed[h] = pair;
            }
            dist[min(row * p.ld_d + j, nd - 1u)] = vec4<u32>(packed[0], packed[1], packed[2], packed[3]);
        }
    }
    hist_add(min(run_bin, 255u), run_cnt, run_w);
    workgroupBarrier();
    let nh = arrayLength(&hist);
    if (wid.y < p.rows && blk < p.nbs) {
        for (var b = lid; b < 256u; b += PWG) {
            hist[min((row * p.nbs + blk) * 256u + b, nh - 1u)] =
                vec4<u32>(atomicLoad(&pc[b]), atomicLoad(&pwl[b]), atomicLoad(&pwh[b]), 0u);
        }
    }
}

// ---------------------------------------------------------------- select

// Coarse (c*) and fine (f*) histograms: counts and weights, then inclusive
// prefix sums in key order (bin 0 = the most probable).
var<workgroup> cc: array<u32, 256>;
var<workgroup> cw: array<vec2<u32>, 256>;
var<workgroup> fc: array<u32, 256>;
var<workgroup> fw: array<vec2<u32>, 256>;
var<workgroup> fine: array<atomic<u32>, 256>;
var<workgroup> first: atomic<u32>;
var<workgroup> slot: u32;
var<workgroup> seg: array<u32, SWG>;
var<workgroup> gm: array<f32, SWG>;
var<workgroup> gi: array<u32, SWG>;

// Inclusive scan of (cc, cw) or (fc, fw) over 256 bins (`fine_arrays` picks).
fn scan256(lid: u32, fine_arrays: bool) {
    for (var off = 1u; off < 256u; off = off * 2u) {
        var c = 0u;
        var w = vec2<u32>(0u, 0u);
        let act = lid < 256u && lid >= off;
        if (act) {
            if (fine_arrays) {
                c = fc[lid - off];
                w = fw[lid - off];
            } else {
                c = cc[lid - off];
                w = cw[lid - off];
            }
        }
        workgroupBarrier();
        if (act) {
            if (fine_arrays) {
                fc[lid] += c;
                fw[lid] = u64_add(fw[lid], w);
            } else {
                cc[lid] += c;
                cw[lid] = u64_add(cw[lid], w);
            }
        }
        workgroupBarrier();
    }
}

// The first bin b < limit whose flag is set, or `limit` (uniform result).
// `flag` is this invocation's flag for bin `lid`.
fn first_set(lid: u32, flag: bool, limit: u32) -> u32 {
    if (lid == 0u) {
        atomicStore(&first, limit);
    }
    workgroupBarrier();
    if (lid < limit && flag) {
        atomicMin(&first, lid);
    }
    workgroupBarrier();
    if (lid == 0u) {
        slot = atomicLoad(&first);
    }
    return workgroupUniformLoad(&slot);
}

// Cumulative count / weight before bin b (0 for b = 0).
fn cc_before(b: u32) -> u32 {
    if (b == 0u) {
        return 0u;
    }
    return cc[b - 1u];
}
fn cw_before(b: u32) -> vec2<u32> {
    if (b == 0u) {
        return vec2<u32>(0u, 0u);
    }
    return cw[b - 1u];
}
fn fc_before(b: u32) -> u32 {
    if (b == 0u) {
        return 0u;
    }
    return fc[b - 1u];
}
fn fw_before(b: u32) -> vec2<u32> {
    if (b == 0u) {
        return vec2<u32>(0u, 0u);
    }
    return fw[b - 1u];
}

fn dist_word(row: u32, j: u32) -> vec4<u32> {
    return dist[min(row * p.ld_d + j, arrayLength(&dist) - 1u)];
}

fn d_of(v: vec4<u32>, e: u32) -> u32 {
    return (v[e >> 1u] >> (16u * (e & 1u))) & 0xffffu;
}

// Fine histogram of coarse bin c: (fc, fw) = per distance c·256 + f, counts
// and count · weight, then scanned.
fn fine_pass(row: u32, c: u32, lid: u32) {
    for (var f = lid; f < 256u; f += SWG) {
        atomicStore(&fine[f], 0u);
    }
    workgroupBarrier();
    for (var j0 = lid; j0 < p.ld_d; j0 += SWG * 4u) {
        var v: array<vec4<u32>, 4>;
        for (var u = 0u; u < 4u; u++) {
            v[u] = dist_word(row, j0 + u * SWG);
        }
        for (var u = 0u; u < 4u; u++) {
            if (j0 + u * SWG < p.ld_d) {
                for (var e = 0u; e < 8u; e++) {
                    let d = d_of(v[u], e);
                    if ((d >> 8u) == c && weight(d) > 0u) {
                        atomicAdd(&fine[d & 255u], 1u);
                    }
                }
            }
        }
    }
    workgroupBarrier();
    if (lid < 256u) {
        let n = atomicLoad(&fine[lid]);
        fc[lid] = n;
        fw[lid] = mul32(n, weight(c * 256u + lid));
    }
    workgroupBarrier();
    scan256(lid, true);
}

// The index of the r-th (from 0) token of the row with distance ds, in index order.
fn nth_with_distance(row: u32, ds: u32, r: u32, lid: u32) -> u32 {
    let per = (p.ld_d + SWG - 1u) / SWG;
    let j0 = lid * per;
    var cnt = 0u;
    for (var j = j0; j < min(j0 + per, p.ld_d); j++) {
        let v = dist_word(row, j);
        for (var e = 0u; e < 8u; e++) {
            cnt += select(0u, 1u, d_of(v, e) == ds);
        }
    }
    // Exclusive scan of the counts over invocations.
    seg[lid] = cnt;
    for (var off = 1u; off < SWG; off = off * 2u) {
        workgroupBarrier();
        var add = 0u;
        if (lid >= off) {
            add = seg[lid - off];
        }
        workgroupBarrier();
        seg[lid] += add;
    }
    workgroupBarrier();
    let before = seg[lid] - cnt;
    if (lid == 0u) {
        atomicStore(&first, 0xffffffffu);
    }
    workgroupBarrier();
    if (r >= before && r < before + cnt) {
        var left = r - before;
        var found = 0xffffffffu;
        for (var j = j0; j < min(j0 + per, p.ld_d); j++) {
            let v = dist_word(row, j);
            for (var e = 0u; e < 8u; e++) {
                if (d_of(v, e) == ds && found == 0xffffffffu) {
                    if (left == 0u) {
                        found = j * 8u + e;
                    } else {
                        left -= 1u;
                    }
                }
            }
        }
        atomicMin(&first, found);
    }
    workgroupBarrier();
    if (lid == 0u) {
        slot = atomicLoad(&first);
    }
    return workgroupUniformLoad(&slot);
}

// A decision every invocation computed alike, made uniform for control flow.
fn uniform_flag(lid: u32, b: bool) -> bool {
    if (lid == 0u) {
        slot = select(0u, 1u, b);
    }
    return workgroupUniformLoad(&slot) != 0u;
}

fn finish(row: u32, lid: u32, token: u32) {
    if (lid == 0u && row < p.rows) {
        tokens[min(row, arrayLength(&tokens) - 1u)] = token;
        if (AUTO_STEP) {
            let i = min(row, arrayLength(&steps) - 1u);
            steps[i] = u64_add(steps[i], vec2<u32>(1u, 0u));
        }
    }
}

// The greedy token: the first index of the row maximum, from the softmax partials.
fn greedy_token(row: u32, lid: u32) -> u32 {
    var m = NEG_MAX;
    var idx = 0xffffffffu;
    for (var b = lid; b < p.nb_soft; b += SWG) {
        let s = soft_part(row, b);
        let bm = bitcast<f32>(s.x);
        if (bitcast<f32>(s.y) != 0.0 && (idx == 0xffffffffu || bm > m || (bm == m && s.z < idx))) {
            m = bm;
            idx = s.z;
        }
    }
    gm[lid] = m;
    gi[lid] = idx;
    for (var off = SWG / 2u; off > 0u; off = off / 2u) {
        workgroupBarrier();
        if (lid < off) {
            let m2 = gm[lid + off];
            let i2 = gi[lid + off];
            if (i2 != 0xffffffffu && (gi[lid] == 0xffffffffu || m2 > gm[lid] || (m2 == gm[lid] && i2 < gi[lid]))) {
                gm[lid] = m2;
                gi[lid] = i2;
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        slot = gi[0];
    }
    return workgroupUniformLoad(&slot);
}

@compute @workgroup_size(SWG)
fn select_token(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = min(wid.x, max(p.rows, 1u) - 1u);
    if (p.greedy != 0u) {
        finish(wid.x, lid, greedy_token(row, lid));
        return;
    }
    // 1. Coarse histogram of the row, scanned.
    let nh = arrayLength(&hist);
    if (lid < 256u) {
        var c = 0u;
        var w = vec2<u32>(0u, 0u);
        for (var b = 0u; b < p.nbs; b++) {
            let h = hist[min((row * p.nbs + b) * 256u + lid, nh - 1u)];
            c += h.x;
            w = u64_add(w, h.yz);
        }
        cc[lid] = c;
        cw[lid] = w;
    }
    workgroupBarrier();
    scan256(lid, false);
    let ncand = workgroupUniformLoad(&cc[255]);
    var kk = ncand;
    if (p.top_k != 0u) {
        kk = min(p.top_k, ncand);
    }
    // 2. Top-k: the bin and the distance d_k where the count reaches K.
    let ck = first_set(lid, lid < 256u && cc[min(lid, 255u)] >= kk, 256u);
    fine_pass(row, ck, lid);
    let base_cnt = cc_before(ck);
    let fk = first_set(lid, lid < 256u && base_cnt + fc[min(lid, 255u)] >= kk, 256u);
    let dk = ck * 256u + fk;
    let tk = kk - (base_cnt + fc_before(fk));
    let wk_before = u64_add(cw_before(ck), fw_before(fk));
    let w_k = u64_add(wk_before, mul32(tk, weight(dk)));
    // 3. Top-p: goal = ceil(W_K · P / 2^24).
    var t3 = mul64x32(w_k, p.p_fixed);
    let lo = t3.x + 0xffffffu;
    let c1 = select(0u, 1u, lo < t3.x);
    let mid = t3.y + c1;
    let c2 = select(0u, 1u, mid < c1);
    t3 = vec3<u32>(lo, mid, t3.z + c2);
    let goal = vec2<u32>((t3.x >> 24u) | (t3.y << 8u), (t3.y >> 24u) | (t3.z << 8u));
    // The bin where the weight reaches the goal: before ck (all of those
    // bins are inside the top-k set), or ck itself.
    let cp = first_set(lid, lid < 256u && lid < ck && u64_ge(cw[min(lid, 255u)], goal), ck);
    var fp: u32;
    if (cp < ck) {
        fine_pass(row, cp, lid);
        let base_w = cw_before(cp);
        fp = first_set(lid, lid < 256u && u64_ge(u64_add(base_w, fw[min(lid, 255u)]), goal), 256u);
    } else {
        let base_w = cw_before(ck);
        fp = first_set(lid, lid < 256u && lid < fk && u64_ge(u64_add(base_w, fw[min(lid, 255u)]), goal), fk);
    }
    let dp = cp * 256u + fp;
    let wp_before = u64_add(cw_before(cp), fw_before(fp));
    let wdp = weight(dp);
    let need = divmod64x32(u64_sub(goal, wp_before), wdp);
    let tp = need.x + select(0u, 1u, need.z != 0u);
    let w_all = u64_add(wp_before, mul32(tp, wdp));
    // 4. The draw: U = floor(W · R / 2^64).
    let st = steps[min(row, arrayLength(&steps) - 1u)];
    let rnd = philox4x32_10(vec4<u32>(st.x, st.y, row, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
    let u = mulhi64(w_all, rnd.xy);
    var ds = dp;
    var rank = 0u;
    if (uniform_flag(lid, u64_ge(u, wp_before))) {
        rank = divmod64x32(u64_sub(u, wp_before), wdp).x;
    } else {
        // Below d_p: first in the coarse bins before c_p, else inside c_p's fine bins.
        let cs = first_set(lid, lid < 256u && lid < cp && u64_lt(u, cw[min(lid, 255u)]), cp);
        if (cs < cp) {
            fine_pass(row, cs, lid);
        }
        let base_w = cw_before(cs);
        let fs = first_set(lid, lid < 256u && u64_lt(u, u64_add(base_w, fw[min(lid, 255u)])), 256u);
        ds = cs * 256u + fs;
        rank = divmod64x32(u64_sub(u, u64_add(base_w, fw_before(fs))), weight(ds)).x;
    }
    // 5. The token: the rank-th with distance ds, in index order.
    finish(wid.x, lid, nth_with_distance(row, ds, rank, lid));
}

// Compressed GEMV, tile-parallel: partial products of whole 64×64 tiles,
// modelled on the fast decoder (rans_fast*.wgsl). Assembled as
//   lib/ballot_{sg,wg}.wgsl + lib/rans_tile.wgsl + this file + lib/rans_entry_{sg,wg}.wgsl.
//
// The host lists the tiles sorted by decode table, cut into chunks of
// NW · ROUNDS entries that share a table (dead entries 0xffffffff). A
// workgroup takes one chunk: it copies the chunk's decode table into
// workgroup memory once, then runs ROUNDS rounds; in each, decoder d (32
// lanes) takes entry round · NW + d and
//   1. stages the tile's words (up to CAPW) in workgroup memory;
//   2. decodes it (§4), 32 interleaved lanes, lane l's word of step group g
//      being row 2g + l div 16, columns 4·(l mod 16)..+3 of the tile. Full-
//      width NONE and PLANAR tiles are multiplied right there: the lane adds
//      the PLANAR prediction, takes the dot product with its 4 x values and
//      stores it at [row][l mod 16] of its f32 buffer; other tiles store the
//      bytes, are rebuilt (§5: LEFT, TOP, AVG wavefront) and multiplied into
//      the same layout;
//   3. sums each row's 16 products in a fixed order and writes the tile's 64
//      row sums to partials[tile column][row].
// A second kernel (gemv_rans_reduce.wgsl) adds the partials of each row in
// column order and applies scale and bias: results are the same run to run.
//
// All loops are bounded by constants or clamped sizes; indices are clamped,
// except the coded step's word reads, which stay inside the zeros the host
// puts after the stream (`fused_step_coded`); a tile that does not end as §4
// requires sets err[0].
//
// Bindings: 0 stream (u16 words in u32), 1 index (offset, meta per tile),
// 2 luts (4 tables × 4096), 3 x (f32 or packed f16, zero-padded to whole
// tiles), 4 work (tile list), 5 partials, 6 err, 7 params.

override NW: u32 = 4u;
override CAPW: u32 = 2048u;  // staged words per decoder (even)
override ROUNDS: u32 = 4u;
override X_HALF: bool = false;
// A work list of full-width NONE / PLANAR tiles only (the host sends the
// others to a non-FUSED dispatch): no tile buffer; each step group's 16
// products of a row are added in the fixed order of a butterfly (lanes ^ 1,
// 2, 4, 8), by subgroupShuffleXor on subgroups of ≥ 32 lanes, elsewhere
// through workgroup memory (the same bits); lane l keeps rows
// 2·(l mod 16) + l div 16 and that + 32 in two registers. Tiles of 64 full
// rows are decoded by the coded step until their tails (`fused_step_coded`:
// no per-step count or tail tests), the rest by `fused_step`. See
// `fused_band`.
override FUSED: bool = false;
// FUSED only, the fast decoder's two forms (rans_fast.wgsl):
// ILP 2: each decoder takes two tiles a round and decodes them step by step
// interleaved (two independent dependency chains per lane);
// DIRECT: words are read from `stream` (through the cache), not staged:
// workgroup memory is the table alone and, on subgroups of ≥ 32 lanes, the
// tile loop has no barrier at all.
override ILP: u32 = 1u;
override DIRECT: bool = false;
// Sizes of the workgroup arrays, set by the host to NW · ILP · CAPW / 2 (1 if
// DIRECT), NW · 1024 (1 if FUSED), NW · ILP · 3 and 2 · NW · 32 (FUSED on
// subgroups narrower than 32 lanes or without subgroups; else 1).
override STAGE_WORDS: u32 = 4096u;
override TILE_WORDS: u32 = 4096u;
override BAL_WORDS: u32 = 12u;
override SUM_WORDS: u32 = 1u;
// Diagnostics only (wrong results; `bench kernels --stages`): 2 no decode
// loop, 4 no rebuild, 8 no multiply, 16 no staging; 64 (right results): count the workgroups resident at once in err[2]
// (err[1] the running count; `bench kernels --stages`); 128 (right results,
// FUSED): every tile through the general step (`fused_step`), none through
// the coded one.
override DIAG: u32 = 0u;

struct Params {
    rows: u32,
    cols: u32,
    tiles_x: u32,
    tiles_y: u32,
    prob_bits: u32,
    tail_bits: u32,
    tail_base: u32,
    nwords: u32,
    groups_x: u32,
    ngroups: u32,   // chunks in the work list
    rows_pad: u32,  // tiles_y · 64: the pitch of partials
    // FUSED: the first full_groups chunks hold full tiles only (64×64: every
    // lane has 128 symbols), decoded by `fused_step_coded` until the tails.
    full_groups: u32,
}

@group(0) @binding(0) var<storage, read> stream: array<u32>;
@group(0) @binding(1) var<storage, read> index: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> lut: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<u32>;
@group(0) @binding(4) var<storage, read> work: array<u32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> err: array<atomic<u32>>;
@group(0) @binding(7) var<uniform> p: Params;

var<private> SG_LANE: u32;

var<workgroup> wlut: array<u32, 4096>;
var<workgroup> stage: array<u32, STAGE_WORDS>;
// Per decoder: bytes of the tile (pitch 16 words), then its f32 products.
var<workgroup> tile: array<atomic<u32>, TILE_WORDS>;
// Per decoder: first word, word count, meta, list entry.
var<workgroup> tinfo: array<vec4<u32>, NW>;
var<workgroup> any_avg: atomic<u32>;
// FUSED without wide subgroups: lane exchanges (xor_lanes), two buffers.
var<workgroup> fsum: array<f32, SUM_WORDS>;

// FUSED: this lane's decoder and its tiles of the round (.x tile 0, .y tile 1).
var<private> f_dec: u32;
var<private> f_start: vec2<u32>;
var<private> f_count: vec2<u32>;
// FUSED: slot and tail masks, this lane's mask of lower lanes.
var<private> f_mask: u32;
var<private> f_tmask: u32;
var<private> f_lt: u32;
// FUSED: this lane's two row sums (`fused_group`); .x tile 0, .y tile 1.
var<private> f_acc0: vec2<f32>;
var<private> f_acc1: vec2<f32>;
// FUSED without wide subgroups: the buffer of the last lane exchange.
var<private> f_par: u32;

fn stream_word(k: u32) -> u32 {
    let i = min(k, p.nwords - 1u);
    return (stream[min(i >> 1u, arrayLength(&stream) - 1u)] >> ((i & 1u) << 4u)) & 0xffffu;
}

// FUSED: word k of this decoder's tile j of the round (0 past its end).
fn fused_word(j: u32, k: u32) -> u32 {
    let start = select(f_start.x, f_start.y, j != 0u);
    if (k >= select(f_count.x, f_count.y, j != 0u)) {
        return 0u;
    }
    if (!DIRECT) {
        let pos = (start & 1u) + k;
        if (pos < CAPW) {
            let a = (f_dec * ILP + j) * (CAPW / 2u) + (pos >> 1u);
            return (stage[min(a, STAGE_WORDS - 1u)] >> ((pos & 1u) << 4u)) & 0xffffu;
        }
    }
    return stream_word(start + k);
}

// Word k of decoder d's tile (0 past its end).
fn tile_word(d: u32, k: u32) -> u32 {
    let t = tinfo[d];
    if (k >= t.y) {
        return 0u;
    }
    let pos = (t.x & 1u) + k;
    if (pos < CAPW) {
        return (stage[min(d * (CAPW / 2u) + (pos >> 1u), STAGE_WORDS - 1u)] >> ((pos & 1u) << 4u)) & 0xffffu;
    }
    return stream_word(t.x + k);
}

// tb_get, tb_set, add_bytes, sx8, i8x4, x4: lib/gemv_rans_helpers.wgsl.

// PLANAR prediction of row i, columns j0..j0+3, packed as bytes.
fn planar_pred(mt: u32, i: u32, j0: u32) -> u32 {
    let pa = sx8(mt >> 8u);
    let pb = sx8(mt >> 16u);
    let pc = sx8(mt >> 24u);
    let base = pa * i32(i) + pb * i32(j0) + 16 * pc + 8;
    var o = 0u;
    for (var b = 0u; b < 4u; b++) {
        let pr = clamp((base + pb * i32(b)) >> 4u, -128, 127);
        o |= (u32(pr) & 0xffu) << (8u * b);
    }
    return o;
}

fn work_at(i: u32) -> u32 {
    if (i < arrayLength(&work)) {
        return work[i];
    }
    return 0xffffffffu;
}

// FUSED: v of lane ^ m of this decoder (m < 32): a subgroup shuffle on wide
// subgroups, else through workgroup memory (two buffers used in turn, one
// barrier a call). Must be called in uniform control flow.
fn xor_lanes(v: f32, m: u32, lane: u32) -> f32 {
    if (SG_WIDE) {
        return shfl_xor(v, m);
    }
    f_par ^= 1u;
    let base = (f_par * NW + f_dec) * 32u;
    fsum[min(base + lane, SUM_WORDS - 1u)] = v;
    workgroupBarrier();
    return fsum[min(base + (lane ^ m), SUM_WORDS - 1u)];
}

// FUSED: entry i of the work list as a tile of this decoder: (first word,
// word count, meta, tile; 0xffffffff: none). Every lane computes it.
fn fused_tile(ok: bool, i: u32, ntiles: u32) -> vec4<u32> {
    var t = 0xffffffffu;
    if (ok) {
        t = work_at(i);
    }
    if (t >= ntiles) {
        return vec4<u32>(0u, 0u, 0u, 0xffffffffu);
    }
    let e = index[min(t, arrayLength(&index) - 1u)];
    var end = p.nwords;
    if (t + 1u < ntiles) {
        end = index[min(t + 1u, arrayLength(&index) - 1u)].x;
    }
    let start = min(e.x, p.nwords);
    return vec4<u32>(start, max(end, start) - start, e.y, t);
}

// FUSED: rans_initial_state (lib/rans_tile.wgsl) of tile j, n symbols, for
// lane l, reading the tile's 8 first words once each (at most 32 lanes: at
// most 8 words of nibbles).
fn fused_init(j: u32, n: u32, l: u32) -> vec2<u32> {
    let a = rans_active_lanes(n);
    let ncw = (a + 3u) / 4u;
    var below = 0u;
    var total = 0u;
    var mine = 0u;
    for (var w = 0u; w < 8u; w++) {
        let wv = fused_word(j, w);
        for (var b = 0u; b < 4u; b++) {
            let i = 4u * w + b;
            let c = 16u + ((wv >> (4u * b)) & 15u);
            if (i < a) {
                total += c;
                if (i < l) {
                    below += c;
                }
                if (i == l) {
                    mine = c;
                }
            }
        }
    }
    let body = ncw + (total + 15u) / 16u;
    if (l >= a) {
        return vec2<u32>(RANS_L, body);
    }
    let pos = ncw * 16u + below;
    let w0 = pos / 16u;
    let sh = pos % 16u;
    let lo = fused_word(j, w0) | (fused_word(j, w0 + 1u) << 16u);
    var v = lo >> sh;
    if (sh != 0u) {
        v |= fused_word(j, w0 + 2u) << (32u - sh);
    }
    v &= (1u << mine) - 1u;
    return vec2<u32>((1u << mine) | v, body);
}

// x's raw words for columns c..c+3 (f16: .xy) and their values.
fn x_raw(c: u32) -> vec4<u32> {
    let nx = arrayLength(&x);
    if (X_HALF) {
        let i = min(c >> 1u, nx - 2u);
        return vec4<u32>(x[i], x[i + 1u], 0u, 0u);
    }
    let i = min(c, nx - 4u);
    return vec4<u32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}
fn x_val(r: vec4<u32>) -> vec4<f32> {
    if (X_HALF) {
        return vec4<f32>(unpack2x16float(r.x), unpack2x16float(r.y));
    }
    return bitcast<vec4<f32>>(r);
}

// FUSED: stage tile j's words (up to CAPW) into the decoder's stage.
fn fused_stage(j: u32, lane: u32) {
    let start = select(f_start.x, f_start.y, j != 0u);
    let count = select(f_count.x, f_count.y, j != 0u);
    let fw = start >> 1u;
    let nstage = min(((start & 1u) + count + 1u) / 2u, CAPW / 2u);
    let sb = (f_dec * ILP + j) * (CAPW / 2u);
    for (var k = lane; k < select(nstage, 0u, (DIAG & 16u) != 0u); k += 32u) {
        stage[min(sb + k, STAGE_WORDS - 1u)] = stream[min(fw + k, arrayLength(&stream) - 1u)];
    }
}

// FUSED: one decode step (§4) of this lane in tile j from (state, words the
// decoder read); returns (state, words read, symbol). `step` counts the
// decoder's ballots (their rotating slots). Uniform control flow.
fn fused_step(j: u32, lane: u32, xq: vec2<u32>, s: u32, step: u32, nl: u32, rl: u32) -> vec3<u32> {
    var xs = xq.x;
    var need = false;
    var sym = 0u;
    if (s < nl) {
        if (s + rl >= nl) {
            sym = (((xs >> (p.tail_bits * (nl - 1u - s))) & f_tmask) + p.tail_base) & 0xffu;
        } else {
            let e = wlut[xs & f_mask];
            sym = e & 0xffu;
            xs = (((e >> 8u) & 0xfffu) + 1u) * (xs >> p.prob_bits) + (e >> 20u);
            need = xs < RANS_L;
        }
    }
    let m = ballot32(f_dec * ILP + j, lane, need, step);
    if (need) {
        xs = (xs << 16u) | fused_word(j, xq.y + countOneBits(m & f_lt));
    }
    return vec3<u32>(xs, xq.y + countOneBits(m), sym);
}

// FUSED: `fused_step` for a table-coded step of a full tile (every lane
// has 128 symbols; s < 128 − the tail): no symbol-count or tail tests, the
// word read by every lane and kept where needed.
fn fused_step_coded(j: u32, lane: u32, xq: vec2<u32>, step: u32, kb: u32) -> vec3<u32> {
    let e = wlut[xq.x & f_mask];
    let xs = (((e >> 8u) & 0xfffu) + 1u) * (xq.x >> p.prob_bits) + (e >> 20u);
    let need = xs < RANS_L;
    let m = ballot32(f_dec * ILP + j, lane, need, step);
    let k = xq.y + countOneBits(m & f_lt);
    var xn: u32;
    if (DIRECT) {
        // Word k of the tile starting at u16 index kb of `stream`, merged as
        // a funnel shift: (xs : its u32 shifted to put the word on top) >> 16
        // (4 µs faster than shift and mask on the H100, run 58). No end
        // test: only a corrupt tile reads past its end, and `fused_finish`
        // flags it. No clamp: kb ≤ nwords, and k ≤ 70 state-code words +
        // 126 steps × 32 + 31, within the zeros the host puts after the
        // stream (STREAM_PAD_U32 in gemv_rans.rs).
        let i = kb + k;
        xn = (xs << 16u) | ((stream[i >> 1u] << ((~i & 1u) << 4u)) >> 16u);
    } else {
        xn = (xs << 16u) | fused_word(j, k);
    }
    return vec3<u32>(select(xs, xn, need), xq.y + countOneBits(m), e & 0xffu);
}

// FUSED: the product of this lane's 4 symbols (packed) of step group g of a
// tile (meta mt) with its x values; 0 if it has none.
fn fused_dot(word: u32, mt: u32, g: u32, lane: u32, cnt: u32, xr: vec4<u32>) -> f32 {
    if (cnt == 0u || (DIAG & 8u) != 0u) {
        return 0.0;
    }
    var wv = word;
    if ((mt & 15u) == 4u) {
        wv = add_bytes(wv, planar_pred(mt, 2u * g + lane / 16u, 4u * (lane % 16u)));
    }
    return dot(i8x4(wv), x_val(xr));
}

// FUSED: step group g's products v (.x tile 0, .y tile 1) into the row
// sums: each row's 16 products added by a butterfly over lanes ^ 1, 2, 4, 8
// (its fixed order); lane l keeps rows 2·(l mod 16) + l div 16 and that +
// 32. Uniform control flow.
fn fused_group(g: u32, lane: u32, v: vec2<f32>) {
    var sm = v;
    for (var m = 1u; m < 16u; m <<= 1u) {
        sm.x += xor_lanes(sm.x, m, lane);
        if (ILP > 1u) {
            sm.y += xor_lanes(sm.y, m, lane);
        }
    }
    if (g == lane % 16u) {
        f_acc0 = sm;
    }
    if (g == 16u + lane % 16u) {
        f_acc1 = sm;
    }
}

// FUSED: the end conditions (§4) of a tile; its 64 row sums to partials.
fn fused_finish(ti: vec4<u32>, lane: u32, xs: u32, q: u32, acc0: f32, acc1: f32) {
    if (ti.w == 0xffffffffu) {
        return;
    }
    let t = ti.w;
    let r0 = (t / p.tiles_x) * 64u;
    let h = min(64u, p.rows - min(r0, p.rows));
    let n = h * 64u;
    let rl = min(16u / p.tail_bits, rans_lane_count(n, lane));
    check_tile_end(lane, n, rl, xs, q, ti.y);
    let row = 2u * (lane % 16u) + lane / 16u;
    let o = (t % p.tiles_x) * p.rows_pad + r0 + row;
    if (o + 32u < arrayLength(&partials)) {
        partials[o] = acc0;
        partials[o + 32u] = acc1;
    }
}

// The FUSED tile kernel: every tile of the list is full width (64 columns)
// and of mode NONE or PLANAR. Decoder d takes entries (round · NW + d) · ILP
// + j, j < ILP, of its chunk; with ILP 2 its two tiles advance step by step
// together. Barriers: the table's; with a stage, two a round; ballots and
// row sums on paths without wide subgroups, theirs.
fn fused_band(group: u32, lid: u32, dec: u32, lane: u32) {
    let g_ok = group < p.ngroups;
    let gbase = min(group, p.ngroups) * NW * ILP * ROUNDS;
    let first = work_at(gbase);
    let table = select(0u, (index[min(first, arrayLength(&index) - 1u)].y >> 4u) & 3u, first != 0xffffffffu);
    for (var k = lid; k < 4096u; k += NW * 32u) {
        wlut[k] = lut[min(table * 4096u + k, arrayLength(&lut) - 1u)];
    }
    for (var j = 0u; j < ILP; j++) {
        init_ballot(dec * ILP + j, lane);
    }
    f_dec = dec;
    f_mask = ((1u << p.prob_bits) - 1u) & 4095u;
    f_tmask = (1u << p.tail_bits) - 1u;
    f_lt = (1u << lane) - 1u;
    workgroupBarrier();
    let ntiles = p.tiles_x * p.tiles_y;
    let ntail = 16u / p.tail_bits;
    var step = 0u;
    for (var round = 0u; round < ROUNDS; round++) {
        let e = gbase + (round * NW + dec) * ILP;
        let ta = fused_tile(g_ok, e, ntiles);
        var tb = vec4<u32>(0u, 0u, 0u, 0xffffffffu);
        if (ILP > 1u) {
            tb = fused_tile(g_ok, e + 1u, ntiles);
        }
        f_start = vec2<u32>(ta.x, tb.x);
        f_count = vec2<u32>(ta.y, tb.y);
        if (!DIRECT) {
            if (round > 0u) {
                // every decoder is done with its stage
                workgroupBarrier();
            }
            for (var j = 0u; j < ILP; j++) {
                fused_stage(j, lane);
            }
            workgroupBarrier();
        }
        // Tile a (and b): symbols of this lane, its tail, state.
        let ha = min(64u, p.rows - min((min(ta.w, ntiles - 1u) / p.tiles_x) * 64u, p.rows));
        let nla = select(0u, rans_lane_count(ha * 64u, lane), ta.w != 0xffffffffu);
        let rla = min(ntail, nla);
        let sa = fused_init(0u, ha * 64u, lane);
        var xa = vec2<u32>(sa.x, sa.y);
        let xva = x_raw((min(ta.w, ntiles - 1u) % p.tiles_x) * 64u + 4u * (lane % 16u));
        var hb = 0u;
        var nlb = 0u;
        var xb = vec2<u32>(0u);
        var xvb = vec4<u32>(0u);
        if (ILP > 1u) {
            hb = min(64u, p.rows - min((min(tb.w, ntiles - 1u) / p.tiles_x) * 64u, p.rows));
            nlb = select(0u, rans_lane_count(hb * 64u, lane), tb.w != 0xffffffffu);
            let sb = fused_init(1u, hb * 64u, lane);
            xb = vec2<u32>(sb.x, sb.y);
            xvb = x_raw((min(tb.w, ntiles - 1u) % p.tiles_x) * 64u + 4u * (lane % 16u));
        }
        let rlb = min(ntail, nlb);
        f_acc0 = vec2<f32>(0.0);
        f_acc1 = vec2<f32>(0.0);
        // Full tiles (the first full_groups chunks): the table-coded groups
        // by `fused_step_coded`, the rest (tails, short tiles) by `fused_step`.
        let gfast = select(0u, (128u - ntail) / 4u, group < p.full_groups && (DIAG & 130u) == 0u);
        for (var g = 0u; g < gfast; g++) {
            var wa = 0u;
            var wb = 0u;
            for (var u = 0u; u < 4u; u++) {
                let ra = fused_step_coded(0u, lane, xa, step, ta.x);
                xa = ra.xy;
                wa |= ra.z << (8u * u);
                if (ILP > 1u) {
                    let rb = fused_step_coded(1u, lane, xb, step, tb.x);
                    xb = rb.xy;
                    wb |= rb.z << (8u * u);
                }
                step++;
            }
            var v = vec2<f32>(0.0);
            v.x = fused_dot(wa, ta.z, g, lane, 4u, xva);
            if (ILP > 1u) {
                v.y = fused_dot(wb, tb.z, g, lane, 4u, xvb);
            }
            fused_group(g, lane, v);
        }
        for (var g = gfast; g < select(32u, 0u, (DIAG & 2u) != 0u); g++) {
            var wa = 0u;
            var wb = 0u;
            for (var u = 0u; u < 4u; u++) {
                let s = 4u * g + u;
                let ra = fused_step(0u, lane, xa, s, step, nla, rla);
                xa = ra.xy;
                wa |= ra.z << (8u * u);
                if (ILP > 1u) {
                    let rb = fused_step(1u, lane, xb, s, step, nlb, rlb);
                    xb = rb.xy;
                    wb |= rb.z << (8u * u);
                }
                step++;
            }
            var v = vec2<f32>(0.0);
            v.x = fused_dot(wa, ta.z, g, lane, min(nla - min(4u * g, nla), 4u), xva);
            if (ILP > 1u) {
                v.y = fused_dot(wb, tb.z, g, lane, min(nlb - min(4u * g, nlb), 4u), xvb);
            }
            fused_group(g, lane, v);
        }
        fused_finish(ta, lane, xa.x, xa.y, f_acc0.x, f_acc1.x);
        if (ILP > 1u) {
            fused_finish(tb, lane, xb.x, xb.y, f_acc0.y, f_acc1.y);
        }
    }
}

// Named as the band kernel's so that the shared entry points call it.
fn gemv_band(group: u32, lid: u32, dec: u32, lane: u32) {
    if (FUSED) {
        if ((DIAG & 64u) != 0u && lid == 0u) {
            atomicMax(&err[2], atomicAdd(&err[1], 1u) + 1u);
        }
        fused_band(group, lid, dec, lane);
        if ((DIAG & 64u) != 0u) {
            workgroupBarrier();
            if (lid == 0u) {
                atomicSub(&err[1], 1u);
            }
        }
        return;
    }
    let g_ok = group < p.ngroups;
    let gbase = min(group, p.ngroups) * NW * ROUNDS;
    // The chunk's table (host: every live entry of a chunk shares it).
    let first = work_at(gbase);
    let table = select(0u, (index[min(first, arrayLength(&index) - 1u)].y >> 4u) & 3u, first != 0xffffffffu);
    for (var k = lid; k < 4096u; k += NW * 32u) {
        wlut[k] = lut[min(table * 4096u + k, arrayLength(&lut) - 1u)];
    }
    let ntiles = p.tiles_x * p.tiles_y;
    let mask = (1u << p.prob_bits) - 1u;
    let tmask = (1u << p.tail_bits) - 1u;
    let ntail = 16u / p.tail_bits;
    let lt = (1u << lane) - 1u;
    let tb = dec * 1024u;
    for (var round = 0u; round < ROUNDS; round++) {
        // 1. Stage.
        if (lane == 0u) {
            var t = 0xffffffffu;
            if (g_ok) {
                t = work_at(gbase + round * NW + dec);
            }
            var info = vec4<u32>(0u, 0u, 0u, 0xffffffffu);
            if (t < ntiles) {
                let e = index[min(t, arrayLength(&index) - 1u)];
                var end = p.nwords;
                if (t + 1u < ntiles) {
                    end = index[min(t + 1u, arrayLength(&index) - 1u)].x;
                }
                let start = min(e.x, p.nwords);
                info = vec4<u32>(start, max(end, start) - start, e.y, t);
            }
            tinfo[dec] = info;
            if (dec == 0u) {
                atomicStore(&any_avg, 0u);
            }
        }
        workgroupBarrier();
        let ti = tinfo[dec];
        let live = ti.w != 0xffffffffu;
        let t = min(ti.w, ntiles - 1u);
        let band = t / p.tiles_x;
        let tx = t % p.tiles_x;
        let r0 = band * 64u;
        let c0 = tx * 64u;
        let h = min(64u, p.rows - min(r0, p.rows));
        let w = min(64u, p.cols - min(c0, p.cols));
        let n = h * w;
        let mode = ti.z & 15u;
        let fused = (mode == 0u || mode == 4u) && w == 64u;
        if (live && mode == 3u && lane == 0u) {
            atomicOr(&any_avg, 1u);
        }
        {
            let fw = ti.x >> 1u;
            let nstage = min(((ti.x & 1u) + ti.y + 1u) / 2u, CAPW / 2u);
            for (var k = lane; k < select(nstage, 0u, (DIAG & 16u) != 0u); k += 32u) {
                stage[min(dec * (CAPW / 2u) + k, STAGE_WORDS - 1u)] = stream[min(fw + k, arrayLength(&stream) - 1u)];
            }
        }
        if (!fused && n < 4096u) {
            for (var k = lane; k < 1024u; k += 32u) {
                atomicStore(&tile[tb + k], 0u);
            }
        }
        init_ballot(dec, lane);
        workgroupBarrier();
        // 2. Decode (§4), a constant 32 step groups (4096 symbols at most);
        // lanes with no symbols left idle.
        let nl = select(0u, rans_lane_count(n, lane), live);
        let rl = min(ntail, nl);
        let st = rans_initial_state(dec, n, lane);
        var xs = st.x;
        var q = st.y;
        let tstart = ti.x;
        let tcount = ti.y;
        let tsh = ti.x & 1u;
        let sbase = dec * (CAPW / 2u);
        let xv = x4(c0 + 4u * (lane % 16u));
        let planar = mode == 4u;
        for (var g = 0u; g < select(32u, 0u, (DIAG & 2u) != 0u); g++) {
            var word = 0u;
            for (var u = 0u; u < 4u; u++) {
                let s = 4u * g + u;
                var need = false;
                var sym = 0u;
                if (s < nl) {
                    if (s + rl >= nl) {
                        sym = (((xs >> (p.tail_bits * (nl - 1u - s))) & tmask) + p.tail_base) & 0xffu;
                    } else {
                        let e = wlut[xs & mask & 4095u];
                        sym = e & 0xffu;
                        xs = (((e >> 8u) & 0xfffu) + 1u) * (xs >> p.prob_bits) + (e >> 20u);
                        need = xs < RANS_L;
                    }
                }
                let m = ballot32(dec, lane, need, s);
                if (need) {
                    let k = q + countOneBits(m & lt);
                    var wd = 0u;
                    if (k < tcount) {
                        let pos = tsh + k;
                        if (pos < CAPW) {
                            wd = (stage[min(sbase + (pos >> 1u), STAGE_WORDS - 1u)] >> ((pos & 1u) << 4u)) & 0xffffu;
                        } else {
                            wd = stream_word(tstart + k);
                        }
                    }
                    xs = (xs << 16u) | wd;
                }
                q += countOneBits(m);
                word |= sym << (8u * u);
            }
            let cnt = min(nl - min(4u * g, nl), 4u);
            if (fused) {
                // Row 2g + lane div 16, columns 4·(lane mod 16)..+3.
                var v = 0.0;
                if (cnt > 0u && (DIAG & 8u) == 0u) {
                    var wv = word;
                    if (planar) {
                        wv = add_bytes(wv, planar_pred(ti.z, 2u * g + lane / 16u, 4u * (lane % 16u)));
                    }
                    v = dot(i8x4(wv), xv);
                }
                atomicStore(&tile[tb + 32u * g + lane], bitcast<u32>(v));
            } else if (live && cnt > 0u) {
                if (w == 64u) {
                    atomicStore(&tile[tb + 32u * g + lane], word);
                } else {
                    let kb = 128u * g + 4u * lane;
                    for (var b = 0u; b < cnt; b++) {
                        let k = kb + b;
                        let i = k / w;
                        let j = k % w;
                        atomicOr(&tile[tb + min(i, 63u) * 16u + (j >> 2u)], ((word >> (8u * b)) & 0xffu) << ((j & 3u) * 8u));
                    }
                }
            }
        }
        if (live) {
            check_tile_end(lane, n, rl, xs, q, ti.y);
        }
        workgroupBarrier();
        // 3. Rebuild (§5) the tiles that were not multiplied in the loop.
        let rmode = select(mode, 0u, (DIAG & 4u) != 0u || fused || !live);
        if (rmode == 1u) {
            for (var i = lane; i < h; i += 32u) {
                var carry = 0u;
                for (var c = 0u; c < 16u; c++) {
                    let a = tb + i * 16u + c;
                    var v = atomicLoad(&tile[a]);
                    v = add_bytes(v, v << 8u);
                    v = add_bytes(v, v << 16u);
                    v = add_bytes(v, carry * 0x01010101u);
                    atomicStore(&tile[a], v);
                    carry = v >> 24u;
                }
            }
        } else if (rmode == 2u) {
            if (lane < 16u) {
                var prev = atomicLoad(&tile[tb + lane]);
                for (var i = 1u; i < h; i++) {
                    let a = tb + i * 16u + lane;
                    prev = add_bytes(atomicLoad(&tile[a]), prev);
                    atomicStore(&tile[a], prev);
                }
            }
        } else if (rmode == 4u) {
            for (var k = lane; k < h * 16u; k += 32u) {
                let a = tb + k;
                atomicStore(&tile[a], add_bytes(atomicLoad(&tile[a]), planar_pred(ti.z, k / 16u, (k % 16u) * 4u)));
            }
        }
        if (workgroupUniformLoad(&any_avg) != 0u && (DIAG & 4u) == 0u) {
            let avg = live && mode == 3u;
            for (var dg = 0u; dg < 127u; dg++) {
                if (avg) {
                    avg_diagonal(dec, dg, h, w, lane);
                }
                workgroupBarrier();
            }
        }
        workgroupBarrier();
        // The rebuilt tiles' products, in place (each word read and written by one lane).
        if (!fused) {
            for (var g = 0u; g < 32u; g++) {
                let a = tb + 32u * g + lane;
                var v = 0.0;
                if (live && (DIAG & 8u) == 0u) {
                    v = dot(i8x4(atomicLoad(&tile[a])), xv);
                }
                atomicStore(&tile[a], bitcast<u32>(v));
            }
        }
        workgroupBarrier();
        // 4. Row sums in a fixed order; lane l takes rows l and l + 32.
        if (live) {
            for (var hh = 0u; hh < 2u; hh++) {
                let row = lane + 32u * hh;
                var sum = 0.0;
                for (var c = 0u; c < 16u; c++) {
                    sum += bitcast<f32>(atomicLoad(&tile[tb + row * 16u + c]));
                }
                let o = tx * p.rows_pad + r0 + row;
                if (o < arrayLength(&partials)) {
                    partials[o] = sum;
                }
            }
        }
        workgroupBarrier();
    }
}

// The fast lossy tile decoder: full 64x64 lossy tiles (FORMAT.md §5.1,
// modes SPATIAL, DCT8, DCT4, DST4 with any predictor), modelled on
// rans_fast.wgsl (same plan, group records, staging and rANS loop) and
// rebuilt like rans_lossy.wgsl, but with one tile per slot of 32
// invocations and nothing else in the kernel.
//
// What it decodes (the host's list, decode.rs): full tiles of lossy planes
// whose words fit the stage (STAGE_U32 >= 64 * LX_ROWS), written as int8
// pixels (DQ 3) or as pixel * tile scale in f32 / f16 / bf16 (DQ 0..2).
// Every other tile goes to the general kernel, which skips the listed ones
// (rans_decode.wgsl `tile_info`).
//
// The source handed to the driver is  lib_float.wgsl, lib/segment.wgsl,
// lib/rans_io.wgsl + this file + lib/fast_tile.wgsl (tile_word, tile_init,
// tile_end, shared with rans_fast.wgsl) + one of
//   rans_fast_lossy_subgroup.wgsl   (a tile's word offsets by subgroup ballot)
//   rans_fast_lossy_workgroup.wgsl  (the same through workgroup memory)
//
// Per round, slot k of a workgroup (WARPS slots) takes one tile: it stages
// the tile's words, decodes its 4096 codes into `tb` (its 1024 words of
// workgroup memory, row-major bytes: step group g gives rows 2g, 2g+1),
// then rebuilds the pixels in place in NPH phases separated by workgroup
// barriers (every slot takes every barrier: the phase count is uniform, a
// slot with fewer phases idles), the i32 scratch of a transform being the
// slot's stage, and writes the tile's rows out. No private arrays.
//
// Safety on corrupt input: loops are bounded by constants or host-written
// sizes; word, table, scratch and `tb` indices are clamped or masked;
// writes are checked against the bound buffer. A tile failing FORMAT.md §4
// (or with a bad index entry) sets bits in its segment's error word;
// finished tiles are counted, so a decode the device cut short is an error.

// ---- constants shared with src/wgpu/plan.rs: lib/segment.wgsl (prepended)

// ---- pipeline constants
override WARPS: u32 = 4u;        // tiles rebuilt together (32 invocations each)
override STAGE_U32: u32 = 512u;  // u32 of staged words per tile (>= 64 * LX_ROWS)
override LX_ROWS: u32 = 8u;      // tile rows of a transform's i32 scratch (8, 16, 32, 64)
override DQ: u32 = 3u;           // output: DT_* (0 F32, 1 F16, 2 BF16) pixel * scale; 3 int8 pixels
override NT: u32 = 32u * WARPS;
override STAGE_ALL: u32 = WARPS * STAGE_U32;
override TB_WORDS: u32 = 1024u * WARPS;
// phases of the rebuild (uniform): three per band of a transform tile
override NPH: u32 = 3u * (64u / LX_ROWS);

@group(0) @binding(0) var<storage, read> inp: array<u32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> outw: array<u32>;
@group(0) @binding(4) var<storage, read_write> errs: array<atomic<u32>>;

// the decode table (4096 slots) and, past it, the path's prefix words
var<workgroup> lut: array<u32, LUT_WORDS>;
var<workgroup> stage: array<u32, STAGE_ALL>;
// per slot: the tile's 4096 codes, then pixels (bytes, four to a word, row-major)
var<workgroup> tb: array<u32, TB_WORDS>;
// phases each slot's tile needs this round, and their maximum (uniform)
var<workgroup> slot_ph: array<u32, WARPS>;
var<workgroup> max_ph: u32;

// Per invocation (set once): tile slot, lane, lanes below as a mask, subgroup facts.
var<private> p_slot: u32;
var<private> p_lane: u32;
var<private> p_ltmask: u32;
var<private> p_sgi: u32;
var<private> p_sgs: u32;

// inp_at, plan_at, out_store: lib/rans_io.wgsl.

// Word at u16 index k of the stage (any k: clamped).
fn word_at(k: u32) -> u32 {
    return (stage[min(k >> 1u, STAGE_ALL - 1u)] >> ((k & 1u) << 4u)) & 0xffffu;
}

// One table-coded step of this lane from state x, the tile's next unread
// word being at u16 index kq: (symbol, new state, words the tile read).
fn coded_step(x: u32, mask: u32, pb: u32, kq: u32, s: u32) -> vec3<u32> {
    let e = lut[x & mask];
    let xn = (((e >> 8u) & 0xfffu) + 1u) * (x >> pb) + (e >> 20u);
    let need = xn < 0x10000u;
    let pc = prefix(need, s);
    let w = word_at(kq + pc.x);
    return vec3<u32>(e & 0xffu, select(xn, (xn << 16u) | w, need), pc.y);
}

// Decode the tile whose words sit at u16 index k0 of the stage (nw words)
// into the slot's codes `tb[base..base + 1024]`; returns the error bits of
// FORMAT.md §4 (0: good). A slot without a tile this round (nw = 0) takes
// the same steps.
fn decode_tile(k0: u32, nw: u32, base: u32, pb: u32, tail: u32) -> u32 {
    let lane = p_lane;
    let init = tile_init(k0, nw);
    var x = init.x;
    let p0 = init.y;

    let pbits = min(pb, 12u);
    let mask = (1u << pbits) - 1u;
    let tbits = clamp(tail & 0xffu, 1u, 8u);
    let tbase = (tail >> 8u) & 0xffu;
    let tmask = (1u << tbits) - 1u;
    let ntail = 16u / tbits;
    let ncoded = 128u - ntail;
    // groups of four table-coded steps
    let nfast = ncoded / 4u;
    let kb = k0 + p0;
    var q = 0u;
    // group g: tile rows 2g and 2g+1, lane l's four codes at word 32g + l
    for (var g = 0u; g < nfast; g++) {
        var acc = 0u;
        for (var i = 0u; i < 4u; i++) {
            let r = coded_step(x, mask, pbits, kb + q, 4u * g + i);
            x = r.y;
            q += r.z;
            acc |= r.x << (8u * i);
        }
        tb[base + 32u * g + lane] = acc;
    }
    // the last groups: table-coded steps, then the lane tails (uniform)
    for (var g = nfast; g < 32u; g++) {
        var acc = 0u;
        for (var i = 0u; i < 4u; i++) {
            let s = 4u * g + i;
            var sym: u32;
            if (s < ncoded) {
                let r = coded_step(x, mask, pbits, kb + q, s);
                x = r.y;
                q += r.z;
                sym = r.x;
            } else {
                sym = (((x >> (tbits * (127u - s))) & tmask) + tbase) & 0xffu;
            }
            acc |= sym << (8u * i);
        }
        tb[base + 32u * g + lane] = acc;
    }
    return init.z | tile_end(x, q, nw, p0, tbits, ntail);
}

// ---- the rebuild (FORMAT.md §5.1) of a slot's 64x64 tile in `tb`, by its
// 32 lanes; the port of rans_lossy.wgsl for one full tile per slot. The
// i32 scratch `lx` of a transform is the slot's stage (free after the decode).

fn lx_get(sb: u32, i: u32) -> i32 {
    return bitcast<i32>(stage[min(sb + min(i, 64u * LX_ROWS - 1u), STAGE_ALL - 1u)]);
}

fn lx_set(sb: u32, i: u32, v: i32) {
    stage[min(sb + min(i, 64u * LX_ROWS - 1u), STAGE_ALL - 1u)] = bitcast<u32>(v);
}

fn lx4(sb: u32, i: u32) -> vec4<i32> {
    return vec4<i32>(lx_get(sb, i), lx_get(sb, i + 1u), lx_get(sb, i + 2u), lx_get(sb, i + 3u));
}

fn lx_set4(sb: u32, i: u32, v: vec4<i32>) {
    lx_set(sb, i, v.x);
    lx_set(sb, i + 1u, v.y);
    lx_set(sb, i + 2u, v.z);
    lx_set(sb, i + 3u, v.w);
}

fn tb_get(base: u32, wi: u32) -> u32 {
    return tb[base + min(wi, 1023u)];
}

fn tb_put(base: u32, wi: u32, v: u32) {
    tb[base + min(wi, 1023u)] = v;
}

fn clamp_px4(v: vec4<i32>) -> vec4<i32> {
    return clamp(v, vec4<i32>(-127), vec4<i32>(127));
}

fn unpack_s8(v: u32) -> vec4<i32> {
    return vec4<i32>(sx8(v), sx8(v >> 8u), sx8(v >> 16u), sx8(v >> 24u));
}

fn pack_s8(v: vec4<i32>) -> u32 {
    let u = vec4<u32>(v) & vec4<u32>(0xffu);
    return u.x | (u.y << 8u) | (u.z << 16u) | (u.w << 24u);
}

fn deq_spatial4(q: vec4<i32>, step: u32) -> vec4<i32> {
    let m = vec4<i32>((vec4<u32>(abs(q)) * step + vec4<u32>(8u)) >> vec4<u32>(4u));
    return select(m, -m, q < vec4<i32>(0));
}

fn code_at(base: u32, k: u32) -> i32 {
    return sx8(tb_get(base, k >> 2u) >> (8u * (k & 3u)));
}

struct V8 {
    a: vec4<i32>,
    b: vec4<i32>,
}

fn inv_dct8(a: vec4<i32>, b: vec4<i32>) -> V8 {
    let o = vec4<i32>(89, 75, 50, 18) * a.y + vec4<i32>(75, -18, -89, -50) * a.w
        + vec4<i32>(50, -89, 18, 75) * b.y + vec4<i32>(18, -50, 75, -89) * b.w;
    let eo0 = 83 * a.z + 36 * b.z;
    let eo1 = 36 * a.z - 83 * b.z;
    let ee0 = 64 * a.x + 64 * b.x;
    let ee1 = 64 * a.x - 64 * b.x;
    let e = vec4<i32>(ee0 + eo0, ee1 + eo1, ee1 - eo1, ee0 - eo0);
    return V8(e + o, e.wzyx - o.wzyx);
}

fn inv4(dst: bool, s: vec4<i32>) -> vec4<i32> {
    if (dst) {
        return vec4<i32>(29, 55, 74, 84) * s.x + vec4<i32>(74, 74, 0, -74) * s.y
            + vec4<i32>(84, -29, -74, 55) * s.z + vec4<i32>(55, -84, 74, -29) * s.w;
    }
    let o0 = 83 * s.y + 36 * s.w;
    let o1 = 36 * s.y - 83 * s.w;
    let e0 = 64 * s.x + 64 * s.z;
    let e1 = 64 * s.x - 64 * s.z;
    return vec4<i32>(e0 + o0, e1 + o1, e1 - o1, e0 - o0);
}

// Phases of a tile of mode `mode` with predictor `pred`.
fn tile_phases(mode: u32, pred: u32) -> u32 {
    if (mode == M_SPATIAL) {
        return 1u;
    }
    return (64u / LX_ROWS) * select(3u, 2u, pred == 0u);
}

// SPATIAL, one phase: NONE per word, LEFT a row per lane, TOP four columns per lane.
fn spatial(base: u32, step: u32, pred: u32, lane: u32) {
    if (pred == 0u) {
        for (var wi = lane; wi < 1024u; wi += 32u) {
            tb_put(base, wi, pack_s8(clamp_px4(deq_spatial4(unpack_s8(tb_get(base, wi)), step))));
        }
        return;
    }
    if (pred == 1u) {
        for (var y = lane; y < 64u; y += 32u) {
            var prev = 0;
            for (var c = 0u; c < 16u; c++) {
                let wi = y * 16u + c;
                let d = deq_spatial4(unpack_s8(tb_get(base, wi)), step);
                let x0 = clamp(prev + d.x, -127, 127);
                let x1 = clamp(x0 + d.y, -127, 127);
                let x2 = clamp(x1 + d.z, -127, 127);
                let x3 = clamp(x2 + d.w, -127, 127);
                tb_put(base, wi, pack_s8(vec4<i32>(x0, x1, x2, x3)));
                prev = x3;
            }
        }
        return;
    }
    if (lane < 16u) {
        var prev = vec4<i32>(0);
        for (var y = 0u; y < 64u; y++) {
            let wi = y * 16u + lane;
            prev = clamp_px4(prev + deq_spatial4(unpack_s8(tb_get(base, wi)), step));
            tb_put(base, wi, pack_s8(prev));
        }
    }
}

// Phase `ph` of the rebuild of the slot's tile (rans_lossy.wgsl lossy_phase, w = h = 64).
fn rebuild_phase(base: u32, sb: u32, mode: u32, params: u32, lane: u32, ph: u32) {
    let step = params & 0xfffu;
    let pred = (params >> 12u) & 3u;
    if (mode == M_SPATIAL) {
        spatial(base, step, pred, lane);
        return;
    }
    let big = mode == M_DCT8;
    let dst = mode == M_DST4;
    let nb = select(4u, 8u, big);
    let st = i32(step);
    let per = select(3u, 2u, pred == 0u);
    let y0 = (ph / per) * LX_ROWS;
    let y1 = min(64u, y0 + LX_ROWS);
    let o = y0 * 64u;
    let sub = ph % per;
    if (sub == 0u) {
        // columns: job = (block row, tile column)
        let jobs = ((y1 - min(y0, y1)) / nb) * 64u;
        for (var c = lane; c < jobs; c += 32u) {
            let k = o + (c / 64u) * nb * 64u + c % 64u;
            let s0 = vec4<i32>(code_at(base, k), code_at(base, k + 64u), code_at(base, k + 128u), code_at(base, k + 192u)) * st;
            if (big) {
                let k4 = k + 256u;
                let s1 = vec4<i32>(code_at(base, k4), code_at(base, k4 + 64u), code_at(base, k4 + 128u), code_at(base, k4 + 192u)) * st;
                let e = inv_dct8(s0, s1);
                let f0 = (e.a + vec4<i32>(64)) >> vec4<u32>(7u);
                let f1 = (e.b + vec4<i32>(64)) >> vec4<u32>(7u);
                lx_set(sb, k - o, f0.x);
                lx_set(sb, k - o + 64u, f0.y);
                lx_set(sb, k - o + 128u, f0.z);
                lx_set(sb, k - o + 192u, f0.w);
                lx_set(sb, k4 - o, f1.x);
                lx_set(sb, k4 - o + 64u, f1.y);
                lx_set(sb, k4 - o + 128u, f1.z);
                lx_set(sb, k4 - o + 192u, f1.w);
            } else {
                let f = (inv4(dst, s0) + vec4<i32>(64)) >> vec4<u32>(7u);
                lx_set(sb, k - o, f.x);
                lx_set(sb, k - o + 64u, f.y);
                lx_set(sb, k - o + 128u, f.z);
                lx_set(sb, k - o + 192u, f.w);
            }
        }
        return;
    }
    if (sub == 1u) {
        // rows: job = (tile row, block column)
        let bw = 64u / nb;
        let jobs = (y1 - min(y0, y1)) * bw;
        for (var c = lane; c < jobs; c += 32u) {
            let kl = (c / bw) * 64u + (c % bw) * nb;
            let k = o + kl;
            var r0: vec4<i32>;
            var r1 = vec4<i32>(0);
            if (big) {
                let g8 = inv_dct8(lx4(sb, kl), lx4(sb, kl + 4u));
                r0 = (g8.a + vec4<i32>(2048)) >> vec4<u32>(12u);
                r1 = (g8.b + vec4<i32>(2048)) >> vec4<u32>(12u);
            } else {
                r0 = (inv4(dst, lx4(sb, kl)) + vec4<i32>(1024)) >> vec4<u32>(11u);
            }
            if (pred == 0u) {
                tb_put(base, k / 4u, pack_s8(clamp_px4(r0)));
                if (big) {
                    tb_put(base, k / 4u + 1u, pack_s8(clamp_px4(r1)));
                }
            } else {
                lx_set4(sb, kl, r0);
                if (big) {
                    lx_set4(sb, kl + 4u, r1);
                }
            }
        }
        return;
    }
    if (pred == 1u) {
        // LEFT: a row per lane, walking the blocks
        for (var y = y0 + lane; y < y1; y += 32u) {
            var left = 0;
            for (var c0 = 0u; c0 < 64u; c0 += nb) {
                let k = y * 64u + c0;
                let a = clamp_px4(vec4<i32>(left) + lx4(sb, k - o));
                tb_put(base, k / 4u, pack_s8(a));
                if (big) {
                    let b = clamp_px4(vec4<i32>(left) + lx4(sb, k - o + 4u));
                    tb_put(base, k / 4u + 1u, pack_s8(b));
                    left = b.w;
                } else {
                    left = a.w;
                }
            }
        }
        return;
    }
    // TOP: four columns per lane; the band above's last row is final in `tb`
    if (lane < 16u) {
        let cq = lane;
        var top = vec4<i32>(0);
        var last = vec4<i32>(0);
        if (y0 > 0u) {
            last = unpack_s8(tb_get(base, (o - 64u) / 4u + cq));
        }
        for (var y = y0; y < y1; y++) {
            if (y % nb == 0u) {
                top = last;
            }
            let k = y * 64u + 4u * cq;
            last = clamp_px4(top + lx4(sb, k - o));
            tb_put(base, k / 4u, pack_s8(last));
        }
    }
}

// Write the slot's pixels: row y of the tile starts at output element e_row + y * cols.
fn write_tile(base: u32, e_row: u32, cols: u32, scale: u32, lane: u32) {
    for (var wi = lane; wi < 1024u; wi += 32u) {
        let e = e_row + (wi / 16u) * cols + 4u * (wi % 16u);
        let px = tb_get(base, wi);
        if (DQ == 3u) {
            out_store(e >> 2u, px);
        } else {
            let v0 = from_f32_bits(mul_i8_f32(px & 0xffu, scale), DQ);
            let v1 = from_f32_bits(mul_i8_f32((px >> 8u) & 0xffu, scale), DQ);
            let v2 = from_f32_bits(mul_i8_f32((px >> 16u) & 0xffu, scale), DQ);
            let v3 = from_f32_bits(mul_i8_f32(px >> 24u, scale), DQ);
            if (DQ == DT_F32) {
                out_store(e, v0);
                out_store(e + 1u, v1);
                out_store(e + 2u, v2);
                out_store(e + 3u, v3);
            } else {
                out_store(e >> 1u, (v0 & 0xffffu) | (v1 << 16u));
                out_store((e >> 1u) + 1u, (v2 & 0xffffu) | (v3 << 16u));
            }
        }
    }
}

fn fast_main(li: u32, vl: u32, wg: u32, bad: bool) {
    p_slot = vl / 32u;
    p_lane = vl % 32u;
    p_ltmask = (1u << p_lane) - 1u;
    let slot = p_slot;
    let lane = p_lane;
    let gb = group_record(wg);
    let wl = wg - min(grp_at(gb), wg);
    let wgc = max(grp_at(gb + 1u), 1u);
    let list0 = grp_at(gb + 2u);
    let count = grp_at(gb + 3u);
    let lutoff = grp_at(gb + 4u);
    let sb = HDR_WORDS + grp_at(gb + 5u) * SEG_WORDS;
    let rounds = grp_at(gb + 6u);
    // the segment, as scalars
    let tile_first = plan_at(sb + S_TILE_FIRST);
    let tile_count = plan_at(sb + S_TILE_COUNT);
    let cols = plan_at(sb + S_COLS);
    let tiles_x = max(plan_at(sb + S_TILES_X), 1u);
    let pb = plan_at(sb + S_PROB_BITS);
    let tail = plan_at(sb + S_TAIL);
    let scale_base = plan_at(sb + S_SCALE_BASE);
    let ib = plan_at(sb + S_INDEX_BASE);
    let stream_base = plan_at(sb + S_STREAM_BASE);
    let worg = plan_at(sb + S_WORD_ORIGIN);
    let wlo = plan_at(sb + S_WORD_LO);
    let whi = max(plan_at(sb + S_WORD_HI), wlo);
    let adj = plan_at(sb + S_OUT_ADJ);
    let row_org = plan_at(sb + S_ROW_ORG);
    let eslot = plan_at(sb + S_ERR_SLOT);
    // the decode table: eight loads in flight per invocation
    copy_lut(lutoff, 4096u, LUT_WORDS, li);
    let st0 = slot * STAGE_U32;
    var done = 0u;
    for (var r = 0u; r < rounds; r++) {
        // this slot's tile: entry e of the group's list
        let e = (r * wgc + wl) * WARPS + slot;
        let live = e < count;
        let rel = min(plan_at(list0 + min(e, max(count, 1u) - 1u)), max(tile_count, 1u) - 1u);
        let off = inp_at(ib + 2u * rel);
        let tmeta = inp_at(ib + 2u * rel + 1u);
        var end = whi;
        if (rel + 1u < tile_count) {
            end = inp_at(ib + 2u * rel + 2u);
        }
        let start = clamp(off, wlo, whi);
        var nw = clamp(end, start, whi) - start;
        let odd = (start - min(worg, start)) & 1u;
        let u0 = stream_base + ((start - min(worg, start)) >> 1u);
        if (!live) {
            nw = 0u;
        }
        // stage the tile's words: sixteen loads in flight per lane
        let len = min((odd + nw + 1u) >> 1u, STAGE_U32);
        stage_tile(u0, st0, len, lane);
        prefix_reset(li);
        workgroupBarrier();
        let base = slot * 1024u;
        var err = decode_tile(2u * st0 + odd, nw, base, pb, tail);
        // the tile's type (the host lists only full 64x64 lossy tiles)
        let mode = tmeta & 15u;
        let params = tmeta >> 8u;
        if (mode < M_SPATIAL || mode > M_DST4 || (params & 0xfffu) == 0u || ((params >> 12u) & 3u) == 3u || (params >> 14u) != 0u) {
            err |= E_INDEX;
        }
        let nph = select(0u, tile_phases(mode, (params >> 12u) & 3u), live);
        if (lane == 0u) {
            slot_ph[slot] = nph;
        }
        // the stage becomes the transform's scratch: every lane has read its words
        workgroupBarrier();
        if (li == 0u) {
            var m = 0u;
            for (var i = 0u; i < WARPS; i++) {
                m = max(m, slot_ph[i]);
            }
            max_ph = min(m, NPH);
        }
        // only as many phases as the workgroup's slowest tile needs (the host
        // sorts tiles by type, so that a workgroup's tiles tend to agree)
        let wph = workgroupUniformLoad(&max_ph);
        for (var ph = 0u; ph < wph; ph++) {
            if (ph < nph) {
                rebuild_phase(base, st0, mode, params, lane, ph);
            }
            workgroupBarrier();
        }
        let t = tile_first + rel;
        let r0 = (t / tiles_x) * 64u;
        let c0 = (t % tiles_x) * 64u;
        if (live) {
            let e_row = (r0 - min(row_org, r0)) * cols + c0 + adj;
            write_tile(base, e_row, cols, inp_at(scale_base + rel), lane);
        }
        if (bad) {
            err |= E_SUBGROUP;
        }
        if (live && err != 0u) {
            atomicOr(&errs[3u * eslot], err);
            atomicMin(&errs[3u * eslot + 1u], t);
        }
        if (live) {
            done += 1u;
        }
        workgroupBarrier();
    }
    // count finished tiles: a device that stops a shader early is caught
    if (lane == 0u && done > 0u) {
        atomicAdd(&errs[3u * eslot + 2u], done);
    }
}

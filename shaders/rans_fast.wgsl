// The fast tile decoder: the dominant case only, kept small so that the
// driver's compiler keeps everything in registers.
//
// What it decodes (the host's list, plan.rs `fast_tile`): full tiles (64x64
// or 1x4096, 4096 symbols) of mode NONE or PLANAR whose words fit the stage,
// of aligned planes, written as bytes (int8 / U8 / quant codes) or merged
// float-split floats (BF16, F16, F32, optionally cast). Every other tile goes
// to the general kernel (rans_decode.wgsl), which skips the listed ones.
//
// The source handed to the driver is  lib_float.wgsl, lib/segment.wgsl,
// lib/rans_io.wgsl + this file + lib/fast_tile.wgsl (tile_word, tile_init,
// tile_end, shared with rans_fast_lossy.wgsl) + one of
//   rans_fast_subgroup.wgsl   (a tile's word offsets by subgroup ballot)
//   rans_fast_workgroup.wgsl  (the same through workgroup memory)
// which define `prefix` and the entry point `main`.
//
// Work: the host lists the fast tiles of each (segment, table) pair, a
// "group", and gives each group workgroups in proportion to its tiles. A
// workgroup has WARPS slots of 32 invocations; it copies its group's decode
// table (u32 per slot, built on the host) into workgroup memory once, then
// runs `rounds` rounds: in each, slot k takes ILP tiles of the list, copies
// each tile's words to its stage with coalesced loads (unless DIRECT), and
// decodes them, one symbol per lane per step, four steps per group; every
// group writes one u32 of bytes (or two/four of floats) per lane. No private arrays, no
// arrays passed by value, no per-tile table work.
//
// Two forms that matter on NVIDIA (measured on the H100, BENCHMARKS.md):
//   ILP 2   each slot takes two tiles a round and decodes them step by step
//           interleaved: two independent dependency chains (table read,
//           ballot, word read) per lane;
//   DIRECT  words are read from `inp` through the cache instead of a stage:
//           workgroup memory is the table alone, and with subgroups of 32
//           the tile loop has no barrier at all.
// The driver caps registers by the workgroup size, and the decode loop is
// latency bound, so big workgroups (16-32 slots) of the direct form run
// several times more tiles at once per SM than 8 staged slots did.
//
// Safety on corrupt input: loops are bounded by host-written sizes or
// constants; word reads are clamped to the stage; table indices are masked
// to 12 bits; writes are checked against the bound buffer. A tile failing
// FORMAT.md §4 sets bits in its segment's error word; finished tiles are
// counted (the general kernel counts the others), so a decode the device cut
// short is an error.

// ---- constants shared with src/wgpu/plan.rs: lib/segment.wgsl (prepended)

// ---- pipeline constants
override WARPS: u32 = 8u;        // tiles decoded together (32 invocations each)
override STAGE_U32: u32 = 1024u; // u32 of staged words per tile
override OUT: u32 = 0u;          // 0: bytes; 1: float-split merge of SRC, written as DST
override SRC: u32 = 2u;          // DT_* (lib_float.wgsl)
override DST: u32 = 2u;
// Measurement probes (bench only; outputs are wrong): 0 none; 1 no output
// writes; 2 no table lookups (a constant entry: the renormalisation pattern
// changes too); 3 words read from global memory, no staging (DIRECT with the
// end checks skipped); 4 no decode (stage or read words, write them).
override PROBE: u32 = 0u;
// Tiles per slot, decoded interleaved (1 or 2): every lane carries one state
// of each, so two independent dependency chains hide each other's latency.
override ILP: u32 = 1u;
// 1: a tile's words are read from `inp` (through the cache), not staged in
// workgroup memory: no stage, so more workgroups fit an SM, and (subgroups
// of 32) no barrier at all in the tile loop. STAGE_U32 is then 0.
override DIRECT: u32 = 0u;
override NT: u32 = 32u * WARPS;
override STAGE_ALL: u32 = select(WARPS * ILP * STAGE_U32, 1u, STAGE_U32 == 0u);

@group(0) @binding(0) var<storage, read> inp: array<u32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read> grp: array<u32>;
@group(0) @binding(3) var<storage, read_write> outw: array<u32>;
@group(0) @binding(4) var<storage, read_write> errs: array<atomic<u32>>;

// the decode table (4096 slots) and, past it, the path's prefix words
var<workgroup> lut: array<u32, LUT_WORDS>;
var<workgroup> stage: array<u32, STAGE_ALL>;

// Per invocation (set once): tile slot, lane, lanes below as a mask, subgroup facts.
var<private> p_slot: u32;
var<private> p_lane: u32;
var<private> p_ltmask: u32;
var<private> p_sgi: u32;
var<private> p_sgs: u32;
// PROBE 1: what the output would have been
var<private> p_sink: u32;

// inp_at, plan_at, out_store: lib/rans_io.wgsl.

// Word at u16 index k of the stage (any k: clamped), or of `inp` (PROBE 3).
fn word_at(k: u32) -> u32 {
    if (PROBE == 3u || DIRECT == 1u) {
        return (inp_at(k >> 1u) >> ((k & 1u) << 4u)) & 0xffffu;
    }
    return (stage[min(k >> 1u, STAGE_ALL - 1u)] >> ((k & 1u) << 4u)) & 0xffffu;
}

// One table-coded step of this lane from state x, the tile's next unread
// word being at u16 index kq: (symbol, new state, words the tile read).
// `j`: which of the slot's ILP tiles.
fn coded_step(x: u32, mask: u32, pb: u32, kq: u32, s: u32, lconst: u32, j: u32) -> vec3<u32> {
    var e = lconst;
    if (PROBE != 2u) {
        e = lut[x & mask];
    }
    let xn = (((e >> 8u) & 0xfffu) + 1u) * (x >> pb) + (e >> 20u);
    let need = xn < 0x10000u;
    let pc = prefix(need, s, j);
    return vec3<u32>(e & 0xffu, select(xn, merge_word(xn, kq + pc.x), need), pc.y);
}

// The state xn with the u16 word at index k shifted in: (xn << 16) | word.
// DIRECT: a funnel shift of the word's u32, shifted to put the word on
// top, without masking (as the compressed GEMV's coded step, 9c90435).
fn merge_word(xn: u32, k: u32) -> u32 {
    if (PROBE == 3u || DIRECT == 1u) {
        return (xn << 16u) | ((inp_at(k >> 1u) << ((~k & 1u) << 4u)) >> 16u);
    }
    return (xn << 16u) | word_at(k);
}

// PLANAR: add the prediction to the four symbols of tile symbols k0..k0+3
// (one row: k0 % 4 == 0 and the tile width is a multiple of 4).
fn planar4(k0: u32, w: u32, params: u32, sym4: u32) -> u32 {
    let pa = sx8(params);
    let pb = sx8(params >> 8u);
    let pc = sx8(params >> 16u);
    let base = pa * i32(k0 / w) + pb * i32(k0 % w) + 16 * pc + 8;
    var o = 0u;
    for (var b = 0u; b < 4u; b++) {
        let p = clamp((base + pb * i32(b)) >> 4u, -128, 127);
        o |= ((((sym4 >> (8u * b)) & 0xffu) + u32(p)) & 0xffu) << (8u * b);
    }
    return o;
}

// A float-split byte b merged with its raw bits r into SRC's bits, cast to DST.
fn merge1(b: u32, r: u32) -> u32 {
    var v: u32;
    if (SRC == DT_BF16) {
        v = ((r & 0x80u) << 8u) | (b << 7u) | (r & 0x7fu);
    } else if (SRC == DT_F16) {
        v = (b << 8u) | (r & 0xffu);
    } else {
        v = ((r >> 23u) << 31u) | (b << 23u) | (r & 0x7fffffu);
    }
    if (DST != SRC) {
        v = from_f32_bits(to_f32_bits(v, SRC), DST);
    }
    return v;
}

// The raw bits of a group (float-split): raw element re (a multiple of 4) on.
fn aux_at(raw_base: u32, re: u32) -> vec3<u32> {
    if (OUT != 1u || PROBE == 4u) {
        return vec3<u32>(0u);
    }
    if (SRC == DT_F32) {
        let b = raw_base + (re >> 2u) * 3u;
        return vec3<u32>(inp_at(b), inp_at(b + 1u), inp_at(b + 2u));
    }
    return vec3<u32>(inp_at(raw_base + (re >> 2u)), 0u, 0u);
}

// Write the four symbols `acc` of window element e on (e % 4 == 0).
fn emit(e: u32, acc: u32, aux: vec3<u32>, xr: u32) {
    if (OUT == 0u) {
        if (PROBE == 1u) {
            p_sink ^= acc ^ xr;
        } else {
            out_store(e >> 2u, acc ^ xr);
        }
        return;
    }
    var r0: u32;
    var r1: u32;
    var r2: u32;
    var r3: u32;
    if (SRC == DT_F32) {
        r0 = aux.x & 0xffffffu;
        r1 = (aux.x >> 24u) | ((aux.y & 0xffffu) << 8u);
        r2 = (aux.y >> 16u) | ((aux.z & 0xffu) << 16u);
        r3 = aux.z >> 8u;
    } else {
        r0 = aux.x & 0xffu;
        r1 = (aux.x >> 8u) & 0xffu;
        r2 = (aux.x >> 16u) & 0xffu;
        r3 = aux.x >> 24u;
    }
    let v0 = merge1(acc & 0xffu, r0);
    let v1 = merge1((acc >> 8u) & 0xffu, r1);
    let v2 = merge1((acc >> 16u) & 0xffu, r2);
    let v3 = merge1(acc >> 24u, r3);
    if (PROBE == 1u) {
        p_sink ^= v0 ^ v1 ^ v2 ^ v3;
        return;
    }
    if (DST == DT_F32) {
        out_store(e, v0);
        out_store(e + 1u, v1);
        out_store(e + 2u, v2);
        out_store(e + 3u, v3);
    } else {
        out_store(e >> 1u, (v0 & 0xffffu) | (v1 << 16u));
        out_store((e >> 1u) + 1u, (v2 & 0xffffu) | (v3 << 16u));
    }
}


// One tile of a slot in a round.
struct Job {
    live: bool,
    // u16 index of its first word: in the stage, or (DIRECT) in `inp`
    k0: u32,
    nw: u32,
    tmeta: u32,
    // tile number in the segment
    t: u32,
    // the lane's first element in the window, and its raw element (float-split)
    e0: u32,
    re0: u32,
}

// The segment's fields (set once per workgroup).
var<private> g_tile_first: u32;
var<private> g_tile_count: u32;
var<private> g_cols: u32;
var<private> g_tile_h: u32;
var<private> g_tile_w: u32;
var<private> g_tiles_x: u32;
var<private> g_ib: u32;
var<private> g_stream_base: u32;
var<private> g_worg: u32;
var<private> g_wlo: u32;
var<private> g_whi: u32;
var<private> g_adj: u32;
var<private> g_row_org: u32;
var<private> g_col_org: u32;

// Entry e of the group's list (count entries from list0) as this slot's
// tile j, its words staged at stage word st0 (unless DIRECT).
fn make_job(e: u32, count: u32, list0: u32, st0: u32) -> Job {
    let lane = p_lane;
    var jb: Job;
    jb.live = e < count;
    let rel = min(plan_at(list0 + min(e, max(count, 1u) - 1u)), max(g_tile_count, 1u) - 1u);
    let off = inp_at(g_ib + 2u * rel);
    jb.tmeta = inp_at(g_ib + 2u * rel + 1u);
    var end = g_whi;
    if (rel + 1u < g_tile_count) {
        end = inp_at(g_ib + 2u * rel + 2u);
    }
    let start = clamp(off, g_wlo, g_whi);
    var nw = clamp(end, start, g_whi) - start;
    let odd = (start - min(g_worg, start)) & 1u;
    let u0 = g_stream_base + ((start - min(g_worg, start)) >> 1u);
    if (!jb.live) {
        nw = 0u;
    }
    jb.nw = nw;
    // stage the tile's words: sixteen loads in flight per lane
    let len = min((odd + nw + 1u) >> 1u, STAGE_U32);
    if (PROBE != 3u && DIRECT == 0u) {
        stage_tile(u0, st0, len, lane);
    }
    jb.k0 = 2u * st0 + odd;
    if (PROBE == 3u || DIRECT == 1u) {
        jb.k0 = 2u * u0 + odd;
    }
    let t = g_tile_first + rel;
    jb.t = t;
    let r0 = (t / g_tiles_x) * g_tile_h;
    let c0 = (t % g_tiles_x) * g_tile_w;
    // 64x64 tiles write rows 2g and 2g+1 (lanes 0-15 and 16-31)
    jb.re0 = c0 - min(g_col_org, c0) + 4u * lane;
    jb.e0 = jb.re0 + g_adj;
    if (g_tile_h > 1u) {
        jb.e0 = (r0 - min(g_row_org, r0) + (lane >> 4u)) * g_cols + c0 + 4u * (lane & 15u) + g_adj;
    }
    return jb;
}

// Decode the slot's tiles a and (ILP 2) b, interleaved step by step, and
// write them; returns their error bits of FORMAT.md §4 (0: good). A tile
// that is not `live` (no tile this round) still takes part in the path's
// barriers, writing nothing.
fn decode_tiles(a: Job, b: Job, estride: u32, raw_base: u32, pb: u32, tail: u32, xr: u32) -> vec2<u32> {
    let lane = p_lane;
    let ia = tile_init(a.k0, a.nw);
    var ib = vec3<u32>(0u);
    if (ILP > 1u) {
        ib = tile_init(b.k0, b.nw);
    }
    var xa = ia.x;
    var xb = ib.x;
    let pbits = min(pb, 12u);
    let mask = (1u << pbits) - 1u;
    let tbits = clamp(tail & 0xffu, 1u, 8u);
    let tbase = (tail >> 8u) & 0xffu;
    let tmask = (1u << tbits) - 1u;
    let ntail = 16u / tbits;
    let ncoded = 128u - ntail;
    // groups of four table-coded steps
    let nfast = ncoded / 4u;
    let pla = (a.tmeta & 15u) == M_PLANAR;
    let plb = (b.tmeta & 15u) == M_PLANAR;
    let tile_w = g_tile_w;
    let kba = a.k0 + ia.y;
    let kbb = b.k0 + ib.y;
    var lconst = 0u;
    if (PROBE == 2u) {
        lconst = lut[2048u & mask];
    }
    var qa = 0u;
    var qb = 0u;
    var auxa = aux_at(raw_base, a.re0);
    var auxb = vec3<u32>(0u);
    if (ILP > 1u) {
        auxb = aux_at(raw_base, b.re0);
    }
    for (var g = 0u; g < nfast; g++) {
        // the next group's raw bits, loaded a group ahead
        let auxna = aux_at(raw_base, a.re0 + 128u * (g + 1u));
        var auxnb = vec3<u32>(0u);
        if (ILP > 1u) {
            auxnb = aux_at(raw_base, b.re0 + 128u * (g + 1u));
        }
        var acca = 0u;
        var accb = 0u;
        if (PROBE == 4u) {
            acca = word_at(kba + 64u * g + 2u * lane) ^ xa;
            accb = word_at(kbb + 64u * g + 2u * lane) ^ xb;
        } else {
            for (var i = 0u; i < 4u; i++) {
                let ra = coded_step(xa, mask, pbits, kba + qa, 4u * g + i, lconst, 0u);
                if (ILP > 1u) {
                    let rb = coded_step(xb, mask, pbits, kbb + qb, 4u * g + i, lconst, 1u);
                    xb = rb.y;
                    qb += rb.z;
                    accb |= rb.x << (8u * i);
                }
                xa = ra.y;
                qa += ra.z;
                acca |= ra.x << (8u * i);
            }
        }
        if (pla) {
            acca = planar4(128u * g + 4u * lane, tile_w, a.tmeta >> 8u, acca);
        }
        if (a.live) {
            emit(a.e0 + g * estride, acca, auxa, xr);
        }
        if (ILP > 1u) {
            if (plb) {
                accb = planar4(128u * g + 4u * lane, tile_w, b.tmeta >> 8u, accb);
            }
            if (b.live) {
                emit(b.e0 + g * estride, accb, auxb, xr);
            }
        }
        auxa = auxna;
        auxb = auxnb;
    }
    // the last groups: table-coded steps, then the lane tails (uniform)
    for (var g = nfast; g < 32u; g++) {
        var acca = 0u;
        var accb = 0u;
        for (var i = 0u; i < 4u; i++) {
            let s = 4u * g + i;
            var syma: u32;
            var symb = 0u;
            if (s < ncoded) {
                let ra = coded_step(xa, mask, pbits, kba + qa, s, lconst, 0u);
                if (ILP > 1u) {
                    let rb = coded_step(xb, mask, pbits, kbb + qb, s, lconst, 1u);
                    xb = rb.y;
                    qb += rb.z;
                    symb = rb.x;
                }
                xa = ra.y;
                qa += ra.z;
                syma = ra.x;
            } else {
                syma = (((xa >> (tbits * (127u - s))) & tmask) + tbase) & 0xffu;
                symb = (((xb >> (tbits * (127u - s))) & tmask) + tbase) & 0xffu;
            }
            acca |= syma << (8u * i);
            accb |= symb << (8u * i);
        }
        if (pla) {
            acca = planar4(128u * g + 4u * lane, tile_w, a.tmeta >> 8u, acca);
        }
        if (a.live) {
            emit(a.e0 + g * estride, acca, aux_at(raw_base, a.re0 + 128u * g), xr);
        }
        if (ILP > 1u) {
            if (plb) {
                accb = planar4(128u * g + 4u * lane, tile_w, b.tmeta >> 8u, accb);
            }
            if (b.live) {
                emit(b.e0 + g * estride, accb, aux_at(raw_base, b.re0 + 128u * g), xr);
            }
        }
    }
    if (PROBE != 0u) {
        return vec2<u32>(0u);
    }
    var eb = 0u;
    if (ILP > 1u) {
        eb = ib.z | tile_end(xb, qb, b.nw, ib.y, tbits, ntail);
    }
    return vec2<u32>(ia.z | tile_end(xa, qa, a.nw, ia.y, tbits, ntail), eb);
}

fn report(jb: Job, err: u32, eslot: u32) {
    if (jb.live && err != 0u) {
        atomicOr(&errs[3u * eslot], err);
        atomicMin(&errs[3u * eslot + 1u], jb.t);
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
    // the segment
    g_tile_first = plan_at(sb + S_TILE_FIRST);
    g_tile_count = plan_at(sb + S_TILE_COUNT);
    g_cols = plan_at(sb + S_COLS);
    g_tile_h = plan_at(sb + S_TILE_H);
    g_tile_w = max(plan_at(sb + S_TILE_W), 1u);
    g_tiles_x = max(plan_at(sb + S_TILES_X), 1u);
    let pb = plan_at(sb + S_PROB_BITS);
    let tail = plan_at(sb + S_TAIL);
    g_ib = plan_at(sb + S_INDEX_BASE);
    g_stream_base = plan_at(sb + S_STREAM_BASE);
    g_worg = plan_at(sb + S_WORD_ORIGIN);
    g_wlo = plan_at(sb + S_WORD_LO);
    g_whi = max(plan_at(sb + S_WORD_HI), g_wlo);
    let xr = select(0u, 0x80808080u, (plan_at(sb + S_KIND) & F_XOR80) != 0u);
    g_adj = plan_at(sb + S_OUT_ADJ);
    g_row_org = plan_at(sb + S_ROW_ORG);
    g_col_org = plan_at(sb + S_COL_ORG);
    let raw_base = plan_at(sb + S_RAW_BASE);
    let eslot = plan_at(sb + S_ERR_SLOT);
    var estride = 128u;
    if (g_tile_h > 1u) {
        estride = 2u * g_cols;
    }
    // the decode table: eight loads in flight per invocation
    copy_lut(lutoff, 4096u, LUT_WORDS, li);
    workgroupBarrier();
    var done = 0u;
    for (var r = 0u; r < rounds; r++) {
        // this slot's tiles: entries e and e + 1 (ILP 2) of the group's list
        let e = ((r * wgc + wl) * WARPS + slot) * ILP;
        let a = make_job(e, count, list0, (slot * ILP) * STAGE_U32);
        var b = a;
        if (ILP > 1u) {
            b = make_job(e + 1u, count, list0, (slot * ILP + 1u) * STAGE_U32);
        }
        if (!BARRIER_FREE) {
            prefix_reset(li);
            workgroupBarrier();
        }
        var err = decode_tiles(a, b, estride, raw_base, pb, tail, xr);
        if (bad) {
            err |= vec2<u32>(E_SUBGROUP);
        }
        report(a, err.x, eslot);
        if (a.live) {
            done += 1u;
        }
        if (ILP > 1u) {
            report(b, err.y, eslot);
            if (b.live) {
                done += 1u;
            }
        }
        if (!BARRIER_FREE) {
            workgroupBarrier();
        }
    }
    // count finished tiles: a device that stops a shader early is caught
    if (lane == 0u && done > 0u) {
        atomicAdd(&errs[3u * eslot + 2u], done);
    }
    if (PROBE == 1u && p_sink == 0x9e3779b9u) {
        out_store(0u, p_sink);
    }
}

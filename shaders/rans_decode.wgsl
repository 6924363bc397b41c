// Fused tile decode (CODEC.md §3, §4, §6, §7; docs/FORMAT.md §4, §5): each
// tile's compressed words are read once, rANS-decoded, rebuilt (predictor
// modes) in workgroup memory, rendered (U8 flip, float-split merge,
// dequantisation) and written once.
//
// This file is the body shared by both paths. The source handed to the
// driver is  lib_float.wgsl + this file + one of
//   rans_decode_subgroup.wgsl   (the shared word stream by subgroup ballot)
//   rans_decode_workgroup.wgsl  (the same by a workgroup-memory prefix)
// which define `tile_prefix` and the entry point `main`.
//
// Work: the host cuts the planes to decode into segments (a plane, or a
// chunk of one) and each segment into units of TILES tiles. A workgroup has
// TILES x 32 invocations; virtual lane v works on lane v % 32 of tile v / 32
// of a unit. Workgroups are persistent: workgroup w takes units w, w + W, ...
// and builds a segment's lookup tables in workgroup memory when its segment
// changes.
//
// Safety on corrupt input: every loop is bounded by a tile's symbol count or
// by sizes the host wrote; every word read is clamped to the tile's word
// range, every table index to the table count, every write to the bound
// buffer. A tile that fails a check of FORMAT.md §4 sets bits in its
// segment's error word; the host reports the tensor and the first bad tile.
// Every finished tile is counted, so that a decode the device cut short
// (llvmpipe stops the loops of an invocation after 65535 iterations in all)
// is an error too, never silently wrong bytes.

// ---- constants shared with src/wgpu/plan.rs: lib/segment.wgsl (prepended)

// ---- pipeline constants
override TILES: u32 = 1u;          // tiles decoded together per workgroup
override LUT_KIND: u32 = 0u;       // 0: u32 per slot (16 KiB a table); 1: u8 per slot + u32 per symbol (5 KiB)
override LUT_TABLES: u32 = 1u;     // tables held in workgroup memory (1..4)
override STAGE: bool = true;       // copy each tile's words to workgroup memory first
override STAGE_WORDS: u32 = 4096u; // u16 words staged per tile (even); longer tiles read global memory
override MODES: bool = true;       // reconstruction buffers (false: every tile of the dispatch is NONE)
override LOSSY: bool = false;      // lossy tiles (needs MODES): rans_lossy.wgsl
// derived sizes
override NT: u32 = 32u * TILES;
override LUT_SIZE: u32 = select(LUT_TABLES * 1280u, LUT_TABLES * 4096u, LUT_KIND == 0u);
override STAGE_U32: u32 = select(1u, TILES * (STAGE_WORDS / 2u), STAGE);  // one contiguous stage per unit
override TB_SIZE: u32 = select(1u, TILES * 1024u, MODES);
// rows of a lossy tile in the i32 transform scratch (8, 16, 32 or 64), which
// the stage area holds (LX_ROWS x 64 words)
override LX_ROWS: u32 = 64u;
override STAGE_ALLOC: u32 = max(STAGE_U32, select(1u, LX_ROWS * 64u, LOSSY));

@group(0) @binding(0) var<storage, read> inp: array<u32>;
@group(0) @binding(1) var<storage, read> plan: array<u32>;
@group(0) @binding(2) var<storage, read_write> outw: array<u32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<u32>;
@group(0) @binding(4) var<storage, read_write> errs: array<atomic<u32>>;

var<workgroup> lut: array<u32, LUT_SIZE>;
var<workgroup> stage: array<u32, STAGE_ALLOC>;
var<workgroup> tb: array<atomic<u32>, TB_SIZE>;
var<workgroup> wsum: array<u32, NT>;

// The current segment (uniform across the workgroup).
var<private> g: array<u32, 32>;

struct Tile {
    valid: bool,
    t: u32,        // tile number in the plane
    r0: u32,
    c0: u32,
    h: u32,
    w: u32,
    n: u32,
    mode: u32,
    table: u32,
    params: u32,
    start: u32,    // first word (plane word index)
    nw: u32,       // words
    bad_index: bool,
}

// inp_at, plan_at, out_store: lib/rans_io.wgsl.

fn find_segment(u: u32) -> u32 {
    // the last segment whose first unit is <= u
    let nseg = plan_at(0u);
    var lo = 0u;
    var hi = max(nseg, 1u) - 1u;
    for (var it = 0u; it < 32u && lo < hi; it++) {
        let mid = (lo + hi + 1u) / 2u;
        if (plan_at(HDR_WORDS + mid * SEG_WORDS + S_UNIT_START) <= u) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return lo;
}

fn load_segment(s: u32) {
    // constant indices, so that the fields can live in registers
    let b = HDR_WORDS + s * SEG_WORDS;
    g = array<u32, 32>(
        plan_at(b + 0u),
        plan_at(b + 1u),
        plan_at(b + 2u),
        plan_at(b + 3u),
        plan_at(b + 4u),
        plan_at(b + 5u),
        plan_at(b + 6u),
        plan_at(b + 7u),
        plan_at(b + 8u),
        plan_at(b + 9u),
        plan_at(b + 10u),
        plan_at(b + 11u),
        plan_at(b + 12u),
        plan_at(b + 13u),
        plan_at(b + 14u),
        plan_at(b + 15u),
        plan_at(b + 16u),
        plan_at(b + 17u),
        plan_at(b + 18u),
        plan_at(b + 19u),
        plan_at(b + 20u),
        plan_at(b + 21u),
        plan_at(b + 22u),
        plan_at(b + 23u),
        plan_at(b + 24u),
        plan_at(b + 25u),
        plan_at(b + 26u),
        plan_at(b + 27u),
        plan_at(b + 28u),
        plan_at(b + 29u),
        plan_at(b + 30u),
        plan_at(b + 31u),
    );
}

fn table_entry(t: u32, s: u32) -> u32 {
    // freq | cum << 16
    return plan_at(g[S_TABLE_OFF] + t * 256u + s);
}

// The segment's tables, staged in the stage area while the lookup tables are
// built (it is free then), or read from the plan when it is too small.
fn tab_at(t: u32, sym: u32) -> u32 {
    if (STAGE_U32 >= LUT_TABLES * 256u) {
        return stage[min(t * 256u + sym, STAGE_U32 - 1u)];
    }
    return table_entry(t, sym);
}

// The symbol whose range holds `slot` in table t: the last with cum <= slot.
fn find_sym(t: u32, slot: u32) -> u32 {
    var lo = 0u;
    var hi = 255u;
    for (var it = 0u; it < 8u; it++) {
        let mid = (lo + hi + 1u) / 2u;
        if ((tab_at(t, mid) >> 16u) <= slot) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return lo;
}

// Build the segment's lookup tables (all invocations; uniform). Each
// invocation fills a run of slots: one search, then a walk.
fn build_lut(li: u32) {
    let nt = min(g[S_NTABLES], LUT_TABLES);
    if (LUT_KIND == 0u && g[S_LUT_OFF] != 0u) {
        // the host built them: a coalesced copy, eight loads in flight
        copy_lut(g[S_LUT_OFF], nt * 4096u, LUT_SIZE, li);
        return;
    }
    let pb = min(g[S_PROB_BITS], 12u);
    let m = 1u << pb;
    if (STAGE_U32 >= LUT_TABLES * 256u) {
        for (var i = li; i < nt * 256u; i += NT) {
            stage[i] = table_entry(i / 256u, i % 256u);
        }
        workgroupBarrier();
    }
    // kind 0 fills slots; kind 1 fills words of four slots
    let per_word = select(4u, 1u, LUT_KIND == 0u);
    let units = nt * (m / per_word);
    let run = (units + NT - 1u) / NT;
    let u0 = min(li * run, units);
    let u1 = min(u0 + run, units);
    var t = 0xffffffffu;
    var sym = 0u;
    for (var u = u0; u < u1; u++) {
        let ut = u / (m / per_word);
        let s0 = (u % (m / per_word)) * per_word;
        if (ut != t) {
            t = ut;
            sym = find_sym(t, s0);
        }
        var word = 0u;
        for (var b = 0u; b < per_word; b++) {
            let slot = s0 + b;
            // walk to the symbol whose range holds the slot (at most 256 steps in all)
            for (var it = 0u; it < 256u && sym < 255u; it++) {
                let e = tab_at(t, sym);
                if (slot < (e >> 16u) + (e & 0xffffu)) {
                    break;
                }
                sym += 1u;
            }
            if (LUT_KIND == 0u) {
                let e = tab_at(t, sym);
                let f = max(e & 0xffffu, 1u);
                lut[min(t * 4096u + slot, LUT_SIZE - 1u)] = sym | ((f - 1u) << 8u) | (((slot - (e >> 16u)) & 0xfffu) << 20u);
            } else {
                word |= sym << (8u * b);
            }
        }
        if (LUT_KIND != 0u) {
            lut[min(t * 1024u + s0 / 4u, LUT_SIZE - 1u)] = word;
        }
    }
    if (LUT_KIND != 0u) {
        for (var i = li; i < nt * 256u; i += NT) {
            lut[LUT_TABLES * 1024u + i] = table_entry(i / 256u, i % 256u);
        }
    }
}

// Tile `rel` of the current segment (uniform if `rel` is).
fn tile_info(rel: u32) -> Tile {
    var ti: Tile;
    ti.valid = rel < g[S_TILE_COUNT];
    let r = min(rel, max(g[S_TILE_COUNT], 1u) - 1u);
    ti.t = g[S_TILE_FIRST] + r;
    let tx = max(g[S_TILES_X], 1u);
    ti.r0 = (ti.t / tx) * g[S_TILE_H];
    ti.c0 = (ti.t % tx) * g[S_TILE_W];
    ti.h = min(g[S_TILE_H], g[S_ROWS] - min(ti.r0, g[S_ROWS]));
    ti.w = min(g[S_TILE_W], g[S_COLS] - min(ti.c0, g[S_COLS]));
    ti.n = min(ti.h * ti.w, 4096u);
    let off = inp_at(g[S_INDEX_BASE] + 2u * r);
    let m = inp_at(g[S_INDEX_BASE] + 2u * r + 1u);
    ti.mode = m & 15u;
    ti.table = (m >> 4u) & 3u;
    ti.params = m >> 8u;
    let lossy = LOSSY && (g[S_KIND] & F_LOSSY) != 0u;
    var mode_ok = ti.mode <= M_PLANAR;
    if (lossy) {
        mode_ok = lossy_mode_ok(ti.mode, ti.h, ti.w);
    }
    ti.bad_index = !mode_ok || ti.table >= g[S_NTABLES] || ti.table >= LUT_TABLES;
    if (ti.bad_index) {
        ti.mode = select(M_NONE, M_SPATIAL, lossy);
        ti.params = select(0u, 16u, lossy);
        ti.table = 0u;
    }
    var end = g[S_WORD_HI];
    if (r + 1u < g[S_TILE_COUNT]) {
        end = inp_at(g[S_INDEX_BASE] + 2u * r + 2u);
    }
    let lo = g[S_WORD_LO];
    let hi = max(g[S_WORD_HI], lo);
    ti.start = clamp(off, lo, hi);
    ti.nw = clamp(end, ti.start, hi) - ti.start;
    // a tile the fast kernel decodes (the same test as plan.rs `fast_candidate`;
    // of a lossy plane, `fast_lossy_candidate`: rans_fast_lossy.wgsl)
    let fast = g[S_FAST];
    if (((fast >> ti.table) & 1u) != 0u && !ti.bad_index && (ti.mode == M_NONE || ti.mode == M_PLANAR || lossy)
        && ti.h * ti.w == 4096u && ti.nw <= (fast >> 16u)) {
        ti.valid = false;
    }
    if (!ti.valid) {
        ti.n = 0u;
        ti.nw = 0u;
    }
    return ti;
}

// Staging geometry of a tile: the u32 range of `inp` holding its words.
fn stage_u0(ti: Tile) -> u32 {
    return g[S_STREAM_BASE] + ((ti.start - g[S_WORD_ORIGIN]) >> 1u);
}
fn stage_odd(ti: Tile) -> u32 {
    return (ti.start - g[S_WORD_ORIGIN]) & 1u;
}


// Word `i` of tile `ti` (slot `j` of the unit); 0 past the tile's words.
// Word `i` of tile `ti`, from the stage (its first word at u16 index `sb`)
// or from global memory; 0 past the tile's words.
fn tile_word(ti: Tile, sb: u32, staged: bool, i: u32) -> u32 {
    if (i >= ti.nw) {
        return 0u;
    }
    if (staged) {
        return stage_word(sb, i);
    }
    let k = i + stage_odd(ti);
    return (inp_at(stage_u0(ti) + (k >> 1u)) >> ((k & 1u) * 16u)) & 0xffffu;
}

// ---- output

// Element index of tile symbol k, relative to the bound output window.
fn elem_of(ti: Tile, k: u32) -> u32 {
    var row = ti.r0;
    var col = ti.c0 + k;
    if (ti.h > 1u) {
        row = ti.r0 + k / ti.w;
        col = ti.c0 + k % ti.w;
    }
    return (row - g[S_ROW_ORG]) * g[S_COLS] + (col - g[S_COL_ORG]) + g[S_OUT_ADJ];
}

fn row_of(ti: Tile, k: u32) -> u32 {
    if (ti.h > 1u) {
        return ti.r0 + k / ti.w;
    }
    return ti.r0;
}

// The 24 raw bits of element `i` of a group of four, from three raw words.
fn raw24(r: vec3<u32>, i: u32) -> u32 {
    switch i {
        case 0u: { return r.x & 0xffffffu; }
        case 1u: { return (r.x >> 24u) | ((r.y & 0xffffu) << 8u); }
        case 2u: { return (r.y >> 16u) | ((r.z & 0xffu) << 16u); }
        default: { return r.z >> 8u; }
    }
}

// Merge float-split byte `e` with its raw bits into the source float's bits.
fn merge_split(src: u32, e: u32, r: u32) -> u32 {
    if (src == DT_BF16) {
        return ((r & 0x80u) << 8u) | (e << 7u) | (r & 0x7fu);
    }
    if (src == DT_F16) {
        return (e << 8u) | (r & 0xffu);
    }
    return ((r >> 23u) << 31u) | (e << 23u) | (r & 0x7fffffu);
}

fn dt_size(dt: u32) -> u32 {
    return select(2u, 4u, dt == DT_F32);
}

// Write the output of tile symbols k0 .. k0+cnt-1 (k0 % 4 == 0), whose
// decoded bytes are `sym4` (byte i = symbol k0+i). The layout is aligned
// (plan.rs): a group's bytes never share an output word with another tile.
fn emit(ti: Tile, slot: u32, k0: u32, cnt: u32, sym4: u32) {
    let kind = g[S_KIND];
    let keep = select(0xffffffffu, (1u << (8u * cnt)) - 1u, cnt < 4u);
    if ((kind & F_SCRATCH) != 0u) {
        let i = g[S_SCRATCH_BASE] + slot * 1024u + (k0 >> 2u);
        if (i < arrayLength(&scratch)) {
            scratch[i] = sym4 & keep;
        }
        return;
    }
    let k = kind & 15u;
    let src = (kind >> 4u) & 15u;
    let dst = (kind >> 8u) & 15u;
    if (k == K_BYTES) {
        var v = sym4 & keep;
        if ((kind & F_XOR80) != 0u) {
            v ^= 0x80808080u & keep;
        }
        out_store(elem_of(ti, k0) >> 2u, v);
        return;
    }
    if (k == K_SPLIT) {
        // 1-D: elements k0.. are consecutive; raw plane relative to the chunk
        let re = ti.c0 + k0 - g[S_COL_ORG];
        var raw = vec3<u32>(0u, 0u, 0u);
        if (src == DT_F32) {
            let b = g[S_RAW_BASE] + (re >> 2u) * 3u;
            raw = vec3<u32>(inp_at(b), inp_at(b + 1u), inp_at(b + 2u));
        } else {
            raw.x = inp_at(g[S_RAW_BASE] + (re >> 2u));
        }
        let e0 = elem_of(ti, k0);
        for (var i = 0u; i < cnt; i++) {
            let e = (sym4 >> (8u * i)) & 0xffu;
            var r = (raw.x >> (8u * i)) & 0xffu;
            if (src == DT_F32) {
                r = raw24(raw, i);
            }
            var v = merge_split(src, e, r);
            if (dst != src) {
                v = from_f32_bits(to_f32_bits(v, src), dst);
            }
            if (dst == DT_F32) {
                out_store(e0 + i, v);
            } else if ((i & 1u) == 0u) {
                var hi = 0u;
                if (i + 1u < cnt) {
                    let e1 = (sym4 >> (8u * (i + 1u))) & 0xffu;
                    var r1 = (raw.x >> (8u * (i + 1u))) & 0xffu;
                    if (src == DT_F32) {
                        r1 = raw24(raw, i + 1u);
                    }
                    hi = merge_split(src, e1, r1);
                    if (dst != src) {
                        hi = from_f32_bits(to_f32_bits(hi, src), dst);
                    }
                }
                out_store((e0 + i) >> 1u, (v & 0xffffu) | (hi << 16u));
            }
        }
        return;
    }
    // K_DEQ: code * scale[row] (rows may change inside a group); K_LDEQ:
    // pixel * scale[tile]
    let tile_sc = k == K_LDEQ;
    let tsc = inp_at(g[S_SCALE_BASE] + ti.t - g[S_TILE_FIRST]);
    for (var i = 0u; i < cnt; i++) {
        let kk = k0 + i;
        var sc = tsc;
        if (!tile_sc) {
            sc = inp_at(g[S_SCALE_BASE] + row_of(ti, kk) - g[S_ROW_ORG]);
        }
        let v = from_f32_bits(mul_i8_f32((sym4 >> (8u * i)) & 0xffu, sc), dst);
        let e = elem_of(ti, kk);
        if (dst == DT_F32) {
            out_store(e, v);
        } else if ((e & 1u) == 0u) {
            var hi = 0u;
            if (i + 1u < cnt) {
                let k1 = kk + 1u;
                var sc1 = tsc;
                if (!tile_sc) {
                    sc1 = inp_at(g[S_SCALE_BASE] + row_of(ti, k1) - g[S_ROW_ORG]);
                }
                hi = from_f32_bits(mul_i8_f32((sym4 >> (8u * (i + 1u))) & 0xffu, sc1), dst);
            }
            out_store(e >> 1u, (v & 0xffffu) | (hi << 16u));
        }
    }
}

// PLANAR needs no neighbours: add its prediction to the four symbols of a
// group (tile symbols k0 .. k0+3) as they are written.
fn planar4(ti: Tile, k0: u32, sym4: u32) -> u32 {
    let pa = sx8(ti.params);
    let pb = sx8(ti.params >> 8u);
    let pc = sx8(ti.params >> 16u);
    let w = max(ti.w, 1u);
    var o = 0u;
    for (var b = 0u; b < 4u; b++) {
        let k = k0 + b;
        let p = clamp((pa * i32(k / w) + pb * i32(k % w) + 16 * pc + 8) >> 4u, -128, 127);
        o |= ((((sym4 >> (8u * b)) & 0xffu) + u32(p)) & 0xffu) << (8u * b);
    }
    return o;
}

// ---- reconstruction in workgroup memory (all invocations; uniform per tile)

fn tb_byte(base: u32, k: u32) -> u32 {
    return (atomicLoad(&tb[base + (k >> 2u)]) >> (8u * (k & 3u))) & 0xffu;
}

// Replace byte k (currently `old`) by `new`: an xor touches no other byte.
fn tb_set(base: u32, k: u32, old: u32, val: u32) {
    let d = (old ^ val) & 0xffu;
    if (d != 0u) {
        atomicXor(&tb[base + (k >> 2u)], d << (8u * (k & 3u)));
    }
}

fn sx8(v: u32) -> i32 {
    return i32(v << 24u) >> 24u;
}

// Bytewise (a + b) mod 256 in each of four lanes.
fn add4(a: u32, b: u32) -> u32 {
    return ((a & 0x7f7f7f7fu) + (b & 0x7f7f7f7fu)) ^ ((a ^ b) & 0x80808080u);
}

// Reconstruction runs in phases with one workgroup barrier after each
// (a single barrier site, in the caller): TOP and LEFT on tiles of several
// rows take one phase; LEFT (and AVG) on one row, a parallel scan,
// takes two; AVG takes one per anti-diagonal of its wavefront.
fn recon_phases(ti: Tile) -> u32 {
    let mode = ti.mode;
    if (mode == M_NONE || mode == M_PLANAR) {
        return 0u;
    }
    if ((mode == M_LEFT || mode == M_AVG) && ti.h <= 1u) {
        return 2u;
    }
    if (mode == M_AVG) {
        var total = 0u;
        for (var p0 = 0u; p0 < ti.h; p0 += NT) {
            total += min(NT, ti.h - p0) + max(ti.w, 1u) - 1u;
        }
        return total;
    }
    return 1u;
}

var<private> avg_left: u32;

// One phase of the reconstruction of tile `ti` (slot j) by invocation li.
fn recon_phase(ti: Tile, j: u32, li: u32, ph: u32) {
    let base = j * 1024u;
    let n = ti.n;
    let w = max(ti.w, 1u);
    let h = ti.h;
    let mode = ti.mode;
    if ((mode == M_LEFT || mode == M_AVG) && h <= 1u) {
        // a chunked parallel scan of the row: totals, then prefixes
        let nwords = (n + 3u) / 4u;
        let per = (nwords + NT - 1u) / NT;
        let w0 = min(li * per, nwords);
        let w1 = min(w0 + per, nwords);
        if (ph == 0u) {
            var tot = 0u;
            for (var wi = w0; wi < w1; wi++) {
                let v = atomicLoad(&tb[base + wi]);
                for (var b = 0u; b < 4u; b++) {
                    if (wi * 4u + b < n) {
                        tot += (v >> (8u * b)) & 0xffu;
                    }
                }
            }
            wsum[li] = tot & 0xffu;
        } else {
            var acc = 0u;
            for (var i = 0u; i < li; i++) {
                acc += wsum[i];
            }
            for (var wi = w0; wi < w1; wi++) {
                let v = atomicLoad(&tb[base + wi]);
                var o = 0u;
                for (var b = 0u; b < 4u; b++) {
                    var x = (v >> (8u * b)) & 0xffu;
                    if (wi * 4u + b < n) {
                        acc = (acc + x) & 0xffu;
                        x = acc;
                    }
                    o |= x << (8u * b);
                }
                atomicStore(&tb[base + wi], o);
            }
        }
    } else if (mode == M_LEFT) {
        for (var i = li; i < h; i += NT) {
            var acc = 0u;
            for (var jj = 0u; jj < w; jj++) {
                let k = i * w + jj;
                let old = tb_byte(base, k);
                acc = (acc + old) & 0xffu;
                tb_set(base, k, old, acc);
            }
        }
    } else if (mode == M_TOP) {
        if ((w & 3u) == 0u) {
            let wq = w / 4u;
            for (var c = li; c < wq; c += NT) {
                var prev = atomicLoad(&tb[base + c]);
                for (var i = 1u; i < h; i++) {
                    let idx = base + i * wq + c;
                    prev = add4(atomicLoad(&tb[idx]), prev);
                    atomicStore(&tb[idx], prev);
                }
            }
        } else {
            for (var c = li; c < w; c += NT) {
                var prev = tb_byte(base, c);
                for (var i = 1u; i < h; i++) {
                    let k = i * w + c;
                    let old = tb_byte(base, k);
                    prev = (old + prev) & 0xffu;
                    tb_set(base, k, old, prev);
                }
            }
        }
    } else if (mode == M_AVG) {
        // anti-diagonal wavefront: in pass p, invocation li owns row p*NT + li;
        // phase ph is diagonal d of its pass
        var d = ph;
        var p0 = 0u;
        for (var it = 0u; it < 64u && p0 < h; it++) {
            let span = min(NT, h - p0) + w - 1u;
            if (d < span) {
                break;
            }
            d -= span;
            p0 += NT;
        }
        let rows = min(NT, h - min(p0, h));
        let i = p0 + li;
        if (d == 0u) {
            avg_left = 0u;
        }
        if (li < rows && d >= li && d - li < w) {
            let jj = d - li;
            let k = i * w + jj;
            let old = tb_byte(base, k);
            var pred = 0;
            if (i == 0u) {
                if (jj > 0u) {
                    pred = sx8(avg_left);
                }
            } else {
                let top = tb_byte(base, k - w);
                if (jj == 0u) {
                    pred = sx8(top);
                } else {
                    pred = (sx8(avg_left) + sx8(top)) >> 1u;
                }
            }
            let x = (old + u32(pred)) & 0xffu;
            tb_set(base, k, old, x);
            avg_left = x;
        }
    }
}

// ---- the fast region (every lane of every tile of a unit decodes a
// table-coded symbol): helpers kept small so the loop stays tight

// One table-coded step: (symbol, state before renormalisation).
fn lut_step(x: u32, lbase: u32, fbase: u32, mask: u32, pb: u32) -> vec2<u32> {
    let slot = x & mask;
    if (LUT_KIND == 0u) {
        let e = lut[lbase + slot];
        return vec2<u32>(e & 0xffu, (((e >> 8u) & 0xfffu) + 1u) * (x >> pb) + (e >> 20u));
    }
    let sw = lut[lbase + (slot >> 2u)];
    let sym = (sw >> (8u * (slot & 3u))) & 0xffu;
    let fc = lut[fbase + sym];
    return vec2<u32>(sym, (fc & 0xffffu) * (x >> pb) + slot - (fc >> 16u));
}

// Word i of a staged tile whose first word sits at u16 index `sb` of the stage.
fn stage_word(sb: u32, i: u32) -> u32 {
    let k = sb + i;
    return (stage[min(k >> 1u, STAGE_U32 - 1u)] >> ((k & 1u) << 4u)) & 0xffffu;
}

// Steps in which every lane of tile `ti` decodes a table-coded symbol:
// lane 31 owns the fewest symbols; its tail comes last.
fn full_steps(n: u32, ntail_max: u32) -> u32 {
    if (n < 128u) {
        return 0u;
    }
    let nl31 = 4u * (n / 128u) + u32(clamp(i32(n % 128u) - 124, 0, 4));
    return nl31 - min(ntail_max, nl31);
}

// The raw bits (float-split) or the row's scale (dequantisation) of the
// group of four elements starting at tile symbol k0 in row `row`.
fn aux_of(ti: Tile, k0: u32, row: u32) -> vec3<u32> {
    let kind = g[S_KIND];
    let k = kind & 15u;
    if (k == K_SPLIT) {
        let re = ti.c0 + k0 - g[S_COL_ORG];
        if (((kind >> 4u) & 15u) == DT_F32) {
            let b = g[S_RAW_BASE] + (re >> 2u) * 3u;
            return vec3<u32>(inp_at(b), inp_at(b + 1u), inp_at(b + 2u));
        }
        return vec3<u32>(inp_at(g[S_RAW_BASE] + (re >> 2u)), 0u, 0u);
    }
    if (k == K_DEQ) {
        return vec3<u32>(inp_at(g[S_SCALE_BASE] + row - g[S_ROW_ORG]), 0u, 0u);
    }
    return vec3<u32>(0u);
}

// Write four symbols `sym4` of one row, the first being element `e` of the
// window, with their raw bits or scale `aux` (aligned, full groups).
fn emit4(e: u32, sym4: u32, aux: vec3<u32>) {
    let kind = g[S_KIND];
    let k = kind & 15u;
    let src = (kind >> 4u) & 15u;
    let dst = (kind >> 8u) & 15u;
    if (k == K_BYTES) {
        var v = sym4;
        if ((kind & F_XOR80) != 0u) {
            v ^= 0x80808080u;
        }
        out_store(e >> 2u, v);
        return;
    }
    var o = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let b = (sym4 >> (8u * i)) & 0xffu;
        var v: u32;
        if (k == K_SPLIT) {
            var r = (aux.x >> (8u * i)) & 0xffu;
            if (src == DT_F32) {
                r = raw24(aux, i);
            }
            v = merge_split(src, b, r);
            if (dst != src) {
                v = from_f32_bits(to_f32_bits(v, src), dst);
            }
        } else {
            v = from_f32_bits(mul_i8_f32(b, aux.x), dst);
        }
        o[i] = v;
    }
    if (dst == DT_F32) {
        out_store(e, o.x);
        out_store(e + 1u, o.y);
        out_store(e + 2u, o.z);
        out_store(e + 3u, o.w);
    } else {
        out_store(e >> 1u, (o.x & 0xffffu) | (o.y << 16u));
        out_store((e >> 1u) + 1u, (o.z & 0xffffu) | (o.w << 16u));
    }
}

// ---- the driver

// Decode this invocation's units. `vl` is the virtual lane (tile slot
// vl / 32, lane vl % 32); `li` the local invocation index.
// Lanes below this one in the tile, as a bit mask (for the prefix counts).
var<private> p_ltmask: u32;

fn decode_main(li: u32, vl: u32, wg: u32, nwg: u32) {
    let total_units = plan_at(1u);
    let j = vl / 32u;
    let lane = vl % 32u;
    p_ltmask = (1u << lane) - 1u;
    var cur = 0xffffffffu;
    var lut_seg = 0xffffffffu;
    for (var u = wg; u < total_units; u += nwg) {
        let sgi = find_segment(u);
        workgroupBarrier();
        if (sgi != cur) {
            load_segment(sgi);
            cur = sgi;
        }
        let rel0 = (u - g[S_UNIT_START]) * TILES;
        // a unit whose tiles are all the fast kernel's has nothing to do here
        var any = false;
        for (var jj = 0u; jj < TILES; jj++) {
            any = any || tile_info(rel0 + jj).valid;
        }
        if (!any) {
            continue;
        }
        if (sgi != lut_seg) {
            build_lut(li);
            lut_seg = sgi;
            // the build read the tables from the stage area
            workgroupBarrier();
        }
        // stage the unit's words: its tiles are consecutive in the stream, so
        // this is one contiguous range, copied four loads at a time; a tile
        // past the stage's end reads global memory instead
        // one pass over the unit's tiles (uniform): the words' end, the step
        // count (the largest), the fast region (the smallest, in fours)
        let first = tile_info(rel0);
        let tb0 = max(g[S_TAIL] & 0xffu, 1u);
        var uend = first.start;
        var smax = 0u;
        var fast4 = 0xffffffffu;
        for (var jj = 0u; jj < TILES; jj++) {
            let tj = tile_info(rel0 + jj);
            if (tj.valid) {
                uend = max(uend, tj.start + tj.nw);
            }
            smax = max(smax, 4u * ((tj.n + 127u) / 128u));
            fast4 = min(fast4, full_steps(tj.n, 16u / tb0) & ~3u);
        }
        fast4 = min(fast4, smax);
        let odd0 = stage_odd(first);
        if (STAGE) {
            let b = stage_u0(first);
            let len = min((odd0 + (uend - first.start) + 1u) >> 1u, STAGE_U32);
            for (var i = li; i < len; i += 4u * NT) {
                let v0 = inp_at(b + i);
                let v1 = inp_at(b + i + NT);
                let v2 = inp_at(b + i + 2u * NT);
                let v3 = inp_at(b + i + 3u * NT);
                stage[i] = v0;
                if (i + NT < len) {
                    stage[i + NT] = v1;
                }
                if (i + 2u * NT < len) {
                    stage[i + 2u * NT] = v2;
                }
                if (i + 3u * NT < len) {
                    stage[i + 3u * NT] = v3;
                }
            }
        }
        prefix_reset(li);
        workgroupBarrier();

        let ti = tile_info(rel0 + j);
        // the tile's first word in the stage, in u16 words
        let sb = odd0 + (ti.start - first.start);
        let staged = STAGE && ((sb + ti.nw + 1u) >> 1u) <= STAGE_U32;
        let n = ti.n;
        var err = path_err();
        if (ti.bad_index) {
            err |= E_INDEX;
        }
        // ---- initial states (FORMAT.md §3.3)
        let a = min(32u, (n + 3u) / 4u);
        let nc = (a + 3u) / 4u;
        let nw = ti.nw;
        if (n > 0u && nw < nc) {
            err |= E_STATES;
        }
        var csum_lt = 0u;
        var csum = 0u;
        var myc = 0u;
        for (var cw = 0u; cw < nc; cw++) {
            let wv = tile_word(ti, sb, staged, cw);
            for (var nib = 0u; nib < 4u; nib++) {
                let idx = cw * 4u + nib;
                let c = (wv >> (4u * nib)) & 15u;
                if (idx < a) {
                    csum += c;
                    if (idx < lane) {
                        csum_lt += c;
                    }
                    if (idx == lane) {
                        myc = c;
                    }
                } else if (c != 0u) {
                    err |= E_STATES;
                }
            }
        }
        let total_bits = nc * 16u + 16u * a + csum;
        let p0 = (total_bits + 15u) / 16u;
        if (n > 0u && (total_bits & 15u) != 0u) {
            if ((tile_word(ti, sb, staged, total_bits / 16u) >> (total_bits & 15u)) != 0u) {
                err |= E_STATES;
            }
        }
        let lane_on = lane < a;
        var x = 0u;
        var nl = 0u;
        if (lane_on) {
            let bitpos = nc * 16u + 16u * lane + csum_lt;
            let nb = 16u + myc;
            if ((bitpos + nb + 15u) / 16u > nw) {
                err |= E_STATES;
            }
            let w0 = bitpos / 16u;
            let sh = bitpos & 15u;
            let lo = tile_word(ti, sb, staged, w0) | (tile_word(ti, sb, staged, w0 + 1u) << 16u);
            let hi = tile_word(ti, sb, staged, w0 + 2u);
            var v = lo >> sh;
            if (sh > 0u) {
                v |= hi << (32u - sh);
            }
            v &= (1u << nb) - 1u;
            x = (1u << nb) | v;
            nl = 4u * (n / 128u) + u32(clamp(i32(n % 128u) - i32(4u * lane), 0, 4));
        }
        let tbits = max(g[S_TAIL] & 0xffu, 1u);
        let tbase = (g[S_TAIL] >> 8u) & 0xffu;
        let tmask = (1u << tbits) - 1u;
        let ntail = min(16u / tbits, nl);
        let pb = min(g[S_PROB_BITS], 12u);
        let mask = (1u << pb) - 1u;
        let tab = ti.table;
        let body = select(0u, nw - p0, nw >= p0);
        // NONE and PLANAR tiles are written as they decode; LEFT, TOP and
        // AVG are rebuilt in workgroup memory first
        let direct = !MODES || ti.mode == M_NONE || ti.mode == M_PLANAR;
        let planar = ti.mode == M_PLANAR;
        // ---- the fast region: the steps in which every lane of every tile
        // of the unit decodes a table-coded symbol, four at a time (uniform)
        var q = 0u;
        let lbase = select(tab * 1024u, tab * 4096u, LUT_KIND == 0u);
        let fbase = LUT_TABLES * 1024u + tab * 256u;
        let scratch_out = (g[S_KIND] & F_SCRATCH) != 0u;
        // full-width tiles step through the output by a fixed stride per group
        let fullw = direct && !scratch_out && (ti.h <= 1u || ti.w == g[S_TILE_W]);
        let e0 = elem_of(ti, 4u * lane);
        let r0 = row_of(ti, 4u * lane);
        let estride = select(2u * g[S_COLS], 128u, ti.h <= 1u);
        let rstride = select(2u, 0u, ti.h <= 1u);
        var aux = vec3<u32>(0u);
        if (fullw && fast4 > 0u) {
            aux = aux_of(ti, 4u * lane, r0);
        }
        for (var g4 = 0u; g4 < fast4 / 4u; g4++) {
            // the next group's raw bits or scale, loaded a group ahead
            var auxn = vec3<u32>(0u);
            if (fullw && g4 + 1u < fast4 / 4u) {
                auxn = aux_of(ti, 128u * (g4 + 1u) + 4u * lane, r0 + (g4 + 1u) * rstride);
            }
            var acc4 = 0u;
            for (var i = 0u; i < 4u; i++) {
                let r = lut_step(x, lbase, fbase, mask, pb);
                let need = r.y < 0x10000u;
                let pc = tile_prefix(need, 4u * g4 + i, j, lane);
                var w: u32;
                if (staged) {
                    // branch-free: every lane reads (inside the stage), the state selects
                    w = stage_word(sb, p0 + q + pc.x);
                } else if (need) {
                    w = tile_word(ti, sb, false, p0 + q + pc.x);
                }
                x = select(r.y, (r.y << 16u) | w, need);
                q += pc.y;
                acc4 |= r.x << (8u * i);
            }
            if (planar) {
                acc4 = planar4(ti, 128u * g4 + 4u * lane, acc4);
            }
            if (fullw) {
                emit4(e0 + g4 * estride, acc4, aux);
            } else if (direct) {
                emit(ti, rel0 + j, 128u * g4 + 4u * lane, 4u, acc4);
            } else {
                atomicStore(&tb[j * 1024u + 32u * g4 + lane], acc4);
            }
            aux = auxn;
        }
        // ---- the other steps (FORMAT.md §4): lanes that end early, tails
        var acc = 0u;
        for (var s = fast4; s < smax; s++) {
            var need = false;
            var sym = 0u;
            var x2 = x;
            let live = s < nl;
            if (live) {
                if (s + ntail >= nl) {
                    let jt = nl - 1u - s;
                    sym = (((x >> (tbits * jt)) & tmask) + tbase) & 0xffu;
                } else {
                    let slot = x & mask;
                    if (LUT_KIND == 0u) {
                        let e = lut[tab * 4096u + slot];
                        sym = e & 0xffu;
                        x2 = (((e >> 8u) & 0xfffu) + 1u) * (x >> pb) + (e >> 20u);
                    } else {
                        let sw = lut[tab * 1024u + (slot >> 2u)];
                        sym = (sw >> (8u * (slot & 3u))) & 0xffu;
                        let fc = lut[LUT_TABLES * 1024u + tab * 256u + sym];
                        x2 = (fc & 0xffffu) * (x >> pb) + slot - (fc >> 16u);
                    }
                    need = x2 < 0x10000u;
                }
            }
            let pc = tile_prefix(need, s, j, lane);
            if (need) {
                let wi = p0 + q + pc.x;
                x2 = (x2 << 16u) | tile_word(ti, sb, staged, wi);
            }
            q += pc.y;
            x = x2;
            if (live) {
                acc |= sym << (8u * (s & 3u));
                if ((s & 3u) == 3u || s + 1u == nl) {
                    let k0 = 128u * (s >> 2u) + 4u * lane;
                    if (planar) {
                        acc = planar4(ti, k0, acc);
                    }
                    if (direct) {
                        emit(ti, rel0 + j, k0, min(4u, n - k0), acc);
                    } else {
                        atomicStore(&tb[j * 1024u + (k0 >> 2u)], acc);
                    }
                    acc = 0u;
                }
            }
        }
        // ---- end conditions
        if (q > body) {
            err |= E_UNDERFLOW;
        } else if (q < body) {
            err |= E_TRAILING;
        }
        if (lane_on) {
            let r = min(tbits * ntail, 16u);
            if ((x >> 16u) != 1u || ((x & 0xffffu) >> r) != 0u) {
                err |= E_FINAL;
            }
        }
        let eslot = g[S_ERR_SLOT];
        if (ti.valid && err != 0u) {
            atomicOr(&errs[3u * eslot], err);
            atomicMin(&errs[3u * eslot + 1u], ti.t);
        }
        // count finished tiles: a device that stops a shader early is caught
        if (ti.valid && lane == 0u) {
            atomicAdd(&errs[3u * eslot + 2u], 1u);
        }
        // ---- rebuild and write the tiles that have a mode
        if (MODES) {
            workgroupBarrier();
            for (var jj = 0u; jj < TILES; jj++) {
                let tj = tile_info(rel0 + jj);
                if (tj.valid && tj.mode != M_NONE && tj.mode != M_PLANAR) {
                    let lossy = LOSSY && tj.mode >= M_SPATIAL;
                    var phases = recon_phases(tj);
                    if (lossy) {
                        phases = lossy_phases(tj);
                    }
                    for (var ph = 0u; ph < phases; ph++) {
                        if (lossy) {
                            lossy_phase(tj, jj, li, ph);
                        } else {
                            recon_phase(tj, jj, li, ph);
                        }
                        workgroupBarrier();
                    }
                    for (var wi = li; wi < (tj.n + 3u) / 4u; wi += NT) {
                        emit(tj, rel0 + jj, wi * 4u, min(4u, tj.n - wi * 4u), atomicLoad(&tb[jj * 1024u + wi]));
                    }
                }
            }
        }
    }
}

// Compressed GEMV: y = scale ⊙ (Q·x) + bias where Q (int8, rows × cols) stays
// as a `.wcodec` coded plane (64×64 tiles, docs/FORMAT.md §3–§5) in device
// memory and is never materialised. Assembled as
//   lib/ballot_{sg,wg}.wgsl + lib/rans_tile.wgsl + this file.
//
// A workgroup owns one band of 64 rows. It has NW decoders of 32 lanes; in
// round r, decoder d takes column tile r·NW + d. Per round, with barriers
// between the phases (all invocations run the same rounds and steps):
//   1. stage: copy the tile's words (up to CAPW) into workgroup memory;
//   2. decode: 32 interleaved rANS lanes (§4) write the residual bytes into
//      the decoder's 64×64 tile buffer (pitch 64 bytes, 16 words a row);
//   3. rebuild the tile's prediction mode (§5) in place: LEFT by row, TOP by
//      column, PLANAR per element, AVG as a wavefront with a barrier per
//      anti-diagonal (only in rounds where some decoder has an AVG tile);
//   4. multiply: lane l holds x for columns 4·(l mod 16)..+3 and adds
//      rows l div 16 + 2i (i < 32) into its 32 accumulators.
// After the last round the NW · 32 · 32 partial sums are added in a fixed
// order (decoder, then lane), so results are the same run to run.
//
// Corrupt streams cannot read or write out of bounds (indices are clamped);
// a tile that does not end as §4 requires sets err[0].
//
// Bindings: 0 stream (u16 words in u32), 1 index (offset, meta per tile),
// 2 luts (tables × 4096), 3 x (f32 or packed f16, zero-padded to whole
// tiles), 4 rowdata (scales[rows] then bias[rows]), 5 y, 6 err, 7 params.

override NW: u32 = 4u;
override CAPW: u32 = 2048u;  // staged words per decoder (even)
override X_HALF: bool = false;
override HAS_SCALE: bool = true;
override HAS_BIAS: bool = false;
// Sizes of the workgroup arrays, set by the host to NW · CAPW / 2, NW · 1024
// and NW · 3 (named overrides: naga 30 mishandles anonymous override-sized arrays here).
override STAGE_WORDS: u32 = 4096u;
override TILE_WORDS: u32 = 4096u;
override BAL_WORDS: u32 = 12u;
// Diagnostics only (wrong results; `bench kernels --stages`): each set bit
// drops a stage to show its share of the time. 1: table lookups (a hash of
// the state stands in), 2: the whole decode loop, 4: rebuild, 8: multiply,
// 16: staging.
override DIAG: u32 = 0u;

struct Params {
    rows: u32,
    cols: u32,
    tiles_x: u32,
    tiles_y: u32,
    prob_bits: u32,
    tail_bits: u32,
    tail_base: u32,
    nwords: u32,     // words in the stream
    groups_x: u32,   // workgroups along x of the grid
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> stream: array<u32>;
@group(0) @binding(1) var<storage, read> index: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> lut: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<u32>;
@group(0) @binding(4) var<storage, read> rowdata: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> err: array<atomic<u32>>;
@group(0) @binding(7) var<uniform> p: Params;

var<private> SG_LANE: u32;

// Staged words (two u16 per u32) and tile buffers (pitch 16 words a row).
var<workgroup> stage: array<u32, STAGE_WORDS>;
var<workgroup> tile: array<atomic<u32>, TILE_WORDS>;
// Per decoder: first word of the tile in the stream, word count, half-word
// shift of the staging, mode and table; AVG flag of the round.
var<workgroup> tinfo: array<vec4<u32>, NW>;
var<workgroup> any_avg: atomic<u32>;

fn stream_word(k: u32) -> u32 {
    let i = min(k, p.nwords - 1u);
    return (stream[min(i >> 1u, arrayLength(&stream) - 1u)] >> ((i & 1u) << 4u)) & 0xffffu;
}

// Word k of decoder d's tile (0 past its end).
fn tile_word(d: u32, k: u32) -> u32 {
    let t = tinfo[d];
    if (k >= t.y) {
        return 0u;
    }
    let pos = (t.x & 1u) + k;
    if (pos < CAPW) {
        return (stage[d * (CAPW / 2u) + (pos >> 1u)] >> ((pos & 1u) << 4u)) & 0xffffu;
    }
    return stream_word(t.x + k);
}

// tb_get, tb_set, add_bytes, sx8, i8x4, x4: lib/gemv_rans_helpers.wgsl.

fn gemv_band(band: u32, lid: u32, dec: u32, lane: u32) {
    let r0 = band * 64u;
    let h = min(64u, p.rows - min(r0, p.rows));
    // The band's tiles all have h rows: the same step count for every decoder.
    let steps = 4u * ((h * 64u + 127u) / 128u);
    let rounds = (p.tiles_x + NW - 1u) / NW;
    let mask = (1u << p.prob_bits) - 1u;
    let tmask = (1u << p.tail_bits) - 1u;
    let ntail = 16u / p.tail_bits;
    var acc: array<f32, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = 0.0;
    }
    for (var round = 0u; round < rounds; round++) {
        let tx = round * NW + dec;
        let live = tx < p.tiles_x && band < p.tiles_y;
        let t = band * p.tiles_x + min(tx, p.tiles_x - 1u);
        let c0 = min(tx, p.tiles_x - 1u) * 64u;
        let w = min(64u, p.cols - c0);
        let n = h * w;
        // 1. Stage.
        if (lane == 0u) {
            let e = index[min(t, arrayLength(&index) - 1u)];
            var end = p.nwords;
            if (t + 1u < p.tiles_x * p.tiles_y) {
                end = index[min(t + 1u, arrayLength(&index) - 1u)].x;
            }
            let start = min(e.x, p.nwords);
            tinfo[dec] = vec4<u32>(start, max(end, start) - start, e.y, 0u);
            if (dec == 0u) {
                atomicStore(&any_avg, 0u);
            }
        }
        workgroupBarrier();
        let ti = tinfo[dec];
        let mode = ti.z & 15u;
        let table = (ti.z >> 4u) & 3u;
        if (live && mode == 3u && lane == 0u) {
            atomicOr(&any_avg, 1u);
        }
        {
            let first = ti.x >> 1u;
            let nstage = min(((ti.x & 1u) + ti.y + 1u) / 2u, CAPW / 2u);
            for (var k = lane; k < select(nstage, 0u, (DIAG & 16u) != 0u); k += 32u) {
                stage[dec * (CAPW / 2u) + k] = stream[min(first + k, arrayLength(&stream) - 1u)];
            }
        }
        if (w < 64u) {
            for (var k = lane; k < 1024u; k += 32u) {
                atomicStore(&tile[dec * 1024u + k], 0u);
            }
        }
        init_ballot(dec, lane);
        workgroupBarrier();
        // 2. Decode (§4). Lanes with no symbols left idle through the steps.
        let nl = rans_lane_count(n, lane);
        let rl = min(ntail, nl);
        let st = rans_initial_state(dec, n, lane);
        var xs = st.x;
        var q = st.y;
        // The decode tables are padded to 4 (16384 entries), so any table id
        // and slot index in bounds.
        let tbase = (table & 3u) * 4096u;
        let lt = (1u << lane) - 1u;
        let tstart = ti.x;
        let tcount = ti.y;
        let tsh = ti.x & 1u;
        let sbase = dec * (CAPW / 2u);
        // Four steps per group (a lane's 4 symbols are one word of the tile).
        for (var g = 0u; g < select(steps / 4u, 0u, (DIAG & 2u) != 0u); g++) {
            var word = 0u;
            for (var u = 0u; u < 4u; u++) {
                let s = 4u * g + u;
                var need = false;
                var sym = 0u;
                if (live && s < nl) {
                    if (s + rl >= nl) {
                        sym = (((xs >> (p.tail_bits * (nl - 1u - s))) & tmask) + p.tail_base) & 0xffu;
                    } else {
                        var e = 0u;
                        if ((DIAG & 1u) != 0u) {
                            e = (xs * 2654435761u) & 0x000fffffu;
                        } else {
                            e = lut[tbase + (xs & mask)];
                        }
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
                            wd = (stage[(sbase + (pos >> 1u)) % STAGE_WORDS] >> ((pos & 1u) << 4u)) & 0xffffu;
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
            if (live && cnt > 0u) {
                if (w == 64u) {
                    atomicStore(&tile[dec * 1024u + 32u * g + lane], word);
                } else {
                    // An edge tile: place each byte at (k div w, k mod w).
                    let kb = 128u * g + 4u * lane;
                    for (var b = 0u; b < cnt; b++) {
                        let k = kb + b;
                        let i = k / w;
                        let j = k % w;
                        atomicOr(&tile[dec * 1024u + min(i, 63u) * 16u + (j >> 2u)], ((word >> (8u * b)) & 0xffu) << ((j & 3u) * 8u));
                    }
                }
            }
        }
        // §4's end conditions (lib/gemv_rans_helpers.wgsl).
        if (live) {
            check_tile_end(lane, n, rl, xs, q, ti.y);
        }
        workgroupBarrier();
        // 3. Rebuild (§5).
        let rmode = select(mode, 0u, (DIAG & 4u) != 0u);
        if (live && rmode == 1u) {
            // LEFT: row prefix sums, one row per lane.
            for (var i = lane; i < h; i += 32u) {
                var carry = 0u;
                for (var c = 0u; c < 16u; c++) {
                    let a = dec * 1024u + i * 16u + c;
                    var v = atomicLoad(&tile[a]);
                    v = add_bytes(v, v << 8u);
                    v = add_bytes(v, v << 16u);
                    v = add_bytes(v, carry * 0x01010101u);
                    atomicStore(&tile[a], v);
                    carry = v >> 24u;
                }
            }
        } else if (live && rmode == 2u) {
            // TOP: column prefix sums, one word column per lane.
            if (lane < 16u) {
                var prev = atomicLoad(&tile[dec * 1024u + lane]);
                for (var i = 1u; i < h; i++) {
                    let a = dec * 1024u + i * 16u + lane;
                    prev = add_bytes(atomicLoad(&tile[a]), prev);
                    atomicStore(&tile[a], prev);
                }
            }
        } else if (live && rmode == 4u) {
            // PLANAR: clamp((a·i + b·j + 16·c + 8) >> 4, −128, 127) added per element.
            let pa = sx8(ti.z >> 8u);
            let pb = sx8(ti.z >> 16u);
            let pc = sx8(ti.z >> 24u);
            for (var k = lane; k < h * 16u; k += 32u) {
                let i = k / 16u;
                let a = dec * 1024u + k;
                var v = atomicLoad(&tile[a]);
                var pred = 0u;
                for (var b = 0u; b < 4u; b++) {
                    let j = (k % 16u) * 4u + b;
                    let pr = clamp((pa * i32(i) + pb * i32(j) + 16 * pc + 8) >> 4u, -128, 127);
                    pred |= (u32(pr) & 0xffu) << (8u * b);
                }
                atomicStore(&tile[a], add_bytes(v, pred));
            }
        }
        // AVG: a wavefront over anti-diagonals, in rounds where any decoder needs it.
        if (workgroupUniformLoad(&any_avg) != 0u && (DIAG & 4u) == 0u) {
            let avg = live && mode == 3u;
            // The same count in every decoder (w differs at the right edge).
            for (var dg = 0u; dg < h + 63u; dg++) {
                if (avg) {
                    avg_diagonal(dec, dg, h, w, lane);
                }
                workgroupBarrier();
            }
        }
        workgroupBarrier();
        // 4. Multiply: lane l takes word column l mod 16, rows l div 16 + 2i.
        if (live && (DIAG & 8u) == 0u) {
            let xv = x4(c0 + 4u * (lane % 16u));
            for (var i = 0u; i < 32u; i++) {
                let row = lane / 16u + 2u * i;
                let v = atomicLoad(&tile[dec * 1024u + row * 16u + lane % 16u]);
                acc[i] += dot(i8x4(v), xv);
            }
        }
        workgroupBarrier();
    }
    // Fixed-order reduction: decoders, then the 16 lanes of a row.
    for (var i = 0u; i < 32u; i++) {
        atomicStore(&tile[(dec * 32u + lane) * 32u + i], bitcast<u32>(acc[i]));
    }
    workgroupBarrier();
    for (var rr = lid; rr < 64u; rr += NW * 32u) {
        let row = r0 + rr;
        var sum = 0.0;
        for (var d = 0u; d < NW; d++) {
            for (var c = 0u; c < 16u; c++) {
                sum += bitcast<f32>(atomicLoad(&tile[(d * 32u + (rr % 2u) * 16u + c) * 32u + rr / 2u]));
            }
        }
        if (row < p.rows && band < p.tiles_y) {
            store_row(row, sum);
        }
    }
}

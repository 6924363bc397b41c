// Lossy tiles in the general decode kernel (docs/FORMAT.md §5.1): part of
// its source, lib_float.wgsl + rans_decode.wgsl + this file + the path file.
// Compiled in only when LOSSY is set (a chunk holding `lossy` tensors), so
// the lossless variants are unchanged.
//
// rans_decode.wgsl rANS-decodes a lossy tile's int8 codes into the tile's
// buffer `tb` (workgroup memory, bytes packed four to a word, tile
// row-major) like the codes of a predicted lossless tile. Then every
// invocation of the workgroup rebuilds the tile's pixels in place, in
// phases separated by workgroup barriers (the barrier is the caller's):
//
// * SPATIAL: one phase; NONE per word, LEFT one row per invocation, TOP one
//   column (or four, for tiles whose width is a multiple of 4) per invocation;
// * DCT8 / DCT4 / DST4: phase 0, the columns: per block row and tile column,
//   D = q · step, the 1-D inverse down the column, F = (E + 64) >> 7 into the
//   i32 scratch `lx` (the stage area, free after the decode); phase 1, the
//   rows: per row of a block, the 1-D inverse along it, r = (G + 2^(S-1)) >> S,
//   clamped into `tb` for predictor NONE, or kept in `lx`; phase 2 (LEFT or
//   TOP only): one row (LEFT) or four columns (TOP) per invocation, walking
//   the blocks in order, x = clamp(pred + r) into `tb`.
//   The scratch holds LX_ROWS (8..64) rows of a tile: a taller tile runs
//   these phases once per band of LX_ROWS rows, top to bottom (TOP reads the
//   band above from `tb`, already final).
//
// Integer arithmetic only, the sums of src/codec/transform.rs (even/odd
// butterflies for the DCTs, the matrix for DST4; exact, so any order is
// bit-exact). No private arrays: coefficients live in workgroup memory,
// vectors in registers. Every loop is bounded by the tile's size (≤ 64×64).

// (The lossy mode codes M_SPATIAL..M_DST4: lib/segment.wgsl.)

// The mode codes of a lossy tile are valid for its shape (tile_info).
fn lossy_mode_ok(mode: u32, h: u32, w: u32) -> bool {
    if (mode < M_SPATIAL || mode > M_DST4) {
        return false;
    }
    if (mode == M_SPATIAL) {
        return true;
    }
    let nb = select(4u, 8u, mode == M_DCT8);
    return h % nb == 0u && w % nb == 0u;
}

fn lx_get(i: u32) -> i32 {
    return bitcast<i32>(stage[min(i, STAGE_ALLOC - 1u)]);
}

fn lx_set(i: u32, v: i32) {
    stage[min(i, STAGE_ALLOC - 1u)] = bitcast<u32>(v);
}

fn lx4(i: u32) -> vec4<i32> {
    return vec4<i32>(lx_get(i), lx_get(i + 1u), lx_get(i + 2u), lx_get(i + 3u));
}

fn lx_set4(i: u32, v: vec4<i32>) {
    lx_set(i, v.x);
    lx_set(i + 1u, v.y);
    lx_set(i + 2u, v.z);
    lx_set(i + 3u, v.w);
}

fn clamp_px4(v: vec4<i32>) -> vec4<i32> {
    return clamp(v, vec4<i32>(-127), vec4<i32>(127));
}

// Four signed bytes of a word.
fn unpack_s8(v: u32) -> vec4<i32> {
    return vec4<i32>(sx8(v), sx8(v >> 8u), sx8(v >> 16u), sx8(v >> 24u));
}

// Four values in [-128, 127] as bytes of a word.
fn pack_s8(v: vec4<i32>) -> u32 {
    let u = vec4<u32>(v) & vec4<u32>(0xffu);
    return u.x | (u.y << 8u) | (u.z << 16u) | (u.w << 24u);
}

// SPATIAL's dequantisation: sign(q) · ((|q| · step + 8) >> 4).
fn deq_spatial(q: i32, step: u32) -> i32 {
    let m = i32((u32(abs(q)) * step + 8u) >> 4u);
    return select(m, -m, q < 0);
}

fn deq_spatial4(q: vec4<i32>, step: u32) -> vec4<i32> {
    let m = vec4<i32>((vec4<u32>(abs(q)) * step + vec4<u32>(8u)) >> vec4<u32>(4u));
    return select(m, -m, q < vec4<i32>(0));
}

// Code byte k of tile slot `base` (signed).
fn code_at(base: u32, k: u32) -> i32 {
    return sx8(tb_byte(base, k));
}

struct V8 {
    a: vec4<i32>,
    b: vec4<i32>,
}

// dst[k] = Σ_u DCT8[u][k] · s[u] (s = a, b), by HEVC's even/odd
// butterflies (transform.rs inv8_1d).
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

// dst[k] = Σ_u A[u][k] · s[u] for DCT4 (butterflies) or DST4 (the matrix).
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

// Phases per band of a transform tile: columns, rows (and the predictor).
fn lossy_per_band(ti: Tile) -> u32 {
    return select(3u, 2u, ((ti.params >> 12u) & 3u) == 0u);
}

// Phases of lossy tile `ti` (uniform).
fn lossy_phases(ti: Tile) -> u32 {
    if (ti.mode == M_SPATIAL) {
        return 1u;
    }
    return ((ti.h + LX_ROWS - 1u) / LX_ROWS) * lossy_per_band(ti);
}

// SPATIAL, one phase.
fn lossy_spatial(base: u32, h: u32, w: u32, n: u32, step: u32, pred: u32, li: u32) {
    if (pred == 0u) {
        for (var wi = li; wi < (n + 3u) / 4u; wi += NT) {
            let q = unpack_s8(atomicLoad(&tb[base + wi]));
            atomicStore(&tb[base + wi], pack_s8(clamp_px4(deq_spatial4(q, step))));
        }
        return;
    }
    let words = (w & 3u) == 0u;
    if (pred == 1u) {
        // LEFT: one row per invocation
        for (var y = li; y < h; y += NT) {
            var prev = 0;
            if (words) {
                for (var c = 0u; c < w; c += 4u) {
                    let wi = base + (y * w + c) / 4u;
                    let d = deq_spatial4(unpack_s8(atomicLoad(&tb[wi])), step);
                    let x0 = clamp(prev + d.x, -127, 127);
                    let x1 = clamp(x0 + d.y, -127, 127);
                    let x2 = clamp(x1 + d.z, -127, 127);
                    let x3 = clamp(x2 + d.w, -127, 127);
                    atomicStore(&tb[wi], pack_s8(vec4<i32>(x0, x1, x2, x3)));
                    prev = x3;
                }
            } else {
                for (var c = 0u; c < w; c++) {
                    let k = y * w + c;
                    let old = tb_byte(base, k);
                    prev = clamp(prev + deq_spatial(sx8(old), step), -127, 127);
                    tb_set(base, k, old, u32(prev) & 0xffu);
                }
            }
        }
        return;
    }
    // TOP: four columns (or one) per invocation
    if (words) {
        for (var cq = li; cq < w / 4u; cq += NT) {
            var prev = vec4<i32>(0);
            for (var y = 0u; y < h; y++) {
                let wi = base + y * (w / 4u) + cq;
                prev = clamp_px4(prev + deq_spatial4(unpack_s8(atomicLoad(&tb[wi])), step));
                atomicStore(&tb[wi], pack_s8(prev));
            }
        }
    } else {
        for (var c = li; c < w; c += NT) {
            var prev = 0;
            for (var y = 0u; y < h; y++) {
                let k = y * w + c;
                let old = tb_byte(base, k);
                prev = clamp(prev + deq_spatial(sx8(old), step), -127, 127);
                tb_set(base, k, old, u32(prev) & 0xffu);
            }
        }
    }
}

// One phase of the rebuild of lossy tile `ti` (slot j) by invocation li.
fn lossy_phase(ti: Tile, j: u32, li: u32, ph: u32) {
    let base = j * 1024u;
    let w = max(ti.w, 1u);
    let h = ti.h;
    let step = ti.params & 0xfffu;
    let pred = (ti.params >> 12u) & 3u;
    if (ti.mode == M_SPATIAL) {
        lossy_spatial(base, h, w, ti.n, step, pred, li);
        return;
    }
    let big = ti.mode == M_DCT8;
    let dst = ti.mode == M_DST4;
    let nb = select(4u, 8u, big);
    let st = i32(step);
    // the band of rows [y0, y1) this phase works on; scratch index = k - o
    let per = lossy_per_band(ti);
    let y0 = (ph / per) * LX_ROWS;
    let y1 = min(h, y0 + LX_ROWS);
    let o = y0 * w;
    let sub = ph % per;
    if (sub == 0u) {
        // columns: job = (block row, tile column)
        let jobs = ((y1 - min(y0, y1)) / nb) * w;
        for (var c = li; c < jobs; c += NT) {
            let k = o + (c / w) * nb * w + c % w;
            let s0 = vec4<i32>(code_at(base, k), code_at(base, k + w), code_at(base, k + 2u * w), code_at(base, k + 3u * w)) * st;
            if (big) {
                let k4 = k + 4u * w;
                let s1 = vec4<i32>(code_at(base, k4), code_at(base, k4 + w), code_at(base, k4 + 2u * w), code_at(base, k4 + 3u * w)) * st;
                let e = inv_dct8(s0, s1);
                let f0 = (e.a + vec4<i32>(64)) >> vec4<u32>(7u);
                let f1 = (e.b + vec4<i32>(64)) >> vec4<u32>(7u);
                lx_set(k - o, f0.x);
                lx_set(k - o + w, f0.y);
                lx_set(k - o + 2u * w, f0.z);
                lx_set(k - o + 3u * w, f0.w);
                lx_set(k4 - o, f1.x);
                lx_set(k4 - o + w, f1.y);
                lx_set(k4 - o + 2u * w, f1.z);
                lx_set(k4 - o + 3u * w, f1.w);
            } else {
                let f = (inv4(dst, s0) + vec4<i32>(64)) >> vec4<u32>(7u);
                lx_set(k - o, f.x);
                lx_set(k - o + w, f.y);
                lx_set(k - o + 2u * w, f.z);
                lx_set(k - o + 3u * w, f.w);
            }
        }
        return;
    }
    if (sub == 1u) {
        // rows: job = (tile row, block column)
        let bw = w / nb;
        let jobs = (y1 - min(y0, y1)) * bw;
        for (var c = li; c < jobs; c += NT) {
            let kl = (c / bw) * w + (c % bw) * nb;
            let k = o + kl;
            var r0: vec4<i32>;
            var r1 = vec4<i32>(0);
            if (big) {
                let g8 = inv_dct8(lx4(kl), lx4(kl + 4u));
                r0 = (g8.a + vec4<i32>(2048)) >> vec4<u32>(12u);
                r1 = (g8.b + vec4<i32>(2048)) >> vec4<u32>(12u);
            } else {
                r0 = (inv4(dst, lx4(kl)) + vec4<i32>(1024)) >> vec4<u32>(11u);
            }
            if (pred == 0u) {
                atomicStore(&tb[base + k / 4u], pack_s8(clamp_px4(r0)));
                if (big) {
                    atomicStore(&tb[base + k / 4u + 1u], pack_s8(clamp_px4(r1)));
                }
            } else {
                lx_set4(kl, r0);
                if (big) {
                    lx_set4(kl + 4u, r1);
                }
            }
        }
        return;
    }
    if (pred == 1u) {
        // LEFT: a row per invocation; a block's row predicts from the pixel
        // left of it (the previous block's last in this row; 0 at c0 = 0)
        for (var y = y0 + li; y < y1; y += NT) {
            var left = 0;
            for (var c0 = 0u; c0 < w; c0 += nb) {
                let k = y * w + c0;
                let a = clamp_px4(vec4<i32>(left) + lx4(k - o));
                atomicStore(&tb[base + k / 4u], pack_s8(a));
                if (big) {
                    let b = clamp_px4(vec4<i32>(left) + lx4(k - o + 4u));
                    atomicStore(&tb[base + k / 4u + 1u], pack_s8(b));
                    left = b.w;
                } else {
                    left = a.w;
                }
            }
        }
        return;
    }
    // TOP: four columns per invocation; a block's column predicts from the
    // pixel above the block (0 for the first block row; the band above's
    // last row, final in `tb`, for a band's first)
    let wq = w / 4u;
    for (var cq = li; cq < wq; cq += NT) {
        var top = vec4<i32>(0);
        var last = vec4<i32>(0);
        if (y0 > 0u) {
            last = unpack_s8(atomicLoad(&tb[base + (o - w) / 4u + cq]));
        }
        for (var y = y0; y < y1; y++) {
            if (y % nb == 0u) {
                top = last;
            }
            let k = y * w + 4u * cq;
            last = clamp_px4(top + lx4(k - o));
            atomicStore(&tb[base + k / 4u], pack_s8(last));
        }
    }
}

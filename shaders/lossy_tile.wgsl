// Lossy tiles (docs/FORMAT.md §5.1): rebuild int8 pixels from int8 codes.
//
// A mechanical port of src/codec/lossy.rs::reconstruct and
// src/codec/transform.rs::Transform::inverse, meant to be bit-exact with
// them: 32-bit integer arithmetic only, `>>` on i32 is an arithmetic shift
// (floor), every intermediate stays inside i32 for any codes (|q| <= 128)
// and steps (<= 4095), pixels are clamped to [-127, 127].
//
// The functions work on one tile held as i32 in workgroup memory (`px`:
// codes in, pixels out, tile row-major). The entry point `rebuild_tiles`
// is a standalone reference kernel (one workgroup per tile) used by
// tests/lossy_wgsl.rs; the GPU decoder calls the same functions after its
// rANS pass.

// Mode codes and predictors (docs/FORMAT.md §3.2).
const M_SPATIAL: u32 = 5u;
const M_DCT8: u32 = 6u;
const M_DCT4: u32 = 7u;
const M_DST4: u32 = 8u;
const P_NONE: u32 = 0u;
const P_LEFT: u32 = 1u;
const P_TOP: u32 = 2u;
const SHIFT1: u32 = 7u;
const WG: u32 = 64u;

// Transform matrices, row k = basis function k (HEVC).
var<private> DCT8: array<i32, 64> = array<i32, 64>(
    64, 64, 64, 64, 64, 64, 64, 64,
    89, 75, 50, 18, -18, -50, -75, -89,
    83, 36, -36, -83, -83, -36, 36, 83,
    75, -18, -89, -50, 50, 89, 18, -75,
    64, -64, -64, 64, 64, -64, -64, 64,
    50, -89, 18, 75, -75, -18, 89, -50,
    36, -83, 83, -36, -36, 83, -83, 36,
    18, -50, 75, -89, 89, -75, 50, -18,
);
var<private> DCT4: array<i32, 16> = array<i32, 16>(
    64, 64, 64, 64,
    83, 36, -36, -83,
    64, -64, -64, 64,
    36, -83, 83, -36,
);
var<private> DST4: array<i32, 16> = array<i32, 16>(
    29, 55, 74, 84,
    74, 74, 0, -74,
    84, -29, -74, 55,
    55, -84, 74, -29,
);

var<workgroup> px: array<i32, 4096>;

fn block_size(mode: u32) -> u32 {
    return select(4u, 8u, mode == M_DCT8);
}

// A[k][n] of the mode's transform.
fn coef(mode: u32, k: u32, n: u32) -> i32 {
    if (mode == M_DCT8) {
        return DCT8[k * 8u + n];
    }
    if (mode == M_DCT4) {
        return DCT4[k * 4u + n];
    }
    return DST4[k * 4u + n];
}

fn clamp_px(v: i32) -> i32 {
    return clamp(v, -127, 127);
}

// SPATIAL's dequantisation: sign(q) * ((|q| * step + 8) >> 4).
fn deq_spatial(q: i32, step: u32) -> i32 {
    let m = i32((u32(abs(q)) * step + 8u) >> 4u);
    return select(m, -m, q < 0);
}

// The normative inverse of one N x N block: d (row-major, u = vertical
// frequency) -> r. E = A^T D by columns, F = (E + 64) >> 7, G = F A by
// rows, r = (G + 2^(S-1)) >> S with S = 12 (N = 8) or 11 (N = 4).
fn inverse_block(mode: u32, d: ptr<function, array<i32, 64>>, r: ptr<function, array<i32, 64>>) {
    let n = block_size(mode);
    let s2 = select(11u, 12u, n == 8u);
    var f: array<i32, 64>;
    for (var k = 0u; k < n; k++) {
        for (var v = 0u; v < n; v++) {
            var e = 0;
            for (var u = 0u; u < n; u++) {
                e += coef(mode, u, k) * (*d)[u * n + v];
            }
            f[k * n + v] = (e + (1 << (SHIFT1 - 1u))) >> SHIFT1;
        }
    }
    for (var k = 0u; k < n; k++) {
        for (var l = 0u; l < n; l++) {
            var g = 0;
            for (var v = 0u; v < n; v++) {
                g += f[k * n + v] * coef(mode, v, l);
            }
            (*r)[k * n + l] = (g + (1 << (s2 - 1u))) >> s2;
        }
    }
}

// Rebuild the block at (r0, c0) of a w-wide tile in `px`: codes in, pixels out.
fn rebuild_block(mode: u32, step: u32, pred: u32, w: u32, r0: u32, c0: u32) {
    let n = block_size(mode);
    var d: array<i32, 64>;
    var r: array<i32, 64>;
    for (var k = 0u; k < n; k++) {
        for (var l = 0u; l < n; l++) {
            d[k * n + l] = px[(r0 + k) * w + c0 + l] * i32(step);
        }
    }
    inverse_block(mode, &d, &r);
    for (var k = 0u; k < n; k++) {
        for (var l = 0u; l < n; l++) {
            var p = 0;
            if (pred == P_LEFT && c0 > 0u) {
                p = px[(r0 + k) * w + c0 - 1u];
            } else if (pred == P_TOP && r0 > 0u) {
                p = px[(r0 - 1u) * w + c0 + l];
            }
            px[(r0 + k) * w + c0 + l] = clamp_px(p + r[k * n + l]);
        }
    }
}

// Rebuild an h x w tile held in `px` (codes in, pixels out) by the WG
// invocations of a workgroup; `li` is this invocation's index. Uniform
// control flow: every invocation calls it with the same tile. The caller
// puts a workgroup barrier before (codes loaded) and after (pixels ready).
fn rebuild_tile(mode: u32, params: u32, h: u32, w: u32, li: u32) {
    let step = params & 0xfffu;
    let pred = (params >> 12u) & 3u;
    if (mode == M_SPATIAL) {
        if (pred == P_NONE) {
            for (var i = li; i < h * w; i += WG) {
                px[i] = clamp_px(deq_spatial(px[i], step));
            }
        } else if (pred == P_LEFT) {
            // One invocation per row, left to right.
            for (var i = li; i < h; i += WG) {
                var prev = 0;
                for (var j = 0u; j < w; j++) {
                    prev = clamp_px(prev + deq_spatial(px[i * w + j], step));
                    px[i * w + j] = prev;
                }
            }
        } else {
            // One invocation per column, top to bottom.
            for (var j = li; j < w; j += WG) {
                var prev = 0;
                for (var i = 0u; i < h; i++) {
                    prev = clamp_px(prev + deq_spatial(px[i * w + j], step));
                    px[i * w + j] = prev;
                }
            }
        }
        return;
    }
    let n = block_size(mode);
    let bh = h / n;
    let bw = w / n;
    if (pred == P_NONE) {
        // Blocks are independent.
        for (var b = li; b < bh * bw; b += WG) {
            rebuild_block(mode, step, pred, w, (b / bw) * n, (b % bw) * n);
        }
    } else if (pred == P_LEFT) {
        // One invocation per row of blocks, left to right.
        for (var by = li; by < bh; by += WG) {
            for (var bx = 0u; bx < bw; bx++) {
                rebuild_block(mode, step, pred, w, by * n, bx * n);
            }
        }
    } else {
        // One invocation per column of blocks, top to bottom.
        for (var bx = li; bx < bw; bx += WG) {
            for (var by = 0u; by < bh; by++) {
                rebuild_block(mode, step, pred, w, by * n, bx * n);
            }
        }
    }
}

// ---- the standalone reference kernel ----

// Per tile: (first word in `codes` / `pixels`, h | w << 16, mode, params).
// Codes and pixels are int8, four to a u32 (little-endian), tile order,
// each tile starting on a word.
@group(0) @binding(0) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read_write> pixels: array<u32>;

@compute @workgroup_size(64)
fn rebuild_tiles(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tiles[wid.x];
    let h = t.y & 0xffffu;
    let w = t.y >> 16u;
    let words = (h * w + 3u) / 4u;
    for (var i = li; i < words; i += WG) {
        let v = codes[t.x + i];
        for (var b = 0u; b < 4u; b++) {
            if (4u * i + b < h * w) {
                px[4u * i + b] = i32(v << (24u - 8u * b)) >> 24u;
            }
        }
    }
    workgroupBarrier();
    rebuild_tile(t.z, t.w, h, w, li);
    workgroupBarrier();
    for (var i = li; i < words; i += WG) {
        var v = 0u;
        for (var b = 0u; b < 4u; b++) {
            if (4u * i + b < h * w) {
                v |= (u32(px[4u * i + b]) & 0xffu) << (8u * b);
            }
        }
        pixels[t.x + i] = v;
    }
}

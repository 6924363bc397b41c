// Helpers shared by gemv_rans_i8.wgsl and gemv_rans_tiles.wgsl (appended
// to each): bytes of a decoder's tile buffer `tile` (pitch 64, 1024 words
// per decoder), bytewise adds, int8 → f32, x (the kernels' binding, f16
// pairs when X_HALF) as f32, a tile's end checks and the AVG wavefront.

// Byte helpers on a tile buffer (pitch 64).
fn tb_get(d: u32, i: u32, j: u32) -> u32 {
    let a = d * 1024u + i * 16u + (j >> 2u);
    return (atomicLoad(&tile[a]) >> ((j & 3u) * 8u)) & 0xffu;
}
fn tb_set(d: u32, i: u32, j: u32, v: u32) {
    let a = d * 1024u + i * 16u + (j >> 2u);
    let sh = (j & 3u) * 8u;
    let old = atomicLoad(&tile[a]);
    atomicStore(&tile[a], (old & ~(0xffu << sh)) | ((v & 0xffu) << sh));
}

// Bytewise a + b (mod 256 per byte).
fn add_bytes(a: u32, b: u32) -> u32 {
    return ((a & 0x7f7f7f7fu) + (b & 0x7f7f7f7fu)) ^ ((a ^ b) & 0x80808080u);
}

fn sx8(v: u32) -> i32 {
    return (i32(v << 24u)) >> 24u;
}

// Four int8 (a u32) as f32, exactly (bitcast(0x4B000000 | (q + 128)) − (2^23 + 128)).
fn i8x4(u: u32) -> vec4<f32> {
    let b = u ^ 0x80808080u;
    let m = vec4<u32>(b & 0xffu, (b >> 8u) & 0xffu, (b >> 16u) & 0xffu, b >> 24u) | vec4<u32>(0x4B000000u);
    return bitcast<vec4<f32>>(m) - vec4<f32>(8388736.0);
}

// x[c..c+4) as f32 (x is padded with zeros to whole tiles).
fn x4(c: u32) -> vec4<f32> {
    let nx = arrayLength(&x);
    if (X_HALF) {
        let i = min(c >> 1u, nx - 2u);
        return vec4<f32>(unpack2x16float(x[i]), unpack2x16float(x[i + 1u]));
    }
    let i = min(c, nx - 4u);
    return vec4<f32>(bitcast<f32>(x[i]), bitcast<f32>(x[i + 1u]), bitcast<f32>(x[i + 2u]), bitcast<f32>(x[i + 3u]));
}

// FORMAT.md §4's end conditions of a tile of n symbols, for this lane: a
// final state 2^16 whose tail bits (rl symbols of p.tail_bits) were all
// read, and (lane 0) the tile's words all used: `q` words read, `nw` in
// the tile. A failure sets err[0].
fn check_tile_end(lane: u32, n: u32, rl: u32, xs: u32, q: u32, nw: u32) {
    var bad = false;
    if (lane < rans_active_lanes(n)) {
        bad = (xs >> 16u) != 1u || ((xs & 0xffffu) >> min(p.tail_bits * rl, 16u)) != 0u;
    }
    if (lane == 0u && q != nw) {
        bad = true;
    }
    if (bad) {
        atomicOr(&err[0], 1u);
    }
}

// AVG prediction (docs/FORMAT.md §5: (left + top) >> 1; on the edges the
// one neighbour, 0 at (0, 0)) on anti-diagonal dg of decoder dec's h × w
// tile, whose neighbours were rebuilt on earlier diagonals. This lane takes
// rows lane, lane + 32, ...; the caller puts a workgroup barrier between
// diagonals.
fn avg_diagonal(dec: u32, dg: u32, h: u32, w: u32, lane: u32) {
    for (var i = lane; i < h; i += 32u) {
        if (dg >= i && dg - i < w) {
            let j = dg - i;
            let r = tb_get(dec, i, j);
            var pr = 0;
            if (i == 0u && j > 0u) {
                pr = sx8(tb_get(dec, 0u, j - 1u));
            } else if (j == 0u && i > 0u) {
                pr = sx8(tb_get(dec, i - 1u, 0u));
            } else if (i > 0u && j > 0u) {
                pr = (sx8(tb_get(dec, i, j - 1u)) + sx8(tb_get(dec, i - 1u, j))) >> 1u;
            }
            tb_set(dec, i, j, r + u32(pr));
        }
    }
}

// Pieces the fast decode kernels share (rans_fast.wgsl and
// rans_fast_lossy.wgsl; prepended after them by src/wgpu/shaders.rs). The
// includer declares `grp` and defines
//     fn word_at(k: u32) -> u32
// returning the u16 word at index k of its stage (or of its input).

fn grp_at(i: u32) -> u32 {
    if (i < arrayLength(&grp)) {
        return grp[i];
    }
    return 0u;
}

// Word i of a tile of nw words whose first word is at u16 index k0; 0 past its end.
fn tile_word(k0: u32, nw: u32, i: u32) -> u32 {
    if (i >= nw) {
        return 0u;
    }
    return word_at(k0 + i);
}

fn sx8(v: u32) -> i32 {
    return i32(v << 24u) >> 24u;
}

// This lane's initial state (FORMAT.md §3.3: 32 lanes, 8 code words) of the
// tile of nw words at u16 index k0: (state, words before the body, error bits).
fn tile_init(k0: u32, nw: u32) -> vec3<u32> {
    let lane = p_lane;
    var err = 0u;
    if (nw < 8u) {
        err |= E_STATES;
    }
    var csum = 0u;
    var csum_lt = 0u;
    var myc = 0u;
    for (var cw = 0u; cw < 8u; cw++) {
        let wv = tile_word(k0, nw, cw);
        for (var nib = 0u; nib < 4u; nib++) {
            let idx = cw * 4u + nib;
            let c = (wv >> (4u * nib)) & 15u;
            csum += c;
            if (idx < lane) {
                csum_lt += c;
            }
            if (idx == lane) {
                myc = c;
            }
        }
    }
    let total_bits = 128u + 512u + csum;
    let p0 = (total_bits + 15u) / 16u;
    if ((total_bits & 15u) != 0u && (tile_word(k0, nw, total_bits / 16u) >> (total_bits & 15u)) != 0u) {
        err |= E_STATES;
    }
    let bitpos = 128u + 16u * lane + csum_lt;
    let nb = 16u + myc;
    if ((bitpos + nb + 15u) / 16u > nw) {
        err |= E_STATES;
    }
    let w0 = bitpos / 16u;
    let sh = bitpos & 15u;
    let lo = tile_word(k0, nw, w0) | (tile_word(k0, nw, w0 + 1u) << 16u);
    let hi = tile_word(k0, nw, w0 + 2u);
    var v = lo >> sh;
    if (sh > 0u) {
        v |= hi << (32u - sh);
    }
    v &= (1u << nb) - 1u;
    return vec3<u32>((1u << nb) | v, p0, err);
}

// The end conditions (FORMAT.md §4) of a tile of nw words, p0 before its
// body, that read q body words and ended in state x.
fn tile_end(x: u32, q: u32, nw: u32, p0: u32, tbits: u32, ntail: u32) -> u32 {
    var err = 0u;
    let body = select(0u, nw - p0, nw >= p0);
    if (q > body) {
        err |= E_UNDERFLOW;
    } else if (q < body) {
        err |= E_TRAILING;
    }
    if ((x >> 16u) != 1u || ((x & 0xffffu) >> min(tbits * ntail, 16u)) != 0u) {
        err |= E_FINAL;
    }
    return err;
}

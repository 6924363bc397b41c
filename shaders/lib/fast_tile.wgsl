// Pieces the fast decode kernels share (rans_fast.wgsl and
// rans_fast_lossy.wgsl; prepended after them by src/wgpu/shaders.rs). The
// includer declares `grp` and defines
//     fn word_at(k: u32) -> u32
// returning the u16 word at index k of its stage (or of its input), and
// `stage` (workgroup u32s, STAGE_ALL of them).

fn grp_at(i: u32) -> u32 {
    if (i < arrayLength(&grp)) {
        return grp[i];
    }
    return 0u;
}

// The record (its index in `grp`) of workgroup wg's group: the last group
// whose first workgroup is <= wg (a binary search, at most 24 steps).
fn group_record(wg: u32) -> u32 {
    let ng = max(grp_at(0u), 1u);
    var lo = 0u;
    var hi = ng - 1u;
    for (var it = 0u; it < 24u && lo < hi; it++) {
        let mid = (lo + hi + 1u) / 2u;
        if (grp_at(GRP_HDR + mid * GRP_WORDS) <= wg) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return GRP_HDR + lo * GRP_WORDS;
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

// Stage a tile's `len` u32 words (`inp` from u0) into `stage` from st0: this
// lane's share of its 32, sixteen loads in flight per lane.
fn stage_tile(u0: u32, st0: u32, len: u32, lane: u32) {
    for (var i = lane; i < len; i += 512u) {
        let a0 = inp_at(u0 + i);
        let a1 = inp_at(u0 + i + 32u);
        let a2 = inp_at(u0 + i + 64u);
        let a3 = inp_at(u0 + i + 96u);
        let a4 = inp_at(u0 + i + 128u);
        let a5 = inp_at(u0 + i + 160u);
        let a6 = inp_at(u0 + i + 192u);
        let a7 = inp_at(u0 + i + 224u);
        let a8 = inp_at(u0 + i + 256u);
        let a9 = inp_at(u0 + i + 288u);
        let a10 = inp_at(u0 + i + 320u);
        let a11 = inp_at(u0 + i + 352u);
        let a12 = inp_at(u0 + i + 384u);
        let a13 = inp_at(u0 + i + 416u);
        let a14 = inp_at(u0 + i + 448u);
        let a15 = inp_at(u0 + i + 480u);
        stage[st0 + i] = a0;
        if (i + 32u < len) { stage[st0 + i + 32u] = a1; }
        if (i + 64u < len) { stage[st0 + i + 64u] = a2; }
        if (i + 96u < len) { stage[st0 + i + 96u] = a3; }
        if (i + 128u < len) { stage[st0 + i + 128u] = a4; }
        if (i + 160u < len) { stage[st0 + i + 160u] = a5; }
        if (i + 192u < len) { stage[st0 + i + 192u] = a6; }
        if (i + 224u < len) { stage[st0 + i + 224u] = a7; }
        if (i + 256u < len) { stage[st0 + i + 256u] = a8; }
        if (i + 288u < len) { stage[st0 + i + 288u] = a9; }
        if (i + 320u < len) { stage[st0 + i + 320u] = a10; }
        if (i + 352u < len) { stage[st0 + i + 352u] = a11; }
        if (i + 384u < len) { stage[st0 + i + 384u] = a12; }
        if (i + 416u < len) { stage[st0 + i + 416u] = a13; }
        if (i + 448u < len) { stage[st0 + i + 448u] = a14; }
        if (i + 480u < len) { stage[st0 + i + 480u] = a15; }
    }
}

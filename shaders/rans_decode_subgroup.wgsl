// The subgroup path of rans_decode.wgsl: the lanes of a tile find their
// read offsets in the shared word stream by a subgroup ballot and popcount.
//
// SG_WIDE (subgroups of 32 or more, e.g. NVIDIA 32, AMD 64): a tile's 32
// lanes lie in one subgroup; the ballot alone gives offset and count, with no
// barrier in the decode loop. Otherwise (subgroups of 4..32, e.g. lavapipe
// 8, Intel 8..32): each subgroup ballots its part of the tile and the parts'
// counts are summed through workgroup memory, one barrier per step.
// A subgroup size the chosen variant cannot use sets E_SUBGROUP on every
// tile instead of decoding wrongly; the host then falls back.

override SG_WIDE: bool = true;
// The subgroup size is exactly 32 (NVIDIA): the ballot's first word is the tile's.
override SG32: bool = false;
override PCNT: u32 = select(24u * TILES, 1u, SG_WIDE);

var<private> p_sg_inv: u32;
var<private> p_sg_size: u32;
var<private> p_sg_bad: bool;
// counts per (step mod 3, tile, subgroup of the tile)
var<workgroup> pcnt: array<u32, PCNT>;

fn path_err() -> u32 {
    return select(0u, E_SUBGROUP, p_sg_bad);
}

fn prefix_reset(li: u32) {}

// (offset among the tile's lanes that need a word, lanes that need one)
fn tile_prefix(need: bool, s: u32, j: u32, lane: u32) -> vec2<u32> {
    let b = subgroupBallot(need);
    if (SG_WIDE && SG32) {
        return vec2<u32>(countOneBits(b.x & ((1u << lane) - 1u)), countOneBits(b.x));
    }
    if (SG_WIDE) {
        let c = p_sg_inv / 32u;
        var bits = b.x;
        if (c == 1u) {
            bits = b.y;
        } else if (c == 2u) {
            bits = b.z;
        } else if (c == 3u) {
            bits = b.w;
        }
        return vec2<u32>(countOneBits(bits & ((1u << lane) - 1u)), countOneBits(bits));
    }
    let sg = clamp(p_sg_size, 4u, 32u);
    let mine = countOneBits(b.x & ((1u << (p_sg_inv & 31u)) - 1u));
    let sb = min(lane / sg, 7u);
    let nsb = min(32u / sg, 8u);
    let base = (s % 3u) * TILES * 8u + j * 8u;
    if (p_sg_inv == 0u) {
        pcnt[min(base + sb, PCNT - 1u)] = countOneBits(b.x);
    }
    workgroupBarrier();
    var pre = mine;
    var tot = 0u;
    for (var i = 0u; i < nsb; i++) {
        let c = pcnt[min(base + i, PCNT - 1u)];
        tot += c;
        if (i < sb) {
            pre += c;
        }
    }
    return vec2<u32>(pre, tot);
}

@compute @workgroup_size(NT)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) sii: u32,
    @builtin(subgroup_size) ssz: u32,
) {
    p_sg_inv = sii;
    p_sg_size = ssz;
    let vl = sid * ssz + sii;
    var bad = vl >= NT;
    if (SG32) {
        bad = bad || ssz != 32u;
    }
    if (SG_WIDE) {
        bad = bad || ssz < 32u || (ssz % 32u) != 0u;
    } else {
        bad = bad || ssz < 4u || ssz > 32u || (32u % ssz) != 0u;
    }
    p_sg_bad = bad;
    decode_main(li, min(vl, NT - 1u), wid.x, nwg.x);
}

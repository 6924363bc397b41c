// The subgroup path of rans_fast_lossy.wgsl: the lanes of a tile find their read
// offsets in the shared word stream by a subgroup ballot and popcount.
//
// PREFIX 0 (subgroups of exactly 32, NVIDIA): a tile is one subgroup; the
// ballot's first word is the tile's, no barrier in the decode loop.
// PREFIX 1 (subgroups of 4..32 dividing 32, e.g. lavapipe 8, Intel): each
// subgroup ballots its part of the tile and the parts' counts meet in
// workgroup memory, one barrier per step (every slot of the workgroup takes
// the same steps: all fast tiles have 4096 symbols).
// A subgroup size the variant cannot use sets E_SUBGROUP on every tile.

override PREFIX: u32 = 0u;
// the decode table, then (PREFIX 1) counts per (step mod 3, slot, subgroup of the slot)
override LUT_WORDS: u32 = select(4096u, 4096u + 24u * WARPS, PREFIX == 1u);

fn prefix_reset(li: u32) {}

// (offset among the tile's lanes that need a word, lanes that need one)
fn prefix(need: bool, s: u32) -> vec2<u32> {
    let b = subgroupBallot(need);
    if (PREFIX == 0u) {
        return vec2<u32>(countOneBits(b.x & p_ltmask), countOneBits(b.x));
    }
    let sg = clamp(p_sgs, 4u, 32u);
    let mine = countOneBits(b.x & ((1u << (p_sgi & 31u)) - 1u));
    let sb = min(p_lane / sg, 7u);
    let nsb = min(32u / sg, 8u);
    let base = 4096u + (s % 3u) * WARPS * 8u + p_slot * 8u;
    if (p_sgi == 0u) {
        lut[min(base + sb, LUT_WORDS - 1u)] = countOneBits(b.x);
    }
    workgroupBarrier();
    var pre = mine;
    var tot = 0u;
    for (var i = 0u; i < nsb; i++) {
        let c = lut[min(base + i, LUT_WORDS - 1u)];
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
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) sii: u32,
    @builtin(subgroup_size) ssz: u32,
) {
    p_sgi = sii;
    p_sgs = ssz;
    let vl = sid * ssz + sii;
    var bad = vl >= NT;
    if (PREFIX == 0u) {
        bad = bad || ssz != 32u;
    } else {
        bad = bad || ssz < 4u || ssz > 32u || (32u % ssz) != 0u;
    }
    fast_main(li, min(vl, NT - 1u), wid.x, bad);
}

// The workgroup-memory path of rans_fast_lossy.wgsl, for adapters without
// SUBGROUP: each lane that needs a word sets its bit in its slot's ballot
// word; after one barrier every lane reads the word and counts the bits
// below its own. Three ballot words per slot rotate, so a step needs one
// barrier (every slot of the workgroup takes the same steps).

override LUT_WORDS: u32 = 4096u;
override BAL: u32 = 3u * WARPS;

var<workgroup> ballots: array<atomic<u32>, BAL>;

fn prefix_reset(li: u32) {
    for (var i = li; i < BAL; i += NT) {
        atomicStore(&ballots[i], 0u);
    }
}

// (offset among the tile's lanes that need a word, lanes that need one)
fn prefix(need: bool, s: u32) -> vec2<u32> {
    let cur = (s % 3u) * WARPS + p_slot;
    let nxt = ((s + 1u) % 3u) * WARPS + p_slot;
    if (need) {
        atomicOr(&ballots[cur], 1u << p_lane);
    }
    if (p_lane == 0u) {
        atomicStore(&ballots[nxt], 0u);
    }
    workgroupBarrier();
    let b = atomicLoad(&ballots[cur]);
    return vec2<u32>(countOneBits(b & p_ltmask), countOneBits(b));
}

@compute @workgroup_size(NT)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    fast_main(li, li, wid.x, false);
}

// The workgroup-memory path of rans_decode.wgsl, for adapters without
// SUBGROUP: each lane that needs a word sets its bit in the tile's ballot
// word in workgroup memory; after one barrier every lane reads the word and
// counts the bits below its own. Three ballot words per tile rotate, so a
// step needs one barrier: the word for step s+1 is cleared in step s, after
// everyone has read it in step s-2.

override BAL: u32 = 3u * TILES;

var<workgroup> ballots: array<atomic<u32>, BAL>;

fn path_err() -> u32 {
    return 0u;
}

fn prefix_reset(li: u32) {
    for (var i = li; i < BAL; i += NT) {
        atomicStore(&ballots[i], 0u);
    }
}

// (offset among the tile's lanes that need a word, lanes that need one)
fn tile_prefix(need: bool, s: u32, j: u32, lane: u32) -> vec2<u32> {
    let cur = (s % 3u) * TILES + j;
    let nxt = ((s + 1u) % 3u) * TILES + j;
    if (need) {
        atomicOr(&ballots[cur], 1u << lane);
    }
    if (lane == 0u) {
        atomicStore(&ballots[nxt], 0u);
    }
    workgroupBarrier();
    let b = atomicLoad(&ballots[cur]);
    return vec2<u32>(countOneBits(b & ((1u << lane) - 1u)), countOneBits(b));
}

@compute @workgroup_size(NT)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    decode_main(li, li, wid.x, nwg.x);
}

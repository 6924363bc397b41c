// Word-read ballots of a 32-lane rANS decoder on subgroups (needs SUBGROUP).
// Returns the mask of the decoder's lanes that need a word in this step.
//
// SG_WIDE (subgroups of 32 or more: NVIDIA 32, AMD 64): a decoder is 32 lanes
// of one subgroup; the ballot alone is the mask, no barrier. Otherwise
// (subgroups of 4 to 32 lanes, e.g. lavapipe's 8): a decoder spans 32 / size
// subgroups; each subgroup's first lane ORs its ballot into the decoder's
// mask in workgroup memory, then a barrier (three rotating slots as in
// ballot_wg.wgsl). Must be called in uniform control flow.

override SG_WIDE: bool = true;
// Subgroups of exactly 32 lanes (the host knows: minimum = maximum = 32,
// e.g. NVIDIA): a decoder is a whole subgroup, its mask the ballot's first word.
override SG32: bool = false;

var<private> SG_SIZE: u32;
var<workgroup> bal: array<atomic<u32>, BAL_WORDS>;

fn ballot32(dec: u32, lane: u32, need: bool, step: u32) -> u32 {
    let b = subgroupBallot(need);
    if (SG32) {
        return b.x;
    }
    if (SG_WIDE) {
        return b[(SG_LANE / 32u) & 3u];
    }
    let sg = clamp(SG_SIZE, 1u, 32u);
    let cur = dec * 3u + step % 3u;
    if (SG_LANE == 0u) {
        var part = b.x;
        if (sg < 32u) {
            part &= (1u << sg) - 1u;
        }
        atomicOr(&bal[cur], part << ((lane / sg) * sg));
    }
    if (lane == 0u) {
        atomicStore(&bal[dec * 3u + (step + 1u) % 3u], 0u);
    }
    workgroupBarrier();
    return atomicLoad(&bal[cur]);
}

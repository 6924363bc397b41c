// Word-read ballots of a 32-lane rANS decoder without subgroups: each lane
// that needs a word sets its bit in workgroup memory, then a barrier. Three
// rotating slots per decoder: step s uses slot s mod 3 and clears slot
// (s + 1) mod 3, which nobody reads or writes until after this step's barrier.
// Must be called in uniform control flow.

// No subgroups: never wide (ballot_sg.wgsl's override of the same name).
const SG_WIDE: bool = false;

var<workgroup> bal: array<atomic<u32>, BAL_WORDS>;

fn ballot32(dec: u32, lane: u32, need: bool, step: u32) -> u32 {
    let cur = dec * 3u + step % 3u;
    if (need) {
        atomicOr(&bal[cur], 1u << lane);
    }
    if (lane == 0u) {
        atomicStore(&bal[dec * 3u + (step + 1u) % 3u], 0u);
    }
    workgroupBarrier();
    return atomicLoad(&bal[cur]);
}

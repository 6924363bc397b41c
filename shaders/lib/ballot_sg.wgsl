// Word-read ballots of a 32-lane rANS decoder on subgroups of 32 or more
// lanes (a decoder is 32 lanes of one subgroup): subgroupBallot, no barriers.
// Returns the mask of the decoder's lanes that need a word in this step.
// Needs SUBGROUP and a subgroup size ≥ 32.

fn ballot32(dec: u32, lane: u32, need: bool, step: u32) -> u32 {
    let b = subgroupBallot(need);
    let w = (SG_LANE / 32u) & 3u;
    return b[w];
}

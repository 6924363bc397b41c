// The rANS tile decode of docs/FORMAT.md §4 (MUST), the pieces any kernel
// decoding 64×64 tiles can share: lane layout, packed initial states, one
// decode step. The includer defines
//     fn tile_word(d: u32, k: u32) -> u32
// returning word k (a u16 in the low bits) of decoder d's current tile
// (0 past its end), and `lut` (the 4096-entry decode tables, entry =
// symbol | (freq − 1) << 8 | (slot − cum) << 20, as rans::decode_lut).
//
// One decoder is 32 lanes; lane l owns tile symbols k = 128·(s div 4) + 4·l +
// (s mod 4) for its steps s < n_l.

const RANS_LANES: u32 = 32u;
const RANS_L: u32 = 65536u;

// Symbols lane l owns in a tile of n symbols.
fn rans_lane_count(n: u32, l: u32) -> u32 {
    let rem = n % 128u;
    var part = 0u;
    if (rem > 4u * l) {
        part = min(rem - 4u * l, 4u);
    }
    return 4u * (n / 128u) + part;
}

// Lanes with at least one symbol.
fn rans_active_lanes(n: u32) -> u32 {
    return min((n + 3u) / 4u, 32u);
}

// Lane l's initial state, and (in .y) the first word of the tile's symbol
// stream (after the state block), from the packed state block (§3.3).
fn rans_initial_state(d: u32, n: u32, l: u32) -> vec2<u32> {
    let a = rans_active_lanes(n);
    let ncw = (a + 3u) / 4u;
    // Bits of the lanes below l, and of all lanes.
    var below = 0u;
    var total = 0u;
    for (var i = 0u; i < a; i++) {
        let c = (tile_word(d, i / 4u) >> (4u * (i % 4u))) & 15u;
        if (i < l) {
            below += 16u + c;
        }
        total += 16u + c;
    }
    let body = ncw + (total + 15u) / 16u;
    if (l >= a) {
        return vec2<u32>(RANS_L, body);
    }
    let nb = 16u + ((tile_word(d, l / 4u) >> (4u * (l % 4u))) & 15u);
    let pos = ncw * 16u + below;
    let w0 = pos / 16u;
    let sh = pos % 16u;
    let lo = tile_word(d, w0) | (tile_word(d, w0 + 1u) << 16u);
    var v = lo >> sh;
    if (sh != 0u) {
        v |= tile_word(d, w0 + 2u) << (32u - sh);
    }
    v &= (1u << nb) - 1u;
    return vec2<u32>((1u << nb) | v, body);
}

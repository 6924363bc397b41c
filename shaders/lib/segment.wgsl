// The segment records, group records, output kinds, error bits and tile
// modes that src/wgpu/plan.rs writes and the decode kernels read
// (rans_decode.wgsl with rans_lossy.wgsl, rans_fast.wgsl,
// rans_fast_lossy.wgsl, render_unaligned.wgsl): prepended to each of their
// sources. Every value is checked against plan.rs (and the mode codes
// against codec::predict::Mode) by a unit test in plan.rs.

const SEG_WORDS: u32 = 32u;
const HDR_WORDS: u32 = 4u;
// segment fields
const S_UNIT_START: u32 = 0u;
const S_TILE_FIRST: u32 = 1u;
const S_TILE_COUNT: u32 = 2u;
const S_ROWS: u32 = 3u;
const S_COLS: u32 = 4u;
const S_TILE_H: u32 = 5u;
const S_TILE_W: u32 = 6u;
const S_TILES_X: u32 = 7u;
const S_PROB_BITS: u32 = 8u;
const S_TAIL: u32 = 9u;
const S_NTABLES: u32 = 10u;
const S_TABLE_OFF: u32 = 11u;
const S_INDEX_BASE: u32 = 12u;
const S_STREAM_BASE: u32 = 13u;
const S_WORD_ORIGIN: u32 = 14u;
const S_WORD_LO: u32 = 15u;
const S_WORD_HI: u32 = 16u;
const S_KIND: u32 = 17u;
const S_OUT_ADJ: u32 = 18u;
const S_ROW_ORG: u32 = 19u;
const S_COL_ORG: u32 = 20u;
const S_RAW_BASE: u32 = 21u;
const S_SCALE_BASE: u32 = 22u;
const S_SCRATCH_BASE: u32 = 23u;
const S_ERR_SLOT: u32 = 24u;
// unaligned grids (render_unaligned.wgsl): the output words of this chunk and
// its element range
const S_U_WORD_FIRST: u32 = 25u;
const S_U_WORD_COUNT: u32 = 26u;
const S_U_ELO: u32 = 27u;
const S_U_EHI: u32 = 28u;
// tiles the fast kernel decodes (rans_fast.wgsl): tables (bits 0..4) and the
// longest tile in words (bits 16..32); 0: none
const S_FAST: u32 = 29u;
// host-built u32-per-slot tables (4096 words each) in the plan; 0: none
const S_LUT_OFF: u32 = 30u;
// output kinds (S_KIND bits 0..4), source dtype (bits 4..8), target dtype (8..12), flags
const K_BYTES: u32 = 0u;
const K_SPLIT: u32 = 1u;
const K_DEQ: u32 = 2u;
// lossy pixels times their tile's scale (the scales of the segment's tiles at S_SCALE_BASE)
const K_LDEQ: u32 = 3u;
const F_XOR80: u32 = 0x1000u;
const F_SCRATCH: u32 = 0x2000u;
// the segment's plane holds lossy tiles (modes 5..8, rans_lossy.wgsl)
const F_LOSSY: u32 = 0x4000u;
// error bits
const E_STATES: u32 = 1u;
const E_UNDERFLOW: u32 = 2u;
const E_TRAILING: u32 = 4u;
const E_FINAL: u32 = 8u;
const E_INDEX: u32 = 16u;
const E_SUBGROUP: u32 = 32u;
// group records of the fast kernels (plan.rs `FastGroup`)
const GRP_HDR: u32 = 4u;
const GRP_WORDS: u32 = 8u;
// tile modes (FORMAT.md §3.2): lossless predictors, then lossy tile types
const M_NONE: u32 = 0u;
const M_LEFT: u32 = 1u;
const M_TOP: u32 = 2u;
const M_AVG: u32 = 3u;
const M_PLANAR: u32 = 4u;
const M_SPATIAL: u32 = 5u;
const M_DCT8: u32 = 6u;
const M_DCT4: u32 = 7u;
const M_DST4: u32 = 8u;

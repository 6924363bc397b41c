// Output for grids whose rows do not start on a 4-byte boundary (rank >= 2,
// cols * element size not a multiple of 4, e.g. 65 x 63 int8): the decode
// kernel wrote each tile's rebuilt bytes tile-major to `scratch`; here one
// invocation builds one output word from the bytes of every element in it,
// wherever their tiles are, and renders them (U8 flip, dequantisation).
//
// A word whose elements all belong to this chunk is stored; a word shared
// with the previous or next chunk is OR-ed into the output, which the host
// zeroed first, so the two chunks' halves meet without a race.
//
// Source: lib_float.wgsl + lib/segment.wgsl (the segment fields S_*, kinds
// K_*, flags F_*) + this file. Bindings: 0 plan (one segment in the
// layout of rans_decode.wgsl), 1 inp (the chunk's input, for scales),
// 2 scratch (read), 3 out (atomic words).

override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> plan: array<u32>;
@group(0) @binding(1) var<storage, read> inp: array<u32>;
@group(0) @binding(2) var<storage, read> scratch: array<u32>;
@group(0) @binding(3) var<storage, read_write> outw: array<atomic<u32>>;

fn seg(f: u32) -> u32 {
    let i = HDR_WORDS + f;
    if (i < arrayLength(&plan)) {
        return plan[i];
    }
    return 0u;
}

fn at(a: u32) -> u32 {
    if (a < arrayLength(&inp)) {
        return inp[a];
    }
    return 0u;
}

// The tile slot (in the segment) of element `e` (relative to the window).
fn slot_of(e: u32) -> u32 {
    let cols = max(seg(S_COLS), 1u);
    let local = e - seg(S_OUT_ADJ);
    let row = seg(S_ROW_ORG) + local / cols;
    let col = local % cols;
    return (row / 64u) * seg(S_TILES_X) + col / 64u - seg(S_TILE_FIRST);
}

// The rebuilt byte of element `e` (relative to the window), from scratch.
fn byte_of(e: u32) -> u32 {
    let cols = max(seg(S_COLS), 1u);
    let local = e - seg(S_OUT_ADJ);
    let row = seg(S_ROW_ORG) + local / cols;
    let col = local % cols;
    let tx = col / 64u;
    let slot = slot_of(e);
    let w = min(64u, cols - tx * 64u);
    let k = (row % 64u) * w + col % 64u;
    let i = seg(S_SCRATCH_BASE) + slot * 1024u + k / 4u;
    if (slot >= seg(S_TILE_COUNT) || i >= arrayLength(&scratch)) {
        return 0u;
    }
    return (scratch[i] >> (8u * (k % 4u))) & 0xffu;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let kind = seg(S_KIND);
    let tile_sc = (kind & 15u) == K_LDEQ;
    let deq = (kind & 15u) == K_DEQ || tile_sc;
    let dst = (kind >> 8u) & 15u;
    let per = select(4u, 2u, deq);
    let lo = seg(S_U_ELO);
    let hi = seg(S_U_EHI);
    let cols = max(seg(S_COLS), 1u);
    for (var wi = gid.x; wi < seg(S_U_WORD_COUNT); wi += nwg.x * WG) {
        let word = seg(S_U_WORD_FIRST) + wi;
        var v = 0u;
        var full = true;
        for (var i = 0u; i < per; i++) {
            let e = word * per + i;
            if (e < lo || e >= hi) {
                full = false;
                continue;
            }
            let b = byte_of(e);
            if (deq) {
                let row = seg(S_ROW_ORG) + (e - seg(S_OUT_ADJ)) / cols;
                var sc = at(seg(S_SCALE_BASE) + row - seg(S_ROW_ORG));
                if (tile_sc) {
                    sc = at(seg(S_SCALE_BASE) + slot_of(e));
                }
                v |= (from_f32_bits(mul_i8_f32(b, sc), dst) & 0xffffu) << (16u * i);
            } else {
                var x = b;
                if ((kind & F_XOR80) != 0u) {
                    x ^= 0x80u;
                }
                v |= x << (8u * i);
            }
        }
        if (word < arrayLength(&outw)) {
            if (full) {
                atomicStore(&outw[word], v);
            } else {
                atomicOr(&outw[word], v);
            }
        }
    }
}

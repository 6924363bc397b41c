// Tied embeddings: the next hidden state of each sequence is the row of the
// weights W (vocab × hidden, the head's own matrix) at the token just
// sampled. Vector b of x gets row tokens[b] of W word for word: W and x
// share their element type (f16 or f32) and their padded row length, so a
// row is `words` u32 in both. One dispatch per row block of W (binding 0
// holds rows row0 .. row0 + rows); only the block holding the token writes.
// A token outside the vocabulary matches no block: x keeps its old value.
//
// Grid (ceil(words / 256), batch). Bounds: every index is clamped into its
// binding.

struct Params {
    row0: u32,
    rows: u32,
    words: u32,    // u32 words per row of W and per vector of x
    batch: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.y;
    let i = gid.x;
    if (b >= p.batch || i >= p.words) {
        return;
    }
    let t = tokens[min(b, arrayLength(&tokens) - 1u)];
    if (t < p.row0 || t - p.row0 >= p.rows) {
        return;
    }
    let src = (t - p.row0) * p.words + i;
    x[min(b * p.words + i, arrayLength(&x) - 1u)] = w[min(src, arrayLength(&w) - 1u)];
}

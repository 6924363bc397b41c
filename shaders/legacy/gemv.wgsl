// GEMV: y[b][row] = scale(row) · Σ_c W[row][c] · x[b][c] (+ bias[row]), for
// b < B (1..8 vectors sharing one pass over W), accumulated in f32.
//
// This file is the shared main loop. The kernel is assembled as
//   gemv_<dtype>.wgsl   EPS, WV, w_decode(), row_scale(): the weight format
//   gemv.wgsl           this file
//   lib/group_sg.wgsl   entry point; groups are subgroups, reduced with subgroupAdd
//   lib/group_wg.wgsl   (or) groups are TPR invocations, reduced in workgroup memory
//
// Layout. W rows are padded with zeros to `steps · EPS` elements; a row is
// `w_stride` vec4<u32> (16-byte) words. One "step" is WV words of a row
// (EPS elements). x vectors are padded with zeros likewise: vector b starts
// at vec4 word `b · x_stride`; f32 x holds 4 elements per word, f16 x 8.
// y is `B × y_stride` f32, y[b · y_stride + row_base + row].
//
// Work split. A workgroup owns RW consecutive rows. It has NGROUPS groups
// (subgroups, or TPR invocations each); a group computes NR rows at a time,
// its lanes striding over the steps of those rows (lane j takes steps j,
// j + GSIZE, ...), so each row is read once, coalesced, 16 bytes per lane,
// and every x step loaded is used for NR rows. UNROLL steps are loaded before
// any is used, to keep UNROLL · NR · WV 16-byte loads in flight per lane.
// Then each (row, vector) partial sum is reduced across the group.
//
// Bounds: every read index is clamped into its binding, and loop bounds come
// from the uniform, so corrupt parameters cannot read out of bounds.

override WG: u32 = 256u;
override NR: u32 = 2u;
override B: u32 = 1u;
override RW: u32 = 16u;
override UNROLL: u32 = 2u;
override X_HALF: bool = false;
override HAS_BIAS: bool = false;

// NR · B accumulators at most (NR ≤ 4, B ≤ 8).
const MAXACC: u32 = 32u;
// UNROLL · NR · WV raw words at most (UNROLL ≤ 4, NR ≤ 4, WV ≤ 2).
const MAXRAW: u32 = 32u;

struct Params {
    rows: u32,      // rows of this part
    row_base: u32,  // output row of this part's first row
    steps: u32,     // steps per row
    w_stride: u32,  // vec4 words per W row
    x_stride: u32,  // vec4 words per x vector
    y_stride: u32,  // f32 per y vector
    groups_x: u32,  // workgroups along x of the dispatch grid
    scale_base: u32, // index of this part's first row in `scales`/`bias`
}

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Set by the path file's entry point.
var<private> GROUP: u32;    // this invocation's group in the workgroup
var<private> NGROUPS: u32;  // groups in the workgroup
var<private> LANE: u32;     // lane in the group
var<private> GSIZE: u32;    // lanes per group

// The EPS x values of step j of vector b, as EPS/4 vec4<f32> (entries past EPS/4 unused).
fn x_step(b: u32, j: u32) -> array<vec4<f32>, 4> {
    var o: array<vec4<f32>, 4>;
    let nx = arrayLength(&x);
    if (X_HALF) {
        // 8 f16 per word.
        for (var t = 0u; t < EPS / 8u; t++) {
            let v = x[min(b * p.x_stride + j * (EPS / 8u) + t, nx - 1u)];
            o[2u * t] = vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
            o[2u * t + 1u] = vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w));
        }
    } else {
        for (var t = 0u; t < EPS / 4u; t++) {
            o[t] = bitcast<vec4<f32>>(x[min(b * p.x_stride + j * (EPS / 4u) + t, nx - 1u)]);
        }
    }
    return o;
}

// One workgroup's rows. Every invocation calls this (barriers inside the
// workgroup path's reduction need uniform control flow).
fn gemv_rows(wg_index: u32) {
    let nw = arrayLength(&w);
    let row_wg = wg_index * RW;
    // The same trip count in every invocation (the workgroup path's
    // reduction has barriers); blocks past RW / NR compute nothing useful.
    let iters = block_iters();
    for (var it = 0u; it < iters; it++) {
        let blk = GROUP + it * NGROUPS;
        let row0 = row_wg + blk * NR;
        let live = blk < RW / NR;
        var acc: array<f32, MAXACC>;
        for (var i = 0u; i < NR * B; i++) {
            acc[i] = 0.0;
        }
        // Row word offsets, clamped to a valid row (results of rows past the
        // end are computed but not stored).
        var roff: array<u32, 4>;
        for (var r = 0u; r < NR; r++) {
            roff[r] = min(row0 + r, max(p.rows, 1u) - 1u) * p.w_stride;
        }
        let stride = GSIZE * UNROLL;
        for (var j0 = LANE; j0 < p.steps; j0 += stride) {
            var raw: array<vec4<u32>, MAXRAW>;
            for (var u = 0u; u < UNROLL; u++) {
                let j = min(j0 + u * GSIZE, p.steps - 1u);
                for (var r = 0u; r < NR; r++) {
                    for (var v = 0u; v < WV; v++) {
                        raw[(u * NR + r) * WV + v] = w[min(roff[r] + j * WV + v, nw - 1u)];
                    }
                }
            }
            for (var u = 0u; u < UNROLL; u++) {
                let j = j0 + u * GSIZE;
                if (j < p.steps) {
                    var wf: array<array<vec4<f32>, 4>, 4>;
                    for (var r = 0u; r < NR; r++) {
                        wf[r] = w_decode(raw, (u * NR + r) * WV);
                    }
                    for (var b = 0u; b < B; b++) {
                        let xs = x_step(b, j);
                        for (var r = 0u; r < NR; r++) {
                            var s = acc[r * B + b];
                            for (var t = 0u; t < EPS / 4u; t++) {
                                s += dot(wf[r][t], xs[t]);
                            }
                            acc[r * B + b] = s;
                        }
                    }
                }
            }
        }
        group_reduce(&acc);
        if (LANE == 0u) {
            let ny = arrayLength(&y);
            for (var r = 0u; r < NR; r++) {
                let row = row0 + r;
                if (live && row < p.rows) {
                    let si = p.scale_base + row;
                    var add = 0.0;
                    if (HAS_BIAS) {
                        add = bias[min(si, arrayLength(&bias) - 1u)];
                    }
                    let sc = row_scale(si);
                    for (var b = 0u; b < B; b++) {
                        y[min(b * p.y_stride + p.row_base + row, ny - 1u)] = acc[r * B + b] * sc + add;
                    }
                }
            }
        }
    }
}

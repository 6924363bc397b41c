// Compressed GEMV, second pass of gemv_rans_tiles.wgsl: y[row] = scale ·
// Σ_tx partials[tx][row] + bias, the column tiles added in order (the same
// result run to run). One invocation a row.
//
// Bindings: 0 partials, 1 rowdata (scales[rows] then bias[rows]), 2 y, 3 params.

override HAS_SCALE: bool = true;
override HAS_BIAS: bool = false;

struct Params {
    rows: u32,
    tiles_x: u32,
    rows_pad: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read> rowdata: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * p.groups_x * 256u;
    if (row >= p.rows) {
        return;
    }
    let np = arrayLength(&partials);
    var sum = 0.0;
    for (var t = 0u; t < p.tiles_x; t++) {
        sum += partials[min(t * p.rows_pad + row, np - 1u)];
    }
    store_row(row, sum);
}

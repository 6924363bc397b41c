// A row's output y[row] = sum · scale[row] (HAS_SCALE) + bias[row]
// (HAS_BIAS), the scales then the biases in `rowdata`: the band kernel
// (gemv_rans_i8.wgsl) and the tile kernel's reduction (gemv_rans_reduce.wgsl)
// store through it (appended to each).
fn store_row(row: u32, sum: f32) {
    let nr = arrayLength(&rowdata);
    var v = sum;
    if (HAS_SCALE) {
        v = v * rowdata[min(row, nr - 1u)];
    }
    if (HAS_BIAS) {
        v = v + rowdata[min(p.rows + row, nr - 1u)];
    }
    y[min(row, arrayLength(&y) - 1u)] = v;
}

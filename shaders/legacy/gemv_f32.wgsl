// GEMV weight format: f32. A step is 2 words = 8 elements (one 32-byte load pair per lane).
const EPS: u32 = 8u;
const WV: u32 = 2u;

fn w_decode(raw: array<vec4<u32>, MAXRAW>, at: u32) -> array<vec4<f32>, 4> {
    var o: array<vec4<f32>, 4>;
    o[0] = bitcast<vec4<f32>>(raw[at]);
    o[1] = bitcast<vec4<f32>>(raw[at + 1u]);
    return o;
}

fn row_scale(i: u32) -> f32 {
    return 1.0;
}

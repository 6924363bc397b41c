// GEMV weight format: f16 (IEEE binary16, little-endian pairs in each u32).
// A step is 1 word = 8 elements. Unpacking is exact (f16 ⊂ f32), so no
// SHADER_F16 feature is needed.
const EPS: u32 = 8u;
const WV: u32 = 1u;

fn w_decode(raw: array<vec4<u32>, MAXRAW>, at: u32) -> array<vec4<f32>, 4> {
    var o: array<vec4<f32>, 4>;
    let v = raw[at];
    o[0] = vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
    o[1] = vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w));
    return o;
}

fn row_scale(i: u32) -> f32 {
    return 1.0;
}

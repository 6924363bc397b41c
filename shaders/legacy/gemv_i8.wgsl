// GEMV weight format: int8 codes with one f32 scale per row (the codec's
// `quant` output): y = scale[row] · Σ q·x. A step is 1 word = 16 elements.
//
// I8_MAGIC chooses how a byte becomes an f32 (both exact):
//   false: unpack4xI8 then an integer-to-float conversion;
//   true:  bitcast(0x4B000000 | (q + 128)) − (2^23 + 128), integer and
//          full-rate float ops only (conversions are quarter rate on some GPUs).
override I8_MAGIC: bool = true;

const EPS: u32 = 16u;
const WV: u32 = 1u;

fn i8x4(u: u32) -> vec4<f32> {
    if (I8_MAGIC) {
        let b = u ^ 0x80808080u;
        let m = vec4<u32>(b & 0xffu, (b >> 8u) & 0xffu, (b >> 16u) & 0xffu, b >> 24u) | vec4<u32>(0x4B000000u);
        return bitcast<vec4<f32>>(m) - vec4<f32>(8388736.0);
    }
    return vec4<f32>(unpack4xI8(u));
}

fn w_decode(raw: array<vec4<u32>, MAXRAW>, at: u32) -> array<vec4<f32>, 4> {
    var o: array<vec4<f32>, 4>;
    let v = raw[at];
    o[0] = i8x4(v.x);
    o[1] = i8x4(v.y);
    o[2] = i8x4(v.z);
    o[3] = i8x4(v.w);
    return o;
}

fn row_scale(i: u32) -> f32 {
    return scales[min(i, arrayLength(&scales) - 1u)];
}

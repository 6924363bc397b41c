// Integer-exact float conversions shared by the decode kernels (a library,
// prepended to a kernel's source; it has no entry point).
//
// Every function works on bit patterns in u32 and mirrors the CPU reference
// bit for bit, including subnormals, so that no result depends on how a
// driver rounds or flushes floats:
//   f32_to_f16_bits / f32_to_bf16_bits  mirror src/codec/quant.rs;
//   f16_to_f32_bits                      mirrors the `half` crate (quiet NaNs);
//   mul_i8_f32                           is IEEE f32 `q as f32 * s` with
//                                        x86 NaN rules (src/codec/quant.rs::dequant).

// Element types of a rendered output (match src/wgpu/plan.rs).
const DT_F32: u32 = 0u;
const DT_F16: u32 = 1u;
const DT_BF16: u32 = 2u;

// f32 -> f16, round to nearest even; NaN stays NaN (quant.rs::f32_to_f16_bits).
fn f32_to_f16_bits(b: u32) -> u32 {
    let sign = (b >> 16u) & 0x8000u;
    let ex = i32((b >> 23u) & 0xffu);
    let man = b & 0x7fffffu;
    if (ex == 0xff) {
        var nan = 0u;
        if (man != 0u) {
            nan = 0x200u | (man >> 13u);
        }
        return sign | 0x7c00u | nan;
    }
    let e = ex - 127 + 15;
    if (e >= 0x1f) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        if (e < -10) {
            return sign;
        }
        let m = man | 0x800000u;
        let shift = u32(14 - e);
        let half = 1u << (shift - 1u);
        let rem = m & ((1u << shift) - 1u);
        var v = m >> shift;
        if (rem > half || (rem == half && (v & 1u) == 1u)) {
            v += 1u;
        }
        return sign | v;
    }
    let rem = man & 0x1fffu;
    var v = (u32(e) << 10u) | (man >> 13u);
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u) == 1u)) {
        v += 1u;
    }
    return sign | v;
}

// f32 -> bf16, round to nearest even; NaN stays NaN (quant.rs::f32_to_bf16_bits).
fn f32_to_bf16_bits(b: u32) -> u32 {
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return ((b >> 16u) | 0x40u) & 0xffffu;
    }
    let lsb = (b >> 16u) & 1u;
    return ((b + 0x7fffu + lsb) >> 16u) & 0xffffu;
}

// f16 -> f32, exact (the `half` crate: NaNs get the quiet bit).
fn f16_to_f32_bits(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let ex = h & 0x7c00u;
    let man = h & 0x3ffu;
    if ((h & 0x7fffu) == 0u) {
        return sign;
    }
    if (ex == 0x7c00u) {
        if (man == 0u) {
            return sign | 0x7f800000u;
        }
        return sign | 0x7fc00000u | (man << 13u);
    }
    if (ex == 0u) {
        let e = countLeadingZeros(man) - 22u;
        return sign | ((112u - e) << 23u) | ((man << (14u + e)) & 0x7fffffu);
    }
    return sign | (((ex >> 10u) + 112u) << 23u) | (man << 13u);
}

// A float of type `dt` (low bits of `v`) as f32 bits.
fn to_f32_bits(v: u32, dt: u32) -> u32 {
    if (dt == DT_BF16) {
        return (v & 0xffffu) << 16u;
    }
    if (dt == DT_F16) {
        return f16_to_f32_bits(v & 0xffffu);
    }
    return v;
}

// f32 bits as a float of type `dt`.
fn from_f32_bits(b: u32, dt: u32) -> u32 {
    if (dt == DT_BF16) {
        return f32_to_bf16_bits(b);
    }
    if (dt == DT_F16) {
        return f32_to_f16_bits(b);
    }
    return b;
}

// IEEE f32 product of the int8 `q` (low byte, two's complement) and the f32
// with bits `s`, round to nearest even, subnormals kept; NaN rules of x86:
// a NaN operand comes back quieted, 0 * inf is the default NaN 0xffc00000.
// |q| <= 128 and the significand < 2^24, so the exact product fits a u32.
fn mul_i8_f32(q: u32, s: u32) -> u32 {
    let qi = i32(q << 24u) >> 24u;
    let qa = u32(abs(qi));
    var sign = s & 0x80000000u;
    if (qi < 0) {
        sign ^= 0x80000000u;
    }
    let ex = (s >> 23u) & 0xffu;
    let man = s & 0x7fffffu;
    if (ex == 0xffu) {
        if (man != 0u) {
            return s | 0x400000u;
        }
        if (qa == 0u) {
            return 0xffc00000u;
        }
        return sign | 0x7f800000u;
    }
    if (qa == 0u || (ex == 0u && man == 0u)) {
        return sign;
    }
    var m = man | 0x800000u;
    var e = ex;
    if (ex == 0u) {
        m = man;
        e = 1u;
    }
    let p = qa * m;
    let len = 32u - countLeadingZeros(p);
    if (len <= 24u) {
        let eb = i32(e + len) - 24;
        if (eb >= 1) {
            return sign | (u32(eb) << 23u) | ((p << (24u - len)) & 0x7fffffu);
        }
        return sign | (p << (e - 1u));
    }
    let sh = len - 24u;
    var mant = p >> sh;
    let rem = p & ((1u << sh) - 1u);
    let half = 1u << (sh - 1u);
    if (rem > half || (rem == half && (mant & 1u) == 1u)) {
        mant += 1u;
    }
    var eb = e + sh;
    if (mant == 0x1000000u) {
        mant = mant >> 1u;
        eb += 1u;
    }
    if (eb >= 255u) {
        return sign | 0x7f800000u;
    }
    return sign | (eb << 23u) | (mant & 0x7fffffu);
}

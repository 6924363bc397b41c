// Unsigned 64-bit arithmetic on vec2<u32> (x = low word, y = high word), for
// devices without SHADER_INT64, and Philox4x32-10 (src/rng.rs) on top of it.
// Everything here is exact integer arithmetic: the CPU reference computes the
// same values with u64/u128.

fn u64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn u64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn u64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn u64_ge(a: vec2<u32>, b: vec2<u32>) -> bool {
    return !u64_lt(a, b);
}

// The full 64-bit product of two u32.
fn mul32(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // p01 + 2·(2^16 − 1) < 2^32: no overflow.
    let mid = p01 + (p00 >> 16u) + (p10 & 0xffffu);
    return vec2<u32>((mid << 16u) | (p00 & 0xffffu), p11 + (mid >> 16u) + (p10 >> 16u));
}

// a · b for a u64 and a u32: 96 bits as (w0, w1, w2).
fn mul64x32(a: vec2<u32>, b: u32) -> vec3<u32> {
    let l = mul32(a.x, b);
    let h = mul32(a.y, b);
    let mid = u64_add(vec2<u32>(l.y, 0u), vec2<u32>(h.x, 0u));
    return vec3<u32>(l.x, mid.x, h.y + mid.y);
}

// floor(a · b / 2^64): the high half of a 64 × 64-bit product.
fn mulhi64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let p00 = mul32(a.x, b.x);
    let p01 = mul32(a.x, b.y);
    let p10 = mul32(a.y, b.x);
    let p11 = mul32(a.y, b.y);
    // Bits 32..63: p00.hi + p01.lo + p10.lo; its carry (0..2) goes up.
    let col = u64_add(u64_add(vec2<u32>(p00.y, 0u), vec2<u32>(p01.x, 0u)), vec2<u32>(p10.x, 0u));
    var hi = u64_add(p11, vec2<u32>(p01.y, 0u));
    hi = u64_add(hi, vec2<u32>(p10.y, 0u));
    return u64_add(hi, vec2<u32>(col.y, 0u));
}

// floor(a / d) and a mod d for 0 < d ≤ 2^31 (bitwise long division).
fn divmod64x32(a: vec2<u32>, d: u32) -> vec3<u32> {
    var q = vec2<u32>(0u, 0u);
    var r = 0u;
    for (var i = 0u; i < 64u; i++) {
        let bit = 63u - i;
        var word = a.x;
        if (bit >= 32u) {
            word = a.y;
        }
        r = (r << 1u) | ((word >> (bit & 31u)) & 1u);
        if (r >= d) {
            r -= d;
            if (bit >= 32u) {
                q.y |= 1u << (bit - 32u);
            } else {
                q.x |= 1u << bit;
            }
        }
    }
    return vec3<u32>(q.x, q.y, r);
}

// Philox4x32-10 (Salmon et al. 2011; Random123), as src/rng.rs.
fn philox4x32_10(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = ctr_in;
    var k = key_in;
    for (var r = 0u; r < 10u; r++) {
        if (r > 0u) {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mul32(0xD2511F53u, c.x);
        let p1 = mul32(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.y ^ c.y ^ k.x, p1.x, p0.y ^ c.w ^ k.y, p0.x);
    }
    return c;
}

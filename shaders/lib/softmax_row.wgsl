// Shared by softmax_f32.wgsl and softmax_sg.wgsl (prepended to each; read
// softmax_f32.wgsl's header): tuning constants, parameters, bindings, the
// sanitised load and the whole-row scan of the `fused` kernels.

override WG: u32 = 256u;
override E: u32 = 4u;
override LOG: bool = false;

struct Params {
    n: u32,        // row length
    rows: u32,
    ld_in: u32,    // logits: row stride (elements)
    ld_out: u32,   // out: row stride (elements)
    nb: u32,       // blocks per row
    c: f32,        // log2(e) / T
    inv_t: f32,    // 1 / T (log-softmax: (x − M) / T − ln S without overflowing early)
    _p: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> part: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const NEG_MAX: f32 = -3.40282347e+38;

fn sanitize(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return NEG_MAX;
    }
    return clamp(x, NEG_MAX, -NEG_MAX);
}

fn load(row: u32, i: u32) -> f32 {
    return sanitize(logits[min(row * p.ld_in + i, arrayLength(&logits) - 1u)]);
}

// (M, S) of the whole row in this invocation's share: elements lid,
// lid + WG, ..., eight loads in flight, an online rescale when the maximum
// grows. S = 0: no element.
fn row_scan(row: u32, lid: u32) -> vec2<f32> {
    var m = NEG_MAX;
    var s = 0.0;
    var i = lid;
    loop {
        if (i + 7u * WG >= p.n) {
            break;
        }
        let a0 = load(row, i);
        let a1 = load(row, i + WG);
        let a2 = load(row, i + 2u * WG);
        let a3 = load(row, i + 3u * WG);
        let a4 = load(row, i + 4u * WG);
        let a5 = load(row, i + 5u * WG);
        let a6 = load(row, i + 6u * WG);
        let a7 = load(row, i + 7u * WG);
        let mb = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)));
        if (mb > m) {
            s = s * exp2((m - mb) * p.c);
            m = mb;
        }
        s += exp2((a0 - m) * p.c) + exp2((a1 - m) * p.c) + exp2((a2 - m) * p.c) + exp2((a3 - m) * p.c)
            + exp2((a4 - m) * p.c) + exp2((a5 - m) * p.c) + exp2((a6 - m) * p.c) + exp2((a7 - m) * p.c);
        i += 8u * WG;
    }
    loop {
        if (i >= p.n) {
            break;
        }
        let a = load(row, i);
        if (a > m) {
            s = s * exp2((m - a) * p.c);
            m = a;
        }
        s += exp2((a - m) * p.c);
        i += WG;
    }
    return vec2<f32>(m, s);
}

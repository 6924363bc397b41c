// Softmax over rows of f32 logits: the CUDA mirror of shaders/softmax_f32.wgsl.
//   stats:     grid (NB, rows), WG threads. Block b of a row (WG·E elements)
//              writes its partial: block max m_b, s_b = Σ exp2((x − m_b)·c),
//              the first index of the block max.
//   normalize: grid (NB, rows). Every block combines its row's partials
//              (S = Σ s_b · exp2((m_b − M)·c)) and writes its outputs:
//              p = exp2((x − M)·c) / S, or log p = (x − M)/T − ln S.
// The reductions use warp shuffles, then one shared-memory step across the
// block's warps (the WGSL kernel reduces through workgroup memory, one
// barrier per level). Logits are sanitised as the CPU reference does.
// Defines: WG (threads, a multiple of 32, ≤ 1024), E, LOG.

typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef WG
#define WG 256
#endif
#ifndef E
#define E 4
#endif
#ifndef LOG
#define LOG 0
#endif

#define NEG_MAX (-3.40282347e+38f)

// Must match src/cuda/softmax.rs `SoftmaxParams`.
struct SoftmaxParams {
    u64 logits;   // f32, row r at element r · ld_in
    u64 part;     // uint4 per (row, block)
    u64 out;      // f32, row r at element r · ld_out
    u32 n, rows, ld_in, ld_out;
    u32 nb;
    float c;      // log2(e) / T
    float inv_t;  // 1 / T
    u32 pad;
};

__device__ __forceinline__ float sanitize(float x) {
    u32 b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return NEG_MAX;
    return fminf(fmaxf(x, NEG_MAX), -NEG_MAX);
}

struct Part {
    float m, s;
    u32 idx;
};

__device__ __forceinline__ Part combine(Part a, Part b, float c) {
    if (a.s == 0.0f) return b;
    if (b.s == 0.0f) return a;
    float m = fmaxf(a.m, b.m);
    u32 idx = min(a.idx, b.idx);
    if (a.m > b.m) {
        idx = a.idx;
    } else if (b.m > a.m) {
        idx = b.idx;
    }
    Part r;
    r.m = m;
    r.s = a.s * exp2f((a.m - m) * c) + b.s * exp2f((b.m - m) * c);
    r.idx = idx;
    return r;
}

// Combine every thread's partial; every thread gets the result.
__device__ Part block_combine(Part mine, float c) {
    __shared__ float sm[WG / 32];
    __shared__ float ss[WG / 32];
    __shared__ u32 si[WG / 32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        Part other;
        other.m = __shfl_xor_sync(0xffffffffu, mine.m, o);
        other.s = __shfl_xor_sync(0xffffffffu, mine.s, o);
        other.idx = __shfl_xor_sync(0xffffffffu, mine.idx, o);
        mine = combine(mine, other, c);
    }
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sm[warp] = mine.m;
        ss[warp] = mine.s;
        si[warp] = mine.idx;
    }
    __syncthreads();
    Part r;
    r.m = NEG_MAX;
    r.s = 0.0f;
    r.idx = 0xffffffffu;
    for (u32 w = 0; w < WG / 32; w++) {
        Part q;
        q.m = sm[w];
        q.s = ss[w];
        q.idx = si[w];
        r = combine(r, q, c);
    }
    __syncthreads();
    return r;
}

__device__ __forceinline__ float load(const SoftmaxParams& p, u32 row, u32 i) {
    return sanitize(((const float*)p.logits)[(u64)row * p.ld_in + i]);
}

extern "C" __global__ void __launch_bounds__(WG) softmax_stats(const SoftmaxParams p) {
    const u32 blk = blockIdx.x, row = blockIdx.y;
    const u32 first = blk * WG * E;
    float m = NEG_MAX;
    u32 idx = 0xffffffffu;
    bool any = false;
    float v[E];
#pragma unroll
    for (u32 k = 0; k < E; k++) {
        u32 i = first + k * WG + threadIdx.x;
        v[k] = NEG_MAX;
        if (i < p.n) {
            v[k] = load(p, row, i);
            if (!any || v[k] > m) {
                m = v[k];
                idx = i;
            }
            any = true;
        }
    }
    float s = 0.0f;
    if (any) {
#pragma unroll
        for (u32 k = 0; k < E; k++) {
            u32 i = first + k * WG + threadIdx.x;
            if (i < p.n) s += exp2f((v[k] - m) * p.c);
        }
    }
    Part mine;
    mine.m = m;
    mine.s = s;
    mine.idx = idx;
    Part q = block_combine(mine, p.c);
    if (threadIdx.x == 0) {
        ((uint4*)p.part)[(u64)row * p.nb + blk] =
            make_uint4(__float_as_uint(q.m), __float_as_uint(q.s), q.idx, 0u);
    }
}

extern "C" __global__ void __launch_bounds__(WG) softmax_normalize(const SoftmaxParams p) {
    const u32 blk = blockIdx.x, row = blockIdx.y;
    Part acc;
    acc.m = NEG_MAX;
    acc.s = 0.0f;
    acc.idx = 0xffffffffu;
    for (u32 b = threadIdx.x; b < p.nb; b += WG) {
        uint4 v = ((const uint4*)p.part)[(u64)row * p.nb + b];
        Part q;
        q.m = __uint_as_float(v.x);
        q.s = __uint_as_float(v.y);
        q.idx = v.z;
        acc = combine(acc, q, p.c);
    }
    Part t = block_combine(acc, p.c);
    const float ln_s = log2f(t.s) * 0.693147180559945309f;
    const float inv_s = 1.0f / t.s;
    float* out = (float*)p.out;
#pragma unroll
    for (u32 k = 0; k < E; k++) {
        u32 i = blk * WG * E + k * WG + threadIdx.x;
        if (i < p.n) {
            float d = load(p, row, i) - t.m;
            float v;
#if LOG
            v = d * p.inv_t - ln_s;
#else
            v = exp2f(d * p.c) * inv_s;
#endif
            out[(u64)row * p.ld_out + i] = v;
        }
    }
}

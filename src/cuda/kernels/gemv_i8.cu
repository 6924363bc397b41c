// int8 GEMV: y[b] = scale ⊙ (W·x[b]) + bias, W int8 (rows padded to LD
// bytes, LD a multiple of 16), x f32 or f16 (XF16), f32 accumulation: the
// CUDA mirror of shaders/gemv_i8.wgsl + gemv.wgsl (cuBLAS has no int8-weight
// × float-vector GEMV). A block has WARPS warps; each warp takes NR rows,
// its lanes striding over 16-byte steps (one coalesced uint4 load per row
// and step; each x step loaded once for the NR rows and B vectors), then a
// shuffle reduction. int8 → f32 exactly by the exponent trick
// bits(0x4B000000 | (q + 128)) − (2^23 + 128), as the WGSL kernel.
// Defines: WARPS, NR, B (vectors per pass), XF16.

typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef WARPS
#define WARPS 8
#endif
#ifndef NR
#define NR 4
#endif
#ifndef B
#define B 1
#endif
#ifndef XF16
#define XF16 1
#endif

// Must match src/cuda/gemv.rs `GemvI8Params`.
struct GemvI8Params {
    u64 w;       // int8, row r at byte r · ld
    u64 x;       // B vectors of ld elements (f32 or f16), zero-padded
    u64 scales;  // f32 per row
    u64 bias;    // f32 per row (has_bias)
    u64 y;       // f32, y[b · rows + r]
    u32 rows, ld, has_bias, pad;
};

__device__ __forceinline__ float i8f(u32 wx, u32 i) {
    // wx = the word XOR 0x80808080 (bytes q + 128); byte i into 0x4B0000bb
    u32 r = __byte_perm(wx, 0x4B000000u, 0x7540u + i);
    return __uint_as_float(r) - 8388736.0f;
}

__device__ __forceinline__ float h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ void load_x(const GemvI8Params& p, u32 b, u32 step, float* xv) {
#if XF16
    const uint4* xs = (const uint4*)((const unsigned short*)p.x + (u64)b * p.ld + 16u * step);
    uint4 a = xs[0], c = xs[1];
    u32 h[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        xv[2 * i] = h2f((unsigned short)(h[i] & 0xffffu));
        xv[2 * i + 1] = h2f((unsigned short)(h[i] >> 16));
    }
#else
    const float4* xs = (const float4*)((const float*)p.x + (u64)b * p.ld + 16u * step);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float4 v = xs[i];
        xv[4 * i] = v.x;
        xv[4 * i + 1] = v.y;
        xv[4 * i + 2] = v.z;
        xv[4 * i + 3] = v.w;
    }
#endif
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_i8(const GemvI8Params p) {
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    const u32 row0 = (blockIdx.x * WARPS + warp) * NR;
    if (row0 >= p.rows) return;
    const u32 steps = p.ld / 16;
    float acc[NR][B];
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int b = 0; b < B; b++) acc[r][b] = 0.0f;
    for (u32 s = lane; s < steps; s += 32) {
        uint4 wq[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
            u32 row = min(row0 + r, p.rows - 1);
            wq[r] = ((const uint4*)((const unsigned char*)p.w + (u64)row * p.ld))[s];
        }
#pragma unroll
        for (int b = 0; b < B; b++) {
            float xv[16];
            load_x(p, b, s, xv);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                u32 ws[4] = {wq[r].x ^ 0x80808080u, wq[r].y ^ 0x80808080u, wq[r].z ^ 0x80808080u,
                             wq[r].w ^ 0x80808080u};
                float a = acc[r][b];
#pragma unroll
                for (int k = 0; k < 16; k++) a = fmaf(i8f(ws[k >> 2], k & 3), xv[k], a);
                acc[r][b] = a;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
#pragma unroll
        for (int b = 0; b < B; b++) {
            float v = acc[r][b];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            acc[r][b] = v;
        }
    if (lane < NR * B) {
        // lane l writes row l % NR of vector l / NR
        const u32 r = lane % NR, b = lane / NR;
        const u32 row = row0 + r;
        float v = 0.0f;
#pragma unroll
        for (int rr = 0; rr < NR; rr++)
#pragma unroll
            for (int bb = 0; bb < B; bb++)
                if (rr == (int)r && bb == (int)b) v = acc[rr][bb];
        if (row < p.rows) {
            float y = v * ((const float*)p.scales)[row];
            if (p.has_bias) y += ((const float*)p.bias)[row];
            ((float*)p.y)[(u64)b * p.rows + row] = y;
        }
    }
}

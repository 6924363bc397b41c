// Fused tile decode for the CUDA cross-check backend: the CUDA mirror of
// shaders/rans_decode.wgsl (docs/FORMAT.md §4, §5, §5.1). Each tile's words
// are read once, rANS-decoded, rebuilt and rendered (U8 flip, float-split
// merge, dequantisation) and written once.
//
// Work: one 32-lane warp per tile; WARPS warps per block; blocks are
// persistent (block b takes tiles b·WARPS + w, then strides by the grid).
// Each block copies the plane's decode lookup tables (rans::decode_lut, one
// u32 per slot, 4096 slots a table) to shared memory once. A warp stages its
// tile's words in its own shared-memory window (STAGE_U32 u32 words; longer
// tiles read global memory), reads the packed initial states, and decodes:
// the fast region (every lane decodes a table-coded symbol) four steps at a
// time with a warp ballot + popc for the shared word stream and a
// branch-free staged word read, then the remaining steps (lanes that end
// early, lane tails) with every end condition of §4 checked.
//
// NONE and PLANAR tiles are written from registers as they decode; LEFT,
// TOP, AVG and the lossy tiles are decoded into the warp's tile buffer in
// shared memory (MODES), rebuilt there and then written.
//
// Safety on corrupt input: loops are bounded by the tile's symbol count;
// word reads are clamped to the tile's range (0 past it); table indices to
// the table count. A tile that fails §4 sets bits in errs[0] and ~(its
// number) in errs[1] (atomicMax: the first bad tile); errs[2] counts
// finished tiles. The three words start at zero.
//
// Defines: WARPS (warps per block), STAGE_U32 (u32 words staged per warp;
// 0: none), NTAB (tables, 1..4), MODES (0: every tile is NONE or PLANAR),
// LOSSY (the plane holds lossy tiles, modes 5..8), MINB (blocks per SM for
// __launch_bounds__).

typedef unsigned int u32;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned long long u64;

#ifndef WARPS
#define WARPS 8
#endif
#ifndef STAGE_U32
#define STAGE_U32 1024
#endif
#ifndef NTAB
#define NTAB 1
#endif
#ifndef MODES
#define MODES 1
#endif
#ifndef LOSSY
#define LOSSY 0
#endif
// blocks per SM the compiler must leave registers for (__launch_bounds__):
// the decode loop is latency bound, so occupancy matters more than registers
#ifndef MINB
#define MINB 1
#endif

#define FULL 0xffffffffu
#define TB_BYTES (MODES ? 4096 : 0)

// error bits (as the WGSL decoder's)
#define E_STATES 1u
#define E_UNDERFLOW 2u
#define E_TRAILING 4u
#define E_FINAL 8u
#define E_INDEX 16u

// modes
#define M_NONE 0u
#define M_LEFT 1u
#define M_TOP 2u
#define M_AVG 3u
#define M_PLANAR 4u
#define M_SPATIAL 5u
#define M_DCT8 6u
#define M_DCT4 7u
#define M_DST4 8u

// output kinds
#define K_BYTES 0u      // one byte per symbol (int8, quant codes, lossy pixels)
#define K_SPLIT 1u      // float-split merge with the raw plane (aux)
#define K_DEQ_ROW 2u    // code · scale[row] (aux: f32 per row) → dst
#define K_DEQ_TILE 3u   // pixel · scale[tile] (aux: f32 per tile) → dst
// dtypes (src for K_SPLIT, dst for K_DEQ_*)
#define DT_F32 0u
#define DT_F16 1u
#define DT_BF16 2u

// Must match src/cuda/decode.rs `DecodeParams`.
struct Params {
    u64 stream;   // the plane's u16 words (4-byte aligned)
    u64 index;    // two u32 per tile: offset, meta
    u64 lut;      // NTAB × 4096 u32
    u64 out;      // output bytes
    u64 aux;      // raw plane (K_SPLIT) or scales (K_DEQ_*)
    u64 errs;     // u32[3]: error bits, ~first bad tile, finished tiles (zeroed)
    u32 rows, cols, tile_h, tile_w;
    u32 tiles_x, ntiles, nwords, prob_bits;
    u32 tail_bits, tail_base, kind, src;
    u32 dst, xor80, tile_first, tile_count;
};

__device__ __forceinline__ int sx8(u32 v) { return (int)(v << 24) >> 24; }

// ---- float conversions, integer only (src/codec/quant.rs)

__device__ u32 f32_to_f16_bits(u32 b) {
    u32 sign = (b >> 16) & 0x8000u;
    int exp = (int)((b >> 23) & 0xffu);
    u32 man = b & 0x7fffffu;
    if (exp == 0xff) {
        return sign | 0x7c00u | (man != 0u ? (0x200u | (man >> 13)) : 0u);
    }
    int e = exp - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00u;
    if (e <= 0) {
        if (e < -10) return sign;
        u32 m = man | 0x800000u;
        u32 shift = (u32)(14 - e);
        u32 half = 1u << (shift - 1);
        u32 rem = m & ((1u << shift) - 1u);
        u32 v = m >> shift;
        if (rem > half || (rem == half && (v & 1u))) v += 1u;
        return sign | v;
    }
    u32 rem = man & 0x1fffu;
    u32 v = ((u32)e << 10) | (man >> 13);
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) v += 1u;
    return sign | v;
}

__device__ u32 f32_to_bf16_bits(u32 b) {
    if ((b & 0x7fffffffu) > 0x7f800000u) return ((b >> 16) | 0x40u) & 0xffffu;
    u32 lsb = (b >> 16) & 1u;
    return ((b + 0x7fffu + lsb) >> 16) & 0xffffu;
}

// ---- output

__device__ __forceinline__ u32 deq(u32 code, float scale, u32 dst) {
    float v = (float)sx8(code) * scale;  // one correctly rounded product
    u32 b = __float_as_uint(v);
    if (dst == DT_F16) return f32_to_f16_bits(b);
    if (dst == DT_BF16) return f32_to_bf16_bits(b);
    return b;
}

__device__ __forceinline__ u32 merge_split(u32 src, u32 e, u32 r) {
    if (src == DT_BF16) return ((r & 0x80u) << 8) | (e << 7) | (r & 0x7fu);
    if (src == DT_F16) return (e << 8) | (r & 0xffu);
    return ((r >> 23) << 31) | (e << 23) | (r & 0x7fffffu);
}

__device__ __forceinline__ u32 dt_size(u32 dt) { return dt == DT_F32 ? 4u : 2u; }

// One element: symbol `b` (after rebuild) at element index `e` of the plane,
// in row `row` of tile `t`.
__device__ void emit1(const Params& p, u64 e, u32 row, u32 t, u32 b) {
    u8* out = (u8*)p.out;
    if (p.kind == K_BYTES) {
        out[e] = (u8)(b ^ p.xor80);
        return;
    }
    u32 v;
    u32 size;
    if (p.kind == K_SPLIT) {
        const u8* raw = (const u8*)p.aux;
        u32 r;
        if (p.src == DT_F32) {
            r = (u32)raw[3 * e] | ((u32)raw[3 * e + 1] << 8) | ((u32)raw[3 * e + 2] << 16);
        } else {
            r = raw[e];
        }
        v = merge_split(p.src, b, r);
        size = dt_size(p.src);
    } else {
        const float* sc = (const float*)p.aux;
        v = deq(b, sc[p.kind == K_DEQ_ROW ? row : t], p.dst);
        size = dt_size(p.dst);
    }
    if (size == 4) {
        ((u32*)out)[e] = v;
    } else {
        ((u16*)out)[e] = (u16)v;
    }
}

// Tile geometry.
struct Tile {
    u32 t, r0, c0, h, w, n;
};

// Four symbols `sym4` (byte i = tile symbol k0 + i), cnt of them valid.
__device__ void emit_group(const Params& p, const Tile& ti, u32 k0, u32 cnt, u32 sym4) {
    u32 kr = k0 / ti.w;
    u32 kc = k0 - kr * ti.w;
    u32 row = ti.r0 + kr;
    u64 e = (u64)row * p.cols + ti.c0 + kc;
    if (cnt == 4 && kc + 4 <= ti.w && (e & 3) == 0) {
        // one row, aligned: vector stores
        if (p.kind == K_BYTES) {
            *(u32*)((u8*)p.out + e) = sym4 ^ (p.xor80 * 0x01010101u);
            return;
        }
        u32 o[4];
        if (p.kind == K_SPLIT) {
            if (p.src == DT_F32) {
                const u32* raw = (const u32*)((const u8*)p.aux + 3 * e);
                u32 a = raw[0], b = raw[1], c = raw[2];
                u32 r[4] = {a & 0xffffffu, (a >> 24) | ((b & 0xffffu) << 8),
                            (b >> 16) | ((c & 0xffu) << 16), c >> 8};
#pragma unroll
                for (int i = 0; i < 4; i++) o[i] = merge_split(DT_F32, (sym4 >> (8 * i)) & 0xffu, r[i]);
                *(uint4*)((u8*)p.out + 4 * e) = make_uint4(o[0], o[1], o[2], o[3]);
                return;
            }
            u32 raw = *(const u32*)((const u8*)p.aux + e);
#pragma unroll
            for (int i = 0; i < 4; i++)
                o[i] = merge_split(p.src, (sym4 >> (8 * i)) & 0xffu, (raw >> (8 * i)) & 0xffu);
        } else {
            float sc = ((const float*)p.aux)[p.kind == K_DEQ_ROW ? row : ti.t];
#pragma unroll
            for (int i = 0; i < 4; i++) o[i] = deq((sym4 >> (8 * i)) & 0xffu, sc, p.dst);
        }
        u32 size = p.kind == K_SPLIT ? dt_size(p.src) : dt_size(p.dst);
        if (size == 4) {
            *(uint4*)((u8*)p.out + 4 * e) = make_uint4(o[0], o[1], o[2], o[3]);
        } else {
            *(uint2*)((u8*)p.out + 2 * e) =
                make_uint2((o[0] & 0xffffu) | (o[1] << 16), (o[2] & 0xffffu) | (o[3] << 16));
        }
        return;
    }
    for (u32 i = 0; i < cnt; i++) {
        u32 k = k0 + i;
        u32 r = k / ti.w;
        u32 c = k - r * ti.w;
        emit1(p, (u64)(ti.r0 + r) * p.cols + ti.c0 + c, ti.r0 + r, ti.t, (sym4 >> (8 * i)) & 0xffu);
    }
}

// PLANAR's prediction added to the four symbols of a group.
__device__ __forceinline__ u32 planar4(u32 params, u32 w, u32 k0, u32 sym4) {
    int pa = sx8(params), pb = sx8(params >> 8), pc = sx8(params >> 16);
    u32 o = 0;
#pragma unroll
    for (u32 b = 0; b < 4; b++) {
        u32 k = k0 + b;
        int pr = (pa * (int)(k / w) + pb * (int)(k % w) + 16 * pc + 8) >> 4;
        pr = min(max(pr, -128), 127);
        o |= ((((sym4 >> (8 * b)) & 0xffu) + (u32)pr) & 0xffu) << (8 * b);
    }
    return o;
}

// ---- rebuild in the tile buffer (a warp; tb holds the tile's bytes in tile order)

__device__ void rebuild_lossless(u8* tb, const Tile& ti, u32 mode, u32 params, u32 lane) {
    u32 h = ti.h, w = ti.w, n = ti.n;
    if (mode == M_PLANAR) {
        for (u32 k = lane; k < n; k += 32) {
            u32 pr = planar4(params, w, k, tb[k]) & 0xffu;  // k0 = k, one byte
            tb[k] = (u8)pr;
        }
        return;
    }
    if ((mode == M_LEFT || mode == M_AVG) && h <= 1) {
        // one row: a chunked scan (mod 256) over the warp
        u32 per = (n + 31) / 32;
        u32 k0 = min(lane * per, n), k1 = min(k0 + per, n);
        u32 tot = 0;
        for (u32 k = k0; k < k1; k++) tot += tb[k];
        u32 incl = tot;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            u32 v = __shfl_up_sync(FULL, incl, off);
            if ((int)lane >= off) incl += v;
        }
        u32 acc = incl - tot;
        for (u32 k = k0; k < k1; k++) {
            acc = (acc + tb[k]) & 0xffu;
            tb[k] = (u8)acc;
        }
        return;
    }
    if (mode == M_LEFT) {
        for (u32 i = lane; i < h; i += 32) {
            u32 acc = 0;
            for (u32 j = 0; j < w; j++) {
                acc = (acc + tb[i * w + j]) & 0xffu;
                tb[i * w + j] = (u8)acc;
            }
        }
        return;
    }
    if (mode == M_TOP) {
        for (u32 c = lane; c < w; c += 32) {
            u32 prev = 0;
            for (u32 i = 0; i < h; i++) {
                prev = (prev + tb[i * w + c]) & 0xffu;
                tb[i * w + c] = (u8)prev;
            }
        }
        return;
    }
    if (mode == M_AVG) {
        // anti-diagonal wavefront: lane owns row p0 + lane; step d is column d - lane
        for (u32 p0 = 0; p0 < h; p0 += 32) {
            u32 rows = min(32u, h - p0);
            u32 i = p0 + lane;
            for (u32 d = 0; d < rows + w - 1; d++) {
                if (lane < rows && d >= lane && d - lane < w) {
                    u32 j = d - lane;
                    u32 k = i * w + j;
                    int pred;
                    if (i == 0) {
                        pred = j > 0 ? sx8(tb[k - 1]) : 0;
                    } else if (j == 0) {
                        pred = sx8(tb[k - w]);
                    } else {
                        pred = (sx8(tb[k - 1]) + sx8(tb[k - w])) >> 1;
                    }
                    tb[k] = (u8)((tb[k] + (u32)pred) & 0xffu);
                }
                __syncwarp();
            }
        }
    }
}

#if LOSSY
__constant__ int A_DCT8[64] = {
    64, 64, 64, 64, 64, 64, 64, 64,
    89, 75, 50, 18, -18, -50, -75, -89,
    83, 36, -36, -83, -83, -36, 36, 83,
    75, -18, -89, -50, 50, 89, 18, -75,
    64, -64, -64, 64, 64, -64, -64, 64,
    50, -89, 18, 75, -75, -18, 89, -50,
    36, -83, 83, -36, -36, 83, -83, 36,
    18, -50, 75, -89, 89, -75, 50, -18};
__constant__ int A_DCT4[16] = {64, 64, 64, 64, 83, 36, -36, -83, 64, -64, -64, 64, 36, -83, 83, -36};
__constant__ int A_DST4[16] = {29, 55, 74, 84, 74, 74, 0, -74, 84, -29, -74, 55, 55, -84, 74, -29};

__device__ __forceinline__ int clamp_px(int v) { return min(max(v, -127), 127); }

__device__ __forceinline__ int deq_spatial(int q, u32 step) {
    u32 m = ((u32)abs(q) * step + 8u) >> 4;
    return q < 0 ? -(int)m : (int)m;
}

// One N×N transform block at (r0, c0) of the tile, rebuilt in place.
__device__ void lossy_block(u8* tb, u32 w, u32 mode, u32 step, u32 pred, u32 r0, u32 c0) {
    const int* A = mode == M_DCT8 ? A_DCT8 : (mode == M_DCT4 ? A_DCT4 : A_DST4);
    const int N = mode == M_DCT8 ? 8 : 4;
    const int S = mode == M_DCT8 ? 12 : 11;
    int d[64], f[64];
    for (int u = 0; u < N; u++)
        for (int v = 0; v < N; v++) d[u * N + v] = sx8(tb[(r0 + u) * w + c0 + v]) * (int)step;
    // columns: E[k][v] = Σ_u A[u][k] · D[u][v]; F = (E + 64) >> 7
    for (int k = 0; k < N; k++)
        for (int v = 0; v < N; v++) {
            int s = 0;
            for (int u = 0; u < N; u++) s += A[u * N + k] * d[u * N + v];
            f[k * N + v] = (s + 64) >> 7;
        }
    // rows: G[k][l] = Σ_v F[k][v] · A[v][l]; r = (G + 2^(S−1)) >> S
    for (int k = 0; k < N; k++) {
        u32 o = (r0 + k) * w + c0;
        int left = (pred == 1u && c0 > 0) ? sx8(tb[o - 1]) : 0;
        for (int l = 0; l < N; l++) {
            int g = 0;
            for (int v = 0; v < N; v++) g += f[k * N + v] * A[v * N + l];
            int r = (g + (1 << (S - 1))) >> S;
            int pr = pred == 2u ? (r0 > 0 ? sx8(tb[(r0 - 1) * w + c0 + l]) : 0) : left;
            tb[o + l] = (u8)clamp_px(pr + r);
        }
    }
}

__device__ void rebuild_lossy(u8* tb, const Tile& ti, u32 mode, u32 params, u32 lane) {
    u32 h = ti.h, w = ti.w, n = ti.n;
    u32 step = params & 0xfffu;
    u32 pred = (params >> 12) & 3u;
    if (mode == M_SPATIAL) {
        if (pred == 0u) {
            for (u32 k = lane; k < n; k += 32) tb[k] = (u8)clamp_px(deq_spatial(sx8(tb[k]), step));
        } else if (pred == 1u) {
            for (u32 i = lane; i < h; i += 32) {
                int prev = 0;
                for (u32 j = 0; j < w; j++) {
                    prev = clamp_px(prev + deq_spatial(sx8(tb[i * w + j]), step));
                    tb[i * w + j] = (u8)prev;
                }
            }
        } else {
            for (u32 c = lane; c < w; c += 32) {
                int prev = 0;
                for (u32 i = 0; i < h; i++) {
                    prev = clamp_px(prev + deq_spatial(sx8(tb[i * w + c]), step));
                    tb[i * w + c] = (u8)prev;
                }
            }
        }
        return;
    }
    u32 N = mode == M_DCT8 ? 8u : 4u;
    u32 bh = h / N, bw = w / N;
    if (pred == 0u) {
        for (u32 b = lane; b < bh * bw; b += 32) lossy_block(tb, w, mode, step, 0u, (b / bw) * N, (b % bw) * N);
    } else if (pred == 1u) {
        for (u32 br = lane; br < bh; br += 32)
            for (u32 bc = 0; bc < bw; bc++) lossy_block(tb, w, mode, step, 1u, br * N, bc * N);
    } else {
        for (u32 bc = lane; bc < bw; bc += 32)
            for (u32 br = 0; br < bh; br++) lossy_block(tb, w, mode, step, 2u, br * N, bc * N);
    }
}
#endif

// ---- the kernel

extern "C" __global__ void __launch_bounds__(WARPS * 32, MINB) rans_decode(const Params p) {
    extern __shared__ u32 smem[];
    u32* lut = smem;
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    u32* stage = lut + NTAB * 4096 + warp * (STAGE_U32 > 0 ? STAGE_U32 : 1);
    u8* tb = (u8*)(lut + NTAB * 4096 + WARPS * (STAGE_U32 > 0 ? STAGE_U32 : 1)) + warp * TB_BYTES;
    {
        const uint4* g = (const uint4*)p.lut;
        uint4* s = (uint4*)lut;
        for (u32 i = threadIdx.x; i < NTAB * 1024; i += blockDim.x) s[i] = g[i];
    }
    __syncthreads();
    const u32* s32 = (const u32*)p.stream;
    const u32* index = (const u32*)p.index;
    const u32 ltmask = (1u << lane) - 1u;
    const u32 pb = min(p.prob_bits, 12u);
    const u32 mask = (1u << pb) - 1u;
    const u32 tbits = max(min(p.tail_bits, 8u), 1u);
    const u32 tmask = (1u << tbits) - 1u;
    const u32 tbase = p.tail_base & 0xffu;
    const u32 R = 16u / tbits;
    u32* errs = (u32*)p.errs;

    for (u32 rel = blockIdx.x * WARPS + warp; rel < p.tile_count; rel += gridDim.x * WARPS) {
        Tile ti;
        ti.t = p.tile_first + rel;
        u32 ty = ti.t / p.tiles_x;
        u32 tx = ti.t - ty * p.tiles_x;
        ti.r0 = ty * p.tile_h;
        ti.c0 = tx * p.tile_w;
        ti.h = min(p.tile_h, p.rows - ti.r0);
        ti.w = min(p.tile_w, p.cols - ti.c0);
        ti.n = min(ti.h * ti.w, 4096u);
        const u32 n = ti.n;
        u32 err = 0;
        u32 off = index[2 * ti.t];
        u32 meta = index[2 * ti.t + 1];
        u32 end = ti.t + 1 < p.ntiles ? index[2 * ti.t + 2] : p.nwords;
        u32 start = min(off, p.nwords);
        end = min(max(end, start), p.nwords);
        const u32 nw = end - start;
        u32 mode = meta & 15u;
        u32 tab = (meta >> 4) & 3u;
        const u32 params = meta >> 8;
        if (tab >= NTAB) {
            err |= E_INDEX;
            tab = 0;
        }
#if LOSSY
        if (mode < M_SPATIAL || mode > M_DST4) {
            err |= E_INDEX;
            mode = M_SPATIAL;
        }
        const bool direct = false;
#else
        if (mode > M_PLANAR || (!MODES && mode != M_NONE && mode != M_PLANAR)) {
            err |= E_INDEX;
            mode = M_NONE;
        }
        const bool direct = mode == M_NONE || mode == M_PLANAR;
#endif
        const bool planar = mode == M_PLANAR;
        // ---- stage the tile's words
        const u32 odd = start & 1u;
        const u32 u0 = start >> 1;
        const u32 len32 = (odd + nw + 1) >> 1;
        const bool staged = STAGE_U32 > 0 && len32 <= STAGE_U32;
        if (staged) {
            for (u32 i = lane; i < len32; i += 32) stage[i] = s32[u0 + i];
        }
        __syncwarp();
        // word i of the tile, 0 past its words
#define WORD(i) ((i) >= nw ? 0u                                                                     \
                 : (((staged ? stage[(odd + (i)) >> 1] : s32[u0 + ((odd + (i)) >> 1)]) >>            \
                     (((odd + (i)) & 1u) << 4)) & 0xffffu))
        // ---- initial states (FORMAT.md §3.3)
        const u32 a = min(32u, (n + 3) / 4);
        const u32 nc = (a + 3) / 4;
        if (nw < nc) err |= E_STATES;
        u32 csum = 0, csum_lt = 0, myc = 0;
        for (u32 cw = 0; cw < nc; cw++) {
            u32 wv = WORD(cw);
            for (u32 nib = 0; nib < 4; nib++) {
                u32 idx = cw * 4 + nib;
                u32 c = (wv >> (4 * nib)) & 15u;
                if (idx < a) {
                    csum += c;
                    if (idx < lane) csum_lt += c;
                    if (idx == lane) myc = c;
                } else if (c != 0) {
                    err |= E_STATES;
                }
            }
        }
        const u32 total_bits = nc * 16 + 16 * a + csum;
        const u32 p0 = (total_bits + 15) / 16;
        if ((total_bits & 15u) != 0 && (WORD(total_bits / 16) >> (total_bits & 15u)) != 0) err |= E_STATES;
        const bool lane_on = lane < a;
        u32 x = 0, nl = 0;
        if (lane_on) {
            u32 bitpos = nc * 16 + 16 * lane + csum_lt;
            u32 nb = 16 + myc;
            if ((bitpos + nb + 15) / 16 > nw) err |= E_STATES;
            u32 w0 = bitpos / 16, sh = bitpos & 15u;
            u64 v = (u64)WORD(w0) | ((u64)WORD(w0 + 1) << 16) | ((u64)WORD(w0 + 2) << 32);
            v = (v >> sh) & ((1ull << nb) - 1ull);
            x = (1u << nb) | (u32)v;
            int rem = (int)(n % 128) - (int)(4 * lane);
            nl = 4 * (n / 128) + (u32)min(max(rem, 0), 4);
        }
        const u32 ntail = min(R, nl);
        const u32 body = nw >= p0 ? nw - p0 : 0u;
        const u32* tl = lut + tab * 4096;
        // ---- the fast region: all 32 lanes decode table-coded symbols
        u32 fast = 0;
        if (a == 32) {
            u32 nl31 = 4 * (n / 128) + (u32)min(max((int)(n % 128) - 124, 0), 4);
            fast = nl31 - min(R, nl31);
        }
        const u32 fast4 = fast & ~3u;
        u32 q = 0;
        for (u32 g4 = 0; g4 < fast4 / 4; g4++) {
            u32 acc4 = 0;
#pragma unroll
            for (u32 i = 0; i < 4; i++) {
                u32 e = tl[x & mask];
                u32 x2 = (((e >> 8) & 0xfffu) + 1u) * (x >> pb) + (e >> 20);
                bool need = x2 < 0x10000u;
                u32 b = __ballot_sync(FULL, need);
                u32 pos = p0 + q + __popc(b & ltmask);
                u32 w;
                if (staged) {
                    // branch-free: every lane reads inside the stage; the state selects
                    u32 k = odd + pos;
                    w = (stage[min(k >> 1, (u32)(STAGE_U32 > 0 ? STAGE_U32 - 1 : 0))] >> ((k & 1u) << 4)) & 0xffffu;
                } else {
                    w = need ? WORD(pos) : 0u;
                }
                x = need ? ((x2 << 16) | w) : x2;
                q += __popc(b);
                acc4 |= (e & 0xffu) << (8 * i);
            }
            u32 k0 = 128 * g4 + 4 * lane;
            if (planar) acc4 = planar4(params, ti.w, k0, acc4);
            if (direct) {
                emit_group(p, ti, k0, 4, acc4);
            } else if (MODES) {
                *(u32*)(tb + k0) = acc4;
            }
        }
        // ---- the other steps: lanes that end early, lane tails
        const u32 smax = 4 * ((n + 127) / 128);
        u32 acc = 0;
        for (u32 s = fast4; s < smax; s++) {
            bool need = false;
            u32 sym = 0;
            u32 x2 = x;
            const bool live = s < nl;
            if (live) {
                if (s + ntail >= nl) {
                    u32 jt = nl - 1 - s;
                    sym = (((x >> (tbits * jt)) & tmask) + tbase) & 0xffu;
                } else {
                    u32 e = tl[x & mask];
                    sym = e & 0xffu;
                    x2 = (((e >> 8) & 0xfffu) + 1u) * (x >> pb) + (e >> 20);
                    need = x2 < 0x10000u;
                }
            }
            u32 b = __ballot_sync(FULL, need);
            if (need) x2 = (x2 << 16) | WORD(p0 + q + __popc(b & ltmask));
            q += __popc(b);
            x = x2;
            if (live) {
                acc |= sym << (8 * (s & 3u));
                if ((s & 3u) == 3u || s + 1 == nl) {
                    u32 k0 = 128 * (s >> 2) + 4 * lane;
                    if (planar) acc = planar4(params, ti.w, k0, acc);
                    if (direct) {
                        emit_group(p, ti, k0, min(4u, n - k0), acc);
                    } else if (MODES) {
                        for (u32 i = 0; i < min(4u, n - k0); i++) tb[k0 + i] = (u8)(acc >> (8 * i));
                    }
                    acc = 0;
                }
            }
        }
#undef WORD
        // ---- end conditions
        if (q > body) {
            err |= E_UNDERFLOW;
        } else if (q < body) {
            err |= E_TRAILING;
        }
        if (lane_on) {
            u32 r = min(tbits * ntail, 16u);
            if ((x >> 16) != 1u || ((x & 0xffffu) >> r) != 0u) err |= E_FINAL;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) err |= __shfl_xor_sync(FULL, err, o);
        if (lane == 0) {
            if (err != 0) {
                atomicOr(&errs[0], err);
                atomicMax(&errs[1], ~ti.t);
            }
            atomicAdd(&errs[2], 1u);
        }
        // ---- rebuild and write the tiles decoded into the buffer
#if MODES
        if (!direct) {
            __syncwarp();
#if LOSSY
            rebuild_lossy(tb, ti, mode, params, lane);
#else
            rebuild_lossless(tb, ti, mode, params, lane);
#endif
            __syncwarp();
            for (u32 gi = lane; gi < (n + 3) / 4; gi += 32) {
                emit_group(p, ti, 4 * gi, min(4u, n - 4 * gi), *(const u32*)(tb + 4 * gi));
            }
        }
#endif
        __syncwarp();
    }
}

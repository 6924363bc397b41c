// Token sampling: the CUDA mirror of shaders/sample_f32.wgsl, exactly the
// algorithm of src/cpu/sample.rs (read its header first), after softmax.cu's
// `softmax_stats` has written the row's block partials.
//
//   sample_prepare: grid (NBS, rows), PWG threads, PW words (8 tokens) each:
//                   the row maximum from the softmax partials, each token's
//                   distance d (two f32 operations, then integers), stored
//                   as u16 (8 per uint4 word), and the block's coarse
//                   histogram over bins d >> 8 (count, u64 weight).
//   sample_select:  one block of SWG threads per row: coarse histogram sums,
//                   the top-k, top-p and drawn bins refined by fine
//                   histograms of one coarse bin each, integer scans, then
//                   the r-th token with the drawn distance in index order;
//                   temperature alone (`plain`): the token whose interval
//                   holds U with the weights in index order (plain_token).
// 64-bit integers are native here (the WGSL kernel emulates them on u32
// pairs); reductions use warp shuffles where the WGSL uses workgroup memory.
// Defines: PWG, PW, SWG (≥ 256, a multiple of 32), AUTO_STEP.

typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef PWG
#define PWG 256
#endif
#ifndef PW
#define PW 2
#endif
#ifndef SWG
#define SWG 1024
#endif
#ifndef AUTO_STEP
#define AUTO_STEP 1
#endif

#define NEG_MAX (-3.40282347e+38f)
#define D_MAX 65535u

// Must match src/cuda/sample.rs `SampleParams`.
struct SampleParams {
    u64 logits;   // f32, row r at element r · ld_in
    u64 soft;     // softmax partials, uint4 (max, sum, first index of max, 0)
    u64 exp2tab;  // u32[2048]
    u64 dist;     // uint4 (8 distances) per word, ld_d words per row
    u64 hcnt;     // u32 per (row, block, bin)
    u64 hw;       // u64 per (row, block, bin)
    u64 steps;    // u64 per row
    u64 tokens;   // u32 per row
    u32 n, rows, ld_in, nb_soft;
    u32 nbs, ld_d, top_k, p_fixed;
    u32 seed_lo, seed_hi, greedy;
    float scale;  // S = 2954.6394 / T
    u32 plain;    // 1: temperature alone, the draw in index order (plain_token)
};

__device__ __forceinline__ float sanitize(float x) {
    u32 b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return NEG_MAX;
    return fminf(fmaxf(x, NEG_MAX), -NEG_MAX);
}

__device__ __forceinline__ u32 weight(const SampleParams& p, u32 d) {
    u32 dd = min(d, D_MAX);
    return ((const u32*)p.exp2tab)[dd & 2047u] >> (dd >> 11);
}

__device__ __forceinline__ u32 distance(float m, float s, float scale) {
    float z = __fmul_rn(__fsub_rn(m, s), scale);
    if (z >= 65535.0f) return D_MAX;
    return (u32)z;
}

__device__ __forceinline__ uint4 soft_part(const SampleParams& p, u32 row, u32 b) {
    return ((const uint4*)p.soft)[(u64)row * p.nb_soft + b];
}

__device__ __forceinline__ u32 d_of(uint4 v, u32 e) {
    u32 w = (e >> 1) == 0 ? v.x : ((e >> 1) == 1 ? v.y : ((e >> 1) == 2 ? v.z : v.w));
    return (w >> (16 * (e & 1u))) & 0xffffu;
}

// ---------------------------------------------------------------- prepare

__device__ __forceinline__ void hist_add(u32* pc, u64* pw, u32 bin, u32 cnt, u64 w) {
    if (cnt == 0) return;
    atomicAdd(&pc[bin], cnt);
    atomicAdd(&pw[bin], w);
}

extern "C" __global__ void __launch_bounds__(PWG) sample_prepare(const SampleParams p) {
    __shared__ u32 pc[256];
    __shared__ u64 pw[256];
    __shared__ float red[PWG / 32];
    const u32 tid = threadIdx.x;
    const u32 blk = blockIdx.x;
    const u32 row = min(blockIdx.y, max(p.rows, 1u) - 1u);
    float m = NEG_MAX;
    for (u32 b = tid; b < p.nb_soft; b += PWG) {
        uint4 s = soft_part(p, row, b);
        if (__uint_as_float(s.y) != 0.0f) m = fmaxf(m, __uint_as_float(s.x));
    }
    for (u32 b = tid; b < 256; b += PWG) {
        pc[b] = 0;
        pw[b] = 0;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if ((tid & 31u) == 0) red[tid >> 5] = m;
    __syncthreads();
    m = red[0];
    for (u32 w = 1; w < PWG / 32; w++) m = fmaxf(m, red[w]);
    // this thread's words; equal bins in a run are added once
    u32 run_bin = 0xffffffffu, run_cnt = 0;
    u64 run_w = 0;
    const float* logits = (const float*)p.logits;
    uint4* dist = (uint4*)p.dist;
    for (u32 k = 0; k < PW; k++) {
        u32 j = (blk * PW + k) * PWG + tid;
        if (j < p.ld_d) {
            u32 packed[4];
            for (u32 h = 0; h < 4; h++) {
                u32 pair = 0;
                for (u32 e = 0; e < 2; e++) {
                    u32 i = j * 8 + h * 2 + e;
                    u32 d = D_MAX;
                    if (i < p.n) d = distance(m, sanitize(logits[(u64)row * p.ld_in + i]), p.scale);
                    pair |= d << (16 * e);
                    u32 w = weight(p, d);
                    if (w > 0) {
                        u32 bin = d >> 8;
                        if (bin != run_bin) {
                            if (run_bin != 0xffffffffu) hist_add(pc, pw, run_bin, run_cnt, run_w);
                            run_bin = bin;
                            run_cnt = 0;
                            run_w = 0;
                        }
                        run_cnt += 1;
                        run_w += w;
                    }
                }
                packed[h] = pair;
            }
            dist[(u64)row * p.ld_d + j] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
        }
    }
    if (run_bin != 0xffffffffu) hist_add(pc, pw, run_bin, run_cnt, run_w);
    __syncthreads();
    if (blockIdx.y < p.rows && blk < p.nbs) {
        u64 base = ((u64)row * p.nbs + blk) * 256;
        for (u32 b = tid; b < 256; b += PWG) {
            ((u32*)p.hcnt)[base + b] = pc[b];
            ((u64*)p.hw)[base + b] = pw[b];
        }
    }
}

// ---------------------------------------------------------------- select

struct Sel {
    u32 cc[256];
    u64 cw[256];
    u32 fc[256];
    u64 fw[256];
    u32 fine[256];
    u32 first;
    u32 seg[SWG];
    u64 seg64[SWG];
    float gm[SWG];
    u32 gi[SWG];
};

// Inclusive scan of (cc, cw) or (fc, fw) over 256 bins.
__device__ void scan256(Sel& s, bool fine) {
    const u32 tid = threadIdx.x;
    for (u32 off = 1; off < 256; off <<= 1) {
        u32 c = 0;
        u64 w = 0;
        bool act = tid < 256 && tid >= off;
        if (act) {
            c = fine ? s.fc[tid - off] : s.cc[tid - off];
            w = fine ? s.fw[tid - off] : s.cw[tid - off];
        }
        __syncthreads();
        if (act) {
            if (fine) {
                s.fc[tid] += c;
                s.fw[tid] += w;
            } else {
                s.cc[tid] += c;
                s.cw[tid] += w;
            }
        }
        __syncthreads();
    }
}

// The first bin b < limit whose flag is set, or `limit` (every thread gets it).
__device__ u32 first_set(Sel& s, bool flag, u32 limit) {
    const u32 tid = threadIdx.x;
    if (tid == 0) s.first = limit;
    __syncthreads();
    if (tid < limit && flag) atomicMin(&s.first, tid);
    __syncthreads();
    u32 r = s.first;
    __syncthreads();
    return r;
}

__device__ __forceinline__ u32 cc_before(const Sel& s, u32 b) { return b == 0 ? 0u : s.cc[b - 1]; }
__device__ __forceinline__ u64 cw_before(const Sel& s, u32 b) { return b == 0 ? 0ull : s.cw[b - 1]; }
__device__ __forceinline__ u32 fc_before(const Sel& s, u32 b) { return b == 0 ? 0u : s.fc[b - 1]; }
__device__ __forceinline__ u64 fw_before(const Sel& s, u32 b) { return b == 0 ? 0ull : s.fw[b - 1]; }

__device__ __forceinline__ uint4 dist_word(const SampleParams& p, u32 row, u32 j) {
    return ((const uint4*)p.dist)[(u64)row * p.ld_d + j];
}

// Fine histogram of coarse bin c, scanned: (fc, fw) per distance c·256 + f.
__device__ void fine_pass(Sel& s, const SampleParams& p, u32 row, u32 c) {
    const u32 tid = threadIdx.x;
    for (u32 f = tid; f < 256; f += SWG) s.fine[f] = 0;
    __syncthreads();
    for (u32 j = tid; j < p.ld_d; j += SWG) {
        uint4 v = dist_word(p, row, j);
        for (u32 e = 0; e < 8; e++) {
            u32 d = d_of(v, e);
            if ((d >> 8) == c && weight(p, d) > 0) atomicAdd(&s.fine[d & 255u], 1u);
        }
    }
    __syncthreads();
    if (tid < 256) {
        u32 n = s.fine[tid];
        s.fc[tid] = n;
        s.fw[tid] = (u64)n * weight(p, c * 256 + tid);
    }
    __syncthreads();
    scan256(s, true);
}

// The sum of v over the threads before this one; `seg` then holds the
// inclusive scan (its last entry the block's total).
template <typename T>
__device__ T block_excl_scan(T* seg, T v) {
    const u32 tid = threadIdx.x;
    seg[tid] = v;
    for (u32 off = 1; off < SWG; off <<= 1) {
        __syncthreads();
        T add = tid >= off ? seg[tid - off] : (T)0;
        __syncthreads();
        seg[tid] += add;
    }
    __syncthreads();
    return seg[tid] - v;
}

// The first token of the row, in index order, where the running sum of
// m(d) over its tokens passes the goal that goal_of(row total) gives: each
// thread sums m over its contiguous words, a scan over the threads, then the
// one whose range holds the goal walks it. T: u32 counts or u64 weights.
template <typename T, typename M, typename G>
__device__ u32 token_at(Sel& s, T* seg, const SampleParams& p, u32 row, M m, G goal_of) {
    const u32 tid = threadIdx.x;
    const u32 per = (p.ld_d + SWG - 1) / SWG;
    const u32 j0 = min(tid * per, p.ld_d);
    const u32 j1 = min(j0 + per, p.ld_d);
    T sum = 0;
    for (u32 j = j0; j < j1; j++) {
        uint4 v = dist_word(p, row, j);
        for (u32 e = 0; e < 8; e++) sum += m(d_of(v, e));
    }
    const T before = block_excl_scan(seg, sum);
    const T goal = goal_of(seg[SWG - 1]);
    if (tid == 0) s.first = 0xffffffffu;
    __syncthreads();
    if (goal >= before && goal < before + sum) {
        T left = goal - before;
        u32 found = 0xffffffffu;
        for (u32 j = j0; j < j1 && found == 0xffffffffu; j++) {
            uint4 v = dist_word(p, row, j);
            for (u32 e = 0; e < 8; e++) {
                const T me = m(d_of(v, e));
                if (found == 0xffffffffu) {
                    if (left < me) {
                        found = j * 8 + e;
                    } else {
                        left -= me;
                    }
                }
            }
        }
        atomicMin(&s.first, found);
    }
    __syncthreads();
    u32 res = s.first;
    __syncthreads();
    return res;
}

// The index of the r-th (from 0) token of the row with distance ds, in index order.
__device__ u32 nth_with_distance(Sel& s, const SampleParams& p, u32 row, u32 ds, u32 r) {
    return token_at<u32>(
        s, s.seg, p, row, [&](u32 d) { return d == ds ? 1u : 0u; }, [&](u32) { return r; });
}

// The greedy token: the first index of the row maximum, from the softmax partials.
__device__ u32 greedy_token(Sel& s, const SampleParams& p, u32 row) {
    const u32 tid = threadIdx.x;
    float m = NEG_MAX;
    u32 idx = 0xffffffffu;
    for (u32 b = tid; b < p.nb_soft; b += SWG) {
        uint4 q = soft_part(p, row, b);
        float bm = __uint_as_float(q.x);
        if (__uint_as_float(q.y) != 0.0f && (idx == 0xffffffffu || bm > m || (bm == m && q.z < idx))) {
            m = bm;
            idx = q.z;
        }
    }
    s.gm[tid] = m;
    s.gi[tid] = idx;
    for (u32 off = SWG / 2; off > 0; off >>= 1) {
        __syncthreads();
        if (tid < off) {
            float m2 = s.gm[tid + off];
            u32 i2 = s.gi[tid + off];
            if (i2 != 0xffffffffu && (s.gi[tid] == 0xffffffffu || m2 > s.gm[tid] || (m2 == s.gm[tid] && i2 < s.gi[tid]))) {
                s.gm[tid] = m2;
                s.gi[tid] = i2;
            }
        }
    }
    __syncthreads();
    u32 r = s.gi[0];
    __syncthreads();
    return r;
}

// Philox4x32-10 (src/rng.rs): words 0 (low) and 1 (high) of the output.
__device__ u64 philox_u64(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
    for (u32 r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        u32 n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    return (u64)c0 | ((u64)c1 << 32);
}

__device__ void finish(const SampleParams& p, u32 token) {
    if (threadIdx.x == 0 && blockIdx.x < p.rows) {
        ((u32*)p.tokens)[blockIdx.x] = token;
#if AUTO_STEP
        ((u64*)p.steps)[blockIdx.x] += 1;
#endif
    }
}

// Temperature alone (`p.plain`): the weights in index order, so the token is
// the first index i with U < the sum of w_j for j ≤ i (src/cpu/sample.rs,
// step 8), U = floor(W · R / 2^64) with W the row's total weight.
__device__ u32 plain_token(Sel& s, const SampleParams& p, u32 row) {
    const u64 st = ((const u64*)p.steps)[row];
    const u64 rnd = philox_u64((u32)st, (u32)(st >> 32), row, 0u, p.seed_lo, p.seed_hi);
    return token_at<u64>(
        s, s.seg64, p, row, [&](u32 d) { return (u64)weight(p, d); },
        [&](u64 total) { return __umul64hi(total, rnd); });
}

extern "C" __global__ void __launch_bounds__(SWG) sample_select(const SampleParams p) {
    __shared__ Sel s;
    const u32 tid = threadIdx.x;
    const u32 row = min(blockIdx.x, max(p.rows, 1u) - 1u);
    if (p.greedy != 0) {
        finish(p, greedy_token(s, p, row));
        return;
    }
    if (p.plain != 0) {
        finish(p, plain_token(s, p, row));
        return;
    }
    // 1. coarse histogram of the row, scanned
    if (tid < 256) {
        u32 c = 0;
        u64 w = 0;
        for (u32 b = 0; b < p.nbs; b++) {
            u64 i = ((u64)row * p.nbs + b) * 256 + tid;
            c += ((const u32*)p.hcnt)[i];
            w += ((const u64*)p.hw)[i];
        }
        s.cc[tid] = c;
        s.cw[tid] = w;
    }
    __syncthreads();
    scan256(s, false);
    const u32 ncand = s.cc[255];
    const u32 kk = p.top_k != 0 ? min(p.top_k, ncand) : ncand;
    // 2. top-k: the bin and the distance d_k where the count reaches K
    const u32 ck = first_set(s, tid < 256 && s.cc[min(tid, 255u)] >= kk, 256);
    fine_pass(s, p, row, ck);
    const u32 base_cnt = cc_before(s, ck);
    const u32 fk = first_set(s, tid < 256 && base_cnt + s.fc[min(tid, 255u)] >= kk, 256);
    const u32 dk = ck * 256 + fk;
    const u32 tk = kk - (base_cnt + fc_before(s, fk));
    const u64 w_k = cw_before(s, ck) + fw_before(s, fk) + (u64)tk * weight(p, dk);
    // 3. top-p: goal = ceil(W_K · P / 2^24), the product in 128 bits
    const u64 lo = w_k * (u64)p.p_fixed;
    u64 hi = __umul64hi(w_k, (u64)p.p_fixed);
    const u64 lo2 = lo + 0xffffffull;
    hi += lo2 < lo ? 1ull : 0ull;
    const u64 goal = (lo2 >> 24) | (hi << 40);
    const u32 cp = first_set(s, tid < 256 && tid < ck && s.cw[min(tid, 255u)] >= goal, ck);
    u32 fp;
    if (cp < ck) {
        fine_pass(s, p, row, cp);
        const u64 base_w = cw_before(s, cp);
        fp = first_set(s, tid < 256 && base_w + s.fw[min(tid, 255u)] >= goal, 256);
    } else {
        const u64 base_w = cw_before(s, ck);
        fp = first_set(s, tid < 256 && tid < fk && base_w + s.fw[min(tid, 255u)] >= goal, fk);
    }
    const u32 dp = cp * 256 + fp;
    const u64 wp_before = cw_before(s, cp) + fw_before(s, fp);
    const u32 wdp = weight(p, dp);
    const u64 need = goal - wp_before;
    const u64 tp = need / wdp + (need % wdp != 0 ? 1ull : 0ull);
    const u64 w_all = wp_before + tp * wdp;
    // 4. the draw: U = floor(W · R / 2^64)
    const u64 st = ((const u64*)p.steps)[row];
    const u64 rnd = philox_u64((u32)st, (u32)(st >> 32), row, 0u, p.seed_lo, p.seed_hi);
    const u64 u = __umul64hi(w_all, rnd);
    u32 ds = dp;
    u32 rank = 0;
    if (u >= wp_before) {
        rank = (u32)((u - wp_before) / wdp);
    } else {
        // below d_p: first in the coarse bins before c_p, else inside c_p's fine bins
        const u32 cs = first_set(s, tid < 256 && tid < cp && u < s.cw[min(tid, 255u)], cp);
        if (cs < cp) fine_pass(s, p, row, cs);
        const u64 base_w = cw_before(s, cs);
        const u32 fs = first_set(s, tid < 256 && u < base_w + s.fw[min(tid, 255u)], 256);
        ds = cs * 256 + fs;
        rank = (u32)((u - (base_w + fw_before(s, fs))) / weight(p, ds));
    }
    // 5. the token: the rank-th with distance ds, in index order
    finish(p, nth_with_distance(s, p, row, ds, rank));
}

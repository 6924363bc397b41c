//! AVX2 decode of a tile's fast region: the 32 lanes as four vectors of eight.
//!
//! Bit-exact with the scalar reference (`decode_steps_scalar`), which the
//! tests check on random and corrupted tiles. Per step and vector: a gather
//! from the slot lookup, the state update, a compare for the lanes that need a
//! word, and the words themselves loaded eight at a time and moved to those
//! lanes by a permutation picked by the 8-bit mask (the CPU form of a
//! subgroup ballot and popcount). A lane's four symbols of a group assemble
//! into one u32, so each group is stored as 128 contiguous bytes.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::{DecodeLut, LANES};

/// AVX2 is present and `WCODEC_NO_SIMD` is not set.
pub fn avx2_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("WCODEC_NO_SIMD").is_none() && is_x86_feature_detected!("avx2")
    })
}

/// For each 8-bit mask of lanes that read: lane i takes word popcount(mask below i).
const PERM: [[u32; 8]; 256] = {
    let mut t = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut i = 0;
        let mut k = 0;
        while i < 8 {
            if m >> i & 1 == 1 {
                t[m][i] = k;
                k += 1;
            }
            i += 1;
        }
        m += 1;
    }
    t
};

/// Decode `groups` whole groups (4 steps each) of a tile's fast region.
///
/// # Safety
/// The CPU must have AVX2. `out` must hold at least `128 · groups` bytes.
#[target_feature(enable = "avx2")]
pub unsafe fn decode_groups_avx2(
    x: &mut [u32; LANES],
    body: &[u16],
    q: &mut usize,
    out: &mut [u8],
    groups: usize,
    lut: &DecodeLut,
    prob_bits: u32,
) {
    assert!(out.len() >= 128 * groups);
    unsafe {
        let mut xv = [
            _mm256_loadu_si256(x.as_ptr() as *const __m256i),
            _mm256_loadu_si256(x.as_ptr().add(8) as *const __m256i),
            _mm256_loadu_si256(x.as_ptr().add(16) as *const __m256i),
            _mm256_loadu_si256(x.as_ptr().add(24) as *const __m256i),
        ];
        let slot_mask = _mm256_set1_epi32(((1u32 << prob_bits) - 1) as i32);
        let m8 = _mm256_set1_epi32(0xff);
        let m12 = _mm256_set1_epi32(0xfff);
        let one = _mm256_set1_epi32(1);
        let zero = _mm256_setzero_si256();
        let shift = _mm_cvtsi32_si128(prob_bits as i32);
        let len = body.len();
        let mut qq = *q;
        for g in 0..groups {
            let mut acc = [zero; 4];
            for j in 0..4 {
                let sh = _mm256_set1_epi32(8 * j);
                for v in 0..4 {
                    let xs = xv[v];
                    let slot = _mm256_and_si256(xs, slot_mask);
                    let e = _mm256_i32gather_epi32::<4>(lut.as_ptr() as *const i32, slot);
                    acc[v] =
                        _mm256_or_si256(acc[v], _mm256_sllv_epi32(_mm256_and_si256(e, m8), sh));
                    let f = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32::<8>(e), m12), one);
                    let bias = _mm256_srli_epi32::<20>(e);
                    let nx =
                        _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srl_epi32(xs, shift)), bias);
                    let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(nx), zero);
                    let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize;
                    if m == 0 {
                        xv[v] = nx;
                        continue;
                    }
                    let w = if qq + 8 <= len {
                        _mm_loadu_si128(body.as_ptr().add(qq) as *const __m128i)
                    } else {
                        // Near (or past) the end: zero-padded, as the scalar path reads 0.
                        let mut pad = [0u16; 8];
                        for (k, p) in pad.iter_mut().enumerate() {
                            *p = body.get(qq + k).copied().unwrap_or(0);
                        }
                        _mm_loadu_si128(pad.as_ptr() as *const __m128i)
                    };
                    let wl = _mm256_permutevar8x32_epi32(
                        _mm256_cvtepu16_epi32(w),
                        _mm256_loadu_si256(PERM[m].as_ptr() as *const __m256i),
                    );
                    let filled = _mm256_or_si256(_mm256_slli_epi32::<16>(nx), wl);
                    xv[v] = _mm256_blendv_epi8(nx, filled, need);
                    qq += m.count_ones() as usize;
                }
            }
            for (v, a) in acc.iter().enumerate() {
                _mm256_storeu_si256(out.as_mut_ptr().add(128 * g + 32 * v) as *mut __m256i, *a);
            }
        }
        for (v, xs) in xv.iter().enumerate() {
            _mm256_storeu_si256(x.as_mut_ptr().add(8 * v) as *mut __m256i, *xs);
        }
        *q = qq;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        EncTable, Tail, decode_lut, decode_steps_scalar, encode_reverse, read_states,
    };
    use super::*;
    use crate::codec::freq::FreqTable;

    /// The AVX2 kernel and the scalar reference agree on states, word
    /// position and symbols, on valid tiles and on corrupted ones.
    #[test]
    fn avx2_matches_scalar() {
        if !is_x86_feature_detected!("avx2") {
            eprintln!("SKIP: no AVX2 on this CPU");
            return;
        }
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for trial in 0..300 {
            let prob_bits = 10 + (trial % 3) as u32;
            let spread = 1 + next() % 200;
            let syms: Vec<u8> = (0..4096)
                .map(|_| ((next() % spread) as u8).wrapping_sub(100))
                .collect();
            let t =
                FreqTable::from_counts(&crate::codec::freq::histogram(&syms), prob_bits).unwrap();
            let mut words = Vec::new();
            encode_reverse(&syms, &EncTable::new(&t), Tail::BYTES, &mut words);
            if trial % 2 == 1 {
                // corrupt: flip a word, or cut the stream short
                let k = (next() as usize) % words.len();
                if trial % 4 == 1 {
                    words[k] ^= 0x1357
                } else {
                    words.truncate(k)
                }
            }
            let lut = decode_lut(&t);
            let mut x0 = [0u32; LANES];
            let Ok(p0) = read_states(&words, 32, &mut x0) else {
                continue;
            };
            let body = &words[p0..];
            let groups = 31; // the fast region of a full tile with 2-symbol tails: 126 steps
            let (mut xa, mut qa, mut oa) = (x0, 0usize, vec![0u8; 4096]);
            let (mut xb, mut qb, mut ob) = (x0, 0usize, vec![0u8; 4096]);
            unsafe { decode_groups_avx2(&mut xa, body, &mut qa, &mut oa, groups, &lut, prob_bits) };
            decode_steps_scalar(
                &mut xb,
                body,
                &mut qb,
                &mut ob,
                0..groups * 4,
                &lut,
                prob_bits,
            );
            assert_eq!((xa, qa), (xb, qb), "trial {trial}");
            assert!(oa == ob, "trial {trial}: symbols differ");
        }
    }
}

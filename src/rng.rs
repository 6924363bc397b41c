//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
//! SC 2011): the counter-based generator every backend shares. The same
//! (key, counter) gives the same four words on the CPU and in WGSL
//! (`shaders/lib/philox.wgsl`), so a seed picks the same token everywhere.
//!
//! The sampler's draws are defined in [`sample_words`].

/// Round multipliers and Weyl key increments of Philox4x32.
pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with `rounds` rounds (the key is bumped between rounds).
pub fn philox4x32_r(rounds: u32, ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for r in 0..rounds {
        if r > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let (hi0, lo0) = mulhilo(PHILOX_M0, c[0]);
        let (hi1, lo1) = mulhilo(PHILOX_M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// Philox4x32-10, the generator the crate uses.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox4x32_r(10, ctr, key)
}

/// The Philox call behind one sampling decision: key = the 64-bit seed
/// (low word first), counter = (step low, step high, row, 0). `step` is the
/// caller's token counter, `row` the sequence in a batch.
pub fn sample_words(seed: u64, step: u64, row: u32) -> [u32; 4] {
    philox4x32_10(
        [step as u32, (step >> 32) as u32, row, 0],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// The 64-bit uniform integer of a sampling decision: words 0 (low) and 1 (high)
/// of [`sample_words`].
pub fn sample_u64(seed: u64, step: u64, row: u32) -> u64 {
    let w = sample_words(seed, step, row);
    w[0] as u64 | (w[1] as u64) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from Random123's `tests/kat_vectors` (philox4x32, 7 and 10 rounds):
    /// counter (4 words), key (2 words), expected (4 words).
    #[test]
    fn random123_known_answers() {
        type Kat = (u32, [u32; 4], [u32; 2], [u32; 4]);
        let kat: [Kat; 6] = [
            (
                7,
                [0; 4],
                [0; 2],
                [0x5f6f_b709, 0x0d89_3f64, 0x4f12_1f81, 0x4f73_0a48],
            ),
            (
                7,
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x5207_ddc2, 0x4516_5e59, 0x4d8e_e751, 0x8c52_f662],
            ),
            (
                7,
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0x4dfc_caba, 0x190a_87f0, 0xc473_62ba, 0xb6b5_242a],
            ),
            (
                10,
                [0; 4],
                [0; 2],
                [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
            ),
            (
                10,
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
            ),
            (
                10,
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
            ),
        ];
        for (rounds, ctr, key, want) in kat {
            assert_eq!(
                philox4x32_r(rounds, ctr, key),
                want,
                "philox4x32-{rounds} {ctr:08x?} {key:08x?}"
            );
        }
        assert_eq!(philox4x32_10([0; 4], [0; 2]), kat[3].3);
    }

    #[test]
    fn sample_words_use_seed_step_and_row() {
        let a = sample_words(1, 2, 3);
        assert_eq!(a, philox4x32_10([2, 0, 3, 0], [1, 0]));
        assert_ne!(sample_words(1, 2, 3), sample_words(1, 2, 4));
        assert_ne!(sample_words(1, 2, 3), sample_words(1, 3, 3));
        assert_ne!(sample_words(1 << 32, 2, 3), sample_words(1, 2, 3));
        assert_eq!(sample_u64(9, 8, 7), a_u64(sample_words(9, 8, 7)));
        fn a_u64(w: [u32; 4]) -> u64 {
            w[0] as u64 | (w[1] as u64) << 32
        }
    }
}

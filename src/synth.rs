//! Synthetic weights drawn like real ones, for benchmarks: i.i.d. samples
//! from distributions measured on all-MiniLM-L6-v2 (22.7 M weights in its
//! 2-D tensors), so benchmarks never run on zeros and need no download.

use rayon::prelude::*;

/// Counts of each byte of MiniLM's per-row absmax INT8 weights (index = the
/// int8 value as a byte).
pub const MINILM_INT8_HISTOGRAM: [u32; 256] = [
    269157, 266055, 264440, 261719, 259953, 258956, 255687, 253744, 251017, 246866, 245609, 241530,
    236926, 234578, 231116, 227581, 223568, 219867, 215617, 211031, 208294, 203531, 199616, 195735,
    191359, 187886, 182711, 179247, 175345, 169975, 166906, 162507, 158580, 154219, 150316, 146398,
    141214, 138097, 133655, 130263, 125684, 122388, 118955, 114923, 111698, 108699, 103864, 100835,
    97916, 94232, 90915, 87950, 84629, 81522, 78689, 76227, 73356, 70384, 67966, 64900, 63143,
    60098, 57760, 55573, 53277, 50956, 48680, 46918, 44894, 42820, 41312, 39453, 37639, 35879,
    34326, 33479, 31110, 29839, 28188, 27397, 25878, 24420, 23020, 22175, 21149, 20485, 19073,
    18261, 17382, 16237, 15368, 14722, 13972, 13465, 12613, 12043, 11104, 10571, 10189, 9501, 8967,
    8361, 8107, 7613, 7236, 6668, 6309, 6048, 5672, 5245, 4993, 4690, 4449, 4153, 3906, 3751, 3455,
    3246, 3120, 2880, 2813, 2620, 2306, 2257, 2089, 1944, 1920, 28050, 0, 25895, 1918, 1999, 2020,
    2249, 2408, 2515, 2716, 2912, 3099, 3321, 3528, 3734, 3771, 4298, 4485, 4776, 5063, 5407, 5724,
    6227, 6420, 6909, 7278, 7599, 7951, 8513, 9021, 9668, 9951, 10687, 11402, 11790, 12585, 13088,
    14197, 14871, 15429, 16461, 17437, 18598, 19241, 20243, 21388, 22306, 23400, 24597, 25790,
    27336, 28263, 30137, 31220, 32488, 34366, 35930, 37726, 39519, 40644, 43084, 45267, 47361,
    48881, 51444, 53481, 55486, 57961, 60436, 62552, 64747, 67942, 71159, 73710, 75976, 79411,
    82021, 85336, 88539, 91833, 94606, 97712, 101341, 104697, 108223, 111687, 116221, 119010,
    122703, 126121, 130424, 134379, 138084, 141901, 145986, 150401, 154398, 158793, 161706, 166839,
    170703, 174187, 179062, 182777, 186839, 190893, 194693, 199377, 202770, 207636, 211749, 216321,
    220007, 223282, 227231, 230741, 234064, 238723, 241445, 243936, 248072, 250314, 253103, 255783,
    257442, 260245, 262724, 263910, 265870,
];

/// Counts of each BF16 exponent byte of MiniLM's weights cast to BF16.
pub const MINILM_BF16_EXPONENT_HISTOGRAM: [u32; 256] = [
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 3, 7, 12, 22, 60, 74, 177, 369, 712, 1440, 2873, 5735, 11591, 23226, 46137, 91493,
    183142, 365887, 729807, 1437803, 2748564, 4802981, 6544071, 4798080, 867102, 20450, 272, 14, 2,
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A sampler: a 65536-entry inverse CDF, so one draw is one lookup.
pub struct Sampler {
    table: Vec<u8>,
}

impl Sampler {
    pub fn new(hist: &[u32; 256]) -> Sampler {
        let total: u64 = hist.iter().map(|&c| c as u64).sum();
        let mut table = Vec::with_capacity(1 << 16);
        let mut acc = 0u64;
        for (s, &c) in hist.iter().enumerate() {
            acc += c as u64;
            let end = ((acc << 16) / total) as usize;
            table.resize(end.max(table.len()), s as u8);
        }
        table.resize(1 << 16, 255);
        Sampler { table }
    }

    /// The byte that 16 uniform random bits `r` select.
    #[inline]
    pub fn sample(&self, r: u16) -> u8 {
        self.table[r as usize]
    }

    /// `n` i.i.d. bytes, deterministic in `seed`, generated in parallel.
    pub fn draw(&self, n: usize, seed: u64) -> Vec<u8> {
        let mut out = vec![0u8; n];
        out.par_chunks_mut(1 << 20)
            .enumerate()
            .for_each(|(ci, chunk)| {
                let mut s = seed ^ (ci as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                for quad in chunk.chunks_mut(4) {
                    let r = splitmix(&mut s);
                    for (k, b) in quad.iter_mut().enumerate() {
                        *b = self.sample((r >> (16 * k)) as u16);
                    }
                }
            });
        out
    }
}

/// SplitMix64: the generator behind every draw here.
pub(crate) fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` INT8 weights (as bytes) drawn like MiniLM's per-row absmax INT8.
pub fn int8_weights(n: usize, seed: u64) -> Vec<u8> {
    Sampler::new(&MINILM_INT8_HISTOGRAM).draw(n, seed)
}

/// `n` BF16 weights (little-endian bytes): MiniLM's exponent distribution,
/// uniformly random sign and mantissa.
pub fn bf16_weights(n: usize, seed: u64) -> Vec<u8> {
    let exps = Sampler::new(&MINILM_BF16_EXPONENT_HISTOGRAM).draw(n, seed);
    let mut out = vec![0u8; 2 * n];
    out.par_chunks_mut(2 << 20)
        .zip(exps.par_chunks(1 << 20))
        .enumerate()
        .for_each(|(ci, (o, e))| {
            let mut s = seed ^ 0x5eed ^ (ci as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
            for (pair, &ex) in o.chunks_exact_mut(2).zip(e) {
                let r = splitmix(&mut s) as u16;
                let v = (r & 0x807f) | (ex as u16) << 7;
                pair.copy_from_slice(&v.to_le_bytes());
            }
        });
    out
}

/// `n` values ~ N(0, sigma²), none zero, from `seed` (parallel, deterministic).
pub fn normals(n: usize, sigma: f64, seed: u64) -> Vec<f32> {
    const CHUNK: usize = 1 << 16;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let mut s = seed ^ (ci as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut next = || {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
            };
            for v in chunk.iter_mut() {
                let (u1, u2) = (next().max(1e-300), next());
                let g = ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * sigma)
                    as f32;
                *v = if g == 0.0 { (sigma * 1e-3) as f32 } else { g };
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_histogram() {
        let v = int8_weights(1 << 20, 1);
        let h = crate::codec::freq::histogram(&v);
        let mut want = [0u64; 256];
        for s in 0..256 {
            want[s] = MINILM_INT8_HISTOGRAM[s] as u64;
        }
        let (a, b) = (
            crate::codec::freq::entropy(&h),
            crate::codec::freq::entropy(&want),
        );
        assert!((a - b).abs() < 0.01, "{a} vs {b}");
        assert!(v.iter().any(|&x| x != v[0]));
        let f = bf16_weights(1 << 16, 2);
        assert_eq!(f.len(), 1 << 17);
        assert!(
            f.chunks(2)
                .all(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32().is_finite())
        );
    }
}

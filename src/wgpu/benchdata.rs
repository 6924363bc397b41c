//! Data for `wcodec bench`: weights drawn like real ones (never zeros), and
//! the histograms they are drawn from.

use rayon::prelude::*;

/// Per-row absmax INT8 values of all-MiniLM-L6-v2's 2-D weights (22,682,112
/// values, 7.28 bits of entropy), by byte value (`v as u8`).
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

/// The exponent byte (`(v >> 7) & 0xff`) of all-MiniLM-L6-v2's 2-D weights
/// in BF16 (22,682,112 values, 2.66 bits of entropy).
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

/// A sampler of bytes by a 256-bin histogram: a 4096-entry table of the
/// cumulative distribution, then a short search.
struct Sampler {
    /// Cumulative counts scaled to 2^32.
    cdf: [u64; 257],
}

impl Sampler {
    fn new(hist: &[u32; 256]) -> Sampler {
        let total: u64 = hist.iter().map(|&c| c as u64).sum();
        let mut cdf = [0u64; 257];
        let mut acc = 0u64;
        for s in 0..256 {
            acc += hist[s] as u64;
            cdf[s + 1] = (acc << 32) / total.max(1);
        }
        Sampler { cdf }
    }
    #[inline]
    fn sample(&self, r: u32) -> u8 {
        let r = r as u64;
        // the first s with cdf[s + 1] > r
        let (mut lo, mut hi) = (0usize, 255usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.cdf[mid + 1] > r {
                hi = mid
            } else {
                lo = mid + 1
            }
        }
        lo as u8
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` INT8 weights drawn i.i.d. from [`MINILM_INT8_HISTOGRAM`].
pub fn int8_weights(n: usize, seed: u64) -> Vec<u8> {
    let s = Sampler::new(&MINILM_INT8_HISTOGRAM);
    let mut out = vec![0u8; n];
    out.par_chunks_mut(1 << 20).enumerate().for_each(|(ci, c)| {
        let mut st = seed ^ (ci as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        for pair in c.chunks_mut(2) {
            let r = splitmix(&mut st);
            pair[0] = s.sample(r as u32);
            if pair.len() > 1 {
                pair[1] = s.sample((r >> 32) as u32);
            }
        }
    });
    out
}

/// `n` BF16 weights (2n bytes): exponents drawn from
/// [`MINILM_BF16_EXPONENT_HISTOGRAM`], sign and mantissa uniform.
pub fn bf16_weights(n: usize, seed: u64) -> Vec<u8> {
    let s = Sampler::new(&MINILM_BF16_EXPONENT_HISTOGRAM);
    let mut out = vec![0u8; 2 * n];
    out.par_chunks_mut(1 << 20).enumerate().for_each(|(ci, c)| {
        let mut st = seed ^ (ci as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        for e in c.chunks_mut(2) {
            let r = splitmix(&mut st);
            let exp = s.sample(r as u32) as u16;
            let v = ((r >> 32) as u16 & 0x8000) | exp << 7 | ((r >> 48) as u16 & 0x7f);
            e.copy_from_slice(&v.to_le_bytes());
        }
    });
    out
}

/// `rows × cols` f32 weights for the lossy decode benchmark. Each row has
/// its own scale (0.01 to 0.03, like a dense layer's spread); its values are
/// MiniLM-like per-row absmax INT8 draws ([`MINILM_INT8_HISTOGRAM`], plus a
/// uniform dither) over that scale. Every other band of 64 rows is smooth in
/// both directions, like embedding tables and low-rank parts: a separable
/// 2-D AR(1) field (ρ = 0.9 along rows and columns) carries 80 % of its
/// amplitude. I.i.d. draws alone give the lossy encoder no reason for
/// transforms (it picks SPATIAL everywhere); with these bands its
/// rate-distortion choice puts DCT/DST tiles on part of the tensor, as on
/// real models (`bench decode` reports how many).
pub fn lossy_weights(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let s = Sampler::new(&MINILM_INT8_HISTOGRAM);
    let mut out = vec![0f32; rows * cols];
    let cols = cols.max(1);
    out.par_chunks_mut(64 * cols)
        .enumerate()
        .for_each(|(b, band)| {
            let mut st = seed ^ (b as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let u = |st: &mut u64| (splitmix(st) >> 11) as f32 / (1u64 << 53) as f32;
            let smooth = b % 2 == 1;
            let rho = 0.9f32;
            let g = 1.0 - rho * rho;
            let mut prev = vec![0f32; cols];
            for row in band.chunks_mut(cols) {
                let scale = 0.01 + 0.02 * u(&mut st);
                let mut left = 0f32;
                let mut up_left = 0f32;
                for (j, w) in row.iter_mut().enumerate() {
                    let r = splitmix(&mut st);
                    let v = ((s.sample(r as u32) as i8) as f32 + u(&mut st) - 0.5) / 127.0;
                    *w = if smooth {
                        let up = prev[j];
                        let f = rho * left + rho * up - rho * rho * up_left + g * v;
                        up_left = up;
                        left = f;
                        prev[j] = f;
                        scale * (0.8 * f + 0.2 * v)
                    } else {
                        scale * v
                    };
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_follow_the_histograms() {
        let n = 1 << 20;
        let w = int8_weights(n, 1);
        let mut h = [0u64; 256];
        for &b in &w {
            h[b as usize] += 1;
        }
        let total: u64 = MINILM_INT8_HISTOGRAM.iter().map(|&c| c as u64).sum();
        for v in [0usize, 1, 127, 128, 129, 255] {
            let want = MINILM_INT8_HISTOGRAM[v] as f64 / total as f64 * n as f64;
            assert!(
                (h[v] as f64 - want).abs() <= 6.0 * want.sqrt() + 2.0,
                "value {v}: {} vs {want}",
                h[v]
            );
        }
        assert_eq!(h[128], 0, "-128 never occurs in absmax INT8");
        let e = crate::codec::freq::entropy(&h);
        assert!((e - 7.28).abs() < 0.02, "entropy {e}");
        let b = bf16_weights(n, 2);
        let mut eh = [0u64; 256];
        for c in b.chunks_exact(2) {
            eh[((u16::from_le_bytes([c[0], c[1]]) >> 7) & 0xff) as usize] += 1;
        }
        let e = crate::codec::freq::entropy(&eh);
        assert!((e - 2.66).abs() < 0.03, "exponent entropy {e}");
    }
}

//! Data for `wcodec bench`: weights drawn like real ones (never zeros). The
//! INT8 and BF16 draws are [`crate::synth`]'s; the lossy benchmark's
//! partly smooth f32 weights are drawn here.

use rayon::prelude::*;

use crate::synth::{MINILM_INT8_HISTOGRAM, Sampler, splitmix};
pub use crate::synth::{bf16_weights, int8_weights};

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
                    let v = ((s.sample(r as u16) as i8) as f32 + u(&mut st) - 0.5) / 127.0;
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

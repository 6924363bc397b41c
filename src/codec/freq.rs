//! Frequency tables (CODEC.md §3): 256 frequencies summing to `M = 2^prob_bits`.
//!
//! Normalisation is integer-only, so every machine writes the same table for
//! the same counts. Tables are stored compactly:
//!
//! ```text
//! presence bitmap   32 bytes, bit s of byte s/8 (LSB first) set if symbol s occurs
//! width W           1 byte, 1..=13
//! frequencies       for each present symbol in ascending order, (freq - 1) in W bits,
//!                   packed LSB first, padded with zero bits to a whole byte
//! ```

use crate::error::{Error, Location, Result};

/// Probability precisions a plane may choose.
pub const PROB_BITS_ALLOWED: [u32; 3] = [10, 11, 12];
/// The default probability precision.
pub const DEFAULT_PROB_BITS: u32 = 12;
/// Most tables one plane may carry.
pub const MAX_TABLES: usize = 4;

/// A normalised frequency table.
#[derive(Clone, PartialEq, Eq)]
pub struct FreqTable {
    pub prob_bits: u32,
    /// Frequency of each symbol; 0 for symbols that cannot be coded.
    pub freq: [u32; 256],
    /// Cumulative frequency: `cum[s] = Σ freq[t] for t < s`; `cum[256] = M`.
    pub cum: [u32; 257],
}

impl std::fmt::Debug for FreqTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nz = self.freq.iter().filter(|&&x| x > 0).count();
        write!(
            f,
            "FreqTable {{ prob_bits: {}, symbols: {nz} }}",
            self.prob_bits
        )
    }
}

/// Histogram of a byte slice.
pub fn histogram(data: &[u8]) -> [u64; 256] {
    // Four sub-histograms break the store-to-load dependency on runs of equal bytes.
    let mut h = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        h[0][c[0] as usize] += 1;
        h[1][c[1] as usize] += 1;
        h[2][c[2] as usize] += 1;
        h[3][c[3] as usize] += 1;
    }
    for &b in chunks.remainder() {
        h[0][b as usize] += 1;
    }
    let mut out = [0u64; 256];
    for s in 0..256 {
        out[s] = h[0][s] as u64 + h[1][s] as u64 + h[2][s] as u64 + h[3][s] as u64;
    }
    out
}

/// Order-0 entropy of a histogram, in bits per symbol.
pub fn entropy(counts: &[u64; 256]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let t = total as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64 / t) * (c as f64 / t).log2())
        .sum()
}

impl FreqTable {
    pub fn m(&self) -> u32 {
        1 << self.prob_bits
    }

    /// Normalise counts to frequencies summing to `2^prob_bits`.
    ///
    /// Every symbol with a nonzero count gets a frequency of at least 1. The
    /// rounding is fixed up greedily, each step moving the unit whose change
    /// costs the fewest bits (first-order estimate `c / f`, compared exactly in
    /// integers), so the result is the same on every machine.
    pub fn from_counts(counts: &[u64; 256], prob_bits: u32) -> Result<FreqTable> {
        if !PROB_BITS_ALLOWED.contains(&prob_bits) {
            return Err(Error::Param(format!(
                "prob_bits {prob_bits} not in {PROB_BITS_ALLOWED:?}"
            )));
        }
        let m = 1u64 << prob_bits;
        let total: u64 = counts.iter().sum();
        let present = counts.iter().filter(|&&c| c > 0).count() as u64;
        if total == 0 {
            return Err(Error::Param("frequency table of an empty histogram".into()));
        }
        if present > m {
            return Err(Error::Param(format!(
                "{present} symbols do not fit {m} slots"
            )));
        }
        let mut freq = [0u32; 256];
        for s in 0..256 {
            if counts[s] > 0 {
                let f =
                    ((counts[s] as u128 * m as u128 + total as u128 / 2) / total as u128) as u64;
                freq[s] = f.clamp(1, m) as u32;
            }
        }
        let mut sum: i64 = freq.iter().map(|&f| f as i64).sum();
        let target = m as i64;
        // Grow: give a unit to the symbol with the largest c / (f + 1/2).
        while sum < target {
            let mut best = usize::MAX;
            for s in 0..256 {
                if counts[s] == 0 {
                    continue;
                }
                if best == usize::MAX
                    || counts[s] as u128 * (2 * freq[best] as u128 + 1)
                        > counts[best] as u128 * (2 * freq[s] as u128 + 1)
                {
                    best = s;
                }
            }
            freq[best] += 1;
            sum += 1;
        }
        // Shrink: take a unit from the symbol with the smallest c / (f - 1/2), keeping f >= 1.
        while sum > target {
            let mut best = usize::MAX;
            for s in 0..256 {
                if freq[s] <= 1 {
                    continue;
                }
                if best == usize::MAX
                    || (counts[s] as u128) * (2 * freq[best] as u128 - 1)
                        < (counts[best] as u128) * (2 * freq[s] as u128 - 1)
                {
                    best = s;
                }
            }
            freq[best] -= 1;
            sum -= 1;
        }
        Ok(Self::from_freq(freq, prob_bits))
    }

    fn from_freq(freq: [u32; 256], prob_bits: u32) -> FreqTable {
        let mut cum = [0u32; 257];
        for s in 0..256 {
            cum[s + 1] = cum[s] + freq[s];
        }
        FreqTable {
            prob_bits,
            freq,
            cum,
        }
    }

    /// Bits this table spends on a histogram; `None` if a counted symbol has no frequency.
    pub fn cost(&self, counts: &[u64; 256]) -> Option<f64> {
        let mut bits = 0.0;
        for (s, &count) in counts.iter().enumerate() {
            if count > 0 {
                if self.freq[s] == 0 {
                    return None;
                }
                bits += count as f64 * (self.prob_bits as f64 - (self.freq[s] as f64).log2());
            }
        }
        Some(bits)
    }

    /// Append the compact encoding of this table.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut bitmap = [0u8; 32];
        let mut maxf = 1;
        for s in 0..256 {
            if self.freq[s] > 0 {
                bitmap[s / 8] |= 1 << (s % 8);
                maxf = maxf.max(self.freq[s]);
            }
        }
        let width = (32 - (maxf - 1).leading_zeros()).max(1);
        out.extend_from_slice(&bitmap);
        out.push(width as u8);
        let mut acc: u64 = 0;
        let mut nbits = 0;
        for s in 0..256 {
            if self.freq[s] > 0 {
                acc |= ((self.freq[s] - 1) as u64) << nbits;
                nbits += width;
                while nbits >= 8 {
                    out.push(acc as u8);
                    acc >>= 8;
                    nbits -= 8;
                }
            }
        }
        if nbits > 0 {
            out.push(acc as u8);
        }
    }

    /// Read one table from the front of `buf`; returns it and the bytes used.
    pub fn read(buf: &[u8], prob_bits: u32, loc: &Location) -> Result<(FreqTable, usize)> {
        let err = |m: String| Error::format(loc.clone(), m);
        if !PROB_BITS_ALLOWED.contains(&prob_bits) {
            return Err(err(format!(
                "prob_bits {prob_bits} not in {PROB_BITS_ALLOWED:?}"
            )));
        }
        if buf.len() < 33 {
            return Err(err(format!(
                "table truncated: {} bytes, need at least 33",
                buf.len()
            )));
        }
        let width = buf[32] as u32;
        if !(1..=13).contains(&width) {
            return Err(err(format!("table width {width} not in 1..=13")));
        }
        let present: usize = buf[..32].iter().map(|b| b.count_ones() as usize).sum();
        if present == 0 {
            return Err(err("table has no symbols".into()));
        }
        let body = (present * width as usize).div_ceil(8);
        let used = 33 + body;
        if buf.len() < used {
            return Err(err(format!(
                "table truncated: {} bytes, need {used}",
                buf.len()
            )));
        }
        let bits = &buf[33..used];
        let mut freq = [0u32; 256];
        let mut pos = 0usize;
        let m = 1u64 << prob_bits;
        let mut sum = 0u64;
        for s in 0..256 {
            if buf[s / 8] >> (s % 8) & 1 == 1 {
                let mut v = 0u32;
                for b in 0..width as usize {
                    let bit = pos + b;
                    v |= ((bits[bit / 8] >> (bit % 8)) as u32 & 1) << b;
                }
                pos += width as usize;
                freq[s] = v + 1;
                sum += freq[s] as u64;
            }
        }
        if sum != m {
            return Err(err(format!("table frequencies sum to {sum}, expected {m}")));
        }
        let tail = present * width as usize;
        if tail % 8 != 0 && bits[tail / 8] >> (tail % 8) != 0 {
            return Err(err("table padding bits are not zero".into()));
        }
        Ok((Self::from_freq(freq, prob_bits), used))
    }

    /// The slot → entry lookup used by decoders, `M` entries:
    /// bits 0..8 symbol, 8..20 `freq - 1`, 20..32 `slot - cum[symbol]`.
    pub fn decode_lut(&self) -> Vec<u32> {
        let mut lut = Vec::with_capacity(self.m() as usize);
        for s in 0..256u32 {
            let f = self.freq[s as usize];
            for j in 0..f {
                lut.push(s | ((f - 1) << 8) | (j << 20));
            }
        }
        debug_assert_eq!(lut.len(), self.m() as usize);
        lut
    }
}

/// Unpack a decode-LUT entry into (symbol, freq, slot - cum).
#[inline(always)]
pub fn lut_entry(e: u32) -> (u8, u32, u32) {
    (e as u8, ((e >> 8) & 0xfff) + 1, e >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laplace_counts(scale: f64) -> [u64; 256] {
        let mut c = [0u64; 256];
        for v in -127i32..=127 {
            let p = (-(v.abs() as f64) / scale).exp();
            c[(v as u8) as usize] = (p * 1e6) as u64;
        }
        c
    }

    #[test]
    fn normalised_tables_sum_to_m_and_keep_every_symbol() {
        for pb in PROB_BITS_ALLOWED {
            for scale in [0.3, 2.0, 20.0, 300.0] {
                let c = laplace_counts(scale);
                let t = FreqTable::from_counts(&c, pb).unwrap();
                assert_eq!(t.cum[256], 1 << pb);
                for (s, (&count, &f)) in c.iter().zip(&t.freq).enumerate() {
                    assert_eq!(count > 0, f > 0, "symbol {s}");
                }
            }
        }
    }

    #[test]
    fn normalisation_loss_is_small_on_weight_like_histograms() {
        // Laplacian int8 weights at about 7.3 bits: the loss must stay well under 0.5 %.
        let c = laplace_counts(30.0);
        let t = FreqTable::from_counts(&c, 12).unwrap();
        let h = entropy(&c) * c.iter().sum::<u64>() as f64;
        let coded = t.cost(&c).unwrap();
        assert!(coded / h - 1.0 < 0.005, "loss {}", coded / h - 1.0);
    }

    #[test]
    fn table_round_trips_through_compact_form() {
        for scale in [0.5, 5.0, 50.0] {
            let t = FreqTable::from_counts(&laplace_counts(scale), 12).unwrap();
            let mut buf = Vec::new();
            t.write(&mut buf);
            let (u, used) = FreqTable::read(&buf, 12, &Location::default()).unwrap();
            assert_eq!(used, buf.len());
            assert_eq!(t, u);
        }
        let mut one = [0u64; 256];
        one[7] = 10;
        let t = FreqTable::from_counts(&one, 12).unwrap();
        assert_eq!(t.freq[7], 4096);
        let mut buf = Vec::new();
        t.write(&mut buf);
        assert_eq!(buf.len(), 32 + 1 + 2);
        assert_eq!(
            FreqTable::read(&buf, 12, &Location::default()).unwrap().0,
            t
        );
    }

    #[test]
    fn corrupt_tables_are_rejected() {
        let t = FreqTable::from_counts(&laplace_counts(5.0), 12).unwrap();
        let mut buf = Vec::new();
        t.write(&mut buf);
        for cut in 0..buf.len() {
            assert!(FreqTable::read(&buf[..cut], 12, &Location::default()).is_err());
        }
        let mut bad = buf.clone();
        bad[40] ^= 0x10;
        assert!(FreqTable::read(&bad, 12, &Location::default()).is_err());
        let mut bad = buf.clone();
        bad[32] = 0;
        assert!(FreqTable::read(&bad, 12, &Location::default()).is_err());
    }

    #[test]
    fn lut_matches_table() {
        let t = FreqTable::from_counts(&laplace_counts(3.0), 11).unwrap();
        let lut = t.decode_lut();
        for (slot, &e) in lut.iter().enumerate() {
            let (s, f, b) = lut_entry(e);
            assert_eq!(f, t.freq[s as usize]);
            assert_eq!(slot as u32, t.cum[s as usize] + b);
        }
    }
}

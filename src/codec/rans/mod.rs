//! The rANS tile coder (CODEC.md §3, MUST).
//!
//! * State: u32 in `[2^16, 2^32)`, renormalised by 16-bit words.
//! * Probabilities: `prob_bits` ∈ {10, 11, 12}, `M = 2^prob_bits`.
//! * 32 interleaved lanes, lane `l` owning runs of 4 symbols
//!   ([`crate::codec::tile::lane_symbol`]).
//! * One u16 word stream per tile, shared by the lanes. In each decode step
//!   every active lane decodes one symbol; then every lane whose state fell
//!   below 2^16 reads one word, in ascending lane order.
//!
//! Two refinements, both fixed by the format (docs/FORMAT.md §5):
//!
//! * **Lane tails.** The encoder's initial state of lane `l` (which is the
//!   decoder's final state) is `2^16 | y`, where `y` holds the lane's last
//!   `R = 16 / w` symbols raw, `w` bits each, as `(symbol - base) mod 256`.
//!   The decoder takes those symbols out of its state instead of decoding
//!   them, so the 16 bits that a fixed initial state would waste carry data.
//!   The state does not change in a tail step and stays ≥ 2^16, so no word is
//!   read. A decoder checks at the end that every lane's state is `2^16 | y`
//!   with no bits above the payload, and that every word was read.
//! * **Packed initial states.** The decoder's initial states are stored at the
//!   head of the tile's word stream: one 4-bit code `c = bitlen(x) - 17` per
//!   active lane (4 per word, low nibble first), then for each lane the low
//!   `16 + c` bits of its state (its top bit is implicit), as one LSB-first bit
//!   string padded with zeros to whole words.

use crate::codec::freq::{FreqTable, lut_entry};

#[cfg(target_arch = "x86_64")]
mod x86;
use crate::codec::tile::{GROUP, LANES, RUN, active_lanes, lane_count, lane_symbol, steps};

/// Lower bound of the normalised state.
pub const STATE_LOW: u32 = 1 << 16;

/// How each lane's last symbols ride in its final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Bits per tail symbol, 1..=8.
    pub bits: u8,
    /// Subtracted (mod 256) from a symbol before it is stored.
    pub base: u8,
}

impl Tail {
    /// The default that fits any symbol: two raw bytes.
    pub const BYTES: Tail = Tail { bits: 8, base: 0 };

    /// Tail symbols per lane.
    pub fn count(&self) -> usize {
        16 / self.bits as usize
    }

    pub fn is_valid(&self) -> bool {
        (1..=8).contains(&self.bits)
    }

    /// True if `sym` can be stored in a tail.
    pub fn fits(&self, sym: u8) -> bool {
        (sym.wrapping_sub(self.base) as u32) < (1u32 << self.bits)
    }

    /// Tail symbols of a lane that owns `nl` symbols.
    #[inline(always)]
    pub fn lane_tail(&self, nl: usize) -> usize {
        self.count().min(nl)
    }
}

/// Why a tile failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileError {
    /// The stream ended before the decoder finished.
    Underflow { words: usize },
    /// Words were left over after the last symbol.
    Trailing { used: usize, words: usize },
    /// A lane's final state is not `2^16 | tail`.
    FinalState { lane: usize, state: u32 },
    /// The state block is malformed.
    States(String),
}

impl std::fmt::Display for TileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TileError::Underflow { words } => write!(f, "word stream ended early ({words} words)"),
            TileError::Trailing { used, words } => {
                write!(f, "{} of {words} words left unread", words - used)
            }
            TileError::FinalState { lane, state } => {
                write!(f, "lane {lane} ends in state {state:#010x}, not its tail")
            }
            TileError::States(m) => write!(f, "initial states: {m}"),
        }
    }
}

/// Encoder-side symbol info, precomputed once per table: frequency, start,
/// and a reciprocal so that `x / freq` is a multiply (exact for every u32 `x`).
#[derive(Clone)]
pub struct EncTable {
    pub prob_bits: u32,
    freq: [u32; 256],
    cum: [u32; 256],
    /// `m = ceil(2^(32 + k) / f)` with `k = ceil(log2 f)` (Granlund–Montgomery),
    /// split as `m = hi·2^32 + lo`; then `x / f = ((x·lo >> 32) + x·hi) >> k`.
    rcp_lo: [u32; 256],
    rcp_hi: [u32; 256],
    rcp_shift: [u32; 256],
}

impl EncTable {
    pub fn new(t: &FreqTable) -> EncTable {
        let mut cum = [0u32; 256];
        cum.copy_from_slice(&t.cum[..256]);
        let mut rcp_lo = [0u32; 256];
        let mut rcp_hi = [1u32; 256]; // f = 1 (or unused): m = 2^32, k = 0
        let mut rcp_shift = [0u32; 256];
        for s in 0..256 {
            let f = t.freq[s] as u64;
            if f >= 2 {
                let k = 64 - (f - 1).leading_zeros();
                let m = (1u64 << (32 + k)).div_ceil(f);
                rcp_lo[s] = m as u32;
                rcp_hi[s] = (m >> 32) as u32;
                rcp_shift[s] = k;
            }
        }
        EncTable {
            prob_bits: t.prob_bits,
            freq: t.freq,
            cum,
            rcp_lo,
            rcp_hi,
            rcp_shift,
        }
    }

    pub fn can_code(&self, sym: u8) -> bool {
        self.freq[sym as usize] > 0
    }

    /// One encode step for `sym` from state `v`: flush a word if needed (into
    /// `buf[*pos]`, branch-free), then encode.
    #[inline(always)]
    fn put(&self, v: u32, sym: usize, buf: &mut [u16], pos: &mut usize) -> u32 {
        let f = self.freq[sym];
        debug_assert!(f > 0, "symbol {sym} has no frequency");
        let need = (v as u64 >= (f as u64) << (32 - self.prob_bits)) as usize;
        buf[*pos] = v as u16;
        *pos += need;
        let v = v >> (need << 4);
        let t = ((v as u64 * self.rcp_lo[sym] as u64) >> 32) + v as u64 * self.rcp_hi[sym] as u64;
        let q = (t >> self.rcp_shift[sym]) as u32;
        (q << self.prob_bits) + (v - q * f) + self.cum[sym]
    }
}

/// Steps in which every one of the 32 lanes decodes a table-coded symbol
/// (no lane has ended or reached its tail): the fast region of a tile.
fn full_steps(n: usize, tail: Tail) -> usize {
    if active_lanes(n) < LANES {
        return 0;
    }
    (0..LANES)
        .map(|l| lane_count(n, l) - tail.lane_tail(lane_count(n, l)))
        .min()
        .unwrap_or(0)
}

/// Encode one tile in reverse (last symbol first), appending its initial-state
/// block and word stream to `out`.
///
/// `symbols` is the tile in tile order. Every symbol that is not a lane-tail
/// symbol must have a nonzero frequency, and every tail symbol must fit `tail`.
///
/// # Panics
/// If a symbol cannot be coded (a bug in the caller, not bad input).
pub fn encode_reverse(symbols: &[u8], table: &EncTable, tail: Tail, out: &mut Vec<u16>) {
    let n = symbols.len();
    assert!(n > 0 && n <= crate::codec::tile::MAX_TILE_SYMBOLS);
    assert!(tail.is_valid());
    let a = active_lanes(n);
    let mut x = [0u32; LANES];
    let mut nl = [0usize; LANES];
    for l in 0..a {
        nl[l] = lane_count(n, l);
        let r = tail.lane_tail(nl[l]);
        let mut y = 0u32;
        for j in 0..r {
            let s = symbols[lane_symbol(l, nl[l] - 1 - j)];
            assert!(tail.fits(s), "tail symbol {s} does not fit {tail:?}");
            y |= (s.wrapping_sub(tail.base) as u32) << (tail.bits as u32 * j as u32);
        }
        x[l] = STATE_LOW | y;
    }
    // At most one word per symbol, plus one slot for the branch-free store.
    let mut rev = [0u16; crate::codec::tile::MAX_TILE_SYMBOLS + 1];
    let mut pos = 0usize;
    let fast = full_steps(n, tail);
    for s in (fast..steps(n)).rev() {
        for l in (0..a).rev() {
            if s + tail.lane_tail(nl[l]) >= nl[l] {
                continue; // beyond the lane's end, or a tail symbol
            }
            let sym = symbols[lane_symbol(l, s)] as usize;
            assert!(table.freq[sym] > 0, "symbol {sym} has no frequency");
            x[l] = table.put(x[l], sym, &mut rev, &mut pos);
        }
    }
    for s in (0..fast).rev() {
        let base = GROUP * (s / RUN) + s % RUN;
        let row = &symbols[base..base + GROUP - RUN + 1];
        for l in (0..LANES).rev() {
            let sym = row[RUN * l] as usize;
            assert!(table.freq[sym] > 0, "symbol {sym} has no frequency");
            x[l] = table.put(x[l], sym, &mut rev, &mut pos);
        }
    }
    write_states(&x[..a], out);
    out.extend(rev[..pos].iter().rev());
}

/// Append the packed initial-state block for `states` (each in `[2^16, 2^32)`).
pub fn write_states(states: &[u32], out: &mut Vec<u16>) {
    let mut codes = vec![0u16; states.len().div_ceil(4)];
    for (l, &x) in states.iter().enumerate() {
        debug_assert!(x >= STATE_LOW);
        let c = (32 - x.leading_zeros()) - 17;
        codes[l / 4] |= (c as u16) << (4 * (l % 4));
    }
    out.extend_from_slice(&codes);
    let mut acc: u64 = 0;
    let mut nbits = 0u32;
    for &x in states {
        let nb = 31 - x.leading_zeros(); // bits below the implicit top bit
        acc |= ((x as u64) & ((1u64 << nb) - 1)) << nbits;
        nbits += nb;
        while nbits >= 16 {
            out.push(acc as u16);
            acc >>= 16;
            nbits -= 16;
        }
    }
    if nbits > 0 {
        out.push(acc as u16);
    }
}

/// Read the packed initial states of `a` lanes; returns the words used.
pub fn read_states(words: &[u16], a: usize, x: &mut [u32; LANES]) -> Result<usize, TileError> {
    let nc = a.div_ceil(4);
    if words.len() < nc {
        return Err(TileError::States(format!(
            "{} words, need {nc} for the codes",
            words.len()
        )));
    }
    if a % 4 != 0 && words[nc - 1] >> (4 * (a % 4)) != 0 {
        return Err(TileError::States("unused state codes are not zero".into()));
    }
    let mut bitpos = nc * 16;
    for l in 0..a {
        let c = (words[l / 4] >> (4 * (l % 4))) as u32 & 15;
        let nb = 16 + c;
        let end = bitpos + nb as usize;
        if end.div_ceil(16) > words.len() {
            return Err(TileError::States("state bits run past the stream".into()));
        }
        let mut v: u64 = 0;
        let w0 = bitpos / 16;
        for i in 0..3 {
            if w0 + i < words.len() {
                v |= (words[w0 + i] as u64) << (16 * i);
            }
        }
        v = (v >> (bitpos % 16)) & ((1u64 << nb) - 1);
        x[l] = (1u32 << nb) | v as u32;
        bitpos = end;
    }
    if bitpos % 16 != 0 && words[bitpos / 16] >> (bitpos % 16) != 0 {
        return Err(TileError::States("state padding bits are not zero".into()));
    }
    Ok(bitpos.div_ceil(16))
}

/// Decode steps `steps` of the fast region (all 32 lanes active, no tails),
/// reading words from `body` at `*q`. A read past the end yields 0 and
/// advances `*q` anyway, so the caller sees `*q > body.len()`.
#[inline]
fn decode_steps_scalar(
    x: &mut [u32; LANES],
    body: &[u16],
    q: &mut usize,
    out: &mut [u8],
    steps: std::ops::Range<usize>,
    lut: &DecodeLut,
    prob_bits: u32,
) {
    let mask = (1u32 << prob_bits) - 1;
    for s in steps {
        let base = GROUP * (s / RUN) + s % RUN;
        let row = &mut out[base..base + GROUP - RUN + 1];
        for l in 0..LANES {
            let v = x[l];
            let e = lut[(v & mask) as usize];
            row[RUN * l] = e as u8;
            let v2 = (((e >> 8) & 0xfff) + 1) * (v >> prob_bits) + (e >> 20);
            let need = (v2 < STATE_LOW) as u32;
            let w = body.get(*q).copied().unwrap_or(0) as u32;
            x[l] = (v2 << (need << 4)) | (w & need.wrapping_neg());
            *q += need as usize;
        }
    }
}

/// Whether the SIMD decode path is used (x86-64 with AVX2, unless the
/// environment sets `WCODEC_NO_SIMD`).
pub fn simd_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::avx2_enabled()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A decode lookup table: [`FreqTable::decode_lut`] padded to 4096 entries
/// (entries past `M` are never indexed: the slot is `x & (M - 1)`).
pub type DecodeLut = [u32; 4096];

/// Build the padded decode lookup of a table.
pub fn decode_lut(t: &FreqTable) -> Box<DecodeLut> {
    let mut lut = Box::new([0u32; 4096]);
    lut[..t.m() as usize].copy_from_slice(&t.decode_lut());
    lut
}

/// Decode one tile of `n` symbols from its word range into `out[..n]`
/// (tile order). `lut` is the tile's table ([`decode_lut`]).
///
/// Every read is bounded by `words`; corruption gives an error, never a panic.
pub fn decode_tile(
    words: &[u16],
    n: usize,
    lut: &DecodeLut,
    prob_bits: u32,
    tail: Tail,
    out: &mut [u8],
) -> Result<(), TileError> {
    assert!(n > 0 && n <= out.len() && n <= crate::codec::tile::MAX_TILE_SYMBOLS);
    let a = active_lanes(n);
    let mut x = [0u32; LANES];
    let p0 = read_states(words, a, &mut x)?;
    let body = &words[p0..];
    let mask = (1u32 << prob_bits) - 1;
    // Fast region: all 32 lanes decode, branch-free renormalisation. A read
    // past the end yields 0 and is reported after the loop.
    let fast = full_steps(n, tail);
    let mut q = 0usize;
    let mut s0 = 0;
    #[cfg(target_arch = "x86_64")]
    if x86::avx2_enabled() {
        let groups = fast / RUN;
        // SAFETY: AVX2 is present; `groups` whole groups lie inside `out`
        // (fast ≤ n's full groups), and the kernel bounds its word reads.
        unsafe { x86::decode_groups_avx2(&mut x, body, &mut q, out, groups, lut, prob_bits) };
        s0 = groups * RUN;
    }
    decode_steps_scalar(&mut x, body, &mut q, out, s0..fast, lut, prob_bits);
    if q > body.len() {
        return Err(TileError::Underflow { words: words.len() });
    }
    // The rest: lanes that end early and lane tails.
    let tw = tail.bits as u32;
    let tmask = (1u32 << tw) - 1;
    let mut nl = [0usize; LANES];
    let mut ntail = [0usize; LANES];
    for l in 0..a {
        nl[l] = lane_count(n, l);
        ntail[l] = tail.lane_tail(nl[l]);
    }
    for s in fast..steps(n) {
        for l in 0..a {
            if s >= nl[l] {
                continue;
            }
            let k = lane_symbol(l, s);
            if s + ntail[l] >= nl[l] {
                let j = (nl[l] - 1 - s) as u32;
                out[k] = (((x[l] >> (tw * j)) & tmask) as u8).wrapping_add(tail.base);
                continue;
            }
            let v = x[l];
            let (sym, f, bias) = lut_entry(lut[(v & mask) as usize]);
            let mut v2 = f * (v >> prob_bits) + bias;
            if v2 < STATE_LOW {
                let Some(&w) = body.get(q) else {
                    return Err(TileError::Underflow { words: words.len() });
                };
                v2 = (v2 << 16) | w as u32;
                q += 1;
            }
            x[l] = v2;
            out[k] = sym;
        }
    }
    if q != body.len() {
        return Err(TileError::Trailing {
            used: p0 + q,
            words: words.len(),
        });
    }
    for l in 0..a {
        let r = ntail[l] as u32;
        if x[l] >> 16 != 1 || (x[l] & 0xffff) >> (tw * r).min(16) != 0 {
            return Err(TileError::FinalState {
                lane: l,
                state: x[l],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_division_is_exact() {
        // Only the divisor matters here: every frequency 1..=4096.
        for f in 1..=4096u32 {
            let mut t = FreqTable {
                prob_bits: 12,
                freq: [0; 256],
                cum: [0; 257],
            };
            t.freq[0] = f;
            let e = EncTable::new(&t);
            for v in [
                0u32,
                1,
                f - 1,
                f,
                f + 1,
                65535,
                65536,
                (1 << 20) * f - 1,
                u32::MAX - 1,
                u32::MAX,
            ]
            .into_iter()
            .chain((0..64).map(|i| 0x9e37_79b9u32.wrapping_mul(i * 7 + f)))
            {
                let t = ((v as u64 * e.rcp_lo[0] as u64) >> 32) + v as u64 * e.rcp_hi[0] as u64;
                assert_eq!((t >> e.rcp_shift[0]) as u32, v / f, "v={v} f={f}");
            }
        }
    }
}

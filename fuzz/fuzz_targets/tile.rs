//! Decode one rANS tile from arbitrary words, table, tail and size: the
//! decoder must report corruption, never panic or read out of bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wcodec::codec::freq::FreqTable;
use wcodec::codec::rans::{Tail, decode_lut, decode_tile};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let n = 1 + (u16::from_le_bytes([data[0], data[1]]) as usize % 4096);
    let tail = Tail { bits: 1 + data[2] % 8, base: data[3] };
    let prob_bits = 10 + (data[4] % 3) as u32;
    // A table from the next 32 bytes as counts (always valid after normalisation).
    let mut counts = [0u64; 256];
    for (i, &b) in data[5..data.len().min(37)].iter().enumerate() {
        counts[(i * 8) % 256] += b as u64 + 1;
    }
    let Ok(t) = FreqTable::from_counts(&counts, prob_bits) else { return };
    let lut = decode_lut(&t);
    let words: Vec<u16> = data[data.len().min(37)..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let mut out = vec![0u8; 4096];
    let _ = decode_tile(&words, n, &lut, prob_bits, tail, &mut out);
});

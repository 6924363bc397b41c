//! Lossless floats (CODEC.md §7): split each element into a coded byte plane
//! (the exponent, or F16's high byte) and raw bytes.
//!
//! | dtype | coded plane (1 byte)        | raw plane                               |
//! |-------|-----------------------------|-----------------------------------------|
//! | BF16  | exponent, bits 7..15        | 1 byte: sign << 7 \| mantissa (7 bits)  |
//! | F16   | high byte, bits 8..16       | 1 byte: low byte                        |
//! | F32   | exponent, bits 23..31       | 3 bytes LE: sign << 23 \| mantissa (23) |

use crate::dtype::DType;

/// Bytes of the raw plane per element.
pub fn raw_bytes_per_element(dtype: DType) -> usize {
    match dtype {
        DType::BF16 | DType::F16 => 1,
        DType::F32 => 3,
        _ => panic!("float-split does not apply to {dtype}"),
    }
}

/// Split little-endian element bytes into (coded plane, raw plane).
pub fn split(dtype: DType, bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let es = dtype.size();
    assert_eq!(bytes.len() % es, 0);
    let n = bytes.len() / es;
    let mut coded = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n * raw_bytes_per_element(dtype));
    match dtype {
        DType::BF16 => {
            for c in bytes.chunks_exact(2) {
                let v = u16::from_le_bytes([c[0], c[1]]);
                coded.push((v >> 7) as u8);
                raw.push(((v >> 8) as u8 & 0x80) | (v as u8 & 0x7f));
            }
        }
        DType::F16 => {
            for c in bytes.chunks_exact(2) {
                coded.push(c[1]);
                raw.push(c[0]);
            }
        }
        DType::F32 => {
            for c in bytes.chunks_exact(4) {
                let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                coded.push((v >> 23) as u8);
                let r = (v >> 31) << 23 | (v & 0x7f_ffff);
                raw.extend_from_slice(&r.to_le_bytes()[..3]);
            }
        }
        _ => panic!("float-split does not apply to {dtype}"),
    }
    (coded, raw)
}

/// Merge the planes back into little-endian element bytes, appending to `out`.
pub fn merge(dtype: DType, coded: &[u8], raw: &[u8], out: &mut [u8]) {
    let n = coded.len();
    assert_eq!(raw.len(), n * raw_bytes_per_element(dtype));
    assert_eq!(out.len(), n * dtype.size());
    match dtype {
        DType::BF16 => {
            for ((o, &e), &r) in out.chunks_exact_mut(2).zip(coded).zip(raw) {
                let v = ((r as u16 & 0x80) << 8) | (e as u16) << 7 | (r as u16 & 0x7f);
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            for ((o, &h), &l) in out.chunks_exact_mut(2).zip(coded).zip(raw) {
                o[0] = l;
                o[1] = h;
            }
        }
        DType::F32 => {
            for ((o, &e), r) in out.chunks_exact_mut(4).zip(coded).zip(raw.chunks_exact(3)) {
                let r = u32::from_le_bytes([r[0], r[1], r[2], 0]);
                let v = (r >> 23) << 31 | (e as u32) << 23 | (r & 0x7f_ffff);
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => panic!("float-split does not apply to {dtype}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_merge_round_trips_every_bit_pattern() {
        for dtype in [DType::BF16, DType::F16] {
            let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|v| v.to_le_bytes()).collect();
            let (c, r) = split(dtype, &bytes);
            let mut out = vec![0u8; bytes.len()];
            merge(dtype, &c, &r, &mut out);
            assert_eq!(out, bytes);
        }
        let mut seed = 1u32;
        let bytes: Vec<u8> = (0..100_000)
            .flat_map(|i| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                let v = if i < 8 { [0, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0001, 1, 0x807f_ffff, u32::MAX][i] } else { seed };
                v.to_le_bytes()
            })
            .collect();
        let (c, r) = split(DType::F32, &bytes);
        let mut out = vec![0u8; bytes.len()];
        merge(DType::F32, &c, &r, &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn bf16_exponent_is_the_coded_byte() {
        let v = half::bf16::from_f32(-1.5).to_bits();
        let (c, r) = split(DType::BF16, &v.to_le_bytes());
        assert_eq!(c[0], 127);
        assert_eq!(r[0], 0x80 | 0x40);
    }
}

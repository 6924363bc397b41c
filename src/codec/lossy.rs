//! Lossy tiles (CODEC.md §5, MUST): rebuilding int8 pixels from coded symbols.
//!
//! A `lossy` tensor stores, per 64×64 tile, int8 **pixels** `x ∈ [−127, 127]`
//! and one f32 **scale**; the weight is `w' = x · scale`. The pixels are coded
//! as int8 symbols ("codes") in one of four tile types (mode codes 5..=8),
//! each with a step and a predictor in the tile-index parameters:
//!
//! | bits of the parameters | field |
//! |---|---|
//! | 0..12  | `step` in 1/16 pixel, 1..=4095 |
//! | 12..14 | predictor: 0 NONE, 1 LEFT, 2 TOP (3 is rejected) |
//! | 14..24 | zero |
//!
//! * **SPATIAL** (5): `deq(q) = sign(q) · ((|q| · step + 8) >> 4)`;
//!   `x[i][j] = clamp(pred + deq(q[i][j]), −127, 127)` in tile row-major order,
//!   where `pred` is 0 (NONE), `x[i][j−1]` (LEFT, 0 at `j = 0`) or
//!   `x[i−1][j]` (TOP, 0 at `i = 0`), read from the pixels already rebuilt.
//! * **DCT8** (6), **DCT4** (7), **DST4** (8): the tile (whose sides must be
//!   multiples of `N`) is cut into `N×N` blocks, visited in raster order. The
//!   codes of a block sit at the block's own positions; the block's
//!   coefficients are `D = q · step` and its residuals `r` are
//!   [`Transform::inverse`] of `D`. Then `x = clamp(pred + r, −127, 127)` with
//!   `pred[k][l]` = 0 (NONE), `x[r0 + k][c0 − 1]` (LEFT: the pixel left of
//!   the block's row; 0 for blocks at the tile's left edge) or
//!   `x[r0 − 1][c0 + l]` (TOP: the pixel above the block's column; 0 for
//!   blocks at the tile's top edge).
//!
//! Everything is 32-bit integer arithmetic; the step bound keeps every
//! intermediate inside i32 (see [`crate::codec::transform`]).

use crate::codec::predict::Mode;
use crate::codec::transform::Transform;

/// Largest step (1/16 pixel units) the 12-bit field holds.
pub const MAX_STEP: u32 = 4095;
/// A step of one pixel.
pub const STEP_ONE: u32 = 16;
/// Largest pixel magnitude.
pub const PIXEL_MAX: i32 = 127;

/// What a lossy tile predicts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Predictor {
    None = 0,
    Left = 1,
    Top = 2,
}

impl Predictor {
    pub const ALL: [Predictor; 3] = [Predictor::None, Predictor::Left, Predictor::Top];

    pub fn name(self) -> &'static str {
        match self {
            Predictor::None => "NONE",
            Predictor::Left => "LEFT",
            Predictor::Top => "TOP",
        }
    }
}

/// The parameters of a lossy tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LossyParams {
    /// Step in 1/16 pixel, 1..=4095.
    pub step: u32,
    pub pred: Predictor,
}

impl LossyParams {
    pub fn pack(self) -> u32 {
        self.step | (self.pred as u32) << 12
    }

    /// Parse the 24 parameter bits.
    pub fn unpack(p: u32) -> Result<LossyParams, String> {
        let step = p & 0xfff;
        if step == 0 {
            return Err("lossy step 0".into());
        }
        let pred = match (p >> 12) & 3 {
            0 => Predictor::None,
            1 => Predictor::Left,
            2 => Predictor::Top,
            c => return Err(format!("unknown lossy predictor {c}")),
        };
        if p >> 14 != 0 {
            return Err("reserved lossy parameter bits are set".into());
        }
        Ok(LossyParams { step, pred })
    }
}

/// The transform of a lossy mode (`None` for SPATIAL).
pub fn transform_of(mode: Mode) -> Option<Transform> {
    match mode {
        Mode::Dct8 => Some(Transform::Dct8),
        Mode::Dct4 => Some(Transform::Dct4),
        Mode::Dst4 => Some(Transform::Dst4),
        _ => None,
    }
}

/// The lossy mode of a transform.
pub fn mode_of(t: Option<Transform>) -> Mode {
    match t {
        None => Mode::Spatial,
        Some(Transform::Dct8) => Mode::Dct8,
        Some(Transform::Dct4) => Mode::Dct4,
        Some(Transform::Dst4) => Mode::Dst4,
    }
}

/// Whether `mode` may code an `h × w` tile (transform tiles need whole blocks).
pub fn fits(mode: Mode, h: usize, w: usize) -> bool {
    match transform_of(mode) {
        Some(t) => h % t.size() == 0 && w % t.size() == 0,
        None => true,
    }
}

/// SPATIAL's dequantisation: `sign(q) · ((|q| · step + 8) >> 4)`.
#[inline(always)]
pub fn dequant_spatial(q: i32, step: u32) -> i32 {
    let m = (q.unsigned_abs() * step + 8) >> 4;
    if q < 0 { -(m as i32) } else { m as i32 }
}

#[inline(always)]
fn clamp_px(v: i32) -> i32 {
    v.clamp(-PIXEL_MAX, PIXEL_MAX)
}

/// Rebuild a tile's pixels from its codes, in place (`x[..h·w]`, row-major):
/// the reference decoder (the rules in the module docs, with the predictor
/// hoisted out of the loops; `tests::reference` is the same rules written
/// plainly, and the tests hold the two equal). The caller has checked [`fits`].
pub fn reconstruct(mode: Mode, p: LossyParams, x: &mut [u8], h: usize, w: usize) {
    let x = &mut x[..h * w];
    let step = p.step;
    let deq = |b: u8| dequant_spatial(b as i8 as i32, step);
    match (transform_of(mode), p.pred) {
        (None, Predictor::None) if step == STEP_ONE => {
            // deq(q) = q: only −128 needs the clamp.
            for b in x.iter_mut() {
                *b = (*b as i8).max(-PIXEL_MAX as i8) as u8;
            }
        }
        (None, Predictor::None) => {
            for b in x.iter_mut() {
                *b = clamp_px(deq(*b)) as i8 as u8;
            }
        }
        (None, Predictor::Left) => {
            for row in x.chunks_exact_mut(w) {
                let mut prev = 0i32;
                for b in row.iter_mut() {
                    prev = clamp_px(prev + deq(*b));
                    *b = prev as i8 as u8;
                }
            }
        }
        (None, Predictor::Top) => {
            for b in x[..w].iter_mut() {
                *b = clamp_px(deq(*b)) as i8 as u8;
            }
            for i in 1..h {
                let (prev, cur) = x[(i - 1) * w..(i + 1) * w].split_at_mut(w);
                for (c, &t) in cur.iter_mut().zip(prev.iter()) {
                    *c = clamp_px(t as i8 as i32 + deq(*c)) as i8 as u8;
                }
            }
        }
        (Some(t), pred) => {
            let n = t.size();
            let mut d = [0i32; 64];
            let mut r = [0i32; 64];
            for r0 in (0..h).step_by(n) {
                for c0 in (0..w).step_by(n) {
                    for k in 0..n {
                        let row = &x[(r0 + k) * w + c0..(r0 + k) * w + c0 + n];
                        for (l, &b) in row.iter().enumerate() {
                            d[k * n + l] = (b as i8 as i32) * step as i32;
                        }
                    }
                    t.inverse(&d, &mut r);
                    for k in 0..n {
                        let o = (r0 + k) * w + c0;
                        let left = match pred {
                            Predictor::Left if c0 > 0 => x[o - 1] as i8 as i32,
                            _ => 0,
                        };
                        for l in 0..n {
                            let p = match pred {
                                Predictor::Top if r0 > 0 => x[o - w + l - k * w] as i8 as i32,
                                _ => left,
                            };
                            x[o + l] = clamp_px(p + r[k * n + l]) as i8 as u8;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of the module docs, written plainly, pixel by pixel.
    pub fn reference(mode: Mode, p: LossyParams, x: &mut [u8], h: usize, w: usize) {
        let x = &mut x[..h * w];
        let step = p.step;
        match transform_of(mode) {
            None => {
                for i in 0..h {
                    for j in 0..w {
                        let pred = match p.pred {
                            Predictor::None => 0,
                            Predictor::Left if j > 0 => x[i * w + j - 1] as i8 as i32,
                            Predictor::Top if i > 0 => x[(i - 1) * w + j] as i8 as i32,
                            _ => 0,
                        };
                        let q = x[i * w + j] as i8 as i32;
                        x[i * w + j] = clamp_px(pred + dequant_spatial(q, step)) as i8 as u8;
                    }
                }
            }
            Some(t) => {
                let n = t.size();
                let mut d = [0i32; 64];
                let mut r = [0i32; 64];
                for r0 in (0..h).step_by(n) {
                    for c0 in (0..w).step_by(n) {
                        for k in 0..n {
                            for l in 0..n {
                                d[k * n + l] =
                                    (x[(r0 + k) * w + c0 + l] as i8 as i32) * step as i32;
                            }
                        }
                        t.inverse(&d, &mut r);
                        for k in 0..n {
                            for l in 0..n {
                                let pred = match p.pred {
                                    Predictor::None => 0,
                                    Predictor::Left if c0 > 0 => {
                                        x[(r0 + k) * w + c0 - 1] as i8 as i32
                                    }
                                    Predictor::Top if r0 > 0 => {
                                        x[(r0 - 1) * w + c0 + l] as i8 as i32
                                    }
                                    _ => 0,
                                };
                                x[(r0 + k) * w + c0 + l] =
                                    clamp_px(pred + r[k * n + l]) as i8 as u8;
                            }
                        }
                    }
                }
            }
        }
    }

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The fast rebuild equals the plain one: every mode, predictor, many
    /// steps and tile shapes, random, small and extreme codes.
    #[test]
    fn reconstruct_equals_the_plain_rules() {
        let mut seed = 0x5eed_u64;
        for mode in Mode::LOSSY {
            for pred in Predictor::ALL {
                for (h, w) in [
                    (64, 64),
                    (8, 8),
                    (4, 12),
                    (60, 52),
                    (63, 17),
                    (1, 1),
                    (1, 9),
                    (7, 1),
                ] {
                    if !fits(mode, h, w) {
                        continue;
                    }
                    for step in [1, 7, 16, 17, 100, 333, MAX_STEP] {
                        for kind in 0..4 {
                            let codes: Vec<u8> = (0..h * w)
                                .map(|_| match kind {
                                    0 => xorshift(&mut seed) as u8,
                                    1 => (xorshift(&mut seed) % 9) as u8 ^ 0xfc,
                                    2 => {
                                        [0x80u8, 0x7f, 0x81, 0][(xorshift(&mut seed) % 4) as usize]
                                    }
                                    _ => 0x80,
                                })
                                .collect();
                            let p = LossyParams { step, pred };
                            let (mut a, mut b) = (codes.clone(), codes);
                            reconstruct(mode, p, &mut a, h, w);
                            reference(mode, p, &mut b, h, w);
                            assert_eq!(a, b, "{mode:?} {pred:?} step {step} {h}x{w} kind {kind}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn params_round_trip_and_reject() {
        for step in [1, 16, 4095] {
            for pred in Predictor::ALL {
                let p = LossyParams { step, pred };
                assert_eq!(LossyParams::unpack(p.pack()), Ok(p));
            }
        }
        assert!(LossyParams::unpack(0).is_err());
        assert!(LossyParams::unpack(16 | 3 << 12).is_err());
        assert!(LossyParams::unpack(16 | 1 << 14).is_err());
        assert!(LossyParams::unpack(16 | 1 << 23).is_err());
    }

    #[test]
    fn spatial_dequant_is_symmetric() {
        for step in 1..=MAX_STEP {
            for q in 0..=128 {
                assert_eq!(dequant_spatial(-q, step), -dequant_spatial(q, step));
            }
            assert_eq!(dequant_spatial(127, STEP_ONE), 127);
        }
        assert_eq!(dequant_spatial(3, 24), 5); // 4.5 rounds up
        assert_eq!(dequant_spatial(-128, 4095), -32760);
    }

    #[test]
    fn spatial_edge_rules() {
        // 2×3 tile, step 1 px: codes are pixel deltas.
        let codes: [i8; 6] = [5, -2, 3, 1, 1, 1];
        let run = |pred| {
            let mut x: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
            reconstruct(Mode::Spatial, LossyParams { step: 16, pred }, &mut x, 2, 3);
            x.iter().map(|&v| v as i8).collect::<Vec<_>>()
        };
        assert_eq!(run(Predictor::None), vec![5, -2, 3, 1, 1, 1]);
        assert_eq!(run(Predictor::Left), vec![5, 3, 6, 1, 2, 3]);
        assert_eq!(run(Predictor::Top), vec![5, -2, 3, 6, -1, 4]);
        // Clamping happens at every pixel, and the clamped value is what the next predicts from.
        let mut x = vec![100u8, 100, 0x80, 0x80];
        reconstruct(
            Mode::Spatial,
            LossyParams {
                step: 16,
                pred: Predictor::Left,
            },
            &mut x,
            1,
            4,
        );
        assert_eq!(
            x.iter().map(|&v| v as i8).collect::<Vec<_>>(),
            vec![100, 127, -1, -127]
        );
    }

    #[test]
    fn transform_predictors_read_neighbouring_blocks() {
        // 8×8 tile of 4×4 DCT blocks; DC codes only; step 16·4 so a DC code
        // of c is a flat block of c pixels.
        let mut codes = vec![0u8; 64];
        for (b, c) in [(0usize, 10i8), (1, 2), (2, -3), (3, 1)] {
            let (r0, c0) = (4 * (b / 2), 4 * (b % 2));
            codes[r0 * 8 + c0] = c as u8;
        }
        let run = |pred| {
            let mut x = codes.clone();
            reconstruct(Mode::Dct4, LossyParams { step: 64, pred }, &mut x, 8, 8);
            [0usize, 4, 32, 36].map(|i| x[i] as i8)
        };
        assert_eq!(run(Predictor::None), [10, 2, -3, 1]);
        assert_eq!(run(Predictor::Left), [10, 12, -3, -2]);
        assert_eq!(run(Predictor::Top), [10, 2, 7, 3]);
    }

    #[test]
    fn fits_needs_whole_blocks() {
        assert!(fits(Mode::Spatial, 3, 5));
        assert!(fits(Mode::Dct8, 64, 8));
        assert!(!fits(Mode::Dct8, 60, 64));
        assert!(fits(Mode::Dct4, 60, 64));
        assert!(!fits(Mode::Dst4, 58, 64));
    }
}

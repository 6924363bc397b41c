//! Per-tile reconstruction modes (CODEC.md §4, MUST).
//!
//! Values are int8 (bytes read as two's complement). A tile stores residuals
//! `r = (x − pred) mod 256`; the decoder rebuilds `x = (r + pred) mod 256`.
//! Predictions read only values inside the same tile. The edge rules below are
//! the only place they are written down; every backend mirrors them.
//!
//! | mode   | prediction at (i, j)                    | edges                                  |
//! |--------|-----------------------------------------|----------------------------------------|
//! | NONE   | 0                                       |                                        |
//! | LEFT   | x[i][j−1]                               | 0 at j = 0                             |
//! | TOP    | x[i−1][j]                               | 0 at i = 0                             |
//! | AVG    | (x[i][j−1] + x[i−1][j]) >> 1 (floor)    | the one neighbour there is; 0 at (0,0) |
//! | PLANAR | clamp((a·i + b·j + 16·c + 8) >> 4, −128, 127) | none; a, b, c are signed bytes   |

/// A tile's reconstruction mode. The numbers are the format's mode codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mode {
    None = 0,
    Left = 1,
    Top = 2,
    Avg = 3,
    Planar = 4,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::None, Mode::Left, Mode::Top, Mode::Avg, Mode::Planar];

    pub fn from_code(c: u8) -> Option<Mode> {
        Mode::ALL.get(c as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "NONE",
            Mode::Left => "LEFT",
            Mode::Top => "TOP",
            Mode::Avg => "AVG",
            Mode::Planar => "PLANAR",
        }
    }
}

/// PLANAR's parameters, stored as three signed bytes in the tile index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Planar {
    pub a: i8,
    pub b: i8,
    pub c: i8,
}

impl Planar {
    /// Pack into the index's 24 parameter bits: a, b, c from low to high.
    pub fn pack(self) -> u32 {
        (self.a as u8 as u32) | (self.b as u8 as u32) << 8 | (self.c as u8 as u32) << 16
    }

    pub fn unpack(p: u32) -> Planar {
        Planar { a: p as u8 as i8, b: (p >> 8) as u8 as i8, c: (p >> 16) as u8 as i8 }
    }

    #[inline(always)]
    pub fn predict(self, i: usize, j: usize) -> i32 {
        let v = (self.a as i32 * i as i32 + self.b as i32 * j as i32 + 16 * self.c as i32 + 8) >> 4;
        v.clamp(-128, 127)
    }

    /// Least-squares plane through a tile, rounded to the parameter grid.
    pub fn fit(tile: &[u8], h: usize, w: usize) -> Planar {
        // Integer moments: Σv, Σi·v, Σj·v (exact), then one division each.
        let (mut sv, mut siv, mut sjv) = (0i64, 0i64, 0i64);
        for i in 0..h {
            let row = &tile[i * w..(i + 1) * w];
            let mut rs = 0i64;
            for (j, &b) in row.iter().enumerate() {
                let v = b as i8 as i64;
                rs += v;
                sjv += j as i64 * v;
            }
            sv += rs;
            siv += i as i64 * rs;
        }
        let (n, hf, wf) = ((h * w) as f64, h as f64, w as f64);
        let (ci, cj) = ((hf - 1.0) / 2.0, (wf - 1.0) / 2.0);
        // Centred moments: Σ(i − ci)v = Σiv − ci·Σv; Σ(i − ci)² = w·h(h²−1)/12.
        let sii = wf * hf * (hf * hf - 1.0) / 12.0;
        let sjj = hf * wf * (wf * wf - 1.0) / 12.0;
        let alpha = if sii > 0.0 { (siv as f64 - ci * sv as f64) / sii } else { 0.0 };
        let beta = if sjj > 0.0 { (sjv as f64 - cj * sv as f64) / sjj } else { 0.0 };
        let gamma = sv as f64 / n - alpha * ci - beta * cj;
        let q = |v: f64| v.round().clamp(-128.0, 127.0) as i8;
        Planar { a: q(16.0 * alpha), b: q(16.0 * beta), c: q(gamma) }
    }
}

#[inline(always)]
fn sx(v: u8) -> i32 {
    v as i8 as i32
}

/// AVG's prediction from its two neighbours (both present).
#[inline(always)]
fn avg(left: u8, top: u8) -> u8 {
    ((sx(left) + sx(top)) >> 1) as u8
}

/// Residuals of a tile (`h × w`, row-major) under `mode`.
pub fn residuals(mode: Mode, p: Planar, tile: &[u8], h: usize, w: usize, out: &mut [u8]) {
    let n = h * w;
    let (x, r) = (&tile[..n], &mut out[..n]);
    match mode {
        Mode::None => r.copy_from_slice(x),
        Mode::Left => {
            for (xr, rr) in x.chunks_exact(w).zip(r.chunks_exact_mut(w)) {
                rr[0] = xr[0];
                for j in 1..w {
                    rr[j] = xr[j].wrapping_sub(xr[j - 1]);
                }
            }
        }
        Mode::Top => {
            r[..w].copy_from_slice(&x[..w]);
            for i in 1..h {
                let (prev, cur) = (&x[(i - 1) * w..i * w], &x[i * w..(i + 1) * w]);
                for ((o, &c), &t) in r[i * w..(i + 1) * w].iter_mut().zip(cur).zip(prev) {
                    *o = c.wrapping_sub(t);
                }
            }
        }
        Mode::Avg => {
            r[0] = x[0];
            for j in 1..w {
                r[j] = x[j].wrapping_sub(x[j - 1]);
            }
            for i in 1..h {
                let (prev, cur) = (&x[(i - 1) * w..i * w], &x[i * w..(i + 1) * w]);
                let rr = &mut r[i * w..(i + 1) * w];
                rr[0] = cur[0].wrapping_sub(prev[0]);
                for j in 1..w {
                    rr[j] = cur[j].wrapping_sub(avg(cur[j - 1], prev[j]));
                }
            }
        }
        Mode::Planar => {
            for i in 0..h {
                let row0 = p.a as i32 * i as i32 + 16 * p.c as i32 + 8;
                for j in 0..w {
                    let pr = ((row0 + p.b as i32 * j as i32) >> 4).clamp(-128, 127);
                    r[i * w + j] = x[i * w + j].wrapping_sub(pr as u8);
                }
            }
        }
    }
}

/// Rebuild a tile from its residuals, in place: the reference decoder.
pub fn reconstruct(mode: Mode, p: Planar, x: &mut [u8], h: usize, w: usize) {
    let x = &mut x[..h * w];
    match mode {
        Mode::None => {}
        Mode::Left => {
            for row in x.chunks_exact_mut(w) {
                for j in 1..w {
                    row[j] = row[j].wrapping_add(row[j - 1]);
                }
            }
        }
        Mode::Top => {
            for i in 1..h {
                let (prev, cur) = x[(i - 1) * w..(i + 1) * w].split_at_mut(w);
                for (c, &t) in cur.iter_mut().zip(prev.iter()) {
                    *c = c.wrapping_add(t);
                }
            }
        }
        Mode::Avg => {
            for j in 1..w {
                x[j] = x[j].wrapping_add(x[j - 1]);
            }
            for i in 1..h {
                let (prev, cur) = x[(i - 1) * w..(i + 1) * w].split_at_mut(w);
                cur[0] = cur[0].wrapping_add(prev[0]);
                for j in 1..w {
                    cur[j] = cur[j].wrapping_add(avg(cur[j - 1], prev[j]));
                }
            }
        }
        Mode::Planar => {
            for i in 0..h {
                let row0 = p.a as i32 * i as i32 + 16 * p.c as i32 + 8;
                for j in 0..w {
                    let pr = ((row0 + p.b as i32 * j as i32) >> 4).clamp(-128, 127);
                    x[i * w + j] = x[i * w + j].wrapping_add(pr as u8);
                }
            }
        }
    }
}

/// Σ |v| over bytes read as int8: a cheap stand-in for a residual's coded size.
pub fn l1(r: &[u8]) -> u64 {
    r.iter().map(|&v| (v as i8).unsigned_abs() as u64).sum()
}

/// A cheap stand-in for a mode's coded size: Σ |residual| as signed bytes.
pub fn l1_cost(mode: Mode, p: Planar, tile: &[u8], h: usize, w: usize, scratch: &mut [u8]) -> u64 {
    residuals(mode, p, tile, h, w, scratch);
    l1(&scratch[..h * w])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Exhaustive over every small tile shape, several contents, every mode.
    #[test]
    fn reconstruct_inverts_residuals_on_small_tiles() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for h in 1..=5 {
            for w in 1..=5 {
                for trial in 0..50 {
                    let tile: Vec<u8> = (0..h * w)
                        .map(|_| match trial % 3 {
                            0 => xorshift(&mut seed) as u8,
                            1 => [0x80u8, 0x7f, 0x00, 0xff][(xorshift(&mut seed) % 4) as usize],
                            _ => (xorshift(&mut seed) % 7) as u8,
                        })
                        .collect();
                    let p = Planar {
                        a: xorshift(&mut seed) as i8,
                        b: xorshift(&mut seed) as i8,
                        c: xorshift(&mut seed) as i8,
                    };
                    for mode in Mode::ALL {
                        let mut r = vec![0u8; h * w];
                        residuals(mode, p, &tile, h, w, &mut r);
                        reconstruct(mode, p, &mut r, h, w);
                        assert_eq!(r, tile, "mode {mode:?} {h}x{w}");
                    }
                }
            }
        }
    }

    #[test]
    fn edge_rules_are_as_documented() {
        // 2x2 tile [[a, b], [c, d]]
        let t = [10u8, 20, 30, 40];
        let mut r = [0u8; 4];
        residuals(Mode::Left, Planar::default(), &t, 2, 2, &mut r);
        assert_eq!(r, [10, 10, 30, 10]);
        residuals(Mode::Top, Planar::default(), &t, 2, 2, &mut r);
        assert_eq!(r, [10, 20, 20, 20]);
        residuals(Mode::Avg, Planar::default(), &t, 2, 2, &mut r);
        // (0,0): 0; (0,1): left=10; (1,0): top=10; (1,1): (30+20)>>1 = 25
        assert_eq!(r, [10, 10, 20, 15]);
        // floor for negative sums: left = -3, top = -2 → (-5) >> 1 = -3
        let t = [0u8, (-2i8) as u8, (-3i8) as u8, 0];
        residuals(Mode::Avg, Planar::default(), &t, 2, 2, &mut r);
        assert_eq!(r[3] as i8, 3);
        let p = Planar { a: 16, b: -16, c: 5 };
        assert_eq!(p.predict(0, 0), 5);
        assert_eq!(p.predict(2, 1), 6);
        assert_eq!(Planar { a: 127, b: 127, c: 127 }.predict(63, 63), 127);
        assert_eq!(Planar { a: -128, b: -128, c: -128 }.predict(63, 63), -128);
    }

    #[test]
    fn planar_fit_recovers_a_plane() {
        let (h, w) = (64, 64);
        let tile: Vec<u8> = (0..h * w).map(|k| ((k / w) as i32 / 4 - (k % w) as i32 / 8 + 3) as i8 as u8).collect();
        let p = Planar::fit(&tile, h, w);
        let mut s = vec![0u8; h * w];
        let l1 = l1_cost(Mode::Planar, p, &tile, h, w, &mut s);
        let l1_none = l1_cost(Mode::None, p, &tile, h, w, &mut s);
        assert!(l1 * 4 < l1_none, "{p:?} {l1} {l1_none}");
        assert_eq!(Planar::unpack(p.pack()), p);
    }
}

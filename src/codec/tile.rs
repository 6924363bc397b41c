//! Tiling and the rANS lane layout (CODEC.md §3, MUST).
//!
//! A coded plane is a grid of byte symbols, `rows × cols`, cut into tiles of
//! `tile_h × tile_w` (64×64 for 2-D tensors, 1×4096 for 1-D tensors and float
//! planes), with smaller tiles at the right and bottom edges. Tiles are
//! numbered row-major over the tile grid; symbols inside a tile are row-major.
//!
//! Inside a tile, symbol `k` belongs to lane `(k / 4) % 32`; lane `l`'s `s`-th
//! symbol is `k = 128·(s / 4) + 4·l + s % 4`.

/// Side of a 2-D tile.
pub const TILE_2D: usize = 64;
/// Length of a 1-D tile.
pub const TILE_1D: usize = 4096;
/// Interleaved rANS lanes per tile.
pub const LANES: usize = 32;
/// Consecutive symbols a lane owns in each group.
pub const RUN: usize = 4;
/// Symbols in one group of all lanes' runs.
pub const GROUP: usize = LANES * RUN;
/// The largest number of symbols in a tile.
pub const MAX_TILE_SYMBOLS: usize = 4096;

/// A plane's symbol grid and its tile size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
    pub tile_h: usize,
    pub tile_w: usize,
}

/// One tile's place in its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRect {
    pub r0: usize,
    pub c0: usize,
    pub h: usize,
    pub w: usize,
}

impl TileRect {
    /// Number of symbols in the tile.
    pub fn n(&self) -> usize {
        self.h * self.w
    }
}

impl Grid {
    /// A 2-D grid with 64×64 tiles.
    pub fn two_d(rows: usize, cols: usize) -> Grid {
        Grid { rows, cols, tile_h: TILE_2D, tile_w: TILE_2D }
    }

    /// A 1-D run of `n` symbols with 4096-symbol tiles.
    pub fn one_d(n: usize) -> Grid {
        Grid { rows: 1, cols: n, tile_h: 1, tile_w: TILE_1D }
    }

    /// True if the tile size is one the format allows.
    pub fn tile_shape_is_valid(&self) -> bool {
        (self.tile_h, self.tile_w) == (TILE_2D, TILE_2D)
            || ((self.tile_h, self.tile_w) == (1, TILE_1D) && self.rows == 1)
    }

    pub fn symbols(&self) -> usize {
        self.rows * self.cols
    }

    pub fn tiles_y(&self) -> usize {
        self.rows.div_ceil(self.tile_h)
    }

    pub fn tiles_x(&self) -> usize {
        self.cols.div_ceil(self.tile_w)
    }

    pub fn num_tiles(&self) -> usize {
        self.tiles_y() * self.tiles_x()
    }

    /// The rectangle of tile `t` (row-major over the tile grid).
    pub fn tile(&self, t: usize) -> TileRect {
        let tx = self.tiles_x();
        let (ty, txi) = (t / tx, t % tx);
        let r0 = ty * self.tile_h;
        let c0 = txi * self.tile_w;
        TileRect { r0, c0, h: self.tile_h.min(self.rows - r0), w: self.tile_w.min(self.cols - c0) }
    }

    /// Copy tile `t` out of a row-major plane into `out` (row-major inside the tile).
    pub fn gather(&self, plane: &[u8], t: usize, out: &mut Vec<u8>) {
        let r = self.tile(t);
        out.clear();
        for i in 0..r.h {
            let s = (r.r0 + i) * self.cols + r.c0;
            out.extend_from_slice(&plane[s..s + r.w]);
        }
    }
}

/// Lanes that own at least one symbol in a tile of `n` symbols.
pub fn active_lanes(n: usize) -> usize {
    n.div_ceil(RUN).min(LANES)
}

/// Decode steps for a tile of `n` symbols: four per group of 128.
pub fn steps(n: usize) -> usize {
    RUN * n.div_ceil(GROUP)
}

/// Tile-order index of lane `l`'s `s`-th symbol.
#[inline(always)]
pub fn lane_symbol(l: usize, s: usize) -> usize {
    GROUP * (s / RUN) + RUN * l + s % RUN
}

/// Number of symbols lane `l` owns in a tile of `n` symbols.
pub fn lane_count(n: usize, l: usize) -> usize {
    let full = n / GROUP;
    let rem = n % GROUP;
    RUN * full + rem.saturating_sub(RUN * l).min(RUN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_layout_covers_every_symbol_once() {
        for n in [1usize, 3, 4, 5, 127, 128, 129, 200, 4095, 4096] {
            let mut seen = vec![0u8; n];
            for l in 0..LANES {
                let c = lane_count(n, l);
                for s in 0..c {
                    let k = lane_symbol(l, s);
                    assert!(k < n, "n={n} l={l} s={s}");
                    seen[k] += 1;
                }
                // the lane's symbols are exactly its first `c` steps
                assert!(lane_symbol(l, c) >= n || c == steps(n));
            }
            assert!(seen.iter().all(|&v| v == 1), "n={n}");
            assert_eq!((0..LANES).filter(|&l| lane_count(n, l) > 0).count(), active_lanes(n));
        }
    }

    #[test]
    fn lane_symbol_matches_codec_md() {
        // In every group of 128 symbols, lane l owns symbols 4l .. 4l+3.
        assert_eq!(lane_symbol(0, 0), 0);
        assert_eq!(lane_symbol(0, 3), 3);
        assert_eq!(lane_symbol(1, 0), 4);
        assert_eq!(lane_symbol(31, 3), 127);
        assert_eq!(lane_symbol(0, 4), 128);
        assert_eq!(lane_symbol(5, 9), 128 * 2 + 20 + 1);
    }

    #[test]
    fn grid_tiles_cover_plane() {
        for (r, c) in [(1, 1), (65, 63), (64, 64), (130, 1), (1, 130), (200, 300)] {
            let g = Grid::two_d(r, c);
            let total: usize = (0..g.num_tiles()).map(|t| g.tile(t).n()).sum();
            assert_eq!(total, r * c);
        }
        let g = Grid::one_d(10000);
        assert_eq!(g.num_tiles(), 3);
        assert_eq!(g.tile(2).n(), 10000 - 8192);
    }
}

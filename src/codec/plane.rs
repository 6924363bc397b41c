//! A coded plane: the symbols of one tensor component, tiled, predicted and
//! rANS-coded. This module chooses modes and tables (encoder) and decodes a
//! plane tile by tile (the reference decoder).

use std::borrow::Cow;

use rayon::prelude::*;

use crate::codec::freq::{self, FreqTable, MAX_TABLES};
use crate::codec::lossy::{self, LossyParams, Predictor};
use crate::codec::predict::{self, Mode, Planar};
use crate::codec::rans::{self, EncTable, Tail, TileError};
use crate::codec::tile::{Grid, MAX_TILE_SYMBOLS, active_lanes, lane_count, lane_symbol};
use crate::error::{Error, Location, Result};

/// Bytes per tile-index entry.
pub const INDEX_ENTRY_BYTES: usize = 8;

/// One tile-index entry: where the tile's words start, and how to rebuild it.
///
/// Stored as two little-endian u32: `offset` (in 16-bit words from the start
/// of the plane's stream), then `meta` = mode (bits 0..4) | table (bits 4..6) |
/// reserved zero (bits 6..8) | mode parameters (bits 8..32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileEntry {
    pub offset: u32,
    pub mode: Mode,
    pub table: u8,
    pub params: u32,
}

impl TileEntry {
    pub fn pack(&self) -> [u32; 2] {
        [
            self.offset,
            self.mode as u32 | (self.table as u32) << 4 | self.params << 8,
        ]
    }

    /// Parse an entry; `tables` is the plane's table count, `lossy` whether
    /// the plane holds lossy tiles (modes 5..=8) or lossless ones (0..=4).
    pub fn unpack(
        offset: u32,
        meta: u32,
        tables: usize,
        lossy: bool,
    ) -> std::result::Result<TileEntry, String> {
        let code = (meta & 15) as u8;
        let mode = Mode::from_code(code).ok_or_else(|| format!("unknown mode code {code}"))?;
        if mode.is_lossy() != lossy {
            return Err(format!(
                "mode {} in a {} plane",
                mode.name(),
                if lossy { "lossy" } else { "lossless" }
            ));
        }
        let table = ((meta >> 4) & 3) as u8;
        if table as usize >= tables {
            return Err(format!("table {table} but the plane has {tables}"));
        }
        if meta & 0xc0 != 0 {
            return Err("reserved bits are set".into());
        }
        let params = meta >> 8;
        if mode.is_lossy() {
            LossyParams::unpack(params)?;
        } else if mode != Mode::Planar && params != 0 {
            return Err(format!("mode {} takes no parameters", mode.name()));
        }
        Ok(TileEntry {
            offset,
            mode,
            table,
            params,
        })
    }

    /// The lossy parameters of a lossy tile (validated by [`TileEntry::unpack`]).
    pub fn lossy_params(&self) -> LossyParams {
        LossyParams::unpack(self.params).expect("validated lossy parameters")
    }

    /// A display name: the mode, and for lossy tiles with a predictor, `+LEFT` or `+TOP`.
    pub fn name(&self) -> String {
        if self.mode.is_lossy() {
            match LossyParams::unpack(self.params).map(|p| p.pred) {
                Ok(Predictor::None) | Err(_) => self.mode.name().to_string(),
                Ok(p) => format!("{}+{}", self.mode.name(), p.name()),
            }
        } else {
            self.mode.name().to_string()
        }
    }
}

/// An encoded plane, owned.
#[derive(Debug, Clone)]
pub struct CodedPlane {
    pub grid: Grid,
    pub prob_bits: u32,
    pub tail: Tail,
    pub tables: Vec<FreqTable>,
    pub index: Vec<TileEntry>,
    pub stream: Vec<u16>,
}

impl CodedPlane {
    pub fn tables_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for t in &self.tables {
            t.write(&mut out);
        }
        out
    }

    pub fn index_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.index.len() * INDEX_ENTRY_BYTES);
        for e in &self.index {
            for w in e.pack() {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    pub fn stream_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.stream.len() * 2);
        for w in &self.stream {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Coded size in bytes: tables + index + stream.
    pub fn coded_bytes(&self) -> usize {
        self.tables_bytes().len() + self.index.len() * INDEX_ENTRY_BYTES + self.stream.len() * 2
    }

    /// Count of tiles in each mode, indexed by mode code.
    pub fn mode_histogram(&self) -> [usize; 16] {
        let mut h = [0usize; 16];
        for e in &self.index {
            h[e.mode as usize] += 1;
        }
        h
    }

    pub fn view(&self) -> PlaneView<'_> {
        PlaneView {
            grid: self.grid,
            prob_bits: self.prob_bits,
            tail: self.tail,
            tables: Cow::Borrowed(&self.tables),
            index: Cow::Borrowed(&self.index),
            stream: Cow::Borrowed(&self.stream),
        }
    }
}

/// A validated plane ready to decode, borrowing its stream where it can.
#[derive(Debug, Clone)]
pub struct PlaneView<'a> {
    pub grid: Grid,
    pub prob_bits: u32,
    pub tail: Tail,
    pub tables: Cow<'a, [FreqTable]>,
    pub index: Cow<'a, [TileEntry]>,
    pub stream: Cow<'a, [u16]>,
}

/// Stream bytes as little-endian words, borrowed when aligned.
fn words_of(stream: &[u8]) -> Cow<'_, [u16]> {
    match bytemuck::try_cast_slice::<u8, u16>(stream) {
        Ok(w) if cfg!(target_endian = "little") => Cow::Borrowed(w),
        _ => Cow::Owned(
            stream
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
    }
}

impl<'a> PlaneView<'a> {
    /// Build from the sections of a file, checking everything that can be
    /// checked without decoding: table sums, index entries (lossy modes in a
    /// `lossy` plane only, and transforms only on tiles of whole blocks),
    /// monotone offsets.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        grid: Grid,
        lossy: bool,
        prob_bits: u32,
        tail: Tail,
        table_count: usize,
        tables: &[u8],
        index: &[u8],
        stream: &'a [u8],
        loc: &Location,
    ) -> Result<PlaneView<'a>> {
        let at = |f: &str| {
            let mut l = loc.clone();
            l.field = Some(match &loc.field {
                Some(p) => format!("{p}.{f}"),
                None => f.to_string(),
            });
            l
        };
        if !grid.tile_shape_is_valid() || grid.symbols() == 0 {
            return Err(Error::format(at("tile"), format!("invalid grid {grid:?}")));
        }
        if !tail.is_valid() {
            return Err(Error::format(
                at("tail.bits"),
                format!("tail bits {} not in 1..=8", tail.bits),
            ));
        }
        if table_count == 0 || table_count > MAX_TABLES {
            return Err(Error::format(
                at("tables.count"),
                format!("{table_count} tables, allowed 1..={MAX_TABLES}"),
            ));
        }
        let mut ts = Vec::with_capacity(table_count);
        let mut pos = 0;
        for _ in 0..table_count {
            let (t, used) = FreqTable::read(&tables[pos..], prob_bits, &at("tables"))?;
            ts.push(t);
            pos += used;
        }
        if pos != tables.len() {
            return Err(Error::format(
                at("tables.len"),
                format!("{} bytes, tables use {pos}", tables.len()),
            ));
        }
        let nt = grid.num_tiles();
        if index.len() != nt * INDEX_ENTRY_BYTES {
            return Err(Error::format(
                at("index.len"),
                format!(
                    "{} bytes, expected {} for {nt} tiles",
                    index.len(),
                    nt * INDEX_ENTRY_BYTES
                ),
            ));
        }
        if stream.len() % 2 != 0 {
            return Err(Error::format(
                at("stream.len"),
                format!("odd length {}", stream.len()),
            ));
        }
        let nwords = stream.len() / 2;
        let mut entries = Vec::with_capacity(nt);
        let mut prev = 0u32;
        for t in 0..nt {
            let b = &index[t * 8..t * 8 + 8];
            let off = u32::from_le_bytes(b[0..4].try_into().unwrap());
            let meta = u32::from_le_bytes(b[4..8].try_into().unwrap());
            let e = TileEntry::unpack(off, meta, table_count, lossy)
                .map_err(|m| Error::format(at(&format!("index[{t}]")), m))?;
            let r = grid.tile(t);
            if !lossy::fits(e.mode, r.h, r.w) {
                return Err(Error::format(
                    at(&format!("index[{t}]")),
                    format!(
                        "mode {} on a {}×{} tile (needs whole blocks)",
                        e.mode.name(),
                        r.h,
                        r.w
                    ),
                ));
            }
            if (t == 0 && off != 0) || off < prev || off as usize > nwords {
                return Err(Error::format(
                    at(&format!("index[{t}].offset")),
                    format!("offset {off} out of order or past the stream ({nwords} words)"),
                ));
            }
            prev = off;
            entries.push(e);
        }
        Ok(PlaneView {
            grid,
            prob_bits,
            tail,
            tables: Cow::Owned(ts),
            index: Cow::Owned(entries),
            stream: words_of(stream),
        })
    }

    /// Wrap already validated parts (see [`PlaneView::parse`]).
    pub fn new(
        grid: Grid,
        prob_bits: u32,
        tail: Tail,
        tables: &'a [FreqTable],
        index: &'a [TileEntry],
        stream: &'a [u8],
    ) -> PlaneView<'a> {
        PlaneView {
            grid,
            prob_bits,
            tail,
            tables: Cow::Borrowed(tables),
            index: Cow::Borrowed(index),
            stream: words_of(stream),
        }
    }

    /// The word range of tile `t`.
    pub fn tile_words(&self, t: usize) -> &[u16] {
        let start = self.index[t].offset as usize;
        let end = self
            .index
            .get(t + 1)
            .map_or(self.stream.len(), |e| e.offset as usize);
        &self.stream[start..end]
    }

    /// Decode lookup tables, one per frequency table.
    pub fn luts(&self) -> Vec<Box<rans::DecodeLut>> {
        self.tables.iter().map(rans::decode_lut).collect()
    }

    /// Decode tile `t` into `buf` (tile order) and rebuild its values in place.
    pub fn decode_tile(
        &self,
        t: usize,
        luts: &[Box<rans::DecodeLut>],
        buf: &mut [u8],
    ) -> std::result::Result<(), TileError> {
        let r = self.grid.tile(t);
        let e = self.index[t];
        rans::decode_tile(
            self.tile_words(t),
            r.n(),
            &luts[e.table as usize],
            self.prob_bits,
            self.tail,
            buf,
        )?;
        if e.mode.is_lossy() {
            lossy::reconstruct(e.mode, e.lossy_params(), buf, r.h, r.w);
        } else {
            predict::reconstruct(e.mode, Planar::unpack(e.params), buf, r.h, r.w);
        }
        Ok(())
    }

    /// Decode the whole plane into `out` (row-major, `grid.symbols()` bytes),
    /// tiles in parallel.
    pub fn decode_into(&self, out: &mut [u8], loc: &Location) -> Result<()> {
        assert_eq!(out.len(), self.grid.symbols());
        let luts = self.luts();
        let g = self.grid;
        let out_ptr = SyncPtr(out.as_mut_ptr());
        (0..g.num_tiles()).into_par_iter().try_for_each_init(
            || vec![0u8; MAX_TILE_SYMBOLS],
            |buf, t| {
                self.decode_tile(t, &luts, buf).map_err(|e| {
                    let mut l = loc.clone();
                    l.field = Some(format!("tile {t}"));
                    Error::corrupt(l, e.to_string())
                })?;
                let r = g.tile(t);
                for i in 0..r.h {
                    let dst = (r.r0 + i) * g.cols + r.c0;
                    // SAFETY: tiles cover disjoint rectangles of the plane, and
                    // every row slice lies inside `out` (r0 + i < rows, c0 + w <= cols).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            buf.as_ptr().add(i * r.w),
                            out_ptr.get().add(dst),
                            r.w,
                        );
                    }
                }
                Ok(())
            },
        )
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut u8);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut u8 {
        self.0
    }
}

/// Per-thread scratch for the encoder: a gathered tile and its residuals.
fn tile_scratch() -> (Vec<u8>, Vec<u8>) {
    (
        Vec::with_capacity(MAX_TILE_SYMBOLS),
        vec![0u8; MAX_TILE_SYMBOLS],
    )
}

/// What the plane encoder may use.
#[derive(Debug, Clone)]
pub struct PlaneOptions {
    pub prob_bits: u32,
    /// Modes the encoder may choose from; NONE is always allowed.
    pub modes: Vec<Mode>,
    pub max_tables: usize,
    /// Modes forced on every tile, for tests: the encoder's choice is skipped.
    pub force_mode: Option<Mode>,
}

impl Default for PlaneOptions {
    fn default() -> Self {
        PlaneOptions {
            prob_bits: freq::DEFAULT_PROB_BITS,
            modes: Mode::ALL.to_vec(),
            max_tables: MAX_TABLES,
            force_mode: None,
        }
    }
}

impl PlaneOptions {
    /// Modes that make sense for a grid: 1-row tiles get NONE and LEFT only
    /// (TOP, AVG and PLANAR would only repeat them).
    pub fn for_grid(grid: &Grid) -> PlaneOptions {
        let mut o = PlaneOptions::default();
        if grid.tile_h == 1 {
            o.modes = vec![Mode::None, Mode::Left];
        }
        o
    }
}

/// Tiles the table search looks at; larger planes search on a sample.
const SEARCH_TILES: usize = 512;

#[derive(Clone)]
struct TileChoice {
    /// Candidate (mode, params, residual histogram), NONE first.
    cands: Vec<(Mode, u32, [u64; 256])>,
    pick: usize,
    table: usize,
}

/// Encode a plane (`data` is row-major, `grid.symbols()` bytes).
pub fn encode_plane(data: &[u8], grid: Grid, opts: &PlaneOptions) -> Result<CodedPlane> {
    assert_eq!(data.len(), grid.symbols());
    assert!(grid.symbols() > 0);
    let nt = grid.num_tiles();
    // 1. Per tile: candidate modes and their residual histograms.
    let mut choices: Vec<TileChoice> = (0..nt)
        .into_par_iter()
        .map_init(tile_scratch, |(tile, scratch), t| {
            grid.gather(data, t, tile);
            let r = grid.tile(t);
            let mut cands = Vec::with_capacity(2);
            if let Some(m) = opts.force_mode {
                let p = if m == Mode::Planar {
                    Planar::fit(tile, r.h, r.w).pack()
                } else {
                    0
                };
                predict::residuals(m, Planar::unpack(p), tile, r.h, r.w, scratch);
                cands.push((m, p, freq::histogram(&scratch[..r.n()])));
                return TileChoice {
                    cands,
                    pick: 0,
                    table: 0,
                };
            }
            cands.push((Mode::None, 0, freq::histogram(tile)));
            if opts.modes.len() > 1 && r.n() > 1 {
                let allowed = |m: Mode| opts.modes.contains(&m);
                let st = predict::tile_stats(tile, r.h, r.w);
                let mut best = (st.l1_none, Mode::None, 0u32);
                for (m, c) in [(Mode::Left, st.l1_left), (Mode::Top, st.l1_top)] {
                    if allowed(m) && c < best.0 {
                        best = (c, m, 0);
                    }
                }
                let consider =
                    |m: Mode, p: u32, scratch: &mut [u8], best: &mut (u64, Mode, u32)| {
                        let c = predict::l1_cost(m, Planar::unpack(p), tile, r.h, r.w, scratch);
                        if c < best.0 {
                            *best = (c, m, p);
                        }
                    };
                // AVG only helps where LEFT or TOP already does.
                if best.1 != Mode::None && allowed(Mode::Avg) {
                    consider(Mode::Avg, 0, scratch, &mut best);
                }
                // PLANAR: where the tile has a slope, or an offset of 2 or more
                // (an offset of ±1 is within the noise of a dense tile's mean).
                let p = st.planar;
                if allowed(Mode::Planar) && (p.a != 0 || p.b != 0 || p.c.unsigned_abs() >= 2) {
                    consider(Mode::Planar, p.pack(), scratch, &mut best);
                }
                if best.1 != Mode::None {
                    predict::residuals(best.1, Planar::unpack(best.2), tile, r.h, r.w, scratch);
                    cands.push((best.1, best.2, freq::histogram(&scratch[..r.n()])));
                }
            }
            TileChoice {
                cands,
                pick: 0,
                table: 0,
            }
        })
        .collect();
    // Start from each tile's own entropy: a predicted mode must beat NONE on its own statistics.
    for c in choices.iter_mut().filter(|c| c.cands.len() > 1) {
        let cost = |h: &[u64; 256]| freq::entropy(h) * h.iter().sum::<u64>() as f64;
        c.pick = (0..c.cands.len())
            .min_by(|&a, &b| cost(&c.cands[a].2).total_cmp(&cost(&c.cands[b].2)))
            .unwrap();
    }
    finish_plane(data, grid, choices, opts)
}

/// Encode a plane whose tiles' modes and parameters are already chosen (the
/// lossy encoder's codes: `data` holds them row-major, each tile's symbols
/// at its pixels' positions). Only the tables, tails and streams are chosen here.
pub fn encode_plane_fixed(
    data: &[u8],
    grid: Grid,
    picked: &[(Mode, u32)],
    opts: &PlaneOptions,
) -> Result<CodedPlane> {
    assert_eq!(data.len(), grid.symbols());
    assert_eq!(picked.len(), grid.num_tiles());
    assert!(grid.symbols() > 0);
    let choices: Vec<TileChoice> = (0..grid.num_tiles())
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(MAX_TILE_SYMBOLS),
            |tile, t| {
                grid.gather(data, t, tile);
                TileChoice {
                    cands: vec![(picked[t].0, picked[t].1, freq::histogram(tile))],
                    pick: 0,
                    table: 0,
                }
            },
        )
        .collect();
    finish_plane(data, grid, choices, opts)
}

/// Tables, tails and the rANS pass for chosen tile candidates.
fn finish_plane(
    data: &[u8],
    grid: Grid,
    mut choices: Vec<TileChoice>,
    opts: &PlaneOptions,
) -> Result<CodedPlane> {
    let nt = grid.num_tiles();
    let prob_bits = opts.prob_bits;
    // 2. Tables: cluster tiles by their residual statistics (one class per
    //    mode family to start), then let tiles move to the table that codes
    //    them cheapest, and keep the number of tables that costs least overall.
    let tables = if choices.len() > SEARCH_TILES {
        // Search tables on an evenly spaced sample of tiles, then settle every
        // tile against them; the tables are rebuilt from the full assignment.
        let step = choices.len().div_ceil(SEARCH_TILES);
        let mut sample: Vec<TileChoice> = choices.iter().step_by(step).cloned().collect();
        let found = choose_tables(&mut sample, prob_bits, opts.max_tables)?;
        assign(&mut choices, &found);
        rebuild_tables(&mut choices, found.len(), prob_bits)?
    } else {
        choose_tables(&mut choices, prob_bits, opts.max_tables)?
    };
    // 3. Lane tails and 4. the rANS pass, tile by tile.
    let picked: Vec<(Mode, u32, usize)> = choices
        .iter()
        .map(|c| (c.cands[c.pick].0, c.cands[c.pick].1, c.table))
        .collect();
    drop(choices);
    let residual_tile = |t: usize, tile: &mut Vec<u8>, out: &mut [u8]| {
        grid.gather(data, t, tile);
        let r = grid.tile(t);
        let (m, p, _) = picked[t];
        predict::residuals(m, Planar::unpack(p), tile, r.h, r.w, out);
    };
    let tail = choose_tail(grid, &residual_tile);
    let enc: Vec<EncTable> = tables.iter().map(EncTable::new).collect();
    let tile_streams: Vec<Vec<u16>> = (0..nt)
        .into_par_iter()
        .map_init(tile_scratch, |(tile, res), t| {
            residual_tile(t, tile, res);
            let n = grid.tile(t).n();
            let mut out = Vec::with_capacity(n / 2 + 64);
            rans::encode_reverse(&res[..n], &enc[picked[t].2], tail, &mut out);
            out
        })
        .collect();
    let mut stream = Vec::with_capacity(tile_streams.iter().map(|s| s.len()).sum());
    let mut index = Vec::with_capacity(nt);
    for (t, s) in tile_streams.iter().enumerate() {
        let offset = u32::try_from(stream.len())
            .map_err(|_| Error::Param("plane stream exceeds 2^32 words".into()))?;
        let (mode, params, table) = picked[t];
        index.push(TileEntry {
            offset,
            mode,
            table: table as u8,
            params,
        });
        stream.extend_from_slice(s);
    }
    Ok(CodedPlane {
        grid,
        prob_bits,
        tail,
        tables,
        index,
        stream,
    })
}

fn table_of(hists: &[&[u64; 256]], prob_bits: u32) -> Result<FreqTable> {
    let mut sum = [0u64; 256];
    for h in hists {
        for s in 0..256 {
            sum[s] += h[s];
        }
    }
    FreqTable::from_counts(&sum, prob_bits)
}

fn table_bits(t: &FreqTable) -> f64 {
    let mut b = Vec::new();
    t.write(&mut b);
    8.0 * b.len() as f64
}

/// Lloyd iterations from an initial grouping: build a table per group, move
/// each tile to its cheapest (mode, table), repeat. Returns the cost and tables
/// of the last round, with `choices` assigned to them.
fn refine(
    choices: &mut [TileChoice],
    mut group: Vec<usize>,
    k: usize,
    prob_bits: u32,
) -> Result<(f64, Vec<FreqTable>)> {
    let mut result = (f64::INFINITY, Vec::new());
    for _ in 0..3 {
        let mut tables = Vec::with_capacity(k);
        for g in 0..k {
            let hs: Vec<&[u64; 256]> = choices
                .iter()
                .zip(&group)
                .filter(|(_, x)| **x == g)
                .map(|(c, _)| &c.cands[c.pick].2)
                .collect();
            if !hs.is_empty() {
                tables.push(table_of(&hs, prob_bits)?);
            }
        }
        let cost = assign(choices, &tables);
        let next: Vec<usize> = choices.iter().map(|c| c.table).collect();
        let settled = next == group;
        group = next;
        result = (cost, tables);
        if settled || k == 1 {
            break; // one table: tiles cannot move, only their modes settle
        }
    }
    Ok(result)
}

/// The starting table class of a mode: unpredicted tiles (lossless NONE,
/// lossy SPATIAL) in one, predicted or transformed tiles in the other.
fn family(m: Mode) -> usize {
    match m {
        Mode::None | Mode::Spatial => 0,
        _ => 1,
    }
}

/// Assign each tile a table (and settle its mode between the candidates);
/// returns the tables. Starts from one table, then one per mode family, then
/// splits the largest group by entropy while the total (tables included) falls.
fn choose_tables(
    choices: &mut [TileChoice],
    prob_bits: u32,
    max_tables: usize,
) -> Result<Vec<FreqTable>> {
    let (mut best_cost, mut best) = refine(choices, vec![0; choices.len()], 1, prob_bits)?;
    if max_tables >= 2 && choices.iter().any(|c| family(c.cands[c.pick].0) != 0) {
        let group = choices.iter().map(|c| family(c.cands[c.pick].0)).collect();
        let (cost, tables) = refine(choices, group, 2, prob_bits)?;
        if cost < best_cost {
            (best_cost, best) = (cost, tables);
        }
    }
    assign(choices, &best);
    while best.len() < max_tables {
        let k = best.len();
        let mut sizes = vec![0usize; k];
        for c in choices.iter() {
            sizes[c.table] += 1;
        }
        let big = (0..k).max_by_key(|&i| sizes[i]).unwrap();
        if sizes[big] < 16 {
            break;
        }
        let mut ents: Vec<(f64, usize)> = choices
            .iter()
            .enumerate()
            .filter(|(_, c)| c.table == big)
            .map(|(i, c)| (freq::entropy(&c.cands[c.pick].2), i))
            .collect();
        ents.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut group: Vec<usize> = choices.iter().map(|c| c.table).collect();
        for &(_, i) in &ents[ents.len() / 2..] {
            group[i] = k;
        }
        let (cost, tables) = refine(choices, group, k + 1, prob_bits)?;
        if cost < best_cost && tables.len() == k + 1 {
            (best_cost, best) = (cost, tables);
        } else {
            assign(choices, &best);
            break;
        }
    }
    rebuild_tables(choices, best.len(), prob_bits)
}

/// Rebuild `k` tables from the tiles assigned to them, so that every coded
/// symbol has a frequency, dropping tables no tile uses.
fn rebuild_tables(choices: &mut [TileChoice], k: usize, prob_bits: u32) -> Result<Vec<FreqTable>> {
    let mut out = Vec::with_capacity(k);
    let mut remap = vec![usize::MAX; k];
    for (g, slot) in remap.iter_mut().enumerate() {
        let hs: Vec<&[u64; 256]> = choices
            .iter()
            .filter(|c| c.table == g)
            .map(|c| &c.cands[c.pick].2)
            .collect();
        if !hs.is_empty() {
            *slot = out.len();
            out.push(table_of(&hs, prob_bits)?);
        }
    }
    for c in choices.iter_mut() {
        c.table = remap[c.table];
    }
    Ok(out)
}

/// The price, in bits, of a symbol a table cannot code: large enough that a
/// tile with one such symbol never wins, finite so that 0 × price = 0.
const UNCODABLE: f32 = 1e9;

/// Give each tile the cheapest (candidate, table) pair that can code it;
/// returns total bits including the tables.
fn assign(choices: &mut [TileChoice], tables: &[FreqTable]) -> f64 {
    // Bits per symbol for each table; infinite where a table cannot code it.
    let costs: Vec<[f32; 256]> = tables
        .iter()
        .map(|t| {
            let mut c = [UNCODABLE; 256];
            for (cs, &f) in c.iter_mut().zip(&t.freq) {
                if f > 0 {
                    *cs = (t.prob_bits as f64 - (f as f64).log2()) as f32;
                }
            }
            c
        })
        .collect();
    let mut total: f64 = tables.iter().map(table_bits).sum();
    for c in choices.iter_mut() {
        let mut best = (f32::INFINITY, c.pick, 0usize);
        for (ci, cand) in c.cands.iter().enumerate() {
            let h: [f32; 256] = std::array::from_fn(|s| cand.2[s] as f32);
            for (ti, tc) in costs.iter().enumerate() {
                // A dense dot product (vectorises); uncodable symbols cost UNCODABLE bits.
                let b: f32 = h.iter().zip(tc).map(|(a, b)| a * b).sum();
                if b < best.0 {
                    best = (b, ci, ti);
                }
            }
        }
        if best.0 < UNCODABLE {
            c.pick = best.1;
            c.table = best.2;
            total += best.0 as f64;
        } else {
            // No table covers this tile (possible only mid-search): price it
            // high so the search moves away from such a split.
            total += 1e12;
        }
    }
    total
}

/// Pick the narrowest tail width (and its base) that fits every lane's tail symbols.
/// Rebuilds tile `t`'s residuals into the second buffer (the first is scratch).
type ResidualFn<'a> = dyn Fn(usize, &mut Vec<u8>, &mut [u8]) + Sync + 'a;

fn choose_tail(grid: Grid, residual_tile: &ResidualFn<'_>) -> Tail {
    // Collect the symbols at each lane's last 16 positions, by distance from the end.
    let nt = grid.num_tiles();
    let seen: [[bool; 256]; 16] = (0..nt)
        .into_par_iter()
        .map_init(tile_scratch, |(tile, res), t| {
            residual_tile(t, tile, res);
            let n = grid.tile(t).n();
            let mut seen = [[false; 256]; 16];
            for l in 0..active_lanes(n) {
                let nl = lane_count(n, l);
                for (j, row) in seen.iter_mut().enumerate().take(nl.min(16)) {
                    row[res[lane_symbol(l, nl - 1 - j)] as usize] = true;
                }
            }
            seen
        })
        .reduce(
            || [[false; 256]; 16],
            |mut a, b| {
                for j in 0..16 {
                    for s in 0..256 {
                        a[j][s] |= b[j][s];
                    }
                }
                a
            },
        );
    for bits in 1..=8u8 {
        let count = 16 / bits as usize;
        let mut set = [false; 256];
        for row in seen.iter().take(count) {
            for s in 0..256 {
                set[s] |= row[s];
            }
        }
        if let Some(base) = circular_base(&set, 1 << bits) {
            return Tail { bits, base };
        }
    }
    Tail::BYTES
}

/// The start of the shortest circular run covering every set symbol, if it
/// is at most `span` long.
fn circular_base(set: &[bool; 256], span: usize) -> Option<u8> {
    let members: Vec<usize> = (0..256).filter(|&s| set[s]).collect();
    if members.is_empty() {
        return Some(0);
    }
    // The largest gap between consecutive members (circularly) is left out.
    let mut best = (0usize, members[0]);
    for (i, &m) in members.iter().enumerate() {
        let next = members[(i + 1) % members.len()];
        let gap = (next + 256 - m) % 256;
        let gap = if gap == 0 { 256 } else { gap };
        if gap > best.0 {
            best = (gap, next);
        }
    }
    let covered = 256 - best.0 + 1;
    (covered <= span).then_some(best.1 as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circular_base_finds_wrapping_runs() {
        let mut set = [false; 256];
        for s in [250usize, 255, 0, 3] {
            set[s] = true;
        }
        assert_eq!(circular_base(&set, 16), Some(250));
        assert_eq!(circular_base(&set, 9), None);
        assert_eq!(circular_base(&set, 10), Some(250));
        let mut one = [false; 256];
        one[7] = true;
        assert_eq!(circular_base(&one, 2), Some(7));
    }
}

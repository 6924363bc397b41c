//! The codec's stages, one per file, in pipeline order:
//!
//! * [`quant`]: float → k-bit integers with per-row scales (lossy, opt-in);
//! * [`tile`]: tiling and the rANS lane layout;
//! * [`predict`]: per-tile prediction modes;
//! * [`freq`]: frequency tables;
//! * [`rans`]: the interleaved rANS tile coder;
//! * [`float_split`]: lossless floats as a coded byte plane plus raw bytes;
//! * [`plane`]: one coded plane (mode and table choice, tile decode);
//! * [`encoder`] / [`decoder`]: whole tensors.

pub mod decoder;
pub mod encoder;
pub mod float_split;
pub mod freq;
pub mod plane;
pub mod predict;
pub mod quant;
pub mod rans;
pub mod tile;

use crate::codec::tile::Grid;

/// How a tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Bytes as they are.
    Raw,
    /// Lossless INT8/UINT8: one coded plane.
    Int8,
    /// Lossless F32/F16/BF16: a coded plane plus raw bytes.
    FloatSplit,
    /// k-bit integers with per-row f32 scales (lossy).
    Quant,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Int8 => "int8",
            Encoding::FloatSplit => "float-split",
            Encoding::Quant => "quant",
        }
    }

    pub fn parse(s: &str) -> Option<Encoding> {
        Some(match s {
            "raw" => Encoding::Raw,
            "int8" => Encoding::Int8,
            "float-split" => Encoding::FloatSplit,
            "quant" => Encoding::Quant,
            _ => return None,
        })
    }
}

/// The 2-D view of a tensor used for tiling: rank ≥ 2 is `[dim0, rest]` with
/// 64×64 tiles; rank 0 and 1 are 1-D with 4096-symbol tiles.
pub fn grid_for_shape(shape: &[usize]) -> Grid {
    let numel: usize = shape.iter().product();
    if shape.len() >= 2 { Grid::two_d(shape[0], numel / shape[0].max(1)) } else { Grid::one_d(numel) }
}

/// Number of elements, or `None` on overflow.
pub fn checked_numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

/// The checksum of decoded bytes.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

pub fn checksum_string(c: u64) -> String {
    format!("xxh3-64:{c:016x}")
}

pub fn parse_checksum(s: &str) -> Option<u64> {
    let hex = s.strip_prefix("xxh3-64:")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

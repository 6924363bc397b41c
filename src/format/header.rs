//! The JSON header of a `.wcodec` file (docs/FORMAT.md §3).

use serde::{Deserialize, Serialize};

/// A byte range of the data section (offsets are relative to its start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub offset: u64,
    pub len: u64,
}

/// The tables section of a coded plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesSection {
    pub offset: u64,
    pub len: u64,
    pub count: u32,
}

/// How lane tails are stored (see `codec::rans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailHeader {
    pub bits: u8,
    pub base: u8,
}

/// One plane of a tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PlaneHeader {
    /// A rANS-coded byte plane.
    Rans {
        role: String,
        rows: u64,
        cols: u64,
        tile: [u64; 2],
        prob_bits: u32,
        tail: TailHeader,
        tables: TablesSection,
        index: Section,
        stream: Section,
    },
    /// Bytes stored as they are.
    Raw { role: String, data: Section },
}

impl PlaneHeader {
    pub fn role(&self) -> &str {
        match self {
            PlaneHeader::Rans { role, .. } | PlaneHeader::Raw { role, .. } => role,
        }
    }
}

/// Quantisation facts of a `quant` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantHeader {
    pub bits: u32,
    /// SNR of the dequantised weights against the source, in dB (null if exact).
    pub snr_db: Option<f64>,
    /// Largest |w − w'| over the tensor.
    pub max_abs_err: f64,
    /// Σ w² over the tensor, so that SNRs can be pooled across tensors.
    pub signal: f64,
}

/// Facts of a `lossy` tensor (informative: the decoder does not need them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossyHeader {
    /// The encoder's nominal step relative to the tensor's RMS (Δ / rms).
    pub rel_step: f64,
    /// SNR of the decoded weights against the source, in dB (null if exact).
    pub snr_db: Option<f64>,
    /// Largest |w − w'| over the tensor.
    pub max_abs_err: f64,
    /// Σ w² over the tensor, so that SNRs can be pooled across tensors.
    pub signal: f64,
}

/// One tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorHeader {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub encoding: String,
    /// `xxh3-64:` and 16 hex digits: the checksum of the decoded bytes.
    pub checksum: String,
    pub planes: Vec<PlaneHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<QuantHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossy: Option<LossyHeader>,
}

/// The whole header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub data_len: u64,
    /// The source's `__metadata__`, passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub tensors: Vec<TensorHeader>,
}

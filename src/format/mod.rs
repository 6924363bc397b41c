//! The `.wcodec` container (docs/FORMAT.md): a fixed prefix, a JSON header and
//! a data section holding each tensor's tables, tile index, streams and raw bytes.

pub mod header;
pub mod reader;
pub mod writer;

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"WCODEC\x1a\n";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Bytes before the JSON header: magic, version, flags, header length.
pub const PREFIX_LEN: usize = 24;
/// The largest header a reader accepts.
pub const MAX_HEADER_LEN: u64 = 64 << 20;
/// Alignment of the data section and of each tensor's block in it.
pub const TENSOR_ALIGN: u64 = 64;
/// Alignment of each section inside a tensor's block.
pub const SECTION_ALIGN: u64 = 4;

pub use reader::{PlaneRef, TensorEntry, WcodecFile};
pub use writer::write_file;

pub(crate) fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

//! The embedded default sample: a `.wcodec` made by this project's encoder
//! from all-MiniLM-L6-v2 tensors (Apache-2.0), covering every encoding.
//! `wcodec decode` with no input decodes it. Rebuild it with
//! `cargo run --release --example make_sample -- MODEL.safetensors`.

/// The sample's bytes.
pub const SAMPLE: &[u8] = include_bytes!("../assets/sample.wcodec");
/// Where the sample lives in the repository.
pub const SAMPLE_PATH: &str = "assets/sample.wcodec";

//! Build the embedded default sample (`assets/sample.wcodec`) from
//! all-MiniLM-L6-v2: a few real tensors in every encoding, under 2 MB.
//!
//!     scripts/fetch_minilm.sh
//!     cargo run --release --example make_sample -- ~/.cache/wcodec/all-MiniLM-L6-v2/model.safetensors assets/sample.wcodec

use wcodec::codec::decoder::f32_to_bytes;
use wcodec::codec::encoder::{EncodeOptions, encode_tensor, floats_to_f32};
use wcodec::codec::quant::quantize;
use wcodec::dtype::DType;
use wcodec::error::Location;
use wcodec::io::safetensors::SafeInput;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: make_sample MODEL.safetensors OUT.wcodec"
    );
    let m = SafeInput::open(std::path::Path::new(&args[1]))?;
    let get = |name: &str| {
        m.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| anyhow::anyhow!("{name} missing"))
    };
    let lossless = EncodeOptions::default();
    let mut out = Vec::new();
    // raw (int64 ids) and float-split F32 (small 1-D tensors may fall back to raw)
    for name in [
        "embeddings.position_ids",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    ] {
        let t = get(name)?;
        out.push(encode_tensor(
            &t.name,
            t.dtype,
            &t.shape,
            m.data(t),
            &lossless,
        )?);
    }
    // float-split: F32 as shipped, and cast to BF16 and F16
    let q = get("encoder.layer.0.attention.self.query.weight")?;
    out.push(encode_tensor(
        &q.name,
        q.dtype,
        &q.shape,
        m.data(q),
        &lossless,
    )?);
    for (name, dtype) in [
        ("embeddings.position_embeddings.weight", DType::BF16),
        ("encoder.layer.0.attention.self.key.weight", DType::F16),
    ] {
        let t = get(name)?;
        let v = floats_to_f32(t.dtype, m.data(t));
        out.push(encode_tensor(
            &t.name,
            dtype,
            &t.shape,
            &f32_to_bytes(&v, dtype),
            &lossless,
        )?);
    }
    // int8: a per-row absmax INT8 tensor with its scales, coded losslessly
    let v = get("encoder.layer.0.attention.self.value.weight")?;
    let w = floats_to_f32(v.dtype, m.data(v));
    let qz = quantize(&w, v.shape[0], v.shape[1], 8, &Location::default())?;
    out.push(encode_tensor(
        &v.name,
        DType::I8,
        &v.shape,
        &qz.q,
        &lossless,
    )?);
    let scales: Vec<u8> = qz.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    out.push(encode_tensor(
        &format!("{}.scale", v.name),
        DType::F32,
        &[v.shape[0]],
        &scales,
        &lossless,
    )?);
    // quant: 4-bit and 8-bit
    for (name, bits) in [
        ("encoder.layer.0.intermediate.dense.weight", 4),
        ("encoder.layer.0.attention.output.dense.weight", 8),
    ] {
        let t = get(name)?;
        let o = EncodeOptions {
            quant_bits: Some(bits),
            ..Default::default()
        };
        out.push(encode_tensor(&t.name, t.dtype, &t.shape, m.data(t), &o)?);
    }
    let mut meta = m.metadata.clone().unwrap_or_default();
    meta.insert(
        "source".into(),
        "all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0): a few tensors, cast or quantised by wcodec's make_sample".into(),
    );
    let size = wcodec::format::write_file(std::path::Path::new(&args[2]), Some(meta), &out)?;
    println!("wrote {} ({size} bytes, {} tensors)", args[2], out.len());
    anyhow::ensure!(size < 2_000_000, "the sample must stay under 2 MB");
    Ok(())
}

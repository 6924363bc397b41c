//! all-MiniLM-L6-v2 through the GPU library API, against the CPU reference:
//! lossless (float-split F32) and 8-bit quantised (dequantised to F32 on the
//! GPU). The model is found at `$WCODEC_MINILM` or where
//! `scripts/fetch_minilm.sh` puts it; without it the test prints a skip line.

use std::path::PathBuf;

use wcodec::codec::decoder::{decode_tensor, render};
use wcodec::codec::encoder::EncodeOptions;
use wcodec::format::WcodecFile;
use wcodec::wgpu::*;

fn model() -> Option<PathBuf> {
    let cands = [
        std::env::var_os("WCODEC_MINILM").map(PathBuf::from),
        std::env::var_os("WCODEC_CACHE")
            .map(|c| PathBuf::from(c).join("all-MiniLM-L6-v2/model.safetensors")),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/wcodec/all-MiniLM-L6-v2/model.safetensors")),
    ];
    cands.into_iter().flatten().find(|p| p.is_file())
}

#[test]
fn minilm_lossless_and_quantised() {
    let Some(m) = model() else {
        eprintln!(
            "SKIP: all-MiniLM-L6-v2 not found (set WCODEC_MINILM or run scripts/fetch_minilm.sh)"
        );
        return;
    };
    let ctx = match GpuContext::new(&ContextOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIP: no GPU adapter ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, opts) in [
        ("lossless", EncodeOptions::default()),
        (
            "q8",
            EncodeOptions {
                quant_bits: Some(8),
                ..Default::default()
            },
        ),
    ] {
        let path = dir.path().join(format!("{name}.wcodec"));
        wcodec::cpu::encode::encode_file(&m, &path, &opts, &|_| {}).unwrap();
        let file = WcodecFile::open(&path).unwrap();
        let mut dec = GpuDecoder::new(&ctx, GpuDecodeOptions::default()).unwrap();
        let (got, rep) = dec.decode_to_buffers(&file).unwrap();
        eprintln!(
            "{name}: {} tensors, {} output bytes, {:?}",
            rep.tensors, rep.output_bytes, rep.variants
        );
        let mut k = 0;
        for (t, e) in file.tensors.iter().enumerate() {
            for want in render(e, decode_tensor(&file, t).unwrap(), None) {
                assert!(
                    read_tensor(&ctx, &got[k]).unwrap() == want,
                    "{name}: tensor {} differs",
                    got[k].name
                );
                k += 1;
            }
        }
        assert_eq!(k, got.len());
    }
}

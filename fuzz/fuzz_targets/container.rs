//! Parse and decode arbitrary bytes as a `.wcodec` file. Must never panic,
//! hang, or allocate beyond what the input's size justifies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = wcodec::format::WcodecFile::from_bytes(data.to_vec()) {
        for i in 0..f.tensors.len() {
            if let Ok(out) = wcodec::codec::decoder::decode_tensor(&f, i) {
                // A tensor that decodes must match its checksum (decode_tensor checks)
                // and render to every output dtype without panicking.
                for want in [None, Some(wcodec::dtype::DType::F16), Some(wcodec::dtype::DType::I8)] {
                    let _ = wcodec::codec::decoder::render(&f.tensors[i], out.clone(), want);
                }
            }
        }
    }
});

//! The SCGI header parser, on whole and on every cut of the input.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    let _ = proto_scgi::header_len(&data, 64 << 10);
    if let Ok(Some(header)) = proto_scgi::parse(&data, 64 << 10) {
        assert!(header.len <= data.len());
    }
    let _ = proto_scgi::parse(&data.slice(..data.len() / 2), 64);
});

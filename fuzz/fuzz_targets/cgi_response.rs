//! The parser of a CGI script's output.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    if let Ok(Some(head)) = proto_cgi::parse_head(&data) {
        assert!(head.len <= data.len());
        let _ = head.kind();
    }
});

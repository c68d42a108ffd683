//! The uwsgi packet parser, on whole and on a cut of the input: a packet that parses whole
//! asks for more at any cut before its end, never fails there.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    let _ = proto_uwsgi::packet_len(&data, 64 << 10);
    let cut = data.slice(..data.len() / 2);
    if let Ok(Some(header)) = proto_uwsgi::parse(&data, 64 << 10) {
        assert!(header.len <= data.len());
        if cut.len() < header.len {
            assert!(matches!(proto_uwsgi::parse(&cut, 64 << 10), Ok(None)));
        }
    }
    let _ = proto_uwsgi::parse(&cut, 64);
});

//! The FastCGI record decoder and the name-value pair decoder, fed in pieces as a socket would.
#![no_main]

use bytes::{Bytes, BytesMut};
use gateway_core::{CgiParams, PathMode, Protocol};
use libfuzzer_sys::fuzz_target;
use proto_fastcgi::{ParamsDecoder, RecordDecoder, RecordType, decode_pairs};
use tokio_util::codec::Decoder as _;

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the stream is cut into reads.
    let Some((&cut, data)) = data.split_first() else { return };
    let step = usize::from(cut).max(1);
    let mut buf = BytesMut::new();
    let mut params = ParamsDecoder::new(64 << 10);
    let mut env = CgiParams::new(Protocol::FastCgi);
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        while let Ok(Some(record)) = RecordDecoder.decode(&mut buf) {
            match record.kind {
                RecordType::Params if !record.content.is_empty() => {
                    let _ = params.feed(record.content, |n, v| {
                        let _ = env.push(n, v);
                    });
                }
                RecordType::GetValues => {
                    let _ = decode_pairs(record.content);
                }
                _ => {}
            }
        }
    }
    let _ = decode_pairs(Bytes::copy_from_slice(data));
    let _ = env.finish(PathMode::Resplit);
});

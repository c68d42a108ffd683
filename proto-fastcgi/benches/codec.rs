//! The codec's hot paths: decoding a request as nginx sends it (records, pairs, environ), and
//! encoding a 64 KB response; and a hostile web server's 1 MiB head of tiny pairs.
//!
//! `cargo bench -p proto-fastcgi`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway_core::{CgiParams, PathMode, Protocol, Response, write_response_head};
use proto_fastcgi::{ParamsDecoder, RecordDecoder, RecordType, client, put_stream, put_stream_end};
use tokio_util::codec::Decoder as _;

/// What nginx 1.22's stock fastcgi_params sends for a browser's GET, with its headers.
fn nginx_request() -> BytesMut {
    let params: &[(&[u8], &[u8])] = &[
        (b"QUERY_STRING", b"page=2&sort=desc"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"SCRIPT_NAME", b"/api/items"),
        (b"REQUEST_URI", b"/api/items?page=2&sort=desc"),
        (b"DOCUMENT_URI", b"/api/items"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
        (b"REMOTE_ADDR", b"192.0.2.10"),
        (b"REMOTE_PORT", b"51234"),
        (b"REMOTE_USER", b""),
        (b"SERVER_ADDR", b"192.0.2.1"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.org"),
        (b"REDIRECT_STATUS", b"200"),
        (b"HTTP_HOST", b"example.org"),
        (
            b"HTTP_USER_AGENT",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            b"HTTP_ACCEPT",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
        (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br"),
        (b"HTTP_CONNECTION", b"keep-alive"),
        (
            b"HTTP_COOKIE",
            b"session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
        ),
        (b"HTTP_UPGRADE_INSECURE_REQUESTS", b"1"),
    ];
    let mut wire = BytesMut::new();
    client::put_request(&mut wire, 1, false, params, b"");
    wire
}

/// 1 MiB of params of tiny distinct names (`0`, `1`, ... in hex, empty values), in records
/// of 64 KiB, as a hostile web server may send them.
fn mebibyte_of_names() -> BytesMut {
    let mut names = Vec::new();
    let mut size = 0;
    for i in 0.. {
        let name = format!("{i:X}");
        size += name.len() + 2;
        if size > 1 << 20 {
            break;
        }
        names.push((name.into_bytes(), Vec::new()));
    }
    names.push((b"REQUEST_URI".to_vec(), b"/".to_vec()));
    let pairs: Vec<(&[u8], &[u8])> = names.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    let mut wire = BytesMut::new();
    client::put_request(&mut wire, 1, false, &pairs, b"");
    wire
}

/// Records, then pairs, then the environ: what the driver does before calling the app.
fn decode(wire: &BytesMut) -> usize {
    let mut buf = wire.clone();
    let mut params = CgiParams::new(Protocol::FastCgi);
    let mut decoder = ParamsDecoder::new(2 << 20);
    while let Ok(Some(record)) = RecordDecoder.decode(&mut buf) {
        if record.kind == RecordType::Params && !record.content.is_empty() {
            let _ = decoder.feed(record.content, |n, v| {
                let _ = params.push(n, v);
            });
        }
    }
    params.finish(PathMode::Resplit).map_or(0, |env| env.len())
}

fn encode(body: &Bytes, out: &mut BytesMut) -> usize {
    out.clear();
    let res = Response::new(200)
        .with_header("Content-Type", "application/octet-stream")
        .with_header("Content-Length", "65536");
    let mut head = BytesMut::with_capacity(128);
    let _ = write_response_head(&res, &mut head);
    put_stream(out, RecordType::Stdout, 1, &head);
    put_stream(out, RecordType::Stdout, 1, body);
    put_stream_end(out, RecordType::Stdout, 1);
    out.len()
}

fn benches(c: &mut Criterion) {
    let wire = nginx_request();
    let mut group = c.benchmark_group("fastcgi");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("decode nginx GET", |b| b.iter(|| decode(black_box(&wire))));
    let body = Bytes::from(vec![b'x'; 64 << 10]);
    let mut out = BytesMut::with_capacity(70 << 10);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("encode 64 KB response", |b| {
        b.iter(|| encode(black_box(&body), &mut out))
    });
    let wire = mebibyte_of_names();
    assert!(decode(&wire) > 100_000);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.sample_size(10);
    group.bench_function("decode 1 MiB of names", |b| {
        b.iter(|| decode(black_box(&wire)))
    });
    group.finish();
}

criterion_group!(codec, benches);
criterion_main!(codec);

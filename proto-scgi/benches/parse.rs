//! The SCGI header parser on what nginx 1.22's stock scgi_params sends for a browser's GET, and
//! on a 1 MiB header of tiny names.
//!
//! `cargo bench -p proto-scgi`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn nginx_request() -> Bytes {
    let pairs: &[(&str, &str)] = &[
        ("CONTENT_LENGTH", "0"),
        ("SCGI", "1"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/api/items?page=2&sort=desc"),
        ("QUERY_STRING", "page=2&sort=desc"),
        ("CONTENT_TYPE", ""),
        ("DOCUMENT_URI", "/api/items"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SCGI", "1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "192.0.2.10"),
        ("REMOTE_PORT", "51234"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "example.org"),
        ("HTTP_HOST", "example.org"),
        (
            "HTTP_USER_AGENT",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "HTTP_ACCEPT",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
        ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br"),
        ("HTTP_CONNECTION", "keep-alive"),
        (
            "HTTP_COOKIE",
            "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
        ),
    ];
    let mut header = Vec::new();
    for (n, v) in pairs
        .iter()
        .filter(|(n, _)| *n != "SCGI")
        .chain([&("SCGI", "1")])
    {
        header.extend_from_slice(n.as_bytes());
        header.push(0);
        header.extend_from_slice(v.as_bytes());
        header.push(0);
    }
    let mut out = format!("{}:", header.len()).into_bytes();
    out.extend_from_slice(&header);
    out.push(b',');
    out.into()
}

fn benches(c: &mut Criterion) {
    let wire = nginx_request();
    assert!(proto_scgi::parse(&wire, 64 << 10).unwrap().is_some());
    let mut group = c.benchmark_group("scgi");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("parse nginx GET", |b| {
        b.iter(|| proto_scgi::parse(black_box(&wire), 64 << 10).map(|h| h.map(|h| h.environ.len())))
    });
    group.finish();

    // A hostile web server's 1 MiB header of tiny distinct names: O(n) in the pairs.
    let mut header = b"CONTENT_LENGTH\x000\x00SCGI\x001\x00".to_vec();
    for i in 0.. {
        let pair = format!("{i:X}\0\0");
        if header.len() + pair.len() > 1 << 20 {
            break;
        }
        header.extend_from_slice(pair.as_bytes());
    }
    let mut wire = format!("{}:", header.len()).into_bytes();
    wire.extend_from_slice(&header);
    wire.push(b',');
    let wire = Bytes::from(wire);
    assert!(proto_scgi::parse(&wire, 2 << 20).unwrap().is_some());
    let mut group = c.benchmark_group("scgi");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("parse 1 MiB of names", |b| {
        b.iter(|| proto_scgi::parse(black_box(&wire), 2 << 20).map(|h| h.map(|h| h.environ.len())))
    });
    group.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);

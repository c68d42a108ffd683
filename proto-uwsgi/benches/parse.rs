//! The uwsgi packet parser on what nginx 1.22's stock uwsgi_params sends for a browser's GET,
//! and on the largest vars block (65,535 bytes) of tiny names.
//!
//! `cargo bench -p proto-uwsgi`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn nginx_request() -> Bytes {
    let pairs: &[(&str, &str)] = &[
        ("QUERY_STRING", "page=2&sort=desc"),
        ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("REQUEST_URI", "/api/items?page=2&sort=desc"),
        ("PATH_INFO", "/api/items"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
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
    proto_uwsgi::client::packet(
        0,
        0,
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    )
    .into()
}

fn benches(c: &mut Criterion) {
    let wire = nginx_request();
    assert!(proto_uwsgi::parse(&wire, 64 << 10).unwrap().is_some());
    let mut group = c.benchmark_group("uwsgi");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("parse nginx GET", |b| {
        b.iter(|| {
            proto_uwsgi::parse(black_box(&wire), 64 << 10).map(|h| h.map(|h| h.environ.len()))
        })
    });

    // A hostile web server's largest block of tiny distinct names: O(n) in the pairs.
    let names: Vec<String> = (0..)
        .map(|i| format!("{i:X}"))
        .scan(0usize, |size, n| {
            *size += 4 + n.len();
            (*size <= usize::from(u16::MAX)).then_some(n)
        })
        .collect();
    let wire = Bytes::from(proto_uwsgi::client::packet(
        0,
        0,
        names.iter().map(|n| (n.as_bytes(), &b""[..])),
    ));
    assert!(proto_uwsgi::parse(&wire, 64 << 10).unwrap().is_some());
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("parse 64 KiB of names", |b| {
        b.iter(|| {
            proto_uwsgi::parse(black_box(&wire), 64 << 10).map(|h| h.map(|h| h.environ.len()))
        })
    });
    group.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);

//! Building an environ from a front server's pairs ([`CgiParams`]) at the sizes a hostile front
//! server can send: 1 MiB of distinct tiny names, and 1 MiB of one repeated `HTTP_*` name, next
//! to what nginx sends for a browser's GET.
//!
//! `cargo bench -p gateway-core --bench params`

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway_core::{CgiParams, PathMode, Protocol};

/// The pairs of `text` (`name NUL value NUL` repeated), as slices of it, as a parser yields them.
fn split(text: Bytes) -> Vec<(Bytes, Bytes)> {
    let mut fields = Vec::new();
    let mut at = 0;
    while let Some(nul) = text[at..].iter().position(|&b| b == 0) {
        fields.push(text.slice(at..at + nul));
        at += nul + 1;
    }
    fields
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

/// Pairs made by `pair(i)` until 1 MiB is full.
fn mebibyte(pair: impl Fn(usize) -> (String, String)) -> Vec<(Bytes, Bytes)> {
    let mut text = Vec::with_capacity(1 << 20);
    for i in 0.. {
        let (n, v) = pair(i);
        if text.len() + n.len() + v.len() + 2 > 1 << 20 {
            break;
        }
        text.extend_from_slice(n.as_bytes());
        text.push(0);
        text.extend_from_slice(v.as_bytes());
        text.push(0);
    }
    split(text.into())
}

fn nginx_get() -> Vec<(Bytes, Bytes)> {
    let pairs = [
        ("QUERY_STRING", "page=2&sort=desc"),
        ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("SCRIPT_NAME", "/api/items"),
        ("REQUEST_URI", "/api/items?page=2&sort=desc"),
        ("DOCUMENT_URI", "/api/items"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "192.0.2.10"),
        ("REMOTE_PORT", "51234"),
        ("SERVER_ADDR", "192.0.2.1"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "example.org"),
        ("REDIRECT_STATUS", "200"),
        ("HTTP_HOST", "example.org"),
        (
            "HTTP_USER_AGENT",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0)",
        ),
        ("HTTP_ACCEPT", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br"),
        ("HTTP_CONNECTION", "keep-alive"),
        ("HTTP_COOKIE", "session=8f14e45fceea167a5a36dedd4bea2543"),
    ];
    pairs
        .iter()
        .map(|(n, v)| {
            (
                Bytes::from_static(n.as_bytes()),
                Bytes::from_static(v.as_bytes()),
            )
        })
        .collect()
}

/// What a front-end does with the pairs before calling the app.
fn build(pairs: &[(Bytes, Bytes)]) -> usize {
    let mut params = CgiParams::new(Protocol::Scgi);
    for (n, v) in pairs {
        let _ = params.push(n, v);
    }
    params.finish(PathMode::Resplit).map_or(0, |env| env.len())
}

fn benches(c: &mut Criterion) {
    let cases = [
        ("nginx GET", nginx_get()),
        // ~150k names: `0`, `1`, ... `1FFFF` in hex, empty values.
        (
            "1 MiB of distinct names",
            mebibyte(|i| (format!("{i:X}"), String::new())),
        ),
        // ~116k times `HTTP_A: x`, joined into one value.
        (
            "1 MiB of one repeated HTTP_ name",
            mebibyte(|_| ("HTTP_A".into(), "x".into())),
        ),
    ];
    let mut group = c.benchmark_group("params");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, pairs) in &cases {
        group.throughput(Throughput::Elements(pairs.len() as u64));
        group.bench_function(*name, |b| b.iter(|| build(black_box(pairs))));
    }
    group.finish();
}

criterion_group!(params, benches);
criterion_main!(params);

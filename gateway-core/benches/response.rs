//! The CGI-format response of `hello` (`bench/run.sh`'s app) made ready to send: through
//! [`ResponseWriter`], next to the code it replaced (head into a buffer, then the whole
//! body appended), measured in the same run. Framed is FastCGI's shape (each piece copied
//! into the record buffer, here without record headers); joined is SCGI's and CGI's.
//!
//! `cargo bench -p gateway-core --bench response`

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use gateway_core::{Response, ResponseWriter, write_response_head};

fn hello() -> Response {
    Response::new(200)
        .with_header("Content-Type", "text/plain")
        .with_header("Content-Length", "14")
        .with_body(Bytes::from_static(b"Hello, World!\n"))
}

/// The writer's loop as a front-end runs it, for a body that is ready at once.
fn through_writer(res: Response, mut piece: impl FnMut(Bytes), framed: bool) {
    let (mut w, mut body) = ResponseWriter::new(res, false);
    loop {
        if framed {
            std::iter::from_fn(|| w.poll_transmit()).for_each(&mut piece);
        } else {
            std::iter::from_fn(|| w.poll_write()).for_each(&mut piece);
        }
        if w.is_done() {
            return;
        }
        match body.chunk().now_or_never() {
            Some(Ok(Some(chunk))) => w.push(chunk),
            _ => w.end(),
        }
    }
}

/// What SCGI did before: the head, then the whole body appended, one buffer.
fn before_joined(res: Response) -> Bytes {
    let mut head = BytesMut::with_capacity(256);
    let _ = write_response_head(&res, &mut head);
    let body = res.body;
    if let Some(Ok(data)) = body.to_bytes().now_or_never() {
        head.extend_from_slice(&data);
    }
    head.freeze()
}

/// What FastCGI did before: the head and the whole body copied into the record buffer.
fn before_framed(res: Response) -> BytesMut {
    let mut head = BytesMut::with_capacity(256);
    let _ = write_response_head(&res, &mut head);
    let body = res.body;
    let mut buf = BytesMut::with_capacity(head.len() + 64);
    buf.extend_from_slice(&head);
    if let Some(Ok(data)) = body.to_bytes().now_or_never() {
        buf.extend_from_slice(&data);
    }
    buf
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("response/hello");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("joined/before", |b| {
        b.iter(|| before_joined(black_box(hello())))
    });
    group.bench_function("joined/writer", |b| {
        b.iter(|| {
            let mut out = None;
            through_writer(black_box(hello()), |bytes| out = Some(bytes), false);
            out
        })
    });
    group.bench_function("framed/before", |b| {
        b.iter(|| before_framed(black_box(hello())))
    });
    group.bench_function("framed/writer", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(512);
            through_writer(black_box(hello()), |p| buf.extend_from_slice(&p), true);
            buf
        })
    });
    group.finish();
}

criterion_group!(response, benches);
criterion_main!(response);

//! One kept FastCGI connection end to end, in memory: a request as nginx sends it goes in, the
//! response comes out, through the driver and the connection state machine (no socket, so
//! the figure is the crate's own work per request, not the kernel's).
//!
//! `cargo bench -p proto-fastcgi --bench connection`

use std::sync::Arc;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use gateway_core::{App, Body, Environ, Response};
use proto_fastcgi::{FastCgiConfig, RecordDecoder, RecordType, client, serve_connection};
use tokio::io::{AsyncWriteExt as _, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

struct Hello;

impl App for Hello {
    async fn call(&self, _env: Environ, _body: Body) -> Response {
        Response::text(200, "Hello, world!")
    }
}

fn request() -> BytesMut {
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b""),
        (b"REQUEST_URI", b"/hello"),
        (b"DOCUMENT_URI", b"/hello"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_ADDR", b"127.0.0.1"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"),
        (b"HTTP_USER_AGENT", b"wrk"),
    ];
    let mut wire = BytesMut::new();
    client::put_request(&mut wire, 1, true, params, b"");
    wire
}

struct Client {
    write: WriteHalf<DuplexStream>,
    frames: FramedRead<ReadHalf<DuplexStream>, RecordDecoder>,
}

impl Client {
    async fn round_trip(&mut self, wire: &[u8]) {
        self.write.write_all(wire).await.expect("write");
        loop {
            let record = self.frames.next().await.expect("open").expect("valid");
            if record.kind == RecordType::EndRequest {
                return;
            }
        }
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let app = Arc::new(Hello);
    let cfg = Arc::new(FastCgiConfig::default());
    rt.spawn(serve_connection(ours, app, cfg, CancellationToken::new()));
    let (read, write) = tokio::io::split(theirs);
    let mut client = Client {
        write,
        frames: FramedRead::new(read, RecordDecoder),
    };
    let wire = request();
    c.bench_function("keep-conn request, in memory", |b| {
        b.iter(|| rt.block_on(client.round_trip(&wire)))
    });
}

criterion_group!(connection, benches);
criterion_main!(connection);

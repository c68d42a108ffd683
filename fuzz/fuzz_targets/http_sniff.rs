//! The smuggling watch (proto-http's raw-head sniffer) held against hyper, differentially.
//!
//! The input builds a pipeline of requests (plain, Content-Length, chunked with extensions
//! and trailers of any length, CL+TE, repeated Content-Length, empty lines before a head,
//! bodies that hold other heads, raw bytes, a byte changed anywhere) and how to cut it into
//! reads. hyper's own server reads the pipeline over an in-memory pipe and names every
//! request it serves; the watch reads it once in those cuts and once a byte at a time. What
//! must hold: every request hyper serves is one whose head the watch saw, in the same order,
//! until the request the watch refuses (if any), and the cuts change nothing.
//!
//! Input format (a byte past the end reads as 0): the number of requests (1 + b % 4); per
//! request an op byte (`% 16 == 15`: that many raw bytes follow instead; `== 14`: empty lines
//! first; bit 4: HTTP/1.0; bit 5: GET), the framing (`% 8`), the body (bit 0 and depth < 2:
//! a nested pipeline, else a length and that many bytes), the Content-Length skew, chunk
//! shapes, and a byte to change; the bytes left seed the cuts.
#![no_main]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// proto-http's limits (`HttpConfig::default`).
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 100;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

struct Builder {
    next_id: u32,
}

impl Builder {
    fn pipeline(&mut self, inp: &mut Input<'_>, depth: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..1 + inp.byte() % 4 {
            self.request(inp, depth, &mut out);
        }
        out
    }

    fn request(&mut self, inp: &mut Input<'_>, depth: u8, out: &mut Vec<u8>) {
        let op = inp.byte();
        if op % 16 == 15 {
            let n = usize::from(inp.byte());
            out.extend_from_slice(inp.bytes(n));
            return;
        }
        let mut req = Vec::new();
        if op % 16 == 14 {
            req.extend_from_slice(b"\r\n\n");
        }
        let version = if op & 0x10 != 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        let method = if op & 0x20 != 0 { "GET" } else { "POST" };
        self.next_id += 1;
        req.extend_from_slice(
            format!("{method} /{} {version}\r\nHost: x\r\n", self.next_id).as_bytes(),
        );
        let framing = inp.byte() % 8;
        let shape = inp.byte();
        let body = if shape & 1 == 1 && depth < 2 {
            self.pipeline(inp, depth + 1)
        } else {
            let n = usize::from(inp.byte());
            inp.bytes(n).to_vec()
        };
        let skew = inp.byte();
        let cl = match skew & 0xf0 {
            0xf0 => (body.len() as i64 + i64::from(skew & 7) - 3).max(0),
            _ => body.len() as i64,
        };
        let chunked = |inp: &mut Input<'_>, req: &mut Vec<u8>| chunked_body(inp, &body, req);
        match framing {
            0 => req.extend_from_slice(b"\r\n"),
            1 | 7 => {
                if framing == 7 {
                    req.extend_from_slice(b"Connection: keep-alive\r\n");
                }
                req.extend_from_slice(format!("Content-Length: {cl}\r\n\r\n").as_bytes());
                req.extend_from_slice(&body);
            }
            2 => {
                req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                chunked(inp, &mut req);
            }
            3 => {
                req.extend_from_slice(
                    format!("Content-Length: {cl}\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .as_bytes(),
                );
                chunked(inp, &mut req);
            }
            4 => {
                req.extend_from_slice(
                    format!("Transfer-Encoding: chunked\r\nContent-Length: {cl}\r\n\r\n")
                        .as_bytes(),
                );
                chunked(inp, &mut req);
            }
            5 => {
                req.extend_from_slice(
                    format!("Content-Length: {cl}\r\nContent-Length: {cl}\r\n\r\n").as_bytes(),
                );
                req.extend_from_slice(&body);
            }
            _ => {
                req.extend_from_slice(
                    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                chunked(inp, &mut req);
            }
        }
        let change = inp.byte();
        if change & 0x80 != 0 && !req.is_empty() {
            let at = usize::from(u16::from_le_bytes([inp.byte(), inp.byte()])) % req.len();
            req[at] = inp.byte();
        }
        out.extend_from_slice(&req);
    }
}

/// A chunked body carrying `data` in its first chunk, then a few more, extensions (up to
/// 20 KB, past hyper's 16 KB cap) and trailers.
fn chunked_body(inp: &mut Input<'_>, data: &[u8], out: &mut Vec<u8>) {
    let shape = inp.byte();
    let mut chunks = vec![data.to_vec()];
    for _ in 0..shape % 3 {
        let n = usize::from(inp.byte() % 16);
        chunks.push(inp.bytes(n).to_vec());
    }
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        let size = match shape & 0x08 {
            0 => format!("{:x}", chunk.len()),
            _ => format!("00{:X}", chunk.len()),
        };
        out.extend_from_slice(size.as_bytes());
        line_tail(inp, out);
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.push(b'0');
    line_tail(inp, out);
    for _ in 0..(shape >> 4) % 3 {
        let n = usize::from(inp.byte()) * 80;
        out.extend_from_slice(b"X-Trailer: ");
        out.extend(std::iter::repeat_n(b'b', n));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The rest of a chunk-size line: maybe spaces, maybe an extension (up to 20 KB), its CRLF.
fn line_tail(inp: &mut Input<'_>, out: &mut Vec<u8>) {
    let tail = inp.byte();
    if tail & 1 != 0 {
        out.extend_from_slice(b" \t");
    }
    if tail & 2 != 0 {
        let n = usize::from(inp.byte()) * 80;
        out.extend_from_slice(b";ext=");
        out.extend(std::iter::repeat_n(b'a', n));
    }
    out.extend_from_slice(b"\r\n");
}

/// Cuts `n` bytes into reads, from `seed`.
fn cuts(seed: &[u8], n: usize) -> Vec<usize> {
    let mut state = seed.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let (mut at, mut out) = (0, Vec::new());
    while at < n {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let len = 1 + (state >> 33) as usize % (1 << ((state >> 20) % 15));
        at = (at + len).min(n);
        out.push(at);
    }
    out
}

/// The request the watch refuses, if any, and how many heads it saw.
fn refused(v: &proto_http::Verdict, heads: usize) -> Option<usize> {
    (0..=heads + 1).find(|&i| v.refuses(i))
}

/// The targets of the requests hyper serves, in order, reading `stream` in `ends` cuts.
fn hyper_serves(stream: &[u8], ends: &[usize]) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let log = seen.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            log.lock().unwrap().push(req.uri().to_string());
            async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .max_headers(MAX_HEADERS)
            .max_buf_size(MAX_HEAD)
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let (mut rd, mut wr) = tokio::io::split(client);
        let write = async {
            let mut from = 0;
            for &end in ends {
                if wr.write_all(&stream[from..end]).await.is_err() {
                    break;
                }
                from = end;
            }
            let _ = wr.shutdown().await;
        };
        let read = async {
            let _ = rd.read_to_end(&mut Vec::new()).await;
        };
        let _ = tokio::join!(conn, write, read);
    });
    Arc::try_unwrap(seen)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}

/// The request target of the head that begins at `start`, as hyper would print it.
fn target(stream: &[u8], start: usize) -> Option<String> {
    let line = stream[start..].split(|&b| b == b'\n').next()?;
    let raw = line.split(|&b| b == b' ').nth(1)?;
    http::Uri::try_from(raw).ok().map(|u| u.to_string())
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let stream = Builder { next_id: 0 }.pipeline(&mut inp, 0);
    let ends = cuts(inp.0, stream.len());
    if std::env::var_os("HTTP_SNIFF_SHOW").is_some() {
        eprintln!(
            "pipeline {:?}\ncut at {ends:?}",
            String::from_utf8_lossy(&stream)
        );
    }

    // The watch, in the cuts.
    let (mut cut, verdict) = proto_http::Sniffed::new((), MAX_HEAD);
    let mut from = 0;
    for &end in &ends {
        cut.feed(&stream[from..end]);
        from = end;
    }
    let by_cuts = (cut.heads(), refused(&verdict, cut.heads()));

    // The watch, a byte at a time: where each head begins.
    let (mut bytewise, verdict) = proto_http::Sniffed::new((), MAX_HEAD);
    let (mut starts, mut candidate) = (Vec::new(), 0);
    for (at, &b) in stream.iter().enumerate() {
        if bytewise.at_head_start() && !matches!(b, b'\r' | b'\n') {
            candidate = at;
        }
        let before = bytewise.heads();
        bytewise.feed(&[b]);
        if bytewise.heads() > before {
            starts.push(candidate);
        }
    }
    let refused_at = refused(&verdict, bytewise.heads());
    assert_eq!(
        by_cuts,
        (bytewise.heads(), refused_at),
        "the cuts changed the watch"
    );

    let served = hyper_serves(&stream, &ends);
    for (i, uri) in served.iter().enumerate() {
        if refused_at.is_some_and(|r| r <= i) {
            break;
        }
        let Some(&start) = starts.get(i) else {
            panic!(
                "hyper served request {i} ({uri}); the watch saw {} heads and refused none",
                starts.len()
            );
        };
        assert_eq!(
            target(&stream, start).as_deref(),
            Some(uri.as_str()),
            "request {i}"
        );
    }
});

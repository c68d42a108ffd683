//! The uwsgi driver over loopback sockets: a request byte for byte, each malformation while an
//! honest neighbour finishes, limits, streaming, backpressure and cancellation.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::{App, Body, Environ, Response};
use proto_uwsgi::{UwsgiConfig, client, serve_connection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

struct TestApp {
    dropped: mpsc::UnboundedSender<()>,
}

struct OnDrop(mpsc::UnboundedSender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl App for TestApp {
    async fn call(&self, env: Environ, body: Body) -> Response {
        match env.path_info() {
            b"/echo" => match body.to_bytes().await {
                Ok(data) => Response::new(200)
                    .with_header("Content-Type", "text/plain")
                    .with_body(data),
                Err(e) => e.into(),
            },
            b"/wait" => {
                let _guard = OnDrop(self.dropped.clone());
                std::future::pending::<()>().await;
                Response::new(200)
            }
            b"/stream" => Response::new(200).with_body(Body::from_stream(
                futures_util::stream::iter(["one ", "two ", "three"].map(Ok::<_, std::io::Error>)),
            )),
            b"/ignore" => Response::new(204),
            _ => Response::error(404),
        }
    }
}

struct Server {
    addr: std::net::SocketAddr,
    dropped: mpsc::UnboundedReceiver<()>,
}

async fn server(cfg: UwsgiConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, dropped) = mpsc::unbounded_channel();
    let app = Arc::new(TestApp { dropped: tx });
    let cfg = Arc::new(cfg);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_connection(stream, app.clone(), cfg.clone()));
        }
    });
    Server { addr, dropped }
}

/// Sends `raw`, closes the write side when `close`, and reads the whole answer.
async fn exchange(addr: std::net::SocketAddr, raw: &[u8], close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    if close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("answer and close")
        .unwrap();
    out
}

fn request(method: &str, uri: &str, body: &[u8]) -> Vec<u8> {
    client::request(&[("REQUEST_METHOD", method), ("REQUEST_URI", uri)], body)
}

fn packet(pairs: &[(&str, &str)]) -> Vec<u8> {
    client::packet(
        0,
        0,
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    )
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[tokio::test]
async fn a_post_byte_for_byte() {
    let s = server(UwsgiConfig::default()).await;
    let out = exchange(s.addr, &request("POST", "/echo", b"42"), false).await;
    assert_eq!(
        text(&out),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n42"
    );
}

#[tokio::test]
async fn malformations_get_a_clear_answer_and_others_keep_working() {
    let s = server(UwsgiConfig {
        max_header_size: 1024,
        ..UwsgiConfig::default()
    })
    .await;
    let good = request("POST", "/echo", b"fine");
    let mut overrun = packet(&[("REQUEST_URI", "/echo")]);
    overrun[4] = 0xff;
    let trailing = {
        let mut p = packet(&[("REQUEST_URI", "/echo")]);
        p.push(7);
        let datasize = u16::try_from(p.len() - 4).unwrap();
        p[1..3].copy_from_slice(&datasize.to_le_bytes());
        p
    };
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("modifier1 30", vec![30, 0, 0, 0], false, "HTTP/1.1 501 "),
        (
            "modifier1 5 with vars",
            client::packet(5, 0, [(&b"A"[..], &b"b"[..])]),
            false,
            "HTTP/1.1 501 ",
        ),
        ("truncated header", vec![0, 10], true, "HTTP/1.1 400 "),
        ("truncated vars", good[..10].to_vec(), true, "HTTP/1.1 400 "),
        ("overrun", overrun, false, "HTTP/1.1 400 "),
        ("trailing byte", trailing, false, "HTTP/1.1 400 "),
        (
            "duplicate CONTENT_LENGTH",
            packet(&[("CONTENT_LENGTH", "0"), ("CONTENT_LENGTH", "0")]),
            false,
            "HTTP/1.1 400 ",
        ),
        (
            "non-decimal CONTENT_LENGTH",
            packet(&[("CONTENT_LENGTH", "-1")]),
            false,
            "HTTP/1.1 400 ",
        ),
        ("over the cap", vec![0, 0, 8, 0], false, "HTTP/1.1 431 "),
    ];
    let mut held = TcpStream::connect(s.addr).await.unwrap(); // a slow, honest neighbour
    held.write_all(&good[..10]).await.unwrap();
    for (what, raw, close, expected) in cases {
        let out = exchange(s.addr, &raw, close).await;
        assert!(text(&out).starts_with(expected), "{what}: {}", text(&out));
    }
    held.write_all(&good[10..]).await.unwrap();
    let mut out = Vec::new();
    held.read_to_end(&mut out).await.unwrap();
    assert!(out.ends_with(b"\r\n\r\nfine"), "{}", text(&out));
}

#[tokio::test]
async fn closed_before_a_byte_gets_nothing() {
    let s = server(UwsgiConfig::default()).await;
    assert!(exchange(s.addr, b"", true).await.is_empty());
}

#[tokio::test]
async fn a_truncated_body_is_a_400() {
    let s = server(UwsgiConfig::default()).await;
    let mut raw = request("POST", "/echo", b"0123456789");
    raw.truncate(raw.len() - 6); // 4 of 10 body bytes, then the web server closes its side
    let out = exchange(s.addr, &raw, true).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn the_app_gets_exactly_content_length_bytes() {
    let s = server(UwsgiConfig::default()).await;
    let mut raw = request("POST", "/echo", b"hello");
    raw.extend_from_slice(b"EXTRA");
    let out = exchange(s.addr, &raw, true).await;
    assert!(out.ends_with(b"\r\n\r\nhello"), "{}", text(&out));
}

#[tokio::test]
async fn a_body_over_the_cap_is_a_413() {
    let s = server(UwsgiConfig {
        max_body_size: 100,
        ..UwsgiConfig::default()
    })
    .await;
    let out = exchange(s.addr, &request("POST", "/echo", &[7u8; 1000]), false).await;
    assert!(
        out.starts_with(b"HTTP/1.1 413 Payload Too Large\r\n"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_slow_header_times_out() {
    let s = server(UwsgiConfig {
        header_read_timeout: Duration::from_millis(200),
        ..UwsgiConfig::default()
    })
    .await;
    let out = exchange(s.addr, &[0, 100, 0, 0, 3], false).await;
    assert!(out.starts_with(b"HTTP/1.1 408"), "{}", text(&out));
}

#[tokio::test]
async fn streamed_responses_and_head() {
    let s = server(UwsgiConfig::default()).await;
    let out = exchange(s.addr, &request("GET", "/stream", b""), false).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200 OK\r\n") && out.ends_with(b"\r\n\r\none two three"),
        "{}",
        text(&out)
    );
    let out = exchange(s.addr, &request("HEAD", "/stream", b""), false).await;
    assert!(
        out.ends_with(b"\r\n\r\n"),
        "no body for HEAD: {}",
        text(&out)
    );
}

#[tokio::test]
async fn a_large_body_streams_and_an_unread_one_is_drained() {
    // 8 MiB to an app that never reads it: the web server's writes stall (the driver reads the
    // body only as the app does) until the app answers, then the rest is drained so the answer
    // is not lost to a reset. Then 8 MiB read whole by the app.
    let s = server(UwsgiConfig::default()).await;
    let body = vec![b'x'; 8 << 20];
    let out = exchange(s.addr, &request("POST", "/ignore", &body), false).await;
    assert!(
        out.starts_with(b"HTTP/1.1 204 No Content\r\n"),
        "{}",
        text(&out)
    );
    let out = exchange(s.addr, &request("POST", "/echo", &body), false).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        text(&out[..64])
    );
    assert!(out.ends_with(&body[..1000]));
    assert_eq!(
        out.len() - out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
        8 << 20
    );
}

#[tokio::test]
async fn a_closed_connection_cancels_the_app() {
    let mut s = server(UwsgiConfig::default()).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(&request("GET", "/wait", b"")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(2), s.dropped.recv())
        .await
        .expect("the app call was dropped");
}

//! The SCGI driver over loopback sockets: the spec's example byte for byte, each
//! malformation, limits, and cancellation.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::{App, Body, Environ, Response};
use proto_scgi::{ScgiConfig, serve_connection};
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
            b"/deepthought" => match body.to_bytes().await {
                Ok(q) if &q[..] == b"What is the answer to life?" => Response::new(200)
                    .with_header("Content-Type", "text/plain")
                    .with_body("42"),
                Ok(_) => Response::error(400),
                Err(e) => e.into(),
            },
            b"/echo" => match body.to_bytes().await {
                Ok(data) => Response::new(200).with_body(data),
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
            _ => Response::error(404),
        }
    }
}

struct Server {
    addr: std::net::SocketAddr,
    dropped: mpsc::UnboundedReceiver<()>,
}

async fn server(cfg: ScgiConfig) -> Server {
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

fn request(pairs: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut header = Vec::new();
    for (n, v) in pairs {
        header.extend_from_slice(n.as_bytes());
        header.push(0);
        header.extend_from_slice(v.as_bytes());
        header.push(0);
    }
    let mut out = format!("{}:", header.len()).into_bytes();
    out.extend_from_slice(&header);
    out.push(b',');
    out.extend_from_slice(body);
    out
}

fn post(uri: &str, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    request(
        &[
            ("CONTENT_LENGTH", &len),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", uri),
        ],
        body,
    )
}

#[tokio::test]
async fn the_spec_example_byte_for_byte() {
    let s = server(ScgiConfig::default()).await;
    let raw = b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,What is the answer to life?";
    let out = exchange(s.addr, raw, false).await;
    assert_eq!(out, b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n42");
}

#[tokio::test]
async fn malformations_get_a_clear_answer_and_others_keep_working() {
    let s = server(ScgiConfig {
        max_header_size: 1024,
        ..ScgiConfig::default()
    })
    .await;
    let good = post("/echo", b"fine");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "leading zero",
            b"070:CONTENT_LENGTH\x000\x00".to_vec(),
            "Status: 400",
        ),
        (
            "missing comma",
            [
                &good[..good.iter().position(|&b| b == b',').unwrap()],
                b";fine",
            ]
            .concat(),
            "Status: 400",
        ),
        ("non-digit length", b"7x:".to_vec(), "Status: 400"),
        (
            "overflowing length",
            b"123456789012345:".to_vec(),
            "Status: 400",
        ),
        ("over the header cap", b"5000:".to_vec(), "Status: 431"),
        (
            "CONTENT_LENGTH not first",
            request(&[("SCGI", "1"), ("CONTENT_LENGTH", "0")], b""),
            "Status: 400",
        ),
        (
            "SCGI missing",
            request(&[("CONTENT_LENGTH", "0"), ("REQUEST_URI", "/echo")], b""),
            "Status: 400",
        ),
        (
            "repeated CONTENT_LENGTH",
            request(
                &[
                    ("CONTENT_LENGTH", "0"),
                    ("SCGI", "1"),
                    ("CONTENT_LENGTH", "0"),
                ],
                b"",
            ),
            "Status: 400",
        ),
    ];
    let mut held = TcpStream::connect(s.addr).await.unwrap(); // a slow, honest neighbour
    held.write_all(&good[..10]).await.unwrap();
    for (what, raw, expected) in cases {
        let out = exchange(s.addr, &raw, false).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(expected), "{what}: {text}");
    }
    held.write_all(&good[10..]).await.unwrap();
    let mut out = Vec::new();
    held.read_to_end(&mut out).await.unwrap();
    assert!(
        out.ends_with(b"\r\n\r\nfine"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_truncated_body_is_a_400() {
    let s = server(ScgiConfig::default()).await;
    let mut raw = post("/echo", b"0123456789");
    raw.truncate(raw.len() - 6); // 4 of 10 body bytes, then the web server closes its side
    let out = exchange(s.addr, &raw, true).await;
    assert!(
        out.starts_with(b"Status: 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_body_over_the_cap_is_a_413() {
    let s = server(ScgiConfig {
        max_body_size: 100,
        ..ScgiConfig::default()
    })
    .await;
    let out = exchange(s.addr, &post("/echo", &[7u8; 1000]), false).await;
    assert!(
        out.starts_with(b"Status: 413 Payload Too Large\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_slow_header_times_out() {
    let s = server(ScgiConfig {
        header_read_timeout: Duration::from_millis(200),
        ..ScgiConfig::default()
    })
    .await;
    let out = exchange(s.addr, b"70:CONTENT_LE", false).await;
    assert!(
        out.starts_with(b"Status: 408"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn streamed_responses_and_head() {
    let s = server(ScgiConfig::default()).await;
    let out = exchange(s.addr, &post("/stream", b""), false).await;
    assert!(
        out.ends_with(b"\r\n\r\none two three"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let head = request(
        &[
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "HEAD"),
            ("REQUEST_URI", "/stream"),
        ],
        b"",
    );
    let out = exchange(s.addr, &head, false).await;
    assert!(
        out.ends_with(b"\r\n\r\n"),
        "no body for HEAD: {}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_closed_connection_cancels_the_app() {
    let mut s = server(ScgiConfig::default()).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(&post("/wait", b"")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(2), s.dropped.recv())
        .await
        .expect("the app call was dropped");
}

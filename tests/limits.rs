//! Each limit, triggered: the request deadline (504), the per-app concurrency cap (503), the
//! request head size (431), the head timeout, the keep-alive timeouts of HTTP and FastCGI.
//! (The body cap's 413 is in http.rs and the drivers' tests; max_connections in fastcgi.rs.)

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, get, raw_exchange, req, send};
use gateway_core::Body;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn config(server: &str, listen: &str, app: &str) -> String {
    format!(
        "[server]\n{server}\n\n[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n{listen}\n\n\
         [[listen]]\nprotocol = \"fastcgi\"\naddress = \"127.0.0.1:0\"\n{listen}\n\n\
         [apps.bin]\ntype = \"httpbin\"\n{app}\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n"
    )
}

#[tokio::test]
async fn the_request_deadline_is_a_504() {
    let d = Daemon::start(&config("", "", "request_timeout = \"300ms\""));
    let start = Instant::now();
    assert_eq!(get(d.addr(), "/delay/3").await.status, 504);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(get(d.addr(), "/delay/0.1").await.status, 200);
    d.wait_log("request_timeout passed");
}

#[tokio::test]
async fn the_server_wide_deadline_applies_to_every_app() {
    let d = Daemon::start(&config("request_timeout = \"300ms\"", "", ""));
    assert_eq!(get(d.addr(), "/delay/3").await.status, 504);
}

#[tokio::test]
async fn the_concurrency_cap_is_a_503_with_retry_after() {
    let d = Daemon::start(&config("", "", "max_concurrency = 1"));
    let addr = d.addr();
    let busy = tokio::spawn(async move { get(addr, "/delay/1").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = get(d.addr(), "/get").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(
        get(d.addr(), "/get").await.status,
        200,
        "the slot is free again"
    );
}

#[tokio::test]
async fn an_oversized_head_is_a_431() {
    let d = Daemon::start(&config("", "max_head_size = \"16KiB\"", ""));
    let mut r = req("GET", "/get", Body::empty());
    r.headers_mut()
        .insert("x-big", "b".repeat(20_000).parse().unwrap());
    assert_eq!(send(d.addr(), r).await.status, 431);
    let mut r = req("GET", "/get", Body::empty());
    r.headers_mut()
        .insert("x-fits", "f".repeat(8_000).parse().unwrap());
    assert_eq!(send(d.addr(), r).await.status, 200);
}

#[tokio::test]
async fn a_slow_head_is_cut() {
    let d = Daemon::start(&config("header_read_timeout = \"300ms\"", "", ""));
    let start = Instant::now();
    let got = raw_exchange(d.addr(), b"GET /get HTTP/1.1\r\nHost: x\r\nX-Slow", |_| {
        false
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "cut after {:?}",
        start.elapsed()
    );
    assert!(!got.windows(6).any(|w| w == b"200 OK"));
}

#[tokio::test]
async fn the_head_timeout_does_not_cut_a_slow_answer() {
    // The head timer runs on while the app answers (hyper reads meanwhile, to notice a client
    // that leaves); a request that takes several periods must still be answered, and the
    // kept connection must serve the next one.
    let d = Daemon::start(&config(
        "header_read_timeout = \"300ms\"\nrequest_timeout = \"10s\"",
        "",
        "",
    ));
    let mut client = common::Client::connect(d.addr()).await;
    assert_eq!(
        client
            .send(req("GET", "/delay/1.2", Body::empty()))
            .await
            .status,
        200
    );
    assert_eq!(
        client.send(req("GET", "/get", Body::empty())).await.status,
        200
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let d = Daemon::start(&config("keepalive_timeout = \"300ms\"", "", ""));
    let mut s = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    s.write_all(b"GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 204"));
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(n, 0, "closed");
    assert!(start.elapsed() >= Duration::from_millis(200));

    // FastCGI with KEEP_CONN: the same wait, on its own timer.
    let fcgi: std::net::SocketAddr = d.listening[1].1.parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(fcgi).await.unwrap();
    let mut wire = bytes::BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_URI", b"/status/204"),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, true, params, b"");
    s.write_all(&wire).await.unwrap();
    let start = Instant::now();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut all))
        .await
        .expect("closed in time")
        .unwrap();
    assert!(String::from_utf8_lossy(&all).contains("Status: 204"));
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "kept for the keep-alive wait"
    );
}

#[tokio::test]
async fn a_kept_fastcgi_connection_in_use_outlives_its_keep_alive_timeout() {
    // Each request moves the keep-alive deadline later; the connection's one timer is re-armed
    // only when it fires, and must then find the later deadline, not close.
    let d = Daemon::start(&config("keepalive_timeout = \"300ms\"", "", ""));
    let fcgi: std::net::SocketAddr = d.listening[1].1.parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(fcgi).await.unwrap();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_URI", b"/status/204"),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
    ];
    let mut decoder = proto_fastcgi::RecordDecoder;
    let mut buf = bytes::BytesMut::new();
    let start = Instant::now();
    for id in 1..=8u16 {
        let mut wire = bytes::BytesMut::new();
        proto_fastcgi::client::put_request(&mut wire, id, true, params, b"");
        s.write_all(&wire).await.unwrap();
        let mut replies = proto_fastcgi::client::Replies::default();
        while !replies.ended(id) {
            use tokio_util::codec::Decoder as _;
            match decoder.decode(&mut buf).unwrap() {
                Some(record) => replies.push(record),
                None => {
                    let n = tokio::time::timeout(Duration::from_secs(3), s.read_buf(&mut buf))
                        .await
                        .expect("answered in time")
                        .unwrap();
                    assert!(n > 0, "request {id} found the connection closed");
                }
            }
        }
        assert_eq!(replies.by_id[&id].status(), Some(204));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        start.elapsed() > Duration::from_millis(600),
        "outlived 300 ms"
    );
}

#[test]
fn common_app_keys_are_checked_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(
        &path,
        "[apps.bin]\ntype = \"httpbin\"\nmax_concurrency = \"many\"\n",
    )
    .unwrap();
    let (code, err) = common::check(&path);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!("{}:3:19: ", path.display())),
        "{err}"
    );
}

#[tokio::test]
async fn one_worker_thread_serves() {
    let d = Daemon::start(&config("workers = 1", "", ""));
    assert_eq!(get(d.addr(), "/get").await.status, 200);
    let pid = d.pid();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    // The main thread, one worker and the log writer (the blocking pool's threads are not
    // needed to serve /get).
    assert!(threads <= 3, "{threads} threads");
}

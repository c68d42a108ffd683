//! Hostile input and load, bounded in time, on loopback only: slowloris on every protocol, a
//! connection flood, oversized input everywhere, an abort storm, and nothing lost through nginx
//! across a reload and a drain.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{Daemon, count, get};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
[server]
header_read_timeout = "1s"
max_body_size = "1MiB"

[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:0"

[[listen]]
protocol = "scgi"
address = "127.0.0.1:0"

[apps.bin]
type = "httpbin"

[apps.status]
type = "status"

[[mount]]
path = "/"
app = "bin"

[[mount]]
path = "/-/status"
app = "status"
"#;

fn addrs(d: &Daemon) -> (SocketAddr, SocketAddr, SocketAddr) {
    let a = |i: usize| d.listening[i].1.parse().unwrap();
    (a(0), a(1), a(2))
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn fastcgi_get(path: &[u8]) -> BytesMut {
    let mut wire = BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", path),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, false, params, b"");
    wire
}

fn scgi_get(path: &str) -> Vec<u8> {
    proto_scgi::client::request(&[("REQUEST_METHOD", "GET"), ("REQUEST_URI", path)], b"")
}

/// Sends a whole request and reads the whole answer (the server closes after it).
async fn exchange(addr: SocketAddr, wire: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(wire).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// Trickles `wire` one byte every 300 ms; returns how long until the server cut it off.
async fn trickle(addr: SocketAddr, wire: Vec<u8>) -> Option<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.ok()?;
    let mut buf = [0u8; 512];
    for byte in wire.iter().cycle().take(60) {
        if s.write_all(&[*byte]).await.is_err() {
            return Some(start.elapsed());
        }
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            _ => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_every_protocol() {
    let d = Daemon::start(CONFIG);
    let (http, fcgi, scgi) = addrs(&d);
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(tokio::spawn(trickle(
            http,
            b"GET /get HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n".to_vec(),
        )));
        slow.push(tokio::spawn(trickle(fcgi, fastcgi_get(b"/get").to_vec())));
        slow.push(tokio::spawn(trickle(scgi, scgi_get("/get"))));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Normal clients are served meanwhile, on every protocol.
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(get(http, "/get").await.status, 200);
        let out = exchange(fcgi, &fastcgi_get(b"/get")).await;
        assert!(String::from_utf8_lossy(&out).contains("Status: 200"));
        let out = exchange(scgi, &scgi_get("/get")).await;
        assert!(
            out.starts_with(b"Status: 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "served in {:?}",
            start.elapsed()
        );
    }
    for task in slow {
        let cut = task
            .await
            .unwrap()
            .expect("a slow connection was never cut");
        assert!(cut < Duration::from_secs(5), "cut after {cut:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_max_connections_stays_bounded() {
    let d = Daemon::start(&CONFIG.replace(
        "protocol = \"http\"\naddress = \"127.0.0.1:0\"",
        "protocol = \"http\"\naddress = \"127.0.0.1:0\"\nmax_connections = 50",
    ));
    let (http, _, _) = addrs(&d);
    let (rss_before, fds_before) = (rss_kib(d.pid()), fds(d.pid()));
    let mut flood = Vec::new();
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect(http).await {
            flood.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_peak, fds_peak) = (rss_kib(d.pid()), fds(d.pid()));
    assert!(
        fds_peak <= fds_before + 50 + 5,
        "{fds_before} fds before, {fds_peak} at peak"
    );
    assert!(
        rss_peak < rss_before + 20 * 1024,
        "RSS {rss_before} KiB before, {rss_peak} KiB at peak"
    );
    drop(flood);
    // The flood's connections are cut by the head timeout; then clients are served again.
    let start = Instant::now();
    let reply = get(http, "/get").await;
    assert_eq!(reply.status, 200);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_input_gets_a_clear_error_with_bounded_memory() {
    let d = Daemon::start(CONFIG);
    let (http, fcgi, scgi) = addrs(&d);
    let rss_before = rss_kib(d.pid());

    // FastCGI: a pair that declares a 2 GiB value.
    let mut wire = BytesMut::new();
    proto_fastcgi::client::put_begin(&mut wire, 1, proto_fastcgi::Role::Responder, false);
    let mut pair = vec![1u8, 0xff, 0xff, 0xff, 0xff, b'A'];
    pair.extend(std::iter::repeat_n(b'v', 60_000));
    proto_fastcgi::put_record(&mut wire, proto_fastcgi::RecordType::Params, 1, &pair);
    proto_fastcgi::put_record(&mut wire, proto_fastcgi::RecordType::Params, 1, &pair);
    proto_fastcgi::put_record(&mut wire, proto_fastcgi::RecordType::Params, 1, &[]);
    proto_fastcgi::put_record(&mut wire, proto_fastcgi::RecordType::Stdin, 1, &[]);
    let out = exchange(fcgi, &wire).await;
    assert!(
        String::from_utf8_lossy(&out).contains("Status: 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // SCGI: a netstring that declares 999 999 999 bytes.
    let out = exchange(scgi, b"999999999:CONTENT_LENGTH\x000\x00").await;
    assert!(
        out.starts_with(b"Status: 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // HTTP: a megabyte of header.
    let mut head = b"GET /get HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'b', 1 << 20));
    head.extend_from_slice(b"\r\n\r\n");
    let out = exchange(http, &head).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out[..out.len().min(100)])
    );

    // A body over the cap, on each protocol.
    let body = vec![7u8; 2 << 20];
    let raw = format!(
        "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let out = exchange(http, raw.as_bytes()).await;
    assert!(
        out.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let mut wire = BytesMut::new();
    let len = body.len().to_string();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"POST"),
        (b"REQUEST_URI", b"/post"),
        (b"CONTENT_LENGTH", len.as_bytes()),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, false, params, &body);
    let out = exchange(fcgi, &wire).await;
    assert!(String::from_utf8_lossy(&out).contains("Status: 413"));
    let header = format!(
        "CONTENT_LENGTH\x00{len}\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/post\x00"
    );
    let mut wire = format!("{}:{header},", header.len()).into_bytes();
    wire.extend_from_slice(&body);
    let out = exchange(scgi, &wire).await;
    assert!(
        out.starts_with(b"Status: 413"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    let rss_after = rss_kib(d.pid());
    assert!(
        rss_after < rss_before + 20 * 1024,
        "RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    assert_eq!(get(http, "/get").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_storm_leaks_no_task_or_fd() {
    let d = Daemon::start(CONFIG);
    let (http, fcgi, scgi) = addrs(&d);
    let fds_before = fds(d.pid());
    let wires: [(SocketAddr, Vec<u8>); 3] = [
        (http, b"GET /delay/2 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (fcgi, fastcgi_get(b"/delay/2").to_vec()),
        (scgi, scgi_get("/delay/2")),
    ];
    for round in 0..40 {
        for (addr, wire) in &wires {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Half of them mid-head, half once the app is running.
            let cut = if round % 2 == 0 {
                wire.len() / 2
            } else {
                wire.len()
            };
            s.write_all(&wire[..cut]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(s);
        }
    }
    // Everything is cancelled and closed: the app calls, the connections, their fds.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = get(http, "/-/status").await.json();
        let open: i64 = status["connections"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        let settled = status["in_flight"] == 1 && open <= 1 && fds(d.pid()) <= fds_before + 1;
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leak: {status}, fds {} (before {fds_before})",
            fds(d.pid())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_through_nginx_across_reload_and_drain() {
    let mut d = Daemon::start(CONFIG);
    let fcgi = d.listening[1].1.clone();
    let snippet = format!(
        "    include {}/configs/nginx-fastcgi.conf;",
        env!("CARGO_MANIFEST_DIR")
    );
    let n = common::peers::nginx(&format!("upstream gatewayd {{ server {fcgi}; }}"), &snippet);
    let front = n.addr;
    let (answered, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (answered, errors) = (answered.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let mine = format!("request {t}-{i} with its own body");
                let raw = format!(
                    "POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{mine}",
                    mine.len()
                );
                let Ok(mut s) = TcpStream::connect(front).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let _ = s.write_all(raw.as_bytes()).await;
                let mut out = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
                let text = String::from_utf8_lossy(&out);
                if text.starts_with("HTTP/1.1 200") {
                    // Its own answer, and no one else's.
                    assert!(text.contains(&format!("\"data\": \"{mine}\"")), "{text}");
                    assert_eq!(text.matches("with its own body").count(), 1, "{text}");
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    // A clean error the client sees: nginx's 502 once gatewayd is gone.
                    assert!(text.starts_with("HTTP/1.1 5") || text.is_empty(), "{text}");
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    d.signal(nix::sys::signal::Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(800)).await;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    for task in tasks {
        task.await.unwrap();
    }
    let status = tokio::task::block_in_place(|| d.wait(Duration::from_secs(10)));
    assert!(status.success());
    let (answered, errors) = (
        answered.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    assert_eq!(answered + errors, 320);
    assert!(answered >= 50, "{answered} answered, {errors} clean errors");
    assert!(d.stderr().contains("reloaded"));
}

/// Connects with a receive buffer of a few KiB, so that a response the client never reads
/// fills the socket quickly instead of vanishing into loopback's megabytes of buffer.
async fn stalled_client(addr: SocketAddr, wire: &[u8]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(wire).await.unwrap();
    s
}

/// A client that stops reading holds nothing for longer than `send_timeout`: its connection
/// closes, its call is cancelled, and every place it held (a connection of a listener at its
/// cap, the in-flight count) is free again, on every protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_after_send_timeout() {
    const CAP: usize = 3;
    let config = format!(
        "[server]\nsend_timeout = \"2s\"\n\n\
         [[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\nmax_connections = {CAP}\n\n\
         [[listen]]\nprotocol = \"fastcgi\"\naddress = \"127.0.0.1:0\"\nmax_connections = {CAP}\n\n\
         [[listen]]\nprotocol = \"scgi\"\naddress = \"127.0.0.1:0\"\nmax_connections = {CAP}\n\n\
         [[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [apps.bin]\ntype = \"httpbin\"\n\n[apps.status]\ntype = \"status\"\n\n\
         [[mount]]\npath = \"/\"\napp = \"bin\"\n\n[[mount]]\npath = \"/-/status\"\napp = \"status\"\n"
    );
    let d = Daemon::start(&config);
    let (http, fcgi, scgi) = addrs(&d);
    let admin: SocketAddr = d.listening[3].1.parse().unwrap();
    // Streamed, so that each call stays in flight until its last byte is taken.
    let big = "/stream-bytes/10485760?chunk_size=16384";
    let mut stalled = Vec::new();
    for _ in 0..CAP {
        let wire = format!("GET {big} HTTP/1.1\r\nHost: x\r\n\r\n");
        stalled.push(stalled_client(http, wire.as_bytes()).await);
        stalled.push(stalled_client(fcgi, &fastcgi_get(big.as_bytes())).await);
        stalled.push(stalled_client(scgi, &scgi_get(big)).await);
    }
    // Every listener is at its cap, held by clients that read nothing.
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let status = get(admin, "/-/status").await.json();
        if status["in_flight"] == 3 * CAP as u64 + 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let locked = tokio::time::timeout(Duration::from_millis(300), get(http, "/get")).await;
    assert!(locked.is_err(), "the HTTP listener should be full");

    // After send_timeout, the stalled connections are closed and each listener serves again.
    let start = Instant::now();
    let served = tokio::time::timeout(Duration::from_secs(8), async {
        assert_eq!(get(http, "/get").await.status, 200);
        let out = exchange(fcgi, &fastcgi_get(b"/get")).await;
        assert!(String::from_utf8_lossy(&out).contains("Status: 200"));
        let out = exchange(scgi, &scgi_get("/get")).await;
        assert!(out.starts_with(b"Status: 200"));
    })
    .await;
    assert!(served.is_ok(), "still locked {:?} later", start.elapsed());
    // Every stalled call is gone too (each was cut one send_timeout after its write stalled).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = get(admin, "/-/status").await.json();
        if status["in_flight"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stalled);
}

/// A 1xx from an app is never sent as the final answer: the client would take it for an
/// interim one and wait (or, for 101, switch protocols), and a pipelining client would take
/// the next answer for this one. It is a 502, on every protocol, and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_status_from_an_app_is_a_502() {
    let d = Daemon::start(CONFIG);
    let (http, fcgi, scgi) = addrs(&d);
    for code in [100, 101, 103, 199] {
        // Pipelined: the 502 comes first and the next request's answer after it.
        let wire = format!(
            "GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let out =
            common::raw_exchange(http, wire.as_bytes(), |b| count(b, b"HTTP/1.1 ") >= 2).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 502 "), "{code}: {text}");
        assert_eq!(count(&out, b"HTTP/1.1 201 "), 1, "{code}: {text}");
        assert_eq!(count(&out, b"HTTP/1.1 1"), 0, "{code}: {text}");
        let out = exchange(fcgi, &fastcgi_get(format!("/status/{code}").as_bytes())).await;
        assert!(
            String::from_utf8_lossy(&out).contains("Status: 502 Bad Gateway"),
            "{code}: {}",
            String::from_utf8_lossy(&out)
        );
        let out = exchange(scgi, &scgi_get(&format!("/status/{code}"))).await;
        assert!(out.starts_with(b"Status: 502 Bad Gateway"), "{code}");
    }
    assert!(d.stderr().contains("not final"), "no log line");
}

/// A unix socket without `socket_mode` is 0660 whatever the umask (under umask 000 it was
/// 0777: any local user could talk to the apps), and `socket_mode` still sets it.
#[test]
fn a_unix_socket_is_0660_by_default_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let wrap = tempfile::tempdir().unwrap();
    let bin = wrap.path().join("gatewayd-umask-000");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\numask 000\nexec {} \"$@\"\n",
            common::gatewayd_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start_bin(
        &bin,
        "[[listen]]\nprotocol = \"fastcgi\"\naddress = \"unix:{dir}/default.sock\"\n\n\
         [[listen]]\nprotocol = \"scgi\"\naddress = \"unix:{dir}/open.sock\"\nsocket_mode = \"0666\"\n\n\
         [apps.p]\ntype = \"ping\"\n\n[[mount]]\npath = \"/\"\napp = \"p\"\n",
    );
    let mode = |name: &str| {
        std::fs::metadata(d.dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("default.sock"), 0o660);
    assert_eq!(mode("open.sock"), 0o666);
}

/// Out of file descriptors, accept fails 20 times a second: the log gets a few lines and a
/// count of the rest, not a line per failure, and the daemon serves again once descriptors
/// are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_log_summarises() {
    use std::os::unix::fs::PermissionsExt as _;
    let wrap = tempfile::tempdir().unwrap();
    let bin = wrap.path().join("gatewayd-64-fds");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nulimit -n 64\nexec {} \"$@\"\n",
            common::gatewayd_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start_bin(
        &bin,
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [apps.p]\ntype = \"ping\"\n\n[[mount]]\npath = \"/\"\napp = \"p\"\n",
    );
    let addr = d.addr();
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(addr).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lines = d.stderr().matches("accept failed").count();
    assert!((1..=5).contains(&lines), "{lines} lines:\n{}", d.stderr());
    drop(held);
    let reply = tokio::time::timeout(Duration::from_secs(5), get(addr, "/")).await;
    assert_eq!(reply.map(|r| r.status).ok(), Some(200));
}

/// A peer that opens malformed connections in a loop gets one WARN per connection no more:
/// a few lines, then one that counts the rest, and the daemon serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_connections_in_a_loop_log_a_few_lines() {
    let d = Daemon::start(CONFIG);
    let (http, fcgi, _) = addrs(&d);
    for _ in 0..200 {
        // A FastCGI record of version 9, and a smuggling attempt over HTTP.
        exchange(fcgi, &[9, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        exchange(
            http,
            b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await;
    }
    let log = d.stderr();
    let fcgi_lines = log.matches("malformed FastCGI input").count();
    let http_lines = log.matches("request smuggling").count();
    assert!((1..=5).contains(&fcgi_lines), "{fcgi_lines} FastCGI lines");
    assert!((1..=5).contains(&http_lines), "{http_lines} HTTP lines");
    assert_eq!(get(http, "/get").await.status, 200);
}

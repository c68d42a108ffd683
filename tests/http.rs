//! The HTTP front-end end to end: the environ, uploads, HEAD, keep-alive, pipelining,
//! `Expect: 100-continue`, limits, panics, unix sockets and the graceful drain.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::{Client, Daemon, HTTPBIN, count, get, raw_exchange, req, send, sha256};
use gateway_core::Body;
use nix::sys::signal::Signal::{SIGINT, SIGTERM};

fn environ(reply: &common::Reply) -> serde_json::Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn environ_under_root_and_sub_mount() {
    let d = Daemon::start(HTTPBIN);
    let mut r = req("GET", "/environ/caf%C3%A9/a%3Fb?x=1&y=%20", Body::empty());
    let h = r.headers_mut();
    h.append("x-repeated", "one".parse().unwrap());
    h.append("x-repeated", "two".parse().unwrap());
    h.append("cookie", "a=1".parse().unwrap());
    h.append("cookie", "b=2".parse().unwrap());
    h.append("x_spoof", "1".parse().unwrap());
    h.append("authorization", "Basic dTpw".parse().unwrap());
    let doc = environ(&send(d.addr(), r).await);
    let env = &doc["environ"];
    assert_eq!(doc["protocol"], "http");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/environ/café/a?b");
    assert_eq!(env["QUERY_STRING"], "x=1&y=%20");
    assert_eq!(env["REQUEST_URI"], "/environ/caf%C3%A9/a%3Fb?x=1&y=%20");
    // An encoded slash is read two ways by front servers: refused, not decoded.
    assert_eq!(get(d.addr(), "/environ/a%2Fb").await.status, 400);
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
    assert_eq!(env["SERVER_PORT"], d.addr().port().to_string());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(env["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok());
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(env["HTTP_X_REPEATED"], "one, two");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert_eq!(env["HTTP_AUTHORIZATION"], "Basic dTpw");
    assert!(env.get("HTTP_X_SPOOF").is_none());
    assert!(env.get("CONTENT_LENGTH").is_none());
    assert!(env.get("CONTENT_TYPE").is_none());
    assert_eq!(doc["body_length"], 0);

    let doc = environ(&get(d.addr(), "/sub/environ/x").await);
    assert_eq!(doc["environ"]["SCRIPT_NAME"], "/sub");
    assert_eq!(doc["environ"]["PATH_INFO"], "/environ/x");
    assert_eq!(doc["environ"]["REQUEST_URI"], "/sub/environ/x");
    // `/subway` is not under the `/sub` mount: the root httpbin gets it, and has no such page.
    assert_eq!(get(d.addr(), "/subway/environ").await.status, 404);
    let doc = environ(&get(d.addr(), "/sub/environ").await);
    assert_eq!(
        (
            doc["environ"]["SCRIPT_NAME"].as_str(),
            doc["environ"]["PATH_INFO"].as_str()
        ),
        (Some("/sub"), Some("/environ"))
    );
}

#[tokio::test]
async fn five_megabyte_post_arrives_whole() {
    let d = Daemon::start(HTTPBIN);
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut r = req("POST", "/environ", data.clone());
    r.headers_mut()
        .insert("content-type", "application/octet-stream".parse().unwrap());
    let doc = environ(&send(d.addr(), r).await);
    assert_eq!(doc["body_length"], 5_000_000);
    assert_eq!(doc["body_sha256"], sha256(&data));
    assert_eq!(doc["environ"]["CONTENT_LENGTH"], "5000000");
    assert_eq!(doc["environ"]["CONTENT_TYPE"], "application/octet-stream");
}

#[tokio::test]
async fn chunked_upload_streams_in() {
    let d = Daemon::start(HTTPBIN);
    let chunks: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 10_000]).collect();
    let all: Vec<u8> = chunks.concat();
    let body = Body::from_stream(futures_util::stream::iter(
        chunks.into_iter().map(Ok::<_, std::io::Error>),
    ));
    let doc = environ(&send(d.addr(), req("PUT", "/environ", body)).await);
    assert_eq!(doc["body_length"], 500_000);
    assert_eq!(doc["body_sha256"], sha256(&all));
    assert!(doc["environ"].get("CONTENT_LENGTH").is_none());
    assert_eq!(doc["environ"]["HTTP_TRANSFER_ENCODING"], "chunked");
}

#[tokio::test]
async fn bodies_over_the_cap_get_413() {
    let d = Daemon::start(HTTPBIN);
    // Declared too large: refused before the app runs, without reading the body.
    let head = "POST /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n";
    let got = raw_exchange(d.addr(), head.as_bytes(), |g| {
        count(g, b"\r\n\r\n") >= 1 && g.ends_with(b"\n")
    })
    .await;
    assert!(
        got.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Chunked: cut off once it passes 8 MiB.
    let big = Body::from_stream(futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(vec![7u8; 1 << 20])),
    ));
    assert_eq!(
        send(d.addr(), req("POST", "/environ", big)).await.status,
        413
    );
    // The daemon still serves.
    assert_eq!(get(d.addr(), "/get").await.status, 200);
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let d = Daemon::start(HTTPBIN);
    let mut c = Client::connect(d.addr()).await;
    let full = c.get("/bytes/300").await;
    let head = c.send(req("HEAD", "/bytes/300", Body::empty())).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), full.header("content-length"));
    let head = c.send(req("HEAD", "/get", Body::empty())).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 10
    );
    // The connection is still in step after the HEAD.
    assert_eq!(c.get("/hello").await.text(), "Hello, World!\n");
}

#[tokio::test]
async fn keep_alive_reuses_the_connection() {
    let d = Daemon::start(HTTPBIN);
    let mut c = Client::connect(d.addr()).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let doc = environ(&c.get("/environ").await);
        seen.push(doc["environ"]["REMOTE_PORT"].as_str().unwrap().to_owned());
    }
    seen.dedup();
    assert_eq!(
        seen.len(),
        1,
        "every request came from one client port: {seen:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let d = Daemon::start(HTTPBIN);
    let raw = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = raw_exchange(d.addr(), raw, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    let first = text.find("HTTP/1.1 200").expect("first reply");
    let second = text.find("HTTP/1.1 201").expect("second reply");
    let third = text.rfind("HTTP/1.1 200").expect("third reply");
    assert!(first < second && second < third, "{text}");
    assert_eq!(count(&got, b"Hello, World!\n"), 2);
}

#[tokio::test]
async fn lf_only_request_lines_are_accepted() {
    let d = Daemon::start(HTTPBIN);
    let got = raw_exchange(
        d.addr(),
        b"GET /hello HTTP/1.1\nHost: x\nConnection: close\n\n",
        |_| false,
    )
    .await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn expect_100_continue() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let d = Daemon::start(HTTPBIN);
    let mut s = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    s.write_all(b"POST /environ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("200 OK"), "{text}");
    assert!(text.contains("\"body_length\": 5"), "{text}");
}

#[tokio::test]
async fn a_panicking_app_costs_one_500() {
    let bin = common::example_bin("embedding");
    let config = r#"
[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[apps.greet]
type = "greeter"
greeting = "Bonjour"

[[mount]]
path = "/greet"
app = "greet"
lint = true
"#;
    let d = Daemon::start_bin(&bin, config);
    let mut c = Client::connect(d.addr()).await;
    let reply = c.get("/greet/panic").await;
    assert_eq!(reply.status, 500);
    assert!(
        !reply.text().contains("asked to panic"),
        "no details for the client"
    );
    // The same connection, and the daemon, serve on.
    assert_eq!(c.get("/greet/ana").await.text(), "Bonjour, ana!\n");
    assert_eq!(get(d.addr(), "/greet").await.text(), "Bonjour, world!\n");
    let log = d.stderr();
    assert!(log.contains("the greeter was asked to panic"), "{log}");
    assert!(
        log.contains("request{id=1}"),
        "the panic is logged with its request id: {log}"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let mut d = Daemon::start(HTTPBIN);
    let addr = d.addr();
    let idle = Client::connect(addr).await; // an idle keep-alive connection must not hold the exit
    let slow = tokio::spawn(async move { get(addr, "/delay/1").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    d.signal(SIGTERM);
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request finished");
    let status = d.wait(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    drop(idle);
    assert!(d.stderr().contains("draining"));
}

#[tokio::test]
async fn shutdown_timeout_cuts_what_is_left() {
    let mut d = Daemon::start(
        &HTTPBIN.replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"200ms\""),
    );
    let addr = d.addr();
    let slow = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut r = req("GET", "/delay/5", Body::empty());
        r.headers_mut().insert("host", "x".parse().unwrap());
        sender.send_request(r).await.map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    d.signal(SIGINT);
    let status = d.wait(Duration::from_secs(3));
    assert!(status.success(), "exit status {status:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        slow.await.unwrap().is_err(),
        "the request was cut, not answered"
    );
}

#[tokio::test]
async fn unix_socket_with_mode_and_cleanup() {
    let config = HTTPBIN.replace(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\n\n[[listen]]\nprotocol = \"http\"\naddress = \"unix:{dir}/http.sock\"\nsocket_mode = \"0600\"",
    );
    // A stale socket file from a crashed run: nothing listens on it.
    let dir = tempfile::tempdir().unwrap();
    let config = config.replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("http.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let mut d = Daemon::start(&config);
    assert_eq!(
        d.listening[1],
        ("http".to_owned(), format!("unix:{}", path.display()))
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    let mut c = Client::connect_unix(&path).await;
    let doc = environ(&c.get("/sub/environ").await);
    assert_eq!(doc["environ"]["REMOTE_ADDR"], "");
    assert_eq!(doc["environ"]["SCRIPT_NAME"], "/sub");
    drop(c);
    d.signal(SIGTERM);
    assert!(d.wait(Duration::from_secs(5)).success());
    assert!(!path.exists(), "the socket file is removed on exit");
}

#[tokio::test]
async fn lint_is_switched_per_mount() {
    let config = format!("{HTTPBIN}\n[[mount]]\npath = \"/raw\"\napp = \"bin\"\n");
    let d = Daemon::start(&config);
    // A response header with a CR in its value: Lint names the rule on the linted mount...
    let linted = get(d.addr(), "/response-headers?X-Bad=a%0Db").await;
    assert_eq!(linted.status, 500);
    assert!(
        linted
            .text()
            .contains("lint: header \"X-Bad\" has CR, LF or NUL"),
        "{}",
        linted.text()
    );
    // ...while without Lint the front-end still refuses to send it, with a bare 500.
    let raw = get(d.addr(), "/raw/response-headers?X-Bad=a%0Db").await;
    assert_eq!(raw.status, 500);
    assert!(!raw.text().contains("lint"), "{}", raw.text());
    assert_eq!(get(d.addr(), "/raw/get").await.status, 200);
}

#[tokio::test]
async fn json_logs_on_request() {
    let d = Daemon::start_with(&common::gatewayd_bin(), HTTPBIN, &["--log-format", "json"]);
    assert_eq!(get(d.addr(), "/hello").await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = d.stderr();
    let access = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .find(|v| v["target"] == "gatewayd::access")
        .expect("an access line");
    assert_eq!(access["fields"]["path"], "/hello");
    assert_eq!(access["fields"]["protocol"], "http");
    assert_eq!(access["fields"]["method"], "GET");
    assert_eq!(access["fields"]["bytes"], 14);
    assert!(access["fields"]["micros"].is_u64());
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["span"]["id"], 1);
}

#[tokio::test]
async fn sighup_reloads_instead_of_killing() {
    let d = Daemon::start(HTTPBIN);
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_log("reloaded");
    assert_eq!(get(d.addr(), "/hello").await.status, 200);
}

/// Writes `raw` on a new connection and reads until the daemon closes it (or 3 s pass): the
/// status, whether it closed, and the body.
async fn exchange(addr: std::net::SocketAddr, raw: &str) -> (u16, bool, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut got))
        .await
        .is_ok_and(|r| r.is_ok());
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, closed, body)
}

#[tokio::test]
async fn a_missing_repeated_or_invalid_host_is_refused_and_closes() {
    let d = Daemon::start(HTTPBIN);
    for head in [
        "GET /get HTTP/1.1\r\n",
        "GET /get HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n",
        "GET /get HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n",
        "GET /get HTTP/1.1\r\nHost: user@a.example\r\n",
        "GET /get HTTP/1.1\r\nHost: a.example/x\r\n",
        "GET /get HTTP/1.1\r\nHost: a.example:8x\r\n",
        "GET /get HTTP/1.1\r\nHost: a.example:65536\r\n",
        "GET /get HTTP/1.1\r\nHost: a.example:80:80\r\n",
        "GET /get HTTP/1.1\r\nHost: exa mple\r\n",
        "GET /get HTTP/1.1\r\nHost: [::1\r\n",
        "GET /get HTTP/1.1\r\nHost: [::g]\r\n",
        "GET /get HTTP/1.0\r\nHost: user@a.example\r\n",
        // The target's authority is checked as well.
        "GET http://u@a.example/get HTTP/1.1\r\nHost: a.example\r\n",
    ] {
        let (status, closed, _) = exchange(d.addr(), &format!("{head}\r\n")).await;
        assert_eq!((status, closed), (400, true), "{head:?}");
    }
    // A good request before a bad one on the same connection is served; the bad one ends it.
    let (status, closed, rest) = exchange(
        d.addr(),
        "GET /hello HTTP/1.1\r\nHost: a.example\r\n\r\nGET /hello HTTP/1.1\r\n\r\n",
    )
    .await;
    assert_eq!((status, closed), (200, true));
    assert!(rest.starts_with("Hello, World!\nHTTP/1.1 400 "), "{rest}");
    assert_eq!(
        get(d.addr(), "/get").await.status,
        200,
        "the daemon serves on"
    );
}

#[tokio::test]
async fn server_name_and_port_come_from_a_valid_authority() {
    let d = Daemon::start(HTTPBIN);
    let port = d.addr().port().to_string();
    let server = |body: &str| {
        let doc: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let env = &doc["environ"];
        (
            env["SERVER_NAME"].as_str().unwrap_or_default().to_owned(),
            env["SERVER_PORT"].as_str().unwrap_or_default().to_owned(),
        )
    };
    for (head, name, want_port) in [
        (
            "GET /environ HTTP/1.1\r\nHost: a.example:8081\r\n",
            "a.example",
            "8081",
        ),
        // An empty port is the default one: the listener's.
        (
            "GET /environ HTTP/1.1\r\nHost: a.example:\r\n",
            "a.example",
            port.as_str(),
        ),
        (
            "GET /environ HTTP/1.1\r\nHost: [::1]:0081\r\n",
            "[::1]",
            "81",
        ),
        // HTTP/1.0 may leave Host out: the listener's address.
        ("GET /environ HTTP/1.0\r\n", "127.0.0.1", port.as_str()),
        // An absolute-form target names the authority, whatever the Host says.
        (
            "GET http://a.example:81/environ HTTP/1.1\r\nHost: h.example:82\r\n",
            "a.example",
            "81",
        ),
    ] {
        let (status, _, body) =
            exchange(d.addr(), &format!("{head}Connection: close\r\n\r\n")).await;
        assert_eq!(status, 200, "{head:?}: {body}");
        assert_eq!(
            server(&body),
            (name.to_owned(), want_port.to_owned()),
            "{head:?}"
        );
    }
}

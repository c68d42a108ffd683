//! The `status` page (JSON and Prometheus text) and the `ping` health check.

mod common;

use common::{Client, Daemon, get};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CONFIG: &str = r#"
[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:0"

[apps.bin]
type = "httpbin"

[apps.status]
type = "status"

[apps.ping]
type = "ping"

[[mount]]
path = "/"
app = "bin"

[[mount]]
path = "/status"
app = "status"

[[mount]]
path = "/ping"
app = "ping"
"#;

#[tokio::test]
async fn status_counts_what_happened() {
    let d = Daemon::start(CONFIG);
    let mut c = Client::connect(d.addr()).await; // stays open: one connection on the page
    for _ in 0..5 {
        assert_eq!(c.get("/get").await.status, 200);
    }
    assert_eq!(c.get("/no-such-page").await.status, 404);
    assert_eq!(c.get("/stream-bytes/5000").await.body.len(), 5000);

    // One request over FastCGI.
    let fcgi: std::net::SocketAddr = d.listening[1].1.parse().unwrap();
    let mut wire = bytes::BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/get"),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, false, params, b"");
    let mut s = tokio::net::TcpStream::connect(fcgi).await.unwrap();
    s.write_all(&wire).await.unwrap();
    s.read_to_end(&mut Vec::new()).await.unwrap();

    let doc = c.get("/status").await.json();
    assert_eq!(doc["requests"]["http"]["2xx"], 6);
    assert_eq!(doc["requests"]["http"]["4xx"], 1);
    assert_eq!(doc["requests"]["fastcgi"]["2xx"], 1);
    assert_eq!(doc["requests_total"], 8);
    assert_eq!(doc["in_flight"], 1, "the status request itself: {doc}");
    assert!(doc["bytes_sent"].as_u64().unwrap() >= 5000);
    assert!(doc["uptime_seconds"].as_f64().unwrap() > 0.0);
    let http_listener = format!("http {}", d.listening[0].1);
    assert_eq!(doc["connections"][&http_listener], 1, "{doc}");
    let buckets = doc["latency_seconds"]["buckets"].as_array().unwrap();
    assert_eq!(buckets.last().unwrap()["le"], "+Inf");
    assert_eq!(buckets.last().unwrap()["count"], 8);

    let text = c.get("/status?format=prometheus").await.text();
    let value = |metric: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(metric)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{metric} missing in:\n{text}"))
    };
    assert_eq!(
        value("gatewayd_requests_total{protocol=\"http\",status=\"2xx\"}"),
        7.0,
        "the JSON view counted too"
    );
    assert_eq!(
        value("gatewayd_requests_total{protocol=\"fastcgi\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(value("gatewayd_requests_in_flight"), 1.0);
    assert_eq!(
        value(&format!(
            "gatewayd_connections{{listener=\"{http_listener}\"}}"
        )),
        1.0
    );
    assert_eq!(value("gatewayd_request_duration_seconds_count"), 9.0);
    let mut last = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("gatewayd_request_duration_seconds_bucket"))
    {
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= last, "buckets are cumulative: {line}");
        last = n;
    }
    assert_eq!(last, 9.0);
    assert!(text.contains("# TYPE gatewayd_request_duration_seconds histogram"));
    assert_eq!(c.get("/status/metrics").await.status, 200);
}

#[tokio::test]
async fn ping_answers_pong() {
    let d = Daemon::start(CONFIG);
    let reply = get(d.addr(), "/ping").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "pong\n"));
}

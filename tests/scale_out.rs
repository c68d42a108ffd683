//! The scale-out recipe of the README, tested: two gatewayd instances behind one nginx
//! `upstream`, one stopped while requests run, and not one request fails (nginx's
//! `fastcgi_next_upstream` sends what the stopped one refuses to the other; the stopped one
//! drains what it had). Each instance also listens on its own loopback HTTP port for its health
//! check (`ping`) and its Prometheus scrape (`status`), which counts exactly what that instance
//! served. And `configs/gatewayd@.service`, the unit that runs several on one host, verifies.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Daemon, get, peers};
use gateway_core::Body;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal::SIGTERM;

/// One instance: FastCGI for nginx, HTTP on loopback for health checks and scrapes; its
/// `hello` app answers with the instance's name, so the test sees who served what.
fn instance(name: &str) -> String {
    format!(
        r#"
[server]
shutdown_timeout = "5s"

[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:0"

[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[apps.ping]
type = "ping"

[apps.status]
type = "status"

[apps.who]
type = "hello"
body = "{name}"

[[mount]]
path = "/-/ping"
app = "ping"

[[mount]]
path = "/-/status"
app = "status"

[[mount]]
path = "/"
app = "who"
"#
    )
}

/// One GET on a fresh connection; any failure is an `Err` (never a panic: the test counts them).
async fn fetch(addr: SocketAddr, path: &str) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "x")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    match status.as_u16() {
        200 => Ok(body),
        code => Err(format!("status {code}: {body}")),
    }
}

/// The value of one Prometheus sample line, e.g. `gatewayd_requests_total{...} 12`.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

const FASTCGI_2XX: &str = "gatewayd_requests_total{protocol=\"fastcgi\",status=\"2xx\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_of_two_instances_fails_no_request() {
    let mut a = Daemon::start(&instance("a"));
    let b = Daemon::start(&instance("b"));
    let (a_http, b_http): (SocketAddr, SocketAddr) = (
        a.listening[1].1.parse().unwrap(),
        b.listening[1].1.parse().unwrap(),
    );
    let nginx = peers::nginx(
        &format!(
            "upstream gatewayd {{ server {}; server {}; }}",
            a.listening[0].1, b.listening[0].1
        ),
        &format!(
            "    fastcgi_next_upstream error timeout;\n    include {}/configs/nginx-fastcgi.conf;",
            env!("CARGO_MANIFEST_DIR")
        ),
    );

    // Health checks, on each instance's own port.
    for addr in [a_http, b_http] {
        assert_eq!(get(addr, "/-/ping").await.text(), "pong\n");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let stop = stop.clone();
        let front = nginx.addr;
        tasks.push(tokio::spawn(async move {
            let (mut served, mut failures) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match fetch(front, "/").await {
                    Ok(who) => served.push(who),
                    Err(e) => failures.push(e),
                }
            }
            (served, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.signal(SIGTERM);
    let status = tokio::task::block_in_place(|| a.wait(Duration::from_secs(10)));
    assert!(status.success(), "a drained and exited 0: {status}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);

    let (mut served, mut failures) = (Vec::new(), Vec::new());
    for t in tasks {
        let (s, f) = t.await.unwrap();
        served.extend(s);
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        failures.len(),
        failures.len() + served.len(),
        &failures[..failures.len().min(5)],
        nginx.logs()
    );
    let by_a = served.iter().filter(|w| *w == "a").count();
    let by_b = served.iter().filter(|w| *w == "b").count();
    assert_eq!(by_a + by_b, served.len(), "only a and b answer");
    assert!(by_a > 0 && by_b > 0, "both served: a {by_a}, b {by_b}");
    eprintln!("served: a {by_a}, b {by_b}, none failed");

    // After the stop everything went to b: nginx needs nothing but the upstream list.
    for _ in 0..10 {
        assert_eq!(fetch(nginx.addr, "/").await.as_deref(), Ok("b"));
    }
    assert_eq!(get(nginx.addr, "/-/ping").await.text(), "pong\n");

    // b's own Prometheus endpoint counts exactly what b served over FastCGI.
    let metrics = fetch(b_http, "/-/status?format=prometheus").await.unwrap();
    let counted = sample(&metrics, FASTCGI_2XX);
    assert_eq!(
        counted,
        (by_b + 10 + 1) as u64, // the load, the ten after the stop, one ping through nginx
        "{metrics}"
    );
}

/// What nginx does to an instance as it stops: connects (the kernel completes the handshake
/// before gatewayd accepts, or as its listener closes), then sends the request. The drain
/// must answer it: it used to close every connection that had no request yet when SIGTERM
/// came, and nginx logged "upstream prematurely closed connection while reading response
/// header" for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_on_a_connection_made_before_sigterm_is_answered() {
    use proto_fastcgi::{RecordDecoder, client};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_util::codec::Decoder as _;

    let mut a = Daemon::start(&instance("a"));
    let addr: SocketAddr = a.listening[0].1.parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    a.signal(SIGTERM);
    a.wait_log("draining");
    // Past the drain's start: the connection has seen the shutdown by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut wire = bytes::BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ];
    client::put_request(&mut wire, 1, false, params, b"");
    stream.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("answered within the drain")
        .expect("no reset");
    let mut got = bytes::BytesMut::from(&got[..]);
    let mut reply = client::Replies::default();
    while let Some(record) = RecordDecoder.decode(&mut got).unwrap() {
        reply.push(record);
    }
    assert!(reply.ended(1), "answered before the close: {reply:?}");
    assert_eq!(&reply.by_id[&1].body()[..], b"a");
    let status = tokio::task::block_in_place(|| a.wait(Duration::from_secs(10)));
    assert!(status.success(), "a drained and exited 0: {status}");
}

/// `gatewayd@.service` (several instances on one host) passes `systemd-analyze verify`, with
/// ExecStart pointed at this build; `--man=no` because its man pages are only installed by the
/// package (scripts/deb-test.sh verifies the installed units with them).
#[test]
fn the_instance_template_verifies() {
    common::verify_units(&["gatewayd@.service"], &["--man=no"]);
}

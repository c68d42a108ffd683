//! `processes = N`: a master and N worker processes, for real: the binary, its sockets, its
//! children killed and replaced, SIGTERM and SIGHUP under load.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, get};
use gateway_core::Body;
use nix::sys::signal::Signal::{self, SIGHUP, SIGKILL, SIGSEGV, SIGTERM};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `processes` workers serving hello (`body`) and httpbin over HTTP, FastCGI (unix socket),
/// SCGI and uwsgi, with the status page; `extra` is appended.
fn config(processes: usize, body: &str, extra: &str) -> String {
    format!(
        r#"[server]
processes = {processes}
shutdown_timeout = "5s"

[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[[listen]]
protocol = "fastcgi"
address = "unix:{{dir}}/fcgi.sock"

[[listen]]
protocol = "scgi"
address = "127.0.0.1:0"

[[listen]]
protocol = "uwsgi"
address = "127.0.0.1:0"

[apps.hi]
type = "hello"
body = "{body}"

[apps.bin]
type = "httpbin"

[apps.status]
type = "status"

[[mount]]
path = "/"
app = "bin"

[[mount]]
path = "/hello"
app = "hi"

[[mount]]
path = "/status"
app = "status"
{extra}"#
    )
}

/// The status page, from whichever worker answers.
async fn status(d: &Daemon) -> Value {
    let reply = get(d.addr(), "/status").await;
    assert_eq!(reply.status, 200);
    reply.json()
}

/// The pids of the workers the status page lists.
async fn worker_pids(d: &Daemon) -> BTreeSet<i64> {
    let page = status(d).await;
    let workers = page["workers"].as_array().cloned().unwrap_or_default();
    workers.iter().filter_map(|w| w["pid"].as_i64()).collect()
}

/// Polls `check` every 50 ms until it holds (`what` names it), for up to 15 s.
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alive(pid: i64) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok()
}

fn signal(pid: i64, sig: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), sig);
}

/// Rewrites the config and sends SIGHUP to the master.
fn rewrite_and_hup(d: &Daemon, config: &str) {
    let config = config.replace("{dir}", &d.dir.path().display().to_string());
    std::fs::write(d.config_path(), config).unwrap();
    d.signal(SIGHUP);
}

/// Waits until the log holds `needle` `n` times (15 s at most).
fn wait_log_count(d: &Daemon, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.stderr_now().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "the log never said {needle:?} {n} times:\n{}",
            d.stderr_now()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Requests `path` from `tasks` tasks until `stop`: even tasks keep their connection alive
/// (as a pooling client does: a connection the server said it closes, or that is closed
/// before a request is sent on it, is replaced, and no request is ever sent twice), odd ones
/// open a connection per request. Returns (answered, failures).
async fn load(
    addr: SocketAddr,
    tasks: usize,
    stop: Arc<AtomicBool>,
    path: &'static str,
) -> (usize, Vec<String>) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (ok, failures, stop) = (ok.clone(), failures.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let keep_alive = t % 2 == 0;
            let mut conn: Option<Sender> = None;
            while !stop.load(Ordering::Relaxed) {
                if let Some(sender) = &mut conn
                    && (!keep_alive || sender.ready().await.is_err())
                {
                    conn = None;
                }
                let sender = match &mut conn {
                    Some(sender) => sender,
                    None => match connect(addr).await {
                        Ok(sender) => conn.insert(sender),
                        Err(e) => {
                            failures.lock().unwrap().push(format!("connect: {e}"));
                            continue;
                        }
                    },
                };
                let req = http::Request::get(path)
                    .header("host", "x")
                    .body(Body::empty())
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(res) if res.status() == 200 => {
                        let closes = res
                            .headers()
                            .get("connection")
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        use http_body_util::BodyExt as _;
                        match res.into_body().collect().await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                failures.lock().unwrap().push(format!("body: {e}"));
                                0
                            }
                        };
                        if closes {
                            conn = None;
                        }
                    }
                    Ok(res) => {
                        let status = res.status();
                        failures.lock().unwrap().push(format!("status {status}"));
                    }
                    Err(e) => {
                        failures.lock().unwrap().push(format!("request: {e}"));
                        conn = None;
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    (ok.load(Ordering::Relaxed), failures)
}

/// One FastCGI GET of `uri` on the unix socket: the whole reply.
async fn fastcgi_get(path: &std::path::Path, uri: &str) -> String {
    let mut wire = bytes::BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", uri.as_bytes()),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, false, params, b"");
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(&wire).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("a FastCGI reply")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `wire` on a new TCP connection, half-closes, reads until the daemon closes.
async fn exchange(addr: &str, wire: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(wire).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("a reply")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

const CGI_VARS: &[(&str, &str)] = &[
    ("CONTENT_LENGTH", "0"),
    ("REQUEST_METHOD", "GET"),
    ("REQUEST_URI", "/hello"),
    ("SERVER_NAME", "x"),
    ("SERVER_PORT", "80"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
];

async fn scgi_get(addr: &str) -> String {
    let mut header = Vec::new();
    for (n, v) in CGI_VARS.iter().chain(&[("SCGI", "1")]) {
        header.extend_from_slice(n.as_bytes());
        header.push(0);
        header.extend_from_slice(v.as_bytes());
        header.push(0);
    }
    let mut wire = format!("{}:", header.len()).into_bytes();
    wire.extend_from_slice(&header);
    wire.push(b',');
    exchange(addr, &wire).await
}

async fn uwsgi_get(addr: &str) -> String {
    let vars = CGI_VARS.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    exchange(addr, &proto_uwsgi::client::packet(0, 0, vars)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_workers_serve_every_protocol_and_the_kernel_spreads_connections() {
    let d = Daemon::start(&config(3, "hi", ""));
    let page = status(&d).await;
    assert_eq!(page["master"]["pid"], d.pid());
    assert_eq!(page["master"]["processes"], 3);
    until("three workers on the page", async || {
        worker_pids(&d).await.len() == 3
    })
    .await;
    let workers = worker_pids(&d).await;
    assert!(
        !workers.contains(&i64::from(d.pid())),
        "the master serves nothing"
    );

    // Fresh connections from several clients at once: each worker answers some.
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = d.addr();
    while seen.lock().unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "answered by {:?} only",
            seen.lock().unwrap()
        );
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let seen = seen.clone();
            tasks.push(tokio::spawn(async move {
                let pid = get(addr, "/status").await.json()["pid"].as_i64();
                seen.lock().unwrap().extend(pid);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    assert_eq!(
        *seen.lock().unwrap(),
        workers,
        "the answering pids are the workers'"
    );

    // Every protocol is served by the workers.
    assert_eq!(get(d.addr(), "/hello").await.text(), "hi");
    let fcgi = fastcgi_get(&d.dir.path().join("fcgi.sock"), "/hello").await;
    assert!(fcgi.contains("hi"), "{fcgi}");
    let scgi = scgi_get(&d.listening[2].1).await;
    assert!(
        scgi.starts_with("Status: 200") && scgi.ends_with("hi"),
        "{scgi}"
    );
    let uwsgi = uwsgi_get(&d.listening[3].1).await;
    assert!(
        uwsgi.starts_with("HTTP/1.1 200") && uwsgi.ends_with("hi"),
        "{uwsgi}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfaulted_worker_is_replaced_and_the_others_serve_on() {
    let d = Daemon::start(&config(2, "hi", ""));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    let before = worker_pids(&d).await;
    let listeners = status(&d).await["connections"].as_object().map(|m| m.len());
    assert_eq!(listeners, Some(4));

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(d.addr(), 6, stop.clone(), "/hello"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = *before.first().unwrap();
    // Rust's runtime lets the first SIGSEGV that is not a fault pass (its stack-overflow
    // handler resets the action and returns); a real fault, or the next one, kills.
    while alive(victim) {
        signal(victim, SIGSEGV);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| d.wait_log("was killed by SIGSEGV; starting another in"));
    until("a new worker in the dead one's place", async || {
        let now = worker_pids(&d).await;
        now.len() == 2 && !now.contains(&victim)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = running.await.unwrap();
    // Only what the dead worker had in hand when it died can fail: one request per client.
    assert!(failures.len() <= 6, "{failures:?}");
    assert!(ok > 100, "only {ok} answered");

    let after = status(&d).await;
    assert_eq!(after["connections"].as_object().map(|m| m.len()), listeners);
    let fcgi = fastcgi_get(&d.dir.path().join("fcgi.sock"), "/hello").await;
    assert!(
        fcgi.contains("hi"),
        "the unix socket is still there: {fcgi}"
    );
    assert!(alive(i64::from(d.pid())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_exiting_with_code_1_is_replaced_with_a_backoff() {
    // A replacement whose app cannot be built (its CGI root is gone) exits 1 before it is
    // ready; it is replaced again and again, further apart each time, until the root is back.
    let root = tempfile::tempdir().unwrap();
    let cgi_root = root.path().join("cgi-bin");
    std::fs::create_dir(&cgi_root).unwrap();
    let extra = format!(
        "\n[apps.cgi]\ntype = \"cgi\"\nroot = \"{}\"\n\n[[mount]]\npath = \"/cgi\"\napp = \"cgi\"\n",
        cgi_root.display()
    );
    let d = Daemon::start(&config(2, "hi", &extra));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    let before = worker_pids(&d).await;

    let aside = root.path().join("aside");
    std::fs::rename(&cgi_root, &aside).unwrap();
    let victim = *before.first().unwrap();
    signal(victim, SIGKILL);
    tokio::task::block_in_place(|| {
        d.wait_log("was killed by SIGKILL; starting another in 100ms");
        wait_log_count(&d, "exited with code 1", 3);
    });
    // The other worker serves meanwhile.
    for _ in 0..20 {
        assert_eq!(get(d.addr(), "/hello").await.text(), "hi");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = d.stderr_now();
    let failed = log.matches("exited with code 1").count();
    // 100, 200, 400, 800 ms... : five tries at most in the 2 s or so since the kill.
    assert!((3..=6).contains(&failed), "{failed} tries:\n{log}");
    assert!(
        log.contains("cannot be used"),
        "the worker's own error is logged:\n{log}"
    );
    assert!(log.contains("starting another in 400ms"), "{log}");

    std::fs::rename(&aside, &cgi_root).unwrap();
    until("the slot filled again", async || {
        let now = worker_pids(&d).await;
        now.len() == 2 && !now.contains(&victim)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_workers_and_the_master_exits_0() {
    let mut d = Daemon::start(&config(2, "hi", ""));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    let workers = worker_pids(&d).await;
    let addr = d.addr();
    let slow = tokio::spawn(async move { get(addr, "/delay/1").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.signal(SIGTERM);
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request is answered");
    let status = tokio::task::block_in_place(|| d.wait(Duration::from_secs(10)));
    assert!(status.success(), "{status:?}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived its master");
    }
    assert!(
        !d.dir.path().join("fcgi.sock").exists(),
        "the master removes its unix socket"
    );
    let log = d.stderr();
    assert!(log.contains("stopping the workers"), "{log}");
    assert!(log.contains("every worker has exited"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_reload_under_load_fails_no_request_and_every_worker_is_new() {
    let d = Daemon::start(&config(2, "old", ""));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    let before = worker_pids(&d).await;

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(d.addr(), 8, stop.clone(), "/hello"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    rewrite_and_hup(&d, &config(2, "new", ""));
    tokio::task::block_in_place(|| wait_log_count(&d, "reloaded: every worker is new", 1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = running.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 200, "only {ok} answered");

    assert_eq!(get(d.addr(), "/hello").await.text(), "new");
    until("only new workers left", async || {
        let now = worker_pids(&d).await;
        now.len() == 2 && now.is_disjoint(&before)
    })
    .await;
    for pid in before {
        assert!(!alive(pid), "old worker {pid} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_on_sighup_keeps_the_old_workers() {
    let d = Daemon::start(&config(2, "old", ""));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    let before = worker_pids(&d).await;

    // Refused by the master itself: the schema, with its place.
    let typo = config(2, "new", "").replace("shutdown_timeout", "shutdown_timout");
    rewrite_and_hup(&d, &typo);
    tokio::task::block_in_place(|| wait_log_count(&d, "reload failed, the old config stays", 1));
    let place = format!(
        "{}:3:1: unknown field `shutdown_timout`",
        d.config_path().display()
    );
    assert!(d.stderr_now().contains(&place), "{}", d.stderr_now());
    assert_eq!(get(d.addr(), "/hello").await.text(), "old");
    assert_eq!(worker_pids(&d).await, before);

    // Refused by the first new worker: only the app type knows its keys.
    let bad_app = config(2, "new", "").replace("body = ", "bdy = ");
    rewrite_and_hup(&d, &bad_app);
    tokio::task::block_in_place(|| {
        wait_log_count(&d, "reload failed: the new worker exited with code 1", 1)
    });
    assert!(
        d.stderr_now().contains("unknown field `bdy`"),
        "{}",
        d.stderr_now()
    );
    assert_eq!(get(d.addr(), "/hello").await.text(), "old");
    until("the failed worker gone from the page", async || {
        worker_pids(&d).await == before
    })
    .await;

    // A good one after them goes through.
    rewrite_and_hup(&d, &config(2, "new", ""));
    tokio::task::block_in_place(|| wait_log_count(&d, "reloaded: every worker is new", 1));
    assert_eq!(get(d.addr(), "/hello").await.text(), "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_totals_every_worker() {
    let d = Daemon::start(&config(2, "hi", ""));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // the files catch up
    // A page counts every request answered before it, not itself.
    let mut expected = status(&d).await["requests_total"].as_u64().unwrap() + 1;
    // Batches of requests from clients at once, until both workers have answered some.
    let addr = d.addr();
    for round in 0.. {
        assert!(round < 20, "one worker answers everything");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            tasks.push(tokio::spawn(async move {
                for _ in 0..8 {
                    assert_eq!(get(addr, "/get").await.status, 200);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        expected += 64;
        let page = status(&d).await;
        expected += 1;
        let workers = page["workers"].as_array().cloned().unwrap_or_default();
        if workers
            .iter()
            .all(|w| w["requests_total"].as_u64() > Some(0))
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let page = status(&d).await;
    let workers = page["workers"].as_array().cloned().unwrap_or_default();
    assert_eq!(workers.len(), 2);
    let per_worker: u64 = workers
        .iter()
        .filter_map(|w| w["requests_total"].as_u64())
        .sum();
    assert_eq!(
        page["requests_total"].as_u64(),
        Some(per_worker),
        "{page:#}"
    );
    assert_eq!(per_worker, expected, "{page:#}");
    assert_eq!(page["requests"]["http"]["2xx"].as_u64(), Some(expected));

    tokio::time::sleep(Duration::from_millis(400)).await;
    let metrics = get(d.addr(), "/status/metrics").await.text();
    assert!(metrics.contains("gatewayd_workers 2"), "{metrics}");
    let total: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("gatewayd_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, expected + 1, "{metrics}");
    assert_eq!(
        metrics
            .matches("gatewayd_worker_requests_total{slot=")
            .count(),
        2
    );
}

#[test]
fn processes_must_be_a_sane_count_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    for (value, shown) in [("0", "0"), ("100000", "100000"), ("-2", "-2")] {
        let text = config(1, "x", "").replace("processes = 1", &format!("processes = {value}"));
        std::fs::write(&path, text).unwrap();
        let (code, err) = common::check(&path);
        assert_eq!(code, Some(1), "{err}");
        let expected = format!(
            "{}:2:13: processes must be 1 to 1024 (worker processes), not {shown}",
            path.display()
        );
        assert!(err.contains(&expected), "{err}");
        // `serve` refuses it the same way, before anything is bound.
        let out = std::process::Command::new(common::gatewayd_bin())
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&expected));
    }
}

#[tokio::test]
async fn systemd_hears_the_master_alone() {
    let mut notify = common::Notify::bind();
    let d = Daemon::start_full(
        &common::gatewayd_bin(),
        &config(2, "x", ""),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.clone()),
            ("WATCHDOG_USEC", "200000".into()),
        ],
    );
    notify.expect("READY=1").await;
    notify
        .expect("STATUS=serving on 4 listeners with 2 workers")
        .await;
    notify.expect("WATCHDOG=1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    notify.drain();
    // The workers have no socket to tell systemd they are ready: one READY, the master's.
    assert_eq!(notify.seen.matches("READY=1").count(), 1, "{}", notify.seen);
    notify.seen.clear();
    rewrite_and_hup(&d, &config(2, "y", ""));
    notify.expect("RELOADING=1").await;
    notify
        .expect("STATUS=reloaded; serving on 4 listeners with 2 workers")
        .await;
    assert!(notify.seen.contains("READY=1"), "{}", notify.seen);
    // Every 5 seconds, the workers' counts together.
    notify.expect("STATUS=2 workers, 0 in flight, ").await;
    notify.seen.clear();
    d.signal(SIGTERM);
    notify.expect("STOPPING=1").await;
}

#[tokio::test]
async fn the_master_takes_systemds_sockets_and_hands_them_down() {
    let port = common::peers::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let text = config(2, "activated", "")
        .replace("address = \"127.0.0.1:0\"", "address = \"systemd:web\"")
        .replace("{dir}", &dir.path().display().to_string());
    // One socket from systemd for the three TCP entries would not do: keep only HTTP on it.
    let text = text
        .replace(
            "protocol = \"scgi\"\naddress = \"systemd:web\"",
            "protocol = \"scgi\"\naddress = \"127.0.0.1:0\"",
        )
        .replace(
            "protocol = \"uwsgi\"\naddress = \"systemd:web\"",
            "protocol = \"uwsgi\"\naddress = \"127.0.0.1:0\"",
        );
    std::fs::write(&path, text).unwrap();
    let child = std::process::Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{port}"),
            "--fdname=web",
            "-E",
            "RUST_LOG=info",
        ])
        .arg(common::gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package)");
    let mut child = KillOnDrop(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection starts gatewayd; its workers answer it.
    let reply = tokio::time::timeout(Duration::from_secs(15), get(addr, "/hello"))
        .await
        .expect("an answer");
    let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert_eq!(reply.text(), "activated", "{}", log());
    // A worker serves as soon as it is ready, the other may still be starting.
    until("two workers", async || {
        let page = get(addr, "/status").await.json();
        page["workers"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    let page = get(addr, "/status").await.json();
    assert_eq!(
        page["master"]["pid"],
        child.0.id(),
        "systemd's child is the master"
    );
    nix::sys::signal::kill(Pid::from_raw(child.0.id() as i32), SIGTERM).unwrap();
    assert!(child.0.wait().unwrap().success(), "{}", log());
}

/// A child that a failed test does not leave running (its workers follow their master).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_first_worker_that_cannot_build_its_apps_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let text = config(2, "x", "")
        .replace("body = ", "bdy = ")
        .replace("{dir}", &dir.path().display().to_string());
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(common::gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let place = format!("{}:23:1: unknown field `bdy`", path.display());
    assert!(err.contains(&place), "the worker's error, placed: {err}");
    assert!(err.contains("before it was ready"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    assert!(
        !dir.path().join("fcgi.sock").exists(),
        "the socket is removed"
    );
}

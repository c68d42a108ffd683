//! Operations: reload and drain under load with zero failed requests, systemd notifications
//! on a socket the test listens on, and socket activation through the real
//! `systemd-socket-activate`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, gatewayd_bin, get};
use gateway_core::Body;
use nix::sys::signal::Signal::{SIGHUP, SIGTERM};

fn hello_config(body: &str, extra: &str) -> String {
    format!(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n{extra}\n\
         [apps.hi]\ntype = \"hello\"\nbody = \"{body}\"\n\n[apps.bin]\ntype = \"httpbin\"\n\n\
         [[mount]]\npath = \"/\"\napp = \"bin\"\n\n[[mount]]\npath = \"/hello\"\napp = \"hi\"\n"
    )
}

/// Rewrites the daemon's config, sends SIGHUP and waits for the outcome in the log.
fn reload(d: &Daemon, config: &str, expect: &str, count: &mut usize) {
    std::fs::write(d.config_path(), config).unwrap();
    d.signal(SIGHUP);
    *count += 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.stderr_now().matches(expect).count() < *count {
        assert!(
            Instant::now() < deadline,
            "no {expect:?} in:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn reload_swaps_apps_and_keeps_the_socket() {
    let d = Daemon::start(&hello_config("one", ""));
    assert_eq!(get(d.addr(), "/hello").await.text(), "one");
    let mut reloads = 0;
    reload(&d, &hello_config("two", ""), "reloaded", &mut reloads);
    assert_eq!(
        get(d.addr(), "/hello").await.text(),
        "two",
        "same port, new app"
    );
}

#[tokio::test]
async fn reload_opens_and_closes_listeners() {
    let mut d = Daemon::start(&hello_config("x", ""));
    let sock = d.dir.path().join("added.sock");
    let added = format!(
        "\n[[listen]]\nprotocol = \"http\"\naddress = \"unix:{}\"\n",
        sock.display()
    );
    let mut reloads = 0;
    reload(&d, &hello_config("x", &added), "reloaded", &mut reloads);
    d.wait_listening(2);
    assert_eq!(d.listening[1].1, format!("unix:{}", sock.display()));
    let mut c = common::Client::connect_unix(&sock).await;
    assert_eq!(c.get("/hello").await.text(), "x");
    drop(c);
    reload(&d, &hello_config("x", ""), "reloaded", &mut reloads);
    d.wait_log("closing a listener the config no longer names");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sock.exists(), "the removed listener's socket file is gone");
    assert_eq!(
        get(d.addr(), "/hello").await.status,
        200,
        "the kept one serves on"
    );
}

#[tokio::test]
async fn an_invalid_config_on_reload_keeps_the_old_one() {
    let d = Daemon::start(&hello_config("old", ""));
    let mut reloads = 0;
    reload(
        &d,
        &hello_config("new", "adress = \"oops\"\n"),
        "reload failed",
        &mut reloads,
    );
    let log = d.stderr();
    let place = format!("{}:4:1: unknown field `adress`", d.config_path().display());
    assert!(log.contains(&place), "the reason names the place: {log}");
    assert_eq!(get(d.addr(), "/hello").await.text(), "old");
}

/// Sends requests from `tasks` tasks until `stop`, half on keep-alive connections and half on
/// a new connection each; returns (answered, failed).
async fn load(
    addr: std::net::SocketAddr,
    tasks: usize,
    stop: Arc<AtomicBool>,
    path: &'static str,
) -> (usize, Vec<String>) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (ok, failures, stop) = (ok.clone(), failures.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let keep_alive = t % 2 == 0;
            let mut conn = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() || !keep_alive {
                    conn = Some(raw_client(addr).await);
                }
                let Some(Ok(sender)) = conn.as_mut() else {
                    failures.lock().unwrap().push("connect failed".into());
                    conn = None;
                    continue;
                };
                let req = http::Request::get(path)
                    .header("host", "x")
                    .body(Body::empty())
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(res) if res.status() == 200 => {
                        use http_body_util::BodyExt as _;
                        match res.into_body().collect().await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                failures.lock().unwrap().push(format!("body: {e}"));
                                0
                            }
                        };
                    }
                    Ok(res) => failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", res.status())),
                    Err(e) => failures.lock().unwrap().push(format!("request: {e}")),
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

type Sender = hyper::client::conn::http1::SendRequest<Body>;

async fn raw_client(addr: std::net::SocketAddr) -> std::io::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_failures_while_reloading_under_load() {
    let d = Daemon::start(&hello_config("a", ""));
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(d.addr(), 8, stop.clone(), "/hello"));
    let mut reloads = 0;
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let body = if round % 2 == 0 { "b" } else { "a" };
        let d = &d;
        let n = &mut reloads;
        tokio::task::block_in_place(|| reload(d, &hello_config(body, ""), "reloaded", n));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = running.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 200, "only {ok} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_failures_while_draining_under_load() {
    let mut d = Daemon::start(&hello_config("a", ""));
    let addr = d.addr();
    // Each request takes 300 ms, so many are in flight when the drain starts; every one that
    // had its connection before SIGTERM must be answered.
    let draining = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (draining, ok, failures) = (draining.clone(), ok.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(mut sender) = raw_client(addr).await else {
                    return;
                };
                let connected_before_drain = !draining.load(Ordering::SeqCst);
                let req = http::Request::get("/delay/0.3")
                    .header("host", "x")
                    .body(Body::empty())
                    .unwrap();
                let answered = match sender.send_request(req).await {
                    Ok(res) if res.status() == 200 => {
                        use http_body_util::BodyExt as _;
                        res.into_body().collect().await.is_ok()
                    }
                    _ => false,
                };
                match (answered, connected_before_drain) {
                    (true, _) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    (false, true) => failures
                        .lock()
                        .unwrap()
                        .push("an in-flight request failed".into()),
                    (false, false) => return, // connected while the listener closed: never accepted
                }
                if draining.load(Ordering::SeqCst) {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    draining.store(true, Ordering::SeqCst);
    d.signal(SIGTERM);
    for t in tasks {
        t.await.unwrap();
    }
    let status = tokio::task::block_in_place(|| d.wait(Duration::from_secs(10)));
    assert!(status.success());
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        ok.load(Ordering::Relaxed) >= 32,
        "{} answered",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn systemd_notifications() {
    let mut notify = common::Notify::bind();
    let d = Daemon::start_full(
        &gatewayd_bin(),
        &hello_config("x", ""),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.clone()),
            ("WATCHDOG_USEC", "200000".into()),
        ],
    );
    notify.expect("READY=1").await;
    notify.expect("STATUS=serving on 1 listeners").await;
    notify.expect("WATCHDOG=1").await;
    notify.seen.clear();
    d.signal(SIGHUP);
    notify.expect("RELOADING=1").await;
    notify.expect("MONOTONIC_USEC=").await;
    notify.expect("READY=1").await;
    // Every 5 seconds, the counts.
    notify.expect("in flight, 0 connections, ").await;
    notify.seen.clear();
    d.signal(SIGTERM);
    notify.expect("STOPPING=1").await;
}

/// `systemd-socket-activate` (Debian's systemd package) binds the sockets, names them, and
/// starts gatewayd with them on the first connection.
fn socket_activate(
    listen: &[String],
    names: &str,
    config: &str,
    datagram: bool,
) -> (std::process::Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new("systemd-socket-activate");
    if datagram {
        cmd.arg("--datagram");
    }
    for l in listen {
        cmd.args(["-l", l]);
    }
    cmd.arg(format!("--fdname={names}"))
        .args(["-E", "RUST_LOG=info"])
        .arg(gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
    let child = cmd
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package)");
    (child, dir)
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn socket_activation_by_name() {
    let (http, fcgi) = (common::peers::free_port(), common::peers::free_port());
    let config = "[[listen]]\nprotocol = \"fastcgi\"\naddress = \"systemd:fcgi\"\n\n\
                  [[listen]]\nprotocol = \"http\"\naddress = \"systemd:web\"\n\n\
                  [apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n";
    let listen = [format!("127.0.0.1:{http}"), format!("127.0.0.1:{fcgi}")];
    let (mut child, dir) = socket_activate(&listen, "web:fcgi", config, false);
    wait_port(http);
    let reply = get(([127, 0, 0, 1], http).into(), "/environ").await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
    );
    assert_eq!(reply.json()["protocol"], "http");

    // The second socket, by its own name, speaks FastCGI.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut wire = bytes::BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_URI", b"/environ"),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
        (b"REQUEST_METHOD", b"GET"),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, false, params, b"");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", fcgi))
        .await
        .unwrap();
    s.write_all(&wire).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&out).contains("\"protocol\": \"fastcgi\""));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn socket_activation_checks_the_socket_kind_and_name() {
    let port = common::peers::free_port();
    let config = "[[listen]]\nprotocol = \"http\"\naddress = \"systemd:web\"\n";
    // A datagram socket where a stream one is expected.
    let (mut child, dir) = socket_activate(&[format!("127.0.0.1:{port}")], "web", config, true);
    std::thread::sleep(Duration::from_millis(200));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"wake up", ("127.0.0.1", port)).unwrap(); // activation starts gatewayd
    assert!(!child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("is not a stream socket"), "{log}");

    // A name systemd did not pass.
    let port = common::peers::free_port();
    let (mut child, dir) = socket_activate(&[format!("127.0.0.1:{port}")], "other", config, false);
    wait_port(port);
    assert!(!child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("systemd passed no socket named \"web\""),
        "{log}"
    );
}

/// The shipped units pass `systemd-analyze verify` (with ExecStart pointed at this build).
#[test]
fn the_systemd_units_verify() {
    common::verify_units(&["gatewayd.socket", "gatewayd.service"], &[]);
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let service = std::fs::read_to_string(configs.join("gatewayd.service")).unwrap();
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RuntimeDirectory=gatewayd",
    ] {
        assert!(service.contains(hardening), "{hardening}");
    }
    let socket = std::fs::read_to_string(configs.join("gatewayd.socket")).unwrap();
    assert!(socket.contains("SocketMode=0660") && socket.contains("SocketGroup=www-data"));
}

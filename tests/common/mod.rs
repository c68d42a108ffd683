//! The end-to-end harness: start the real binary on a config, find its ports, talk HTTP.
#![allow(dead_code)] // each test file uses a different part

pub mod front;
pub mod peers;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::Body;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The `gatewayd` binary cargo built for these tests.
pub fn gatewayd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatewayd"))
}

/// An example binary cargo built next to the test binaries (`cargo test` builds examples).
pub fn example_bin(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` for all targets (it builds the examples)",
        bin.display()
    );
    bin
}

/// Runs `systemd-analyze verify` (with `args`) on the shipped units named (from `configs/`),
/// their ExecStart pointed at this build, and asserts that it passes without a warning.
pub fn verify_units(units: &[&str], args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").args(args);
    for unit in units {
        let text = std::fs::read_to_string(configs.join(unit))
            .unwrap()
            .replace("/usr/bin/gatewayd", &gatewayd_bin().display().to_string());
        std::fs::write(dir.path().join(unit), text).unwrap();
        cmd.arg(dir.path().join(unit));
    }
    let out = cmd
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("ignoring") && !text.contains("Unknown"),
        "{text}"
    );
}

/// Runs `gatewayd check --config CONFIG`: its exit code and its stderr.
pub fn check(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(gatewayd_bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run gatewayd check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Child,
    /// Every `listening PROTOCOL ADDRESS` line, in order.
    pub listening: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
    stdout: std::sync::Mutex<mpsc::Receiver<String>>,
}

impl Daemon {
    /// Starts `gatewayd serve` on `config` (written to a temp dir; `{dir}` in it is replaced
    /// by that dir) and waits until every listener is up.
    pub fn start(config: &str) -> Daemon {
        Daemon::start_bin(&gatewayd_bin(), config)
    }

    /// The same with another binary built on the gatewayd library.
    pub fn start_bin(bin: &Path, config: &str) -> Daemon {
        Daemon::start_with(bin, config, &[])
    }

    /// The same with extra command-line arguments after `serve --config FILE`.
    pub fn start_with(bin: &Path, config: &str, args: &[&str]) -> Daemon {
        Daemon::start_full(bin, config, args, &[])
    }

    /// The same with extra environment variables too.
    pub fn start_full(bin: &Path, config: &str, args: &[&str], envs: &[(&str, String)]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let expected = config.matches("[[listen]]").count();
        let path = dir.path().join("gatewayd.toml");
        std::fs::write(&path, config).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&path)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn gatewayd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            listening: Vec::new(),
            dir,
            stdout: std::sync::Mutex::new(rx),
        };
        daemon.wait_listening(expected);
        daemon
    }

    /// Reads stdout until `count` listeners have been announced in all (20 s at most).
    pub fn wait_listening(&mut self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.listening.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.stdout.lock().unwrap().recv_timeout(left);
            match line {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening ") {
                        let (proto, addr) = rest.split_once(' ').expect("listening PROTO ADDR");
                        self.listening.push((proto.into(), addr.into()));
                    }
                }
                Err(_) => panic!(
                    "gatewayd did not announce {count} listeners:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// The config file the daemon runs on.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gatewayd.toml")
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the log holds `needle` (5 s at most).
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.stderr_now().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the log never said {needle:?}:\n{}",
                self.stderr_now()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first TCP address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listening
            .iter()
            .find_map(|(_, a)| a.parse().ok())
            .expect("a TCP listener")
    }

    /// What the daemon logged until now: the daemon writes its log lines in batches, at most
    /// 100 ms after the first of a batch, so this waits out one batch (with room for a loaded
    /// machine) before it reads.
    pub fn stderr(&self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        self.stderr_now()
    }

    /// What the daemon's log holds at this instant (lines of the last 100 ms may be missing).
    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("kill");
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gatewayd did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- gatewayd stderr ---\n{}", self.stderr());
        }
    }
}

/// Writes `raw` on a new TCP connection and reads until `done` says the reply is complete
/// (or the peer closes, or 10 s pass).
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 16384];
    while !done(&got) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// How often `needle` occurs in `hay`.
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 client connection (keep-alive).
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client::over(stream, addr).await
    }

    /// A client over a unix socket; `Host` defaults to `localhost`.
    pub async fn connect_unix(path: &Path) -> Client {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .expect("connect unix");
        Client::over(stream, "127.0.0.1:80".parse().expect("addr")).await
    }

    async fn over<S>(stream: S, addr: SocketAddr) -> Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Client { sender, addr }
    }

    /// Sends a request; the Host header is set when missing.
    pub async fn send(&mut self, mut req: http::Request<Body>) -> Reply {
        if !req.headers().contains_key("host") {
            let host = self.addr.to_string().parse().expect("host");
            req.headers_mut().insert("host", host);
        }
        let res = self.sender.send_request(req).await.expect("send request");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("read body").to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(req("GET", path, Body::empty())).await
    }
}

/// A request with no extra headers.
pub fn req(method: &str, path: &str, body: impl Into<Body>) -> http::Request<Body> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(body.into())
        .expect("request")
}

/// One request on a fresh connection.
pub async fn send(addr: SocketAddr, req: http::Request<Body>) -> Reply {
    Client::connect(addr).await.send(req).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, req("GET", path, Body::empty())).await
}

/// Hex SHA-256.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A config serving httpbin over HTTP on a kernel-chosen port, linted, at `/` and `/sub`.
pub const HTTPBIN: &str = r#"
[server]
shutdown_timeout = "5s"
max_body_size = "8MiB"

[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[apps.bin]
type = "httpbin"

[apps.hello]
type = "hello"

[[mount]]
path = "/"
app = "bin"
lint = true

[[mount]]
path = "/sub"
app = "bin"
lint = true

[[mount]]
path = "/hello"
app = "hello"
lint = true
"#;

/// A stand-in for systemd's notification socket (`NOTIFY_SOCKET`), keeping what it hears.
pub struct Notify {
    socket: tokio::net::UnixDatagram,
    /// Where it listens: the value for `NOTIFY_SOCKET`.
    pub path: String,
    /// The messages heard so far, one per line.
    pub seen: String,
    _dir: tempfile::TempDir,
}

impl Notify {
    pub fn bind() -> Notify {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        Notify {
            socket: tokio::net::UnixDatagram::bind(&path).unwrap(),
            path: path.display().to_string(),
            seen: String::new(),
            _dir: dir,
        }
    }

    /// Waits until what was heard contains `needle` (10 s at most).
    pub async fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    self.seen.push('\n');
                }
                _ => panic!("no {needle:?} among:\n{}", self.seen),
            }
        }
    }

    /// Takes whatever arrived without waiting.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            self.seen.push('\n');
        }
    }
}

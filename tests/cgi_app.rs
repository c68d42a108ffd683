//! The `cgi` app type: external CGI scripts (tests/fixtures/cgi-bin) hosted behind gatewayd.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Client, Daemon, get, req, send, sha256};
use gateway_core::Body;

/// The fixtures, copied into a temp dir with a symlink that points out of it.
fn scripts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgi-bin");
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::os::unix::fs::symlink("/bin/sh", dir.path().join("escape.sh")).unwrap();
    dir
}

fn start(root: &Path, extra: &str) -> Daemon {
    Daemon::start(&format!(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [apps.scripts]\ntype = \"cgi\"\nroot = \"{}\"\ntimeout = \"2s\"\npass_env = [\"PATH\"]\n{extra}\n\n\
         [[mount]]\npath = \"/cgi\"\napp = \"scripts\"\nlint = true\n",
        root.display()
    ))
}

/// `NAME=value` lines as printed by env.sh.
fn var<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

/// Whether a process is alive (a zombie is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_for_pid(file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the script never wrote its pid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_dead(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_script_gets_the_rfc_3875_environment() {
    let root = scripts();
    let d = start(root.path(), "");
    let mut r = req("GET", "/cgi/env.sh/extra/path?q=1", Body::empty());
    r.headers_mut().insert("x-probe", "yes".parse().unwrap());
    r.headers_mut()
        .insert("proxy", "http://evil.example".parse().unwrap());
    r.headers_mut()
        .insert("authorization", "Basic dTpw".parse().unwrap());
    let reply = send(d.addr(), r).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let canonical = std::fs::canonicalize(root.path()).unwrap();
    assert_eq!(var(&text, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert_eq!(var(&text, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(var(&text, "SCRIPT_NAME"), Some("/cgi/env.sh"));
    assert_eq!(var(&text, "PATH_INFO"), Some("/extra/path"));
    assert_eq!(var(&text, "QUERY_STRING"), Some("q=1"));
    assert_eq!(var(&text, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(var(&text, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(var(&text, "HTTP_X_PROBE"), Some("yes"));
    assert_eq!(var(&text, "HTTP_PROXY"), None, "httpoxy");
    assert_eq!(var(&text, "HTTP_AUTHORIZATION"), None);
    let script = canonical.join("env.sh").display().to_string();
    assert_eq!(var(&text, "SCRIPT_FILENAME"), Some(script.as_str()));
    let cwd = canonical.display().to_string();
    assert_eq!(
        var(&text, "PWD"),
        Some(cwd.as_str()),
        "runs in its own directory"
    );
    assert!(var(&text, "PATH").is_some(), "pass_env");
    assert_eq!(
        var(&text, "HOME"),
        None,
        "only pass_env of the daemon's environment"
    );
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let root = scripts();
    let d = start(root.path(), "");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let reply = send(d.addr(), req("POST", "/cgi/post.sh", data.clone())).await;
    assert_eq!(reply.status, 200);
    assert_eq!(sha256(&reply.body), sha256(&data));

    let reply = get(d.addr(), "/cgi/big.sh").await;
    assert_eq!(reply.body.len(), 8_000_000);
    assert!(reply.body.iter().all(|&b| b == 0));
}

#[tokio::test]
async fn output_goes_out_as_the_script_writes_it() {
    let root = scripts();
    let d = start(root.path(), "");
    let stream = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut r = req("GET", "/cgi/stream.sh", Body::empty());
    r.headers_mut().insert("host", "x".parse().unwrap());
    let start = Instant::now();
    let mut body = sender.send_request(r).await.unwrap().into_body();
    use http_body_util::BodyExt as _;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first\n");
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "first chunk after {:?}",
        start.elapsed()
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second\n");
}

#[tokio::test]
async fn each_redirect_kind_and_status() {
    let root = scripts();
    let d = start(root.path(), "");
    let local = get(d.addr(), "/cgi/local-redirect.sh").await;
    assert_eq!(local.status, 200, "a local redirect is answered here");
    let text = local.text();
    assert_eq!(var(&text, "PATH_INFO"), Some("/redirected"));
    assert_eq!(var(&text, "QUERY_STRING"), Some("from=local"));
    assert_eq!(var(&text, "REQUEST_METHOD"), Some("GET"));

    let client = get(d.addr(), "/cgi/client-redirect.sh").await;
    assert_eq!(client.status, 302);
    assert_eq!(
        client.header("location"),
        Some("https://example.org/elsewhere")
    );

    let with_doc = get(d.addr(), "/cgi/redirect-document.sh").await;
    assert_eq!(with_doc.status, 301);
    assert_eq!(
        with_doc.header("location"),
        Some("https://example.org/moved")
    );
    assert_eq!(with_doc.text(), "moved\n");

    let status = get(d.addr(), "/cgi/status.sh").await;
    assert_eq!(status.status, 418);
    assert_eq!(status.text(), "short and stout\n");
}

#[tokio::test]
async fn a_crash_is_a_502_and_its_stderr_is_logged() {
    let root = scripts();
    let d = start(root.path(), "");
    assert_eq!(get(d.addr(), "/cgi/crash.sh").await.status, 502);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = d.stderr();
    assert!(log.contains("crash.sh: something broke"), "{log}");
    assert!(log.contains("script=crash.sh"), "{log}");
    assert_eq!(
        get(d.addr(), "/cgi/status.sh").await.status,
        418,
        "serves on"
    );
}

#[tokio::test]
async fn a_timeout_is_a_504_and_kills_the_process_group() {
    let root = scripts();
    let d = start(root.path(), "");
    let pidfile = root.path().join("timeout.pid");
    let start = Instant::now();
    let reply = get(d.addr(), &format!("/cgi/slow.sh?{}", pidfile.display())).await;
    assert_eq!(reply.status, 504);
    assert!(start.elapsed() < Duration::from_secs(4));
    wait_dead(wait_for_pid(&pidfile).await).await;
}

#[tokio::test]
async fn a_client_abort_kills_the_process_group() {
    let root = scripts();
    let d = start(root.path(), "");
    let pidfile = root.path().join("abort.pid");
    let mut c = Client::connect(d.addr()).await;
    let path = format!("/cgi/slow.sh?{}", pidfile.display());
    let request = tokio::spawn(async move { c.get(&path).await });
    let pid = wait_for_pid(&pidfile).await;
    assert!(alive(pid));
    request.abort(); // drops the client connection mid-request
    wait_dead(pid).await;
}

#[tokio::test]
async fn traversal_and_non_scripts_are_refused() {
    let root = scripts();
    let d = start(root.path(), "");
    for (path, status) in [
        ("/cgi/%2e%2e/cgi-bin/env.sh", 404),
        ("/cgi/%2E%2E%2Fetc%2Fpasswd", 404),
        ("/cgi/..%2f..%2fetc/passwd", 404),
        ("/cgi/escape.sh", 403),
        ("/cgi/plain.txt", 403),
        ("/cgi/missing.sh", 404),
        ("/cgi/", 404),
    ] {
        assert_eq!(get(d.addr(), path).await.status, status, "{path}");
    }
}

#[tokio::test]
async fn over_the_script_cap_is_a_503() {
    let root = scripts();
    let d = start(root.path(), "max_scripts = 1");
    let pidfile: PathBuf = root.path().join("cap.pid");
    let addr = d.addr();
    let path = format!("/cgi/slow.sh?{}", pidfile.display());
    let busy = tokio::spawn(async move { get(addr, &path).await });
    wait_for_pid(&pidfile).await;
    let reply = get(d.addr(), "/cgi/status.sh").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(busy.await.unwrap().status, 504);
    assert_eq!(
        get(d.addr(), "/cgi/status.sh").await.status,
        418,
        "the slot is free again"
    );
}

#[test]
fn a_bad_root_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(&path, "[apps.s]\ntype = \"cgi\"\nroot = \"/no/such/dir\"\n").unwrap();
    let out = std::process::Command::new(common::gatewayd_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(":1:1: app \"s\": root \"/no/such/dir\" cannot be used"),
        "{err}"
    );
}

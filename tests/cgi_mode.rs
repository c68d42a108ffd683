//! gatewayd as a CGI program: invoked directly with an environment and stdin, and under real
//! CGI hosts (lighttpd mod_cgi, Apache mod_cgid) through a one-line wrapper in a cgi-bin.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{apache, lighttpd};
use common::{gatewayd_bin, get, req, send, sha256};

const CONFIG: &str = "[apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\nlint = true\n\n\
                      [[mount]]\npath = \"/sub\"\napp = \"bin\"\nlint = true\n";

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("gatewayd.toml");
    std::fs::write(&path, CONFIG).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// Runs `gatewayd` (with `args`) as a CGI host would: only `vars` in the environment, `stdin`
/// on its standard input. Returns (head, body).
fn invoke(args: &[&str], vars: &[(&str, &[u8])], stdin: &[u8]) -> (String, Vec<u8>) {
    use std::os::unix::ffi::OsStrExt as _;
    let mut cmd = Command::new(gatewayd_bin());
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (n, v) in vars {
        cmd.env(n, std::ffi::OsStr::from_bytes(v));
    }
    let mut child = cmd.spawn().unwrap();
    // Write everything, more than CONTENT_LENGTH if asked; a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a CGI head");
    (
        String::from_utf8_lossy(&out.stdout[..split]).into_owned(),
        out.stdout[split + 4..].to_vec(),
    )
}

fn base(config: &[u8]) -> Vec<(&'static str, &[u8])> {
    vec![
        ("GATEWAY_INTERFACE", b"CGI/1.1"),
        ("GATEWAYD_CONFIG", config),
        ("SERVER_NAME", b"localhost"),
        ("SERVER_PORT", b"80"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("REMOTE_ADDR", b"127.0.0.1"),
        ("SCRIPT_NAME", b"/cgi-bin/gw"),
        ("QUERY_STRING", b""),
    ]
}

#[test]
fn direct_invocation_reads_stdin_up_to_content_length_only() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let conf_bytes = conf.display().to_string();
    let mut vars = base(conf_bytes.as_bytes());
    vars.extend([
        ("REQUEST_METHOD", &b"POST"[..]),
        ("PATH_INFO", b"/sub/environ/x"),
        ("CONTENT_LENGTH", b"5"),
        ("CONTENT_TYPE", b"text/plain"),
        ("HTTP_X_NAME", b"caf\xe9"),
    ]);
    let (head, body) = invoke(&[], &vars, b"helloEXTRA BYTES THE HOST LEFT IN STDIN");
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["protocol"], "cgi");
    assert_eq!(doc["body_length"], 5);
    assert_eq!(doc["body_sha256"], sha256(b"hello"));
    assert_eq!(
        doc["environ"]["SCRIPT_NAME"], "/cgi-bin/gw/sub",
        "mounts apply below the script's path"
    );
    assert_eq!(doc["environ"]["PATH_INFO"], "/environ/x");
    assert_eq!(
        doc["environ"]["HTTP_X_NAME"], "caf\\xE9",
        "non-UTF-8 bytes arrive intact"
    );
    assert!(doc["environ"].get("GATEWAYD_CONFIG").is_none());
}

#[test]
fn head_has_no_body_and_isindex_arguments_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let conf_bytes = conf.display().to_string();
    let mut vars = base(conf_bytes.as_bytes());
    vars.extend([
        ("REQUEST_METHOD", &b"HEAD"[..]),
        ("PATH_INFO", b"/get"),
        ("QUERY_STRING", b"isindex"),
    ]);
    let (head, body) = invoke(&["isindex"], &vars, b"");
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert!(body.is_empty());
}

#[test]
fn a_query_that_names_a_subcommand_is_a_query_not_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let conf_bytes = conf.display().to_string();
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[apps.bin]\ntype = \"nope\"\n").unwrap();
    let other_arg = other.display().to_string();
    let other_query = format!("cgi+--config+{}", other_arg.replace('/', "%2F"));
    // As a host passes `?serve`, `?--help` and `?cgi+--config+FILE`: each is served as the
    // request it is, with GATEWAYD_CONFIG (not a server started, help printed or FILE read).
    for (query, args) in [
        ("serve", vec!["serve"]),
        ("--help", vec!["--help"]),
        ("check", vec!["check"]),
        (
            other_query.as_str(),
            vec!["cgi", "--config", other_arg.as_str()],
        ),
    ] {
        let mut vars = base(conf_bytes.as_bytes());
        vars.retain(|(n, _)| *n != "QUERY_STRING");
        vars.extend([
            ("REQUEST_METHOD", &b"GET"[..]),
            ("PATH_INFO", b"/status/204"),
            ("QUERY_STRING", query.as_bytes()),
        ]);
        let (head, body) = invoke(&args, &vars, b"");
        assert!(
            head.starts_with("Status: 204 No Content"),
            "{query}: {head}"
        );
        assert!(body.is_empty());
    }
}

#[test]
fn the_cgi_subcommand_and_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let mut vars = base(b"");
    vars.retain(|(n, _)| *n != "GATEWAYD_CONFIG");
    vars.extend([
        ("REQUEST_METHOD", &b"GET"[..]),
        ("PATH_INFO", b"/status/204"),
    ]);
    let conf_arg = conf.display().to_string();
    let (head, body) = invoke(&["cgi", "--config", &conf_arg], &vars, b"");
    assert!(head.starts_with("Status: 204 No Content"), "{head}");
    assert!(body.is_empty());

    std::fs::write(&conf, "[apps.bin]\ntype = \"nope\"\n").unwrap();
    let (head, _) = invoke(&["cgi", "--config", &conf_arg], &vars, b"");
    assert!(head.starts_with("Status: 500"), "{head}");
}

/// A cgi-bin holding the one-line wrapper `gw`, readable by the host's user.
fn cgi_bin(dir: &Path, conf: &Path) -> PathBuf {
    let bin = dir.join("cgi-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let wrapper = bin.join("gw");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nGATEWAYD_CONFIG={} exec {}\n",
            conf.display(),
            gatewayd_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// What every CGI host must get right.
async fn host_checks(addr: std::net::SocketAddr) {
    let reply = get(addr, "/cgi-bin/gw/sub/environ/x?y=1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = reply.json();
    assert_eq!(doc["protocol"], "cgi");
    assert_eq!(doc["environ"]["SCRIPT_NAME"], "/cgi-bin/gw/sub");
    assert_eq!(doc["environ"]["PATH_INFO"], "/environ/x");
    assert_eq!(doc["environ"]["QUERY_STRING"], "y=1");
    assert_eq!(doc["environ"]["GATEWAY_INTERFACE"], "CGI/1.1");

    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let doc = send(addr, req("POST", "/cgi-bin/gw/environ", data.clone()))
        .await
        .json();
    assert_eq!(doc["body_length"], 2_000_000);
    assert_eq!(doc["body_sha256"], sha256(&data));

    let reply = get(addr, "/cgi-bin/gw/status/418").await;
    assert_eq!(reply.status, 418);
    let reply = get(addr, "/cgi-bin/gw/response-headers?X-Multi=1&X-Multi=2").await;
    // lighttpd keeps the two fields apart; Apache's CGI header scanner merges them into one,
    // which RFC 9110 §5.3 makes the same field. Either way both values arrive, in order.
    let multi: Vec<_> = reply
        .headers
        .get_all("x-multi")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(multi.join(", "), "1, 2");
    assert_eq!(get(addr, "/cgi-bin/gw/nowhere").await.status, 404);
}

#[tokio::test]
async fn under_lighttpd_mod_cgi() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path());
    let bin = cgi_bin(dir.path(), &conf);
    let l = lighttpd(&format!(
        "server.modules += (\"mod_alias\", \"mod_cgi\")\nalias.url = ( \"/cgi-bin/\" => \"{}/\" )\n\
         $HTTP[\"url\"] =~ \"^/cgi-bin/\" {{ cgi.assign = ( \"\" => \"\" ) }}",
        bin.display()
    ));
    host_checks(l.addr).await;
}

#[tokio::test]
async fn under_apache_mod_cgid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = config(dir.path());
    let bin = cgi_bin(dir.path(), &conf);
    let a = apache(
        &["alias", "cgid"],
        &format!(
            "ScriptSock \"cgid.sock\"\nScriptAlias /cgi-bin/ \"{0}/\"\n\
             <Directory \"{0}\">\n  Require all granted\n</Directory>\n",
            bin.display()
        ),
    );
    host_checks(a.addr).await;
}

#[test]
fn errors_go_to_the_hosts_error_log_as_one_line() {
    // CGI mode logs with its own small subscriber: what the host's error log gets must still
    // say what went wrong, on one line, and nothing below WARN.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml").display().to_string();
    let mut cmd = Command::new(gatewayd_bin());
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (n, v) in base(missing.as_bytes()) {
        cmd.env(n, String::from_utf8_lossy(v).as_ref());
    }
    cmd.env("REQUEST_METHOD", "GET").env("PATH_INFO", "/get");
    let out = cmd.output().unwrap();
    assert!(out.stdout.starts_with(b"Status: 500"), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].starts_with("ERROR gatewayd::cgi: "), "{log}");
    assert!(lines[0].contains("missing.toml"), "{log}");
}

/// What a CGI run gave while its host held stdin open.
struct HeldRun {
    head: String,
    body: Vec<u8>,
    /// How long the process ran, spawn to exit.
    ran: Duration,
}

/// Runs gatewayd as a CGI program whose host writes `stdin` and then keeps the pipe open (as
/// a host may, RFC 3875 §4.2), and waits at most `limit` for it to exit. A process still
/// running then fails the test.
fn invoke_holding_stdin(vars: &[(&str, &[u8])], stdin: &[u8], limit: Duration) -> HeldRun {
    use std::io::Read as _;
    use std::os::unix::ffi::OsStrExt as _;
    let mut cmd = Command::new(gatewayd_bin());
    cmd.env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (n, v) in vars {
        cmd.env(n, std::ffi::OsStr::from_bytes(v));
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut held = child.stdin.take().unwrap();
    // A program that reads no body may answer and exit before the host writes one: the host
    // then meets a broken pipe, and what counts is the answer.
    if let Err(e) = held.write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let ran = loop {
        if child.try_wait().unwrap().is_some() {
            break started.elapsed();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {limit:?} after it started, stdin held open");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(held);
    let out = reader.join().unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a CGI head");
    HeldRun {
        head: String::from_utf8_lossy(&out[..split]).into_owned(),
        body: out[split + 4..].to_vec(),
        ran,
    }
}

/// The vars of a POST of `path` with CONTENT_LENGTH `len`, with the config at `conf`.
fn post<'a>(conf: &'a str, path: &'a str, len: &'a str) -> Vec<(&'static str, &'a [u8])> {
    let mut vars = base(conf.as_bytes());
    vars.extend([
        ("REQUEST_METHOD", &b"POST"[..]),
        ("PATH_INFO", path.as_bytes()),
        ("CONTENT_LENGTH", len.as_bytes()),
    ]);
    vars
}

#[test]
fn it_exits_once_it_has_answered_though_stdin_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("gatewayd.toml");
    std::fs::write(
        &conf,
        CONFIG.replace(
            "type = \"httpbin\"",
            "type = \"httpbin\"\nrequest_timeout = \"1s\"",
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    // The app waits for 6 more bytes that never come: 504 after its 1 s, then exit.
    let run = invoke_holding_stdin(
        &post(&conf, "/environ", "10"),
        b"hell",
        Duration::from_secs(5),
    );
    assert!(run.head.starts_with("Status: 504 "), "{}", run.head);
    assert!(run.ran < Duration::from_secs(3), "{:?}", run.ran);
    // An app that does not read the body answers at once, and the process exits.
    let run = invoke_holding_stdin(
        &post(&conf, "/status/201", "10"),
        b"",
        Duration::from_secs(3),
    );
    assert!(run.head.starts_with("Status: 201 "), "{}", run.head);
    assert!(run.ran < Duration::from_secs(2), "{:?}", run.ran);
    // The whole body: answered and gone, with no wait for the end of stdin.
    let run = invoke_holding_stdin(
        &post(&conf, "/environ", "5"),
        b"helloEXTRA",
        Duration::from_secs(3),
    );
    assert!(run.head.starts_with("Status: 200 "), "{}", run.head);
    let doc: serde_json::Value = serde_json::from_slice(&run.body).unwrap();
    assert_eq!(doc["body_sha256"], sha256(b"hello"));
    assert!(run.ran < Duration::from_secs(2), "{:?}", run.ran);
}

#[test]
fn a_body_shorter_than_content_length_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path()).display().to_string();
    // The host closes stdin after 4 of 10 bytes: the app's read fails, not a 4-byte body.
    let (head, body) = invoke(&[], &post(&conf, "/environ", "10"), b"hell");
    assert!(head.starts_with("Status: 400 "), "{head}");
    assert!(!String::from_utf8_lossy(&body).contains("body_length"));
}

#[test]
fn an_invalid_content_length_is_no_body() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path()).display().to_string();
    for bad in ["-1", "+5", "abc", " 5", "99999999999999999999"] {
        let run = invoke_holding_stdin(
            &post(&conf, "/environ", bad),
            b"hello",
            Duration::from_secs(3),
        );
        assert!(
            run.head.starts_with("Status: 200 "),
            "{bad:?}: {}",
            run.head
        );
        let doc: serde_json::Value = serde_json::from_slice(&run.body).unwrap();
        assert_eq!(doc["body_length"], 0, "{bad:?}");
        assert!(doc["environ"].get("CONTENT_LENGTH").is_none(), "{bad:?}");
        assert!(run.ran < Duration::from_secs(2), "{bad:?}: {:?}", run.ran);
    }
}

#[test]
fn a_body_over_the_cap_is_a_413_without_waiting_for_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("gatewayd.toml");
    std::fs::write(
        &conf,
        format!("[server]\nmax_body_size = \"1KiB\"\n\n{CONFIG}"),
    )
    .unwrap();
    let conf = conf.display().to_string();
    // The host sends part of the body and then nothing, its pipe still open.
    let run = invoke_holding_stdin(
        &post(&conf, "/environ", "1000000"),
        &[b'x'; 2000],
        Duration::from_secs(4),
    );
    assert!(run.head.starts_with("Status: 413 "), "{}", run.head);
    assert!(run.ran < Duration::from_secs(3), "{:?}", run.ran);
}

/// A streamed response reaches the host as the app yields it: the head and the first chunk
/// are flushed while the app still waits before its next one, not once it has ended.
#[test]
fn a_streamed_response_is_flushed_before_the_app_waits() {
    use std::io::Read as _;
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path()).display().to_string();
    let mut vars = base(conf.as_bytes());
    vars.retain(|(n, _)| *n != "QUERY_STRING");
    vars.extend([
        ("REQUEST_METHOD", &b"GET"[..]),
        ("PATH_INFO", b"/drip"),
        // Two bytes, 1.5 s apart.
        ("QUERY_STRING", b"duration=3&numbytes=2"),
    ]);
    let mut cmd = Command::new(gatewayd_bin());
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (n, v) in &vars {
        cmd.env(n, std::ffi::OsStr::from_bytes(v));
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"\r\n\r\n*") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "nothing came before the end: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first byte came only with the end"
    );
    stdout.read_to_end(&mut out).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out.starts_with(b"Status: 200 OK\r\n"));
    assert!(out.ends_with(b"\r\n\r\n**"));
}

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

/// A script that closed its output has answered: its response ends then, not at its exit or
/// its timeout (which still kills it).
#[tokio::test]
async fn a_script_that_closes_its_output_has_answered() {
    let root = scripts();
    let d = start(root.path(), "");
    let started = Instant::now();
    let reply = get(d.addr(), "/cgi/linger.sh").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok\n"));
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn traversal_and_non_scripts_are_refused() {
    let root = scripts();
    let d = start(root.path(), "");
    for (path, status) in [
        ("/cgi/%2e%2e/cgi-bin/env.sh", 404),
        // An encoded slash is refused before any script is looked for.
        ("/cgi/%2E%2E%2Fetc%2Fpasswd", 400),
        ("/cgi/..%2f..%2fetc/passwd", 400),
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
    let (code, err) = common::check(&path);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(":1:1: app \"s\": root \"/no/such/dir\" cannot be used"),
        "{err}"
    );
}

/// A daemon serving the scripts at `/cgi` on one listener per protocol, in that order.
fn start_on(root: &Path, protocols: &[&str], server: &str, app: &str) -> Daemon {
    let listeners: String = protocols
        .iter()
        .map(|p| format!("[[listen]]\nprotocol = \"{p}\"\naddress = \"127.0.0.1:0\"\n\n"))
        .collect();
    Daemon::start(&format!(
        "[server]\n{server}\n\n{listeners}\
         [apps.scripts]\ntype = \"cgi\"\nroot = \"{}\"\npass_env = [\"PATH\"]\n{app}\n\n\
         [[mount]]\npath = \"/cgi\"\napp = \"scripts\"\n",
        root.display()
    ))
}

fn listener(d: &Daemon, i: usize) -> std::net::SocketAddr {
    d.listening[i].1.parse().unwrap()
}

/// The daemon's resident memory, in bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_stderr_flood_stays_bounded_in_memory() {
    let root = scripts();
    let d = start_on(root.path(), &["http"], "", "timeout = \"20s\"");
    let before = vm_rss(d.pid());
    let addr = d.addr();
    let request = tokio::spawn(async move { get(addr, "/cgi/stderr-flood.sh").await });
    let mut peak = before;
    while !request.is_finished() {
        peak = peak.max(vm_rss(d.pid()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reply = request.await.unwrap();
    eprintln!(
        "VmRSS {} KiB before, {} KiB at most",
        before >> 10,
        peak >> 10
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "done\n");
    assert!(
        peak < before + (64 << 20),
        "RSS grew from {} MiB to {} MiB",
        before >> 20,
        peak >> 20
    );
    d.wait_log("bytes cut)");
    let log = d.stderr();
    let line = log.lines().find(|l| l.contains("bytes cut)")).unwrap();
    assert!(
        line.contains(&format!("({} bytes cut)", 200_000_000 - 8192)),
        "{}",
        &line[line.len().saturating_sub(200)..]
    );
    assert!(line.len() < 9 << 10, "a logged line is capped");
}

#[tokio::test]
async fn script_stderr_is_escaped_and_rate_limited() {
    let root = scripts();
    let d = start(root.path(), "");
    let reply = get(d.addr(), "/cgi/stderr-forge.sh").await;
    assert_eq!(reply.status, 200);
    d.wait_log("red script=stderr-forge.sh");
    let log = d.stderr();
    assert!(log.contains(r"innocent\rFORGED ERROR line"), "{log}");
    assert!(log.contains(r"\x1b[31mred"), "{log}");
    assert!(!log.contains('\r'), "a raw CR reached the log");
    assert!(!log.contains('\x1b'), "a raw ESC reached the log");
    // Every line is either logged or counted in a summary, once stderr has ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = d.stderr();
        let logged = log
            .lines()
            .filter(|l| l.contains(": flood script="))
            .count() as u64;
        let suppressed: u64 = log
            .lines()
            .filter_map(|l| {
                let (before, _) = l.split_once(" lines suppressed")?;
                before.rsplit(' ').next()?.parse::<u64>().ok()
            })
            .sum();
        if suppressed > 0 && logged + suppressed == 20_000 {
            assert!(logged <= 500, "{logged} flood lines logged");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{logged} lines logged and {suppressed} suppressed of 20000"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a front server's params may try to slip into a script's environment.
fn injected(payload: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    [
        ("LD_PRELOAD", "/nonexistent/evil.so"),
        ("BASH_ENV", payload.to_str().unwrap()),
        ("PATH", "/evil/bin"),
        ("IFS", "x"),
        ("http_proxy", "http://evil.example:1"),
        ("HTTP_PROXY", "http://evil.example:2"),
        ("HTTP_lower", "1"),
        ("UNLISTED_VAR", "1"),
        ("GEOIP_COUNTRY", "NL"),
        ("HTTP_X_PROBE", "yes"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn request_params(uri: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", uri),
        ("SERVER_NAME", "x"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

/// One SCGI request over a raw connection; the whole reply.
async fn scgi(addr: std::net::SocketAddr, params: &[(Vec<u8>, Vec<u8>)]) -> String {
    let wire = proto_scgi::client::request(params, b"");
    String::from_utf8_lossy(&common::raw_exchange(addr, &wire, |_| false).await).into_owned()
}

/// One FastCGI request over a raw connection: its reply once END_REQUEST came (10 s at most).
async fn fastcgi(
    addr: std::net::SocketAddr,
    params: &[(Vec<u8>, Vec<u8>)],
    stdin: &[u8],
) -> proto_fastcgi::client::Reply {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_util::codec::Decoder as _;
    let pairs: Vec<(&[u8], &[u8])> = params.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    let mut wire = bytes::BytesMut::new();
    proto_fastcgi::client::put_request(&mut wire, 1, false, &pairs, stdin);
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut s, mut writer) = s.into_split();
    // Written apart, as a refused body may be left unread; the task's output keeps the write
    // half open (dropping it would shut the connection down) until `_writing` is dropped.
    let _writing = tokio::spawn(async move {
        let _ = writer.write_all(&wire).await;
        writer
    });
    let mut replies = proto_fastcgi::client::Replies::default();
    let mut buf = bytes::BytesMut::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !replies.ended(1) {
        match proto_fastcgi::RecordDecoder.decode(&mut buf).unwrap() {
            Some(record) => replies.push(record),
            None => {
                let n = tokio::time::timeout_at(deadline, s.read_buf(&mut buf))
                    .await
                    .expect("answered in time")
                    .unwrap();
                assert!(n > 0, "closed before END_REQUEST");
            }
        }
    }
    replies.by_id.remove(&1).unwrap()
}

#[tokio::test]
async fn front_servers_cannot_inject_environment_variables() {
    let root = scripts();
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("marker");
    let payload = outside.path().join("payload.sh");
    // Builtins only: it must run whatever PATH the script got.
    std::fs::write(&payload, format!("echo ran > {}\n", marker.display())).unwrap();
    let d = start_on(
        root.path(),
        &["scgi", "fastcgi"],
        "",
        "timeout = \"5s\"\npass_params = [\"GEOIP_COUNTRY\"]",
    );
    let mut params = request_params("/cgi/env-bash.sh");
    params.extend(injected(&payload));
    let over_scgi = scgi(listener(&d, 0), &params).await;
    let over_fastcgi = fastcgi(listener(&d, 1), &params, b"").await;
    assert_eq!(over_fastcgi.status(), Some(200));
    let over_fastcgi = String::from_utf8_lossy(&over_fastcgi.stdout).into_owned();
    assert!(!marker.exists(), "the BASH_ENV payload ran");
    for (gateway, text) in [("scgi", &over_scgi), ("fastcgi", &over_fastcgi)] {
        assert!(text.starts_with("Status: 200"), "{gateway}: {text}");
        assert_eq!(var(text, "SERVER_NAME"), Some("x"), "{gateway}: {text}");
        for name in [
            "LD_PRELOAD",
            "BASH_ENV",
            "IFS",
            "http_proxy",
            "HTTP_PROXY",
            "HTTP_lower",
            "UNLISTED_VAR",
        ] {
            assert_eq!(
                var(text, name),
                None,
                "{gateway}: {name} reached the script"
            );
        }
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            var(text, "PATH"),
            Some(path.as_str()),
            "{gateway}: pass_env"
        );
        assert_eq!(
            var(text, "GEOIP_COUNTRY"),
            Some("NL"),
            "{gateway}: pass_params"
        );
        assert_eq!(var(text, "HTTP_X_PROBE"), Some("yes"), "{gateway}");
        assert_eq!(var(text, "REQUEST_METHOD"), Some("GET"), "{gateway}");
    }
}

#[test]
fn dangerous_pass_params_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    for (name, said) in [
        ("LD_PRELOAD", "pass_params may not hold LD_PRELOAD"),
        ("BASH_ENV", "pass_params may not hold BASH_ENV"),
        ("http_proxy", "pass_params may not hold http_proxy"),
        ("A=B", "\"A=B\" is not a variable name"),
    ] {
        std::fs::write(
            &path,
            format!(
                "[apps.s]\ntype = \"cgi\"\nroot = \"{}\"\npass_params = [\"{name}\"]\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let (code, err) = common::check(&path);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains(said), "{name}: {err}");
    }
}

#[tokio::test]
async fn the_timeout_kills_a_script_whose_client_stopped_reading() {
    use tokio::io::AsyncWriteExt as _;
    let root = scripts();
    let d = start_on(
        root.path(),
        &["http"],
        "",
        "timeout = \"1s\"\nmax_scripts = 1",
    );
    let pidfile = root.path().join("stalled.pid");
    let mut stalled = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    let head = format!(
        "GET /cgi/flood-out.sh?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        pidfile.display()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let pid = wait_for_pid(&pidfile).await;
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the script outlived its timeout while its client did not read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = get(d.addr(), "/cgi/status.sh").await;
    assert_eq!(
        reply.status, 418,
        "the slot is free while the client stalls"
    );
    drop(stalled);
}

/// `KEY=value` of length.sh's report.
fn report(text: &str) -> (String, String, String) {
    let get = |k: &str| var(text, k).unwrap_or("missing").to_string();
    (get("CONTENT_LENGTH"), get("bytes"), get("sha256"))
}

#[tokio::test]
async fn a_chunked_body_reaches_the_script_with_its_true_length() {
    let root = scripts();
    let d = start_on(root.path(), &["http"], "max_body_size = \"1MiB\"", "");
    for size in [5_000usize, 300_000] {
        let data: Vec<u8> = (0..size as u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
            .chunks(7_000)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        assert_eq!(body.exact_len(), None, "sent chunked");
        let reply = send(d.addr(), req("POST", "/cgi/length.sh", body)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            report(&reply.text()),
            (size.to_string(), size.to_string(), sha256(&data)),
            "{size} bytes"
        );
    }
    let reply = get(d.addr(), "/cgi/length.sh").await;
    assert_eq!(
        report(&reply.text()),
        ("unset".into(), "0".into(), sha256(b""))
    );
    let big = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![
        0u8;
        2 << 20
    ]))]);
    let reply = send(
        d.addr(),
        req("POST", "/cgi/length.sh", Body::from_stream(big)),
    )
    .await;
    assert_eq!(reply.status, 413);
}

#[tokio::test]
async fn over_fastcgi_a_body_without_or_against_its_length() {
    let root = scripts();
    let d = start_on(root.path(), &["fastcgi"], "max_body_size = \"1MiB\"", "");
    let addr = listener(&d, 0);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 + i / 5) as u8).collect();
    let mut post = request_params("/cgi/length.sh");
    post[0].1 = b"POST".to_vec();

    let reply = fastcgi(addr, &post, &data).await;
    assert_eq!(reply.status(), Some(200));
    let text = String::from_utf8_lossy(&reply.body()).into_owned();
    assert_eq!(
        report(&text),
        ("100000".into(), "100000".into(), sha256(&data)),
        "no CONTENT_LENGTH: spooled"
    );

    let reply = fastcgi(addr, &request_params("/cgi/length.sh"), b"").await;
    let text = String::from_utf8_lossy(&reply.body()).into_owned();
    assert_eq!(report(&text), ("unset".into(), "0".into(), sha256(b"")));

    let reply = fastcgi(addr, &post, &vec![1u8; 1_500_000]).await;
    assert_eq!(reply.status(), Some(413), "over max_body_size");

    for (declared, sent) in [(10usize, 20usize), (30, 20)] {
        let mut params = post.clone();
        params.push((
            b"CONTENT_LENGTH".to_vec(),
            declared.to_string().into_bytes(),
        ));
        let reply = fastcgi(addr, &params, &vec![b'x'; sent]).await;
        assert_eq!(
            reply.status(),
            Some(400),
            "CONTENT_LENGTH {declared}, {sent} bytes: {}",
            String::from_utf8_lossy(&reply.stdout)
        );
    }
    // The FastCGI front-end finds the mismatch first and fails the body; the script is killed.
    d.wait_log("STDIN is longer than CONTENT_LENGTH");
    d.wait_log("of CONTENT_LENGTH's 30 bytes");
    d.wait_log("the request body failed; the CGI script was killed");
}

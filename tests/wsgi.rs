//! The `wsgi` app type in the daemon: config and `gatewayd check`, the log, errors on the
//! wire, client aborts, large uploads, virtualenvs. The PEP 3333 rules themselves are tested
//! against the app directly in gateway-wsgi/tests/pep3333.rs.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, get, raw_exchange, req, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway-wsgi/tests/apps");

/// A daemon with one HTTP listener and `rules:CALLABLE` mounted at `/` for each callable.
fn daemon(callables: &[&str]) -> Daemon {
    let mut config = String::from("[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n");
    for c in callables {
        config += &format!(
            "[apps.{c}]\ntype = \"wsgi\"\nmodule = \"rules:{c}\"\npython_path = [\"{APPS}\"]\n\
             threads = 2\n[[mount]]\npath = \"/{c}\"\napp = \"{c}\"\n"
        );
    }
    Daemon::start(&config)
}

fn check_error(app_table: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let config = format!(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n{app_table}\n\
         [[mount]]\npath = \"/\"\napp = \"site\"\n"
    );
    std::fs::write(&path, config).unwrap();
    let (code, stderr) = common::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    stderr.replace(&path.display().to_string(), "g.toml")
}

#[test]
fn check_imports_the_app_and_names_the_table_with_the_traceback() {
    let table = |module: &str| {
        format!("[apps.site]\ntype = \"wsgi\"\nmodule = \"{module}\"\npython_path = [\"{APPS}\"]\n")
    };
    let e = check_error(&table("no_such_module"));
    assert!(
        e.starts_with("g.toml:5:1: app \"site\": module \"no_such_module\" not found"),
        "{e}"
    );
    assert!(
        e.contains("ModuleNotFoundError: No module named 'no_such_module'"),
        "{e}"
    );
    let e = check_error(&table("rules:nope"));
    assert!(
        e.starts_with("g.toml:5:1: app \"site\": module \"rules\" has no attribute \"nope\""),
        "{e}"
    );
    assert!(e.contains("AttributeError"), "{e}");
    let e = check_error(&table("not_callable"));
    assert!(
        e.starts_with(
            "g.toml:5:1: app \"site\": not_callable:application is a int, not a callable"
        ),
        "{e}"
    );
    let e = check_error(&table("broken_import"));
    assert!(
        e.starts_with("g.toml:5:1: app \"site\": importing module \"broken_import\" raised"),
        "{e}"
    );
    assert!(e.contains("Traceback (most recent call last):"), "{e}");
    assert!(e.contains("broken_import.py\", line 1, in <module>"), "{e}");
    let e = check_error("[apps.site]\ntype = \"wsgi\"\nmodule = \"rules:pid\"\nthread = 2\n");
    assert!(e.starts_with("g.toml:8:1: unknown field `thread`"), "{e}");
    let e = check_error(&format!("{}threads = 0\n", table("rules:pid")));
    assert!(e.contains("threads must be 1..=1024, not 0"), "{e}");
    let e = check_error(&format!(
        "{}virtualenv = \"/nonexistent\"\n",
        table("rules:pid")
    ));
    assert!(
        e.contains("virtualenv /nonexistent has no /nonexistent/lib/python3.11/site-packages"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsgi_errors_go_to_the_log_under_the_app_and_request_id() {
    let d = daemon(&["environ_keys"]);
    assert_eq!(get(d.addr(), "/environ_keys").await.status, 200);
    d.wait_log("parts");
    let log = d.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("a line for the log"))
        .expect(&log);
    assert!(
        line.contains("WARN") && line.contains("request{id="),
        "{line}"
    );
    assert!(line.contains("app=environ_keys"), "{line}");
    assert!(
        log.contains("gatewayd::wsgi: two parts app=environ_keys"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_before_the_head_is_a_500_and_its_traceback_goes_to_the_log_only() {
    let d = daemon(&["raise_before_head"]);
    let res = get(d.addr(), "/raise_before_head").await;
    assert_eq!(res.status, 500);
    assert!(!res.text().contains("secret-detail"), "{}", res.text());
    d.wait_log("KeyError: 'secret-detail'");
    assert!(d.stderr().contains("Traceback (most recent call last):"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_after_the_head_cuts_the_connection() {
    let d = daemon(&["raise_in_iteration"]);
    let raw = b"GET /raise_in_iteration HTTP/1.1\r\nHost: x\r\n\r\n";
    let got = raw_exchange(d.addr(), raw, |_| false).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.contains("first"), "{got}");
    // The connection closes without the last chunk: the client sees a truncated body.
    assert!(!got.ends_with("0\r\n\r\n"), "{got}");
    d.wait_log("the app raised after its head was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_gets_the_result_closed() {
    let d = daemon(&["slow_stream", "closes"]);
    let mut conn = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    conn.write_all(b"GET /slow_stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 4096];
    assert!(conn.read(&mut buf).await.unwrap() > 0);
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = get(d.addr(), "/closes?slow_stream").await.text();
        if n == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "close() was not called: {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_streams_with_flat_memory() {
    const MIB: usize = 1 << 20;
    let d = daemon(&["read_all"]);
    let status = |field: &str| {
        let s = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap()
    };
    // Warm the interpreter and the paths the upload takes.
    assert_eq!(
        send(d.addr(), req("POST", "/read_all", "warm"))
            .await
            .status,
        200
    );
    let before = status("VmRSS");
    let mut conn = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    let head = format!(
        "POST /read_all HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        100 * MIB
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; MIB];
    for _ in 0..100 {
        conn.write_all(&chunk).await.unwrap();
    }
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    while !String::from_utf8_lossy(&reply).contains(&format!("{} ", 100 * MIB)) {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    let peak = status("VmHWM");
    assert!(
        peak < before + 32 * 1024,
        "VmRSS {before} KiB before, VmHWM {peak} KiB after a 100 MiB upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_relative_to_the_config_and_the_virtualenv_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("venv/lib/python3.11/site-packages");
    std::fs::create_dir_all(site.join("extra")).unwrap();
    // A module of the venv, one a .pth file adds, and one that shadows the standard library's
    // `this` only if the venv comes first.
    std::fs::write(site.join("venvmod.py"), "WHERE = 'venv'\n").unwrap();
    std::fs::write(site.join("extra.pth"), "extra\n").unwrap();
    std::fs::write(site.join("extra/pthmod.py"), "WHERE = 'pth'\n").unwrap();
    std::fs::write(site.join("colorsys.py"), "WHERE = 'shadow'\n").unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/where.py"),
        "import venvmod, pthmod, colorsys\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [' '.join((venvmod.WHERE, pthmod.WHERE, colorsys.WHERE)).encode()]\n",
    )
    .unwrap();
    let config = String::from(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [apps.where]\ntype = \"wsgi\"\nmodule = \"where\"\npython_path = [\"../app\"]\n\
         virtualenv = \"../venv\"\n[[mount]]\npath = \"/\"\napp = \"where\"\n",
    );
    // The config sits in a folder beside app/ and venv/: its paths are relative to it.
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    let path = dir.path().join("etc/g.toml");
    std::fs::write(&path, &config).unwrap();
    let d = Daemon::start_with(
        &common::gatewayd_bin(),
        &config.replace("../", &format!("{}/", dir.path().display())),
        &[],
    );
    assert_eq!(get(d.addr(), "/").await.text(), "venv pth shadow");
    let (code, stderr) = common::check(&path);
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iterable_with_a_content_length_ends_there_and_is_logged_complete() {
    let d = daemon(&["iter_with_length"]);
    for query in ["one", "two"] {
        let res = get(d.addr(), &format!("/iter_with_length?{query}")).await;
        assert_eq!((res.status, res.text().as_str()), (200, "hello world"));
        assert_eq!(res.header("content-length"), Some("11"));
    }
    d.wait_log("iter_with_length?two");
    let log = d.stderr();
    let lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("gatewayd::access"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("bytes=11") && l.ends_with("complete=true")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_a_504_and_its_result_is_closed() {
    let config = format!(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [apps.slow]\ntype = \"wsgi\"\nmodule = \"rules:slow_first\"\npython_path = [\"{APPS}\"]\n\
         request_timeout = \"1s\"\n[[mount]]\npath = \"/slow\"\napp = \"slow\"\n\
         [apps.closes]\ntype = \"wsgi\"\nmodule = \"rules:closes\"\npython_path = [\"{APPS}\"]\n\
         [[mount]]\npath = \"/closes\"\napp = \"closes\"\n"
    );
    let d = Daemon::start(&config);
    assert_eq!(get(d.addr(), "/slow").await.status, 504);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(d.addr(), "/closes?slow_first").await.text() != "1" {
        assert!(Instant::now() < deadline, "close() was not called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// gatewayd run once as a CGI program on `rules:CALLABLE`: its stdout and stderr.
fn cgi_run(callable: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("g.toml");
    std::fs::write(
        &config,
        format!(
            "[apps.a]\ntype = \"wsgi\"\nmodule = \"rules:{callable}\"\npython_path = [\"{APPS}\"]\n\
             [[mount]]\npath = \"/\"\napp = \"a\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::gatewayd_bin())
        .env_clear()
        .env("GATEWAYD_CONFIG", &config)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", "GET")
        .env("SCRIPT_NAME", "")
        .env("PATH_INFO", "/")
        .env("QUERY_STRING", "")
        .env("SERVER_NAME", "localhost")
        .env("SERVER_PORT", "80")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_print_goes_to_the_log_not_into_a_cgi_response() {
    let (stdout, stderr) = cgi_run("printing");
    assert!(stdout.starts_with("Status: 200 OK\r\n"), "{stdout}");
    assert!(stdout.ends_with("\r\n\r\nanswer"), "{stdout}");
    assert!(!stdout.contains("printed by the app"), "{stdout}");
    assert!(stderr.contains("printed by the app"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_checks_and_serves_the_guestbook() {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(root).join("configs/wsgi.toml");
    let (code, stderr) = common::check(&path);
    assert_eq!(code, Some(0), "{stderr}");
    // The same config on free ports, its app path made absolute.
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("../examples/wsgi", &format!("{root}/examples/wsgi"))
        .lines()
        .map(|l| match l.starts_with("address = ") {
            true => "address = \"127.0.0.1:0\"",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let d = Daemon::start(&text);
    let page = get(d.addr(), "/app/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("<h1>Guestbook</h1>"),
        "{}",
        page.text()
    );
    assert!(
        page.text().contains("href=\"/app/environ\""),
        "{}",
        page.text()
    );
    let echo = send(d.addr(), req("POST", "/app/echo", "hello")).await;
    assert_eq!(echo.text(), "hello");
    assert!(
        get(d.addr(), "/app/")
            .await
            .text()
            .contains("<li>hello</li>")
    );
    assert_eq!(
        get(d.addr(), "/app/stream").await.text(),
        "line 0\nline 1\nline 2\nline 3\nline 4\n"
    );
}

/// The file name of the program process `pid` runs, and whether it maps libpython.
fn program(pid: u32) -> (String, bool) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    (name, maps.contains("libpython"))
}

const HELLO: &str = "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
                     [apps.hi]\ntype = \"hello\"\n[[mount]]\npath = \"/\"\napp = \"hi\"\n";

#[tokio::test]
async fn gatewayd_maps_libpython_only_for_a_wsgi_app_by_becoming_gatewayd_wsgi() {
    let lean = Daemon::start(HELLO);
    assert_eq!(program(lean.pid()), ("gatewayd".into(), false));
    // The process that was started is the one that serves: exec keeps the pid.
    let python = daemon(&["pid"]);
    assert_eq!(program(python.pid()), ("gatewayd-wsgi".into(), true));
    let reply = get(python.addr(), "/pid").await;
    assert_eq!(reply.text(), python.pid().to_string());
}

const REFUSED: &str = "gatewayd-wsgi, which gatewayd runs in its place when it starts on such \
                       a config: a running daemon cannot switch (restart it)";

/// A lean daemon on `config`, reloaded with a wsgi app added: the reload fails saying to
/// restart, and the old config serves on.
fn reload_adding_a_wsgi_app(config: &str) -> Daemon {
    let d = Daemon::start(config);
    let with_wsgi = format!(
        "{config}[apps.py]\ntype = \"wsgi\"\nmodule = \"rules:pid\"\npython_path = [\"{APPS}\"]\n\
         [[mount]]\npath = \"/py\"\napp = \"py\"\n"
    );
    std::fs::write(d.config_path(), with_wsgi).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_log("reload failed");
    let log = d.stderr_now();
    assert!(
        log.contains("app \"py\": type \"wsgi\" is served by ") && log.contains(REFUSED),
        "{log}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(get(d.addr(), "/")).status, 200);
    d
}

#[test]
fn a_reload_that_adds_the_first_wsgi_app_fails_saying_to_restart() {
    let d = reload_adding_a_wsgi_app(HELLO);
    assert_eq!(program(d.pid()), ("gatewayd".into(), false));
}

#[test]
fn under_a_master_too_a_reload_that_adds_the_first_wsgi_app_fails_and_the_old_workers_serve() {
    reload_adding_a_wsgi_app(&HELLO.replace("[apps.hi]", "[server]\nprocesses = 2\n[apps.hi]"));
}

/// A directory holding `binaries` (gatewayd, under those names: hard links, as current_exe
/// resolves symlinks) and `g.toml` with one wsgi app; `gatewayd check` run there on it, within
/// 10 s (an exec loop would never end). Returns its stderr with the directory as `DIR`.
fn check_in_a_directory_of(binaries: &[&str]) -> String {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for name in binaries {
        let link = dir.path().join(name);
        std::fs::hard_link(common::gatewayd_bin(), &link)
            .or_else(|_| std::fs::copy(common::gatewayd_bin(), &link).map(drop))
            .unwrap();
    }
    let config = dir.path().join("g.toml");
    std::fs::write(
        &config,
        "[apps.py]\ntype = \"wsgi\"\nmodule = \"m\"\n[[mount]]\npath = \"/\"\napp = \"py\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(dir.path().join("gatewayd"))
        .args(["check", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still running after 10 s: an exec loop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn without_gatewayd_wsgi_beside_it_a_wsgi_app_is_a_located_config_error() {
    let stderr = check_in_a_directory_of(&["gatewayd"]);
    assert!(
        stderr.starts_with(
            "DIR/g.toml:1:1: app \"py\": type \"wsgi\" is served by DIR/gatewayd-wsgi, which \
             is not there (build it with cargo feature \"wsgi\""
        ),
        "{stderr}"
    );
}

#[test]
fn a_gatewayd_wsgi_that_is_gatewayd_refuses_rather_than_exec_itself_for_ever() {
    let stderr = check_in_a_directory_of(&["gatewayd", "gatewayd-wsgi"]);
    assert!(stderr.contains(REFUSED), "{stderr}");
}

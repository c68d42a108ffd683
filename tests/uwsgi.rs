//! uwsgi end to end: the real binary behind real nginx (`uwsgi_pass`, TCP and unix socket, the
//! stock `uwsgi_params`) and lighttpd (`scgi.protocol = "uwsgi"`) with the front-end battery; every malformation on a raw socket while an honest connection on the
//! same listener finishes; and the listener on an inherited socket (`fd:N`, `systemd:NAME`).

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::front::battery;
use common::peers::{free_port, lighttpd, nginx};
use common::{Daemon, HTTPBIN};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// httpbin over uwsgi on TCP and a unix socket, and over HTTP for comparison.
fn config() -> String {
    HTTPBIN.replace(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n",
        "[[listen]]\nprotocol = \"uwsgi\"\naddress = \"127.0.0.1:0\"\n\n\
         [[listen]]\nprotocol = \"uwsgi\"\naddress = \"unix:{dir}/uwsgi.sock\"\n\n\
         [[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n",
    )
}

fn snippet() -> String {
    format!(
        "    include {}/configs/nginx-uwsgi.conf;",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn http(d: &Daemon) -> SocketAddr {
    d.listening[2].1.parse().unwrap()
}

fn uwsgi(d: &Daemon) -> SocketAddr {
    d.listening[0].1.parse().unwrap()
}

#[tokio::test]
async fn behind_nginx_over_tcp() {
    let d = Daemon::start(&config());
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", d.listening[0].1),
        &snippet(),
    );
    battery(n.addr, http(&d), "uwsgi").await;
}

#[tokio::test]
async fn behind_nginx_over_a_unix_socket() {
    let d = Daemon::start(&config());
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", d.listening[1].1),
        &snippet(),
    );
    battery(n.addr, http(&d), "uwsgi").await;
}

#[tokio::test]
async fn behind_lighttpd() {
    let d = Daemon::start(&config());
    let (host, port) = d.listening[0].1.rsplit_once(':').unwrap();
    let l = lighttpd(&format!(
        "server.modules += (\"mod_scgi\")\nscgi.protocol = \"uwsgi\"\n\
         scgi.server = ( \"/\" => (( \"host\" => \"{host}\", \"port\" => {port}, \"check-local\" => \"disable\" )) )"
    ));
    battery(l.addr, http(&d), "uwsgi").await;
}

// Apache mod_proxy_uwsgi runs the whole conformance battery (tests/conformance.rs,
// `uwsgi-apache`); this file's front battery expects repeated Cookie headers joined with `; `,
// which Apache does itself with `, ` before any gateway sees them.

/// The vars of a request for `uri` with `method`, and CONTENT_LENGTH as given (left out when
/// `None`), as nginx's uwsgi_params would send them.
fn vars<'a>(
    method: &'a str,
    uri: &'a str,
    content_length: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("QUERY_STRING", ""),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", ""),
    ];
    v.extend(content_length.map(|l| ("CONTENT_LENGTH", l)));
    v.extend([
        ("REQUEST_URI", uri),
        ("PATH_INFO", uri),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost"),
    ]);
    v
}

fn packet(modifier1: u8, pairs: &[(&str, &str)]) -> Vec<u8> {
    proto_uwsgi::client::packet(
        modifier1,
        0,
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    )
}

/// Sends `raw` on a new connection (then half-closes when `close`) and reads the reply until
/// the daemon closes; at most 5 s.
async fn exchange(addr: SocketAddr, raw: &[u8], close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    if close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the daemon answers and closes")
        .unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Each malformation the issue names, and what it is answered: the connection closes after
/// it, with a log line, while an honest request on the same listener, sent slowly around
/// them, is served in full.
#[tokio::test]
async fn every_malformation_closes_its_connection_and_the_neighbour_finishes() {
    let d = Daemon::start(&config());
    let addr = uwsgi(&d);
    let mut overrun = packet(0, &vars("GET", "/get", None));
    overrun[4] = 0xff; // the first key's length, far past datasize
    let mut value_overrun = packet(0, &[("REQUEST_URI", "/get")]);
    let last = value_overrun.len() - 5; // the value length of the only var
    value_overrun[last] = 9;
    let trailing = {
        let mut p = packet(0, &vars("GET", "/get", None));
        p.extend_from_slice(&[1]); // one byte past the last var, inside datasize
        let datasize = u16::try_from(p.len() - 4).unwrap();
        p[1..3].copy_from_slice(&datasize.to_le_bytes());
        p
    };
    let honest_get = packet(0, &vars("GET", "/get", Some("")));
    let cases: Vec<(&str, Vec<u8>, bool, &str, &str)> = vec![
        (
            "modifier1 30 (SCRIPT_NAME stripping)",
            packet(30, &vars("GET", "/get", None)),
            false,
            "HTTP/1.1 501 ",
            "modifier1 30 is not supported",
        ),
        (
            "modifier1 1, header only",
            vec![1],
            false,
            "HTTP/1.1 501 ",
            "modifier1 1 is not supported",
        ),
        (
            "a truncated header",
            vec![0, 200],
            true,
            "HTTP/1.1 400 ",
            "uwsgi packet truncated: 2 of 4 bytes",
        ),
        (
            "truncated vars",
            honest_get[..honest_get.len() - 3].to_vec(),
            true,
            "HTTP/1.1 400 ",
            "uwsgi packet truncated",
        ),
        (
            "a key length overrunning datasize",
            overrun,
            false,
            "HTTP/1.1 400 ",
            "runs past datasize",
        ),
        (
            "a value length overrunning datasize",
            value_overrun,
            false,
            "HTTP/1.1 400 ",
            "runs past datasize",
        ),
        (
            "trailing bytes",
            trailing,
            false,
            "HTTP/1.1 400 ",
            "trailing bytes at the end of the uwsgi vars",
        ),
        (
            "a duplicate CONTENT_LENGTH",
            packet(
                0,
                &[
                    vars("POST", "/post", Some("3")),
                    vec![("CONTENT_LENGTH", "3")],
                ]
                .concat(),
            ),
            false,
            "HTTP/1.1 400 ",
            "CONTENT_LENGTH is repeated",
        ),
        (
            "a non-decimal CONTENT_LENGTH",
            packet(0, &vars("POST", "/post", Some("-1"))),
            false,
            "HTTP/1.1 400 ",
            "-1\" is not a decimal number",
        ),
        (
            "a hexadecimal CONTENT_LENGTH",
            packet(0, &vars("POST", "/post", Some("0x10"))),
            false,
            "HTTP/1.1 400 ",
            "0x10\" is not a decimal number",
        ),
    ];
    let body = b"honest body";
    let mut honest = packet(0, &vars("POST", "/post", Some("11")));
    honest.extend_from_slice(body);
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(&honest[..3]).await.unwrap(); // not even the whole header yet
    for (i, (what, raw, close, status, log)) in cases.iter().enumerate() {
        let out = exchange(addr, raw, *close).await;
        assert!(text(&out).starts_with(status), "{what}: {}", text(&out));
        d.wait_log(log);
        // Another piece of the honest request between malformations.
        let at = 3 + (honest.len() - 3) * (i + 1) / (cases.len() + 1);
        let from = 3 + (honest.len() - 3) * i / (cases.len() + 1);
        held.write_all(&honest[from..at]).await.unwrap();
    }
    let from = 3 + (honest.len() - 3) * cases.len() / (cases.len() + 1);
    held.write_all(&honest[from..]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "the honest request: {}",
        text(&out)
    );
    let reply = text(&out);
    let (_, json) = reply.split_once("\r\n\r\n").unwrap();
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["data"], "honest body");
    // And the listener still serves new connections.
    let out = exchange(addr, &honest_get, false).await;
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", text(&out));
}

#[tokio::test]
async fn vars_over_max_head_size_are_a_431() {
    let d = Daemon::start(&config().replace(
        "address = \"127.0.0.1:0\"\n\n[[listen]]\nprotocol = \"uwsgi\"",
        "address = \"127.0.0.1:0\"\nmax_head_size = \"1KiB\"\n\n[[listen]]\nprotocol = \"uwsgi\"",
    ));
    let big = "x".repeat(2000);
    let mut pairs = vars("GET", "/get", None);
    pairs.push(("HTTP_X_BIG", &big));
    let out = exchange(uwsgi(&d), &packet(0, &pairs), false).await;
    assert!(out.starts_with(b"HTTP/1.1 431 "), "{}", text(&out));
}

#[tokio::test]
async fn the_app_gets_exactly_content_length_bytes() {
    let d = Daemon::start(&config());
    let mut raw = packet(0, &vars("POST", "/environ", Some("5")));
    raw.extend_from_slice(b"helloEXTRA");
    let out = exchange(uwsgi(&d), &raw, true).await;
    let reply = text(&out);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["protocol"], "uwsgi");
    assert_eq!(doc["body_length"], 5);
    assert_eq!(doc["body_sha256"], common::sha256(b"hello"));
    assert_eq!(doc["environ"]["CONTENT_LENGTH"], "5");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_for_the_app() {
    let d = Daemon::start(&config());
    let mut raw = packet(0, &vars("POST", "/environ", Some("10")));
    raw.extend_from_slice(b"hell");
    let out = exchange(uwsgi(&d), &raw, true).await;
    assert!(out.starts_with(b"HTTP/1.1 400 "), "{}", text(&out));
    assert!(!text(&out).contains("body_length"));
}

/// The status page counts uwsgi requests under their own label.
#[tokio::test]
async fn the_status_page_and_the_access_log_name_uwsgi() {
    let d = Daemon::start(&config().replace(
        "[[mount]]\npath = \"/\"",
        "[apps.status]\ntype = \"status\"\n\n[[mount]]\npath = \"/-/status\"\napp = \"status\"\n\n[[mount]]\npath = \"/\"",
    ));
    let out = exchange(uwsgi(&d), &packet(0, &vars("GET", "/get", Some(""))), false).await;
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", text(&out));
    let out = exchange(
        uwsgi(&d),
        &packet(0, &vars("GET", "/-/status", Some(""))),
        false,
    )
    .await;
    let reply = text(&out);
    let (_, json) = reply.split_once("\r\n\r\n").unwrap();
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["requests"]["uwsgi"]["2xx"], 1, "{doc}");
    d.wait_log("protocol=uwsgi");
}

/// Runs the daemon under `systemd-socket-activate` with one TCP socket named `uwsgi` on
/// descriptor 3, with `address` naming it.
fn socket_activated(port: u16, address: &str) -> (std::process::Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let config = format!(
        "[[listen]]\nprotocol = \"uwsgi\"\naddress = \"{address}\"\n\n\
         [apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n"
    );
    std::fs::write(&path, config).unwrap();
    let child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), "--fdname=uwsgi"])
        .arg(common::gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, dir)
}

#[tokio::test]
async fn inherited_sockets_by_descriptor_and_by_systemd_name() {
    for address in ["fd:3", "systemd:uwsgi"] {
        let port = free_port();
        let (mut child, dir) = socket_activated(port, address);
        let out = exchange(
            ([127, 0, 0, 1], port).into(),
            &packet(0, &vars("GET", "/environ", Some(""))),
            false,
        )
        .await;
        assert!(
            text(&out).contains("\"protocol\": \"uwsgi\""),
            "{address}: {}\n{}",
            text(&out),
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        );
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(child.wait().unwrap().success(), "{address}");
    }
}

//! FastCGI end to end: the real binary behind real nginx (TCP, unix socket, keep-alive
//! upstream) and lighttpd, with the independent `cgi-fcgi` and `fastcgi-client` clients, and
//! on a listening socket inherited on descriptor 0.

mod common;

use std::process::{Command, Stdio};

use common::front::battery;
use common::peers::{lighttpd, nginx};
use common::{Daemon, sha256};

/// httpbin over FastCGI on TCP and a unix socket, and over HTTP for comparison.
const CONFIG: &str = r#"
[server]
max_body_size = "8MiB"

[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:0"

[[listen]]
protocol = "fastcgi"
address = "unix:{dir}/fastcgi.sock"
socket_mode = "0660"

[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[apps.bin]
type = "httpbin"

[[mount]]
path = "/"
app = "bin"
lint = true

[[mount]]
path = "/sub"
app = "bin"
lint = true
"#;

struct Gatewayd {
    daemon: Daemon,
}

impl Gatewayd {
    fn start() -> Gatewayd {
        Gatewayd {
            daemon: Daemon::start(CONFIG),
        }
    }

    fn fastcgi_tcp(&self) -> String {
        self.daemon.listening[0].1.clone()
    }

    fn fastcgi_unix(&self) -> String {
        self.daemon.listening[1].1.clone()
    }

    fn http(&self) -> std::net::SocketAddr {
        self.daemon.listening[2].1.parse().unwrap()
    }
}

fn snippet() -> String {
    format!(
        "    include {}/configs/nginx-fastcgi.conf;",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Established TCP connections whose local port is `port` (gatewayd's side), from /proc.
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<_> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .map(|(_, p)| p);
            local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port)
                && fields.get(3) == Some(&"01")
        })
        .count()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn behind_nginx_over_tcp() {
    let g = Gatewayd::start();
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", g.fastcgi_tcp()),
        &snippet(),
    );
    battery(n.addr, g.http(), "fastcgi").await;
    // Without KEEP_CONN, gatewayd closes each connection after END_REQUEST.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(established_on(port_of(&g.fastcgi_tcp())), 0);
}

#[tokio::test]
async fn behind_nginx_over_a_unix_socket() {
    let g = Gatewayd::start();
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", g.fastcgi_unix()),
        &snippet(),
    );
    battery(n.addr, g.http(), "fastcgi").await;
}

#[tokio::test]
async fn behind_nginx_with_keepalive_upstream() {
    let g = Gatewayd::start();
    let upstream = format!(
        "upstream gatewayd {{ server {}; keepalive 4; }}",
        g.fastcgi_tcp()
    );
    let n = nginx(
        &upstream,
        &format!("    fastcgi_keep_conn on;\n{}", snippet()),
    );
    battery(n.addr, g.http(), "fastcgi").await;
    for _ in 0..20 {
        assert_eq!(common::get(n.addr, "/get").await.status, 200);
    }
    // With KEEP_CONN, the upstream connections stay open for the next requests.
    let open = established_on(port_of(&g.fastcgi_tcp()));
    assert!((1..=4).contains(&open), "{open} upstream connections kept");
}

#[tokio::test]
async fn behind_lighttpd() {
    let g = Gatewayd::start();
    let (host, port) = g
        .fastcgi_tcp()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .unwrap();
    let l = lighttpd(&format!(
        "server.modules += (\"mod_fastcgi\")\n\
         fastcgi.server = ( \"/\" => (( \"host\" => \"{host}\", \"port\" => {port}, \"check-local\" => \"disable\" )) )"
    ));
    battery(l.addr, g.http(), "fastcgi").await;
}

/// lighttpd's `bin-path`: lighttpd binds the socket and starts gatewayd with it on fd 0.
#[tokio::test]
async fn spawned_by_lighttpd_on_fd_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spawned.toml");
    std::fs::write(
        &config,
        "[apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n",
    )
    .unwrap();
    let l = lighttpd(&format!(
        "server.modules += (\"mod_fastcgi\")\n\
         fastcgi.server = ( \"/\" => (( \"socket\" => \"{}/spawn.sock\", \"bin-path\" => \"{} serve --config {}\", \
         \"max-procs\" => 1, \"check-local\" => \"disable\" )) )",
        dir.path().display(),
        common::gatewayd_bin().display(),
        config.display()
    ));
    let doc = common::get(l.addr, "/environ/spawned").await.json();
    assert_eq!(doc["protocol"], "fastcgi");
    assert_eq!(doc["environ"]["PATH_INFO"], "/environ/spawned");
}

/// The FastCGI convention without a web server: a listening socket passed as stdin.
#[tokio::test]
async fn inherited_listening_socket_on_stdin() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("g.toml");
    std::fs::write(
        &config,
        "[apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n",
    )
    .unwrap();
    let mut child = Command::new(common::gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reply = fastcgi_client_get(addr, "/environ/inherited").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        reply.contains("\"PATH_INFO\": \"/environ/inherited\""),
        "{reply}"
    );
}

/// What nginx's fastcgi_params would send for a GET of `uri`.
fn get_params(uri: &str) -> fastcgi_client::Params<'static> {
    fastcgi_client::Params::default()
        .request_method("GET")
        .request_uri(uri.to_owned())
        .script_name(uri.split('?').next().unwrap_or_default().to_owned())
        .server_name("localhost")
        .server_port(80)
        .remote_addr("127.0.0.1")
        .content_length(0)
}

async fn fastcgi_client_get(addr: std::net::SocketAddr, uri: &str) -> String {
    use fastcgi_client::{Client, Request};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stream = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() > deadline => panic!("connect: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let client = Client::new_tokio(stream);
    let out = client
        .execute_once(Request::new_tokio(get_params(uri), tokio::io::empty()))
        .await
        .unwrap();
    String::from_utf8(out.stdout.unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn the_fastcgi_client_crate_gets_answers() {
    let g = Gatewayd::start();
    let addr: std::net::SocketAddr = g.fastcgi_tcp().parse().unwrap();
    let out = fastcgi_client_get(addr, "/sub/environ/x").await;
    assert!(out.starts_with("Status: 200 OK\r\n"), "{out}");
    assert!(out.contains("\"SCRIPT_NAME\": \"/sub\""), "{out}");
    assert!(out.contains("\"PATH_INFO\": \"/environ/x\""), "{out}");
    // Keep-alive mode: several requests on one connection.
    use fastcgi_client::{Client, Request};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut client = Client::new_keep_alive_tokio(stream);
    for i in 0..3 {
        let params = get_params(&format!("/anything/{i}"));
        let out = client
            .execute(Request::new_tokio(params, tokio::io::empty()))
            .await
            .unwrap();
        let text = String::from_utf8(out.stdout.unwrap()).unwrap();
        assert!(text.contains(&format!("/anything/{i}")), "{text}");
    }
}

/// libfcgi's own client: `cgi-fcgi -bind -connect` runs as a CGI program and forwards it.
#[tokio::test]
async fn cgi_fcgi_from_libfcgi() {
    let g = Gatewayd::start();
    let body = b"name=gatewayd&x=1".repeat(1000);
    let mut child = Command::new("cgi-fcgi")
        .args(["-bind", "-connect", &g.fastcgi_tcp()])
        .env_clear()
        .env("REQUEST_METHOD", "POST")
        .env("REQUEST_URI", "/environ/cgi-fcgi?q=1")
        .env("QUERY_STRING", "q=1")
        .env("CONTENT_TYPE", "application/x-www-form-urlencoded")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("SERVER_NAME", "localhost")
        .env("SERVER_PORT", "80")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cgi-fcgi (libfcgi-bin; run scripts/test.sh)");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
    assert!(
        text.contains("\"PATH_INFO\": \"/environ/cgi-fcgi\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"body_sha256\": \"{}\"", sha256(&body))),
        "{text}"
    );
}

/// At max_connections, the next connection waits in the backlog until one closes.
#[tokio::test]
async fn max_connections_is_enforced() {
    use futures_util::StreamExt as _;
    use proto_fastcgi::{RecordDecoder, RecordType};
    use tokio::io::AsyncWriteExt as _;
    let d = Daemon::start(
        "[[listen]]\nprotocol = \"fastcgi\"\naddress = \"127.0.0.1:0\"\nmax_connections = 1\n\n\
         [apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n",
    );
    let addr: std::net::SocketAddr = d.listening[0].1.parse().unwrap();
    let mut wire = bytes::BytesMut::new();
    let params: &[(&[u8], &[u8])] = &[
        (b"REQUEST_URI", b"/get"),
        (b"SERVER_NAME", b"x"),
        (b"SERVER_PORT", b"80"),
    ];
    proto_fastcgi::client::put_request(&mut wire, 1, false, params, b"");

    let first = tokio::net::TcpStream::connect(addr).await.unwrap(); // holds the only slot
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    second.write_all(&wire).await.unwrap();
    let mut frames = tokio_util::codec::FramedRead::new(second, RecordDecoder);
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), frames.next()).await;
    assert!(
        waited.is_err(),
        "the second connection was served while the first held the slot"
    );
    drop(first);
    let record = tokio::time::timeout(std::time::Duration::from_secs(5), frames.next())
        .await
        .expect("served once the slot was free")
        .expect("a record")
        .expect("a valid record");
    assert_eq!(record.kind, RecordType::Stdout);
}

/// A raw FastCGI connection, playing a web server that may misbehave.
struct Raw {
    write: tokio::net::tcp::OwnedWriteHalf,
    frames:
        tokio_util::codec::FramedRead<tokio::net::tcp::OwnedReadHalf, proto_fastcgi::RecordDecoder>,
    replies: proto_fastcgi::client::Replies,
}

impl Raw {
    async fn open(addr: &str) -> Raw {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        Raw::over(stream)
    }

    fn over(stream: tokio::net::TcpStream) -> Raw {
        let (read, write) = stream.into_split();
        Raw {
            write,
            frames: tokio_util::codec::FramedRead::new(read, proto_fastcgi::RecordDecoder),
            replies: Default::default(),
        }
    }

    async fn send(&mut self, wire: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.write.write_all(wire).await.unwrap();
    }

    /// Reads records until END_REQUEST for every id in `ids`; panics after 5 s.
    async fn until_ended(&mut self, ids: &[u16]) {
        use futures_util::StreamExt as _;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !ids.iter().all(|&id| self.replies.ended(id)) {
            match tokio::time::timeout_at(deadline, self.frames.next()).await {
                Ok(Some(Ok(r))) => self.replies.push(r),
                other => panic!(
                    "no END_REQUEST for all of {ids:?}: {other:?}, {:?}",
                    self.replies
                ),
            }
        }
    }

    /// Closes with SO_LINGER 0 (set by the caller): a reset, with no FIN before it (dropping a
    /// write half alone would send one).
    fn reset(self) {
        let stream = self.frames.into_inner().reunite(self.write).unwrap();
        drop(stream);
    }

    fn reply(&self, id: u16) -> &proto_fastcgi::client::Reply {
        &self.replies.by_id[&id]
    }
}

/// nginx's params for a request of `uri` with `content_length` (`None`: not sent).
fn params_for(uri: &str, content_length: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", uri),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    if let Some(len) = content_length {
        params.push((b"CONTENT_LENGTH".to_vec(), len.as_bytes().to_vec()));
    }
    params
}

fn put_head(wire: &mut bytes::BytesMut, id: u16, params: &[(Vec<u8>, Vec<u8>)]) {
    use proto_fastcgi::Role;
    let pairs: Vec<(&[u8], &[u8])> = params.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    proto_fastcgi::client::put_begin(wire, id, Role::Responder, true);
    proto_fastcgi::client::put_params(wire, id, &pairs);
}

fn put_stdin(wire: &mut bytes::BytesMut, id: u16, body: &[u8]) {
    proto_fastcgi::put_stream(wire, proto_fastcgi::RecordType::Stdin, id, body);
    proto_fastcgi::put_stream_end(wire, proto_fastcgi::RecordType::Stdin, id);
}

/// httpbin (unlinted: an invalid CONTENT_LENGTH must reach the front-end) and CGI scripts in
/// `scripts` behind a multiplexing FastCGI listener.
fn mux_daemon(scripts: &std::path::Path, extra_server: &str, extra_listen: &str) -> Daemon {
    Daemon::start(&format!(
        "[server]\nmax_body_size = \"32MiB\"\n{extra_server}\n\n\
         [[listen]]\nprotocol = \"fastcgi\"\naddress = \"127.0.0.1:0\"\nmax_requests = 8\n{extra_listen}\n\n\
         [apps.bin]\ntype = \"httpbin\"\n\n\
         [apps.scripts]\ntype = \"cgi\"\nroot = \"{}\"\ntimeout = \"10s\"\npass_env = [\"PATH\"]\n\n\
         [[mount]]\npath = \"/\"\napp = \"bin\"\n\n\
         [[mount]]\npath = \"/cgi\"\napp = \"scripts\"\n",
        scripts.display()
    ))
}

/// A directory of CGI scripts: name and shell body.
fn scripts(list: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in list {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn body_of(reply: &proto_fastcgi::client::Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", reply.stdout))
}

/// STDIN that disagrees with CONTENT_LENGTH is refused (400, END_REQUEST), never trimmed or
/// passed on, and the other requests on the connection are served; a body without a valid
/// CONTENT_LENGTH (Caddy 2.6 sends -1) is whole up to the empty STDIN record.
#[tokio::test]
async fn stdin_that_disagrees_with_content_length_is_refused() {
    use proto_fastcgi::ProtocolStatus;
    // `count.sh` reads its whole stdin, then answers 200 whatever it got: the front-end must
    // answer 400 for it, since the body it was given was refused before its head.
    let dir = scripts(&[(
        "count.sh",
        "n=$(wc -c); printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$n\"",
    )]);
    let d = mux_daemon(dir.path(), "", "");
    let mut c = Raw::open(&d.listening[0].1).await;
    let mut wire = bytes::BytesMut::new();
    let long = b"twenty-one bytes long";
    put_head(&mut wire, 1, &params_for("/environ/long", Some("10")));
    put_stdin(&mut wire, 1, long);
    put_head(&mut wire, 2, &params_for("/environ/short", Some("30")));
    put_stdin(&mut wire, 2, b"only five");
    put_head(&mut wire, 3, &params_for("/environ/fine", Some("4")));
    put_stdin(&mut wire, 3, b"fine");
    put_head(&mut wire, 4, &params_for("/environ/caddy", Some("-1")));
    put_stdin(&mut wire, 4, long);
    put_head(&mut wire, 5, &params_for("/cgi/count.sh", Some("10")));
    put_stdin(&mut wire, 5, long);
    put_head(&mut wire, 6, &params_for("/environ/absent", None));
    put_stdin(&mut wire, 6, long);
    c.send(&wire).await;
    c.until_ended(&[1, 2, 3, 4, 5, 6]).await;
    for id in 1..=6 {
        let end = c.reply(id).end.unwrap();
        assert_eq!(end.protocol_status, ProtocolStatus::RequestComplete, "{id}");
    }
    assert_eq!(c.reply(1).status(), Some(400), "{:?}", c.reply(1));
    assert_eq!(c.reply(2).status(), Some(400), "{:?}", c.reply(2));
    assert_eq!(c.reply(5).status(), Some(400), "{:?}", c.reply(5));
    assert_eq!(body_of(c.reply(3))["body_length"], 4);
    for id in [4, 6] {
        let doc = body_of(c.reply(id));
        assert_eq!(doc["body_length"], long.len(), "{doc}");
        assert_eq!(doc["body_sha256"], sha256(long), "{doc}");
    }
    d.wait_log("refusing a FastCGI request body");
    // The connection serves on.
    c.replies = Default::default();
    let mut wire = bytes::BytesMut::new();
    put_head(&mut wire, 1, &params_for("/environ/again", Some("2")));
    put_stdin(&mut wire, 1, b"ok");
    c.send(&wire).await;
    c.until_ended(&[1]).await;
    assert_eq!(body_of(c.reply(1))["body_length"], 2);
}

/// STDIN before the end of PARAMS cannot be told apart from the head: the request is refused
/// with 400 and a log line (not its data dropped silently), and the connection serves on.
#[tokio::test]
async fn stdin_before_params_end_is_refused() {
    use proto_fastcgi::{RecordType, put_record};
    let dir = scripts(&[]);
    let d = mux_daemon(dir.path(), "", "");
    let mut c = Raw::open(&d.listening[0].1).await;
    let mut wire = bytes::BytesMut::new();
    proto_fastcgi::client::put_begin(&mut wire, 1, proto_fastcgi::Role::Responder, true);
    put_record(&mut wire, RecordType::Stdin, 1, b"early");
    let params = params_for("/environ/early", Some("5"));
    let pairs: Vec<(&[u8], &[u8])> = params.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    proto_fastcgi::client::put_params(&mut wire, 1, &pairs);
    put_record(&mut wire, RecordType::Stdin, 1, &[]);
    put_head(&mut wire, 2, &params_for("/environ/next", Some("4")));
    put_stdin(&mut wire, 2, b"next");
    c.send(&wire).await;
    c.until_ended(&[1, 2]).await;
    assert_eq!(c.reply(1).status(), Some(400), "{:?}", c.reply(1));
    assert_eq!(body_of(c.reply(2))["body_length"], 4);
    d.wait_log("STDIN before the end of PARAMS");
}

/// Once END_REQUEST is sent, the id is the web server's to reuse: late records of the old
/// request are dropped, and a new BEGIN_REQUEST on it is a new request (it closed the
/// connection).
#[tokio::test]
async fn an_ended_request_id_can_be_reused() {
    use proto_fastcgi::{RecordType, put_record};
    let dir = scripts(&[]);
    let d = mux_daemon(dir.path(), "", "");
    let mut c = Raw::open(&d.listening[0].1).await;
    // /status/200 answers without reading its body: END_REQUEST comes while STDIN is open.
    let mut wire = bytes::BytesMut::new();
    put_head(&mut wire, 1, &params_for("/status/200", Some("100000")));
    put_record(&mut wire, RecordType::Stdin, 1, b"part of the body");
    c.send(&wire).await;
    c.until_ended(&[1]).await;
    assert_eq!(c.reply(1).status(), Some(200));
    for late in [
        RecordType::Stdin,
        RecordType::Params,
        RecordType::AbortRequest,
    ] {
        // Late records of the old request, then a new request on the same id.
        let mut wire = bytes::BytesMut::new();
        put_record(&mut wire, late, 1, b"late");
        put_head(&mut wire, 1, &params_for("/environ/reused", Some("3")));
        put_stdin(&mut wire, 1, b"new");
        c.replies = Default::default();
        c.send(&wire).await;
        c.until_ended(&[1]).await;
        let doc = body_of(c.reply(1));
        assert_eq!(doc["body_length"], 3, "after a late {late:?}: {doc}");
        assert_eq!(doc["environ"]["PATH_INFO"], "/environ/reused");
        // Leave the id ended with STDIN open again for the next round.
        let mut wire = bytes::BytesMut::new();
        put_head(&mut wire, 1, &params_for("/status/200", Some("100000")));
        put_record(&mut wire, RecordType::Stdin, 1, b"part");
        c.replies = Default::default();
        c.send(&wire).await;
        c.until_ended(&[1]).await;
    }
    assert!(!d.stderr().contains("protocol error"), "{}", d.stderr());
}

/// HAProxy resets the idle FastCGI connections it closes: a reset between requests is no
/// malformed input, and logs no warning.
#[tokio::test]
async fn a_reset_between_requests_is_not_a_warning() {
    let dir = scripts(&[]);
    let d = mux_daemon(dir.path(), "", "");
    let stream = tokio::net::TcpStream::connect(&d.listening[0].1)
        .await
        .unwrap();
    stream.set_zero_linger().unwrap();
    let mut c = Raw::over(stream);
    let mut wire = bytes::BytesMut::new();
    put_head(
        &mut wire,
        1,
        &params_for("/environ/before-reset", Some("0")),
    );
    put_stdin(&mut wire, 1, b"");
    c.send(&wire).await;
    c.until_ended(&[1]).await;
    assert_eq!(c.reply(1).status(), Some(200));
    c.reset();
    // A request after the reset, whose access line shows the daemon went past it.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut c = Raw::open(&d.listening[0].1).await;
    let mut wire = bytes::BytesMut::new();
    put_head(&mut wire, 1, &params_for("/environ/after-reset", Some("0")));
    put_stdin(&mut wire, 1, b"");
    c.send(&wire).await;
    c.until_ended(&[1]).await;
    d.wait_log("/environ/after-reset");
    let log = d.stderr();
    assert!(!log.contains("WARN"), "{log}");
}

/// A field of /proc/PID/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// 3 connections × 8 multiplexed requests × 32 MiB bodies, to scripts that read nothing for
/// a second: what the daemon buffers stays within `body_buffer_budget` (the connections stop
/// reading past it, instead of taking the daemon to 775 MiB), and every request completes
/// with its whole body once its script reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multiplexed_bodies_stay_within_the_budget() {
    use proto_fastcgi::{RecordType, put_record};
    const BODY: usize = 32 << 20;
    const CHUNK: usize = 32 << 10;
    let dir = scripts(&[(
        "slow-count.sh",
        "sleep 1; n=$(wc -c); printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$n\"",
    )]);
    let d = mux_daemon(
        dir.path(),
        "body_buffer_budget = \"16MiB\"\nworkers = 2",
        "",
    );
    let addr = d.listening[0].1.clone();
    // A first request, so that the baseline holds what serving costs anyway.
    let mut warm = Raw::open(&addr).await;
    let mut wire = bytes::BytesMut::new();
    put_head(&mut wire, 1, &params_for("/environ/warm", Some("3")));
    put_stdin(&mut wire, 1, b"abc");
    warm.send(&wire).await;
    warm.until_ended(&[1]).await;
    drop(warm);
    let baseline = proc_status_kib(d.pid(), "VmRSS");
    let started = std::time::Instant::now();
    let conns = (0..3).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut c = Raw::open(&addr).await;
            let len = BODY.to_string();
            let mut wire = bytes::BytesMut::new();
            for id in 1..=8 {
                put_head(&mut wire, id, &params_for("/cgi/slow-count.sh", Some(&len)));
            }
            c.send(&wire).await;
            let Raw {
                mut write,
                frames,
                replies,
            } = c;
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let chunk = vec![b'x'; CHUNK];
                let mut wire = bytes::BytesMut::new();
                for _ in 0..BODY / CHUNK {
                    for id in 1..=8 {
                        put_record(&mut wire, RecordType::Stdin, id, &chunk);
                    }
                    write.write_all(&wire).await.unwrap();
                    wire.clear();
                }
                for id in 1..=8 {
                    put_record(&mut wire, RecordType::Stdin, id, &[]);
                }
                write.write_all(&wire).await.unwrap();
                write
            });
            let mut reader = Raw {
                write: writer.await.unwrap(),
                frames,
                replies,
            };
            reader.until_ended(&[1, 2, 3, 4, 5, 6, 7, 8]).await;
            reader.replies
        })
    });
    let conns: Vec<_> = conns.collect();
    for conn in conns {
        let replies = tokio::time::timeout(std::time::Duration::from_secs(60), conn)
            .await
            .expect("every request answered")
            .unwrap();
        for id in 1..=8 {
            let reply = &replies.by_id[&id];
            assert_eq!(reply.status(), Some(200), "{reply:?}");
            assert_eq!(&reply.body()[..], format!("{BODY}\n").as_bytes());
        }
    }
    let peak = proc_status_kib(d.pid(), "VmHWM");
    eprintln!(
        "baseline {baseline} KiB, peak {peak} KiB, growth {} KiB, in {:?}",
        peak - baseline,
        started.elapsed()
    );
    assert!(
        peak - baseline < (16 + 16) << 10,
        "peak {peak} KiB over a baseline of {baseline} KiB"
    );
}

/// HAProxy in front, the one packaged peer that multiplexes; killed on drop.
struct HaProxy {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    /// HAProxy's `fcgi-app` to `fastcgi` (host:port), multiplexing and keeping connections,
    /// purging idle ones after `purge`.
    fn start(fastcgi: &str, purge: &str) -> HaProxy {
        let dir = tempfile::tempdir().unwrap();
        let port = common::peers::free_port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
                 frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
                 backend be\n  use-fcgi-app gw\n  http-reuse always\n  \
                 server s1 {fastcgi} proto fcgi pool-purge-delay {purge}\n\
                 fcgi-app gw\n  docroot {}\n  option keep-conn\n  option mpxs-conns\n  option max-reqs 8\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (run scripts/test.sh to install it)");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "haproxy did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        HaProxy {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real thing: HAProxy resets the idle FastCGI connections it purges, which is no
/// malformed input and logs no warning.
#[tokio::test]
async fn haproxy_resetting_its_idle_connections_logs_no_warning() {
    let dir = scripts(&[]);
    let d = mux_daemon(dir.path(), "", "");
    let fastcgi = d.listening[0].1.clone();
    let h = HaProxy::start(&fastcgi, "200ms");
    let reply = common::get(h.addr, "/environ/through-haproxy").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["protocol"], "fastcgi");
    // HAProxy purges the idle connection (with a reset) within about a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while established_on(port_of(&fastcgi)) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "HAProxy kept its idle connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = d.stderr();
    assert!(!log.contains("WARN"), "{log}");
}

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

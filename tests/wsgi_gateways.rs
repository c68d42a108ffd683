//! Real WSGI apps under every gateway: a plain PEP 3333 callable, the same wrapped in
//! `wsgiref.validate` (warnings as errors), a Flask app and a Django project, all with the same
//! routes (tests/fixtures/wsgi/), each mounted at `/app` and reached over gatewayd's own HTTP,
//! over FastCGI and SCGI behind a real nginx (configs/nginx-*.conf verbatim), and with gatewayd
//! run as a CGI program. Every app gives the same bytes under every gateway: the expected
//! bodies below are literals, so bodies are compared across apps and gateways at once.

mod common;

use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::peers::{Peer, nginx};
use common::{Daemon, Reply, gatewayd_bin};

#[derive(Clone, Copy, Debug)]
enum App {
    /// `application(environ, start_response)`, no framework.
    Plain,
    /// The plain app under `wsgiref.validate.validator`, with `warnings.simplefilter("error")`.
    Validated,
    Flask,
    Django,
}

impl App {
    /// The config's `module`: both the default callable and a named one.
    fn module(self) -> &'static str {
        match self {
            App::Plain => "plain_app",
            App::Validated => "validated_app",
            App::Flask => "flask_app:app",
            App::Django => "djsite.wsgi",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Gateway {
    /// gatewayd's own HTTP listener.
    Http,
    /// nginx `fastcgi_pass` to gatewayd's FastCGI listener.
    FastcgiNginx,
    /// nginx `scgi_pass` to gatewayd's SCGI listener.
    ScgiNginx,
    /// gatewayd run once per request as a CGI program.
    Cgi,
}

/// The apps' fixtures: `python_path` of every config.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wsgi")
}

/// One app mounted at `/app`, with the listeners given (none for CGI).
fn config(app: App, listen: &str) -> String {
    format!(
        "{listen}\n[apps.site]\ntype = \"wsgi\"\nmodule = \"{}\"\npython_path = [\"{}\"]\nthreads = 4\n\n\
         [[mount]]\npath = \"/app\"\napp = \"site\"\n",
        app.module(),
        fixtures().display()
    )
}

fn listener(protocol: &str) -> String {
    format!("[[listen]]\nprotocol = \"{protocol}\"\naddress = \"127.0.0.1:0\"\n")
}

/// Where requests go: an HTTP address (gatewayd's own or nginx's), or a CGI invocation.
enum Front {
    Listener {
        addr: SocketAddr,
        daemon: Daemon,
        _nginx: Option<Peer>,
    },
    Cgi {
        config: PathBuf,
        _dir: tempfile::TempDir,
    },
}

impl Front {
    fn start(app: App, gateway: Gateway) -> Front {
        match gateway {
            Gateway::Http => {
                let daemon = Daemon::start(&config(app, &listener("http")));
                let addr = daemon.addr();
                Front::Listener {
                    addr,
                    daemon,
                    _nginx: None,
                }
            }
            Gateway::FastcgiNginx => behind_nginx(app, "fastcgi", "nginx-fastcgi.conf"),
            Gateway::ScgiNginx => behind_nginx(app, "scgi", "nginx-scgi.conf"),
            Gateway::Cgi => {
                let dir = tempfile::tempdir().expect("temp dir");
                let config_path = dir.path().join("gatewayd.toml");
                std::fs::write(&config_path, config(app, "")).expect("write config");
                Front::Cgi {
                    config: config_path,
                    _dir: dir,
                }
            }
        }
    }

    /// One request: `target` is the raw path and query.
    async fn send(&self, method: &str, target: &str, body: &[u8]) -> Reply {
        match self {
            Front::Listener { addr, .. } => {
                let mut req = common::req(method, target, body.to_vec());
                if !body.is_empty() {
                    let octets = "application/octet-stream".parse().expect("header value");
                    req.headers_mut().insert("content-type", octets);
                }
                common::send(*addr, req).await
            }
            Front::Cgi { config, .. } => cgi_request(config, method, target, body),
        }
    }

    async fn get(&self, target: &str) -> Reply {
        self.send("GET", target, b"").await
    }

    /// The daemon's log so far (for CGI, each request's log is checked as it ends).
    fn log(&self) -> String {
        match self {
            Front::Listener { daemon, .. } => daemon.stderr(),
            Front::Cgi { .. } => String::new(),
        }
    }
}

/// gatewayd with one `protocol` listener, and nginx in front of it on the shipped `conf`.
fn behind_nginx(app: App, protocol: &str, conf: &str) -> Front {
    let daemon = Daemon::start(&config(app, &listener(protocol)));
    let upstream = &daemon.listening[0].1;
    let conf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(conf);
    let peer = nginx(
        &format!("upstream gatewayd {{ server {upstream}; }}"),
        &format!("    include {};", conf.display()),
    );
    Front::Listener {
        addr: peer.addr,
        daemon,
        _nginx: Some(peer),
    }
}

/// Runs gatewayd as a CGI program that a host maps at its root (SCRIPT_NAME empty, the whole
/// path in PATH_INFO, percent-decoded), with the variables RFC 3875 has a host set. Its log
/// must hold no Python complaint. Killed if it runs 30 s.
fn cgi_request(config: &Path, method: &str, target: &str, body: &[u8]) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cmd = Command::new(gatewayd_bin());
    cmd.env_clear()
        .env("GATEWAYD_CONFIG", config)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_SOFTWARE", "wsgi_gateways-test")
        .env("SERVER_NAME", "localhost")
        .env("SERVER_PORT", "80")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", method)
        .env("SCRIPT_NAME", "")
        .env(
            "PATH_INFO",
            std::ffi::OsStr::from_bytes(&percent_decode(path)),
        )
        .env("QUERY_STRING", query)
        .env("HTTP_HOST", "localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !body.is_empty() {
        cmd.env("CONTENT_LENGTH", body.len().to_string())
            .env("CONTENT_TYPE", "application/octet-stream");
    }
    let mut child = cmd.spawn().expect("spawn gatewayd as CGI");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write the body to stdin");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(out) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        panic!("gatewayd as CGI ran 30 s on {method} {target}");
    };
    let out = out.expect("gatewayd as CGI");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{method} {target}: exit {}\n{log}",
        out.status
    );
    assert!(complaints(&log).is_empty(), "{method} {target}:\n{log}");
    parse_cgi(&out.stdout)
}

/// The lines of `log` where Python complained outside any request's answer: a traceback, an
/// exception ignored in a `__del__` (wsgiref.validate's check that the result was closed), a
/// warning.
fn complaints(log: &str) -> Vec<&str> {
    let markers = [
        "Traceback",
        "Exception ignored",
        "Warning",
        "garbage collected",
    ];
    log.lines()
        .filter(|l| markers.iter().any(|m| l.contains(m)))
        .collect()
}

/// A CGI response (RFC 3875 §6): header fields, `Status` among them, a blank line, the body.
fn parse_cgi(stdout: &[u8]) -> Reply {
    let split = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no CGI head: {}", String::from_utf8_lossy(stdout)));
    let head = std::str::from_utf8(&stdout[..split]).expect("an ASCII head");
    let mut status = 200;
    let mut headers = http::HeaderMap::new();
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').expect("name: value");
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value[..3].parse().expect("a status code");
        } else {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("a header value"),
            );
        }
    }
    Reply {
        status,
        headers,
        body: stdout[split + 4..].to_vec().into(),
    }
}

/// `%XX` decoded once, as a CGI host decodes the path it puts in PATH_INFO.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The page at `/app/`: one link, built by the framework under the mount.
const INDEX: &str =
    "<!doctype html>\n<title>items</title>\n<p><a href=\"/app/items/42\">item 42</a></p>\n";

/// `/app/items/42`: the id, SCRIPT_NAME and PATH_INFO as the app saw them, its query string
/// and the arguments it parsed from it (JSON, keys sorted).
const ITEM_42: &str = r#"{"args": {}, "id": "42", "path_info": "/items/42", "query_string": "", "script_name": "/app"}"#;

const ITEM_42_QUERY: &str = r#"{"args": {"q": "a b"}, "id": "42", "path_info": "/items/42", "query_string": "q=a%20b", "script_name": "/app"}"#;

/// `/app/items/caf%C3%A9`: the path decoded once and read as UTF-8 by the app.
const ITEM_CAFE: &str = r#"{"args": {}, "id": "caf\u00e9", "path_info": "/items/caf\u00e9", "query_string": "", "script_name": "/app"}"#;

/// A body no text decoding survives: UTF-8, a lone latin-1 byte, NUL, CR LF, 0xFF.
const ECHOED: &[u8] = b"caf\xc3\xa9 \xe2\x82\xac \xe9\x00\r\n\xff\xfe end";

/// A 200 with `content_type` and exactly `body`.
fn assert_ok(what: &str, reply: &Reply, content_type: &str, body: &[u8]) {
    assert_eq!(reply.status, 200, "{what}: {}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some(content_type),
        "{what}: {:?}",
        reply.headers
    );
    assert_eq!(
        reply.body,
        body,
        "{what}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// The href of the page's one link.
fn link(page: &str) -> &str {
    let start = page.find("href=\"").expect("a link") + "href=\"".len();
    let len = page[start..].find('"').expect("a closed href");
    &page[start..start + len]
}

/// `/app/` answers the page, and its framework-built link, under the mount, leads to the item.
async fn index_links_under_the_mount(front: &Front, what: &str) {
    let page = front.get("/app/").await;
    assert_ok(what, &page, "text/html; charset=utf-8", INDEX.as_bytes());
    let href = link(&page.text()).to_owned();
    assert_eq!(href, "/app/items/42", "{what}");
    let item = front.get(&href).await;
    assert_ok(what, &item, "application/json", ITEM_42.as_bytes());
}

/// The app sees SCRIPT_NAME `/app` and PATH_INFO `/items/42`, with and without a query.
async fn item_sees_the_mount_split(front: &Front, what: &str) {
    let item = front.get("/app/items/42").await;
    assert_ok(what, &item, "application/json", ITEM_42.as_bytes());
    let doc = item.json();
    assert_eq!(doc["script_name"], "/app", "{what}");
    assert_eq!(doc["path_info"], "/items/42", "{what}");
}

/// The query string arrives raw, and the app parses it (`%20` is a space).
async fn query_string_arrives_raw(front: &Front, what: &str) {
    let item = front.get("/app/items/42?q=a%20b").await;
    assert_ok(what, &item, "application/json", ITEM_42_QUERY.as_bytes());
}

/// A percent-encoded UTF-8 path segment reaches the app decoded once.
async fn encoded_path_is_decoded_once(front: &Front, what: &str) {
    let item = front.get("/app/items/caf%C3%A9").await;
    assert_ok(what, &item, "application/json", ITEM_CAFE.as_bytes());
}

/// A POST body of arbitrary bytes comes back byte for byte.
async fn echo_returns_the_bytes(front: &Front, what: &str) {
    let echo = front.send("POST", "/app/echo", ECHOED).await;
    assert_ok(what, &echo, "application/octet-stream", ECHOED);
}

/// A route the app does not have is the app's 404, not the gateway's error.
async fn unknown_route_is_the_apps_404(front: &Front, what: &str) {
    let reply = front.get("/app/nowhere").await;
    assert_eq!(reply.status, 404, "{what}: {}", reply.text());
}

/// Every check, then: Python complained of nothing in the daemon's log.
async fn check(app: App, gateway: Gateway) {
    let what = format!("{app:?} over {gateway:?}");
    let front = Front::start(app, gateway);
    index_links_under_the_mount(&front, &what).await;
    item_sees_the_mount_split(&front, &what).await;
    query_string_arrives_raw(&front, &what).await;
    encoded_path_is_decoded_once(&front, &what).await;
    echo_returns_the_bytes(&front, &what).await;
    unknown_route_is_the_apps_404(&front, &what).await;
    let log = front.log();
    assert!(complaints(&log).is_empty(), "{what}:\n{log}");
}

/// One test per (app, gateway).
macro_rules! table {
    ($($name:ident: $app:ident over $gateway:ident;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                check(App::$app, Gateway::$gateway).await;
            }
        )*
    };
}

table! {
    plain_over_http: Plain over Http;
    plain_over_fastcgi_nginx: Plain over FastcgiNginx;
    plain_over_scgi_nginx: Plain over ScgiNginx;
    plain_as_cgi: Plain over Cgi;

    validated_over_http: Validated over Http;
    validated_over_fastcgi_nginx: Validated over FastcgiNginx;
    validated_over_scgi_nginx: Validated over ScgiNginx;
    validated_as_cgi: Validated over Cgi;

    flask_over_http: Flask over Http;
    flask_over_fastcgi_nginx: Flask over FastcgiNginx;
    flask_over_scgi_nginx: Flask over ScgiNginx;
    flask_as_cgi: Flask over Cgi;

    django_over_http: Django over Http;
    django_over_fastcgi_nginx: Django over FastcgiNginx;
    django_over_scgi_nginx: Django over ScgiNginx;
    django_as_cgi: Django over Cgi;
}

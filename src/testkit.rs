//! Test your app under every gateway: write one test, it runs four times.
//!
//! What Plack::Test::Suite gives Perl: your [`App`] served in-process over HTTP, FastCGI and
//! SCGI (each through its real front-end, fed by the project's own client encoders over an
//! in-memory pipe, no sockets), and over CGI by spawning a binary, all behind one client API.
//!
//! ```
//! use gatewayd::core::{Environ, Response, app_fn};
//! use gatewayd::testkit;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = app_fn(|env: Environ, _body| async move {
//!     Response::text(200, String::from_utf8_lossy(env.path_info()).into_owned())
//! });
//! for client in testkit::every_gateway(app) {
//!     let res = client.get("/hello/world?x=1").await;
//!     assert_eq!(res.status, 200, "{}", client.gateway());
//!     assert_eq!(res.text(), "/hello/world", "{}", client.gateway());
//! }
//! # });
//! ```

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use gateway_core::{App, Body, SharedApp};
use http::{HeaderMap, HeaderName, HeaderValue};
use proto_http::{ConnInfo, environ};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The header fields; a repeated field stays repeated.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Which gateway a [`TestClient`] goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gateway {
    /// HTTP/1.1, through gatewayd's hyper front-end.
    Http,
    /// FastCGI, through gatewayd's FastCGI driver.
    FastCgi,
    /// SCGI, through gatewayd's SCGI driver.
    Scgi,
    /// CGI, by spawning a binary.
    Cgi,
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gateway::Http => "http",
            Gateway::FastCgi => "fastcgi",
            Gateway::Scgi => "scgi",
            Gateway::Cgi => "cgi",
        })
    }
}

/// One way to reach the app, with one request API whatever the way.
pub struct TestClient {
    target: Target,
}

enum Target {
    InProcess(Gateway, Arc<SharedApp>),
    /// A gatewayd binary (or your own, built on this library) and its config.
    Cgi(PathBuf, PathBuf),
}

/// Clients for `app` over HTTP, FastCGI and SCGI, in that order.
pub fn every_gateway(app: impl App) -> Vec<TestClient> {
    let app = Arc::new(SharedApp::new(app));
    [Gateway::Http, Gateway::FastCgi, Gateway::Scgi]
        .into_iter()
        .map(|g| TestClient {
            target: Target::InProcess(g, app.clone()),
        })
        .collect()
}

/// A client that runs `binary` as a CGI program for each request, with `GATEWAYD_CONFIG` set
/// to `config`: the fourth gateway, for an app that a binary of yours registers by type.
pub fn cgi(binary: impl Into<PathBuf>, config: impl Into<PathBuf>) -> TestClient {
    TestClient {
        target: Target::Cgi(binary.into(), config.into()),
    }
}

impl TestClient {
    /// A client for `app` through one in-process gateway (not [`Gateway::Cgi`]: see [`cgi`]).
    pub fn new(gateway: Gateway, app: impl App) -> Self {
        TestClient {
            target: Target::InProcess(gateway, Arc::new(SharedApp::new(app))),
        }
    }

    /// The gateway this client goes through.
    pub fn gateway(&self) -> Gateway {
        match &self.target {
            Target::InProcess(g, _) => *g,
            Target::Cgi(..) => Gateway::Cgi,
        }
    }

    /// A GET of `path` (with its query).
    pub async fn get(&self, path: &str) -> TestResponse {
        let req = http::Request::get(path).body(Bytes::new());
        self.send(req.unwrap_or_default()).await
    }

    /// Sends a request and reads the whole response. A failure of the exchange itself (not a
    /// status the app chose) comes back as status 599 with the reason in the body.
    pub async fn send(&self, req: http::Request<Bytes>) -> TestResponse {
        let result = match &self.target {
            Target::InProcess(Gateway::Http, app) => http(app.clone(), req).await,
            Target::InProcess(Gateway::FastCgi, app) => fastcgi(app.clone(), req).await,
            Target::InProcess(Gateway::Scgi, app) => scgi(app.clone(), req).await,
            Target::InProcess(Gateway::Cgi, _) => Err("use testkit::cgi for CGI".into()),
            Target::Cgi(bin, config) => cgi_process(bin, config, req).await,
        };
        result.unwrap_or_else(|e: String| TestResponse {
            status: 599,
            headers: HeaderMap::new(),
            body: e.into(),
        })
    }
}

/// The CGI variables a front server would send for `req`, with CONTENT_LENGTH first (SCGI
/// wants it there).
fn params(req: &http::request::Parts, body: &[u8]) -> Vec<(Bytes, Bytes)> {
    let conn = ConnInfo {
        local: Some(([127, 0, 0, 1], 80).into()),
        remote: Some(([127, 0, 0, 1], 40000).into()),
    };
    let env = environ(req, &conn);
    let mut out = vec![(
        Bytes::from_static(b"CONTENT_LENGTH"),
        Bytes::from(body.len().to_string()),
    )];
    out.extend(
        env.iter()
            .filter(|(n, _)| *n != b"CONTENT_LENGTH")
            .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v))),
    );
    out
}

async fn http(app: Arc<SharedApp>, req: http::Request<Bytes>) -> Result<TestResponse, String> {
    let (client, server) = tokio::io::duplex(64 << 10);
    let config = Arc::new(proto_http::HttpConfig::default());
    tokio::spawn(proto_http::serve_connection(
        server,
        ConnInfo::default(),
        app,
        config,
        CancellationToken::new(),
    ));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    parts
        .headers
        .entry(http::header::HOST)
        .or_insert(HeaderValue::from_static("localhost"));
    let res = sender
        .send_request(http::Request::from_parts(parts, Body::from(body)))
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    let body = Body::new(body)
        .to_bytes()
        .await
        .map_err(|e| e.to_string())?;
    Ok(TestResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

async fn fastcgi(app: Arc<SharedApp>, req: http::Request<Bytes>) -> Result<TestResponse, String> {
    let (client, server) = tokio::io::duplex(64 << 10);
    let config = Arc::new(proto_fastcgi::FastCgiConfig::default());
    tokio::spawn(proto_fastcgi::serve_connection(
        server,
        app,
        config,
        CancellationToken::new(),
    ));
    let (parts, body) = req.into_parts();
    let pairs = params(&parts, &body);
    let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    let mut wire = BytesMut::new();
    proto_fastcgi::client::put_request(&mut wire, 1, false, &pairs, &body);
    let (read, mut write) = tokio::io::split(client);
    let writer = tokio::spawn(async move { write.write_all(&wire).await.map(|()| write) });
    let mut frames = tokio_util::codec::FramedRead::new(read, proto_fastcgi::RecordDecoder);
    let mut replies = proto_fastcgi::client::Replies::default();
    while !replies.ended(1) {
        match frames.next().await {
            Some(Ok(record)) => replies.push(record),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the connection closed before END_REQUEST".into()),
        }
    }
    drop(writer.await);
    let stdout = replies
        .by_id
        .remove(&1)
        .map(|r| r.stdout.freeze())
        .unwrap_or_default();
    from_cgi(stdout)
}

async fn scgi(app: Arc<SharedApp>, req: http::Request<Bytes>) -> Result<TestResponse, String> {
    let (mut client, server) = tokio::io::duplex(64 << 10);
    let config = Arc::new(proto_scgi::ScgiConfig::default());
    tokio::spawn(proto_scgi::serve_connection(server, app, config));
    let (parts, body) = req.into_parts();
    let wire = proto_scgi::client::request(&params(&parts, &body), &body);
    client.write_all(&wire).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    client
        .read_to_end(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    from_cgi(out.into())
}

async fn cgi_process(
    bin: &PathBuf,
    config: &PathBuf,
    req: http::Request<Bytes>,
) -> Result<TestResponse, String> {
    use std::os::unix::ffi::OsStrExt as _;
    let (parts, body) = req.into_parts();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("GATEWAYD_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in params(&parts, &body) {
        cmd.env(
            std::ffi::OsStr::from_bytes(&name),
            std::ffi::OsStr::from_bytes(&value),
        );
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    from_cgi(out.stdout.into())
}

/// A CGI response (FastCGI's STDOUT, SCGI's reply, a CGI program's output) as a response.
fn from_cgi(out: Bytes) -> Result<TestResponse, String> {
    let head = proto_cgi::parse_head(&out)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no CGI head in {:?}", String::from_utf8_lossy(&out)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &head.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    Ok(TestResponse {
        status: head.status.unwrap_or(200),
        headers,
        body: out.slice(head.len..),
    })
}

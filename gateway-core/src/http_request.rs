//! HTTP requests and environs, both ways: an HTTP request head as the CGI meta-variables a
//! CGI server would set (RFC 3875 §4.1), and an environ as an `http::Request` for apps written
//! against `http` (tower, axum).

use std::net::SocketAddr;

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Version, header};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

use crate::{Body, Environ, Protocol};

/// The two ends of the connection a request came on; `None` on a unix socket.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnInfo {
    /// The address the client connected to.
    pub local: Option<SocketAddr>,
    /// The client's address.
    pub remote: Option<SocketAddr>,
}

/// `SERVER_SOFTWARE` for every gateway.
pub const SERVER_SOFTWARE: &str = concat!("gatewayd/", env!("CARGO_PKG_VERSION"));

/// Builds the environ of one request.
///
/// `PATH_INFO` is the path percent-decoded once (it may not be UTF-8); `REQUEST_URI` and
/// `QUERY_STRING` stay raw; `SCRIPT_NAME` is `""` until the router sets it. Headers become
/// `HTTP_*` with repeats joined (`, `, or `; ` for Cookie). A header whose name holds `_` is
/// dropped: `X_Foo` would otherwise pass for `X-Foo`, or overwrite a CGI variable.
///
/// A front-end that serves many requests per connection builds a [`ConnEnviron`] once instead.
///
/// ```
/// use gateway_core::{ConnInfo, environ};
///
/// let req = http::Request::get("/a%20b?x=%20")
///     .header("Host", "example.com:8080")
///     .header("X_Forwarded_For", "spoofed")
///     .body(())
///     .unwrap();
/// let env = environ(&req.into_parts().0, &ConnInfo::default());
/// assert_eq!(env.path_info(), b"/a b");
/// assert_eq!(env.query_string(), b"x=%20");
/// assert_eq!(env.server_port(), Some(8080));
/// assert_eq!(env.get("HTTP_X_FORWARDED_FOR"), None);
/// ```
pub fn environ(parts: &Parts, conn: &ConnInfo) -> Environ {
    ConnEnviron::new(conn).environ(parts)
}

/// The variables every request of one connection shares, formatted once per connection:
/// `REMOTE_ADDR`, `REMOTE_PORT`, and the `SERVER_NAME` and `SERVER_PORT` of a request without
/// a `Host`. [`ConnEnviron::environ`] builds each request's environ, as [`environ`] does, and
/// copies its values into a buffer it keeps: once the previous request's environ is dropped,
/// the next one reuses its room without an allocation.
///
/// ```
/// use gateway_core::{ConnEnviron, ConnInfo};
///
/// let conn = ConnInfo {
///     local: Some("127.0.0.1:8080".parse().unwrap()),
///     remote: Some("192.0.2.7:51000".parse().unwrap()),
/// };
/// let mut vars = ConnEnviron::new(&conn);
/// let head = http::Request::get("/").body(()).unwrap().into_parts().0;
/// let env = vars.environ(&head);
/// assert_eq!(env.remote_addr(), b"192.0.2.7");
/// assert_eq!(env.server_port(), Some(8080));
/// ```
#[derive(Clone, Debug)]
pub struct ConnEnviron {
    remote_addr: Bytes,
    remote_port: Option<Bytes>,
    server_name: Bytes,
    server_port: Bytes,
    arena: BytesMut,
}

/// The largest value buffer kept between requests: one grown by a rare huge head is let go.
const ARENA_KEPT: usize = 4096;

impl ConnEnviron {
    /// Formats the connection's variables (into one buffer: [`environ`] makes one per request).
    pub fn new(conn: &ConnInfo) -> Self {
        let mut text = Arena(&mut BytesMut::with_capacity(64));
        ConnEnviron {
            remote_addr: conn.remote.map_or_else(Bytes::new, |remote| {
                text.put_with(|b| write!(b, "{}", remote.ip()))
            }),
            remote_port: conn
                .remote
                .map(|remote| text.put(itoa::Buffer::new().format(remote.port()))),
            server_name: match conn.local {
                Some(local) => text.put_with(|b| write_ip_literal(b, local)),
                None => Bytes::from_static(b"localhost"),
            },
            server_port: match conn.local {
                Some(local) => text.put(itoa::Buffer::new().format(local.port())),
                None => Bytes::from_static(b"80"),
            },
            arena: BytesMut::new(),
        }
    }

    /// The environ of one request on this connection; see [`environ`].
    pub fn environ(&mut self, parts: &Parts) -> Environ {
        // The twelve variables set below and one per header: no regrowth, and for a few
        // headers the block stays in glibc's per-thread cache (up to 1 KiB).
        let mut env = Environ::with_capacity(Protocol::Http, 12 + parts.headers.len());
        let uri = &parts.uri;
        let path = uri.path();
        let path_and_query = uri.path_and_query().map_or(path, |pq| pq.as_str());
        let decode = path.contains('%');
        // One look at the fields: their size, and the Host (found by name, not hashed).
        let (mut headers_len, mut host) = (0, None);
        for (name, value) in &parts.headers {
            headers_len += 5 + name.as_str().len() + value.len();
            if host.is_none() && name == header::HOST {
                host = Some(value);
            }
        }
        if self.arena.capacity() > ARENA_KEPT {
            self.arena = BytesMut::new();
        }
        self.arena
            .reserve(path_and_query.len() + if decode { path.len() } else { 0 } + headers_len + 8);
        let mut arena = Arena(&mut self.arena);
        // REQUEST_URI once; the path and the query are slices of it.
        let request_uri = arena.put(path_and_query);
        let path_info = match path_and_query.strip_prefix(path) {
            Some(_) if !decode => request_uri.slice(..path.len()),
            _ => arena.put_with(|b| b.extend(percent_decode(path.as_bytes()))),
        };
        let query = match uri.query() {
            Some(q) => request_uri.slice(request_uri.len() - q.len()..),
            None => Bytes::new(),
        };

        set(&mut env, "GATEWAY_INTERFACE", "CGI/1.1");
        set(&mut env, "SERVER_SOFTWARE", SERVER_SOFTWARE);
        set(
            &mut env,
            "REQUEST_METHOD",
            method(&parts.method, &mut arena),
        );
        set(&mut env, "SCRIPT_NAME", "");
        set(&mut env, "PATH_INFO", path_info);
        set(&mut env, "QUERY_STRING", query);
        set(&mut env, "REQUEST_URI", request_uri);
        set(&mut env, "SERVER_PROTOCOL", server_protocol(parts.version));

        // The Host field is copied once: HTTP_HOST, and SERVER_NAME and SERVER_PORT within it.
        let mut host_field = host.map(|h| arena.put(h.as_bytes()));
        let authority = match &host_field {
            Some(field) => Some(field.clone()),
            None => uri.authority().map(|a| arena.put(a.as_str())),
        };
        let (name, port) = match &authority {
            Some(host) => split_host(host),
            None => (None, None),
        };
        let server_name = match (name, &authority) {
            (Some(name), Some(host)) => host.slice_ref(name),
            _ => self.server_name.clone(),
        };
        let server_port = match (port, &authority) {
            // Written as a port is written (no leading zero): a slice of the field.
            (Some((digits, _)), Some(host)) if digits.len() == 1 || digits[0] != b'0' => {
                host.slice_ref(digits)
            }
            (Some((_, port)), _) => arena.put(itoa::Buffer::new().format(port)),
            (None, _) => self.server_port.clone(),
        };
        set(&mut env, "SERVER_NAME", server_name);
        set(&mut env, "SERVER_PORT", server_port);
        set(&mut env, "REMOTE_ADDR", self.remote_addr.clone());
        if let Some(port) = &self.remote_port {
            set(&mut env, "REMOTE_PORT", port.clone());
        }

        let mut previous = None;
        for (name, value) in &parts.headers {
            if name.as_str().contains('_') {
                continue;
            }
            // A repeated field's values come one after another: only then is there a variable
            // to join, so a new one is pushed without a search.
            let repeated = previous == Some(name);
            previous = Some(name);
            let value = if name == header::HOST
                && let Some(field) = host_field.take()
            {
                field
            } else {
                arena.put(value.as_bytes())
            };
            if name == header::CONTENT_TYPE {
                env.insert("CONTENT_TYPE", value);
            } else if name == header::CONTENT_LENGTH {
                env.insert("CONTENT_LENGTH", value);
            } else {
                let var = match header_var(name) {
                    Some(var) => Bytes::from_static(var.as_bytes()),
                    None => arena.put_with(|b| write_header_var(b, name.as_str())),
                };
                match repeated {
                    true => env.append_header(var, value),
                    false => env.push_new(var, value),
                }
            }
        }
        env
    }
}

/// Sets one of the variables the builder sets once: no search for an earlier value.
#[inline]
fn set(env: &mut Environ, name: &'static str, value: impl Into<Bytes>) {
    env.push_new(Bytes::from_static(name.as_bytes()), value.into());
}

/// `REQUEST_METHOD`: the common methods are static text, not copied.
fn method(method: &http::Method, arena: &mut Arena<'_>) -> Bytes {
    let known: &'static str = match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        other => return arena.put(other),
    };
    Bytes::from_static(known.as_bytes())
}

/// The variable of a common header, as static text rather than built per request.
fn header_var(name: &header::HeaderName) -> Option<&'static str> {
    Some(match name.as_str() {
        "host" => "HTTP_HOST",
        "user-agent" => "HTTP_USER_AGENT",
        "accept" => "HTTP_ACCEPT",
        "accept-encoding" => "HTTP_ACCEPT_ENCODING",
        "accept-language" => "HTTP_ACCEPT_LANGUAGE",
        "connection" => "HTTP_CONNECTION",
        "cookie" => "HTTP_COOKIE",
        "referer" => "HTTP_REFERER",
        "origin" => "HTTP_ORIGIN",
        "authorization" => "HTTP_AUTHORIZATION",
        "cache-control" => "HTTP_CACHE_CONTROL",
        "pragma" => "HTTP_PRAGMA",
        "if-none-match" => "HTTP_IF_NONE_MATCH",
        "if-modified-since" => "HTTP_IF_MODIFIED_SINCE",
        "x-forwarded-for" => "HTTP_X_FORWARDED_FOR",
        "x-forwarded-proto" => "HTTP_X_FORWARDED_PROTO",
        "x-real-ip" => "HTTP_X_REAL_IP",
        "upgrade-insecure-requests" => "HTTP_UPGRADE_INSECURE_REQUESTS",
        _ => return None,
    })
}

/// One buffer for all the values of an environ, handed out as slices of it: at most one
/// allocation per request rather than one per variable.
struct Arena<'a>(&'a mut BytesMut);

impl Arena<'_> {
    fn put(&mut self, value: impl AsRef<[u8]>) -> Bytes {
        self.0.extend_from_slice(value.as_ref());
        self.0.split().freeze()
    }

    fn put_with<R>(&mut self, write: impl FnOnce(&mut BytesMut) -> R) -> Bytes {
        write(self.0);
        self.0.split().freeze()
    }
}

/// What cannot become an `http::Request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the environ is not an HTTP request: {0}")]
pub struct NotHttp(pub String);

/// The environ as an `http::Request`, for apps written against `http` (tower, axum).
///
/// The URI's path is `PATH_INFO` (percent-encoded again), so an app mounted at `/api` routes on
/// what is below `/api`, as axum's `nest` does; the query is `QUERY_STRING`. The headers come
/// from `HTTP_*`, `CONTENT_TYPE` and `CONTENT_LENGTH` (a missing `Host` is made from
/// `SERVER_NAME` and `SERVER_PORT`). The environ itself travels along as an extension, so
/// `SCRIPT_NAME`, `REMOTE_ADDR` or anything a front server sent stays at hand.
///
/// ```
/// use gateway_core::{Body, Environ, Protocol, request_from_environ};
///
/// let mut env = Environ::new(Protocol::FastCgi);
/// for (n, v) in [("REQUEST_METHOD", "POST"), ("SCRIPT_NAME", "/api"), ("PATH_INFO", "/a b"),
///                ("QUERY_STRING", "x=1"), ("HTTP_HOST", "example.org"), ("CONTENT_TYPE", "text/plain")] {
///     env.insert(n, v);
/// }
/// let req = request_from_environ(env, Body::empty()).unwrap();
/// assert_eq!(req.uri(), "/a%20b?x=1");
/// assert_eq!(req.headers()["content-type"], "text/plain");
/// assert_eq!(req.extensions().get::<Environ>().unwrap().script_name(), b"/api");
/// ```
pub fn request_from_environ(env: Environ, body: Body) -> Result<http::Request<Body>, NotHttp> {
    let method = http::Method::from_bytes(env.method().as_bytes())
        .map_err(|_| NotHttp(format!("REQUEST_METHOD {:?}", env.method())))?;
    let path = env.path_info();
    let path = std::str::from_utf8(path)
        .map(|p| utf8_percent_encode(p, PATH).to_string())
        .unwrap_or_else(|_| percent_encoding::percent_encode(path, PATH).to_string());
    let mut uri = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    if !env.query_string().is_empty() {
        uri.push('?');
        uri.push_str(&String::from_utf8_lossy(env.query_string()));
    }
    let uri: http::Uri = uri.parse().map_err(|e| NotHttp(format!("URI: {e}")))?;
    let version = match env.server_protocol() {
        b"HTTP/1.0" => Version::HTTP_10,
        b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    let mut req = http::Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    let headers = req.headers_mut();
    for (name, value) in env.headers() {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    if !headers.contains_key(header::HOST) {
        let host = match env.server_port() {
            Some(80) | None => String::from_utf8_lossy(env.server_name()).into_owned(),
            Some(port) => format!("{}:{port}", String::from_utf8_lossy(env.server_name())),
        };
        if let Ok(host) = header::HeaderValue::from_str(&host) {
            headers.insert(header::HOST, host);
        }
    }
    req.extensions_mut().insert(env);
    Ok(req)
}

/// What a URI path may not hold as it is (RFC 3986 §3.3): it is percent-encoded.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `user-agent` becomes `HTTP_USER_AGENT`.
fn write_header_var(buf: &mut BytesMut, name: &str) {
    buf.extend_from_slice(b"HTTP_");
    buf.extend(name.bytes().map(|b| match b {
        b'-' => b'_',
        b => b.to_ascii_uppercase(),
    }));
}

fn server_protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// A port as written in a Host field, and its value.
type Port<'a> = (&'a [u8], u16);

/// `example.com:8080` gives (`example.com`, (`8080`, 8080)); `[::1]` gives (`[::1]`, none).
/// The name keeps an IPv6 literal's brackets, as RFC 3875 §4.1.14 writes SERVER_NAME.
fn split_host(host: &[u8]) -> (Option<&[u8]>, Option<Port<'_>>) {
    let name_end = if host.starts_with(b"[") {
        match host.iter().position(|&b| b == b']') {
            Some(i) => i + 1,
            None => return (None, None),
        }
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let (name, rest) = host.split_at(name_end);
    let port = rest.strip_prefix(b":").and_then(|digits| {
        let port = crate::environ::parse_decimal(digits).and_then(|p| u16::try_from(p).ok())?;
        Some((digits, port))
    });
    ((!name.is_empty()).then_some(name), port)
}

fn write_ip_literal(buf: &mut BytesMut, addr: SocketAddr) -> std::fmt::Result {
    match addr {
        SocketAddr::V4(a) => write!(buf, "{}", a.ip()),
        SocketAddr::V6(a) => write!(buf, "[{}]", a.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(req: http::request::Builder) -> Environ {
        let conn = ConnInfo {
            local: Some("127.0.0.1:8080".parse().unwrap()),
            remote: Some("10.0.0.7:51000".parse().unwrap()),
        };
        environ(&req.body(()).unwrap().into_parts().0, &conn)
    }

    fn s(env: &Environ, name: &str) -> String {
        String::from_utf8_lossy(env.get(name).unwrap_or(b"<unset>")).into_owned()
    }

    #[test]
    fn cgi_variables() {
        let env = env_of(
            http::Request::post("/app/caf%C3%A9/%2541?q=a%20b&r")
                .header("Host", "example.org")
                .header("Content-Type", "text/plain")
                .header("Content-Length", "5"),
        );
        assert_eq!(s(&env, "REQUEST_METHOD"), "POST");
        assert_eq!(s(&env, "SCRIPT_NAME"), "");
        assert_eq!(s(&env, "PATH_INFO"), "/app/café/%41");
        assert_eq!(s(&env, "QUERY_STRING"), "q=a%20b&r");
        assert_eq!(s(&env, "REQUEST_URI"), "/app/caf%C3%A9/%2541?q=a%20b&r");
        assert_eq!(s(&env, "SERVER_NAME"), "example.org");
        assert_eq!(s(&env, "SERVER_PORT"), "8080");
        assert_eq!(s(&env, "SERVER_PROTOCOL"), "HTTP/1.1");
        assert_eq!(s(&env, "REMOTE_ADDR"), "10.0.0.7");
        assert_eq!(s(&env, "REMOTE_PORT"), "51000");
        assert_eq!(s(&env, "CONTENT_TYPE"), "text/plain");
        assert_eq!(s(&env, "CONTENT_LENGTH"), "5");
        assert_eq!(s(&env, "HTTP_HOST"), "example.org");
        assert_eq!(s(&env, "GATEWAY_INTERFACE"), "CGI/1.1");
        assert_eq!(env.get("HTTP_CONTENT_TYPE"), None);
        assert_eq!(env.get("HTTP_CONTENT_LENGTH"), None);
        crate::check_environ(&env).unwrap();
    }

    #[test]
    fn environs_of_one_connection_keep_their_values() {
        let mut vars = ConnEnviron::new(&ConnInfo::default());
        let head = |path: &str, host: &str| {
            http::Request::get(path)
                .header("Host", host)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        // The first is still held while the next ones are built in the same buffer, and one
        // big head in between grows it past what is kept.
        let first = vars.environ(&head("/a?x=1", "one.example:8001"));
        let big = vars.environ(&head(&format!("/{}", "b".repeat(5000)), "big.example"));
        drop(big);
        let third = vars.environ(&head("/c", "three.example"));
        assert_eq!(s(&first, "REQUEST_URI"), "/a?x=1");
        assert_eq!(s(&first, "SERVER_NAME"), "one.example");
        assert_eq!(s(&first, "SERVER_PORT"), "8001");
        assert_eq!(s(&third, "PATH_INFO"), "/c");
        assert_eq!(s(&third, "HTTP_HOST"), "three.example");
    }

    #[test]
    fn non_utf8_path_is_kept_as_bytes() {
        let env = env_of(http::Request::get("/%FF%00x"));
        assert_eq!(env.path_info(), b"/\xff\x00x");
        assert_eq!(s(&env, "QUERY_STRING"), "");
    }

    #[test]
    fn repeated_headers_join_and_underscores_drop() {
        let env = env_of(
            http::Request::get("/")
                .header("Accept", "a")
                .header("Accept", "b")
                .header("Cookie", "x=1")
                .header("Cookie", "y=2")
                .header("X-Real-IP", "1.1.1.1")
                .header("X_Real_IP", "6.6.6.6")
                .header("Content_Length", "99"),
        );
        assert_eq!(s(&env, "HTTP_ACCEPT"), "a, b");
        assert_eq!(s(&env, "HTTP_COOKIE"), "x=1; y=2");
        assert_eq!(s(&env, "HTTP_X_REAL_IP"), "1.1.1.1");
        assert_eq!(env.get("CONTENT_LENGTH"), None);
    }

    #[test]
    fn back_to_http_and_round_trip() {
        let env = env_of(
            http::Request::put("/caf%C3%A9/x%20y?q=%20")
                .header("Host", "example.org:8080")
                .header("Accept", "a")
                .header("Accept", "b")
                .header("Content-Length", "3"),
        );
        let req = request_from_environ(env, Body::empty()).unwrap();
        assert_eq!(req.method(), "PUT");
        assert_eq!(req.uri(), "/caf%C3%A9/x%20y?q=%20");
        assert_eq!(req.headers()["host"], "example.org:8080");
        assert_eq!(req.headers()["accept"], "a, b");
        assert_eq!(req.headers()["content-length"], "3");
        let mut env = Environ::new(Protocol::Cgi);
        env.insert("REQUEST_METHOD", "GE T");
        assert!(request_from_environ(env, Body::empty()).is_err());
    }

    #[test]
    fn server_name_and_port() {
        let env = env_of(http::Request::get("/").header("Host", "[::1]:9000"));
        assert_eq!(
            (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT")),
            ("[::1]".into(), "9000".into())
        );
        let env = env_of(http::Request::get("/").version(Version::HTTP_10));
        assert_eq!(s(&env, "SERVER_NAME"), "127.0.0.1");
        assert_eq!(s(&env, "SERVER_PROTOCOL"), "HTTP/1.0");
        let env = env_of(http::Request::get("http://absolute.example:81/x"));
        assert_eq!(
            (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT")),
            ("absolute.example".into(), "81".into())
        );
        assert_eq!(s(&env, "REQUEST_URI"), "/x");
        let env = environ(
            &http::Request::get("/").body(()).unwrap().into_parts().0,
            &ConnInfo::default(),
        );
        assert_eq!(
            (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT")),
            ("localhost".into(), "80".into())
        );
        assert_eq!(s(&env, "REMOTE_ADDR"), "");
    }
}

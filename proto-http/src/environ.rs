//! HTTP requests and environs, both ways: an HTTP request head as the CGI meta-variables a
//! CGI server would set (RFC 3875 §4.1), and an environ as an `http::Request` for apps written
//! against `http` (tower, axum).

use std::net::SocketAddr;

use std::fmt::Write as _;

use bytes::BytesMut;
use http::request::Parts;
use http::{Version, header};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use gateway_core::{Body, Environ, Protocol, Text, join_values};

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
/// `PATH_INFO` is the path percent-decoded once (it may not be UTF-8) with its dot segments
/// resolved, the path a front server decides on (see [`routing_path`](gateway_core::routing_path)); `REQUEST_URI` and
/// `QUERY_STRING` stay raw; `SCRIPT_NAME` is `""` until the router sets it. Headers become
/// `HTTP_*` with repeats joined (`, `, or `; ` for Cookie). A header whose name holds `_` is
/// dropped: `X_Foo` would otherwise pass for `X-Foo`, or overwrite a CGI variable.
///
/// A front-end that serves many requests per connection builds a [`ConnEnviron`] once instead.
///
/// ```
/// use proto_http::{ConnInfo, environ};
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
/// use proto_http::{ConnEnviron, ConnInfo};
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
    /// `REMOTE_ADDR`, `REMOTE_PORT`, and the `SERVER_NAME` and `SERVER_PORT` of a request
    /// without a `Host`, one after the other. Each request copies these few bytes into its own
    /// text: cheaper than sharing them, which would count references per variable.
    conn_text: Box<[u8]>,
    /// Where each of the four ends in `conn_text`.
    ends: [u32; 4],
    /// Whether there is a `REMOTE_PORT` (not on a unix socket).
    remote_port: bool,
    arena: BytesMut,
    /// The last authority split on this connection: a client sends the same `Host` on every
    /// request, and comparing it costs a tenth of splitting it again.
    last_host: Option<SplitHost>,
}

/// An authority that [`split_host`] accepted, and where its name ends and its port's digits
/// lie, with the port's value.
#[derive(Clone, Debug)]
struct SplitHost {
    host: Box<[u8]>,
    name_end: usize,
    port: Option<(usize, u16)>,
}

/// The longest authority [`SplitHost`] keeps.
const SPLIT_KEPT: usize = 256;

/// [`split_host`], but an authority equal to the one in `last` is not split again.
fn split_host_once<'h>(
    last: &mut Option<SplitHost>,
    host: &'h [u8],
) -> Result<(&'h [u8], Option<Port<'h>>), &'static str> {
    if let Some(last) = last.as_ref().filter(|last| *last.host == *host) {
        let port = (last.port).map(|(start, port)| (&host[start..], port));
        return Ok((&host[..last.name_end], port));
    }
    let (name, port) = split_host(host)?;
    if host.len() <= SPLIT_KEPT {
        *last = Some(SplitHost {
            host: host.into(),
            name_end: name.len(),
            port: port.map(|(digits, port)| (host.len() - digits.len(), port)),
        });
    }
    Ok((name, port))
}

/// The largest value buffer kept between requests: one grown by a rare huge head is let go.
const ARENA_KEPT: usize = 4096;

impl ConnEnviron {
    /// Formats the connection's variables.
    pub fn new(conn: &ConnInfo) -> Self {
        let mut text = BytesMut::with_capacity(64);
        let mut ends = [0; 4];
        if let Some(remote) = conn.remote {
            let _ = write!(text, "{}", remote.ip());
            ends[0] = text.len() as u32;
            text.extend_from_slice(itoa::Buffer::new().format(remote.port()).as_bytes());
        }
        ends[1] = text.len() as u32;
        match conn.local {
            Some(local) => {
                let _ = write_ip_literal(&mut text, local);
                ends[2] = text.len() as u32;
                text.extend_from_slice(itoa::Buffer::new().format(local.port()).as_bytes());
            }
            None => {
                text.extend_from_slice(b"localhost");
                ends[2] = text.len() as u32;
                text.extend_from_slice(b"80");
            }
        }
        ends[3] = text.len() as u32;
        ConnEnviron {
            conn_text: text[..].into(),
            ends,
            remote_port: conn.remote.is_some(),
            arena: BytesMut::new(),
            last_host: None,
        }
    }

    /// The environ of one request on this connection; see [`environ`].
    ///
    /// Every value is copied into one buffer, the environ's text, which the connection reuses
    /// once the environ is dropped.
    pub fn environ(&mut self, parts: &Parts) -> Environ {
        // The twelve variables set below and one per header: no regrowth, and for a few
        // headers the block stays in glibc's per-thread cache (up to 1 KiB).
        let mut vars: Vec<(Text, Text)> = Vec::with_capacity(12 + parts.headers.len());
        let uri = &parts.uri;
        let path = uri.path();
        let path_and_query = uri.path_and_query().map_or(path, |pq| pq.as_str());
        // Decoded and resolved (see `routing_path`) only when there is something to change.
        // `/.` is in every path with a dot segment; `routing_path` finds which.
        let decode = path.contains('%') || path.contains("/.");
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
        self.arena.reserve(
            self.conn_text.len()
                + path_and_query.len()
                + if decode { path.len() } else { 0 }
                + headers_len
                + 8,
        );
        debug_assert!(self.arena.is_empty());
        let text = &mut self.arena;

        // The connection's variables first: their ranges are the connection's own.
        text.extend_from_slice(&self.conn_text);
        let [addr_end, port_end, name_end, server_port_end] = self.ends;
        // REQUEST_URI once; the path and the query are ranges of it.
        let (uri_start, uri_end) = put(text, path_and_query.as_bytes());
        let path_info = match path_and_query.strip_prefix(path) {
            Some(_) if !decode => Text::In(uri_start, uri_start + path.len() as u32),
            _ => put_text(text, gateway_core::routing_path(path.as_bytes())),
        };
        let query = match uri.query() {
            Some(q) => Text::In(uri_end - q.len() as u32, uri_end),
            None => "".into(),
        };

        // The Host field is copied once: HTTP_HOST, and SERVER_NAME and SERVER_PORT within it,
        // unless an absolute-form target names the authority: that wins (RFC 9112 §3.2.2).
        let host_at = host.map(|h| put(text, h.as_bytes()).0);
        let mut host_field = host
            .zip(host_at)
            .map(|(h, at)| Text::In(at, at + h.len() as u32));
        let authority = match (uri.authority(), host.zip(host_at)) {
            (Some(a), _) => Some((a.as_str().as_bytes(), put(text, a.as_str().as_bytes()).0)),
            (None, Some((h, at))) => Some((h.as_bytes(), at)),
            (None, None) => None,
        };
        let (mut server_name, mut server_port) = (
            Text::In(port_end, name_end),
            Text::In(name_end, server_port_end),
        );
        // Only a valid authority names the server; otherwise it is the listener's address.
        if let Some((authority, start)) = authority
            && let Ok((name, port)) = split_host_once(&mut self.last_host, authority)
        {
            let within = |part: &[u8]| {
                let at = start + (part.as_ptr() as usize - authority.as_ptr() as usize) as u32;
                Text::In(at, at + part.len() as u32)
            };
            if !name.is_empty() {
                server_name = within(name);
            }
            match port {
                // Written as a port is written (no leading zero): a range of the field.
                Some((digits, _)) if digits.len() == 1 || digits[0] != b'0' => {
                    server_port = within(digits);
                }
                Some((_, port)) => server_port = put_text(text, itoa::Buffer::new().format(port)),
                None => {}
            }
        }
        let method = method(&parts.method, text);
        // Built whole, then moved in: pushed one by one, each pair would be written to the
        // stack and read back at once, a store-forwarding stall per variable.
        vars.extend([
            ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
            ("SERVER_SOFTWARE".into(), SERVER_SOFTWARE.into()),
            ("REQUEST_METHOD".into(), method),
            ("SCRIPT_NAME".into(), "".into()),
            ("PATH_INFO".into(), path_info),
            ("QUERY_STRING".into(), query),
            ("REQUEST_URI".into(), Text::In(uri_start, uri_end)),
            (
                "SERVER_PROTOCOL".into(),
                server_protocol(parts.version).into(),
            ),
            ("SERVER_NAME".into(), server_name),
            ("SERVER_PORT".into(), server_port),
            ("REMOTE_ADDR".into(), Text::In(0, addr_end)),
        ]);
        if self.remote_port {
            vars.push(("REMOTE_PORT".into(), Text::In(addr_end, port_end)));
        }

        let mut previous = None;
        for (name, value) in &parts.headers {
            if name.as_str().contains('_') {
                continue;
            }
            let content = if name == header::CONTENT_TYPE {
                Some("CONTENT_TYPE")
            } else if name == header::CONTENT_LENGTH {
                Some("CONTENT_LENGTH")
            } else {
                None
            };
            if let Some(var) = content {
                // An empty one counts as absent; a repeat replaces (the guard refused any that
                // differ).
                if !value.is_empty() {
                    let value = put_text(text, value.as_bytes());
                    match vars
                        .iter_mut()
                        .find(|(n, _)| matches!(n, Text::Own(n) if n == var.as_bytes()))
                    {
                        Some((_, v)) => *v = value,
                        None => vars.push((var.into(), value)),
                    }
                }
                continue;
            }
            // A repeated field's values come one after another: only then is there a variable
            // to join, and it is the last one set.
            let repeated = previous == Some(name);
            previous = Some(name);
            if repeated
                && let Some((_, last)) = vars.last_mut()
                && let Text::In(start, end) = *last
            {
                let old = &text[start as usize..end as usize];
                let joined = join_values(old, value.as_bytes(), name == header::COOKIE);
                *last = put_text(text, &joined);
                continue;
            }
            let value = match host_field.take() {
                Some(field) if name == header::HOST => field,
                field => {
                    host_field = field;
                    put_text(text, value.as_bytes())
                }
            };
            let var = match header_var(name) {
                Some(var) => var.into(),
                None => put_with(text, |b| write_header_var(b, name.as_str())),
            };
            vars.push((var, value));
        }
        Environ::from_text(Protocol::Http, text.split().freeze(), vars)
    }
}

/// Appends `value` to a request's text and gives its range.
fn put(text: &mut BytesMut, value: &[u8]) -> (u32, u32) {
    let start = text.len() as u32;
    text.extend_from_slice(value);
    (start, text.len() as u32)
}

fn put_text(text: &mut BytesMut, value: impl AsRef<[u8]>) -> Text {
    let (start, end) = put(text, value.as_ref());
    Text::In(start, end)
}

fn put_with(text: &mut BytesMut, write: impl FnOnce(&mut BytesMut)) -> Text {
    let start = text.len() as u32;
    write(text);
    Text::In(start, text.len() as u32)
}

/// `REQUEST_METHOD`: the common methods are static text, not copied.
fn method(method: &http::Method, text: &mut BytesMut) -> Text {
    let known: &'static str = match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        other => return put_text(text, other),
    };
    known.into()
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
/// use gateway_core::{Body, Environ, Protocol};
/// use proto_http::request_from_environ;
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

/// Whether a request's Host may be served, and if not why (RFC 9112 §3.2): an HTTP/1.1 request
/// must have exactly one Host field, and any Host field, like an absolute-form target's
/// authority, must be a valid `uri-host [ ":" port ]` (RFC 9110 §7.2), with no user info and
/// no path. A front proxy may route on a Host that gatewayd would read another way;
/// SERVER_NAME and SERVER_PORT are made only of an authority that passed.
///
/// ```
/// use proto_http::check_host;
///
/// let head = |host: &str| http::Request::get("/").header("Host", host).body(()).unwrap().into_parts().0;
/// assert_eq!(check_host(&head("example.org:8080")), Ok(()));
/// assert!(check_host(&head("user@example.org")).is_err());
/// assert!(check_host(&http::Request::get("/").body(()).unwrap().into_parts().0).is_err());
/// ```
pub fn check_host(parts: &Parts) -> Result<(), &'static str> {
    check_host_with(parts, |host| split_host(host).map(drop))
}

impl ConnEnviron {
    /// [`check_host`], with the connection's last `Host` remembered: a client sends the same
    /// one on every request, and it is not checked again (nor split again for the environ).
    pub fn check_host(&mut self, parts: &Parts) -> Result<(), &'static str> {
        check_host_with(parts, |host| {
            split_host_once(&mut self.last_host, host).map(drop)
        })
    }
}

fn check_host_with(
    parts: &Parts,
    mut valid: impl FnMut(&[u8]) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    // Found by name, not hashed: a request has few fields.
    let mut hosts = (parts.headers.iter())
        .filter(|(name, _)| *name == header::HOST)
        .map(|(_, value)| value);
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err("more than one Host field"),
        (Some(host), None) => valid(host.as_bytes())?,
        (None, None) if parts.version >= Version::HTTP_11 => return Err("no Host field"),
        (None, None) => {}
    }
    match parts.uri.authority() {
        Some(target) => valid(target.as_str().as_bytes()),
        None => Ok(()),
    }
}

/// A port as written in a Host field, and its value.
type Port<'a> = (&'a [u8], u16);

/// `example.com:8080` gives (`example.com`, (`8080`, 8080)); `[::1]` gives (`[::1]`, none);
/// `example.com:` has no port (RFC 3986 §3.2.3: the default); `""` is a valid empty name.
/// The name keeps an IPv6 literal's brackets, as RFC 3875 §4.1.14 writes SERVER_NAME.
fn split_host(host: &[u8]) -> Result<(&[u8], Option<Port<'_>>), &'static str> {
    usual_host(host).map_or_else(|| split_host_with_reason(host), Ok)
}

/// The usual Host, a name of plain bytes and a port of at most five digits, split in one pass
/// (a third of what the general way costs; a connection splits each new Host); `None` for
/// anything else, which [`split_host_with_reason`] takes.
fn usual_host(host: &[u8]) -> Option<(&[u8], Option<Port<'_>>)> {
    let name_end = (host.iter())
        .position(|&b| !unreserved_or_sub_delim(b))
        .unwrap_or(host.len());
    let (name, rest) = host.split_at(name_end);
    let digits = match rest {
        [] | [b':'] => return Some((name, None)),
        [b':', digits @ ..] if digits.len() <= 5 => digits,
        _ => return None,
    };
    let mut port = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        port = port * 10 + u32::from(d - b'0');
    }
    Some((name, Some((digits, u16::try_from(port).ok()?))))
}

/// [`split_host`] for any Host, with the reason it is refused.
fn split_host_with_reason(host: &[u8]) -> Result<(&[u8], Option<Port<'_>>), &'static str> {
    if host.contains(&b'@') {
        return Err("user info in the Host");
    }
    let name_end = match host.first() {
        Some(b'[') => match host.iter().position(|&b| b == b']') {
            Some(i) if ip_literal(&host[1..i]) => i + 1,
            _ => return Err("an invalid IP literal in the Host"),
        },
        _ => {
            let end = host.iter().position(|&b| b == b':').unwrap_or(host.len());
            reg_name(&host[..end])?;
            end
        }
    };
    let (name, rest) = host.split_at(name_end);
    let port = match rest {
        [] | [b':'] => None,
        [b':', digits @ ..] => {
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err("a Host port that is not a number");
            }
            let port = gateway_core::parse_decimal(digits)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("a Host port over 65535")?;
            Some((digits, port))
        }
        _ => return Err("something after the IP literal in the Host"),
    };
    Ok((name, port))
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2), with the reason
/// for what it is not.
fn reg_name(name: &[u8]) -> Result<(), &'static str> {
    // The usual name holds nothing else: one pass, no reason needed.
    if name.iter().all(|&b| HOST_BYTES[usize::from(b)]) {
        return Ok(());
    }
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        match b {
            b'%' if name
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                i += 2;
            }
            b'@' => return Err("user info in the Host"),
            b'/' | b'?' | b'#' | b'\\' => return Err("a path in the Host"),
            b if unreserved_or_sub_delim(b) => {}
            _ => return Err("a character no host name holds in the Host"),
        }
        i += 1;
    }
    Ok(())
}

/// `IP-literal` between its brackets: an IPv6 address (no zone) or `IPvFuture`.
fn ip_literal(inner: &[u8]) -> bool {
    match inner {
        [b'v' | b'V', rest @ ..] => {
            let dot = rest.iter().position(|&b| b == b'.');
            dot.is_some_and(|d| {
                let (version, tail) = (&rest[..d], &rest[d + 1..]);
                !version.is_empty()
                    && version.iter().all(u8::is_ascii_hexdigit)
                    && !tail.is_empty()
                    && tail
                        .iter()
                        .all(|&b| b == b':' || unreserved_or_sub_delim(b))
            })
        }
        _ => std::str::from_utf8(inner).is_ok_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
    }
}

fn unreserved_or_sub_delim(b: u8) -> bool {
    HOST_BYTES[usize::from(b)]
}

/// `unreserved / sub-delims` (RFC 3986 §2.2, §2.3), looked up rather than compared per byte.
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~')
            || matches!(
                c,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
        b += 1;
    }
    table
};

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
        gateway_core::check_environ(&env).unwrap();
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

    #[test]
    fn host_grammar() {
        let good = [
            "example.org",
            "example.org:8080",
            "example.org:",
            "example.org:0080",
            "",
            ":8080",
            "[::1]",
            "[::1]:9000",
            "[v1.fe:80]",
            "127.0.0.1:80",
            "a%41b.example",
            "ex_am~ple.org",
            "a:00000",
            "a:65535",
            "a:000080",
        ];
        for ok in good {
            assert!(split_host(ok.as_bytes()).is_ok(), "{ok:?}");
        }
        let bad = [
            ("user@example.org", "user info"),
            ("user:pw@example.org", "user info"),
            ("example.org/x", "a path"),
            ("example.org?x", "a path"),
            ("example.org:80x", "not a number"),
            ("example.org:80:80", "not a number"),
            ("example.org:-1", "not a number"),
            ("example.org:65536", "over 65535"),
            ("example.org:99999999999999999999999", "over 65535"),
            ("[::1", "IP literal"),
            ("[::g]", "IP literal"),
            ("[fe80::1%25eth0]", "IP literal"),
            ("[v1.]", "IP literal"),
            ("[::1]x", "after the IP literal"),
            ("exa mple.org", "character"),
            ("a%4g.org", "character"),
            ("caf\u{e9}.example", "character"),
        ];
        for (bad, why) in bad {
            let got = split_host(bad.as_bytes());
            assert!(
                got.is_err_and(|e| e.contains(why)),
                "{bad:?}: {got:?}, not {why:?}"
            );
        }
        // The one-pass split agrees with the general one wherever it answers, and it answers
        // every plain name with a port of up to five digits.
        for host in good.into_iter().chain(bad.map(|(host, _)| host)) {
            let usual = usual_host(host.as_bytes());
            let port_len = host.split_once(':').map_or(0, |(_, port)| port.len());
            let plain = !host.contains(['[', '%', '@']) && port_len <= 5;
            assert_eq!(
                usual.is_some(),
                plain && split_host(host.as_bytes()).is_ok(),
                "{host:?}"
            );
            if usual.is_some() {
                assert_eq!(
                    usual,
                    split_host_with_reason(host.as_bytes()).ok(),
                    "{host:?}"
                );
            }
        }
    }

    #[test]
    fn host_rules_of_a_request() {
        let head = |b: http::request::Builder| b.body(()).unwrap().into_parts().0;
        let get = || http::Request::get("/");
        assert_eq!(check_host(&head(get().header("Host", "a.example"))), Ok(()));
        assert_eq!(check_host(&head(get())), Err("no Host field"));
        assert_eq!(check_host(&head(get().version(Version::HTTP_10))), Ok(()));
        let two = get()
            .header("Host", "a.example")
            .header("Host", "a.example");
        assert_eq!(check_host(&head(two)), Err("more than one Host field"));
        let bad_10 = get().version(Version::HTTP_10).header("Host", "a/b");
        assert!(check_host(&head(bad_10)).is_err());
        // An absolute-form target's authority is checked too.
        let absolute = |uri| http::Request::get(uri).header("Host", "h.example");
        assert_eq!(check_host(&head(absolute("http://a.example:81/x"))), Ok(()));
        assert!(check_host(&head(absolute("http://u@a.example/x"))).is_err());
    }

    #[test]
    fn a_connection_remembers_its_last_host_and_only_that() {
        let conn = ConnInfo {
            local: Some("127.0.0.1:8080".parse().unwrap()),
            remote: None,
        };
        let mut vars = ConnEnviron::new(&conn);
        let head = |host: &str| {
            let req = http::Request::get("/").header("Host", host);
            req.body(()).unwrap().into_parts().0
        };
        let server = |vars: &mut ConnEnviron, host| {
            let env = vars.environ(&head(host));
            (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT"))
        };
        for _ in 0..2 {
            assert_eq!(vars.check_host(&head("a.example:0081")), Ok(()));
            assert_eq!(
                server(&mut vars, "a.example:0081"),
                ("a.example".into(), "81".into())
            );
        }
        // Another Host is checked and split afresh, whatever came before it.
        assert!(vars.check_host(&head("a.example:0081@evil")).is_err());
        assert_eq!(
            server(&mut vars, "b.example"),
            ("b.example".into(), "8080".into())
        );
        assert_eq!(server(&mut vars, "[::1]:9"), ("[::1]".into(), "9".into()));
        assert_eq!(
            server(&mut vars, "a.example:0081"),
            ("a.example".into(), "81".into())
        );
        assert_eq!(
            vars.check_host(&head("user@a")),
            Err("user info in the Host")
        );
    }

    #[test]
    fn server_name_comes_only_from_a_valid_authority() {
        // An absolute-form target wins over Host.
        let env =
            env_of(http::Request::get("http://a.example:81/x").header("Host", "h.example:82"));
        assert_eq!(
            (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT")),
            ("a.example".into(), "81".into())
        );
        assert_eq!(s(&env, "HTTP_HOST"), "h.example:82");
        // What is not valid leaves the listener's address.
        for host in [
            "user@evil.example:1",
            "evil.example:99999",
            "evil.example/x:1",
        ] {
            let env = env_of(http::Request::get("/").header("Host", host));
            assert_eq!(
                (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT")),
                ("127.0.0.1".into(), "8080".into()),
                "{host}"
            );
            assert_eq!(s(&env, "HTTP_HOST"), host);
        }
        // An empty port is the default: the listener's.
        let env = env_of(http::Request::get("/").header("Host", "a.example:"));
        assert_eq!(
            (s(&env, "SERVER_NAME"), s(&env, "SERVER_PORT")),
            ("a.example".into(), "8080".into())
        );
        let env = env_of(http::Request::get("/").header("Host", "a.example:0081"));
        assert_eq!(s(&env, "SERVER_PORT"), "81");
    }
}

//! An HTTP request head as CGI meta-variables (RFC 3875 §4.1), exactly as a CGI server sets
//! them.

use std::net::SocketAddr;

use bytes::Bytes;
use gateway_core::{Environ, Protocol};
use http::request::Parts;
use http::{Version, header};
use percent_encoding::percent_decode;

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
    let mut env = Environ::new(Protocol::Http);
    let uri = &parts.uri;
    let path = uri.path();
    let path_and_query = uri.path_and_query().map_or(path, |pq| pq.as_str());

    env.insert("GATEWAY_INTERFACE", "CGI/1.1");
    env.insert("SERVER_SOFTWARE", SERVER_SOFTWARE);
    env.insert(
        "REQUEST_METHOD",
        Bytes::copy_from_slice(parts.method.as_str().as_bytes()),
    );
    env.insert("SCRIPT_NAME", "");
    env.insert(
        "PATH_INFO",
        Bytes::from(percent_decode(path.as_bytes()).collect::<Vec<u8>>()),
    );
    env.insert(
        "QUERY_STRING",
        Bytes::copy_from_slice(uri.query().unwrap_or("").as_bytes()),
    );
    env.insert(
        "REQUEST_URI",
        Bytes::copy_from_slice(path_and_query.as_bytes()),
    );
    env.insert("SERVER_PROTOCOL", server_protocol(parts.version));

    let host = parts
        .headers
        .get(header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| uri.authority().map(|a| a.as_str().as_bytes()));
    let (name, port) = host.map(split_host).unwrap_or((None, None));
    let server_name = match (name, conn.local) {
        (Some(name), _) => Bytes::copy_from_slice(name),
        (None, Some(local)) => ip_literal(local).into(),
        (None, None) => Bytes::from_static(b"localhost"),
    };
    let server_port = match (port, conn.local) {
        (Some(port), _) => port.to_string(),
        (None, Some(local)) => local.port().to_string(),
        (None, None) => "80".to_owned(),
    };
    env.insert("SERVER_NAME", server_name);
    env.insert("SERVER_PORT", server_port);
    match conn.remote {
        Some(remote) => {
            env.insert("REMOTE_ADDR", remote.ip().to_string());
            env.insert("REMOTE_PORT", remote.port().to_string());
        }
        None => env.insert("REMOTE_ADDR", ""),
    }

    for (name, value) in &parts.headers {
        let name = name.as_str();
        if name.contains('_') {
            continue;
        }
        let value = Bytes::copy_from_slice(value.as_bytes());
        match name {
            "content-type" => env.insert("CONTENT_TYPE", value),
            "content-length" => env.insert("CONTENT_LENGTH", value),
            _ => env.append_header(header_var(name), value),
        }
    }
    env
}

/// `user-agent` becomes `HTTP_USER_AGENT`.
fn header_var(name: &str) -> Bytes {
    let mut var = Vec::with_capacity(5 + name.len());
    var.extend_from_slice(b"HTTP_");
    var.extend(name.bytes().map(|b| match b {
        b'-' => b'_',
        b => b.to_ascii_uppercase(),
    }));
    var.into()
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

/// `example.com:8080` gives (`example.com`, 8080); `[::1]` gives (`[::1]`, none). The name
/// keeps an IPv6 literal's brackets, as RFC 3875 §4.1.14 writes SERVER_NAME.
fn split_host(host: &[u8]) -> (Option<&[u8]>, Option<u16>) {
    let name_end = if host.starts_with(b"[") {
        match host.iter().position(|&b| b == b']') {
            Some(i) => i + 1,
            None => return (None, None),
        }
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let (name, rest) = host.split_at(name_end);
    let port = rest
        .strip_prefix(b":")
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse().ok());
    ((!name.is_empty()).then_some(name), port)
}

fn ip_literal(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
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

//! `Lint`: checks the environ going in and the response coming out, in the spirit of
//! `wsgiref.validate`, Rack::Lint and Plack::Middleware::Lint.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Frame, SizeHint};

use crate::environ::parse_decimal;
use crate::response::is_token;
use crate::{App, Body, BoxError, Environ, Response};

/// A broken rule, named by [`Lint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lint: {0}")]
pub struct Violation(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, Violation> {
    Err(Violation(msg.into()))
}

/// Wraps an app and checks both directions of every request; a broken rule answers 500
/// (or aborts a body already under way) and is logged with the rule's name.
///
/// It is meant for tests and development: switch it on per mount with `lint = true`.
///
/// ```
/// use gateway_core::{Lint, Response, app_fn};
///
/// let app = Lint::new(app_fn(|_, _| async { Response::new(204).with_body("oops") }));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct Lint<A> {
    inner: A,
}

impl<A> Lint<A> {
    /// Checks every request to and response from `inner`.
    pub fn new(inner: A) -> Self {
        Lint { inner }
    }
}

impl<A: App> App for Lint<A> {
    async fn call(&self, env: Environ, body: Body) -> Response {
        if let Err(v) = check_environ(&env) {
            tracing::error!(rule = %v.0, "environ broke a lint rule");
            return Response::text(500, format!("{v}\n"));
        }
        let res = self.inner.call(env, body).await;
        match check_response(res) {
            Ok(res) => res,
            Err(v) => {
                tracing::error!(rule = %v.0, "response broke a lint rule");
                Response::text(500, format!("{v}\n"))
            }
        }
    }
}

/// The rules for the environ an app receives.
pub fn check_environ(env: &Environ) -> Result<(), Violation> {
    for required in [
        "REQUEST_METHOD",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
    ] {
        if env.get(required).is_none() {
            return fail(format!("{required} is missing"));
        }
    }
    let Some(script_name) = env.get("SCRIPT_NAME") else {
        return fail("SCRIPT_NAME is missing");
    };
    if script_name == b"/" || !(script_name.is_empty() || script_name.starts_with(b"/")) {
        return fail(format!(
            "SCRIPT_NAME {:?} must be \"\" or start with '/', and never be \"/\"",
            lossy(script_name)
        ));
    }
    let path_info = env.path_info();
    if !(path_info.is_empty() || path_info.starts_with(b"/")) {
        return fail(format!(
            "PATH_INFO {:?} must be \"\" or start with '/'",
            lossy(path_info)
        ));
    }
    if crate::path::has_dot_segment(path_info) {
        return fail(format!(
            "PATH_INFO {:?} holds a '.' or '..' segment: front servers resolve them before \
             they apply their rules, so the app must see them resolved",
            lossy(path_info)
        ));
    }
    let method = env.get("REQUEST_METHOD").unwrap_or_default();
    if !is_token(method) {
        return fail(format!("REQUEST_METHOD {:?} is not a token", lossy(method)));
    }
    let protocol = env.server_protocol();
    if !is_server_protocol(protocol) {
        return fail(format!(
            "SERVER_PROTOCOL {:?} is not INCLUDED or NAME/MAJOR[.MINOR]",
            lossy(protocol)
        ));
    }
    if env.server_port().is_none() {
        return fail(format!(
            "SERVER_PORT {:?} is not a port number",
            lossy(env.get("SERVER_PORT").unwrap_or_default())
        ));
    }
    if let Some(len) = env.get("CONTENT_LENGTH")
        && parse_decimal(len).is_none()
    {
        return fail(format!("CONTENT_LENGTH {:?} is not digits", lossy(len)));
    }
    Ok(())
}

/// The rules for a response's head; its body is wrapped to check what is sent.
pub fn check_response(mut res: Response) -> Result<Response, Violation> {
    if !crate::cgi::is_final_status(res.status) {
        return fail(format!(
            "status {} is not a final status (200..=599); a 1xx is interim",
            res.status
        ));
    }
    let mut declared = None;
    for (name, value) in &res.headers {
        if !is_token(name) {
            return fail(format!("header name {:?} is not a token", lossy(name)));
        }
        if value.iter().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
            return fail(format!(
                "header {:?} has CR, LF or NUL in its value",
                lossy(name)
            ));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            match parse_decimal(value) {
                Some(n) if declared.is_none_or(|d| d == n) => declared = Some(n),
                _ => {
                    return fail(format!(
                        "Content-Length {:?} is not one number",
                        lossy(value)
                    ));
                }
            }
        }
    }
    let bodiless = matches!(res.status, 100..=199 | 204 | 304);
    if bodiless && res.header("content-type").is_some() {
        return fail(format!(
            "status {} must not have a Content-Type",
            res.status
        ));
    }
    let expected = if bodiless { Some(0) } else { declared };
    if let (Some(expected), Some(actual)) = (expected, res.body.exact_len())
        && expected != actual
    {
        return fail(format!(
            "status {} with Content-Length {expected:?} but a body of {actual} bytes",
            res.status,
        ));
    }
    if expected.is_some() && res.body.exact_len().is_none() {
        let inner = std::mem::take(&mut res.body);
        res.body = Body::new(CountedBody {
            inner,
            expected: expected.unwrap_or_default(),
            sent: 0,
        });
    }
    Ok(res)
}

/// Fails the stream when it sends other than the declared number of bytes.
struct CountedBody {
    inner: Body,
    expected: u64,
    sent: u64,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        let verdict = match &frame {
            Poll::Ready(Some(Ok(f))) => {
                self.sent += f.data_ref().map_or(0, |d| d.len() as u64);
                self.sent <= self.expected
            }
            Poll::Ready(None) => self.sent == self.expected,
            _ => true,
        };
        if verdict {
            return frame.map(|f| f.map(|r| r.map_err(Into::into)));
        }
        let v = Violation(format!(
            "body sent {}{} bytes where {} were declared",
            self.sent,
            if frame.is_ready() { "" } else { "+" },
            self.expected
        ));
        tracing::error!(rule = %v.0, "response body broke a lint rule");
        Poll::Ready(Some(Err(v.into())))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// RFC 3875 §4.1.16: `INCLUDED`, or `NAME/MAJOR.MINOR` (`HTTP/1.1`); `HTTP/2` is allowed too.
fn is_server_protocol(s: &[u8]) -> bool {
    if s.eq_ignore_ascii_case(b"INCLUDED") {
        return true;
    }
    let Some(slash) = s.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (name, version) = (&s[..slash], &s[slash + 1..]);
    let mut parts = version.splitn(2, |&b| b == b'.');
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    is_token(name) && parts.next().is_some_and(digits) && parts.next().is_none_or(digits)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    fn good_env() -> Environ {
        let mut env = Environ::new(Protocol::Http);
        for (n, v) in [
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/x"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ] {
            env.insert(n, v);
        }
        env
    }

    fn env_with(name: &'static str, value: &'static str) -> Result<(), Violation> {
        let mut env = good_env();
        env.insert(name, value);
        check_environ(&env)
    }

    fn broken(r: Result<(), Violation>, needle: &str) {
        let v = r.expect_err("expected a violation");
        assert!(v.0.contains(needle), "{v} does not mention {needle}");
    }

    #[test]
    fn good_environ_passes() {
        check_environ(&good_env()).unwrap();
        env_with("SERVER_PROTOCOL", "INCLUDED").unwrap();
        env_with("SERVER_PROTOCOL", "HTTP/2").unwrap();
        env_with("SCRIPT_NAME", "/app").unwrap();
        env_with("PATH_INFO", "").unwrap();
    }

    #[test]
    fn environ_rules() {
        broken(env_with("SCRIPT_NAME", "/"), "SCRIPT_NAME");
        broken(env_with("SCRIPT_NAME", "app"), "SCRIPT_NAME");
        broken(env_with("PATH_INFO", "x"), "PATH_INFO");
        broken(env_with("PATH_INFO", "/admin/../x"), "'..' segment");
        broken(env_with("PATH_INFO", "/a/./x"), "'..' segment");
        env_with("PATH_INFO", "/a.b/..c/.d").unwrap();
        broken(env_with("REQUEST_METHOD", "GE T"), "REQUEST_METHOD");
        broken(env_with("SERVER_PROTOCOL", "HTTP/1.x"), "SERVER_PROTOCOL");
        broken(env_with("SERVER_PORT", "http"), "SERVER_PORT");
        broken(env_with("CONTENT_LENGTH", "12a"), "CONTENT_LENGTH");
        let mut env = good_env();
        env.remove("SCRIPT_NAME");
        broken(check_environ(&env), "SCRIPT_NAME is missing");
        let mut env = good_env();
        env.remove("SERVER_PROTOCOL");
        broken(check_environ(&env), "SERVER_PROTOCOL is missing");
    }

    fn res_broken(res: Response, needle: &str) {
        let v = check_response(res).expect_err("expected a violation");
        assert!(v.0.contains(needle), "{v} does not mention {needle}");
    }

    #[test]
    fn response_rules() {
        check_response(Response::text(200, "ok")).unwrap();
        res_broken(Response::new(99), "status 99 is not");
        res_broken(Response::new(1000), "status 1000 is not");
        res_broken(Response::new(100), "status 100 is not a final status");
        res_broken(Response::new(101), "status 101 is not a final status");
        res_broken(
            Response::new(200).with_header("Bad Name", "x"),
            "not a token",
        );
        res_broken(
            Response::new(200).with_header("X-A", "a\r\nb"),
            "CR, LF or NUL",
        );
        res_broken(
            Response::new(200).with_header("X-A", "a\0b"),
            "CR, LF or NUL",
        );
        res_broken(Response::new(204).with_body("x"), "body of 1 bytes");
        res_broken(
            Response::new(304).with_header("Content-Type", "text/html"),
            "Content-Type",
        );
        res_broken(
            Response::new(200)
                .with_header("Content-Length", "3")
                .with_body("four"),
            "Content-Length",
        );
        res_broken(
            Response::new(200).with_header("Content-Length", "x"),
            "not one number",
        );
    }

    #[test]
    fn streamed_body_must_match_content_length() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let stream = |parts: &'static [&'static str]| {
            Body::from_stream(futures_util::stream::iter(
                parts.iter().map(|p| Ok::<_, std::io::Error>(*p)),
            ))
        };
        let res = Response::new(200)
            .with_header("Content-Length", "4")
            .with_body(stream(&["ab", "cd"]));
        let body = check_response(res).unwrap().body;
        assert_eq!(rt.block_on(body.to_bytes()).unwrap(), "abcd");

        let res = Response::new(200)
            .with_header("Content-Length", "5")
            .with_body(stream(&["ab", "cd"]));
        let body = check_response(res).unwrap().body;
        assert!(rt.block_on(body.to_bytes()).is_err());

        let res = Response::new(304).with_body(stream(&["x"]));
        let body = check_response(res).unwrap().body;
        assert!(rt.block_on(body.to_bytes()).is_err());
    }
}

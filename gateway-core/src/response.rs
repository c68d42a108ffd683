//! The response an app returns.

use bytes::Bytes;

use crate::Body;

/// A status, ordered headers (a name may repeat), and a body.
///
/// Fields are raw on purpose, as in WSGI and Rack: a front-end validates them on the way out
/// (an invalid status or header becomes a 500), and the [`Lint`](crate::Lint) middleware
/// names the broken rule.
///
/// ```
/// use gateway_core::Response;
///
/// let res = Response::new(200)
///     .with_header("Content-Type", "text/plain")
///     .with_header("Set-Cookie", "a=1")
///     .with_header("Set-Cookie", "b=2")
///     .with_body("hello");
/// assert_eq!(res.header("content-type"), Some(&b"text/plain"[..]));
/// assert_eq!(res.headers.len(), 3);
/// ```
#[derive(Debug, Default)]
pub struct Response {
    /// The status code; valid ones are 100..=999.
    pub status: u16,
    /// Header fields in order; a name may repeat (`Set-Cookie`).
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body: whole (`Bytes`) or streamed.
    pub body: Body,
    /// Typed values for middleware and front-ends, never sent (a [`LocalRedirect`](crate::LocalRedirect),
    /// say); moved to and from `http::Response` by the tower adapters.
    pub extensions: http::Extensions,
}

impl Response {
    /// A response with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::empty(),
            extensions: http::Extensions::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Body>) -> Self {
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body)
    }

    /// A plain-text error page whose body is the status's reason, e.g. `404 Not Found`.
    pub fn error(status: u16) -> Self {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Response::text(status, format!("{status} {reason}\n"))
    }

    /// Appends a header field and returns the response.
    pub fn with_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.append_header(name, value);
        self
    }

    /// Appends a header field; an earlier one of the same name stays.
    pub fn append_header(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Sets the body and returns the response.
    pub fn with_body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }
}

impl From<crate::BodyError> for Response {
    /// 413 for a body over its cap, 400 for a body that could not be read.
    fn from(e: crate::BodyError) -> Self {
        Response::error(e.status())
    }
}

/// Whether `s` is an RFC 9110 §5.6.2 token, as a header name or a method must be.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[usize::from(b)])
}

/// `tchar`, by byte: a table, as every header of every response is checked against it.
static TCHAR: [bool; 256] = {
    let symbols = b"!#$%&'*+-.^_`|~";
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] = true;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_of_tchars() {
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        for b in 0..=255u8 {
            assert_eq!(is_token(&[b]), tchar(b), "{b:#04x}");
            assert_eq!(is_token(&[b'X', b, b'-']), tchar(b), "{b:#04x}");
        }
        assert!(!is_token(b""));
        assert!(is_token(b"Content-Type"));
        assert!(!is_token(b"Content Type"));
    }
}

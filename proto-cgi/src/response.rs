//! A CGI script's output (RFC 3875 §6): header lines, a blank line, the body.

use bytes::Bytes;

/// The most bytes of header a script may write before its blank line.
pub const MAX_HEAD: usize = 64 << 10;

/// What a script's header lines say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptHead {
    /// From `Status: NNN reason`.
    pub status: Option<u16>,
    /// Every other field, in order, `Status` and transport fields left out.
    pub headers: Vec<(Bytes, Bytes)>,
    /// Bytes the head took (the body starts there).
    pub len: usize,
}

/// What the response is, by RFC 3875 §6.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A document (or a `Status:` response): sent as it is.
    Document,
    /// `Location: /path` alone: the server answers it itself, as a GET of that path.
    LocalRedirect(Bytes),
    /// `Location: scheme:...` without a status: a 302.
    ClientRedirect,
}

/// Output that is not a CGI response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// A header line without a `:`, or with a name that is not a token.
    #[error("script output line {0:?} is not a header field")]
    BadLine(String),
    /// `Status:` without a three-digit code.
    #[error("script Status {0:?} is not a status code")]
    BadStatus(String),
    /// No blank line within [`MAX_HEAD`] bytes.
    #[error("script header longer than {MAX_HEAD} bytes")]
    TooLarge,
}

/// Parses the head at the start of `buf`; `Ok(None)` until its blank line has arrived. Lines
/// may end with LF or CRLF, as scripts write both.
///
/// ```
/// use bytes::Bytes;
/// use proto_cgi::{Kind, parse_head};
///
/// let out = Bytes::from_static(b"Content-Type: text/plain\nStatus: 201 Created\n\nhi");
/// let head = parse_head(&out).unwrap().unwrap();
/// assert_eq!(head.status, Some(201));
/// assert_eq!(&out[head.len..], b"hi");
/// assert_eq!(head.kind(), Kind::Document);
/// ```
pub fn parse_head(buf: &Bytes) -> Result<Option<ScriptHead>, HeadError> {
    let mut status = None;
    let mut headers = Vec::new();
    let mut at = 0;
    loop {
        let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') else {
            return match buf.len() > MAX_HEAD {
                true => Err(HeadError::TooLarge),
                false => Ok(None),
            };
        };
        let end = at + nl;
        let line = buf.slice(at..end);
        let line = line
            .strip_suffix(b"\r")
            .map_or(line.clone(), |l| line.slice(..l.len()));
        at = end + 1;
        if at > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        if line.is_empty() {
            return Ok(Some(ScriptHead {
                status,
                headers,
                len: at,
            }));
        }
        let lossy = || String::from_utf8_lossy(&line).into_owned();
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| HeadError::BadLine(lossy()))?;
        let name = line.slice(..colon);
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic() && b != b':') {
            return Err(HeadError::BadLine(lossy()));
        }
        let value = trim(line.slice(colon + 1..));
        if name.eq_ignore_ascii_case(b"status") {
            let code = value
                .get(..3)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse().ok());
            let code =
                code.filter(|c| (100..=999).contains(c) && value.get(3).is_none_or(|&b| b == b' '));
            status = Some(code.ok_or_else(|| {
                HeadError::BadStatus(String::from_utf8_lossy(&value).into_owned())
            })?);
        } else if !is_transport(&name) {
            headers.push((name, value));
        }
    }
}

impl ScriptHead {
    /// Which of RFC 3875's response kinds this is.
    pub fn kind(&self) -> Kind {
        let Some(location) = self.header("location") else {
            return Kind::Document;
        };
        if self.status.is_some() {
            return Kind::Document; // a redirect with its own status (and maybe a document)
        }
        if location.starts_with(b"/") {
            return Kind::LocalRedirect(location.clone());
        }
        Kind::ClientRedirect
    }

    /// The first value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

fn trim(v: Bytes) -> Bytes {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    v.slice(start..end)
}

/// Connection-level fields are the host's business, not the script's (RFC 3875 §6.3).
fn is_transport(name: &[u8]) -> bool {
    [&b"connection"[..], b"transfer-encoding", b"keep-alive"]
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(s: &'static [u8]) -> Result<Option<ScriptHead>, HeadError> {
        parse_head(&Bytes::from_static(s))
    }

    #[test]
    fn kinds() {
        let doc = head(b"Content-Type: text/html\r\n\r\n<p>")
            .unwrap()
            .unwrap();
        assert_eq!(
            (doc.kind(), doc.status, doc.len),
            (Kind::Document, None, 27)
        );
        let local = head(b"Location: /other?x=1\n\n").unwrap().unwrap();
        assert_eq!(
            local.kind(),
            Kind::LocalRedirect(Bytes::from_static(b"/other?x=1"))
        );
        let client = head(b"Location: https://example.org/\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(client.kind(), Kind::ClientRedirect);
        let with_doc = head(
            b"Location: https://example.org/\nStatus: 301 Moved\nContent-Type: text/plain\n\nmoved",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (with_doc.kind(), with_doc.status),
            (Kind::Document, Some(301))
        );
    }

    #[test]
    fn fields_and_errors() {
        let h =
            head(b"X-A:  spaced value \t\nConnection: close\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n")
                .unwrap()
                .unwrap();
        let names: Vec<_> = h
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    Bytes::from_static(b"X-A"),
                    Bytes::from_static(b"spaced value")
                ),
                (
                    Bytes::from_static(b"Set-Cookie"),
                    Bytes::from_static(b"a=1")
                ),
                (
                    Bytes::from_static(b"Set-Cookie"),
                    Bytes::from_static(b"b=2")
                ),
            ]
        );
        assert!(head(b"Content-Type: text/plain\n").unwrap().is_none());
        assert!(matches!(
            head(b"not a header\n\n"),
            Err(HeadError::BadLine(_))
        ));
        assert!(matches!(
            head(b"Status: abc\n\n"),
            Err(HeadError::BadStatus(_))
        ));
        assert!(matches!(
            head(b"Status: 2000\n\n"),
            Err(HeadError::BadStatus(_))
        ));
        assert_eq!(
            head(b"Status: 404 Not Found\n\n").unwrap().unwrap().status,
            Some(404)
        );
        let long = Bytes::from(vec![b'a'; MAX_HEAD + 10]);
        assert_eq!(parse_head(&long), Err(HeadError::TooLarge));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_head(&Bytes::from(data));
        }
    }
}

//! The SCGI request header: a netstring of NUL-separated name/value pairs (SCGI spec, 2008).
//!
//! ```text
//! 70:CONTENT_LENGTH\0 27\0 SCGI\0 1\0 REQUEST_METHOD\0 POST\0 REQUEST_URI\0 /deepthought\0 ,
//! ```
//!
//! The parser is incremental and sans-IO: hand it what has arrived so far; it says how much it
//! still needs, or returns the environ and where the body starts. It never allocates more than
//! the bytes it was given, and refuses a declared length over the cap before reading it.

use bytes::Bytes;
use gateway_core::{CgiError, CgiParams, Environ, PathMode, Protocol};

/// Digits in the longest length we accept (a cap of up to 4 GiB fits in 10).
const MAX_LEN_DIGITS: usize = 10;

/// The most bytes of a bad CONTENT_LENGTH an error quotes.
const SHOWN_MAX: usize = 40;

/// Why a header was refused; each maps to a response status ([`ScgiError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScgiError {
    /// The length has a leading zero.
    #[error("netstring length with a leading zero")]
    LeadingZero,
    /// The length holds something other than digits before `:`.
    #[error("netstring length is not decimal digits")]
    BadLength,
    /// The length has more digits than any accepted size.
    #[error("netstring length overflows")]
    LengthOverflow,
    /// The netstring is longer than the header cap.
    #[error("SCGI header of {len} bytes is over the {limit}-byte cap")]
    TooLarge {
        /// The declared length.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// The netstring does not end with `,`.
    #[error("netstring does not end with ','")]
    MissingComma,
    /// The pairs are not `name NUL value NUL` repeated.
    #[error("SCGI header is not NUL-terminated name/value pairs")]
    BadPairs,
    /// The first pair is not CONTENT_LENGTH.
    #[error("CONTENT_LENGTH is not the first header")]
    ContentLengthNotFirst,
    /// CONTENT_LENGTH is not plain decimal digits fitting in a `u64` (its first 40 bytes).
    #[error("CONTENT_LENGTH {0:?} is not a decimal number")]
    BadContentLength(String),
    /// There is no `SCGI` = `1`.
    #[error("SCGI=1 is missing")]
    MissingScgi,
    /// A variable repeats, or has a bad name.
    #[error(transparent)]
    Params(#[from] CgiError),
}

impl ScgiError {
    /// 431 for a header over the cap, 400 for the rest.
    pub fn status(&self) -> u16 {
        match self {
            ScgiError::TooLarge { .. } => 431,
            _ => 400,
        }
    }
}

/// A complete header.
#[derive(Debug)]
pub struct Header {
    /// The normalized environ (SCRIPT_NAME/PATH_INFO re-split from REQUEST_URI).
    pub environ: Environ,
    /// The body's length, from CONTENT_LENGTH.
    pub content_length: u64,
    /// Bytes of `buf` the header took: the body starts there.
    pub len: usize,
}

/// Parses the header at the start of `buf`: `Ok(None)` until all of it has arrived.
///
/// ```
/// use bytes::Bytes;
///
/// let req = Bytes::from_static(b"24:CONTENT_LENGTH\x003\x00SCGI\x001\x00,abc");
/// let header = proto_scgi::parse(&req, 1024).unwrap().unwrap();
/// assert_eq!((header.content_length, header.len), (3, 28));
/// assert!(proto_scgi::parse(&req.slice(..10), 1024).unwrap().is_none());
/// ```
pub fn parse(buf: &Bytes, max_header: usize) -> Result<Option<Header>, ScgiError> {
    let Some(len) = header_len(buf, max_header)? else {
        return Ok(None);
    };
    let start = buf.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
    let (environ, content_length) = pairs(&buf[start..len - 1])?;
    Ok(Some(Header {
        environ,
        content_length,
        len,
    }))
}

/// How many bytes the whole header takes (length, `:`, pairs, `,`), once they have all
/// arrived; `Ok(None)` before. Checks the framing only, not the pairs: cheap to call after
/// every read.
pub fn header_len(buf: &[u8], max_header: usize) -> Result<Option<usize>, ScgiError> {
    let Some((len, digits)) = netstring_len(buf, max_header)? else {
        return Ok(None);
    };
    let end = digits + 1 + len;
    match buf.get(end) {
        None => Ok(None),
        Some(b',') => Ok(Some(end + 1)),
        Some(_) => Err(ScgiError::MissingComma),
    }
}

/// The declared length and the number of its digits, once the `:` has arrived.
fn netstring_len(buf: &[u8], max_header: usize) -> Result<Option<(usize, usize)>, ScgiError> {
    let colon = buf.iter().take(MAX_LEN_DIGITS + 1).position(|&b| b == b':');
    let digits = &buf[..colon.unwrap_or(buf.len().min(MAX_LEN_DIGITS + 1))];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(ScgiError::BadLength);
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(ScgiError::LeadingZero);
    }
    if digits.len() > MAX_LEN_DIGITS {
        return Err(ScgiError::LengthOverflow);
    }
    let Some(colon) = colon else {
        return Ok(None);
    };
    if colon == 0 {
        return Err(ScgiError::BadLength);
    }
    let len = digits
        .iter()
        .try_fold(0usize, |n, &d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .ok_or(ScgiError::LengthOverflow)?;
    if len > max_header {
        return Err(ScgiError::TooLarge {
            len,
            limit: max_header,
        });
    }
    Ok(Some((len, colon)))
}

/// A name and its value, as slices of the head.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The size of head past which the pairs are counted first.
const BIG_HEAD: usize = 8 << 10;

/// The pairs of a complete netstring, checked and normalized.
fn pairs(content: &[u8]) -> Result<(Environ, u64), ScgiError> {
    if !content.ends_with(b"\0") {
        return Err(ScgiError::BadPairs);
    }
    // A big head is sized once from its pairs' count: a 1 MiB head of tiny pairs would
    // otherwise grow the environ a dozen times. A web server's few dozen fit the default.
    let vars = match content.len() {
        0..BIG_HEAD => 32,
        _ => memchr::memchr_iter(0, content).count() / 2,
    };
    let mut params = CgiParams::with_capacity(Protocol::Scgi, vars, content.len());
    let mut at = 0;
    let mut field = || -> Option<&[u8]> {
        let end = at + memchr::memchr(0, content.get(at..)?)?;
        let f = &content[at..end];
        at = end + 1;
        Some(f)
    };
    let mut pair = || -> Result<Option<Pair<'_>>, ScgiError> {
        let Some(name) = field() else {
            return Ok(None);
        };
        let value = field().ok_or(ScgiError::BadPairs)?;
        Ok(Some((name, value)))
    };
    let Some((first, length)) = pair()? else {
        return Err(ScgiError::ContentLengthNotFirst);
    };
    if first != b"CONTENT_LENGTH" {
        return Err(ScgiError::ContentLengthNotFirst);
    }
    // It frames the body: where the normalizer would count an invalid one as absent, SCGI
    // cannot tell where the body ends.
    params.push(first, length)?;
    let content_length = params.content_length().ok_or_else(|| {
        let shown = &length[..length.len().min(SHOWN_MAX)];
        ScgiError::BadContentLength(String::from_utf8_lossy(shown).into_owned())
    })?;
    let mut scgi = false;
    while let Some((name, value)) = pair()? {
        if name == b"SCGI" {
            scgi |= value == b"1";
        }
        params.push(name, value)?;
    }
    if !scgi {
        return Err(ScgiError::MissingScgi);
    }
    Ok((params.finish(PathMode::Resplit)?, content_length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example of the SCGI spec.
    const SPEC: &[u8] = b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,What is the answer to life?";

    fn parse_all(b: &[u8]) -> Result<Option<Header>, ScgiError> {
        parse(&Bytes::copy_from_slice(b), 4096)
    }

    fn netstring(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (n, v) in pairs {
            body.extend_from_slice(n.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        let mut out = format!("{}:", body.len()).into_bytes();
        out.extend_from_slice(&body);
        out.push(b',');
        out
    }

    #[test]
    fn the_spec_example() {
        let h = parse_all(SPEC).unwrap().unwrap();
        assert_eq!(h.content_length, 27);
        assert_eq!(&SPEC[h.len..], b"What is the answer to life?");
        assert_eq!(h.environ.method(), "POST");
        assert_eq!(h.environ.path_info(), b"/deepthought");
        assert_eq!(h.environ.script_name(), b"");
        assert_eq!(h.environ.get("SCGI"), Some(&b"1"[..]));
    }

    #[test]
    fn every_prefix_asks_for_more() {
        let header_len = SPEC.iter().position(|&b| b == b',').unwrap() + 1;
        for cut in 0..header_len {
            assert!(parse_all(&SPEC[..cut]).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn malformations() {
        let ok = netstring(&[("CONTENT_LENGTH", "0"), ("SCGI", "1")]);
        parse_all(&ok).unwrap().unwrap();
        let cases: Vec<(Vec<u8>, ScgiError)> = vec![
            (
                b"024:CONTENT_LENGTH\x000\x00SCGI\x001\x00,".to_vec(),
                ScgiError::LeadingZero,
            ),
            (b"2x:".to_vec(), ScgiError::BadLength),
            (b":".to_vec(), ScgiError::BadLength),
            (b"99999999999:".to_vec(), ScgiError::LengthOverflow),
            (
                b"99999:".to_vec(),
                ScgiError::TooLarge {
                    len: 99_999,
                    limit: 4096,
                },
            ),
            (
                [&ok[..ok.len() - 1], b";"].concat(),
                ScgiError::MissingComma,
            ),
            (
                netstring(&[("SCGI", "1"), ("CONTENT_LENGTH", "0")]),
                ScgiError::ContentLengthNotFirst,
            ),
            (
                netstring(&[("CONTENT_LENGTH", "0")]),
                ScgiError::MissingScgi,
            ),
            (
                netstring(&[("CONTENT_LENGTH", "0"), ("SCGI", "2")]),
                ScgiError::MissingScgi,
            ),
            (
                netstring(&[("CONTENT_LENGTH", "-1"), ("SCGI", "1")]),
                ScgiError::BadContentLength("-1".into()),
            ),
            (
                netstring(&[("CONTENT_LENGTH", ""), ("SCGI", "1")]),
                ScgiError::BadContentLength(String::new()),
            ),
            (
                netstring(&[("CONTENT_LENGTH", "+10"), ("SCGI", "1")]),
                ScgiError::BadContentLength("+10".into()),
            ),
            (
                netstring(&[("CONTENT_LENGTH", " 5"), ("SCGI", "1")]),
                ScgiError::BadContentLength(" 5".into()),
            ),
            (
                netstring(&[("CONTENT_LENGTH", "18446744073709551616"), ("SCGI", "1")]),
                ScgiError::BadContentLength("18446744073709551616".into()),
            ),
            (
                netstring(&[
                    ("CONTENT_LENGTH", "0"),
                    ("SCGI", "1"),
                    ("CONTENT_LENGTH", "0"),
                ]),
                ScgiError::Params(CgiError::Repeated("CONTENT_LENGTH".into())),
            ),
            (b"5:A\x00B\x00C,".to_vec(), ScgiError::BadPairs),
            (b"4:A\x00B\x00,".to_vec(), ScgiError::ContentLengthNotFirst),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_all(&input).map(|_| ()),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
        assert_eq!(ScgiError::TooLarge { len: 1, limit: 0 }.status(), 431);
        assert_eq!(ScgiError::MissingComma.status(), 400);
    }

    #[test]
    fn a_mebibyte_of_names_parses_whole() {
        let mut pairs = vec![("CONTENT_LENGTH".to_string(), "007".to_string())];
        pairs.push(("SCGI".into(), "1".into()));
        pairs.extend((0..140_000).map(|i| (format!("V{i:X}"), String::new())));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let wire = Bytes::from(netstring(&pairs));
        assert!(wire.len() > 1 << 20, "{}", wire.len());
        let h = parse(&wire, 2 << 20).unwrap().unwrap();
        assert_eq!(h.content_length, 7);
        assert_eq!(h.len, wire.len());
        assert_eq!(h.environ.get("V222DF"), Some(&b""[..]));
        // The pairs, then SCRIPT_NAME, PATH_INFO, QUERY_STRING and GATEWAY_INTERFACE.
        assert_eq!(h.environ.len(), 140_002 + 4);
    }

    #[test]
    fn repeated_headers_join_like_http() {
        let h = netstring(&[
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("HTTP_ACCEPT", "a"),
            ("HTTP_ACCEPT", "b"),
            ("HTTP_COOKIE", "x=1"),
            ("HTTP_COOKIE", "y=2"),
            ("CONTENT_TYPE", ""),
        ]);
        let env = parse_all(&h).unwrap().unwrap().environ;
        assert_eq!(env.get("HTTP_ACCEPT"), Some(&b"a, b"[..]));
        assert_eq!(env.get("HTTP_COOKIE"), Some(&b"x=1; y=2"[..]));
        assert_eq!(env.content_type(), None);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all(&data);
        }

        #[test]
        fn any_valid_header_parses(
            extra in proptest::collection::vec(("[A-Z_]{1,12}", "[ -~]{0,40}"), 0..8),
            body_len in 0u64..1_000_000,
        ) {
            let len = body_len.to_string();
            let mut pairs: Vec<(&str, &str)> = vec![("CONTENT_LENGTH", &len), ("SCGI", "1")];
            let mut seen = std::collections::HashSet::new();
            for (n, v) in &extra {
                if !n.starts_with("HTTP_") && n != "CONTENT_LENGTH" && n != "SCGI" && seen.insert(n.clone()) {
                    pairs.push((n, v));
                }
            }
            let h = parse_all(&netstring(&pairs)).unwrap().unwrap();
            prop_assert_eq!(h.content_length, body_len);
        }
    }
}

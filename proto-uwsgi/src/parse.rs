//! The uwsgi request packet (uWSGI's binary protocol, as nginx `uwsgi_pass`, Apache
//! mod_proxy_uwsgi and lighttpd `scgi.protocol = "uwsgi"` send it).
//!
//! ```text
//! modifier1 u8 | datasize u16 LE | modifier2 u8          the 4-byte header
//! (keylen u16 LE, key, vallen u16 LE, value)*            the vars: exactly datasize bytes
//! body                                                   CONTENT_LENGTH bytes, raw
//! ```
//!
//! The parser is incremental and sans-IO: hand it what has arrived so far; it says how much it
//! still needs, or returns the environ and where the body starts. `modifier1` must be 0 (a
//! WSGI/CGI request, nginx's default): any other value is refused from the first byte, never
//! read as something it is not. `modifier2` is ignored.

use bytes::Bytes;
use gateway_core::{CgiError, CgiParams, Environ, PathMode, Protocol, parse_decimal};

/// The bytes of the fixed header: modifier1, datasize (2), modifier2.
pub const HEADER_LEN: usize = 4;

/// The most bytes of a bad CONTENT_LENGTH an error quotes.
const SHOWN_MAX: usize = 40;

/// The vars block's size past which its pairs are counted first, to size the environ once.
const BIG_VARS: usize = 8 << 10;

/// Why a packet was refused; each maps to a response status ([`UwsgiError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UwsgiError {
    /// `modifier1` is not 0: another uWSGI request type (30 asks to strip SCRIPT_NAME, others
    /// are uWSGI-internal), which gatewayd does not serve.
    #[error("uwsgi modifier1 {0} is not supported (only 0, a WSGI/CGI request)")]
    Modifier1(u8),
    /// The web server closed the connection before the whole header and vars arrived.
    #[error("uwsgi packet truncated: {got} of {want} bytes")]
    Truncated {
        /// The bytes that arrived.
        got: usize,
        /// The bytes the header announced (or 4, before the header was whole).
        want: usize,
    },
    /// The vars block is larger than `max_head_size`.
    #[error("uwsgi vars of {len} bytes are over the {limit}-byte cap")]
    TooLarge {
        /// The declared datasize.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// A key or value length runs past the end of the vars block.
    #[error("uwsgi var at offset {at} runs past datasize")]
    Overrun {
        /// Where the var starts, from the start of the vars block.
        at: usize,
    },
    /// Bytes are left at the end of the vars block that cannot begin a var.
    #[error("{0} trailing bytes at the end of the uwsgi vars")]
    TrailingBytes(usize),
    /// CONTENT_LENGTH comes twice: the body's length would be ambiguous.
    #[error("CONTENT_LENGTH is repeated")]
    DuplicateContentLength,
    /// CONTENT_LENGTH is not plain decimal digits fitting in a `u64` (its first 40 bytes).
    #[error("CONTENT_LENGTH {0:?} is not a decimal number")]
    BadContentLength(String),
    /// A variable repeats, or has a bad name.
    #[error(transparent)]
    Params(#[from] CgiError),
}

impl UwsgiError {
    /// 501 for an unsupported modifier1, 431 for vars over the cap, 400 for the rest.
    pub fn status(&self) -> u16 {
        match self {
            UwsgiError::Modifier1(_) => 501,
            UwsgiError::TooLarge { .. } => 431,
            _ => 400,
        }
    }
}

/// A complete packet head (header and vars).
#[derive(Debug)]
pub struct Header {
    /// The normalized environ (SCRIPT_NAME/PATH_INFO re-split from REQUEST_URI).
    pub environ: Environ,
    /// The body's length, from CONTENT_LENGTH (0 when it is absent or empty, as nginx's
    /// `uwsgi_params` sends it on a GET).
    pub content_length: u64,
    /// `modifier2`, as sent (ignored by gatewayd).
    pub modifier2: u8,
    /// Bytes of `buf` the header and vars took: the body starts there.
    pub len: usize,
}

/// Parses the packet head at the start of `buf`: `Ok(None)` until all of it has arrived.
/// `max_head` caps the vars block (`max_head_size`).
///
/// ```
/// use bytes::Bytes;
///
/// let wire = proto_uwsgi::client::request(&[("REQUEST_URI", "/x")], b"hi");
/// let head = proto_uwsgi::parse(&Bytes::from(wire.clone()), 1024).unwrap().unwrap();
/// assert_eq!((head.content_length, &wire[head.len..]), (2, &b"hi"[..]));
/// assert!(proto_uwsgi::parse(&Bytes::from(wire).slice(..10), 1024).unwrap().is_none());
/// ```
pub fn parse(buf: &Bytes, max_head: usize) -> Result<Option<Header>, UwsgiError> {
    let Some(len) = packet_len(buf, max_head)? else {
        return Ok(None);
    };
    let (environ, content_length) = vars(&buf[HEADER_LEN..len])?;
    Ok(Some(Header {
        environ,
        content_length,
        modifier2: buf[3],
        len,
    }))
}

/// How many bytes the header and vars take, once they have all arrived; `Ok(None)` before.
/// Checks the header only (modifier1 from the first byte, datasize against `max_head`), not
/// the vars: cheap to call after every read.
pub fn packet_len(buf: &[u8], max_head: usize) -> Result<Option<usize>, UwsgiError> {
    match buf.first() {
        None => return Ok(None),
        Some(&0) => {}
        Some(&m) => return Err(UwsgiError::Modifier1(m)),
    }
    let Some(&[_, lo, hi, _]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let datasize = usize::from(u16::from_le_bytes([lo, hi]));
    if datasize > max_head {
        return Err(UwsgiError::TooLarge {
            len: datasize,
            limit: max_head,
        });
    }
    let len = HEADER_LEN + datasize;
    Ok((buf.len() >= len).then_some(len))
}

/// A name and its value, as slices of the vars block.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The vars of a block, in order; an error for a length that overruns it or bytes left over.
struct Vars<'a> {
    block: &'a [u8],
    at: usize,
}

impl<'a> Vars<'a> {
    fn new(block: &'a [u8]) -> Self {
        Vars { block, at: 0 }
    }

    /// `n` bytes at the cursor, advancing it; `None` past the end.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.block.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    /// A length-prefixed string at the cursor.
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.take(2)?;
        let len = u16::from_le_bytes([len[0], len[1]]);
        self.take(usize::from(len))
    }

    fn next_pair(&mut self) -> Result<Option<Pair<'a>>, UwsgiError> {
        let start = self.at;
        match self.block.len() - start {
            0 => return Ok(None),
            1 => return Err(UwsgiError::TrailingBytes(1)),
            _ => {}
        }
        let overrun = UwsgiError::Overrun { at: start };
        let name = self.string().ok_or(overrun.clone())?;
        let value = self.string().ok_or(overrun)?;
        Ok(Some((name, value)))
    }
}

/// The vars of a complete block, checked and normalized, and the body's length.
fn vars(block: &[u8]) -> Result<(Environ, u64), UwsgiError> {
    // A big block is sized once from its pairs' count (which also checks its framing): a block
    // of tiny pairs would otherwise grow the environ a dozen times.
    let count = match block.len() {
        0..BIG_VARS => 32,
        _ => {
            let mut all = Vars::new(block);
            let mut n = 0;
            while all.next_pair()?.is_some() {
                n += 1;
            }
            n
        }
    };
    let mut params = CgiParams::with_capacity(Protocol::Uwsgi, count, block.len());
    let mut pairs = Vars::new(block);
    let mut content_length = None;
    while let Some((name, value)) = pairs.next_pair()? {
        if name == b"CONTENT_LENGTH" {
            // It frames the body: where the normalizer would count an invalid one as absent,
            // uwsgi could not tell where the body ends. An empty one is absent (nginx's
            // uwsgi_params sends it so on a GET), but a second one, empty or not, is refused.
            if content_length.is_some() {
                return Err(UwsgiError::DuplicateContentLength);
            }
            content_length = match value {
                b"" => Some(0),
                _ => Some(parse_decimal(value).ok_or_else(|| {
                    let shown = &value[..value.len().min(SHOWN_MAX)];
                    UwsgiError::BadContentLength(String::from_utf8_lossy(shown).into_owned())
                })?),
            };
        }
        params.push(name, value)?;
    }
    Ok((
        params.finish(PathMode::Resplit)?,
        content_length.unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;
    use proptest::prelude::*;

    fn parse_all(b: &[u8]) -> Result<Option<Header>, UwsgiError> {
        parse(&Bytes::copy_from_slice(b), 64 << 10)
    }

    /// A packet of `pairs` as given (no CONTENT_LENGTH added), with `modifier1` 0.
    fn packet(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut vars = Vec::new();
        for (n, v) in pairs {
            vars.extend_from_slice(&(n.len() as u16).to_le_bytes());
            vars.extend_from_slice(n.as_bytes());
            vars.extend_from_slice(&(v.len() as u16).to_le_bytes());
            vars.extend_from_slice(v.as_bytes());
        }
        with_vars(&vars)
    }

    fn with_vars(vars: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(vars.len() as u16).to_le_bytes());
        out.push(0);
        out.extend_from_slice(vars);
        out
    }

    /// What nginx 1.22 sends for `curl -d hello 'localhost/app/x%20y?q=1'` with the stock
    /// `uwsgi_params`.
    fn nginx_post() -> Vec<u8> {
        let mut wire = packet(&[
            ("QUERY_STRING", "q=1"),
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
            ("CONTENT_LENGTH", "5"),
            ("REQUEST_URI", "/app/x%20y?q=1"),
            ("PATH_INFO", "/app/x y"),
            ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "50000"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", "localhost"),
            ("HTTP_HOST", "localhost"),
            ("HTTP_USER_AGENT", "curl/7.88.1"),
            ("HTTP_ACCEPT", "*/*"),
            ("HTTP_CONTENT_LENGTH", "5"),
            ("HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ]);
        wire.extend_from_slice(b"hello");
        wire
    }

    #[test]
    fn an_nginx_post() {
        let wire = nginx_post();
        let h = parse_all(&wire).unwrap().unwrap();
        assert_eq!(h.content_length, 5);
        assert_eq!(&wire[h.len..], b"hello");
        assert_eq!(h.environ.protocol(), Protocol::Uwsgi);
        assert_eq!(h.environ.method(), "POST");
        assert_eq!(h.environ.script_name(), b"");
        assert_eq!(h.environ.path_info(), b"/app/x y");
        assert_eq!(h.environ.query_string(), b"q=1");
        assert_eq!(h.environ.get("HTTP_CONTENT_LENGTH"), None);
        assert_eq!(h.environ.get("GATEWAY_INTERFACE"), Some(&b"CGI/1.1"[..]));
    }

    #[test]
    fn a_get_with_an_empty_or_no_content_length_has_no_body() {
        for pairs in [
            &[("CONTENT_LENGTH", ""), ("REQUEST_URI", "/")][..],
            &[("REQUEST_URI", "/")][..],
        ] {
            let h = parse_all(&packet(pairs)).unwrap().unwrap();
            assert_eq!(h.content_length, 0);
            assert_eq!(h.environ.get("CONTENT_LENGTH"), None);
        }
        // No vars at all is a request too (for `/`), as uWSGI takes it.
        let h = parse_all(&[0, 0, 0, 0]).unwrap().unwrap();
        assert_eq!((h.len, h.content_length), (4, 0));
    }

    #[test]
    fn modifier2_is_kept_and_ignored() {
        let mut wire = packet(&[("REQUEST_URI", "/")]);
        wire[3] = 9;
        assert_eq!(parse_all(&wire).unwrap().unwrap().modifier2, 9);
    }

    #[test]
    fn every_prefix_asks_for_more() {
        let wire = nginx_post();
        let len = packet_len(&wire, 1 << 16).unwrap().unwrap();
        for cut in 0..len {
            assert!(parse_all(&wire[..cut]).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn a_stream_split_at_every_byte_boundary_parses_the_same() {
        // Fed as it would arrive in two reads, cut at every byte: the packet is complete
        // exactly when its last var byte has arrived, and then it is the whole packet's environ.
        let wire = nginx_post();
        let whole = parse_all(&wire).unwrap().unwrap();
        let len = whole.len;
        for cut in 0..=wire.len() {
            let mut buf = wire[..cut].to_vec();
            let first = parse_all(&buf).unwrap();
            assert_eq!(first.is_some(), cut >= len, "cut at {cut}");
            buf.extend_from_slice(&wire[cut..]);
            let h = parse_all(&buf).unwrap().unwrap();
            assert_eq!(h.len, len);
            assert_eq!(h.content_length, 5);
            assert!(h.environ.iter().eq(whole.environ.iter()), "cut at {cut}");
        }
    }

    #[test]
    fn malformations() {
        let mut overrun_key = packet(&[("REQUEST_URI", "/")]);
        overrun_key[4] = 200; // the key's length runs past datasize
        let mut overrun_value = packet(&[("A", "bc")]);
        overrun_value[4 + 2 + 1] = 3; // the value's length, one past the end
        let mut missing_value = with_vars(b"\x01\x00A");
        missing_value.truncate(7);
        let cases: Vec<(Vec<u8>, UwsgiError)> = vec![
            (vec![30, 0, 0, 0], UwsgiError::Modifier1(30)),
            (vec![1], UwsgiError::Modifier1(1)),
            (vec![255, 1, 2], UwsgiError::Modifier1(255)),
            (
                vec![0, 0xff, 0xff, 0],
                UwsgiError::TooLarge {
                    len: 65_535,
                    limit: 4096,
                },
            ),
            (overrun_key, UwsgiError::Overrun { at: 0 }),
            (overrun_value, UwsgiError::Overrun { at: 0 }),
            (missing_value, UwsgiError::Overrun { at: 0 }),
            (
                with_vars(&[&packet(&[("A", "b")])[4..], b"\x00"].concat()),
                UwsgiError::TrailingBytes(1),
            ),
            (
                packet(&[("CONTENT_LENGTH", "1"), ("CONTENT_LENGTH", "1")]),
                UwsgiError::DuplicateContentLength,
            ),
            (
                packet(&[("CONTENT_LENGTH", ""), ("CONTENT_LENGTH", "5")]),
                UwsgiError::DuplicateContentLength,
            ),
            (
                packet(&[("CONTENT_LENGTH", "-1")]),
                UwsgiError::BadContentLength("-1".into()),
            ),
            (
                packet(&[("CONTENT_LENGTH", "+10")]),
                UwsgiError::BadContentLength("+10".into()),
            ),
            (
                packet(&[("CONTENT_LENGTH", " 5")]),
                UwsgiError::BadContentLength(" 5".into()),
            ),
            (
                packet(&[("CONTENT_LENGTH", "0x10")]),
                UwsgiError::BadContentLength("0x10".into()),
            ),
            (
                packet(&[("CONTENT_LENGTH", "18446744073709551616")]),
                UwsgiError::BadContentLength("18446744073709551616".into()),
            ),
            (
                packet(&[("REQUEST_METHOD", "GET"), ("REQUEST_METHOD", "GET")]),
                UwsgiError::Params(CgiError::Repeated("REQUEST_METHOD".into())),
            ),
            (
                packet(&[("", "x")]),
                UwsgiError::Params(CgiError::BadName(String::new())),
            ),
            (
                packet(&[("A=B", "x")]),
                UwsgiError::Params(CgiError::BadName("A=B".into())),
            ),
        ];
        for (input, expected) in cases {
            let got = parse(&Bytes::from(input.clone()), 4096).map(|_| ());
            assert_eq!(got, Err(expected.clone()), "{input:?}");
        }
        assert_eq!(UwsgiError::Modifier1(30).status(), 501);
        assert_eq!(UwsgiError::TooLarge { len: 1, limit: 0 }.status(), 431);
        assert_eq!(UwsgiError::TrailingBytes(1).status(), 400);
    }

    #[test]
    fn the_cap_is_on_the_vars_block() {
        let wire = packet(&[("REQUEST_URI", "/")]);
        let vars = wire.len() - HEADER_LEN;
        assert!(parse(&Bytes::from(wire.clone()), vars).unwrap().is_some());
        assert_eq!(
            parse(&Bytes::from(wire), vars - 1).unwrap_err(),
            UwsgiError::TooLarge {
                len: vars,
                limit: vars - 1
            }
        );
    }

    #[test]
    fn the_largest_block_of_tiny_pairs_parses_whole() {
        let mut vars = Vec::new();
        let mut n = 0;
        loop {
            let name = format!("V{n:X}");
            if vars.len() + 4 + name.len() > usize::from(u16::MAX) {
                break;
            }
            vars.extend_from_slice(&(name.len() as u16).to_le_bytes());
            vars.extend_from_slice(name.as_bytes());
            vars.extend_from_slice(&[0, 0]);
            n += 1;
        }
        let h = parse_all(&with_vars(&vars)).unwrap().unwrap();
        // The pairs, then SCRIPT_NAME, PATH_INFO, QUERY_STRING and GATEWAY_INTERFACE.
        assert_eq!(h.environ.len(), n + 4);
        assert_eq!(h.environ.get("V10"), Some(&b""[..]));
    }

    #[test]
    fn repeated_headers_join_like_http() {
        let h = packet(&[
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

    #[test]
    fn the_client_encoder_round_trips() {
        let wire = client::request(&[("REQUEST_URI", "/a?b"), ("CONTENT_LENGTH", "99")], b"xyz");
        let h = parse_all(&wire).unwrap().unwrap();
        assert_eq!(h.content_length, 3);
        assert_eq!(h.environ.path_info(), b"/a");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all(&data);
            let _ = parse(&Bytes::from(data), 16);
        }

        #[test]
        fn garbage_after_a_good_header_never_panics(
            vars in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = parse_all(&with_vars(&vars));
        }

        #[test]
        fn any_valid_packet_parses(
            extra in proptest::collection::vec(("[A-Z_]{1,12}", "[ -~]{0,40}"), 0..8),
            body_len in 0u64..1_000_000,
            cut in 0usize..1000,
        ) {
            let len = body_len.to_string();
            let mut pairs: Vec<(&str, &str)> = vec![("CONTENT_LENGTH", &len)];
            let mut seen = std::collections::HashSet::new();
            for (n, v) in &extra {
                if !n.starts_with("HTTP_") && n != "CONTENT_LENGTH" && seen.insert(n.clone()) {
                    pairs.push((n, v));
                }
            }
            let wire = packet(&pairs);
            let h = parse_all(&wire).unwrap().unwrap();
            prop_assert_eq!(h.content_length, body_len);
            prop_assert_eq!(h.len, wire.len());
            // Any proper prefix asks for more.
            let cut = cut % wire.len();
            prop_assert!(parse_all(&wire[..cut]).unwrap().is_none());
        }
    }
}

//! What the CGI-family gateways (FastCGI, SCGI, uwsgi, CGI) share: one normalizer from the
//! meta-variables a front server sends to an [`Environ`], one writer of the CGI-format
//! response ([`response`]), and one drain of unread input ([`drain`]). Each front-end adds only
//! its framing and its IO.

use std::collections::HashMap;

use bytes::Bytes;

use self::names::NameIndex;
use self::vars::{Name, Vars};
use crate::environ::{join_into, parse_decimal};
use crate::path::{has_dot_segment, remove_dot_segments, routing_path};
use crate::{Environ, Protocol};

mod drain;
mod names;
mod response;
mod vars;

pub use drain::Drain;
pub use response::{HeadStyle, InvalidHead, ResponseWriter, is_final_status, write_response_head};

/// Where `SCRIPT_NAME` and `PATH_INFO` come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMode {
    /// FastCGI, SCGI and uwsgi: the front server's split is not ours (nginx sends the whole path as
    /// SCRIPT_NAME and no PATH_INFO; its `scgi_params` send neither). `PATH_INFO` becomes the
    /// request path of `REQUEST_URI` as the front server decided on it and as the HTTP
    /// front-end builds it ([`routing_path`](crate::routing_path): decoded once, dot segments
    /// resolved), or `SCRIPT_NAME` + `PATH_INFO` when there is no `REQUEST_URI`, and
    /// `SCRIPT_NAME` is `""`, so the router splits by its own mounts and the app sees the same
    /// split as over direct HTTP.
    Resplit,
    /// CGI: `SCRIPT_NAME` is the script's own path on the host; mounts apply below it, in
    /// `PATH_INFO`.
    Keep,
}

/// Why a front server's variables were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgiError {
    /// A variable other than `HTTP_*` came twice (its name's first 64 bytes).
    #[error("variable {0} is repeated")]
    Repeated(String),
    /// A variable name is empty or holds `=` or NUL (its first 64 bytes).
    #[error("invalid variable name {0:?}")]
    BadName(String),
    /// `REQUEST_URI`'s path is one front servers read two ways (see
    /// [`ambiguous_path`](crate::ambiguous_path)): answered 400.
    #[error("the request path holds {0}, which front servers read two ways")]
    AmbiguousPath(&'static str),
}

/// Builds an [`Environ`] from the variables a front server sends, one pair at a time.
///
/// Repeated `HTTP_*` names are joined as the HTTP front-end joins repeated headers (`, `, or
/// `; ` for Cookie): nginx 1.22 sends a repeated header as two params. Any other repeat is an
/// error. Empty `CONTENT_LENGTH` / `CONTENT_TYPE` count as absent (see [`Environ::insert`]), and
/// so does a `CONTENT_LENGTH` that is not plain decimal digits fitting in a `u64` (Caddy 2.6
/// sends `-1` for "unknown"): an app may trust any `CONTENT_LENGTH` it gets.
///
/// A front server can send a hundred thousand names in one request: each pair costs about the
/// same whatever came before, so building the environ costs O(n) in the pairs.
///
/// ```
/// use gateway_core::{CgiParams, PathMode, Protocol};
///
/// let mut params = CgiParams::new(Protocol::FastCgi);
/// for (n, v) in [
///     ("SCRIPT_NAME", "/app/x y"),
///     ("REQUEST_URI", "/app/x%20y?q=1"),
///     ("QUERY_STRING", "q=1"),
///     ("CONTENT_LENGTH", "-1"),
///     ("HTTP_ACCEPT", "a"),
///     ("HTTP_ACCEPT", "b"),
/// ] {
///     params.push(n, v).unwrap();
/// }
/// assert_eq!(params.content_length(), None);
/// let env = params.finish(PathMode::Resplit).unwrap();
/// assert_eq!(env.script_name(), b"");
/// assert_eq!(env.path_info(), b"/app/x y");
/// assert_eq!(env.get("CONTENT_LENGTH"), None);
/// assert_eq!(env.get("HTTP_ACCEPT"), Some(&b"a, b"[..]));
/// ```
#[derive(Debug)]
pub struct CgiParams {
    protocol: Protocol,
    vars: Vars,
    names: NameIndex,
    /// Boxed, and only once a name repeats: FastCGI keeps a `CgiParams` per request slot.
    joined: Option<Box<Joined>>,
}

/// The values of repeated `HTTP_*` variables, by position, joined so far: grown in place and
/// set at [`CgiParams::finish`], as joining each repeat into a new value would copy the whole
/// value again every time.
#[derive(Debug, Default)]
struct Joined(HashMap<usize, Vec<u8>>);

/// The most bytes of a refused name or value an error or a log line quotes: a front server may
/// send a name of megabytes.
const QUOTED_MAX: usize = 64;

/// Whether `name` holds a byte no CGI name may: `=` (it would end the name in an environment
/// block) or NUL. Eight bytes at a time (a byte-by-byte look was half of what a variable cost
/// the normalizer, which runs for every variable of every request behind a web server).
fn has_bad_byte(name: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const EQUALS: u64 = u64::from_ne_bytes([b'='; 8]);
    // Nonzero exactly when some byte of `x` is zero (the borrow can mark others, not invent one).
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let bad = |word: &[u8; 8]| {
        let x = u64::from_ne_bytes(*word);
        zero_in(x) || zero_in(x ^ EQUALS)
    };
    let (words, rest) = name.as_chunks::<8>();
    if words.iter().any(bad) {
        return true;
    }
    match name.last_chunk::<8>() {
        // The last eight bytes again, overlapping the words: the rest among them.
        Some(last) if !rest.is_empty() => bad(last),
        Some(_) => false,
        None => rest.iter().any(|&b| b == b'=' || b == 0),
    }
}

/// The start of `bytes`, for an error or a log line.
fn quoted(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTED_MAX)]).into_owned()
}

impl CgiParams {
    /// An empty set for a request that came through `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        CgiParams::with_capacity(protocol, 32, 1024)
    }

    /// An empty set with room for `vars` variables of `bytes` bytes of names and values in
    /// all: a front-end that knows its head's size (SCGI) allocates once.
    pub fn with_capacity(protocol: Protocol, vars: usize, bytes: usize) -> Self {
        CgiParams {
            protocol,
            vars: Vars::with_capacity(vars, bytes),
            names: NameIndex::default(),
            joined: None,
        }
    }

    /// Adds one variable. The bytes are copied.
    pub fn push(
        &mut self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), CgiError> {
        let (name, mut value) = (name.as_ref(), value.as_ref());
        if name.is_empty() || has_bad_byte(name) {
            return Err(CgiError::BadName(quoted(name)));
        }
        let header = name.starts_with(b"HTTP_");
        if header && !Environ::accepts(name, value) {
            return Ok(());
        }
        // An empty CONTENT_* is not stored, so only a stored value proves a repeat.
        let tagged = Name::new(name);
        let found = self.names.find(&self.vars, tagged);
        match found.at {
            Some(at) if header => {
                let vars = &self.vars;
                let joined = self
                    .joined
                    .get_or_insert_default()
                    .0
                    .entry(at)
                    .or_insert_with(|| vars.value_at(at).to_vec());
                join_into(joined, value, name == b"HTTP_COOKIE");
                return Ok(());
            }
            Some(_) => return Err(CgiError::Repeated(quoted(name))),
            None => {}
        }
        if name == b"CONTENT_LENGTH" && !value.is_empty() && parse_decimal(value).is_none() {
            tracing::debug!(
                value = quoted(value),
                "CONTENT_LENGTH is not a decimal number; it counts as absent"
            );
            value = b"";
        }
        if Environ::accepts(name, value) {
            self.vars.push(tagged, value);
            self.names.added(&self.vars, found);
        }
        Ok(())
    }

    /// The `CONTENT_LENGTH` set so far, if any: SCGI frames its body with it.
    pub fn content_length(&self) -> Option<u64> {
        let at = self
            .names
            .find(&self.vars, Name::new(b"CONTENT_LENGTH"))
            .at?;
        parse_decimal(self.vars.value_at(at))
    }

    /// The environ, with `SCRIPT_NAME`, `PATH_INFO` and `QUERY_STRING` always set; or
    /// [`CgiError::AmbiguousPath`] for a path no routing can read as every front server does.
    pub fn finish(mut self, mode: PathMode) -> Result<Environ, CgiError> {
        let (vars, names) = (&mut self.vars, &self.names);
        // Found by the index: a scan of the environ would cost O(n) per name.
        let find = |name: &str| names.find(vars, Name::new(name.as_bytes())).at;
        let (uri, script, path_at, query, gateway) = (
            find("REQUEST_URI"),
            find("SCRIPT_NAME"),
            find("PATH_INFO"),
            find("QUERY_STRING"),
            find("GATEWAY_INTERFACE"),
        );
        let uri_path = uri.map(|at| uri_path(vars.value_at(at)));
        if let Some(why) = uri_path.and_then(crate::ambiguous_path) {
            return Err(CgiError::AmbiguousPath(why));
        }
        let routing = uri_path.map(|p| Bytes::from(routing_path(p).into_owned()));
        for (at, joined) in self.joined.take().into_iter().flat_map(|j| j.0) {
            vars.set_value_at(at, joined.into());
        }
        let script_name = script.map_or(&b""[..], |at| vars.value_at(at));
        if mode == PathMode::Resplit {
            let path_info = routing.unwrap_or_else(|| {
                let mut path = script_name.to_vec();
                path.extend_from_slice(path_at.map_or(&b""[..], |at| vars.value_at(at)));
                if has_dot_segment(&path) {
                    path = remove_dot_segments(&path);
                }
                Bytes::from(path)
            });
            vars.set(script, "SCRIPT_NAME", Bytes::new());
            vars.set(path_at, "PATH_INFO", path_info);
        } else {
            // Hosts normalise the PATH_INFO they derive (lighttpd merges `//`); the raw
            // REQUEST_URI, decoded once below the script's own path, is what the client asked
            // for, as direct HTTP gives it. A rewritten request keeps the host's value.
            let below = routing.and_then(|decoded| {
                let below = decoded.strip_prefix(script_name)?;
                (below.is_empty() || below.starts_with(b"/")).then(|| Bytes::copy_from_slice(below))
            });
            if script.is_none() {
                vars.set(None, "SCRIPT_NAME", Bytes::new());
            }
            match below {
                Some(path_info) => vars.set(path_at, "PATH_INFO", path_info),
                None if path_at.is_none() => vars.set(None, "PATH_INFO", Bytes::new()),
                None => {}
            }
        }
        if query.is_none() {
            vars.set(None, "QUERY_STRING", Bytes::new());
        }
        // RFC 3875 §4.1.4: the server must set it; nginx's scgi_params does not.
        if gateway.is_none() {
            vars.set(None, "GATEWAY_INTERFACE", Bytes::from_static(b"CGI/1.1"));
        }
        Ok(self.vars.into_environ(self.protocol))
    }
}

/// The path of a raw request target: without its query or fragment (nginx ends the path at a raw
/// `#` and passes REQUEST_URI on as sent), and without the scheme and authority of an
/// absolute-form target (`http://host/x`).
fn uri_path(uri: &[u8]) -> &[u8] {
    let path = uri
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or_default();
    if path.starts_with(b"/") {
        return path;
    }
    match path.windows(3).position(|w| w == b"://") {
        Some(at) => {
            let after = &path[at + 3..];
            after
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |slash| &after[slash..])
        }
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Result<CgiParams, CgiError> {
        let mut p = CgiParams::new(Protocol::Scgi);
        for (n, v) in pairs {
            p.push(n, v)?;
        }
        Ok(p)
    }

    #[test]
    fn a_bad_byte_is_found_at_every_place_of_every_length() {
        let naive = |name: &[u8]| name.iter().any(|&b| b == b'=' || b == 0);
        // The bytes around the two (a borrow or a flipped bit must not count) and high ones.
        let good = [b'<', b'>', 0x01, 0x7f, 0x80, 0xbd, 0xff, b'A'];
        for len in 0..=40 {
            for filler in good {
                let mut name = vec![filler; len];
                assert!(!has_bad_byte(&name), "{name:?}");
                for at in 0..len {
                    for bad in [b'=', 0] {
                        name[at] = bad;
                        assert!(has_bad_byte(&name), "{name:?}");
                        assert_eq!(has_bad_byte(&name), naive(&name));
                        name[at] = filler;
                    }
                }
            }
        }
    }

    #[test]
    fn nginx_fastcgi_params_resplit_like_http() {
        let env = params(&[
            ("SCRIPT_NAME", "/sub/environ/a b"),
            ("REQUEST_URI", "/sub/environ/a%20b/%2541?x=1"),
            ("QUERY_STRING", "x=1"),
            ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", ""),
            ("HTTP_COOKIE", "a=1"),
            ("HTTP_COOKIE", "b=2"),
        ])
        .unwrap()
        .finish(PathMode::Resplit)
        .unwrap();
        assert_eq!(env.script_name(), b"");
        assert_eq!(env.path_info(), b"/sub/environ/a b/%41");
        assert_eq!(env.content_type(), None);
        assert_eq!(env.get("HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
    }

    #[test]
    fn without_request_uri_the_host_split_is_joined() {
        let env = params(&[("SCRIPT_NAME", "/a"), ("PATH_INFO", "/b")])
            .unwrap()
            .finish(PathMode::Resplit)
            .unwrap();
        assert_eq!(
            (env.script_name(), env.path_info()),
            (&b""[..], &b"/a/b"[..])
        );
        assert_eq!(env.query_string(), b"");
    }

    #[test]
    fn cgi_keeps_the_host_split() {
        let env = params(&[
            ("SCRIPT_NAME", "/cgi-bin/app"),
            ("REQUEST_URI", "/cgi-bin/app/x"),
        ])
        .unwrap()
        .finish(PathMode::Keep)
        .unwrap();
        // REQUEST_URI is below SCRIPT_NAME: PATH_INFO is taken from it.
        assert_eq!(
            (env.script_name(), env.path_info()),
            (&b"/cgi-bin/app"[..], &b"/x"[..])
        );
        assert_eq!(env.get("GATEWAY_INTERFACE"), Some(&b"CGI/1.1"[..]));
    }

    #[test]
    fn the_path_is_the_one_the_front_server_decided_on() {
        for uri in [
            "/admin/../get",
            "/admin/%2e%2e/get",
            "/admin/.%2E/get",
            "http://example.com/admin/../get?x",
            "/get#/../admin/y",
        ] {
            let env = params(&[("SCRIPT_NAME", "/admin/../get"), ("REQUEST_URI", uri)])
                .unwrap()
                .finish(PathMode::Resplit)
                .unwrap();
            assert_eq!(env.path_info(), b"/get", "{uri}");
        }
        let env = params(&[("SCRIPT_NAME", "/admin"), ("PATH_INFO", "/../get")])
            .unwrap()
            .finish(PathMode::Resplit)
            .unwrap();
        assert_eq!(env.path_info(), b"/get");
        // Under CGI, the mounts apply below the script; what escapes it keeps the host's split.
        let env = params(&[
            ("SCRIPT_NAME", "/cgi-bin/app"),
            ("PATH_INFO", "/get"),
            ("REQUEST_URI", "/cgi-bin/app/admin/%2e%2e/get"),
        ])
        .unwrap()
        .finish(PathMode::Keep)
        .unwrap();
        assert_eq!(env.path_info(), b"/get");
    }

    #[test]
    fn an_encoded_slash_is_refused() {
        for uri in ["/admin%2f..%2fget", "/admin/..%2Fget", "/x%2fy?z"] {
            for mode in [PathMode::Resplit, PathMode::Keep] {
                let e = params(&[("REQUEST_URI", uri)]).unwrap().finish(mode);
                assert!(matches!(e, Err(CgiError::AmbiguousPath(_))), "{uri}");
            }
        }
        // In the query, or encoded twice, it is no slash of the path.
        for uri in ["/x?a=%2F", "/x/%252F"] {
            params(&[("REQUEST_URI", uri)])
                .unwrap()
                .finish(PathMode::Resplit)
                .unwrap();
        }
    }

    #[test]
    fn repeats_and_bad_names_are_refused() {
        let e = params(&[("CONTENT_LENGTH", "1"), ("CONTENT_LENGTH", "2")]).unwrap_err();
        assert_eq!(e, CgiError::Repeated("CONTENT_LENGTH".into()));
        params(&[("CONTENT_LENGTH", ""), ("CONTENT_LENGTH", "2")]).unwrap();
        assert!(matches!(params(&[("A=B", "1")]), Err(CgiError::BadName(_))));
        assert!(matches!(params(&[("", "1")]), Err(CgiError::BadName(_))));
        // A name of megabytes is quoted by its start.
        let long = format!("{}=", "N".repeat(1 << 20));
        let e = params(&[(&long, "1")]).unwrap_err();
        assert_eq!(e, CgiError::BadName("N".repeat(64)));
    }

    #[test]
    fn an_invalid_content_length_counts_as_absent() {
        for bad in [
            "-1",
            "+10",
            "abc",
            " 5",
            "5 ",
            "0x10",
            "1e3",
            "\u{0665}",
            "18446744073709551616",
            "99999999999999999999",
        ] {
            let p = params(&[("CONTENT_LENGTH", bad), ("HTTP_CONTENT_LENGTH", "5")]).unwrap();
            assert_eq!(p.content_length(), None, "{bad:?}");
            let env = p.finish(PathMode::Resplit).unwrap();
            assert_eq!(env.get("CONTENT_LENGTH"), None, "{bad:?}");
            assert_eq!(env.header("content-length"), None, "{bad:?}");
        }
        for (good, n) in [("0", 0), ("007", 7), ("18446744073709551615", u64::MAX)] {
            let p = params(&[("CONTENT_LENGTH", good)]).unwrap();
            assert_eq!(p.content_length(), Some(n));
            assert_eq!(
                p.finish(PathMode::Resplit).unwrap().content_length(),
                Some(n)
            );
        }
        // Absent, as an empty one is: a later valid one is the length.
        let p = params(&[("CONTENT_LENGTH", "-1"), ("CONTENT_LENGTH", "3")]).unwrap();
        assert_eq!(p.content_length(), Some(3));
    }

    #[test]
    fn a_hundred_thousand_names_build_the_same_environ() {
        const N: usize = 131_072;
        let mut p = CgiParams::new(Protocol::Scgi);
        p.push("HTTP_EARLY", "0").unwrap();
        p.push("REQUEST_URI", "/x?y").unwrap();
        for i in 0..N {
            p.push(format!("V{i:X}"), format!("{i}")).unwrap();
            p.push("HTTP_A", "x").unwrap();
            if i % 1000 == 0 {
                p.push("HTTP_COOKIE", format!("c{i}")).unwrap();
                p.push("HTTP_EARLY", format!("{i}")).unwrap();
            }
        }
        // Repeats are found among the names set before the index was built and after.
        for name in ["REQUEST_URI", "V0", "V1F", "V20", "V1FFFF"] {
            assert_eq!(p.push(name, "again"), Err(CgiError::Repeated(name.into())));
        }
        let env = p.finish(PathMode::Resplit).unwrap();
        // The pushed names, then SCRIPT_NAME, PATH_INFO, QUERY_STRING and GATEWAY_INTERFACE.
        assert_eq!(env.len(), N + 4 + 4);
        assert_eq!(env.get("V0"), Some(&b"0"[..]));
        assert_eq!(env.get("V1FFFF"), Some(&b"131071"[..]));
        assert_eq!(env.get("V20000"), None);
        assert_eq!(
            env.get("HTTP_A"),
            Some(vec![&b"x"[..]; N].join(&b", "[..]).as_slice())
        );
        let cookies: Vec<_> = (0..N).step_by(1000).map(|i| format!("c{i}")).collect();
        assert_eq!(
            env.get_str("HTTP_COOKIE"),
            Some(cookies.join("; ").as_str())
        );
        let early: Vec<_> = ["0".to_string()]
            .into_iter()
            .chain((0..N).step_by(1000).map(|i| i.to_string()))
            .collect();
        assert_eq!(env.get_str("HTTP_EARLY"), Some(early.join(", ").as_str()));
        assert_eq!(env.path_info(), b"/x");
        // Order is kept: the first variables are the first pushed.
        let names: Vec<_> = env.iter().take(4).map(|(n, _)| n.to_vec()).collect();
        assert_eq!(
            names,
            [&b"HTTP_EARLY"[..], b"REQUEST_URI", b"V0", b"HTTP_A"]
        );
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(&*routing_path(b"/a%2fb%zz%4"), b"/a/b%zz%4");
    }
}

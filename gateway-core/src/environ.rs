//! The CGI/WSGI meta-variables of one request.

use std::fmt;

use bytes::Bytes;

/// The gateway a request came through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Plain HTTP/1.1, served by gatewayd itself.
    #[default]
    Http,
    /// FastCGI, behind a web server.
    FastCgi,
    /// SCGI, behind a web server.
    Scgi,
    /// CGI: one process per request.
    Cgi,
    /// uwsgi (uWSGI's binary protocol), behind a web server.
    Uwsgi,
}

impl Protocol {
    /// The lower-case name used in configs and logs: `http`, `fastcgi`, `scgi`, `cgi`, `uwsgi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::FastCgi => "fastcgi",
            Protocol::Scgi => "scgi",
            Protocol::Cgi => "cgi",
            Protocol::Uwsgi => "uwsgi",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The meta-variables of one request, as a CGI server would set them (RFC 3875 §4.1).
///
/// Names and values are bytes: front servers may send values that are not UTF-8, and every
/// variable they send is kept, standard or not. Insertion order is kept too. The typed
/// accessors read the standard variables; [`Environ::get`] reads any.
///
/// Two normalisations happen on [`insert`](Environ::insert), so that every front-end agrees:
/// an empty `CONTENT_LENGTH` or `CONTENT_TYPE` counts as absent (nginx sends both empty on
/// GET), and `HTTP_CONTENT_TYPE` / `HTTP_CONTENT_LENGTH` are dropped (they live in
/// `CONTENT_TYPE` / `CONTENT_LENGTH`).
///
/// ```
/// use gateway_core::{Environ, Protocol};
///
/// let mut env = Environ::new(Protocol::Http);
/// env.insert("REQUEST_METHOD", "POST");
/// env.insert("CONTENT_LENGTH", "");
/// env.append_header("HTTP_COOKIE", "a=1");
/// env.append_header("HTTP_COOKIE", "b=2");
/// assert_eq!(env.method(), "POST");
/// assert_eq!(env.content_length(), None);
/// assert_eq!(env.header("cookie"), Some(&b"a=1; b=2"[..]));
/// ```
#[derive(Clone, Default)]
pub struct Environ {
    /// The text that [`Text::In`] names and values are ranges of: a front-end that copies a
    /// request's variables into one buffer makes one reference count for all of them, so that
    /// building and dropping the environ touch one counter rather than one per variable.
    text: Bytes,
    vars: Vec<(Text, Text)>,
    protocol: Protocol,
}

/// A name or a value of an environ built by [`Environ::from_text`]: a range of the
/// environ's text, or bytes of its own (static ones cost no reference count). Two variants keep
/// it as small as `Bytes`, 32 bytes.
#[derive(Clone, Debug)]
pub enum Text {
    /// The bytes `start..end` of the environ's text.
    In(u32, u32),
    /// Bytes of its own.
    Own(Bytes),
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::Own(Bytes::from_static(s.as_bytes()))
    }
}

impl Environ {
    /// An empty environ for a request that came through `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Environ::with_capacity(protocol, 32)
    }

    /// An empty environ with room for `n` variables: a builder that knows how many it sets
    /// allocates once, and a small environ stays within the allocator's per-thread cache.
    pub fn with_capacity(protocol: Protocol, n: usize) -> Self {
        Environ {
            text: Bytes::new(),
            vars: Vec::with_capacity(n),
            protocol,
        }
    }

    /// An environ whose [`Text::In`] names and values are ranges of `text`: a front-end that
    /// copies a request's variables into one buffer makes one reference count for all of them.
    /// The builder applies [`Environ::insert`]'s normalisations itself and sets each name
    /// once; a range outside `text` is read as empty.
    ///
    /// ```
    /// use gateway_core::{Environ, Protocol, Text};
    ///
    /// let text = bytes::Bytes::from_static(b"GET/x");
    /// let vars = vec![
    ///     (Text::from("REQUEST_METHOD"), Text::In(0, 3)),
    ///     (Text::from("PATH_INFO"), Text::In(3, 5)),
    /// ];
    /// let env = Environ::from_text(Protocol::Http, text, vars);
    /// assert_eq!((env.method(), env.path_info()), ("GET", &b"/x"[..]));
    /// ```
    pub fn from_text(protocol: Protocol, text: Bytes, vars: Vec<(Text, Text)>) -> Self {
        Environ {
            text,
            vars,
            protocol,
        }
    }

    /// The gateway this request came through.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The raw value of a variable.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name.as_bytes())
            .map(|i| self.bytes_of(&self.vars[i].1))
    }

    /// The value of a variable as shared bytes (no copy).
    pub fn get_bytes(&self, name: &str) -> Option<Bytes> {
        self.position(name.as_bytes())
            .map(|i| self.shared(&self.vars[i].1))
    }

    /// The value of a variable, if it is present and valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Sets a variable, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let (name, value) = (name.into(), value.into());
        if !Self::accepts(&name, &value) {
            if let Some(i) = self.position(&name) {
                self.vars.remove(i);
            }
            return;
        }
        match self.position(&name) {
            Some(i) => self.vars[i].1 = Text::Own(value),
            None => self.vars.push((Text::Own(name), Text::Own(value))),
        }
    }

    /// Adds a value to an `HTTP_*` variable, joining a repeated header the way HTTP does:
    /// with `, `, or with `; ` for `HTTP_COOKIE` (RFC 9110 §5.3, RFC 6265 §5.4).
    pub fn append_header(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let (name, value) = (name.into(), value.into());
        if !Self::accepts(&name, &value) {
            return;
        }
        let Some(i) = self.position(&name) else {
            self.vars.push((Text::Own(name), Text::Own(value)));
            return;
        };
        let old = self.bytes_of(&self.vars[i].1);
        let joined = join_values(old, &value, &name[..] == b"HTTP_COOKIE");
        self.vars[i].1 = Text::Own(joined.into());
    }

    /// Removes a variable and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Bytes> {
        let i = self.position(name.as_bytes())?;
        let (_, value) = self.vars.remove(i);
        Some(self.shared(&value))
    }

    /// Every variable, in the order the front-end set them.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars
            .iter()
            .map(|(n, v)| (self.bytes_of(n), self.bytes_of(v)))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// `REQUEST_METHOD`, or `""` when it is missing or not UTF-8.
    pub fn method(&self) -> &str {
        self.get_str("REQUEST_METHOD").unwrap_or("")
    }

    /// `SCRIPT_NAME`: the mount prefix, `""` at the root.
    pub fn script_name(&self) -> &[u8] {
        self.get("SCRIPT_NAME").unwrap_or_default()
    }

    /// `PATH_INFO`: the percent-decoded path below the mount.
    pub fn path_info(&self) -> &[u8] {
        self.get("PATH_INFO").unwrap_or_default()
    }

    /// `QUERY_STRING`, raw (still percent-encoded); `""` when there is none.
    pub fn query_string(&self) -> &[u8] {
        self.get("QUERY_STRING").unwrap_or_default()
    }

    /// `REQUEST_URI`, raw as the client sent it, when the front-end provides it.
    pub fn request_uri(&self) -> Option<&[u8]> {
        self.get("REQUEST_URI")
    }

    /// `CONTENT_TYPE`, absent when empty.
    pub fn content_type(&self) -> Option<&[u8]> {
        self.get("CONTENT_TYPE")
    }

    /// `CONTENT_LENGTH` as a number; `None` when absent or not a decimal number.
    pub fn content_length(&self) -> Option<u64> {
        parse_decimal(self.get("CONTENT_LENGTH")?)
    }

    /// `SERVER_NAME`.
    pub fn server_name(&self) -> &[u8] {
        self.get("SERVER_NAME").unwrap_or_default()
    }

    /// `SERVER_PORT` as a number.
    pub fn server_port(&self) -> Option<u16> {
        parse_decimal(self.get("SERVER_PORT")?).and_then(|p| u16::try_from(p).ok())
    }

    /// `SERVER_PROTOCOL`, e.g. `HTTP/1.1`.
    pub fn server_protocol(&self) -> &[u8] {
        self.get("SERVER_PROTOCOL").unwrap_or_default()
    }

    /// `REMOTE_ADDR`; `""` on a unix socket.
    pub fn remote_addr(&self) -> &[u8] {
        self.get("REMOTE_ADDR").unwrap_or_default()
    }

    /// `REMOTE_PORT` as a number.
    pub fn remote_port(&self) -> Option<u16> {
        parse_decimal(self.get("REMOTE_PORT")?).and_then(|p| u16::try_from(p).ok())
    }

    /// Whether the client spoke TLS to the front server: `HTTPS` is `on` or `1`
    /// (case-insensitive), or `REQUEST_SCHEME` is `https`.
    pub fn https(&self) -> bool {
        let on = |v: &[u8]| v.eq_ignore_ascii_case(b"on") || v == b"1";
        self.get("HTTPS").is_some_and(on)
            || self
                .get("REQUEST_SCHEME")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"https"))
    }

    /// `https` or `http`, as WSGI's `wsgi.url_scheme`.
    pub fn url_scheme(&self) -> &'static str {
        if self.https() { "https" } else { "http" }
    }

    /// A request header by its HTTP name (any case): `CONTENT_TYPE` and `CONTENT_LENGTH` for
    /// those two, `HTTP_*` for the rest.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type();
        }
        if name.eq_ignore_ascii_case("content-length") {
            return self.get("CONTENT_LENGTH");
        }
        self.iter()
            .find(|(n, _)| {
                n.strip_prefix(b"HTTP_")
                    .is_some_and(|s| var_is_header(s, name))
            })
            .map(|(_, v)| v)
    }

    /// The request headers: `Content-Type`, `Content-Length` and every `HTTP_*` variable, named
    /// back in lower case with `-` (`HTTP_USER_AGENT` is `user-agent`).
    pub fn headers(&self) -> impl Iterator<Item = (String, &[u8])> {
        self.iter().filter_map(|(n, v)| {
            let suffix = match n {
                b"CONTENT_TYPE" | b"CONTENT_LENGTH" => n,
                n => n.strip_prefix(b"HTTP_")?,
            };
            let name = suffix
                .iter()
                .map(|&b| match b {
                    b'_' => '-',
                    b => b.to_ascii_lowercase() as char,
                })
                .collect();
            Some((name, v))
        })
    }

    #[inline]
    fn position(&self, name: &[u8]) -> Option<usize> {
        // Lengths first: most names differ in length, and a range's length needs no slicing.
        self.vars.iter().position(|(n, _)| {
            let len = match n {
                Text::In(start, end) => end.wrapping_sub(*start) as usize,
                Text::Own(b) => b.len(),
            };
            len == name.len() && same_name(self.bytes_of(n), name)
        })
    }

    /// The bytes of a name or value of this environ.
    #[inline]
    fn bytes_of<'a>(&'a self, text: &'a Text) -> &'a [u8] {
        match text {
            Text::In(start, end) => self
                .text
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
            Text::Own(b) => b,
        }
    }

    /// A name or value of this environ as shared bytes.
    fn shared(&self, text: &Text) -> Bytes {
        match text {
            Text::In(start, end) => match *start <= *end && *end as usize <= self.text.len() {
                true => self.text.slice(*start as usize..*end as usize),
                false => Bytes::new(),
            },
            Text::Own(b) => b.clone(),
        }
    }

    /// The normalisations every front-end shares; see the type's docs.
    pub(crate) fn accepts(name: &[u8], value: &[u8]) -> bool {
        match name {
            b"CONTENT_LENGTH" | b"CONTENT_TYPE" => !value.is_empty(),
            b"HTTP_CONTENT_LENGTH" | b"HTTP_CONTENT_TYPE" => false,
            _ => true,
        }
    }
}

impl fmt::Debug for Environ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (n, v) in self.iter() {
            map.entry(&String::from_utf8_lossy(n), &String::from_utf8_lossy(v));
        }
        map.finish()
    }
}

/// A repeated header's values as one, the way HTTP joins them: with `, `, or with `; ` for
/// Cookie (RFC 9110 §5.3, RFC 6265 §5.4).
pub fn join_values(old: &[u8], value: &[u8], cookie: bool) -> Vec<u8> {
    let mut joined = Vec::with_capacity(old.len() + 2 + value.len());
    joined.extend_from_slice(old);
    join_into(&mut joined, value, cookie);
    joined
}

/// Appends one more value of a repeated header to the values joined so far in `joined`: in
/// place, so that joining n values costs their length, not n times it.
pub(crate) fn join_into(joined: &mut Vec<u8>, value: &[u8], cookie: bool) {
    joined.extend_from_slice(if cookie { b"; " } else { b", " });
    joined.extend_from_slice(value);
}

/// `a == b` for names, which are short: compared in two words, where a call to `memcmp` costs
/// more than the comparison.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        (Some(a0), Some(b0)) if a.len() <= 16 => {
            a0 == b0 && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        _ => a == b,
    }
}

/// Whether an `HTTP_*` suffix such as `USER_AGENT` names the header `user-agent`.
fn var_is_header(suffix: &[u8], header: &str) -> bool {
    suffix.len() == header.len()
        && suffix.iter().zip(header.bytes()).all(|(&s, h)| match h {
            b'-' => s == b'_',
            h => s == h.to_ascii_uppercase(),
        })
}

/// A non-empty run of ASCII digits, without overflow: the one reading of a decimal length or
/// port in the workspace (no sign, no space, no `+`, as HTTP and CGI write them).
///
/// ```
/// assert_eq!(gateway_core::parse_decimal(b"0042"), Some(42));
/// assert_eq!(gateway_core::parse_decimal(b"+5"), None);
/// assert_eq!(gateway_core::parse_decimal(b"99999999999999999999"), None);
/// ```
pub fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_is_as_small_as_two_bytes() {
        // One more variant would make each variable 80 bytes, and a wrk request's environ
        // larger than glibc's per-thread cache takes.
        assert_eq!(size_of::<(Text, Text)>(), 2 * size_of::<Bytes>());
    }

    #[test]
    fn names_compare_whole() {
        for (a, b) in [
            ("PATH_INFO", "PATH_INFO"),
            ("PATH_INFO", "PATH_INFX"),
            ("XATH_INFO", "PATH_INFO"),
            ("SCRIPT_NAME", "SERVER_NAME"),
            ("GATEWAY_INTERFACE", "GATEWAY_INTERFACF"),
            ("HTTPS", "HTTPX"),
            ("SERVER_SOFTWARE", "SERVER_SOFTWARE"),
            ("A", "AB"),
        ] {
            assert_eq!(same_name(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
        }
    }

    #[test]
    fn empty_content_vars_are_absent() {
        let mut env = Environ::new(Protocol::FastCgi);
        env.insert("CONTENT_TYPE", "");
        env.insert("CONTENT_LENGTH", "");
        assert_eq!(env.content_type(), None);
        assert_eq!(env.content_length(), None);
        assert!(env.is_empty());
        env.insert("CONTENT_LENGTH", "12");
        env.insert("CONTENT_LENGTH", "");
        assert_eq!(env.get("CONTENT_LENGTH"), None);
    }

    #[test]
    fn http_content_vars_are_dropped() {
        let mut env = Environ::new(Protocol::Http);
        env.insert("HTTP_CONTENT_TYPE", "text/plain");
        env.append_header("HTTP_CONTENT_LENGTH", "3");
        assert!(env.is_empty());
    }

    #[test]
    fn extras_are_kept_in_order_and_bytes() {
        let mut env = Environ::new(Protocol::FastCgi);
        env.insert("DOCUMENT_ROOT", "/srv");
        env.insert("REMOTE_USER", &b"\xffbob"[..]);
        let names: Vec<_> = env.iter().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names, [b"DOCUMENT_ROOT".to_vec(), b"REMOTE_USER".to_vec()]);
        assert_eq!(env.get("REMOTE_USER"), Some(&b"\xffbob"[..]));
        assert_eq!(env.get_str("REMOTE_USER"), None);
    }

    #[test]
    fn repeated_headers_join() {
        let mut env = Environ::new(Protocol::Http);
        env.append_header("HTTP_ACCEPT", "a");
        env.append_header("HTTP_ACCEPT", "b");
        env.append_header("HTTP_COOKIE", "x=1");
        env.append_header("HTTP_COOKIE", "y=2");
        assert_eq!(env.get("HTTP_ACCEPT"), Some(&b"a, b"[..]));
        assert_eq!(env.get("HTTP_COOKIE"), Some(&b"x=1; y=2"[..]));
    }

    #[test]
    fn typed_accessors() {
        let mut env = Environ::new(Protocol::Http);
        env.insert("SERVER_PORT", "8080");
        env.insert("REMOTE_PORT", "99999");
        env.insert("CONTENT_LENGTH", "18446744073709551616");
        env.insert("HTTPS", "ON");
        env.insert("CONTENT_TYPE", "text/plain");
        env.insert("HTTP_X_FORWARDED_FOR", "1.2.3.4");
        assert_eq!(env.server_port(), Some(8080));
        assert_eq!(env.remote_port(), None);
        assert_eq!(env.content_length(), None);
        assert_eq!(env.url_scheme(), "https");
        assert_eq!(env.header("X-Forwarded-For"), Some(&b"1.2.3.4"[..]));
        assert_eq!(env.header("Content-Type"), Some(&b"text/plain"[..]));
        let headers: Vec<_> = env.headers().map(|(n, _)| n).collect();
        assert_eq!(
            headers,
            ["content-length", "content-type", "x-forwarded-for"]
        );
        assert_eq!(env.method(), "");
        assert_eq!(env.script_name(), b"");
    }

    #[test]
    fn scheme_from_request_scheme() {
        let mut env = Environ::new(Protocol::FastCgi);
        assert_eq!(env.url_scheme(), "http");
        env.insert("REQUEST_SCHEME", "https");
        assert!(env.https());
    }
}

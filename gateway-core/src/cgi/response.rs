//! The CGI-format response (RFC 3875 §6), sans-IO: the head, then the body's bytes in order.
//! Every CGI-family front-end sends it the same way and adds only its framing (FastCGI's STDOUT
//! records) and its IO.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Body, Response};

/// The largest body of known length that goes out with the head, in one buffer and one write.
/// A larger one is streamed: gathering it would hold it all in memory, and the write it saves
/// is nothing next to its size.
pub(crate) const COALESCE_MAX: u64 = 64 << 10;

/// One response on its way out: it turns the app's [`Response`] into the bytes to send, in
/// order, and decides when they may go. The front-end pulls the body and does the IO:
///
/// ```text
/// let (mut w, mut body) = ResponseWriter::new(res, head_only);
/// loop {
///     while let Some(bytes) = w.poll_write() { send(bytes) }   // or poll_transmit + framing
///     if w.is_done() { break }                                  // then end the response
///     flush();                                                  // before waiting on the app
///     match body.chunk().await? { Some(c) => w.push(c), None => w.end() }
/// }
/// ```
///
/// The head goes out at once, so a client sees a streamed response start. A body whose length
/// is known and at most [`COALESCE_MAX`] is held until it ends and goes out with the head, so
/// a small answer costs one write. A HEAD request gets the head alone. Body chunks are handed
/// back as they came: the writer never copies one, but to join a small body to its head.
///
/// ```
/// use bytes::Bytes;
/// use gateway_core::{Response, ResponseWriter};
///
/// let res = Response::text(200, "hello");
/// let (mut w, _body) = ResponseWriter::new(res, false);
/// assert_eq!(w.poll_write(), None); // held: the body is small and of known length
/// w.push(Bytes::from("hello"));
/// w.end();
/// let out = w.poll_write().unwrap();
/// assert!(out.starts_with(b"Status: 200 OK\r\n") && out.ends_with(b"\r\n\r\nhello"));
/// assert!(w.is_done());
/// ```
#[derive(Debug)]
pub struct ResponseWriter {
    /// The head, until it is handed out.
    head: Option<BytesMut>,
    /// The oldest body chunk not handed out yet: most bodies are one chunk, and a queue
    /// would allocate for it.
    first: Option<Bytes>,
    /// The body chunks after `first`, in order.
    more: VecDeque<Bytes>,
    /// Whether the body is held back to go out with the head.
    holding: bool,
    /// Body bytes still to come while holding, as the body's length says.
    left: u64,
    /// Whether the body has ended.
    ended: bool,
}

impl ResponseWriter {
    /// The writer of `res`, and the body to read and [`push`](Self::push): empty (and never to
    /// read) for a HEAD request or a body known to be empty. A head that cannot be written is
    /// answered 500 or 502 instead (see [`write_head_or_500`]).
    pub fn new(res: Response, head_only: bool) -> (Self, Body) {
        ResponseWriter::with_style(res, head_only, HeadStyle::Cgi)
    }

    /// [`new`](Self::new), with the head's first line in `style`: uwsgi answers with an HTTP
    /// status line, as its peers expect.
    pub fn with_style(res: Response, head_only: bool, style: HeadStyle) -> (Self, Body) {
        let mut head = BytesMut::with_capacity(256);
        let body = write_head_or_500(res, &mut head, style);
        let len = if head_only { Some(0) } else { body.exact_len() };
        let mut w = ResponseWriter {
            head: Some(head),
            first: None,
            more: VecDeque::new(),
            holding: len.is_some_and(|n| n <= COALESCE_MAX),
            left: len.unwrap_or(0),
            ended: false,
        };
        if len == Some(0) {
            w.end();
            return (w, Body::empty());
        }
        (w, body)
    }

    /// The next chunk of the body. A held body ends with its last byte: its length is known,
    /// and the front-end need not wait on it again.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() || self.ended {
            return;
        }
        if self.holding {
            match self.left.checked_sub(chunk.len() as u64) {
                Some(0) => self.end(),
                Some(left) => self.left = left,
                // Longer than it said: streamed from here, so what is held stays bounded.
                None => self.holding = false,
            }
        }
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(chunk);
        } else {
            self.more.push_back(chunk);
        }
    }

    /// The oldest chunk not handed out yet.
    fn pop(&mut self) -> Option<Bytes> {
        self.first.take().or_else(|| self.more.pop_front())
    }

    /// The body has ended.
    pub fn end(&mut self) {
        self.ended = true;
        self.holding = false;
    }

    /// The next piece to send (the head, then each body chunk as it came), or `None` when
    /// nothing may go yet: for a front-end that frames each piece, as FastCGI does. Pieces
    /// handed out between two waits on the body belong in one write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.holding {
            return None;
        }
        match self.head.take() {
            Some(head) => Some(head.freeze()),
            None => self.pop(),
        }
    }

    /// Everything that may go now, as one buffer: for a front-end that sends the bytes as
    /// they are (SCGI, CGI). A streamed chunk comes back as it came; a small body is copied
    /// once, after its head.
    pub fn poll_write(&mut self) -> Option<Bytes> {
        if self.holding {
            return None;
        }
        let Some(mut head) = self.head.take() else {
            return self.pop();
        };
        let len = self.first.as_ref().map_or(0, Bytes::len);
        head.reserve(len + self.more.iter().map(Bytes::len).sum::<usize>());
        while let Some(chunk) = self.pop() {
            head.put_slice(&chunk);
        }
        Some(head.freeze())
    }

    /// Whether the whole response has been handed out: the front-end ends it now.
    pub fn is_done(&self) -> bool {
        self.ended && self.head.is_none() && self.first.is_none() && self.more.is_empty()
    }
}

/// A response head that cannot be written: the front-end answers 500 instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid response head: {0}")]
pub struct InvalidHead(pub String);

/// Writes the CGI response head (RFC 3875 §6): `Status: 200 OK`, the header fields in order (a
/// repeated name stays repeated), and the blank line. A `Location` field goes first, before
/// `Status`: HAProxy 2.6 (Debian 12's) turns any response whose `Location` follows `Status`
/// into a 302, which would make a 307 or 308 a 302. Transport headers (`Transfer-Encoding`,
/// `Connection`, `Keep-Alive`) are the front server's business and are left out. A status that
/// is not a final one (200..=599: a 1xx would leave the client waiting for the real answer),
/// a header name that is not a token, or a value with CR, LF or NUL is refused, so that
/// nothing the app returns can inject a header or a response.
///
/// ```
/// use gateway_core::{Response, write_response_head};
///
/// let mut out = bytes::BytesMut::new();
/// let res = Response::new(404).with_header("Content-Type", "text/plain");
/// write_response_head(&res, &mut out).unwrap();
/// assert_eq!(&out[..], b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n");
/// assert!(write_response_head(&Response::new(101), &mut out).is_err());
/// ```
pub fn write_response_head(res: &Response, out: &mut BytesMut) -> Result<(), InvalidHead> {
    write_response_head_as(res, out, HeadStyle::Cgi)
}

/// How a response head states its status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadStyle {
    /// A CGI `Status: 200 OK` field (RFC 3875 §6.3.3), after any `Location`: FastCGI, SCGI
    /// and CGI.
    #[default]
    Cgi,
    /// An HTTP status line first (`HTTP/1.1 200 OK`), then the fields in the app's order:
    /// uwsgi, whose peers all read it (nginx reads either; Apache mod_proxy_uwsgi answers
    /// anything else with 502).
    StatusLine,
}

/// [`write_response_head`] in `style`.
pub(crate) fn write_response_head_as(
    res: &Response,
    out: &mut BytesMut,
    style: HeadStyle,
) -> Result<(), InvalidHead> {
    if !is_final_status(res.status) {
        return Err(InvalidHead(format!(
            "status {} is not a final status",
            res.status
        )));
    }
    let reason = http::StatusCode::from_u16(res.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let start = out.len();
    out.reserve(
        32 + res
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>(),
    );
    let cgi = style == HeadStyle::Cgi;
    let is_location = |name: &[u8]| cgi && name.eq_ignore_ascii_case(b"location");
    for (name, value) in res.headers.iter().filter(|(n, _)| is_location(n)) {
        put_field(out, name, value);
    }
    out.put_slice(match style {
        HeadStyle::Cgi => b"Status: ",
        HeadStyle::StatusLine => b"HTTP/1.1 ",
    });
    out.put_slice(itoa3(res.status).as_slice());
    out.put_u8(b' ');
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in &res.headers {
        let valid = crate::response::is_token(name)
            && !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | b'\0'));
        if !valid {
            out.truncate(start);
            return Err(InvalidHead(format!(
                "header {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        if is_transport_header(name) || is_location(name) {
            continue;
        }
        put_field(out, name, value);
    }
    out.put_slice(b"\r\n");
    Ok(())
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Whether `status` may end a request: 200..=599. A 1xx is interim (the client goes on
/// waiting, or, for 101, switches protocols), and anything else is not HTTP.
pub fn is_final_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// Writes `res`'s head in `style` into `out` and hands back the body to send after it. A head
/// that cannot be written (see [`write_response_head`]) is logged and answered instead, as
/// every CGI-family front-end answers it: 502 for a status that is not final (the app is the
/// gateway's upstream, and its answer is not one), 500 for a broken header.
pub(crate) fn write_head_or_500(
    res: Response,
    out: &mut BytesMut,
    style: HeadStyle,
) -> crate::Body {
    match write_response_head_as(&res, out, style) {
        Ok(()) => res.body,
        Err(e) => {
            let status = if is_final_status(res.status) {
                500
            } else {
                502
            };
            tracing::error!(error = %e, "the app's response cannot be sent; answering {status}");
            let res = Response::error(status);
            let _ = write_response_head_as(&res, out, style);
            res.body
        }
    }
}

fn is_transport_header(name: &[u8]) -> bool {
    [&b"transfer-encoding"[..], b"connection", b"keep-alive"]
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t))
}

fn itoa3(n: u16) -> [u8; 3] {
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces `w` hands out now.
    fn transmit(w: &mut ResponseWriter) -> Vec<Bytes> {
        std::iter::from_fn(|| w.poll_transmit()).collect()
    }

    #[test]
    fn response_head() {
        let res = Response::new(599)
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2")
            .with_header("Transfer-Encoding", "chunked");
        let mut out = BytesMut::new();
        write_response_head(&res, &mut out).unwrap();
        assert_eq!(
            &out[..],
            b"Status: 599 Unknown\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
        );
        let mut out = BytesMut::from(&b"keep"[..]);
        let bad = Response::new(200).with_header("X", "a\r\nInjected: 1");
        assert!(write_response_head(&bad, &mut out).is_err());
        assert_eq!(&out[..], b"keep");
        for status in [0, 100, 101, 103, 199, 600, 1000] {
            assert!(write_response_head(&Response::new(status), &mut out).is_err());
        }
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn status_follows_location_so_haproxy_keeps_a_307() {
        let mut out = BytesMut::new();
        let res = Response::new(307)
            .with_header("Content-Type", "text/plain")
            .with_header("Location", "/x");
        write_response_head(&res, &mut out).unwrap();
        assert_eq!(
            &out[..],
            &b"Location: /x\r\nStatus: 307 Temporary Redirect\r\nContent-Type: text/plain\r\n\r\n"
                [..]
        );
    }

    #[test]
    fn a_status_line_comes_first_and_location_keeps_its_place() {
        let mut out = BytesMut::new();
        let res = Response::new(404)
            .with_header("Content-Type", "text/plain")
            .with_header("Location", "/x")
            .with_header("Connection", "close");
        write_response_head_as(&res, &mut out, HeadStyle::StatusLine).unwrap();
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nLocation: /x\r\n\r\n"[..]
        );
        let mut out = BytesMut::new();
        write_head_or_500(Response::new(100), &mut out, HeadStyle::StatusLine);
        assert!(out.starts_with(b"HTTP/1.1 502 Bad Gateway\r\n"), "{out:?}");
        let (mut w, _) =
            ResponseWriter::with_style(Response::new(204), false, HeadStyle::StatusLine);
        assert_eq!(
            w.poll_write().as_deref(),
            Some(&b"HTTP/1.1 204 No Content\r\n\r\n"[..])
        );
    }

    #[test]
    fn an_interim_status_is_a_502() {
        let mut out = BytesMut::new();
        write_head_or_500(Response::new(100), &mut out, HeadStyle::Cgi);
        assert!(out.starts_with(b"Status: 502 Bad Gateway\r\n"), "{out:?}");
    }

    #[test]
    fn a_small_body_goes_out_with_its_head() {
        let (mut w, body) = ResponseWriter::new(Response::text(200, "hello"), false);
        assert_eq!(body.exact_len(), Some(5));
        assert!(transmit(&mut w).is_empty());
        w.push(Bytes::from_static(b"hel"));
        assert_eq!(w.poll_write(), None);
        assert!(!w.is_done());
        // Its last byte ends it: no need to wait on the body again.
        w.push(Bytes::from_static(b"lo"));
        assert_eq!(
            w.poll_write().unwrap(),
            &b"Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello"[..]
        );
        assert_eq!(w.poll_write(), None);
        assert!(w.is_done());
    }

    #[test]
    fn framed_pieces_keep_the_chunks_uncopied() {
        let (mut w, _body) = ResponseWriter::new(Response::text(200, "hello"), false);
        let chunk = Bytes::from_static(b"hello");
        w.push(chunk.clone());
        w.end();
        let pieces = transmit(&mut w);
        assert_eq!(pieces.len(), 2);
        assert!(pieces[0].starts_with(b"Status: 200 OK\r\n"));
        // The very same memory: no copy.
        assert_eq!(pieces[1].as_ptr(), chunk.as_ptr());
        assert!(w.is_done());
    }

    #[test]
    fn a_streamed_body_goes_out_chunk_by_chunk() {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>("a")]);
        let res = Response::new(200).with_body(Body::from_stream(stream));
        let (mut w, body) = ResponseWriter::new(res, false);
        assert_eq!(body.exact_len(), None);
        // The head goes at once, before the app's first chunk.
        assert_eq!(w.poll_write().unwrap(), &b"Status: 200 OK\r\n\r\n"[..]);
        assert_eq!(w.poll_write(), None);
        let chunk = Bytes::from(vec![7u8; 10]);
        w.push(chunk.clone());
        w.push(Bytes::new());
        let out = w.poll_write().unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert!(!w.is_done());
        w.end();
        assert_eq!(w.poll_write(), None);
        assert!(w.is_done());
    }

    #[test]
    fn a_large_body_of_known_length_is_streamed() {
        let big = Bytes::from(vec![b'x'; COALESCE_MAX as usize + 1]);
        let (mut w, body) = ResponseWriter::new(Response::new(200).with_body(big.clone()), false);
        assert_eq!(body.exact_len(), Some(big.len() as u64));
        assert!(w.poll_write().unwrap().starts_with(b"Status: 200 OK"));
        w.push(big.clone());
        assert_eq!(w.poll_write().unwrap().as_ptr(), big.as_ptr());
    }

    #[test]
    fn a_body_longer_than_it_said_is_streamed_from_there() {
        let (mut w, _body) = ResponseWriter::new(Response::text(200, "hi"), false);
        w.push(Bytes::from_static(b"h"));
        assert!(w.poll_transmit().is_none());
        // Over its length: held no more (what is held is never over COALESCE_MAX), all of it
        // goes, in order.
        w.push(Bytes::from(vec![b'x'; 1000]));
        let pieces = transmit(&mut w);
        assert_eq!(
            pieces.iter().map(Bytes::len).skip(1).collect::<Vec<_>>(),
            [1, 1000]
        );
        assert!(!w.is_done());
        w.end();
        assert!(w.is_done());
    }

    #[test]
    fn head_gets_the_head_alone() {
        let (mut w, mut body) = ResponseWriter::new(Response::text(200, "hello"), true);
        assert_eq!(body.exact_len(), Some(0));
        assert!(!w.is_done());
        assert!(w.poll_write().unwrap().ends_with(b"\r\n\r\n"));
        assert!(w.is_done());
        // Nothing the driver would push after it counts.
        w.push(Bytes::from_static(b"x"));
        assert!(w.poll_write().is_none());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(body.chunk()).unwrap().is_none());
    }

    #[test]
    fn an_empty_body_is_done_after_the_head() {
        let (mut w, _body) = ResponseWriter::new(Response::new(204), false);
        assert_eq!(
            w.poll_write().unwrap(),
            &b"Status: 204 No Content\r\n\r\n"[..]
        );
        assert!(w.is_done());
    }

    #[test]
    fn a_broken_head_is_a_500_page() {
        let res = Response::new(200)
            .with_header("X", "a\nb")
            .with_body("secret");
        let (mut w, body) = ResponseWriter::new(res, false);
        // The error page's body, not the app's.
        assert_eq!(body.exact_len(), Some(26));
        assert!(w.poll_write().is_none());
        w.push(Bytes::from_static(b"500 Internal Server Error\n"));
        w.end();
        let out = w.poll_write().unwrap();
        assert!(out.starts_with(b"Status: 500 Internal Server Error\r\n"));
        assert!(out.ends_with(b"\r\n\r\n500 Internal Server Error\n"));
    }

    #[test]
    fn a_status_line_head() {
        let mut out = BytesMut::new();
        let res = Response::new(307).with_header("Location", "/x");
        write_response_head_as(&res, &mut out, HeadStyle::StatusLine).unwrap();
        assert_eq!(
            &out[..],
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /x\r\n\r\n"
        );
    }
}

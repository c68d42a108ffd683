//! What hyper's parser resolves silently: a repeated Content-Length with equal values (kept
//! once) and a Content-Length beside Transfer-Encoding (dropped). Both are RFC-sanctioned, yet a
//! front proxy may frame the same bytes differently (request smuggling), so gatewayd refuses
//! them. hyper's parsed head no longer shows them: this reader watches the raw heads as hyper
//! reads them, following each body's framing to find the next head, and records which request
//! on the connection was suspicious.
//!
//! The watch follows every framing hyper's parser accepts, byte for byte as hyper's chunked
//! decoder does, and keeps no line of a body: a chunk extension or a trailer of any length
//! costs it nothing. What it cannot follow is what hyper refuses too (a malformed chunk line,
//! a head over the size cap); it then refuses the request it was watching for, in case.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::chunked::{Chunked, Step};

/// No suspicious request (yet).
const NONE: usize = usize::MAX;

/// Which request of a connection (0 for the first) had an ambiguous head, shared between the
/// reader and the service.
#[derive(Clone, Debug)]
pub struct Verdict(Arc<AtomicUsize>);

impl Verdict {
    /// Whether request number `index` of this connection must be refused.
    pub fn refuses(&self, index: usize) -> bool {
        self.0.load(Ordering::Acquire) == index
    }
}

enum State {
    /// Reading a head: the bytes so far (none yet: empty lines before it are skipped, as
    /// hyper's parser skips them).
    Head(Vec<u8>),
    /// Before a head, a CR: its LF must come.
    LeadingCr,
    /// Skipping a body of known length.
    Body(u64),
    /// Following a chunked body.
    Chunked(Chunked),
    /// Found one, or lost track: hyper decides the rest.
    Off,
}

/// An IO whose reads are watched for ambiguous request heads.
pub struct Sniffed<IO> {
    io: IO,
    state: State,
    index: usize,
    max_head: usize,
    verdict: Verdict,
}

impl<IO> Sniffed<IO> {
    /// Watches `io`; heads longer than `max_head` are left to hyper (which refuses them).
    pub fn new(io: IO, max_head: usize) -> (Self, Verdict) {
        let verdict = Verdict(Arc::new(AtomicUsize::new(NONE)));
        let sniffed = Sniffed {
            io,
            state: State::Head(Vec::new()),
            index: 0,
            max_head,
            verdict: verdict.clone(),
        };
        (sniffed, verdict)
    }

    /// Whether the connection is between requests or inside a request head: what the head
    /// timeout covers. So is a connection whose watch is off: its next request is refused,
    /// and it must not wait for one without a limit.
    pub fn awaits_head(&self) -> bool {
        matches!(self.state, State::Head(_) | State::LeadingCr | State::Off)
    }

    /// How many request heads have come in full.
    pub fn heads(&self) -> usize {
        self.index
    }

    /// Whether the next byte would begin a head: between two requests, past any empty lines.
    /// For the differential fuzz target, which tells the heads apart by where they begin.
    pub fn at_head_start(&self) -> bool {
        matches!(&self.state, State::Head(head) if head.is_empty())
    }

    /// Stops watching, refusing the request at hand: the head being read, or the one after
    /// the body being read. Where hyper read on, the watch could not say what came next.
    fn lose_track(&mut self) {
        self.verdict.0.store(self.index, Ordering::Release);
        self.state = State::Off;
    }

    /// Follows the connection's next bytes.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::LeadingCr => match data[0] {
                    b'\n' => {
                        data = &data[1..];
                        self.state = State::Head(Vec::new());
                    }
                    _ => return self.lose_track(),
                },
                State::Head(head) if head.is_empty() && matches!(data[0], b'\r' | b'\n') => {
                    // Empty lines before a head: hyper's parser skips them (a CR must be
                    // followed by its LF).
                    match data {
                        [b'\n', rest @ ..] | [b'\r', b'\n', rest @ ..] => data = rest,
                        [b'\r'] => {
                            self.state = State::LeadingCr;
                            return;
                        }
                        _ => return self.lose_track(),
                    }
                }
                State::Head(head) => {
                    // A head that came in one read (the usual case) is judged where it lies;
                    // only one split across reads is put together first.
                    let found = match head.is_empty() {
                        true => whole_head(data).map(|(end, framed)| (end, end, framed)),
                        false => find_head_end(head, data).map(|end| {
                            head.extend_from_slice(&data[..end]);
                            (end, head.len(), framing(&std::mem::take(head)))
                        }),
                    };
                    let Some((end, len, framed)) = found else {
                        head.extend_from_slice(data);
                        if head.len() > self.max_head {
                            self.lose_track();
                        }
                        return;
                    };
                    // Over the cap however it came: what the watch sees cannot hang on how
                    // the head was cut into reads.
                    if len > self.max_head {
                        return self.lose_track();
                    }
                    data = &data[end..];
                    self.state = match framed {
                        Framing::Suspicious => {
                            self.lose_track();
                            return;
                        }
                        Framing::Length(0) | Framing::None => State::Head(Vec::new()),
                        Framing::Length(n) => State::Body(n),
                        Framing::Chunked => State::Chunked(Chunked::Start),
                    };
                    self.index += 1;
                }
                State::Body(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Chunked(chunked) => match chunked.feed(data) {
                    Step::More => return,
                    Step::End(n) => {
                        data = &data[n..];
                        self.state = State::Head(Vec::new());
                    }
                    // hyper fails this body and closes the connection; refusing the request
                    // after it costs nothing and holds should hyper ever read on.
                    Step::Invalid => return self.lose_track(),
                },
            }
        }
    }
}

/// Where the head ends in `data` (just past its empty line), looking back into `head` for a
/// line that began before this read. Scans in place: no copy of the read, and `memchr` jumps
/// from one line end to the next.
fn find_head_end(head: &[u8], data: &[u8]) -> Option<usize> {
    // The byte `back` places before `data[p]`, wherever it lies.
    let before = |p: usize, back: usize| match p.checked_sub(back) {
        Some(i) => data.get(i).copied(),
        None => head.len().checked_sub(back - p).map(|i| head[i]),
    };
    memchr::memchr_iter(b'\n', data).find_map(|p| {
        let back = if before(p, 1) == Some(b'\r') { 2 } else { 1 };
        (before(p, back) == Some(b'\n')).then_some(p + 1)
    })
}

enum Framing {
    Suspicious,
    Length(u64),
    Chunked,
    None,
}

/// The framing of a whole head (its first line is the request line).
fn framing(head: &[u8]) -> Framing {
    let mut fields = Fields::default();
    for line in head.split(|&b| b == b'\n').skip(1) {
        fields.line(line);
    }
    fields.framing()
}

/// Where a head that lies whole in `data` ends (just past its empty line), and its framing:
/// one pass from line end to line end, for the usual head that comes in one read.
fn whole_head(data: &[u8]) -> Option<(usize, Framing)> {
    let mut fields = Fields::default();
    let mut line_start = None; // None on the request line
    for nl in memchr::memchr_iter(b'\n', data) {
        if let Some(start) = line_start {
            let line = &data[start..nl];
            if matches!(line, b"" | b"\r") {
                return Some((nl + 1, fields.framing()));
            }
            fields.line(line);
        }
        line_start = Some(nl + 1);
    }
    None
}

/// The framing fields of a head, counted line by line.
#[derive(Default)]
struct Fields {
    content_length: usize,
    transfer_encoding: usize,
    length: Option<u64>,
    chunked: bool,
}

impl Fields {
    fn line(&mut self, line: &[u8]) {
        // Only two names matter here: a line that cannot begin either is not read further.
        if !matches!(line.first(), Some(b'c' | b'C' | b't' | b'T')) {
            return;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            self.content_length += 1;
            // Digits only, as hyper reads it (`str::parse` would take `+5`).
            self.length = gateway_core::parse_decimal(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding += 1;
            self.chunked = value.to_ascii_lowercase().ends_with(b"chunked");
        }
    }

    fn framing(&self) -> Framing {
        // Repeated Transfer-Encoding fields stay visible in hyper's head (the guard judges
        // them); what hyper hides is a repeated Content-Length, or one beside
        // Transfer-Encoding.
        match (self.content_length, self.transfer_encoding) {
            (0, 0) => Framing::None,
            (1, 0) => self.length.map_or(Framing::Suspicious, Framing::Length),
            (0, _) if self.chunked => Framing::Chunked,
            (0, _) => Framing::None,
            _ => Framing::Suspicious,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Sniffed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !matches!(this.state, State::Off)
        {
            this.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Sniffed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(stream: &[u8], step: usize) -> Option<usize> {
        let (mut s, v) = Sniffed::new((), 64 << 10);
        for piece in stream.chunks(step) {
            s.feed(piece);
        }
        (0..8).find(|&i| v.refuses(i))
    }

    #[test]
    fn finds_the_suspicious_request_in_a_pipeline() {
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\nPOST /d HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
        for step in [1, 2, 7, 1000] {
            assert_eq!(verdict(stream, step), Some(3), "step {step}");
        }
    }

    #[test]
    fn te_beside_cl_and_bodies_that_look_like_heads() {
        assert_eq!(
            verdict(
                b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
                3
            ),
            Some(0)
        );
        let fake = b"POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(verdict(fake, 5), None, "a body is not a head");
        assert_eq!(
            verdict(
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                4
            ),
            None
        );
    }

    /// A CL+TE request that hyper serves when it comes alone is refused.
    const SMUGGLED: &[u8] = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn long_chunk_lines_split_across_reads_are_followed() {
        let long = "a".repeat(5000);
        let head = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            format!("5;{long}\r\nhello\r\n0\r\n\r\n"),
            format!("5\r\nhello\r\n0\r\nX-Long: {long}\r\nX-Too: {long}\r\n\r\n"),
        ] {
            let stream = [head.as_bytes(), body.as_bytes(), SMUGGLED].concat();
            for step in [1, 7, 1000, 4096, 4097, stream.len()] {
                assert_eq!(verdict(&stream, step), Some(1), "step {step}");
            }
        }
    }

    #[test]
    fn empty_lines_before_a_head_are_no_head() {
        let stream = [
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n\n\r\n".as_slice(),
            SMUGGLED,
        ]
        .concat();
        for step in [1, 2, 3, 100] {
            assert_eq!(verdict(&stream, step), Some(1), "step {step}");
        }
        assert_eq!(verdict(&[b"\r\n\r\n", SMUGGLED].concat(), 1), Some(0));
    }

    #[test]
    fn what_it_cannot_follow_refuses_the_next_request() {
        // A malformed chunk line: hyper fails the body too, and never reads the next head.
        let stream = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(verdict(stream, 5), Some(1));
        // A head over the cap: refused (hyper answers 431 first).
        let (mut s, v) = Sniffed::new((), 100);
        s.feed(b"GET / HTTP/1.1\r\n");
        s.feed(&[b'x'; 200]);
        assert!(v.refuses(0));
        // Whole in one read, or in pieces: the same.
        let long = [
            b"GET / HTTP/1.1\r\nX: ".as_slice(),
            &[b'x'; 100],
            b"\r\n\r\n",
        ]
        .concat();
        for step in [1, 50, long.len()] {
            let (mut s, v) = Sniffed::new((), 100);
            long.chunks(step).for_each(|piece| s.feed(piece));
            assert!(v.refuses(0), "step {step}");
        }
    }
}

//! `AccessLog`: one line per request, written when its response is complete, under its
//! [request id](crate::request_id), to an [`AccessSink`] (a `tracing` event unless the gateway
//! gives its own); the same numbers feed [`Stats`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use smallvec::SmallVec;

use crate::{App, Body, BoxError, Environ, Protocol, Response, Stats};

/// Logs each request to its [`AccessSink`] (by default an `info` event on the target
/// `gatewayd::access`): protocol, method, path, status, body bytes, duration (to the end of
/// the body) and peer. The app's call runs with its
/// [request id](crate::request_id) current, so its own lines can match the access line (with
/// the sink off, no id is given and the line's strings are not made). Whole bodies are
/// logged at once; a streamed body is counted as it goes and logged when it ends or is
/// dropped (a client that went away).
pub struct AccessLog<A> {
    inner: A,
    stats: &'static Stats,
    sink: &'static dyn AccessSink,
}

impl<A: std::fmt::Debug> std::fmt::Debug for AccessLog<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<A> AccessLog<A> {
    /// Logs every request to `inner` as a `tracing` event ([`TracingSink`]), and counts it in
    /// `stats`.
    pub fn new(inner: A, stats: &'static Stats) -> Self {
        Self::with_sink(inner, stats, &TracingSink)
    }

    /// Logs every request to `inner` into `sink`, and counts it in `stats`.
    pub fn with_sink(inner: A, stats: &'static Stats, sink: &'static dyn AccessSink) -> Self {
        AccessLog { inner, stats, sink }
    }
}

/// One request's access line, as [`AccessLog`] hands it to its [`AccessSink`].
#[derive(Clone, Copy, Debug)]
pub struct AccessLine<'a> {
    /// The request id, the one [`request_id::current`](crate::request_id::current) gave the
    /// app's own lines.
    pub id: u64,
    /// When the response ended (or was cut short): the instant `micros` runs to, read once
    /// for both, so a sink can stamp the line without reading the clock again.
    pub at: Instant,
    /// The front-end that served it.
    pub protocol: Protocol,
    /// `REQUEST_METHOD`.
    pub method: &'a str,
    /// `REQUEST_URI`, or `SCRIPT_NAME`, `PATH_INFO` and `QUERY_STRING` put together.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the call to the end of the body.
    pub micros: u64,
    /// `REMOTE_ADDR`.
    pub peer: &'a str,
    /// `method`, `path` and `peer` are all printable ASCII (space to `~`): a text line can
    /// write them as they are, with no control character to escape.
    pub printable: bool,
    /// `false` when the body was cut short (the client went away, or the body failed).
    pub complete: bool,
}

/// Where [`AccessLog`] writes its lines.
///
/// gatewayd's daemon gives a sink that formats each line straight into its log buffer: a
/// `tracing` event costs more than the line itself (the dispatch, the filter, the
/// subscriber's formatting plumbing), and every request writes one.
pub trait AccessSink: Send + Sync {
    /// Whether lines are wanted at all; asked once per request, before anything is made for
    /// its line.
    fn enabled(&self) -> bool;
    /// Writes one line.
    fn write(&self, line: &AccessLine<'_>);
}

/// The default [`AccessSink`]: an `info` event on the target `gatewayd::access` with the
/// line's fields, so `RUST_LOG` filters it like any other.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl AccessSink for TracingSink {
    fn enabled(&self) -> bool {
        tracing::enabled!(target: "gatewayd::access", tracing::Level::INFO)
    }

    fn write(&self, line: &AccessLine<'_>) {
        let _entered = crate::request_id::enter(line.id);
        tracing::info!(
            target: "gatewayd::access",
            protocol = line.protocol.as_str(),
            method = line.method,
            path = line.path,
            status = line.status,
            bytes = line.bytes,
            micros = line.micros,
            peer = line.peer,
            complete = line.complete,
        );
    }
}

/// The access line's own fields, built only when it will be written.
struct Logged {
    id: u64,
    sink: &'static dyn AccessSink,
    /// Method, path and peer, one after the other, as the environ has them: inline for all
    /// but long paths (no allocation per request, which a task that moves between threads
    /// makes slow), made text once, when the line is written.
    text: SmallVec<[u8; 128]>,
    /// Where the path and the peer start in `text`.
    path_at: usize,
    peer_at: usize,
}

impl Logged {
    fn new(id: u64, sink: &'static dyn AccessSink, env: &Environ) -> Self {
        let mut text = SmallVec::new();
        text.extend_from_slice(env.get("REQUEST_METHOD").unwrap_or_default());
        let path_at = text.len();
        match env.request_uri() {
            Some(uri) => text.extend_from_slice(uri),
            None => {
                text.extend_from_slice(env.script_name());
                text.extend_from_slice(env.path_info());
                if !env.query_string().is_empty() {
                    text.push(b'?');
                    text.extend_from_slice(env.query_string());
                }
            }
        }
        let peer_at = text.len();
        text.extend_from_slice(env.remote_addr());
        Logged {
            id,
            sink,
            text,
            path_at,
            peer_at,
        }
    }

    /// Calls `f` with the method, path and peer as text, and whether all three are printable
    /// ASCII.
    fn with_parts(&self, f: impl FnOnce(&str, &str, &str, bool)) {
        let (path_at, peer_at) = (self.path_at, self.peer_at);
        // One pass over the three (nearly always printable ASCII) answers both what a text
        // line asks (any control character to escape?) and UTF-8 validity: two scans of their
        // own cost the line about 360 instructions (callgrind), this one about 60.
        let printable = self
            .text
            .iter()
            .fold(true, |ok, &b| ok & (b' '..=b'~').contains(&b));
        if printable {
            // SAFETY: printable ASCII is UTF-8, and every index of it is a char boundary.
            let t = unsafe { std::str::from_utf8_unchecked(&self.text) };
            return f(&t[..path_at], &t[path_at..peer_at], &t[peer_at..], true);
        }
        // Valid together, parts can each be invalid (a character split across two): each is
        // checked on its own.
        let (method, rest) = self.text.split_at(path_at);
        let (path, peer) = rest.split_at(peer_at - path_at);
        let lossy = String::from_utf8_lossy;
        f(&lossy(method), &lossy(path), &lossy(peer), false);
    }
}

impl<A: App> App for AccessLog<A> {
    fn call(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send {
        let logging = Logging::begin(self.stats, self.sink, &env);
        // The call is made now (see `App`'s docs on middleware), under the request's id.
        let call = {
            let _in = logging.id().map(crate::request_id::enter);
            self.inner.call(env, body)
        };
        LoggedCall {
            call,
            logging: Some(logging),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call under [`AccessLog`]: polled with its request id current, counted and logged
    /// when it answers.
    struct LoggedCall<F> {
        // Dropped before `logging`: a cancelled call ends its time in flight once it is gone.
        #[pin]
        call: F,
        logging: Option<Logging>,
    }
}

impl<F: Future<Output = Response>> Future for LoggedCall<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        let res = {
            let _in = (this.logging.as_ref())
                .and_then(Logging::id)
                .map(crate::request_id::enter);
            std::task::ready!(this.call.poll(cx))
        };
        Poll::Ready(Logging::finish(this.logging, res))
    }
}

/// What [`AccessLog`] does around one call, begun before it. Dropped unfinished (a cancelled
/// call), it still ends the request's time in flight.
struct Logging {
    start: Instant,
    protocol: Protocol,
    in_flight: crate::stats::InFlight<'static>,
    /// `None` when the sink is off: then a request costs [`Stats`] and nothing more. Not
    /// boxed: the access log is on by default, and an allocation per request costs more than
    /// the 160-odd bytes it adds to the request's future.
    logged: Option<Logged>,
}

impl Logging {
    /// A request starts.
    fn begin(stats: &'static Stats, sink: &'static dyn AccessSink, env: &Environ) -> Self {
        Logging {
            start: Instant::now(),
            protocol: env.protocol(),
            logged: sink
                .enabled()
                .then(|| Logged::new(crate::request_id::next(), sink, env)),
            in_flight: stats.begin(),
        }
    }

    /// The request's id, when its access line will be written: the call runs with it current.
    fn id(&self) -> Option<u64> {
        self.logged.as_ref().map(|l| l.id)
    }

    /// The call answered `res`: counted and logged now for a whole body (written where it
    /// lies: the line's text is a few hundred bytes to move), or once a streamed body ends.
    fn finish(slot: &mut Option<Logging>, mut res: Response) -> Response {
        match res.body.exact_len() {
            Some(len) => {
                if let Some(logging) = slot.as_ref() {
                    logging.write(res.status, len, true);
                }
                *slot = None;
            }
            None => {
                if let Some(logging) = slot.take() {
                    let inner = std::mem::take(&mut res.body);
                    res.body = Body::new(Counted {
                        inner,
                        status: res.status,
                        logging: Some(logging),
                        bytes: 0,
                    });
                }
            }
        }
        res
    }

    /// Counts the request and writes its line: it ended with `status` after `bytes` of body,
    /// `complete` or cut short.
    fn write(&self, status: u16, bytes: u64, complete: bool) {
        let at = Instant::now();
        let took = at.saturating_duration_since(self.start);
        let stats = self.in_flight.stats();
        stats.end(self.protocol, status, bytes, took);
        let Some(logged) = &self.logged else { return };
        logged.with_parts(|method, path, peer, printable| {
            logged.sink.write(&AccessLine {
                id: logged.id,
                at,
                protocol: self.protocol,
                method,
                path,
                status,
                bytes,
                micros: took.as_micros() as u64,
                peer,
                printable,
                complete,
            });
        });
    }
}

/// A streamed body that counts its bytes and writes the access line when it ends.
struct Counted {
    inner: Body,
    status: u16,
    /// Until the line is written.
    logging: Option<Logging>,
    bytes: u64,
}

impl Counted {
    fn end(&mut self, complete: bool) {
        if let Some(logging) = self.logging.take() {
            logging.write(self.status, self.bytes, complete);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                self.bytes += f.data_ref().map_or(0, |d| d.len() as u64);
                // A body that knows it has ended (its length reached) is not polled again.
                if self.inner.is_end_stream() {
                    self.end(true);
                }
            }
            Poll::Ready(None) => self.end(true),
            _ => {}
        }
        frame.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Dropped before its end: the client went away, or the body failed.
        self.end(false);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::app_fn;

    /// Keeps each line as `METHOD PATH PEER STATUS BYTES COMPLETE`, and `printable` if it is.
    struct Keep(Mutex<Vec<String>>);

    impl AccessSink for Keep {
        fn enabled(&self) -> bool {
            true
        }

        fn write(&self, l: &AccessLine<'_>) {
            let mut text = format!(
                "{} {} {} {} {} {}",
                l.method, l.path, l.peer, l.status, l.bytes, l.complete
            );
            if l.printable {
                text.push_str(" printable");
            }
            self.0.lock().unwrap().push(text);
        }
    }

    fn logged(vars: &[(&'static str, &'static [u8])]) -> String {
        let sink: &'static Keep = Box::leak(Box::new(Keep(Mutex::new(Vec::new()))));
        let app = AccessLog::with_sink(
            app_fn(|_env, _body| async { Response::text(200, "hi") }),
            Stats::leak(),
            sink,
        );
        let mut env = Environ::new(Protocol::Http);
        for (name, value) in vars {
            env.insert(*name, *value);
        }
        let res = futures_util::FutureExt::now_or_never(app.call(env, Body::empty()));
        assert!(res.is_some());
        sink.0.lock().unwrap().pop().unwrap()
    }

    #[test]
    fn the_line_has_the_request_uri_or_the_path_put_together() {
        let base: [(&str, &[u8]); 2] = [("REQUEST_METHOD", b"GET"), ("REMOTE_ADDR", b"10.0.0.1")];
        let uri = [base[0], base[1], ("REQUEST_URI", b"/a%20b?c")];
        assert_eq!(logged(&uri), "GET /a%20b?c 10.0.0.1 200 2 true printable");
        let parts = [
            base[0],
            base[1],
            ("SCRIPT_NAME", b"/app"),
            ("PATH_INFO", b"/x"),
            ("QUERY_STRING", b"q=1"),
        ];
        assert_eq!(
            logged(&parts),
            "GET /app/x?q=1 10.0.0.1 200 2 true printable"
        );
        // A control character, and UTF-8 that is not ASCII: valid, but not printable ASCII.
        let odd = [base[0], base[1], ("REQUEST_URI", b"/a\tb")];
        assert_eq!(logged(&odd), "GET /a\tb 10.0.0.1 200 2 true");
        let odd = [base[0], base[1], ("REQUEST_URI", "/café".as_bytes())];
        assert_eq!(logged(&odd), "GET /café 10.0.0.1 200 2 true");
        let odd = [base[0], base[1], ("REQUEST_URI", b"/~\x7f")];
        assert_eq!(logged(&odd), "GET /~\x7f 10.0.0.1 200 2 true");
        // Past the inline room.
        let long: &'static [u8] = Box::leak(format!("/{}", "x".repeat(300)).into_bytes().into());
        let uri = [base[0], base[1], ("REQUEST_URI", long)];
        let expected = format!("GET /{} 10.0.0.1 200 2 true printable", "x".repeat(300));
        assert_eq!(logged(&uri), expected);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_part_by_part() {
        // Valid together (é), invalid apart: a lone lead byte ends the path and a continuation
        // byte starts the peer.
        let vars: [(&str, &[u8]); 3] = [
            ("REQUEST_METHOD", b"GET"),
            ("REQUEST_URI", b"/caf\xc3"),
            ("REMOTE_ADDR", b"\xa9127.0.0.1"),
        ];
        assert_eq!(
            logged(&vars),
            "GET /caf\u{FFFD} \u{FFFD}127.0.0.1 200 2 true"
        );
        let vars: [(&str, &[u8]); 3] = [
            ("REQUEST_METHOD", b"G\xffT"),
            ("REQUEST_URI", b"/a\xff"),
            ("REMOTE_ADDR", b"10.0.0.1"),
        ];
        assert_eq!(logged(&vars), "G\u{FFFD}T /a\u{FFFD} 10.0.0.1 200 2 true");
    }
}

//! `AccessLog`: one `tracing` line per request, written when its response is complete, under
//! its [request id](crate::request_id); the same numbers feed [`Stats`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::{App, Body, BoxError, Environ, Protocol, Response, Stats};

/// Logs each request at `info` on the target `gatewayd::access`: protocol, method, path,
/// status, body bytes, duration (to the end of the body) and peer. The app's call runs with its
/// [request id](crate::request_id) current, so its own lines can match the access line (with
/// the access target off, no id is given and the line's strings are not made). Whole bodies are
/// logged at once; a streamed body is counted as it goes and logged when it ends or is
/// dropped (a client that went away).
#[derive(Debug)]
pub struct AccessLog<A> {
    inner: A,
    next_id: AtomicU64,
    stats: &'static Stats,
}

impl<A> AccessLog<A> {
    /// Logs every request to `inner`, and counts it in `stats`.
    pub fn new(inner: A, stats: &'static Stats) -> Self {
        AccessLog {
            inner,
            next_id: AtomicU64::new(1),
            stats,
        }
    }
}

/// What the access line says, held until the body ends.
struct Line {
    /// Ends the request's time in flight when the line is written (or dropped unwritten).
    in_flight: crate::stats::InFlight<'static>,
    start: Instant,
    protocol: Protocol,
    status: u16,
    /// `None` when the access target is off: then a request costs [`Stats`] and nothing more
    /// (boxed, so that a request future that does not log stays small).
    logged: Option<Box<Logged>>,
}

/// The access line's own fields, built only when it will be written.
struct Logged {
    id: u64,
    /// Method, path and peer, one after the other (one allocation for the three).
    text: String,
    /// Where the path and the peer start in `text`.
    path_at: usize,
    peer_at: usize,
}

impl Logged {
    fn new(id: u64, env: &Environ) -> Self {
        // `from_utf8` first: it is several times faster than `from_utf8_lossy` on valid text.
        let lossy = |b| match std::str::from_utf8(b) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        };
        let method = env.method();
        let peer = lossy(env.remote_addr());
        let mut text = String::with_capacity(64);
        text.push_str(method);
        let path_at = text.len();
        match env.request_uri() {
            Some(uri) => text.push_str(&lossy(uri)),
            None => {
                text.push_str(&lossy(env.script_name()));
                text.push_str(&lossy(env.path_info()));
                if !env.query_string().is_empty() {
                    text.push('?');
                    text.push_str(&lossy(env.query_string()));
                }
            }
        }
        let peer_at = text.len();
        text.push_str(&peer);
        Logged {
            id,
            text,
            path_at,
            peer_at,
        }
    }
}

impl Line {
    fn write(self, bytes: u64, complete: bool) {
        let took = self.start.elapsed();
        self.in_flight
            .stats()
            .end(self.protocol, self.status, bytes, took);
        let Some(logged) = self.logged else { return };
        let _entered = crate::request_id::enter(logged.id);
        let text = &logged.text;
        tracing::info!(
            target: "gatewayd::access",
            protocol = self.protocol.as_str(),
            method = &text[..logged.path_at],
            path = &text[logged.path_at..logged.peer_at],
            status = self.status,
            bytes,
            micros = took.as_micros() as u64,
            peer = &text[logged.peer_at..],
            complete,
        );
    }
}

impl<A: App> App for AccessLog<A> {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let logging = Logging::begin(self.stats, &self.next_id, &env);
        let res = match logging.id() {
            Some(id) => crate::request_id::Scoped::new(id, self.inner.call(env, body)).await,
            None => self.inner.call(env, body).await,
        };
        logging.finish(res)
    }
}

/// What [`AccessLog`] does around one call, begun before it. Dropped unfinished (a cancelled
/// call), it still ends the request's time in flight.
struct Logging {
    start: Instant,
    protocol: Protocol,
    in_flight: crate::stats::InFlight<'static>,
    logged: Option<Box<Logged>>,
}

impl Logging {
    /// A request starts; `next_id` numbers the requests.
    fn begin(stats: &'static Stats, next_id: &AtomicU64, env: &Environ) -> Self {
        Logging {
            start: Instant::now(),
            protocol: env.protocol(),
            logged: tracing::enabled!(target: "gatewayd::access", tracing::Level::INFO)
                .then(|| Box::new(Logged::new(next_id.fetch_add(1, Ordering::Relaxed), env))),
            in_flight: stats.begin(),
        }
    }

    /// The request's id, when its access line will be written: the call runs with it current.
    fn id(&self) -> Option<u64> {
        self.logged.as_ref().map(|l| l.id)
    }

    /// The call answered `res`: counted and logged now for a whole body, or once a streamed
    /// body ends.
    fn finish(self, mut res: Response) -> Response {
        let line = Line {
            in_flight: self.in_flight,
            start: self.start,
            protocol: self.protocol,
            status: res.status,
            logged: self.logged,
        };
        match res.body.exact_len() {
            Some(len) => line.write(len, true),
            None => {
                let inner = std::mem::take(&mut res.body);
                res.body = Body::new(Counted {
                    inner,
                    line: Some(line),
                    bytes: 0,
                });
            }
        }
        res
    }
}

/// A streamed body that counts its bytes and writes the access line when it ends.
struct Counted {
    inner: Body,
    line: Option<Line>,
    bytes: u64,
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
                if self.inner.is_end_stream()
                    && let Some(line) = self.line.take()
                {
                    line.write(self.bytes, true);
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.write(self.bytes, true);
                }
            }
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
        if let Some(line) = self.line.take() {
            line.write(self.bytes, false);
        }
    }
}

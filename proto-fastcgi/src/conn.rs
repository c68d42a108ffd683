//! One FastCGI connection: a reader loop that owns the requests (keyed by id) and drives their
//! app calls itself (no task per request, no hop to another thread), and one writer task that
//! owns the socket's write half.
//!
//! Only the reader writes END_REQUEST, and only when it takes a request out of its table, so
//! each request ends exactly once whether it finishes, is aborted, or is refused.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::future::{AbortHandle, Abortable, Aborted, BoxFuture};
use futures_util::stream::FuturesUnordered;
use gateway_core::{App, Body, CgiParams, Environ, PathMode, Protocol};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::budget::BodyBudget;
use crate::codec::{DecodeError, Record, RecordDecoder, put_record};
use crate::params::{ParamsDecoder, ParamsError, decode_pairs, put_pair};
use crate::record::{BeginRequest, EndRequest, ProtocolStatus, RecordType, Role};
use crate::respond::{self, Done};
use crate::stdin::{self, Pushed, StdinSender};

/// Ended requests whose STDIN is still being read and dropped, at most, per connection; past
/// it a new request is refused (OVERLOADED) until the web server finishes their streams.
const MAX_FINISHING: usize = 64;

/// The limits of a FastCGI listener.
#[derive(Clone, Debug)]
pub struct FastCgiConfig {
    /// Requests at once on one connection (FCGI_MAX_REQS). Over it: END_REQUEST with
    /// CANT_MPX_CONN (when 1) or OVERLOADED.
    ///
    /// 1 (the default, as php-fpm; nginx never multiplexes anyway): a request's STDIN is
    /// read only as fast as its app reads it, so the web server feels backpressure through
    /// TCP. Above 1: a slow app must not stall its neighbours on the shared connection, so
    /// the reader does not wait on one request, and each unread body is buffered up to
    /// `max_body_size`, within the shared `body_budget`.
    pub max_requests: usize,
    /// Connections at once (FCGI_MAX_CONNS); the listener enforces it, this reports it.
    pub max_connections: usize,
    /// The most bytes of PARAMS per request; over it: 431.
    pub max_params_size: usize,
    /// The request body cap; over it: 413.
    pub max_body_size: u64,
    /// How long a request head (BEGIN_REQUEST to the end of PARAMS) may take, and how long a
    /// new connection may stay silent.
    pub header_read_timeout: Duration,
    /// How long a kept connection (FCGI_KEEP_CONN) may wait for its next request.
    pub keepalive_timeout: Duration,
    /// What every connection sharing it may hold of unread request bodies; past it, a
    /// connection stops reading until bodies are consumed or freed. Share one across
    /// listeners to bound the whole process.
    pub body_budget: Arc<BodyBudget>,
}

impl Default for FastCgiConfig {
    fn default() -> Self {
        FastCgiConfig {
            max_requests: 1,
            max_connections: 1024,
            max_params_size: 64 << 10,
            max_body_size: 100 << 20,
            header_read_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(75),
            body_budget: Arc::new(BodyBudget::default()),
        }
    }
}

enum Slot {
    /// BEGIN_REQUEST came; PARAMS are arriving.
    Params {
        keep_conn: bool,
        decoder: ParamsDecoder,
        params: CgiParams,
        /// A status to answer instead of calling the app (400, 431).
        refused: Option<u16>,
        since: Instant,
    },
    /// The app runs; STDIN flows to it.
    Running {
        keep_conn: bool,
        stdin: StdinSender,
        call: AbortHandle,
    },
    /// END_REQUEST is sent; the rest of STDIN is read and dropped, so that a web server still
    /// sending a body (nginx sends it whole before it reads) is not cut off.
    Finishing { keep_conn: bool, since: Instant },
}

/// One app call and the writing of its response, ending with its [`Done`] (or `Err` once
/// aborted).
type Call = BoxFuture<'static, Result<Done, Aborted>>;

struct Conn {
    app: Arc<dyn App>,
    cfg: Arc<FastCgiConfig>,
    requests: HashMap<u16, Slot>,
    out: mpsc::Sender<Bytes>,
    /// Calls started by the last record, for the loop to drive.
    started: Vec<Call>,
    /// A request without KEEP_CONN ended: close once nothing is left.
    closing: bool,
    /// The daemon is shutting down: close once nothing is left.
    draining: bool,
    /// Until the first record, a silent connection is on the head timeout.
    silent_since: Option<Instant>,
    /// Since when a kept connection has had no request (on the keep-alive timeout).
    idle_since: Option<Instant>,
    /// STDIN was queued since the queue was last seen below its high-water mark: only then is
    /// it worth a look (and its lock).
    stdin_queued: bool,
    /// A STDIN record the budget had no room for: the reader reads nothing more until it is
    /// queued.
    held: Option<(u16, Bytes)>,
}

/// Serves FastCGI on one connection until the web server closes it, a request without
/// KEEP_CONN ends, the input is not FastCGI, or `shutdown` fires and nothing is in flight.
/// When the connection is lost, every running app call is cancelled.
pub async fn serve_connection<IO>(
    io: IO,
    app: Arc<dyn App>,
    cfg: Arc<FastCgiConfig>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel(32);
    let writer = tokio::spawn(write_loop(wr, out_rx));
    let mut calls = FuturesUnordered::<Call>::new();
    let mut conn = Conn {
        app,
        cfg,
        requests: HashMap::new(),
        out,
        started: Vec::new(),
        closing: false,
        draining: false,
        silent_since: Some(Instant::now()),
        idle_since: None,
        stdin_queued: false,
        held: None,
    };
    let mut frames = FramedRead::new(rd, RecordDecoder);
    // Polled on every turn of the loop: looked at only after its own wake-up.
    let mut cancelled = gateway_core::Shutdown::new(shutdown);
    // One timer for the head and keep-alive deadlines, moved only to an earlier deadline: one
    // that moves later (every request moves them) is looked at when the timer fires, so a
    // request does not insert a timer into the wheel and take it out again.
    let timer = tokio::time::sleep_until(far_future());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        if (conn.closing || conn.draining) && conn.requests.is_empty() {
            break;
        }
        calls.extend(conn.started.drain(..));
        if let Some(deadline) = conn.deadline()
            && armed.is_none_or(|at| deadline < at)
        {
            timer.as_mut().reset(deadline);
            armed = Some(deadline);
        }
        // Not multiplexing, the reader stops while the app has a full STDIN queue to read, so
        // that the web server feels the push back through TCP. Past the body budget, it stops
        // until its held record fits (or its app waits for it).
        let full = conn.full_stdin();
        let room = conn.room();
        let flow = tokio::select! {
            biased;
            Some(done) = calls.next(), if !calls.is_empty() => match done {
                Ok(done) => conn.finished(done).await,
                Err(_aborted) => ControlFlow::Continue(()),
            },
            () = async { if let Some(f) = full { f.await } }, if full.is_some() => ControlFlow::Continue(()),
            () = async { if let Some(r) = room { r.await } }, if room.is_some() => ControlFlow::Continue(()),
            record = frames.next(), if full.is_none() && room.is_none() => match record {
                Some(Ok(record)) => {
                    conn.silent_since = None;
                    conn.handle(record).await
                }
                Some(Err(e)) => {
                    conn.lost(e);
                    ControlFlow::Break(())
                }
                None => {
                    if conn.in_progress() {
                        tracing::info!("the web server closed the FastCGI connection mid-request");
                    }
                    ControlFlow::Break(())
                }
            },
            () = &mut timer, if armed.is_some() => match conn.deadline() {
                Some(deadline) if deadline <= Instant::now() => {
                    tracing::debug!("FastCGI connection timed out (request head or keep-alive wait); closing it");
                    ControlFlow::Break(())
                }
                later => {
                    if let Some(deadline) = later {
                        timer.as_mut().reset(deadline);
                    }
                    armed = later;
                    ControlFlow::Continue(())
                }
            },
            () = &mut cancelled, if !conn.draining => {
                conn.draining = true;
                ControlFlow::Continue(())
            }
        };
        if flow.is_break() {
            break;
        }
        conn.idle_since = match (conn.requests.is_empty(), conn.idle_since) {
            (true, None) if conn.silent_since.is_none() => Some(Instant::now()),
            (true, since) => since,
            (false, _) => None,
        };
    }
    for slot in conn.requests.values() {
        if let Slot::Running { stdin, .. } = slot {
            stdin.abort();
        }
    }
    // Cancels the calls still running; then the writer sees every sender gone and closes.
    drop(calls);
    drop(conn);
    let _ = writer.await;
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

impl Conn {
    async fn handle(&mut self, record: Record) -> ControlFlow<()> {
        let Record { kind, id, content } = record;
        match kind {
            RecordType::BeginRequest if id != 0 => self.begin(id, &content).await,
            RecordType::BeginRequest => protocol_error("BEGIN_REQUEST on id 0"),
            RecordType::Params => self.params(id, content).await,
            RecordType::Stdin => self.stdin(id, content).await,
            RecordType::AbortRequest => self.abort(id).await,
            RecordType::GetValues if id == 0 => self.get_values(content).await,
            RecordType::Other(t) => {
                let mut body = [0u8; 8];
                body[0] = t;
                let mut buf = BytesMut::new();
                put_record(&mut buf, RecordType::UnknownType, 0, &body);
                self.send(buf).await
            }
            // Records a web server has no business sending, DATA of the FILTER role, and
            // GET_VALUES off id 0: ignored, as the spec does for inactive ids.
            _ => ControlFlow::Continue(()),
        }
    }

    async fn begin(&mut self, id: u16, content: &[u8]) -> ControlFlow<()> {
        match self.requests.get(&id) {
            // END_REQUEST went out: the id is the web server's to reuse (late STDIN of the old
            // request, read until now, is dropped; what follows is the new one's).
            Some(Slot::Finishing { keep_conn, .. }) => {
                tracing::debug!(id, "a new FastCGI request reuses an ended request's id");
                self.closing |= !keep_conn;
                self.requests.remove(&id);
            }
            Some(_) => return protocol_error("BEGIN_REQUEST on an active id"),
            None => {}
        }
        let Some(begin) = BeginRequest::parse(content) else {
            return protocol_error("short BEGIN_REQUEST");
        };
        // Ended requests still reading their leftover STDIN do not count against max_requests,
        // but their number is bounded too: each is scanned on every turn of the loop.
        let finishing = self.requests.len() - self.active();
        let refusal = if begin.role != Role::Responder {
            Some(ProtocolStatus::UnknownRole)
        } else if self.active() >= self.cfg.max_requests || finishing >= MAX_FINISHING {
            Some(match self.cfg.max_requests {
                1 => ProtocolStatus::CantMpxConn,
                _ => ProtocolStatus::Overloaded,
            })
        } else {
            None
        };
        if let Some(status) = refusal {
            tracing::debug!(id, ?status, role = ?begin.role, "refusing a FastCGI request");
            self.closing |= !begin.keep_conn();
            let mut buf = BytesMut::new();
            put_end(&mut buf, id, status);
            return self.send(buf).await;
        }
        self.requests.insert(
            id,
            Slot::Params {
                keep_conn: begin.keep_conn(),
                decoder: ParamsDecoder::new(self.cfg.max_params_size),
                params: CgiParams::new(Protocol::FastCgi),
                refused: None,
                since: Instant::now(),
            },
        );
        ControlFlow::Continue(())
    }

    async fn params(&mut self, id: u16, content: Bytes) -> ControlFlow<()> {
        let Some(Slot::Params {
            decoder,
            params,
            refused,
            ..
        }) = self.requests.get_mut(&id)
        else {
            return ControlFlow::Continue(());
        };
        if content.is_empty() {
            return self.start(id).await;
        }
        if refused.is_some() {
            return ControlFlow::Continue(());
        }
        let mut bad = None;
        let fed = decoder.feed(content, |name, value| {
            if bad.is_none()
                && let Err(e) = params.push(name, value)
            {
                bad = Some(e);
            }
        });
        *refused = match (fed, bad) {
            (Err(ParamsError::TooLarge(limit)), _) => {
                tracing::debug!(id, limit, "FastCGI params over the cap");
                Some(431)
            }
            (Err(e), _) => {
                tracing::debug!(id, error = %e, "bad FastCGI params");
                Some(400)
            }
            (Ok(()), Some(e)) => {
                tracing::debug!(id, error = %e, "bad FastCGI params");
                Some(400)
            }
            (Ok(()), None) => None,
        };
        ControlFlow::Continue(())
    }

    /// PARAMS ended: call the app, or answer a refusal without it.
    async fn start(&mut self, id: u16) -> ControlFlow<()> {
        let Some(Slot::Params {
            keep_conn,
            decoder,
            params,
            refused,
            ..
        }) = self.requests.remove(&id)
        else {
            return ControlFlow::Continue(());
        };
        let (env, unusable) = match params.finish(PathMode::Resplit) {
            Ok(env) => (env, None),
            Err(e) => {
                tracing::debug!(id, error = %e, "bad FastCGI params");
                (Environ::new(Protocol::FastCgi), Some(400))
            }
        };
        let refused = refused
            .or(unusable)
            .or_else(|| decoder.finish().err().map(|_| 400))
            .or_else(|| {
                let over = env
                    .content_length()
                    .is_some_and(|n| n > self.cfg.max_body_size);
                over.then_some(413)
            });
        if let Some(status) = refused {
            tracing::debug!(id, status, "answering a FastCGI request without the app");
            return self.refuse(id, keep_conn, status, false).await;
        }
        let (stdin, body) = stdin::channel(
            self.cfg.max_body_size,
            env.content_length(),
            self.cfg.body_budget.clone(),
        );
        let (call, registration) = AbortHandle::new_pair();
        let run = respond::run(
            id,
            env,
            Body::new(body),
            stdin.watch(),
            self.app.clone(),
            self.out.clone(),
        );
        self.started
            .push(Box::pin(Abortable::new(run, registration)));
        self.requests.insert(
            id,
            Slot::Running {
                keep_conn,
                stdin,
                call,
            },
        );
        ControlFlow::Continue(())
    }

    /// Answers `status` without the app and ends the request; the rest of its STDIN is read
    /// and dropped, unless it has ended already (`stdin_done`).
    async fn refuse(
        &mut self,
        id: u16,
        keep_conn: bool,
        status: u16,
        stdin_done: bool,
    ) -> ControlFlow<()> {
        let mut buf = BytesMut::new();
        respond::put_error(&mut buf, id, status);
        put_end(&mut buf, id, ProtocolStatus::RequestComplete);
        if stdin_done {
            self.closing |= !keep_conn;
            return self.send(buf).await;
        }
        self.requests.insert(
            id,
            Slot::Finishing {
                keep_conn,
                since: Instant::now(),
            },
        );
        self.send(buf).await?;
        self.half_close_unless(keep_conn).await
    }

    async fn stdin(&mut self, id: u16, content: Bytes) -> ControlFlow<()> {
        match self.requests.get(&id) {
            Some(Slot::Running { stdin, .. }) => {
                self.stdin_queued = true;
                match stdin.try_push(content) {
                    Ok(Pushed::Done) => {}
                    Ok(Pushed::Failed(failure)) => log_failure(id, failure),
                    Err(held) => self.held = Some((id, held)),
                }
            }
            Some(Slot::Finishing { keep_conn, .. }) if content.is_empty() => {
                tracing::debug!(id, "the rest of STDIN is read; the request is over");
                let keep_conn = *keep_conn;
                self.requests.remove(&id);
                self.closing |= !keep_conn;
            }
            Some(Slot::Params { keep_conn, .. }) => {
                // The body cannot be told apart from the head yet: refuse the request rather
                // than drop the data or guess.
                static EARLY: gateway_core::Throttle = gateway_core::Throttle::new();
                if let Some(suppressed) = EARLY.allow() {
                    tracing::warn!(
                        id,
                        suppressed,
                        "FastCGI STDIN before the end of PARAMS; answering 400 and ending the request"
                    );
                }
                let keep_conn = *keep_conn;
                self.requests.remove(&id);
                return self.refuse(id, keep_conn, 400, content.is_empty()).await;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Queues the held STDIN record if it fits now; drops it if its request is over.
    fn push_held(&mut self) {
        let Some((id, data)) = self.held.take() else {
            return;
        };
        if let Some(Slot::Running { stdin, .. }) = self.requests.get(&id) {
            match stdin.try_push(data) {
                Ok(Pushed::Done) => {}
                Ok(Pushed::Failed(failure)) => log_failure(id, failure),
                Err(held) => self.held = Some((id, held)),
            }
        }
    }

    /// While a record is held: the wait for room for it.
    fn room(&mut self) -> Option<impl Future<Output = ()> + use<>> {
        self.push_held();
        let (id, data) = self.held.as_ref()?;
        match self.requests.get(id) {
            Some(Slot::Running { stdin, .. }) => Some(stdin.room(data.len())),
            _ => None,
        }
    }

    async fn abort(&mut self, id: u16) -> ControlFlow<()> {
        let keep_conn = match self.requests.remove(&id) {
            None => return ControlFlow::Continue(()),
            Some(Slot::Finishing { keep_conn, .. }) => {
                self.closing |= !keep_conn;
                return ControlFlow::Continue(());
            }
            Some(Slot::Running {
                keep_conn,
                stdin,
                call,
            }) => {
                stdin.abort();
                call.abort();
                keep_conn
            }
            Some(Slot::Params { keep_conn, .. }) => keep_conn,
        };
        tracing::debug!(id, "FastCGI request aborted by the web server");
        self.closing |= !keep_conn;
        let mut buf = BytesMut::new();
        put_end(&mut buf, id, ProtocolStatus::RequestComplete);
        self.send(buf).await
    }

    /// A request task wrote its whole response: end the request.
    async fn finished(&mut self, done: Done) -> ControlFlow<()> {
        let Some(Slot::Running {
            keep_conn, stdin, ..
        }) = self.requests.remove(&done.id)
        else {
            return ControlFlow::Continue(()); // aborted meanwhile: already ended
        };
        let Some(mut buf) = done.tail else {
            return ControlFlow::Break(()); // the body broke: the web server must see a cut
        };
        let draining = !stdin.is_done();
        if !draining {
            self.closing |= !keep_conn;
        } else {
            self.requests.insert(
                done.id,
                Slot::Finishing {
                    keep_conn,
                    since: Instant::now(),
                },
            );
        }
        put_end(&mut buf, done.id, ProtocolStatus::RequestComplete);
        self.send(buf).await?;
        match draining {
            true => self.half_close_unless(keep_conn).await,
            false => ControlFlow::Continue(()),
        }
    }

    /// After END_REQUEST on a connection without KEEP_CONN, the web server waits for us to
    /// close, and may have stopped sending the request body (nginx does, once it has the whole
    /// response). Closing our side tells it we are done; reading on drains whatever it still
    /// sends, so it never meets a reset.
    async fn half_close_unless(&mut self, keep_conn: bool) -> ControlFlow<()> {
        if keep_conn || self.requests.len() > 1 {
            return ControlFlow::Continue(());
        }
        self.send(BytesMut::new()).await
    }

    /// FCGI_GET_VALUES: the values we know, on id 0; unknown names are left out.
    async fn get_values(&mut self, content: Bytes) -> ControlFlow<()> {
        let Ok(names) = decode_pairs(content) else {
            return protocol_error("malformed GET_VALUES");
        };
        let mut pairs = BytesMut::new();
        for (name, _) in names {
            let value = match &name[..] {
                b"FCGI_MAX_CONNS" => self.cfg.max_connections.to_string(),
                b"FCGI_MAX_REQS" => self.cfg.max_requests.to_string(),
                b"FCGI_MPXS_CONNS" => u8::from(self.cfg.max_requests > 1).to_string(),
                _ => continue,
            };
            put_pair(&mut pairs, &name, value.as_bytes());
        }
        let mut buf = BytesMut::new();
        put_record(&mut buf, RecordType::GetValuesResult, 0, &pairs);
        self.send(buf).await
    }

    /// Requests whose END_REQUEST is not sent yet.
    fn active(&self) -> usize {
        self.requests
            .values()
            .filter(|slot| !matches!(slot, Slot::Finishing { .. }))
            .count()
    }

    /// Whether a request is under way: a lost connection is then worth telling.
    fn in_progress(&self) -> bool {
        self.active() > 0
    }

    /// The connection failed. A reset or a close between requests is how web servers end
    /// idle connections (HAProxy resets them): not worth more than a debug line.
    fn lost(&self, e: DecodeError) {
        let io = match &e {
            DecodeError::Version(_) => {
                static MALFORMED: gateway_core::Throttle = gateway_core::Throttle::new();
                if let Some(suppressed) = MALFORMED.allow() {
                    tracing::warn!(error = %e, suppressed, "malformed FastCGI input; closing the connection");
                }
                return;
            }
            DecodeError::Io(io) => io,
        };
        use std::io::ErrorKind as K;
        let dropped = matches!(
            io.kind(),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
        );
        match (dropped, self.in_progress()) {
            (true, false) => {
                tracing::debug!(error = %e, "the web server dropped an idle FastCGI connection")
            }
            (true, true) => {
                tracing::info!(error = %e, "the web server dropped the FastCGI connection mid-request")
            }
            (false, _) => tracing::info!(error = %e, "the FastCGI connection failed; closing it"),
        }
    }

    /// When not multiplexing, and the running request's STDIN queue is full: its draining.
    fn full_stdin(&mut self) -> Option<impl Future<Output = ()> + use<>> {
        if self.cfg.max_requests != 1 || !self.stdin_queued {
            return None;
        }
        let full = self.requests.values().find_map(|slot| match slot {
            Slot::Running { stdin, .. } if stdin.is_full() => Some(stdin.drained()),
            _ => None,
        });
        self.stdin_queued = full.is_some();
        full
    }

    /// When the oldest unfinished request head (or the silent new connection, or the idle
    /// kept one) times out.
    fn deadline(&self) -> Option<Instant> {
        let idle = self.idle_since.map(|t| t + self.cfg.keepalive_timeout);
        let oldest = self
            .requests
            .values()
            .filter_map(|slot| match slot {
                Slot::Params { since, .. } | Slot::Finishing { since, .. } => Some(*since),
                Slot::Running { .. } => None,
            })
            .chain(self.silent_since)
            .min();
        let head = oldest.map(|t| t + self.cfg.header_read_timeout);
        head.into_iter().chain(idle).min()
    }

    async fn send(&mut self, buf: BytesMut) -> ControlFlow<()> {
        match self.out.send(buf.freeze()).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }
}

fn put_end(buf: &mut BytesMut, id: u16, protocol_status: ProtocolStatus) {
    let end = EndRequest {
        app_status: 0,
        protocol_status,
    };
    put_record(buf, RecordType::EndRequest, id, &end.to_bytes());
}

/// STDIN made its request's body fail: the app's read gets the error (400 or 413).
fn log_failure(id: u16, failure: stdin::Failure) {
    match failure.is_mismatch() {
        true => tracing::info!(id, %failure, "refusing a FastCGI request body"),
        false => tracing::debug!(id, %failure, "a FastCGI request body failed"),
    }
}

fn protocol_error(what: &str) -> ControlFlow<()> {
    static PROTOCOL: gateway_core::Throttle = gateway_core::Throttle::new();
    if let Some(suppressed) = PROTOCOL.allow() {
        tracing::warn!(
            suppressed,
            "FastCGI protocol error: {what}; closing the connection"
        );
    }
    ControlFlow::Break(())
}

/// Owns the write half: writes whole buffers, coalescing what is already queued into one
/// write, and closes the socket when every sender is gone, or at once on an empty buffer.
async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Bytes>) {
    tokio::pin!(wr);
    let mut batch = BytesMut::new();
    let mut close = false;
    while let Some(first) = rx.recv().await {
        // Gather what is already queued into one write; an empty buffer is the reader's
        // signal that nothing more will be written, and closes our half after the batch.
        close = first.is_empty();
        let next = if close { None } else { rx.try_recv().ok() };
        let Some(next) = next else {
            // The usual case, one buffer queued: write it as it is.
            if let Err(e) = wr.write_all(&first).await {
                tracing::debug!(error = %e, "FastCGI connection lost while writing");
                return;
            }
            if close {
                break;
            }
            continue;
        };
        batch.extend_from_slice(&first);
        close = next.is_empty();
        batch.extend_from_slice(&next);
        while !close && batch.len() < 256 << 10 {
            match rx.try_recv() {
                Ok(more) if more.is_empty() => close = true,
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&batch).await {
            tracing::debug!(error = %e, "FastCGI connection lost while writing");
            return;
        }
        batch.clear();
        if close {
            break;
        }
    }
    let _ = wr.shutdown().await;
    if close {
        while rx.recv().await.is_some() {}
    }
}

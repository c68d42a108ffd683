//! One FastCGI connection as a sans-IO state machine, in quinn-proto's shape: it is fed
//! decoded records, finished app calls and the time, and it says what to write
//! ([`Connection::poll_transmit`]), which app calls to start ([`Connection::poll_event`]),
//! when its next deadline is ([`Connection::poll_timeout`]), whether reading must pause
//! ([`Connection::read_gate`]) and when it is over ([`Connection::is_done`]). It never touches
//! a socket or reads the clock, so every rule below is unit-tested on fake time.
//!
//! Only the machine writes END_REQUEST, and only when it takes a request out of its table, so
//! each request ends exactly once whether it finishes, is aborted, or is refused.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::future::{AbortHandle, AbortRegistration, Either};
use gateway_core::{Body, CgiParams, Environ, PathMode, Protocol};

use crate::codec::{DecodeError, Record, put_record};
use crate::config::FastCgiConfig;
use crate::params::{ParamsDecoder, ParamsError, decode_pairs, put_pair};
use crate::record::{BeginRequest, EndRequest, ProtocolStatus, RecordType, Role};
use crate::respond::{self, Done};
use crate::stdin::{self, Pushed, StdinSender, StdinWatch};

/// Ended requests whose STDIN is still being read and dropped, at most, per connection; past
/// it a new request is refused (OVERLOADED) until the web server finishes their streams.
const MAX_FINISHING: usize = 64;

/// What the driver must write, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Transmit {
    /// Whole records.
    Data(Bytes),
    /// Close our half once what came before is written: the web server waits for it (no
    /// KEEP_CONN) and may have stopped sending the body it still owes.
    HalfClose,
}

/// What the driver must do for the machine.
pub(crate) enum Event {
    /// Call the app for request `id` and write its response (see [`respond::run`]); report
    /// its [`Done`] to [`Connection::handle_finished`]. The call must be made abortable with
    /// `abort`: the machine cancels it when the web server aborts the request.
    Start {
        /// The request id.
        id: u16,
        /// The request, from its PARAMS.
        env: Environ,
        /// Its STDIN, as the machine is fed it.
        body: Body,
        /// Whether STDIN disagreed with CONTENT_LENGTH.
        stdin: StdinWatch,
        /// Cancels the call from inside the machine.
        abort: AbortRegistration,
    },
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

/// Hashes a request id by one multiply (Fibonacci hashing): std's keyed SipHash cost more than
/// the rest of a request's three lookups. The ids are the web server's, but an odd multiplier
/// is a bijection, so distinct ids never share a hash, nor the low bits that pick a bucket
/// (for a table of up to 2^16 buckets), and the high bits the table's tags come from vary.
/// Written by hand: no crate in the tree offers it, and it is five lines.
#[derive(Default)]
struct IdHasher(u64);

/// 2^64 divided by the golden ratio, made odd.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    // Not called for a `u16`, which hashes through `write_u16`.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id).wrapping_mul(FIBONACCI);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One FastCGI connection's protocol state: the requests by id and the timers.
pub(crate) struct Connection {
    cfg: Arc<FastCgiConfig>,
    requests: HashMap<u16, Slot, BuildHasherDefault<IdHasher>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// A request without KEEP_CONN ended: close once nothing is left.
    closing: bool,
    /// The daemon is shutting down: close once nothing is left.
    draining: bool,
    /// A protocol error, a timeout or a broken response: close now.
    closed: bool,
    /// Until the first record, a silent connection is on the head timeout.
    silent_since: Option<Instant>,
    /// Since when a kept connection has had no request (on the keep-alive timeout).
    idle_since: Option<Instant>,
    /// STDIN was queued since the queue was last seen below its high-water mark: only then is
    /// it worth a look (and its lock).
    stdin_queued: bool,
    /// A STDIN record the budget had no room for: nothing more is read until it is queued.
    held: Option<(u16, Bytes)>,
}

impl Connection {
    /// A connection accepted at `now`: silent until its first record, on the head timeout.
    pub(crate) fn new(cfg: Arc<FastCgiConfig>, now: Instant) -> Self {
        Connection {
            cfg,
            requests: HashMap::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            closing: false,
            draining: false,
            closed: false,
            silent_since: Some(now),
            idle_since: None,
            stdin_queued: false,
            held: None,
        }
    }

    /// The next thing to write.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing to do.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called next: the oldest unfinished request
    /// head (or the silent new connection, or the idle kept one) times out then.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
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

    /// The time passed: a deadline that is due closes the connection.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| deadline <= now) {
            tracing::debug!(
                "FastCGI connection timed out (request head or keep-alive wait); closing it"
            );
            self.closed = true;
        }
    }

    /// Whether the driver must stop: after an error or a timeout, or once the last request
    /// ends on a connection that is closing or draining. What is queued to transmit is still
    /// to be written first.
    ///
    /// A draining connection that has had no record yet is not done: the listener accepted it
    /// (or took it from its backlog) as it stopped, and the web server has sent its request
    /// on it or is sending it. Closing it would fail that request (nginx reads a close before
    /// any header), so it is served, then closed; the head timeout bounds the wait for it.
    pub(crate) fn is_done(&self) -> bool {
        let idle = self.requests.is_empty();
        self.closed
            || (self.closing && idle)
            || (self.draining && idle && self.silent_since.is_none())
    }

    /// Whether [`Connection::handle_shutdown`] was called.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining
    }

    /// The daemon shuts down: finish what is in flight, and the request of a connection that
    /// has not sent it yet (see [`Connection::is_done`]); an idle kept connection closes.
    pub(crate) fn handle_shutdown(&mut self) {
        self.draining = true;
    }

    /// One record from the web server.
    pub(crate) fn handle_record(&mut self, record: Record, now: Instant) {
        if self.closed {
            return;
        }
        self.silent_since = None;
        let Record { kind, id, content } = record;
        match kind {
            RecordType::BeginRequest if id != 0 => self.begin(id, &content, now),
            RecordType::BeginRequest => self.protocol_error("BEGIN_REQUEST on id 0"),
            RecordType::Params => self.params(id, content, now),
            RecordType::Stdin => self.stdin(id, content, now),
            RecordType::AbortRequest => self.abort(id),
            RecordType::GetValues if id == 0 => self.get_values(content),
            RecordType::Other(t) => {
                let mut body = [0u8; 8];
                body[0] = t;
                let mut buf = BytesMut::new();
                put_record(&mut buf, RecordType::UnknownType, 0, &body);
                self.send(buf);
            }
            // Records a web server has no business sending, DATA of the FILTER role, and
            // GET_VALUES off id 0: ignored, as the spec does for inactive ids.
            _ => {}
        }
        self.settle(now);
    }

    /// A request's app call wrote its whole response: end the request.
    pub(crate) fn handle_finished(&mut self, done: Done, now: Instant) {
        let Some(Slot::Running {
            keep_conn, stdin, ..
        }) = self.requests.remove(&done.id)
        else {
            return; // aborted meanwhile: already ended
        };
        let Some(mut buf) = done.tail else {
            self.closed = true; // the body broke: the web server must see a cut
            return;
        };
        let draining = !stdin.is_done();
        if !draining {
            self.closing |= !keep_conn;
        } else {
            self.requests.insert(
                done.id,
                Slot::Finishing {
                    keep_conn,
                    since: now,
                },
            );
        }
        put_end(&mut buf, done.id, ProtocolStatus::RequestComplete);
        self.send(buf);
        if draining {
            self.half_close_unless(keep_conn);
        }
        self.settle(now);
    }

    /// While reading must pause, what it waits for: a running request's STDIN queue to drain
    /// (not multiplexing: the web server then feels the push back through TCP), or room in
    /// the body budget for the held record (or its app waiting for it). Queues the held
    /// record first if it fits now. Call it before each read.
    pub(crate) fn read_gate(&mut self) -> Option<impl Future<Output = ()> + Send + use<>> {
        if let Some(full) = self.full_stdin() {
            return Some(Either::Left(full));
        }
        self.room().map(Either::Right)
    }

    /// The connection failed: says so at the level it deserves. A reset or a close between
    /// requests is how web servers end idle connections (HAProxy resets them).
    pub(crate) fn handle_lost(&mut self, e: DecodeError) {
        self.closed = true;
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

    /// The web server closed the connection.
    pub(crate) fn handle_eof(&mut self) {
        self.closed = true;
        if self.in_progress() {
            tracing::info!("the web server closed the FastCGI connection mid-request");
        }
    }

    /// After every input: a kept connection with no request left starts its keep-alive wait.
    fn settle(&mut self, now: Instant) {
        self.idle_since = match (self.requests.is_empty(), self.idle_since) {
            (true, None) if self.silent_since.is_none() => Some(now),
            (true, since) => since,
            (false, _) => None,
        };
    }

    fn begin(&mut self, id: u16, content: &[u8], now: Instant) {
        match self.requests.get(&id) {
            // END_REQUEST went out: the id is the web server's to reuse (late STDIN of the old
            // request, read until now, is dropped; what follows is the new one's).
            Some(Slot::Finishing { keep_conn, .. }) => {
                tracing::debug!(id, "a new FastCGI request reuses an ended request's id");
                self.closing |= !keep_conn;
                self.requests.remove(&id);
            }
            Some(_) => return self.protocol_error("BEGIN_REQUEST on an active id"),
            None => {}
        }
        let Some(begin) = BeginRequest::parse(content) else {
            return self.protocol_error("short BEGIN_REQUEST");
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
            return self.send(buf);
        }
        self.requests.insert(
            id,
            Slot::Params {
                keep_conn: begin.keep_conn(),
                decoder: ParamsDecoder::new(self.cfg.max_params_size),
                params: CgiParams::new(Protocol::FastCgi),
                refused: None,
                since: now,
            },
        );
    }

    fn params(&mut self, id: u16, content: Bytes, now: Instant) {
        let Some(Slot::Params {
            decoder,
            params,
            refused,
            ..
        }) = self.requests.get_mut(&id)
        else {
            return;
        };
        if content.is_empty() {
            return self.start(id, now);
        }
        if refused.is_some() {
            return; // the rest of the head is read and dropped
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
    }

    /// PARAMS ended: call the app, or answer a refusal without it.
    fn start(&mut self, id: u16, now: Instant) {
        let Some(Slot::Params {
            keep_conn,
            decoder,
            params,
            refused,
            ..
        }) = self.requests.remove(&id)
        else {
            return;
        };
        let (env, unusable) = match params.finish(PathMode::Resplit) {
            Ok(env) => (env, None),
            Err(e) => {
                tracing::debug!(id, error = %e, "bad FastCGI params");
                (Environ::new(Protocol::FastCgi), Some(400))
            }
        };
        let content_length = env.content_length();
        let refused = refused
            .or(unusable)
            .or_else(|| decoder.finish().err().map(|_| 400))
            .or_else(|| {
                let over = content_length.is_some_and(|n| n > self.cfg.max_body_size);
                over.then_some(413)
            });
        if let Some(status) = refused {
            tracing::debug!(id, status, "answering a FastCGI request without the app");
            return self.refuse(id, keep_conn, status, false, now);
        }
        let (stdin, body) = stdin::channel(
            self.cfg.max_body_size,
            content_length,
            self.cfg.body_budget.clone(),
        );
        let (call, abort) = AbortHandle::new_pair();
        self.events.push_back(Event::Start {
            id,
            env,
            body: Body::new(body),
            stdin: stdin.watch(),
            abort,
        });
        self.requests.insert(
            id,
            Slot::Running {
                keep_conn,
                stdin,
                call,
            },
        );
    }

    /// Answers `status` without the app and ends the request; the rest of its STDIN is read
    /// and dropped, unless it has ended already (`stdin_done`).
    fn refuse(&mut self, id: u16, keep_conn: bool, status: u16, stdin_done: bool, now: Instant) {
        let mut buf = BytesMut::new();
        respond::put_error(&mut buf, id, status);
        put_end(&mut buf, id, ProtocolStatus::RequestComplete);
        if stdin_done {
            self.closing |= !keep_conn;
            return self.send(buf);
        }
        self.requests.insert(
            id,
            Slot::Finishing {
                keep_conn,
                since: now,
            },
        );
        self.send(buf);
        self.half_close_unless(keep_conn);
    }

    fn stdin(&mut self, id: u16, content: Bytes, now: Instant) {
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
                self.refuse(id, keep_conn, 400, content.is_empty(), now);
            }
            _ => {}
        }
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
    fn room(&mut self) -> Option<impl Future<Output = ()> + Send + use<>> {
        self.push_held();
        let (id, data) = self.held.as_ref()?;
        match self.requests.get(id) {
            Some(Slot::Running { stdin, .. }) => Some(stdin.room(data.len())),
            _ => None,
        }
    }

    /// When not multiplexing, and the running request's STDIN queue is full: its draining.
    fn full_stdin(&mut self) -> Option<impl Future<Output = ()> + Send + use<>> {
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

    fn abort(&mut self, id: u16) {
        let keep_conn = match self.requests.remove(&id) {
            None => return,
            Some(Slot::Finishing { keep_conn, .. }) => {
                self.closing |= !keep_conn;
                return;
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
        self.send(buf);
    }

    /// After END_REQUEST on a connection without KEEP_CONN, the web server waits for us to
    /// close, and may have stopped sending the request body (nginx does, once it has the whole
    /// response). Closing our side tells it we are done; reading on drains whatever it still
    /// sends, so it never meets a reset.
    fn half_close_unless(&mut self, keep_conn: bool) {
        if keep_conn || self.requests.len() > 1 {
            return;
        }
        self.transmits.push_back(Transmit::HalfClose);
    }

    /// FCGI_GET_VALUES: the values we know, on id 0; unknown names are left out.
    fn get_values(&mut self, content: Bytes) {
        let Ok(names) = decode_pairs(content) else {
            return self.protocol_error("malformed GET_VALUES");
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
        self.send(buf);
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

    fn send(&mut self, buf: BytesMut) {
        self.transmits.push_back(Transmit::Data(buf.freeze()));
    }

    fn protocol_error(&mut self, what: &str) {
        static PROTOCOL: gateway_core::Throttle = gateway_core::Throttle::new();
        if let Some(suppressed) = PROTOCOL.allow() {
            tracing::warn!(
                suppressed,
                "FastCGI protocol error: {what}; closing the connection"
            );
        }
        self.closed = true;
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

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;

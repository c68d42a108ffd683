//! One HTTP/1.1 connection, driven by hyper.

use std::convert::Infallible;
use std::future::{Future, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_core::{App, Body, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::head_timer::{HeadTimer, InRequest, TrackedBody};
use crate::sniff::{Sniffed, Verdict};
use gateway_core::Shutdown;

use crate::{ConnEnviron, ConnInfo, into_http};

/// The limits of the HTTP front-end.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The request body cap: a larger declared length answers 413 before the app runs; a
    /// chunked body fails with 413 once it passes the cap.
    pub max_body_size: u64,
    /// How long a client may take to send a request head (slowloris guard), and how long a
    /// kept connection may idle: cut after one period without a head, or one to two once idle
    /// (one timer per connection, re-armed once per period).
    pub header_read_timeout: Duration,
    /// The most header fields in a request head; more answers 431.
    pub max_headers: usize,
    /// The largest request head in bytes (at least 8192); larger answers 431.
    pub max_head_size: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_size: 100 << 20,
            header_read_timeout: Duration::from_secs(30),
            max_headers: 100,
            max_head_size: 64 << 10,
        }
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it or `shutdown` fires; then
/// the request in flight finishes and the connection closes.
///
/// Keep-alive, pipelining, chunked bodies both ways, `Expect: 100-continue` (sent when the
/// app first reads the body) and HEAD come from hyper. When the client goes away mid-request,
/// hyper drops the app's future.
pub async fn serve_connection<I, A: App>(
    io: I,
    conn: ConnInfo,
    app: Arc<A>,
    config: Arc<HttpConfig>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve(io, conn, app, config, shutdown, None).await;
}

/// [`serve_connection`] for a process that is being replaced while others keep serving the
/// same socket: once `retire` fires, the next response says `Connection: close` and the
/// connection closes after it, so that the client reconnects (to another process) without a
/// request of its own ever meeting a closed connection. An idle connection is not closed for
/// it: it waits for that next request, or its keep-alive timeout, or `shutdown`.
pub async fn serve_connection_retiring<I, A: App>(
    io: I,
    conn: ConnInfo,
    app: Arc<A>,
    config: Arc<HttpConfig>,
    shutdown: CancellationToken,
    retire: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve(io, conn, app, config, shutdown, Some(retire)).await;
}

async fn serve<I, A: App>(
    io: I,
    conn: ConnInfo,
    app: Arc<A>,
    config: Arc<HttpConfig>,
    shutdown: CancellationToken,
    retire: Option<CancellationToken>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, verdict) = Sniffed::new(io, config.max_head_size.max(8192));
    let busy = InRequest::default();
    let io = HeadTimer::new(io, config.header_read_timeout, busy.clone());
    // What every request of the connection needs, behind one Arc of its own: cloning it per
    // request touches no counter another core is touching too.
    let shared = Arc::new(PerConnection {
        app,
        config: config.clone(),
        vars: Mutex::new(ConnEnviron::new(&conn)),
        conn,
        busy,
        verdict,
        next: AtomicUsize::new(0),
        retire,
    });
    let service = service_fn(move |req| {
        shared.busy.start();
        // hyper calls the service in request order: this is the request's index.
        let refused = shared
            .verdict
            .refuses(shared.next.fetch_add(1, Ordering::Relaxed));
        handle(shared.clone(), req, refused)
    });
    // No hyper timer: HeadTimer times heads and idle waits with one timer per connection.
    let served = http1::Builder::new()
        .max_headers(config.max_headers)
        .max_buf_size(config.max_head_size.max(8192))
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let mut shutdown = Shutdown::new(shutdown);
    // Biased: the connection first, without a random pick on every poll.
    let result = tokio::select! {
        biased;
        r = served.as_mut() => r,
        () = &mut shutdown => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, peer = ?conn.remote, "http connection ended with an error");
    }
}

struct PerConnection<A> {
    app: Arc<A>,
    config: Arc<HttpConfig>,
    /// REMOTE_ADDR and the like, formatted once for every request of the connection, and the
    /// buffer its environs reuse. hyper calls the service one request at a time: the lock is
    /// never contended.
    vars: Mutex<ConnEnviron>,
    conn: ConnInfo,
    busy: InRequest,
    verdict: Verdict,
    next: AtomicUsize,
    /// See [`serve_connection_retiring`].
    retire: Option<CancellationToken>,
}

/// The response to one request. What needs no waiting (the checks, the environ) is done now,
/// and the future holds the app's call and what it is called with, not the request head:
/// hyper moves a request's future into place, so every byte of it is copied per request.
fn handle<A: App>(
    shared: Arc<PerConnection<A>>,
    req: http::Request<Incoming>,
    framed_twice: bool,
) -> Either<Ready<Answer>, impl Future<Output = Answer>> {
    let (parts, incoming) = req.into_parts();
    let (env, body) = match admit(&shared, &parts, incoming, framed_twice) {
        Ok(call) => call,
        Err(refusal) => {
            return Either::Left(std::future::ready(answer(&shared, into_http(refusal))));
        }
    };
    Either::Right(async move {
        let res = into_http(shared.app.call(env, body).await);
        answer(&shared, res)
    })
}

/// What hyper gets back for a request.
type Answer = Result<http::Response<TrackedBody>, Infallible>;

/// `res`, marked as its connection's last when the process is retiring, its end tracked.
fn answer<A>(shared: &PerConnection<A>, mut res: http::Response<Body>) -> Answer {
    if shared.retire.as_ref().is_some_and(|r| r.is_cancelled()) {
        res.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Ok(res.map(|body| shared.busy.track(body)))
}

/// The app's environ and body for a request, or the response that refuses it.
fn admit<A>(
    shared: &PerConnection<A>,
    parts: &http::request::Parts,
    incoming: Incoming,
    framed_twice: bool,
) -> Result<(gateway_core::Environ, Body), Response> {
    let PerConnection { config, conn, .. } = shared;
    let seen_raw = framed_twice.then_some((
        400,
        "a repeated Content-Length, or one beside Transfer-Encoding",
    ));
    if let Some((status, reason)) = seen_raw.or_else(|| crate::ambiguity(parts)) {
        static SMUGGLING: gateway_core::Throttle = gateway_core::Throttle::new();
        if let Some(suppressed) = SMUGGLING.allow() {
            tracing::warn!(reason, peer = ?conn.remote, suppressed, "refusing an ambiguous request (request smuggling)");
        }
        return Err(Response::error(status).with_header("Connection", "close"));
    }
    let mut vars = shared.vars.lock().unwrap_or_else(PoisonError::into_inner);
    if let Err(reason) = vars.check_host(parts) {
        tracing::info!(reason, peer = ?conn.remote, "refusing a request for its Host (RFC 9112 §3.2)");
        return Err(Response::error(400).with_header("Connection", "close"));
    }
    if let Some(why) = gateway_core::ambiguous_path(parts.uri.path().as_bytes()) {
        tracing::info!(peer = ?conn.remote, "refusing a path that holds {why}");
        return Err(Response::error(400));
    }
    // hyper's declared length is the Content-Length field, already parsed.
    if http_body::Body::size_hint(&incoming)
        .exact()
        .is_some_and(|n| n > config.max_body_size)
    {
        return Err(Response::error(413).with_header("Connection", "close"));
    }
    let env = vars.environ(parts);
    // Most requests have no body: an empty one costs no allocation.
    let body = match http_body::Body::is_end_stream(&incoming) {
        true => Body::empty(),
        false => Body::new(incoming).limit(config.max_body_size),
    };
    Ok((env, body))
}

//! One request per connection (SCGI, uwsgi): read the head, call the app, write the response,
//! close. The protocol supplies only its [`Framing`].

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gateway_core::{App, Body, Drain, Response, ResponseWriter};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::body::ScgiBody;
use crate::framing::{Framing, Scgi};

/// The limits of an SCGI (or uwsgi) listener.
#[derive(Clone, Debug)]
pub struct ScgiConfig {
    /// The most bytes of the request head (SCGI's netstring, uwsgi's vars); over it: 431.
    pub max_header_size: usize,
    /// The request body cap; a larger CONTENT_LENGTH answers 413 without the app.
    pub max_body_size: u64,
    /// How long the web server may take to send the head.
    pub header_read_timeout: Duration,
}

impl Default for ScgiConfig {
    fn default() -> Self {
        ScgiConfig {
            max_header_size: 64 << 10,
            max_body_size: 100 << 20,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// How long unread body bytes are drained before the connection closes: the web server
/// writes the whole request before it reads the answer, and cutting it off would turn our
/// answer (a 413, or a response that ignores the body) into its 502.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Serves the one request of an SCGI connection: [`serve_framed`] with SCGI's [`Framing`].
pub async fn serve_connection<IO, A: App>(io: IO, app: Arc<A>, cfg: Arc<ScgiConfig>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    serve_framed::<Scgi, IO, A>(io, app, cfg).await;
}

/// Serves the one request of a connection framed by `F`. Malformed input gets its status
/// (400, 431, ...) and the connection closes; when the web server closes the connection while
/// the app runs, the app's call is cancelled.
///
/// The daemon's shutdown does not cut the wait for the head: a connection is one request,
/// and one the listener accepted (or took from its backlog) as it stopped carries a request
/// the web server has sent or is sending. Closing it would fail that request, so it is
/// served; `header_read_timeout` bounds the wait, and the daemon's `shutdown_timeout` the
/// whole drain.
pub async fn serve_framed<F: Framing, IO, A: App>(io: IO, app: Arc<A>, cfg: Arc<ScgiConfig>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(io);
    let header = tokio::time::timeout(
        cfg.header_read_timeout,
        read_head::<F, _>(&mut read, cfg.max_header_size),
    )
    .await;
    let (header, early) = match header {
        Err(_) => {
            tracing::debug!(protocol = F::NAME, "the request head timed out");
            let _ = answer::<F, _>(&mut write, Response::error(408)).await;
            return;
        }
        Ok(Err(None)) => return, // closed before a header: nothing to answer
        Ok(Err(Some(status))) => {
            let _ = answer::<F, _>(&mut write, Response::error(status)).await;
            return;
        }
        Ok(Ok(pair)) => pair,
    };
    let (environ, content_length) = header;
    if content_length > cfg.max_body_size {
        let _ = answer::<F, _>(&mut write, Response::error(413)).await;
        drain(read, content_length.saturating_sub(early.len() as u64)).await;
        return;
    }
    let head_only = environ.method() == "HEAD";
    let (back_tx, mut back_rx) = oneshot::channel();
    let body = ScgiBody::new(read, early.freeze(), content_length, back_tx);
    let body = Body::new(body).limit(cfg.max_body_size);
    let call = async {
        let res = app.call(environ, body).await;
        write_response::<F, _>(&mut write, res, head_only).await
    };
    // While the app runs, a closed connection (seen once the body is consumed) cancels it.
    let mut watched = None;
    let result = tokio::select! {
        biased;
        r = call => Ok(r),
        closed = watch_close(&mut back_rx, &mut watched) => Err(closed),
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(protocol = F::NAME, error = %e, "response cut short"),
        Err(()) => {
            tracing::debug!(
                protocol = F::NAME,
                "the web server closed the connection; the app call is cancelled"
            );
            return;
        }
    }
    // Whole body read (always so for a GET): dropping both halves closes with a plain FIN, and
    // `shutdown` would be a syscall for nothing. Otherwise, FIN first, then drain what is left so
    // the close does not turn into a reset that loses our answer.
    match watched.or_else(|| back_rx.try_recv().ok()) {
        Some((_, 0)) => {}
        Some((read, left)) => {
            let _ = write.shutdown().await;
            drain(read, left).await;
        }
        None => {
            let _ = write.shutdown().await;
        }
    }
}

/// Reads until the head is complete: `Err(None)` when the peer closed before sending
/// anything, `Err(Some(status))` for a head to refuse (logged by the framing).
async fn read_head<F: Framing, R: AsyncRead + Unpin>(
    read: &mut R,
    max: usize,
) -> Result<((gateway_core::Environ, u64), BytesMut), Option<u16>> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(len) = F::head_len(&buf, max).map_err(Some)? {
            let head = buf.split_to(len).freeze();
            let (environ, content_length) = F::parse(&head, max).map_err(Some)?;
            buf.truncate(
                buf.len()
                    .min(usize::try_from(content_length).unwrap_or(usize::MAX)),
            );
            return Ok(((environ, content_length), buf));
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(None),
            Ok(0) | Err(_) => return Err(Some(F::truncated(&buf))),
            Ok(_) => {}
        }
    }
}

/// Resolves when the web server closes the connection, once the app has consumed (or
/// dropped) the body and handed the read half back; never resolves before that. The read half
/// and the count of body bytes still unread live in `slot`, so they outlive this future when
/// the app finishes first.
async fn watch_close<R: AsyncRead + Unpin>(
    back: &mut oneshot::Receiver<(R, u64)>,
    slot: &mut Option<(R, u64)>,
) {
    let Ok(returned) = back.await else {
        return std::future::pending().await;
    };
    let (read, left) = slot.insert(returned);
    let mut scratch = [0u8; 4096];
    loop {
        match read.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(n) if *left > 0 => *left = left.saturating_sub(n as u64),
            // Bytes past the body: not the protocol, but nothing to cancel for.
            Ok(_) => return std::future::pending().await,
        }
    }
}

/// Reads and drops what is left of the body, for at most [`DRAIN_TIME`].
async fn drain<R: AsyncRead + Unpin>(mut read: R, left: u64) {
    let mut drain = Drain::new(left, Instant::now().into_std(), DRAIN_TIME, DRAIN_TIME);
    let mut scratch = vec![0u8; drain.want(64 << 10)];
    while let Some(deadline) = drain.deadline() {
        let want = drain.want(scratch.len());
        match tokio::time::timeout_at(deadline.into(), read.read(&mut scratch[..want])).await {
            Ok(Ok(n)) => drain.read(n, Instant::now().into_std()),
            _ => return,
        }
    }
}

/// Writes a whole response, then closes.
async fn answer<F: Framing, W: AsyncWrite + Unpin>(
    write: &mut W,
    res: Response,
) -> std::io::Result<()> {
    write_response::<F, _>(write, res, false).await?;
    write.shutdown().await
}

/// The response: head in `F`'s style, then the body as the app yields it (none for HEAD); a
/// small body of known length goes out with the head in one write.
async fn write_response<F: Framing, W: AsyncWrite + Unpin>(
    write: &mut W,
    res: Response,
    head_only: bool,
) -> std::io::Result<()> {
    let (mut w, mut body) = ResponseWriter::with_style(res, head_only, F::STYLE);
    loop {
        while let Some(bytes) = w.poll_write() {
            write.write_all(&bytes).await?;
        }
        if w.is_done() {
            return Ok(());
        }
        match body.chunk().await.map_err(std::io::Error::other)? {
            Some(chunk) => w.push(chunk),
            None => w.end(),
        }
    }
}

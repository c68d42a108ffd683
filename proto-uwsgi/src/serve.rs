//! One uwsgi connection: read the packet, call the app, write the response, close.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gateway_core::{App, Body, Drain, HeadStyle, Response, ResponseWriter};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::UwsgiBody;
use crate::parse::{HEADER_LEN, Header, UwsgiError, packet_len, parse};

/// The limits of a uwsgi listener.
#[derive(Clone, Debug)]
pub struct UwsgiConfig {
    /// The most bytes of vars (`datasize`, itself at most 65,535); over it: 431.
    pub max_header_size: usize,
    /// The request body cap; a larger CONTENT_LENGTH answers 413 without the app.
    pub max_body_size: u64,
    /// How long the web server may take to send the header and vars.
    pub header_read_timeout: Duration,
}

impl Default for UwsgiConfig {
    fn default() -> Self {
        UwsgiConfig {
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

/// The head style of every uwsgi answer: an HTTP status line (see the crate docs).
const STYLE: HeadStyle = HeadStyle::StatusLine;

/// Serves the one request of a uwsgi connection. A refused packet gets a 400 (501 for a
/// modifier1 other than 0, 431 for vars over the cap) and a log line, and the connection
/// closes; when the web server closes the connection while the app runs, the app's call is
/// cancelled.
///
/// The daemon's shutdown does not cut the wait for the packet, as for SCGI: a connection the
/// listener accepted as it stopped carries a request the web server has sent or is sending.
/// `header_read_timeout` bounds the wait, and the daemon's `shutdown_timeout` the whole drain.
pub async fn serve_connection<IO, A: App>(
    io: IO,
    app: Arc<A>,
    cfg: Arc<UwsgiConfig>,
    _shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(io);
    let header = tokio::time::timeout(
        cfg.header_read_timeout,
        read_header(&mut read, cfg.max_header_size),
    )
    .await;
    let (header, early) = match header {
        Err(_) => {
            tracing::debug!("uwsgi packet timed out");
            let _ = answer(&mut write, Response::error(408)).await;
            return;
        }
        Ok(Err(None)) => return, // closed before a packet: nothing to answer
        Ok(Err(Some(status))) => {
            let _ = answer(&mut write, Response::error(status)).await;
            return;
        }
        Ok(Ok(pair)) => pair,
    };
    if header.content_length > cfg.max_body_size {
        let _ = answer(&mut write, Response::error(413)).await;
        drain(
            read,
            header.content_length.saturating_sub(early.len() as u64),
        )
        .await;
        return;
    }
    let head_only = header.environ.method() == "HEAD";
    let (back_tx, mut back_rx) = oneshot::channel();
    let body = UwsgiBody::new(read, early.freeze(), header.content_length, back_tx);
    let body = Body::new(body).limit(cfg.max_body_size);
    let call = async {
        let res = app.call(header.environ, body).await;
        write_response(&mut write, res, head_only).await
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
        Ok(Err(e)) => tracing::debug!(error = %e, "uwsgi response cut short"),
        Err(()) => {
            tracing::debug!(
                "the web server closed the uwsgi connection; the app call is cancelled"
            );
            return;
        }
    }
    // Whole body read (always so for a GET): dropping both halves closes with a plain FIN.
    // Otherwise, FIN first, then drain what is left so the close does not turn into a reset
    // that loses our answer.
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

/// Reads until the packet's header and vars are complete: `Err(None)` when the peer closed
/// before sending anything, `Err(Some(status))` for a packet to refuse (logged here).
async fn read_header<R: AsyncRead + Unpin>(
    read: &mut R,
    max: usize,
) -> Result<(Header, BytesMut), Option<u16>> {
    let mut buf = BytesMut::with_capacity(4096);
    let refuse = |e: UwsgiError| {
        match e {
            UwsgiError::Modifier1(_) => tracing::warn!(error = %e, "uwsgi request refused"),
            _ => tracing::info!(error = %e, "malformed uwsgi request"),
        }
        Some(e.status())
    };
    loop {
        if let Some(len) = packet_len(&buf, max).map_err(refuse)? {
            let head = buf.split_to(len).freeze();
            let header = parse(&head, max).map_err(refuse)?.ok_or(Some(400))?;
            buf.truncate(
                buf.len()
                    .min(usize::try_from(header.content_length).unwrap_or(usize::MAX)),
            );
            return Ok((header, buf));
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(None),
            Ok(0) | Err(_) => {
                let want = match buf.get(1..3) {
                    Some(&[lo, hi]) if buf.len() >= HEADER_LEN => {
                        HEADER_LEN + usize::from(u16::from_le_bytes([lo, hi]))
                    }
                    _ => HEADER_LEN,
                };
                return Err(refuse(UwsgiError::Truncated {
                    got: buf.len(),
                    want,
                }));
            }
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
            // Bytes past the body: not uwsgi, but nothing to cancel for.
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
async fn answer<W: AsyncWrite + Unpin>(write: &mut W, res: Response) -> std::io::Result<()> {
    write_response(write, res, false).await?;
    write.shutdown().await
}

/// The response: status line and head, then the body as the app yields it (none for HEAD);
/// a small body of known length goes out with the head in one write.
async fn write_response<W: AsyncWrite + Unpin>(
    write: &mut W,
    res: Response,
    head_only: bool,
) -> std::io::Result<()> {
    let (mut w, mut body) = ResponseWriter::with_style(res, head_only, STYLE);
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

//! The tokio driver of one FastCGI connection: a thin loop around the sans-IO
//! [`Connection`] (read a record → feed it; an app call ends → feed it; the timer fires →
//! feed the time; then write what the machine queued), the app calls it starts, driven in
//! place (no task per request, no hop to another thread), and one writer task that owns the
//! socket's write half and is shared with the calls streaming their responses.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::future::{Abortable, Aborted, BoxFuture};
use futures_util::stream::FuturesUnordered;
use gateway_core::App;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::codec::RecordDecoder;
use crate::config::FastCgiConfig;
use crate::connection::{Connection, Event, Transmit};
use crate::respond::{self, Done};

/// One app call and the writing of its response, ending with its [`Done`] (or `Err` once
/// aborted).
type Call = BoxFuture<'static, Result<Done, Aborted>>;

/// Serves FastCGI on one connection until the web server closes it, a request without
/// KEEP_CONN ends, the input is not FastCGI, or `shutdown` fires and nothing is in flight.
/// When the connection is lost, every running app call is cancelled.
pub async fn serve_connection<IO, A: App>(
    io: IO,
    app: Arc<A>,
    cfg: Arc<FastCgiConfig>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel(32);
    let (half_close, half_closed) = oneshot::channel();
    let mut half_close = Some(half_close);
    let writer = tokio::spawn(write_loop(wr, out_rx, half_closed));
    let mut calls = FuturesUnordered::<Call>::new();
    let mut conn = Connection::new(cfg, Instant::now().into_std());
    let mut frames = FramedRead::new(rd, RecordDecoder);
    // Polled on every turn of the loop: looked at only after its own wake-up.
    let mut cancelled = gateway_core::Shutdown::new(shutdown);
    // One timer for the head and keep-alive deadlines, moved only to an earlier deadline: one
    // that moves later (every request moves them) is looked at when the timer fires, so a
    // request does not insert a timer into the wheel and take it out again.
    let timer = tokio::time::sleep_until(far_future());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    'conn: loop {
        while let Some(transmit) = conn.poll_transmit() {
            match transmit {
                Transmit::Data(buf) => {
                    if out.send(buf).await.is_err() {
                        break 'conn;
                    }
                }
                Transmit::HalfClose => {
                    if let Some(signal) = half_close.take() {
                        let _ = signal.send(());
                    }
                }
            }
        }
        if conn.is_done() {
            break;
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Start {
                    id,
                    env,
                    body,
                    stdin,
                    abort,
                } => {
                    let run = respond::run(id, env, body, stdin, app.clone(), out.clone());
                    calls.push(Box::pin(Abortable::new(run, abort)));
                }
            }
        }
        if let Some(deadline) = conn.poll_timeout().map(Instant::from_std)
            && armed.is_none_or(|at| deadline < at)
        {
            timer.as_mut().reset(deadline);
            armed = Some(deadline);
        }
        let gate = conn.read_gate();
        let paused = gate.is_some();
        tokio::select! {
            biased;
            Some(done) = calls.next(), if !calls.is_empty() => {
                if let Ok(done) = done {
                    conn.handle_finished(done, Instant::now().into_std());
                }
            }
            () = async { if let Some(g) = gate { g.await } }, if paused => {}
            record = frames.next(), if !paused => match record {
                Some(Ok(record)) => conn.handle_record(record, Instant::now().into_std()),
                Some(Err(e)) => conn.handle_lost(e),
                None => conn.handle_eof(),
            },
            () = &mut timer, if armed.is_some() => {
                conn.handle_timeout(Instant::now().into_std());
                armed = conn.poll_timeout().map(Instant::from_std);
                if let Some(deadline) = armed {
                    timer.as_mut().reset(deadline);
                }
            }
            () = &mut cancelled, if !conn.is_draining() => conn.handle_shutdown(),
        }
    }
    // Aborts the bodies and cancels the calls still running; then the writer sees every
    // sender gone and closes.
    drop(conn);
    drop(calls);
    drop(out);
    let _ = writer.await;
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Owns the write half: writes whole buffers, coalescing what is already queued into one
/// write, and closes the socket when every sender is gone, or when `half_close` fires, once
/// what was queued before it is written. (An empty buffer is just nothing to write: an app
/// may stream an empty chunk.)
async fn write_loop<W: AsyncWrite>(
    wr: W,
    mut rx: mpsc::Receiver<Bytes>,
    mut half_close: oneshot::Receiver<()>,
) {
    tokio::pin!(wr);
    let mut batch = BytesMut::new();
    // Until the driver either fires it or drops it (it ended: the senders go with it).
    let mut signal = true;
    let mut closed = false;
    loop {
        // Biased: what is queued goes out before the half-close that followed it.
        let first = tokio::select! {
            biased;
            first = rx.recv() => match first {
                Some(first) => first,
                None => break,
            },
            fired = &mut half_close, if signal => {
                signal = false;
                closed = fired.is_ok();
                match closed {
                    true => break,
                    false => continue,
                }
            }
        };
        let Ok(next) = rx.try_recv() else {
            // The usual case, one buffer queued: write it as it is.
            if let Err(e) = wr.write_all(&first).await {
                tracing::debug!(error = %e, "FastCGI connection lost while writing");
                return;
            }
            continue;
        };
        batch.extend_from_slice(&first);
        batch.extend_from_slice(&next);
        while batch.len() < 256 << 10 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&batch).await {
            tracing::debug!(error = %e, "FastCGI connection lost while writing");
            return;
        }
        batch.clear();
    }
    let _ = wr.shutdown().await;
    if closed {
        // Nothing more goes out, but no sender may wait on a full queue.
        while rx.recv().await.is_some() {}
    }
}

//! The tokio driver of one FastCGI connection: a thin loop around the sans-IO
//! [`Connection`] (read a record → feed it; an app call ends → feed it; the timer fires →
//! feed the time; then write what the machine queued), the app calls it starts, driven in
//! place (no task per request, no hop to another thread), and one writer that owns the
//! socket's write half and is shared with the calls streaming their responses. The writer
//! runs in the connection's own task, polled right after the loop ([`join`](crate::join)).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt as _;
use futures_util::future::{Abortable, Aborted, BoxFuture};
use futures_util::stream::FuturesUnordered;
use gateway_core::App;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Decoder as _, FramedRead};
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
    crate::join::join(drive(rd, out, app, cfg, shutdown), write_loop(wr, out_rx)).await;
}

/// The loop: reads records, starts and finishes calls, queues what the machine transmits on
/// `out`, until the connection is done; then drops every sender, which ends the writer.
async fn drive<R: AsyncRead + Unpin, A: App>(
    rd: R,
    out: mpsc::Sender<Transmit>,
    app: Arc<A>,
    cfg: Arc<FastCgiConfig>,
    shutdown: CancellationToken,
) {
    let mut calls = FuturesUnordered::<Call>::new();
    let mut conn = Connection::new(cfg, Instant::now().into_std());
    let mut frames = FramedRead::new(rd, RecordDecoder);
    // Polled on every turn of the loop that waits: looked at only after its own wake-up. Made
    // at the first wait: a connection per request (nginx's default) is usually served
    // without one, its records and its answer each ready when looked for.
    let mut cancelled: Option<gateway_core::Shutdown> = None;
    // One timer for the head and keep-alive deadlines, moved only to an earlier deadline: one
    // that moves later (every request moves them) is looked at when the timer fires, so a
    // request does not insert a timer into the wheel and take it out again.
    let timer = tokio::time::sleep_until(far_future());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    'conn: loop {
        // Data and half-close go down the one queue the calls write to, so the writer sees
        // them in the order they were queued.
        while let Some(transmit) = conn.poll_transmit() {
            if out.send(transmit).await.is_err() {
                break 'conn;
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
        // A record already read goes before a call that has finished: nginx sends a GET's
        // end of STDIN with its PARAMS, and once it is handled the request is known to be
        // read whole when its response ends, so a connection without KEEP_CONN simply closes
        // (no half-close and reading on for what the web server might still send).
        if !paused && !calls.is_empty() {
            match RecordDecoder.decode(frames.read_buffer_mut()) {
                Ok(Some(record)) => {
                    conn.handle_record(record, Instant::now().into_std());
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    conn.handle_lost(e);
                    continue;
                }
            }
        }
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
            () = async {
                cancelled
                    .get_or_insert_with(|| gateway_core::Shutdown::new(shutdown.clone()))
                    .await;
            }, if !conn.is_draining() => conn.handle_shutdown(),
        }
    }
    // Aborts the bodies and cancels the calls still running; then the writer sees every
    // sender gone and closes.
    drop(conn);
    drop(calls);
    drop(out);
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Owns the write half: writes whole buffers, coalescing what is already queued into one
/// write, until every sender is gone (the connection ends, and closes as its halves drop), or
/// until [`Transmit::HalfClose`], once what was queued before it is written. (An empty buffer
/// is just nothing to write: an app may stream an empty chunk.)
///
/// The half-close comes down the same queue as the data, never on a channel of its own: a
/// writer that polls two channels one after the other can find the data queue empty, then
/// the signal set, when the response and the signal were queued between its two polls (as
/// happened when the writer was a task of its own, on the other worker thread); it then
/// closed with the response unwritten, and the web server saw a connection closed before any
/// response header. One queue keeps the order wherever the writer runs.
async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Transmit>) {
    tokio::pin!(wr);
    let mut batch = BytesMut::new();
    let mut closed = false;
    while !closed {
        let first = match rx.recv().await {
            Some(Transmit::Data(first)) => first,
            Some(Transmit::HalfClose) => {
                closed = true;
                break;
            }
            None => break,
        };
        let next = match rx.try_recv() {
            Ok(Transmit::Data(next)) => Some(next),
            Ok(Transmit::HalfClose) => {
                closed = true;
                None
            }
            Err(_) => None,
        };
        let Some(next) = next else {
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
                Ok(Transmit::Data(more)) => batch.extend_from_slice(&more),
                Ok(Transmit::HalfClose) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&batch).await {
            tracing::debug!(error = %e, "FastCGI connection lost while writing");
            return;
        }
        batch.clear();
    }
    if closed {
        // The driver reads on (see `Connection::half_close_unless`): our FIN must go now.
        let _ = wr.shutdown().await;
        // Nothing more goes out, but no sender may wait on a full queue.
        while rx.recv().await.is_some() {}
    } else {
        // The connection ends with this task: dropping both halves closes it with a FIN of
        // its own, so `shutdown` would be a system call for nothing (every request, for
        // nginx's default `fastcgi_keep_conn off`). Nothing changes for unread input, which
        // makes `close` send a reset with or without a `shutdown` before it.
        let _ = wr.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use bytes::Bytes;
    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// The driver queues a response and then the half-close from one worker thread while the
    /// writer runs its first poll on the other. With the half-close on a channel of its own,
    /// the writer could poll the empty data queue, then find the signal set by then, and close
    /// before the response (97 times in 20,000 here): nginx logged "upstream prematurely
    /// closed connection while reading response header" for an instance that was not even
    /// stopping. On the one queue, the response always goes out first.
    #[test]
    fn what_is_queued_before_the_half_close_is_written_first() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        for round in 0..5_000 {
            let (mut web_server, ours) = tokio::io::duplex(1 << 16);
            let (out, rx) = mpsc::channel(32);
            let polled = Arc::new(AtomicBool::new(false));
            let writer = rt.spawn({
                let polled = polled.clone();
                async move {
                    polled.store(true, Ordering::Release);
                    write_loop(ours, rx).await
                }
            });
            while !polled.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let response = Transmit::Data(Bytes::from_static(b"response"));
            out.blocking_send(response).unwrap();
            out.blocking_send(Transmit::HalfClose).unwrap();
            drop(out);
            rt.block_on(writer).unwrap();
            let mut got = Vec::new();
            rt.block_on(web_server.read_to_end(&mut got)).unwrap();
            assert_eq!(got, b"response", "round {round}");
        }
    }

    #[tokio::test]
    async fn nothing_goes_out_after_the_half_close() {
        let (mut web_server, ours) = tokio::io::duplex(1 << 16);
        let (out, rx) = mpsc::channel(32);
        for t in [
            Transmit::Data(Bytes::from_static(b"a")),
            Transmit::Data(Bytes::new()),
            Transmit::Data(Bytes::from_static(b"b")),
            Transmit::HalfClose,
            Transmit::Data(Bytes::from_static(b"late")),
        ] {
            out.send(t).await.unwrap();
        }
        let writer = tokio::spawn(write_loop(ours, rx));
        let mut got = Vec::new();
        web_server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ab", "closed after what came before the half-close");
        // The writer drains the queue until every sender is gone, so none waits on it.
        drop(out);
        writer.await.unwrap();
    }
}

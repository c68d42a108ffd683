//! The request body on stdin. A CGI host may keep stdin open after the body (RFC 3875 §4.2),
//! so a read of it may never return: it happens on a thread of its own, which nothing waits
//! for, and the process exits once it has answered even while that thread is still blocked.
//! Reads go to the descriptor itself, not through std's buffered stdin, so that no byte past
//! CONTENT_LENGTH is taken from the host.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::AsFd as _;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use gateway_core::{Body, Drain};
use tokio::sync::mpsc;

/// The most bytes of one read.
const CHUNK: usize = 64 << 10;

/// How long a drain waits for the next bytes, and for all of them.
const DRAIN_IDLE: Duration = Duration::from_secs(1);
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// Exactly `len` bytes of stdin: stdin ending sooner is an error of the body (the app's read
/// fails, and an app that answers it answers 400), never a silently short body.
pub(super) fn exact(len: u64) -> Body {
    spawn(Some(len))
}

/// Stdin up to its end: the body of a chunked request a host streams without a length.
pub(super) fn to_end() -> Body {
    spawn(None)
}

/// Reads and drops up to `len` bytes of stdin while the host goes on sending them (a host
/// still writing the body of a refused request would otherwise meet a broken pipe and drop
/// the answer, as Apache does), for at most [`DRAIN_MAX`]; a host that sends nothing for
/// [`DRAIN_IDLE`] is not waited for.
pub(super) fn drain(len: u64) {
    let Ok(mut stdin) = stdin() else {
        return;
    };
    let mut drain = Drain::new(len, Instant::now(), DRAIN_MAX, DRAIN_IDLE);
    // The reads block, so they happen on a thread that says what each one got; the bounds
    // are kept here. One read at a time: the reader waits for the next `want`.
    let (want_tx, want_rx) = std_mpsc::channel::<usize>();
    let (got_tx, got_rx) = std_mpsc::channel::<usize>();
    let reader = std::thread::Builder::new()
        .name("cgi-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            while let Ok(want) = want_rx.recv() {
                let n = loop {
                    match stdin.read(&mut buf[..want.min(CHUNK)]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(n) => break n,
                        Err(_) => break 0,
                    }
                };
                if got_tx.send(n).is_err() || n == 0 {
                    return;
                }
            }
        });
    if reader.is_err() {
        return;
    }
    while let Some(deadline) = drain.deadline() {
        if want_tx.send(drain.want(CHUNK)).is_err() {
            return;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match got_rx.recv_timeout(wait) {
            Ok(n) => drain.read(n, Instant::now()),
            // Silent too long, past the deadline, or the reader is gone: no more waiting.
            Err(_) => return,
        }
    }
}

/// A body fed by a reader thread of `len` bytes of stdin, or of all of it.
fn spawn(len: Option<u64>) -> Body {
    // One chunk in flight: the reader stays at most one chunk ahead of the app.
    let (tx, rx) = mpsc::channel(1);
    let started = stdin().and_then(|stdin| {
        std::thread::Builder::new()
            .name("cgi-stdin".into())
            .spawn(move || pump(stdin, len, &tx))
    });
    if let Err(e) = started {
        tracing::error!("cannot read stdin: {e}");
        return Body::from_stream(stream::iter([Err::<Bytes, _>(e)]));
    }
    Body::from_stream(stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    }))
}

/// Sends stdin's bytes to the body, in chunks, until `len` of them or its end (an error when
/// `len` is not reached), or until the app drops the body.
fn pump(mut stdin: File, len: Option<u64>, tx: &mpsc::Sender<io::Result<Bytes>>) {
    let mut buf = vec![0u8; CHUNK];
    let mut left = len.unwrap_or(u64::MAX);
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let item = match stdin.read(&mut buf[..want]) {
            Ok(0) if len.is_none() => return,
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stdin ended {left} bytes before the end of CONTENT_LENGTH"),
            )),
            Ok(n) => {
                left -= n as u64;
                Ok(Bytes::copy_from_slice(&buf[..n]))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// Stdin as an unbuffered file of its own (a duplicate of descriptor 0).
fn stdin() -> io::Result<File> {
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

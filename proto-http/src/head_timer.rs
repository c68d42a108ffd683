//! The head timeout (slowloris guard) and the keep-alive timeout, with one timer per connection
//! that is re-armed once per period rather than once per request.
//!
//! hyper's own `header_read_timeout` allocates and registers a fresh timer for every request
//! head: on a busy keep-alive connection that is a good share of the request's cost. Here the
//! timer runs on; when it fires, a connection that completed a head or wrote a response since
//! it was armed gets another period, and one that did neither while waiting for a head is cut.
//! A silent or slow connection is cut after one period; an idle kept one after one to two.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{Body, BodyError};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::sniff::Sniffed;

/// Whether a request of the connection is being answered: from the service call to the end
/// of its response body. hyper reads meanwhile (to notice a client that goes away), and those
/// reads are not a wait for a head.
#[derive(Clone, Default)]
pub(crate) struct InRequest(Arc<AtomicBool>);

impl InRequest {
    /// A request starts (hyper called the service).
    pub(crate) fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// The request's response: the request ends when this body is dropped (written in full,
    /// or abandoned).
    pub(crate) fn track(&self, body: Body) -> TrackedBody {
        TrackedBody {
            body,
            busy: self.clone(),
        }
    }
}

/// A response body that marks its request over when dropped.
pub(crate) struct TrackedBody {
    body: Body,
    busy: InRequest,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.busy.0.store(false, Ordering::Relaxed);
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A watched connection whose reads fail with `TimedOut` once it has waited for a request head
/// for a whole period without progress.
pub(crate) struct HeadTimer<IO> {
    io: Sniffed<IO>,
    busy: InRequest,
    period: Duration,
    /// Armed on the first read; then reset only when it fires.
    timer: Option<Pin<Box<Sleep>>>,
    /// The waker the timer was last polled with: until it fires, a wait of the same task need
    /// not poll it again (each poll registers the waker anew, with locked instructions).
    polled_by: Option<Waker>,
    /// Heads seen when the timer was last armed.
    heads: usize,
    /// A response was written since the timer was last armed.
    wrote: bool,
}

impl<IO> HeadTimer<IO> {
    /// Times the heads read through `io`, but not while `busy` says a request is answered.
    pub(crate) fn new(io: Sniffed<IO>, period: Duration, busy: InRequest) -> Self {
        HeadTimer {
            io,
            busy,
            period,
            timer: None,
            polled_by: None,
            heads: 0,
            wrote: false,
        }
    }

    /// `Ready(Err)` once the period passed without progress while waiting for a head.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.io.awaits_head() || self.busy.0.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        let period = self.period;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
        let same_task = self
            .polled_by
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if same_task && !timer.is_elapsed() {
            return Poll::Pending;
        }
        if !same_task {
            self.polled_by = Some(cx.waker().clone());
        }
        loop {
            ready!(timer.as_mut().poll(cx));
            let heads = self.io.heads();
            if heads == self.heads && !self.wrote {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request head within the head or keep-alive timeout",
                )));
            }
            self.heads = heads;
            self.wrote = false;
            // Saturating, as `tokio::time::sleep` does: a period of years must not overflow.
            let next = Instant::now().checked_add(period);
            timer
                .as_mut()
                .reset(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365)));
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadTimer<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        // Data that completes no head is no progress: a slow head runs out of time as it trickles.
        let waiting = match &read {
            Poll::Pending => true,
            Poll::Ready(Ok(())) => buf.filled().len() > before && this.io.awaits_head(),
            Poll::Ready(Err(_)) => false,
        };
        if waiting && let Poll::Ready(Err(e)) = this.poll_expired(cx) {
            return Poll::Ready(Err(e));
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeadTimer<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, data);
        self.wrote |= matches!(written, Poll::Ready(Ok(n)) if n > 0);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote |= matches!(written, Poll::Ready(Ok(n)) if n > 0);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

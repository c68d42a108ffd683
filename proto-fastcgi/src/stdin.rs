//! STDIN as a streamed request body, with backpressure per request.
//!
//! The reader pushes each STDIN record into the request's queue; the app's body pops it. When
//! the queue passes its high-water mark, the connection's reader may wait for the app to
//! drain it ([`StdinSender::drained`]): it does so when the connection does not multiplex
//! (nginx's case), which pushes back on the web server through TCP. When it multiplexes,
//! waiting would stall the other requests (Go's net/http/fcgi does), so the reader keeps going
//! and the queue is bounded by the body cap instead.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use gateway_core::{BodyError, BoxError};
use http_body::Frame;
use tokio::sync::Notify;

/// Past this many queued bytes the queue is full.
const HIGH_WATER: usize = 256 << 10;

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    queued: usize,
    received: u64,
    ended: bool,
    /// The body was dropped: nobody reads any more.
    gone: bool,
    /// Why the stream failed: the body cap was passed, or the request was abandoned.
    failed: Option<Failure>,
    waker: Option<Waker>,
}

#[derive(Clone, Copy)]
enum Failure {
    TooLarge(u64),
    Aborted,
}

struct Shared {
    state: Mutex<State>,
    drained: Notify,
    limit: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queue consistent: take it anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reader's end.
pub struct StdinSender {
    shared: Arc<Shared>,
}

/// The app's end: an [`http_body::Body`].
pub struct StdinBody {
    shared: Arc<Shared>,
}

/// A queue whose body fails with 413 past `limit` bytes.
pub fn channel(limit: u64) -> (StdinSender, StdinBody) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        drained: Notify::new(),
        limit,
    });
    (
        StdinSender {
            shared: shared.clone(),
        },
        StdinBody { shared },
    )
}

impl StdinSender {
    /// Queues one record's data; an empty record ends the stream.
    pub fn push(&self, data: Bytes) {
        let mut s = self.shared.lock();
        if s.ended || s.failed.is_some() {
            return;
        }
        if data.is_empty() {
            s.ended = true;
        } else {
            s.received += data.len() as u64;
            if s.received > self.shared.limit {
                s.failed = Some(Failure::TooLarge(self.shared.limit));
                s.chunks.clear();
                s.queued = 0;
            } else if !s.gone {
                s.queued += data.len();
                s.chunks.push_back(data);
            }
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// The web server abandoned the request: the body fails from now on.
    pub fn abort(&self) {
        let mut s = self.shared.lock();
        if !s.ended {
            s.failed.get_or_insert(Failure::Aborted);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Whether the empty STDIN record came (or the stream failed, so nothing more counts).
    pub fn is_done(&self) -> bool {
        let s = self.shared.lock();
        s.ended || s.failed.is_some()
    }

    /// Whether the queue is over its high-water mark and the app still reads.
    pub fn is_full(&self) -> bool {
        let s = self.shared.lock();
        s.queued > HIGH_WATER && !s.gone
    }

    /// Waits while the queue is over its high-water mark and the app still reads. The future
    /// owns what it needs, so the reader can wait on it beside the request's own future.
    pub fn drained(&self) -> impl Future<Output = ()> + Send + use<> {
        let shared = self.shared.clone();
        async move {
            loop {
                let notified = shared.drained.notified();
                {
                    let s = shared.lock();
                    if s.queued <= HIGH_WATER || s.gone {
                        return;
                    }
                }
                notified.await;
            }
        }
    }
}

impl Drop for StdinSender {
    fn drop(&mut self) {
        // The connection is gone before the stream ended: the body must not wait forever.
        self.abort();
    }
}

impl http_body::Body for StdinBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut s = self.shared.lock();
        if let Some(chunk) = s.chunks.pop_front() {
            s.queued -= chunk.len();
            if s.queued <= HIGH_WATER {
                self.shared.drained.notify_one();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match s.failed {
            Some(Failure::TooLarge(limit)) => {
                return Poll::Ready(Some(Err(BodyError::TooLarge { limit }.into())));
            }
            Some(Failure::Aborted) => {
                return Poll::Ready(Some(Err("the web server abandoned the request".into())));
            }
            None if s.ended => return Poll::Ready(None),
            None => {}
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.shared.lock();
        s.ended && s.chunks.is_empty()
    }
}

impl Drop for StdinBody {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.gone = true;
        s.chunks.clear();
        s.queued = 0;
        drop(s);
        self.shared.drained.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Body;

    #[tokio::test]
    async fn chunks_flow_and_end() {
        let (tx, rx) = channel(100);
        tx.push(Bytes::from_static(b"ab"));
        tx.push(Bytes::from_static(b"cd"));
        tx.push(Bytes::new());
        assert!(tx.is_done());
        assert_eq!(Body::new(rx).to_bytes().await.unwrap(), "abcd");
    }

    #[tokio::test]
    async fn over_the_cap_is_413() {
        let (tx, rx) = channel(3);
        tx.push(Bytes::from_static(b"abcd"));
        let err = Body::new(rx).to_bytes().await.unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn abort_fails_a_waiting_body() {
        let (tx, rx) = channel(100);
        let reader = tokio::spawn(Body::new(rx).to_bytes());
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(reader.await.unwrap().unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn drained_waits_for_the_reader() {
        let (tx, rx) = channel(u64::MAX);
        for _ in 0..5 {
            tx.push(Bytes::from(vec![0u8; 100 << 10]));
        }
        let mut body = Body::new(rx);
        let waiting = tokio::spawn(async move {
            tx.drained().await;
            tx
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        for _ in 0..3 {
            body.chunk().await.unwrap();
        }
        let tx = tokio::time::timeout(std::time::Duration::from_secs(2), waiting)
            .await
            .unwrap()
            .unwrap();
        drop(body);
        tx.drained().await; // a dropped body never blocks the reader
    }
}

//! STDIN as a streamed request body, with backpressure per request and a budget for them all.
//!
//! The reader pushes each STDIN record into the request's queue; the app's body pops it. When
//! the queue passes its high-water mark, the connection's reader may wait for the app to
//! drain it ([`StdinSender::drained`]): it does so when the connection does not multiplex
//! (nginx's case), which pushes back on the web server through TCP. When it multiplexes,
//! waiting on one request would stall the others (Go's net/http/fcgi does), so the reader
//! keeps going, and what every queue holds is bounded by the process's [`BodyBudget`]: past
//! it, a record waits ([`StdinSender::try_push`] hands it back) until bytes are freed, or
//! until its own app waits for it, so that a request whose app reads is never stuck behind
//! the others.
//!
//! The body the app gets agrees with CONTENT_LENGTH or fails: STDIN past the declared length,
//! or ending short of it, is refused (a 400), never trimmed or passed on.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use gateway_core::{BodyError, BoxError};
use http_body::Frame;
use tokio::sync::Notify;

use crate::budget::BodyBudget;

/// Past this many queued bytes the queue is full.
const HIGH_WATER: usize = 256 << 10;

/// One request's unread body may hold at most this fraction of the budget.
const BUDGET_SHARES: u64 = 4;

/// What one request may hold of a budget of `limit`: a fraction, but never less than one full
/// STDIN record, so that a small budget still lets each request queue something.
fn share(limit: u64) -> u64 {
    (limit / BUDGET_SHARES).max(cost(usize::from(u16::MAX)))
}

/// What a queued chunk costs the budget beyond its bytes (its allocation and its place in
/// the queue), so that a flood of one-byte records is not nearly free.
const CHUNK_COST: u64 = 64;

/// What queuing `len` bytes as one chunk costs the budget.
fn cost(len: usize) -> u64 {
    len as u64 + CHUNK_COST
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    queued: usize,
    received: u64,
    ended: bool,
    /// The body was dropped: nobody reads any more.
    gone: bool,
    /// Why the stream failed.
    failed: Option<Failure>,
    waker: Option<Waker>,
    /// The app found the queue empty and waits for data.
    wanting: bool,
    /// A record was handed back for want of budget: the reader waits for room.
    held: bool,
}

/// Why a body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// More than the body cap.
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    /// The web server abandoned the request, or the connection was lost.
    #[error("the web server abandoned the request")]
    Aborted,
    /// STDIN went on past CONTENT_LENGTH.
    #[error("STDIN is longer than CONTENT_LENGTH ({declared} bytes)")]
    Longer {
        /// CONTENT_LENGTH.
        declared: u64,
    },
    /// STDIN ended before CONTENT_LENGTH.
    #[error("STDIN ended after {received} of CONTENT_LENGTH's {declared} bytes")]
    Shorter {
        /// CONTENT_LENGTH.
        declared: u64,
        /// What came.
        received: u64,
    },
}

impl Failure {
    /// Whether STDIN disagreed with CONTENT_LENGTH: the request itself is malformed.
    pub(crate) fn is_mismatch(self) -> bool {
        matches!(self, Failure::Longer { .. } | Failure::Shorter { .. })
    }
}

struct Shared {
    state: Mutex<State>,
    drained: Notify,
    /// The app began waiting while a record was held.
    wanted: Notify,
    limit: u64,
    declared: Option<u64>,
    budget: Arc<BodyBudget>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queue consistent: take it anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Empties the queue, handing its bytes back to the budget.
    fn clear(&self, s: &mut State) {
        let held = std::mem::take(&mut s.queued) as u64 + s.chunks.len() as u64 * CHUNK_COST;
        s.chunks.clear();
        self.budget.give_back(held);
    }
}

/// The reader's end.
pub(crate) struct StdinSender {
    shared: Arc<Shared>,
}

/// The app's end: an [`http_body::Body`].
pub(crate) struct StdinBody {
    shared: Arc<Shared>,
}

/// A view of the stream's outcome for the request's task, which answers 400 instead of the
/// app when the body disagreed with CONTENT_LENGTH.
#[derive(Clone)]
pub(crate) struct StdinWatch {
    shared: Arc<Shared>,
}

/// What became of one pushed record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued, dropped after a failure, or the end of the stream.
    Done,
    /// This record made the stream fail.
    Failed(Failure),
}

/// A queue whose body fails with 413 past `limit` bytes and with 400 when it disagrees with
/// `declared` (CONTENT_LENGTH), whose queued bytes count against `budget`.
pub(crate) fn channel(
    limit: u64,
    declared: Option<u64>,
    budget: Arc<BodyBudget>,
) -> (StdinSender, StdinBody) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        drained: Notify::new(),
        wanted: Notify::new(),
        limit,
        declared,
        budget,
    });
    (
        StdinSender {
            shared: shared.clone(),
        },
        StdinBody { shared },
    )
}

impl StdinSender {
    /// Queues one record's data; an empty record ends the stream. `Err` hands the data back
    /// when the budget has no room for it and the app is not waiting for it: the reader
    /// holds it, waits for [`StdinSender::room`], and tries again.
    pub(crate) fn try_push(&self, data: Bytes) -> Result<Pushed, Bytes> {
        let shared = &*self.shared;
        let mut s = shared.lock();
        if s.failed.is_some() || s.ended {
            // Nothing more counts, but the end is noted: the rest need not be drained.
            s.ended |= data.is_empty();
            return Ok(Pushed::Done);
        }
        let failure = if data.is_empty() {
            s.ended = true;
            match shared.declared {
                Some(declared) if s.received < declared => Some(Failure::Shorter {
                    declared,
                    received: s.received,
                }),
                _ => None,
            }
        } else {
            let received = s.received + data.len() as u64;
            if received > shared.limit {
                Some(Failure::TooLarge(shared.limit))
            } else if let Some(declared) = shared.declared.filter(|&d| received > d) {
                Some(Failure::Longer { declared })
            } else if s.gone {
                s.received = received;
                None
            } else {
                let n = cost(data.len());
                // One request holds at most a share of the budget, so that one upload whose
                // app does not read cannot take all of it and pause every other connection.
                let within_share = s.queued as u64 + n <= share(shared.budget.limit());
                let room = within_share && shared.budget.try_take(n);
                if !room && !s.wanting {
                    s.held = true;
                    return Err(data);
                }
                if !room {
                    shared.budget.force_take(n);
                }
                // A record read off the socket shares its allocation with its neighbours, of
                // other requests too: one that waits gets its own, so that the budget counts
                // what it really holds and the read buffer is reused.
                let data = match s.wanting {
                    true => data,
                    false => Bytes::copy_from_slice(&data),
                };
                s.received = received;
                s.held = false;
                s.wanting = false;
                s.queued += data.len();
                s.chunks.push_back(data);
                None
            }
        };
        if let Some(f) = failure {
            s.failed = Some(f);
            shared.clear(&mut s);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        Ok(failure.map_or(Pushed::Done, Pushed::Failed))
    }

    /// Waits until the budget and this request's share of it may have room for `n` bytes, or
    /// the app waits for data.
    pub(crate) fn room(&self, n: usize) -> impl Future<Output = ()> + Send + use<> {
        let shared = self.shared.clone();
        async move {
            let budget = shared.budget.clone();
            let fits = || {
                let s = shared.lock();
                let within_share = s.queued as u64 + cost(n) <= share(budget.limit());
                s.wanting
                    || s.gone
                    || (within_share && budget.used().saturating_add(cost(n)) <= budget.limit())
            };
            budget.wait_for_room(fits, shared.wanted.notified()).await;
        }
    }

    /// The web server abandoned the request: the body fails from now on.
    pub(crate) fn abort(&self) {
        let mut s = self.shared.lock();
        if !s.ended {
            s.failed.get_or_insert(Failure::Aborted);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Whether the empty STDIN record came: until then, the web server may still be sending.
    pub(crate) fn is_done(&self) -> bool {
        self.shared.lock().ended
    }

    /// Whether the queue is over its high-water mark and the app still reads.
    pub(crate) fn is_full(&self) -> bool {
        let s = self.shared.lock();
        s.queued > HIGH_WATER && !s.gone
    }

    /// Waits while the queue is over its high-water mark and the app still reads. The future
    /// owns what it needs, so the reader can wait on it beside the request's own future.
    pub(crate) fn drained(&self) -> impl Future<Output = ()> + Send + use<> {
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

    /// The stream's outcome, for the request's task.
    pub(crate) fn watch(&self) -> StdinWatch {
        StdinWatch {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for StdinSender {
    fn drop(&mut self) {
        // The connection is gone before the stream ended: the body must not wait forever.
        self.abort();
    }
}

impl StdinWatch {
    /// Whether STDIN disagreed with CONTENT_LENGTH.
    pub(crate) fn mismatch(&self) -> Option<Failure> {
        self.shared.lock().failed.filter(|f| f.is_mismatch())
    }
}

impl http_body::Body for StdinBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let shared = &*self.shared;
        let mut s = shared.lock();
        if let Some(chunk) = s.chunks.pop_front() {
            s.queued -= chunk.len();
            s.wanting = false;
            shared.budget.give_back(cost(chunk.len()));
            if s.queued <= HIGH_WATER {
                shared.drained.notify_one();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match s.failed {
            Some(Failure::TooLarge(limit)) => {
                return Poll::Ready(Some(Err(BodyError::TooLarge { limit }.into())));
            }
            Some(f) => return Poll::Ready(Some(Err(f.into()))),
            None if s.ended => return Poll::Ready(None),
            None => {}
        }
        s.waker = Some(cx.waker().clone());
        if !s.wanting {
            s.wanting = true;
            if s.held {
                shared.wanted.notify_one();
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.shared.lock();
        s.ended && s.failed.is_none() && s.chunks.is_empty()
    }
}

impl Drop for StdinBody {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.gone = true;
        s.wanting = false;
        self.shared.clear(&mut s);
        let held = s.held;
        drop(s);
        self.shared.drained.notify_one();
        if held {
            // The reader holds a record for nobody: it may drop it now.
            self.shared.wanted.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Body;

    fn open(limit: u64, declared: Option<u64>) -> (StdinSender, StdinBody) {
        channel(limit, declared, Arc::new(BodyBudget::default()))
    }

    fn push(tx: &StdinSender, data: &'static [u8]) -> Pushed {
        tx.try_push(Bytes::from_static(data)).expect("room")
    }

    #[tokio::test]
    async fn chunks_flow_and_end() {
        let (tx, rx) = open(100, Some(4));
        push(&tx, b"ab");
        push(&tx, b"cd");
        assert_eq!(push(&tx, b""), Pushed::Done);
        assert!(tx.is_done());
        assert_eq!(Body::new(rx).to_bytes().await.unwrap(), "abcd");
    }

    #[tokio::test]
    async fn without_content_length_the_empty_record_ends_it() {
        let (tx, rx) = open(100, None);
        push(&tx, b"whole body");
        push(&tx, b"");
        assert_eq!(Body::new(rx).to_bytes().await.unwrap(), "whole body");
    }

    #[tokio::test]
    async fn over_the_cap_is_413() {
        let (tx, rx) = open(3, None);
        push(&tx, b"abcd");
        let err = Body::new(rx).to_bytes().await.unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn more_than_content_length_is_refused_not_trimmed() {
        let (tx, rx) = open(100, Some(10));
        let mut body = Body::new(rx);
        assert_eq!(push(&tx, b"0123456789"), Pushed::Done);
        assert_eq!(&body.chunk().await.unwrap().unwrap()[..], b"0123456789");
        let failed = push(&tx, b"extra");
        assert_eq!(failed, Pushed::Failed(Failure::Longer { declared: 10 }));
        let err = body.chunk().await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("CONTENT_LENGTH"), "{err}");
        assert!(tx.watch().mismatch().is_some());
    }

    #[tokio::test]
    async fn less_than_content_length_is_refused() {
        let (tx, rx) = open(100, Some(10));
        push(&tx, b"short");
        let failed = push(&tx, b"");
        assert_eq!(
            failed,
            Pushed::Failed(Failure::Shorter {
                declared: 10,
                received: 5
            })
        );
        assert_eq!(Body::new(rx).to_bytes().await.unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn abort_fails_a_waiting_body() {
        let (tx, rx) = open(100, None);
        let reader = tokio::spawn(Body::new(rx).to_bytes());
        tokio::task::yield_now().await;
        drop(tx);
        assert_eq!(reader.await.unwrap().unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn past_the_budget_a_record_waits_unless_its_app_does() {
        // Full-size records: a request's share is never less than one.
        let record = Bytes::from(vec![7u8; 65535]);
        let one = cost(record.len());
        let put = |tx: &StdinSender| assert_eq!(tx.try_push(record.clone()), Ok(Pushed::Done));
        // Room for four requests' shares of one record each: three others hold theirs.
        let budget = Arc::new(BodyBudget::new(4 * one));
        let others: Vec<_> = (0..3)
            .map(|_| {
                let (tx, rx) = channel(1 << 20, None, budget.clone());
                put(&tx);
                (tx, rx)
            })
            .collect();
        let (tx, rx) = channel(1 << 20, None, budget.clone());
        put(&tx);
        let held = tx.try_push(Bytes::from_static(b"9")).unwrap_err();
        assert_eq!(budget.used(), 4 * one);
        let mut body = Body::new(rx);
        let room = tokio::spawn(tx.room(held.len()));
        body.chunk().await.unwrap(); // frees the record
        tokio::time::timeout(std::time::Duration::from_secs(2), room)
            .await
            .expect("room once the app read")
            .unwrap();
        assert_eq!(budget.used(), 3 * one);
        // With the budget full elsewhere, a record the app waits for still goes in.
        let (other, unread) = channel(1 << 20, None, budget.clone());
        put(&other);
        let held = tx.try_push(held).unwrap_err();
        let reader = tokio::spawn(async move { body.chunk().await.map(|c| c.unwrap()) });
        tokio::time::timeout(std::time::Duration::from_secs(2), tx.room(held.len()))
            .await
            .expect("the app waits: no deadlock");
        assert_eq!(tx.try_push(held), Ok(Pushed::Done));
        assert_eq!(&reader.await.unwrap().unwrap()[..], b"9");
        assert_eq!(budget.used(), 4 * one);
        drop(unread);
        assert_eq!(
            budget.used(),
            3 * one,
            "a dropped body hands its bytes back"
        );
        drop(others);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn one_request_holds_at_most_its_share() {
        let record = Bytes::from(vec![7u8; 65535]);
        let budget = Arc::new(BodyBudget::new(16 * cost(record.len())));
        let (tx, _rx) = channel(u64::MAX, None, budget.clone());
        let queued = (0..16)
            .take_while(|_| tx.try_push(record.clone()).is_ok())
            .count();
        assert_eq!(queued, 4, "a quarter of the budget");
        let (other, _unread) = channel(u64::MAX, None, budget.clone());
        assert_eq!(other.try_push(record.clone()), Ok(Pushed::Done));
        assert_eq!(budget.used(), 5 * cost(record.len()));
    }

    #[test]
    fn one_byte_records_are_not_free() {
        let budget = Arc::new(BodyBudget::new(1 << 10));
        let (tx, _rx) = channel(u64::MAX, None, budget);
        let queued = (0..1 << 10)
            .take_while(|_| tx.try_push(Bytes::from_static(b"x")).is_ok())
            .count();
        assert!(queued < 20, "{queued} one-byte chunks in a 1 KiB budget");
    }

    #[tokio::test]
    async fn drained_waits_for_the_reader() {
        let (tx, rx) = open(u64::MAX, None);
        for _ in 0..5 {
            tx.try_push(Bytes::from(vec![0u8; 100 << 10])).unwrap();
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

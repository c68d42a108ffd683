//! `Limit`: a per-app deadline (504) and concurrency cap (503).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{Either, Fuse};
use tokio::time::Sleep;

use crate::{App, Body, Environ, Response};

/// Bounds an app: at most `max_concurrency` calls at once (beyond: 503 with `Retry-After`,
/// answered at once rather than queued), and each call within `timeout` (past it the call is
/// cancelled, its future dropped, and the client gets 504). The deadline covers the call, up to
/// the response head, from the end of its first poll (the work that poll does at once, before
/// any wait, is not timed); a streamed body runs on its own time.
///
/// ```
/// use std::time::Duration;
/// use gateway_core::{Limit, Response, app_fn};
///
/// let app = Limit::new(app_fn(|_, _| async { Response::new(204) }))
///     .max_concurrency(100)
///     .timeout(Duration::from_secs(30));
/// # let _ = app;
/// ```
#[derive(Debug)]
pub struct Limit<A> {
    inner: A,
    /// The cap, and the calls running. A count rather than a semaphore: nothing ever waits for
    /// a place, and a semaphore's release takes a lock.
    cap: Option<(usize, AtomicUsize)>,
    timeout: Option<Duration>,
}

impl<A> Limit<A> {
    /// No limit yet.
    pub fn new(inner: A) -> Self {
        Limit {
            inner,
            cap: None,
            timeout: None,
        }
    }

    /// At most `n` calls at once.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.cap = Some((n.max(1), AtomicUsize::new(0)));
        self
    }

    /// Each call within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<A: App> App for Limit<A> {
    fn call(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send {
        // Taken now, not at the first poll: a call made is a call counted.
        match self.place() {
            Ok(place) => Either::Left(Limited {
                call: self.inner.call(env, body).fuse(),
                place,
                timeout: self.timeout,
                sleep: None,
            }),
            Err(full) => Either::Right(std::future::ready(full)),
        }
    }
}

impl<A> Limit<A> {
    /// A place for one more call, or the 503 that refuses it.
    fn place(&self) -> Result<Option<Place<'_>>, Response> {
        let Some((cap, running)) = &self.cap else {
            return Ok(None);
        };
        let place = Place(running);
        if running.fetch_add(1, Ordering::Acquire) >= *cap {
            return Err(full());
        }
        Ok(Some(place))
    }
}

/// The answer of an app at its cap.
fn full() -> Response {
    static FULL: crate::Throttle = crate::Throttle::new();
    if let Some(suppressed) = FULL.allow() {
        tracing::warn!(suppressed, "app at its max_concurrency; answering 503");
    }
    Response::error(503).with_header("Retry-After", "1")
}

/// One running call, counted until dropped (a refused one too, which never ran).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

pin_project_lite::pin_project! {
    /// A call holding its place, under its deadline. Unlike `tokio::time::timeout`, the timer
    /// is made only when the call does not answer on its first poll, so the deadline runs from
    /// the end of that poll, which follows the call at once: most calls never wait, and a timer
    /// costs a clock read, a runtime handle and a place in the timer wheel.
    struct Limited<'a, F> {
        // Dropped as soon as it answers (`Fuse` does) or times out, and the place with it: a
        // request that goes on (a local redirect followed, a body streamed) holds no place.
        #[pin]
        call: Fuse<F>,
        place: Option<Place<'a>>,
        timeout: Option<Duration>,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future<Output = Response>> Future for Limited<'_, F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        let res = match this.call.as_mut().poll(cx) {
            Poll::Ready(res) => res,
            Poll::Pending => {
                let Some(timeout) = *this.timeout else {
                    return Poll::Pending;
                };
                let sleep =
                    (this.sleep).get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                tracing::warn!(
                    ?timeout,
                    "request_timeout passed; the app call is cancelled"
                );
                this.call.set(Fuse::terminated());
                Response::error(504)
            }
        };
        *this.place = None;
        *this.sleep = None;
        Poll::Ready(res)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Protocol, app_fn};

    #[test]
    fn deadline_and_cap() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let slow = || {
            app_fn(|_, _| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Response::new(200)
            })
        };
        let env = Environ::new(Protocol::Http);
        let timed = Limit::new(slow()).timeout(Duration::from_millis(20));
        assert_eq!(
            rt.block_on(timed.call(env.clone(), Body::empty())).status,
            504
        );

        let capped = Arc::new(Limit::new(slow()).max_concurrency(1));
        let statuses = rt.block_on(async {
            let a = capped.call(env.clone(), Body::empty());
            let b = async {
                tokio::task::yield_now().await;
                capped.call(env.clone(), Body::empty()).await
            };
            let (a, b) = tokio::join!(a, b);
            (
                a.status,
                b.status,
                b.header("retry-after").map(<[u8]>::to_vec),
            )
        });
        assert_eq!(statuses, (200, 503, Some(b"1".to_vec())));
    }
}

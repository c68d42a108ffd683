//! `Limit`: a per-app deadline (504) and concurrency cap (503).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::{App, Body, Environ, Response};

/// Bounds an app: at most `max_concurrency` calls at once (beyond: 503 with `Retry-After`,
/// answered at once rather than queued), and each call within `timeout` (past it the call is
/// cancelled, its future dropped, and the client gets 504). The deadline covers the call, up to
/// the response head; a streamed body runs on its own time.
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

#[async_trait::async_trait]
impl<A: App> App for Limit<A> {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let _place = match &self.cap {
            None => None,
            Some((cap, running)) => {
                let place = Place(running);
                if running.fetch_add(1, Ordering::Acquire) >= *cap {
                    tracing::warn!("app at its max_concurrency; answering 503");
                    return Response::error(503).with_header("Retry-After", "1");
                }
                Some(place)
            }
        };
        // A deadline past the clock's range is none.
        let Some((timeout, deadline)) = self
            .timeout
            .and_then(|t| Some((t, Instant::now().checked_add(t)?)))
        else {
            return self.inner.call(env, body).await;
        };
        let call = Deadline {
            call: self.inner.call(env, body),
            deadline,
            sleep: None,
        };
        match call.await {
            Some(res) => res,
            None => {
                tracing::warn!(
                    ?timeout,
                    "request_timeout passed; the app call is cancelled"
                );
                Response::error(504)
            }
        }
    }
}

/// One running call, counted until dropped (a refused one too, which never ran).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// A call under a deadline, `None` once it passed. Unlike `tokio::time::timeout`, the timer is
/// made only when the call does not answer on its first poll: most never wait, and a timer
/// costs a runtime handle and a place in the timer wheel.
struct Deadline<F> {
    call: F,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<F: Future + Unpin> Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(res) = Pin::new(&mut self.call).poll(cx) {
            return Poll::Ready(Some(res));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).map(|()| None)
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

//! `Limit`: a per-app deadline (504) and concurrency cap (503).

use std::time::Duration;

use tokio::sync::Semaphore;

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
    permits: Option<Semaphore>,
    timeout: Option<Duration>,
}

impl<A> Limit<A> {
    /// No limit yet.
    pub fn new(inner: A) -> Self {
        Limit {
            inner,
            permits: None,
            timeout: None,
        }
    }

    /// At most `n` calls at once.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.permits = Some(Semaphore::new(n.max(1)));
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
        let _permit = match &self.permits {
            None => None,
            Some(permits) => match permits.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!("app at its max_concurrency; answering 503");
                    return Response::error(503).with_header("Retry-After", "1");
                }
            },
        };
        let Some(timeout) = self.timeout else {
            return self.inner.call(env, body).await;
        };
        match tokio::time::timeout(timeout, self.inner.call(env, body)).await {
            Ok(res) => res,
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "request_timeout passed; the app call is cancelled"
                );
                Response::error(504)
            }
        }
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

//! `GatewayStack`: the middleware every gateway puts around its apps.

use std::future::Future;

use crate::{
    AccessLog, AccessSink, App, Body, CatchPanic, Environ, LocalRedirects, Response, Stats,
};

/// [`AccessLog`], [`CatchPanic`] and [`LocalRedirects`] around `app`, in that order: what
/// every request goes through, whatever the gateway. Their futures nest into one.
///
/// ```
/// use gateway_core::{App, Body, Environ, GatewayStack, Protocol, Response, Stats, app_fn};
///
/// let hi = app_fn(|_, _| async { Response::text(200, "hi\n") });
/// let stack = GatewayStack::new(hi, Stats::leak());
/// let res = futures_util::FutureExt::now_or_never(
///     stack.call(Environ::new(Protocol::Http), Body::empty()),
/// );
/// assert_eq!(res.map(|r| r.status), Some(200));
/// ```
#[derive(Debug)]
pub struct GatewayStack<A>(AccessLog<CatchPanic<LocalRedirects<A>>>);

impl<A: App> GatewayStack<A> {
    /// The stack around `app` (usually the router), counting its requests in `stats`.
    pub fn new(app: A, stats: &'static Stats) -> Self {
        Self::with_sink(app, stats, &crate::TracingSink)
    }

    /// The stack around `app`, its access lines written to `sink`.
    pub fn with_sink(app: A, stats: &'static Stats, sink: &'static dyn AccessSink) -> Self {
        let inner = CatchPanic::new(LocalRedirects::new(app));
        GatewayStack(AccessLog::with_sink(inner, stats, sink))
    }
}

impl<A: App> App for GatewayStack<A> {
    fn call(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send {
        self.0.call(env, body)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;
    use crate::{Limit, Protocol, Router};

    /// Answers at once, or panics while making its future on `/boom`.
    struct AtOnce;

    impl App for AtOnce {
        fn call(&self, env: Environ, _body: Body) -> impl Future<Output = Response> + Send {
            assert!(env.path_info() != b"/boom", "boom");
            let res = match env.path_info() {
                b"/to-boom" => Response::local_redirect("/boom", env),
                b"/to-now" => Response::local_redirect("/now", env),
                _ => Response::text(200, "now\n"),
            };
            std::future::ready(res)
        }
    }

    fn env(path: &'static str) -> Environ {
        let mut env = Environ::new(Protocol::Http);
        env.insert("PATH_INFO", path);
        env
    }

    /// The status `app` answers `path` with, when it answers without waiting.
    fn status(app: &impl App, path: &'static str) -> Option<u16> {
        app.call(env(path), Body::empty())
            .now_or_never()
            .map(|r| r.status)
    }

    #[test]
    fn a_panic_before_the_future_is_a_500() {
        let stack = GatewayStack::new(AtOnce, Stats::leak());
        assert_eq!(status(&stack, "/boom"), Some(500));
        assert_eq!(status(&stack, "/"), Some(200));
        // A panic while answering a local redirect's request.
        assert_eq!(status(&stack, "/to-boom"), Some(500));
        // The middleware alone, too.
        let guarded = CatchPanic::new(AtOnce);
        assert_eq!(status(&guarded, "/boom"), Some(500));
        assert_eq!(status(&guarded, "/"), Some(200));
    }

    #[test]
    fn a_call_holds_its_place_until_dropped() {
        let limited = Limit::new(AtOnce).max_concurrency(1);
        // A call that ended gave its place back.
        assert_eq!(status(&limited, "/"), Some(200));
        assert_eq!(status(&limited, "/"), Some(200));
        // A call not yet awaited holds the only place until it is dropped.
        let waiting = limited.call(env("/"), Body::empty());
        assert_eq!(status(&limited, "/"), Some(503));
        drop(waiting);
        assert_eq!(status(&limited, "/"), Some(200));
        // A call that answered gives its place back, though its future is not dropped yet.
        let mut answered = std::pin::pin!(limited.call(env("/"), Body::empty()));
        let waker = futures_util::task::noop_waker();
        let polled = answered
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_ready());
        assert_eq!(status(&limited, "/"), Some(200));
    }

    #[test]
    fn a_local_redirect_holds_no_place_of_the_call_it_follows() {
        let mut router = Router::new();
        let one_at_a_time = Limit::new(AtOnce).max_concurrency(1);
        router.mount("/", one_at_a_time).unwrap();
        let stack = GatewayStack::new(router, Stats::leak());
        assert_eq!(status(&stack, "/to-now"), Some(200));
    }
}

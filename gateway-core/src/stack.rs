//! `GatewayStack`: the middleware every gateway puts around its apps, as one future.

use std::sync::atomic::AtomicU64;

use futures_util::FutureExt as _;
use tracing::Instrument;

use crate::access_log::Logging;
use crate::app::CallFuture;
use crate::recover::{caught, guarded};
use crate::redirect::{follow, is_local};
use crate::{Answer, App, Body, Environ, Response};

/// [`AccessLog`](crate::AccessLog), [`CatchPanic`](crate::CatchPanic) and
/// [`LocalRedirects`](crate::LocalRedirects) around `app`, in that order, doing what the three
/// would. Composed as layers, each would box its own future on every request, and move the
/// response through each; here [`GatewayStack::serve`] is one future, boxed once by
/// [`App::call`] or not at all when awaited directly, and an app that answers at once is
/// called before it, with no future of its own.
///
/// ```
/// use gateway_core::{App, Body, Environ, GatewayStack, Protocol, Response, app_fn};
///
/// let stack = GatewayStack::new(app_fn(|_, _| async { Response::text(200, "hi\n") }));
/// let res = futures_util::FutureExt::now_or_never(
///     stack.serve(Environ::new(Protocol::Http), Body::empty()),
/// );
/// assert_eq!(res.map(|r| r.status), Some(200));
/// ```
#[derive(Debug)]
pub struct GatewayStack<A> {
    app: A,
    next_id: AtomicU64,
}

impl<A: App> GatewayStack<A> {
    /// The stack around `app` (usually the router).
    pub fn new(app: A) -> Self {
        GatewayStack {
            app,
            next_id: AtomicU64::new(1),
        }
    }

    /// Serves one request through the stack. The app is asked for its answer here, at once;
    /// the future waits for it when it is not made at once.
    pub fn serve(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send + '_ {
        let logging = Logging::begin(&self.next_id, &env);
        // Local redirects are taken below the host's SCRIPT_NAME, before the router's.
        let host_script = env.get_bytes("SCRIPT_NAME").unwrap_or_default();
        let answer = {
            let _entered = logging.span().map(tracing::Span::enter);
            caught(|| self.app.answer(env, body))
        };
        async move {
            let span = logging.span();
            let res = match answer {
                Answer::Now(res) => res,
                Answer::Later(call) => waited(call, span).await,
            };
            // Boxed: a rare path, which would otherwise make every request's future larger.
            let res = match is_local(&res) {
                true => {
                    Box::pin(follow(&self.app, &host_script, res, |call| {
                        waited(call, span)
                    }))
                    .await
                }
                false => res,
            };
            logging.finish(res)
        }
    }
}

/// An answer that was not made at once, awaited with its panics caught, inside the request's
/// span when there is one.
fn waited<'a>(
    call: impl Future<Output = Response> + Send + 'a,
    span: Option<&tracing::Span>,
) -> impl Future<Output = Response> + Send + 'a {
    match span {
        Some(span) => guarded(call).instrument(span.clone()).left_future(),
        None => guarded(call).right_future(),
    }
}

// By hand (see `CallFuture`): the one box is the whole stack's future.
impl<A: App> App for GatewayStack<A> {
    fn call<'a, 'f>(&'a self, env: Environ, body: Body) -> CallFuture<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        Box::pin(self.serve(env, body))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;
    use crate::{Answer, CatchPanic, Limit, Protocol};

    /// Answers at once, or panics while answering (not in a future) on `/boom`.
    struct AtOnce;

    impl App for AtOnce {
        fn call<'a, 'f>(&'a self, env: Environ, body: Body) -> CallFuture<'f>
        where
            'a: 'f,
            Self: 'f,
        {
            self.answer(env, body).into_call()
        }

        fn answer(&self, env: Environ, _body: Body) -> Answer<'_> {
            assert!(env.path_info() != b"/boom", "boom");
            Answer::Now(Response::text(200, "now\n"))
        }
    }

    fn env(path: &'static str) -> Environ {
        let mut env = Environ::new(Protocol::Http);
        env.insert("PATH_INFO", path);
        env
    }

    #[test]
    fn a_panic_while_answering_at_once_is_a_500() {
        let stack = GatewayStack::new(AtOnce);
        let status = |path| {
            stack
                .serve(env(path), Body::empty())
                .now_or_never()
                .map(|r| r.status)
        };
        assert_eq!(status("/boom"), Some(500));
        assert_eq!(status("/"), Some(200));
        // The middleware alone, too.
        let guarded = CatchPanic::new(AtOnce);
        let status = |path| {
            guarded
                .call(env(path), Body::empty())
                .now_or_never()
                .map(|r| r.status)
        };
        assert_eq!(status("/boom"), Some(500));
        assert_eq!(status("/"), Some(200));
    }

    #[test]
    fn an_answer_at_once_leaves_its_place() {
        // With room for one call, a second call after the first answered is not refused.
        let limited = Limit::new(AtOnce).max_concurrency(1);
        for _ in 0..2 {
            let answer = limited.answer(env("/"), Body::empty());
            assert!(matches!(answer, Answer::Now(ref res) if res.status == 200));
        }
    }
}

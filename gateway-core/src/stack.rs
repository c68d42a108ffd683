//! `GatewayStack`: the middleware every gateway puts around its apps, as one future.

use std::sync::atomic::AtomicU64;

use crate::access_log::logged;
use crate::app::CallFuture;
use crate::recover::guarded;
use crate::redirect::followed;
use crate::{App, Body, Environ, Response};

/// [`AccessLog`](crate::AccessLog), [`CatchPanic`](crate::CatchPanic) and
/// [`LocalRedirects`](crate::LocalRedirects) around `app`, in that order, doing what the three
/// would. Composed as layers, each would box its own future on every request; here
/// [`GatewayStack::serve`] is one future, boxed once by [`App::call`] or not at all when
/// awaited directly.
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

    /// Serves one request through the stack.
    pub fn serve(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send + '_ {
        logged(&self.next_id, env, |env| {
            guarded(followed(&self.app, env, body))
        })
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
    use crate::{Answer, Limit, Protocol};

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

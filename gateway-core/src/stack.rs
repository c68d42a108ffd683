//! `GatewayStack`: the middleware every gateway puts around its apps, as one future.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use futures_util::FutureExt as _;
use tracing::Instrument;

use crate::access_log::Logging;
use crate::app::CallFuture;
use crate::recover::{caught_now, guarded};
use crate::redirect::{follow, is_local};
use crate::{Answer, App, Body, Environ, Response};

/// [`AccessLog`](crate::AccessLog), [`CatchPanic`](crate::CatchPanic) and
/// [`LocalRedirects`](crate::LocalRedirects) around `app`, in that order, doing what the three
/// would. Composed as layers, each would box its own future on every request and move the
/// response through it; here an app that answers at once ([`App::answer_now`]) is served with
/// no future at all, and one that does not in one future.
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

/// A request the app did not answer at once: its access line begun, and what is left to do.
struct Pending {
    logging: Logging,
    /// Local redirects are taken below the host's `SCRIPT_NAME`, before the router's.
    host_script: Bytes,
    next: Next,
}

enum Next {
    /// The app's `call`, for a request it handed back.
    Call(Environ, Body),
    /// A local redirect, answered at once, to follow.
    Follow(Response),
}

impl<A: App> GatewayStack<A> {
    /// The stack around `app` (usually the router).
    pub fn new(app: A) -> Self {
        GatewayStack {
            app,
            next_id: AtomicU64::new(1),
        }
    }

    /// Serves one request through the stack. The app is asked to answer at once here; the
    /// future waits for an app that does not.
    pub fn serve(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send + '_ {
        let tried = self.try_serve(env, body);
        async move {
            match tried {
                Ok(res) => res,
                Err(pending) => self.resume(pending).await,
            }
        }
    }

    /// [`App::answer`] for a stack that may be swapped while its requests run: a later
    /// answer's future holds the stack itself, so it is not tied to a borrow of it.
    pub fn answer_owned(self: &Arc<Self>, env: Environ, body: Body) -> Answer<'static> {
        match self.try_serve(env, body) {
            Ok(res) => Answer::Now(res),
            Err(pending) => {
                let stack = Arc::clone(self);
                Answer::Later(Box::pin(async move { stack.resume(pending).await }))
            }
        }
    }

    /// The whole request when the app answers at once; otherwise what is left of it.
    #[allow(
        clippy::result_large_err,
        reason = "moved once, into the future that finishes it; a box would be one more"
    )]
    fn try_serve(&self, env: Environ, body: Body) -> Result<Response, Pending> {
        let logging = Logging::begin(&self.next_id, &env);
        let host_script = env.get_bytes("SCRIPT_NAME").unwrap_or_default();
        let answered = {
            let _entered = logging.span().map(tracing::Span::enter);
            caught_now(|| self.app.answer_now(env, body))
        };
        let next = match answered {
            Ok(res) if !is_local(&res) => return Ok(logging.finish(res)),
            Ok(res) => Next::Follow(res),
            Err((env, body)) => Next::Call(env, body),
        };
        Err(Pending {
            logging,
            host_script,
            next,
        })
    }

    async fn resume(&self, pending: Pending) -> Response {
        let Pending {
            logging,
            host_script,
            next,
        } = pending;
        let span = logging.span();
        let res = match next {
            // Made inside the guarded future: an app's `call` may run code before its future.
            Next::Call(env, body) => waited(async { self.app.call(env, body).await }, span).await,
            Next::Follow(res) => res,
        };
        // Boxed: a rare path, which would otherwise make every request's future larger.
        let res = match is_local(&res) {
            true => {
                // Each redirected request asked inside the guarded future, as a call is.
                Box::pin(follow(&host_script, res, |env| {
                    waited(
                        async move { self.app.answer(env, Body::empty()).await },
                        span,
                    )
                }))
                .await
            }
            false => res,
        };
        logging.finish(res)
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

// By hand (see `CallFuture`): the one box is the whole stack's future, and none for an answer
// made at once.
impl<A: App> App for GatewayStack<A> {
    fn call<'a, 'f>(&'a self, env: Environ, body: Body) -> CallFuture<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        Box::pin(self.serve(env, body))
    }

    fn answer(&self, env: Environ, body: Body) -> Answer<'_> {
        match self.try_serve(env, body) {
            Ok(res) => Answer::Now(res),
            Err(pending) => Answer::Later(Box::pin(self.resume(pending))),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;
    use crate::{CatchPanic, Limit, Protocol};

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

        fn answer_now(&self, env: Environ, _body: Body) -> Result<Response, (Environ, Body)> {
            assert!(env.path_info() != b"/boom", "boom");
            if env.path_info() == b"/to-boom" {
                return Ok(Response::local_redirect("/boom", env));
            }
            Ok(Response::text(200, "now\n"))
        }
    }

    fn env(path: &'static str) -> Environ {
        let mut env = Environ::new(Protocol::Http);
        env.insert("PATH_INFO", path);
        env
    }

    /// The status `app` answers `path` with, when it answers without waiting.
    fn status(app: &impl App, path: &'static str) -> Option<u16> {
        let answer = app.answer(env(path), Body::empty());
        answer.into_future().now_or_never().map(|r| r.status)
    }

    #[test]
    fn a_panic_while_answering_at_once_is_a_500() {
        let stack = GatewayStack::new(AtOnce);
        assert_eq!(status(&stack, "/boom"), Some(500));
        assert_eq!(status(&stack, "/"), Some(200));
        // A panic while answering a local redirect's request at once.
        assert_eq!(status(&stack, "/to-boom"), Some(500));
        // The middleware alone, too.
        let guarded = CatchPanic::new(AtOnce);
        assert_eq!(status(&guarded, "/boom"), Some(500));
        assert_eq!(status(&guarded, "/"), Some(200));
    }

    #[test]
    fn an_answer_at_once_is_refused_only_at_the_cap() {
        let limited = Limit::new(AtOnce).max_concurrency(1);
        // An answer made at once takes no place: the next one is not refused.
        assert_eq!(status(&limited, "/"), Some(200));
        assert_eq!(status(&limited, "/"), Some(200));
        // A call that waits holds the only place until it is dropped.
        let waiting = limited.call(env("/"), Body::empty());
        assert_eq!(status(&limited, "/"), Some(503));
        drop(waiting);
        assert_eq!(status(&limited, "/"), Some(200));
    }
}

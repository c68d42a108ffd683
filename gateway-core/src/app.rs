//! The one interface every app implements and every front-end calls.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::{Body, Environ, Response};

/// A web application: one call per request, whatever the gateway.
///
/// The front-end (HTTP, FastCGI, SCGI or CGI) builds the [`Environ`], hands over the request
/// body, and sends back the [`Response`]. An app never learns which wire the request used,
/// except through [`Environ::protocol`].
///
/// **Cancellation.** When the client goes away (or the front server aborts the request), the
/// future returned by `call` is dropped at its next `.await`: code after that point does not
/// run. Keep cleanup in `Drop` guards, not after an `.await`.
///
/// The trait is object-safe (`Arc<dyn App>` is how the registry holds apps); implement it
/// with [`async_trait`](crate::async_trait):
///
/// ```
/// use gateway_core::{App, Body, Environ, Response, async_trait};
///
/// struct Echo;
///
/// #[async_trait]
/// impl App for Echo {
///     async fn call(&self, env: Environ, body: Body) -> Response {
///         match body.to_bytes().await {
///             Ok(data) => Response::new(200)
///                 .with_header("X-Path", env.path_info().to_vec())
///                 .with_body(data),
///             Err(e) => e.into(),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait App: Send + Sync + 'static {
    /// Handles one request.
    async fn call(&self, environ: Environ, body: Body) -> Response;

    /// Handles one request, answering at once when the app can: front-ends and middleware
    /// call this, and `.await` the [`Answer`]. An app whose response needs no waiting (a fixed
    /// page, a redirect) implements it to return [`Answer::Now`], which costs no future and
    /// no box; middleware that only passes a call on forwards it. The default runs
    /// [`App::call`].
    ///
    /// ```
    /// use gateway_core::{Answer, App, Body, Environ, Protocol, Response, async_trait};
    ///
    /// struct Pong;
    ///
    /// #[async_trait]
    /// impl App for Pong {
    ///     async fn call(&self, env: Environ, body: Body) -> Response {
    ///         self.answer(env, body).await
    ///     }
    ///
    ///     fn answer(&self, _env: Environ, _body: Body) -> Answer<'_> {
    ///         Answer::Now(Response::text(200, "pong\n"))
    ///     }
    /// }
    ///
    /// let answer = Pong.answer(Environ::new(Protocol::Http), Body::empty());
    /// assert!(matches!(answer, Answer::Now(ref res) if res.status == 200));
    /// ```
    fn answer(&self, environ: Environ, body: Body) -> Answer<'_> {
        Answer::Later(self.call(environ, body))
    }
}

/// What [`App::answer`] returns: the response itself, or the future that will make it.
/// `.await` gives the response either way.
#[must_use = "an answer does nothing until awaited"]
pub enum Answer<'f> {
    /// The response, made at once.
    Now(Response),
    /// The future that will make the response.
    Later(CallFuture<'f>),
}

impl<'f> Answer<'f> {
    /// The answer as the future [`App::call`] returns: a response made at once is boxed.
    pub fn into_call(self) -> CallFuture<'f> {
        match self {
            Answer::Now(res) => Box::pin(std::future::ready(res)),
            Answer::Later(call) => call,
        }
    }
}

impl<'f> IntoFuture for Answer<'f> {
    type Output = Response;
    type IntoFuture = AnswerFuture<'f>;

    fn into_future(self) -> AnswerFuture<'f> {
        AnswerFuture(match self {
            Answer::Now(res) => Pending::Now(Some(res)),
            Answer::Later(call) => Pending::Later(call),
        })
    }
}

/// The future of an awaited [`Answer`].
#[must_use = "futures do nothing unless polled"]
pub struct AnswerFuture<'f>(Pending<'f>);

enum Pending<'f> {
    Now(Option<Response>),
    Later(CallFuture<'f>),
}

impl Future for AnswerFuture<'_> {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match &mut self.0 {
            Pending::Now(res) => {
                Poll::Ready(res.take().expect("AnswerFuture polled after completion"))
            }
            Pending::Later(call) => call.as_mut().poll(cx),
        }
    }
}

/// What `App::call` returns once `#[async_trait]` has expanded it. Middleware that only passes
/// a call on writes `call` by hand with it, returning the inner future rather than boxing a
/// second one around it, and forwards [`App::answer`] so that an answer made at once stays
/// unboxed.
///
/// ```
/// use gateway_core::{Answer, App, Body, CallFuture, Environ};
///
/// /// Tells stderr which path each request asked for.
/// struct Traced<A>(A);
///
/// impl<A: App> App for Traced<A> {
///     fn call<'a, 'f>(&'a self, env: Environ, body: Body) -> CallFuture<'f>
///     where
///         'a: 'f,
///         Self: 'f,
///     {
///         self.answer(env, body).into_call()
///     }
///
///     fn answer(&self, env: Environ, body: Body) -> Answer<'_> {
///         eprintln!("{}", String::from_utf8_lossy(env.path_info()));
///         self.0.answer(env, body)
///     }
/// }
/// ```
pub type CallFuture<'f> = Pin<Box<dyn Future<Output = Response> + Send + 'f>>;

impl<A: App + ?Sized> App for Arc<A> {
    fn call<'a, 'f>(&'a self, environ: Environ, body: Body) -> CallFuture<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        (**self).call(environ, body)
    }

    fn answer(&self, environ: Environ, body: Body) -> Answer<'_> {
        (**self).answer(environ, body)
    }
}

/// An app from an async closure.
///
/// ```
/// use gateway_core::{Response, app_fn};
///
/// let hello = app_fn(|_env, _body| async { Response::text(200, "hi\n") });
/// # let _ = hello;
/// ```
pub fn app_fn<F, Fut>(f: F) -> AppFn<F>
where
    F: Fn(Environ, Body) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    AppFn(f)
}

/// The app returned by [`app_fn`].
#[derive(Clone, Copy, Debug)]
pub struct AppFn<F>(F);

#[async_trait::async_trait]
impl<F, Fut> App for AppFn<F>
where
    F: Fn(Environ, Body) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    async fn call(&self, environ: Environ, body: Body) -> Response {
        (self.0)(environ, body).await
    }
}

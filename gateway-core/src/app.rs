//! The one interface every app implements and every front-end calls.

use std::future::{Future, IntoFuture, Ready};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::future::Either;

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

    /// Answers at once when the app can, with no future: an app whose response needs no
    /// waiting (a fixed page, a redirect) implements this, and middleware that only passes a
    /// call on forwards it. Otherwise it hands the request back untouched, for
    /// [`App::call`]; that is the default.
    ///
    /// ```
    /// use gateway_core::{App, Body, Environ, Protocol, Response, async_trait};
    ///
    /// struct Pong;
    ///
    /// #[async_trait]
    /// impl App for Pong {
    ///     async fn call(&self, _env: Environ, _body: Body) -> Response {
    ///         Response::text(200, "pong\n")
    ///     }
    ///
    ///     fn answer_now(&self, _env: Environ, _body: Body) -> Result<Response, (Environ, Body)> {
    ///         Ok(Response::text(200, "pong\n"))
    ///     }
    /// }
    ///
    /// let res = Pong.answer_now(Environ::new(Protocol::Http), Body::empty());
    /// assert_eq!(res.map(|r| r.status).ok(), Some(200));
    /// ```
    fn answer_now(&self, environ: Environ, body: Body) -> Result<Response, (Environ, Body)> {
        Err((environ, body))
    }

    /// Handles one request: what front-ends call, and `.await`. The default is
    /// [`App::answer_now`], or else [`App::call`]; an app whose later answer can be made
    /// better than `call`'s overrides it (gatewayd's reloadable stack, whose future owns the
    /// stack it started on).
    fn answer(&self, environ: Environ, body: Body) -> Answer<'_> {
        match self.answer_now(environ, body) {
            Ok(res) => Answer::Now(res),
            Err((environ, body)) => Answer::Later(self.call(environ, body)),
        }
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
        match self {
            Answer::Now(res) => Either::Left(std::future::ready(res)),
            Answer::Later(call) => Either::Right(call),
        }
    }
}

/// The future of an awaited [`Answer`]: ready at once, or the app's own.
pub type AnswerFuture<'f> = Either<Ready<Response>, CallFuture<'f>>;

/// What `App::call` returns once `#[async_trait]` has expanded it. Middleware that only passes
/// a call on writes `call` by hand with it, returning the inner future rather than boxing a
/// second one around it, and forwards [`App::answer_now`] so that an answer made at once
/// stays without a future.
///
/// ```
/// use gateway_core::{App, Body, CallFuture, Environ, Response};
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
///         eprintln!("{}", String::from_utf8_lossy(env.path_info()));
///         self.0.call(env, body)
///     }
///
///     fn answer_now(&self, env: Environ, body: Body) -> Result<Response, (Environ, Body)> {
///         let path = String::from_utf8_lossy(env.path_info()).into_owned();
///         let answered = self.0.answer_now(env, body);
///         if answered.is_ok() {
///             eprintln!("{path}");
///         }
///         answered
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

    fn answer_now(&self, environ: Environ, body: Body) -> Result<Response, (Environ, Body)> {
        (**self).answer_now(environ, body)
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

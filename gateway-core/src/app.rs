//! The one interface every app implements and every front-end calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
}

/// What `App::call` returns once `#[async_trait]` has expanded it. Implementations that only
/// pass a call on write `call` by hand with this and return the inner future instead of boxing
/// a second one around it; one that answers at once returns a ready future, with no state
/// machine to move the request into.
///
/// ```
/// use gateway_core::{App, Body, CallFuture, Environ, Response};
///
/// struct Pong;
///
/// impl App for Pong {
///     fn call<'a, 'f>(&'a self, _env: Environ, _body: Body) -> CallFuture<'f>
///     where
///         'a: 'f,
///         Self: 'f,
///     {
///         Box::pin(std::future::ready(Response::text(200, "pong\n")))
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

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
/// An app is one method, written as an `async fn`. Middleware wraps an app in another app;
/// their futures nest into one, with no box between them. [`SharedApp`] holds an app of any
/// type behind one pointer, for the router's mounts and the registry. Middleware on a hot path
/// is best written as the built-in ones are: make the inner call at once and return a small
/// future around it, since an `async` block would also hold the environ and body it moved
/// into that call, and a request's future is copied whole each time it is moved.
///
/// **Cancellation.** When the client goes away (or the front server aborts the request), the
/// future returned by `call` is dropped at its next `.await`: code after that point does not
/// run. Keep cleanup in `Drop` guards, not after an `.await`.
///
/// ```
/// use gateway_core::{App, Body, Environ, Response};
///
/// struct Echo;
///
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
pub trait App: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, environ: Environ, body: Body) -> impl Future<Output = Response> + Send;
}

impl<A: App> App for Arc<A> {
    fn call(&self, environ: Environ, body: Body) -> impl Future<Output = Response> + Send {
        (**self).call(environ, body)
    }
}

/// An app of any type, shared: what the [`Router`](crate::Router) mounts and a registry's
/// factory makes. Its call's future is boxed, the one box of a request.
///
/// ```
/// use gateway_core::{Response, SharedApp, app_fn};
///
/// let apps = [
///     SharedApp::new(app_fn(|_, _| async { Response::new(204) })),
///     SharedApp::new(app_fn(|_, _| async { Response::text(200, "hi\n") })),
/// ];
/// # let _ = apps;
/// ```
#[derive(Clone)]
pub struct SharedApp(Arc<dyn Erased>);

impl SharedApp {
    /// Shares `app`.
    pub fn new(app: impl App) -> Self {
        SharedApp(Arc::new(app))
    }
}

impl std::fmt::Debug for SharedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedApp")
    }
}

/// A call's boxed future.
type BoxCall<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// [`App`] with its future boxed, so that apps of every type fit behind one pointer.
trait Erased: Send + Sync + 'static {
    fn call_boxed(&self, environ: Environ, body: Body) -> BoxCall<'_>;
}

impl<A: App> Erased for A {
    fn call_boxed(&self, environ: Environ, body: Body) -> BoxCall<'_> {
        Box::pin(self.call(environ, body))
    }
}

impl App for SharedApp {
    fn call(&self, environ: Environ, body: Body) -> impl Future<Output = Response> + Send {
        self.0.call_boxed(environ, body)
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

impl<F, Fut> App for AppFn<F>
where
    F: Fn(Environ, Body) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    fn call(&self, environ: Environ, body: Body) -> impl Future<Output = Response> + Send {
        (self.0)(environ, body)
    }
}

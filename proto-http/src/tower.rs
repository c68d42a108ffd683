//! tower services as apps, and apps as tower services (feature `tower`).
//!
//! An `axum::Router`, or any `tower::Service<http::Request<Body>>` that answers an
//! `http::Response`, runs under every gateway through [`ServiceApp`]; an [`App`] runs under
//! hyper or axum through [`AppService`]. Bodies stream both ways with their backpressure, and
//! dropping the future (a client that went away) cancels the call, as everywhere else.
//!
//! With axum, `ServiceApp::new(router)` is an app to register under a type name (see
//! `examples/axum_app.rs`); the other way round:
//!
//! ```
//! use proto_http::tower::AppService;
//! use gateway_core::{Response, app_fn};
//! use tower_service::Service as _;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut service = AppService::new(app_fn(|_, _| async { Response::text(200, "hi\n") }));
//! let res = service.call(http::Request::get("/").body(gateway_core::Body::empty()).unwrap()).await;
//! assert_eq!(res.unwrap().status(), 200);
//! # });
//! ```

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower_service::Service;

use gateway_core::{App, Body, BoxError, Environ, Response, SharedApp};

use crate::{ConnInfo, environ, from_http, into_http, request_from_environ};

/// The mount prefix the app runs under (the request's `SCRIPT_NAME`), as a request extension:
/// prepend it to build URLs that work under any mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptName(pub Bytes);

/// The client's address (`REMOTE_ADDR`, `REMOTE_PORT`), as a request extension when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// A tower service as an [`App`]: the environ becomes an `http::Request`
/// ([`request_from_environ`]) carrying [`ScriptName`], [`RemoteAddr`] and the whole
/// [`Environ`] as extensions; the `http::Response` comes back as a streamed [`Response`].
#[derive(Clone, Debug)]
pub struct ServiceApp<S> {
    service: S,
}

impl<S> ServiceApp<S> {
    /// Wraps `service` (an `axum::Router`, say).
    pub fn new(service: S) -> Self {
        ServiceApp { service }
    }
}

impl<S, RB> App for ServiceApp<S>
where
    S: Service<http::Request<Body>, Response = http::Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    async fn call(&self, env: Environ, body: Body) -> Response {
        let script_name = env.get_bytes("SCRIPT_NAME").unwrap_or_default();
        let remote = remote_addr(&env);
        let mut req = match request_from_environ(env, body) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand the request to the service");
                return Response::error(400);
            }
        };
        req.extensions_mut().insert(ScriptName(script_name));
        if let Some(remote) = remote {
            req.extensions_mut().insert(RemoteAddr(remote));
        }
        let mut service = self.service.clone();
        if let Err(e) = poll_fn(|cx| service.poll_ready(cx)).await {
            tracing::error!(error = %e.into(), "the service is not ready");
            return Response::error(503);
        }
        match service.call(req).await {
            Ok(res) => from_http(res),
            Err(e) => {
                tracing::error!(error = %e.into(), "the service failed");
                Response::error(500)
            }
        }
    }
}

fn remote_addr(env: &Environ) -> Option<SocketAddr> {
    let ip: IpAddr = env.get_str("REMOTE_ADDR")?.parse().ok()?;
    Some(SocketAddr::new(ip, env.remote_port().unwrap_or(0)))
}

/// An [`App`] as a tower service, so that hyper, axum (`Router::fallback_service`,
/// `nest_service`) or any tower stack can host it. The request becomes the environ a CGI server
/// would build; a [`ConnInfo`] extension on the request, when present, supplies the addresses.
#[derive(Clone)]
pub struct AppService {
    app: SharedApp,
}

impl AppService {
    /// Serves `app`.
    pub fn new(app: impl App) -> Self {
        AppService {
            app: SharedApp::new(app),
        }
    }

    /// Serves a shared app.
    pub fn from_shared(app: SharedApp) -> Self {
        AppService { app }
    }
}

impl<B> Service<http::Request<B>> for AppService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let app = self.app.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let conn = parts
                .extensions
                .get::<ConnInfo>()
                .copied()
                .unwrap_or_default();
            let env = environ(&parts, &conn);
            Ok(into_http(app.call(env, Body::new(body)).await))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{Protocol, app_fn};

    /// A hand-made tower service that echoes what it saw.
    #[derive(Clone)]
    struct Echo;

    impl Service<http::Request<Body>> for Echo {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<Body>) -> Self::Future {
            Box::pin(async move {
                let script = req.extensions().get::<ScriptName>().cloned();
                let remote = req.extensions().get::<RemoteAddr>().copied();
                let text = format!(
                    "{} {} script={:?} remote={:?} host={:?}",
                    req.method(),
                    req.uri(),
                    script.map(|s| String::from_utf8_lossy(&s.0).into_owned()),
                    remote.map(|r| r.0.to_string()),
                    req.headers().get("host"),
                );
                let body = req.into_body().to_bytes().await.unwrap_or_default();
                Ok(http::Response::builder()
                    .status(201)
                    .header("x-text", text)
                    .body(Body::from(body))
                    .unwrap())
            })
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_service_runs_as_an_app() {
        let mut env = Environ::new(Protocol::Scgi);
        for (n, v) in [
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/api"),
            ("PATH_INFO", "/users/7"),
            ("QUERY_STRING", "full=1"),
            ("REMOTE_ADDR", "192.0.2.9"),
            ("REMOTE_PORT", "4444"),
            ("SERVER_NAME", "example.org"),
            ("SERVER_PORT", "8080"),
        ] {
            env.insert(n, v);
        }
        let res = rt().block_on(ServiceApp::new(Echo).call(env, Body::from("payload")));
        assert_eq!(res.status, 201);
        let text = String::from_utf8(res.header("x-text").unwrap().to_vec()).unwrap();
        assert_eq!(
            text,
            "POST /users/7?full=1 script=Some(\"/api\") remote=Some(\"192.0.2.9:4444\") host=Some(\"example.org:8080\")"
        );
        assert_eq!(rt().block_on(res.body.to_bytes()).unwrap(), "payload");
    }

    #[test]
    fn an_app_runs_as_a_service() {
        let app = app_fn(|env: Environ, body: Body| async move {
            let data = body.to_bytes().await.unwrap_or_default();
            Response::text(
                200,
                format!(
                    "{} {} {}",
                    env.method(),
                    String::from_utf8_lossy(env.path_info()),
                    data.len()
                ),
            )
        });
        let mut svc = AppService::new(app);
        let req = http::Request::post("/x%20y")
            .body(Body::from("abc"))
            .unwrap();
        let res = rt().block_on(svc.call(req)).unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            rt().block_on(res.into_body().to_bytes()).unwrap(),
            "POST /x y 3"
        );
    }
}

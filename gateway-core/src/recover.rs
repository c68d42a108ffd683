//! `CatchPanic`: a panicking app answers 500 and the daemon keeps serving.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Either;
use http_body::{Frame, SizeHint};

use crate::{App, Body, BoxError, Environ, Response};

/// Turns a panic in the app into a bare 500 for the client (no details leak) and an error in
/// the log, inside the request's span so the log line carries its request id. A panic while
/// the body streams aborts that body.
#[derive(Clone, Debug)]
pub struct CatchPanic<A> {
    inner: A,
}

impl<A> CatchPanic<A> {
    /// Guards `inner`.
    pub fn new(inner: A) -> Self {
        CatchPanic { inner }
    }
}

impl<A: App> App for CatchPanic<A> {
    fn call(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send {
        // The call is made now (see `App`'s docs on middleware), under the guard too: an
        // app's `call` may run code before its future.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(env, body))) {
            Ok(call) => Either::Left(AssertUnwindSafe(call).catch_unwind().map(recovered)),
            Err(payload) => Either::Right(std::future::ready(recovered(Err(payload)))),
        }
    }
}

/// The response of a call that returned (its streamed body guarded in turn), or a 500 for one
/// that panicked.
fn recovered(call: Result<Response, Box<dyn Any + Send>>) -> Response {
    match call {
        Ok(mut res) => {
            if res.body.exact_len().is_none() {
                let inner = std::mem::take(&mut res.body);
                res.body = Body::new(GuardedBody(inner));
            }
            res
        }
        Err(payload) => {
            tracing::error!(panic = %message(&*payload), "app panicked");
            Response::error(500)
        }
    }
}

/// A streamed body whose panics become errors.
struct GuardedBody(Body);

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(frame) => frame.map(|f| f.map(|r| r.map_err(Into::into))),
            Err(payload) => {
                tracing::error!(panic = %message(&*payload), "app panicked while streaming");
                self.0 = Body::empty();
                Poll::Ready(Some(Err("the app panicked while streaming".into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Protocol, app_fn};

    #[test]
    fn panic_becomes_500() {
        let app = CatchPanic::new(app_fn(|env: Environ, _| async move {
            if env.path_info() == b"/boom" {
                panic!("boom");
            }
            Response::text(200, "fine")
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut env = Environ::new(Protocol::Http);
        env.insert("PATH_INFO", "/boom");
        assert_eq!(
            rt.block_on(app.call(env.clone(), Body::empty())).status,
            500
        );
        env.insert("PATH_INFO", "/ok");
        assert_eq!(rt.block_on(app.call(env, Body::empty())).status, 200);
    }
}

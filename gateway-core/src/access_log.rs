//! `AccessLog`: one `tracing` event per request, inside a span that carries its request id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing::Instrument;

use crate::{App, Body, Environ, Response};

/// Logs each request at `info` on the target `gatewayd::access`: method, URI, status, time to
/// the response head, protocol and peer. Everything the app logs runs inside the span
/// `request{id=N}`, so its lines can be matched to the access line.
#[derive(Debug)]
pub struct AccessLog<A> {
    inner: A,
    next_id: AtomicU64,
}

impl<A> AccessLog<A> {
    /// Logs every request to `inner`.
    pub fn new(inner: A) -> Self {
        AccessLog {
            inner,
            next_id: AtomicU64::new(1),
        }
    }
}

#[async_trait::async_trait]
impl<A: App> App for AccessLog<A> {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("request", id);
        let start = Instant::now();
        let method = env.method().to_owned();
        let uri = match env.request_uri() {
            Some(uri) => String::from_utf8_lossy(uri).into_owned(),
            None => {
                let mut uri = String::from_utf8_lossy(env.script_name()).into_owned();
                uri.push_str(&String::from_utf8_lossy(env.path_info()));
                if !env.query_string().is_empty() {
                    uri.push('?');
                    uri.push_str(&String::from_utf8_lossy(env.query_string()));
                }
                uri
            }
        };
        let protocol = env.protocol();
        let peer = String::from_utf8_lossy(env.remote_addr()).into_owned();
        let res = self.inner.call(env, body).instrument(span.clone()).await;
        span.in_scope(|| {
            tracing::info!(
                target: "gatewayd::access",
                %method,
                %uri,
                status = res.status,
                micros = start.elapsed().as_micros() as u64,
                %protocol,
                %peer,
            );
        });
        res
    }
}

//! A listener's protocol, with its limits and its connection cap.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use gateway_core::App;
use proto_fastcgi::{BodyBudget, FastCgiConfig};
use proto_http::ConnInfo;
use proto_http::HttpConfig;
use proto_scgi::ScgiConfig;
use proto_uwsgi::UwsgiConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use gateway_core::Protocol;

use crate::config::{ListenConfig, ServerConfig};

/// How a listener serves its connections.
pub(super) struct Front {
    pub wire: Wire,
    /// One permit per open connection (`max_connections`).
    pub connections: Arc<Semaphore>,
    /// The longest a write to the client may wait (`send_timeout`).
    pub send_timeout: Duration,
}

/// A listener's protocol with its limits: what serves each connection.
pub(super) enum Wire {
    Http(Arc<HttpConfig>),
    Fastcgi(Arc<FastCgiConfig>),
    Scgi(Arc<ScgiConfig>),
    Uwsgi(Arc<UwsgiConfig>),
}

impl Front {
    /// The front of one `[[listen]]` entry, with `[server]`'s defaults for what it leaves out.
    /// FastCGI listeners share `body_budget`, sized here from `[server] body_buffer_budget`.
    pub(super) fn new(
        cfg: &ListenConfig,
        server: &ServerConfig,
        body_budget: &Arc<BodyBudget>,
    ) -> Front {
        let max_body_size = cfg.max_body_size.unwrap_or(server.max_body_size);
        let header_read_timeout = cfg
            .header_read_timeout
            .unwrap_or(server.header_read_timeout);
        let keepalive_timeout = cfg.keepalive_timeout.unwrap_or(server.keepalive_timeout);
        let max_head_size = cfg
            .max_head_size
            .as_ref()
            .map(|m| usize::try_from(*m.get_ref()).unwrap_or(usize::MAX));
        let wire = match cfg.protocol {
            Protocol::Http => Wire::Http(Arc::new(HttpConfig {
                max_body_size,
                // hyper's one timer covers both the idle wait and the head.
                header_read_timeout: header_read_timeout.min(keepalive_timeout),
                max_head_size: max_head_size.unwrap_or(HttpConfig::default().max_head_size),
                ..HttpConfig::default()
            })),
            Protocol::FastCgi => {
                let defaults = FastCgiConfig::default();
                body_budget.set_limit(server.body_buffer_budget);
                Wire::Fastcgi(Arc::new(FastCgiConfig {
                    max_requests: cfg
                        .max_requests
                        .as_ref()
                        .map_or(defaults.max_requests, |m| *m.get_ref()),
                    max_connections: cfg.max_connections,
                    max_params_size: max_head_size.unwrap_or(defaults.max_params_size),
                    max_body_size,
                    header_read_timeout,
                    keepalive_timeout,
                    body_budget: body_budget.clone(),
                }))
            }
            Protocol::Scgi => Wire::Scgi(Arc::new(ScgiConfig {
                max_header_size: max_head_size.unwrap_or(ScgiConfig::default().max_header_size),
                max_body_size,
                header_read_timeout,
            })),
            Protocol::Uwsgi => Wire::Uwsgi(Arc::new(UwsgiConfig {
                max_header_size: max_head_size.unwrap_or(UwsgiConfig::default().max_header_size),
                max_body_size,
                header_read_timeout,
            })),
            // The schema refuses `cgi` for a listener (`listen_protocol`): a CGI program is
            // started per request, it listens on no socket.
            Protocol::Cgi => unreachable!("the config schema refuses a CGI listener"),
        };
        Front {
            wire,
            connections: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
            send_timeout: cfg.send_timeout.unwrap_or(server.send_timeout),
        }
    }
}

impl Wire {
    /// The connection's whole life under this protocol.
    pub(super) fn serve<S>(
        &self,
        s: S,
        conn: ConnInfo,
        app: Arc<impl App>,
        shutdown: CancellationToken,
        retire: &Option<CancellationToken>,
    ) -> BoxFuture<'static, ()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self {
            Wire::Http(cfg) => match retire {
                None => Box::pin(proto_http::serve_connection(
                    s,
                    conn,
                    app,
                    cfg.clone(),
                    shutdown,
                )),
                Some(retire) => Box::pin(proto_http::serve_connection_retiring(
                    s,
                    conn,
                    app,
                    cfg.clone(),
                    shutdown,
                    retire.clone(),
                )),
            },
            // A web server's kept connection is not ours to keep once a new worker serves:
            // it drains as on a stop (nginx retries a request on a kept connection that closed).
            Wire::Fastcgi(cfg) => Box::pin(proto_fastcgi::serve_connection(
                s,
                app,
                cfg.clone(),
                retire.clone().unwrap_or(shutdown),
            )),
            // One request per connection: the shutdown does not cut the wait for it (see
            // `proto_scgi::serve_framed`), so these drivers take no shutdown signal.
            Wire::Scgi(cfg) => Box::pin(proto_scgi::serve_connection(s, app, cfg.clone())),
            Wire::Uwsgi(cfg) => Box::pin(proto_uwsgi::serve_connection(s, app, cfg.clone())),
        }
    }
}

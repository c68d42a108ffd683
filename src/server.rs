//! Serving: open every listener, accept on each, drain on SIGTERM/SIGINT.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use gateway_core::{AccessLog, App, CatchPanic, LocalRedirects, Router};
use proto_fastcgi::FastCgiConfig;
use proto_http::{ConnInfo, HttpConfig};
use proto_scgi::ScgiConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ListenAddress, ListenConfig, ListenProtocol, ServerConfig};
use crate::listen::{self, Listener, Stream};

/// Runs until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish for up
/// to `shutdown_timeout`, and returns (whatever is left is cancelled with the runtime).
///
/// Each bound address is printed on stdout as `listening PROTOCOL ADDRESS`, so a supervisor
/// or a test can find a port chosen by the kernel (`:0`). When descriptor 0 is a listening
/// socket (a web server spawned us: spawn-fcgi, lighttpd's `bin-path`, mod_fcgid) and no
/// listener names `fd:0`, FastCGI is served on it too.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Before anything is announced: a signal sent as soon as `listening` shows must be ours.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    // Caught so that an operator's reload habit does not kill the daemon (HUP's default).
    let mut sighup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let app = app_stack(config.router);

    let mut wanted = config.listen;
    let names_fd0 = wanted
        .iter()
        .any(|l| *l.address.get_ref() == ListenAddress::Fd(0));
    if !names_fd0 && listen::stdin_is_listener() {
        tracing::info!("descriptor 0 is a listening socket: serving FastCGI on it");
        wanted.push(ListenConfig::inherited_fastcgi());
    }
    let mut listeners = Vec::with_capacity(wanted.len());
    for cfg in &wanted {
        let listener = Listener::bind(cfg)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.address.get_ref()))?;
        println!("listening {} {listener}", listener.protocol);
        tracing::info!(protocol = %listener.protocol, address = %listener, "listening");
        listeners.push((listener, Front::new(cfg, &config.server)));
    }
    std::io::stdout().flush().ok();
    if listeners.is_empty() {
        tracing::warn!("the config has no [[listen]] entry: nothing to serve");
    }

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    for (listener, front) in listeners {
        let ctx = Ctx {
            app: app.clone(),
            front,
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(accept_loop(listener, ctx));
    }

    let name = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => tracing::warn!("SIGHUP: reloading is not supported yet; still serving"),
        }
    };
    tracing::info!(signal = name, timeout = ?config.server.shutdown_timeout, "draining");
    shutdown.cancel();
    tracker.close();
    match tokio::time::timeout(config.server.shutdown_timeout, tracker.wait()).await {
        Ok(()) => tracing::info!("drained; exiting"),
        Err(_) => tracing::warn!(
            left = tracker.len(),
            "shutdown_timeout passed; cancelling the connections still open"
        ),
    }
    Ok(())
}

/// What every request goes through, whatever the gateway: the access log, panic recovery,
/// local redirects, then the mounts.
pub fn app_stack(router: Router) -> Arc<dyn App> {
    Arc::new(AccessLog::new(CatchPanic::new(LocalRedirects::new(router))))
}

/// A listener's protocol with its limits, and its connection cap.
struct Front {
    protocol: Protocol,
    connections: Arc<Semaphore>,
}

enum Protocol {
    Http(Arc<HttpConfig>),
    Fastcgi(Arc<FastCgiConfig>),
    Scgi(Arc<ScgiConfig>),
}

impl Front {
    fn new(cfg: &ListenConfig, server: &ServerConfig) -> Front {
        let max_body_size = cfg.max_body_size.unwrap_or(server.max_body_size);
        let header_read_timeout = cfg
            .header_read_timeout
            .unwrap_or(server.header_read_timeout);
        let max_params_size = cfg
            .max_params_size
            .as_ref()
            .map(|m| usize::try_from(*m.get_ref()).unwrap_or(usize::MAX));
        let protocol = match cfg.protocol {
            ListenProtocol::Http => Protocol::Http(Arc::new(HttpConfig {
                max_body_size,
                header_read_timeout,
                ..HttpConfig::default()
            })),
            ListenProtocol::Fastcgi => {
                let defaults = FastCgiConfig::default();
                Protocol::Fastcgi(Arc::new(FastCgiConfig {
                    max_requests: cfg
                        .max_requests
                        .as_ref()
                        .map_or(defaults.max_requests, |m| *m.get_ref()),
                    max_connections: cfg.max_connections,
                    max_params_size: max_params_size.unwrap_or(defaults.max_params_size),
                    max_body_size,
                    header_read_timeout,
                }))
            }
            ListenProtocol::Scgi => Protocol::Scgi(Arc::new(ScgiConfig {
                max_header_size: max_params_size.unwrap_or(ScgiConfig::default().max_header_size),
                max_body_size,
                header_read_timeout,
            })),
        };
        Front {
            protocol,
            connections: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
        }
    }
}

impl Protocol {
    /// The connection's whole life under this protocol.
    fn serve<S>(
        &self,
        s: S,
        conn: ConnInfo,
        app: Arc<dyn App>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self {
            Protocol::Http(cfg) => Box::pin(proto_http::serve_connection(
                s,
                conn,
                app,
                cfg.clone(),
                shutdown,
            )),
            Protocol::Fastcgi(cfg) => Box::pin(proto_fastcgi::serve_connection(
                s,
                app,
                cfg.clone(),
                shutdown,
            )),
            Protocol::Scgi(cfg) => {
                Box::pin(proto_scgi::serve_connection(s, app, cfg.clone(), shutdown))
            }
        }
    }
}

struct Ctx {
    app: Arc<dyn App>,
    front: Front,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

async fn accept_loop(listener: Listener, ctx: Ctx) {
    loop {
        // At max_connections, stop accepting: new connections wait in the kernel's backlog.
        let accepted = tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => break,
            r = async {
                let permit = ctx.front.connections.clone().acquire_owned().await;
                (permit, listener.accept().await)
            } => r,
        };
        let (Ok(permit), accepted) = accepted else {
            break;
        };
        let (stream, conn) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the socket stays open.
                tracing::warn!(address = %listener, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (app, shutdown) = (ctx.app.clone(), ctx.shutdown.clone());
        let served = match stream {
            Stream::Tcp(s) => ctx.front.protocol.serve(s, conn, app, shutdown),
            Stream::Unix(s) => ctx.front.protocol.serve(s, conn, app, shutdown),
        };
        ctx.tracker.spawn(async move {
            served.await;
            drop(permit);
        });
    }
    tracing::debug!(address = %listener, "stopped accepting");
}

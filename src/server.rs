//! Serving: open every listener, accept on each, drain on SIGTERM/SIGINT.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use gateway_core::{AccessLog, App, CatchPanic};
use proto_http::HttpConfig;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ListenProtocol};
use crate::listen::{Listener, Stream};

/// Runs until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish for up
/// to `shutdown_timeout`, and returns (whatever is left is cancelled with the runtime).
///
/// Each bound address is printed on stdout as `listening PROTOCOL ADDRESS`, so a supervisor
/// or a test can find a port chosen by the kernel (`:0`).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Before anything is announced: a signal sent as soon as `listening` shows must be ours.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    // Caught so that an operator's reload habit does not kill the daemon (HUP's default).
    let mut sighup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let app: Arc<dyn App> = Arc::new(AccessLog::new(CatchPanic::new(config.router)));
    let http = Arc::new(HttpConfig {
        max_body_size: config.server.max_body_size,
        header_read_timeout: config.server.header_read_timeout,
        ..HttpConfig::default()
    });

    let mut listeners = Vec::with_capacity(config.listen.len());
    for cfg in &config.listen {
        let listener = Listener::bind(cfg)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.address.get_ref()))?;
        println!("listening {} {listener}", listener.protocol);
        tracing::info!(protocol = %listener.protocol, address = %listener, "listening");
        listeners.push(listener);
    }
    std::io::stdout().flush().ok();
    if listeners.is_empty() {
        tracing::warn!("the config has no [[listen]] entry: nothing to serve");
    }

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    for listener in listeners {
        let ctx = (app.clone(), http.clone(), shutdown.clone(), tracker.clone());
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

type Ctx = (
    Arc<dyn App>,
    Arc<HttpConfig>,
    CancellationToken,
    TaskTracker,
);

async fn accept_loop(listener: Listener, (app, http, shutdown, tracker): Ctx) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
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
        let (app, http, shutdown) = (app.clone(), http.clone(), shutdown.clone());
        match (listener.protocol, stream) {
            (ListenProtocol::Http, Stream::Tcp(s)) => {
                tracker.spawn(proto_http::serve_connection(s, conn, app, http, shutdown))
            }
            (ListenProtocol::Http, Stream::Unix(s)) => {
                tracker.spawn(proto_http::serve_connection(s, conn, app, http, shutdown))
            }
        };
    }
    tracing::debug!(address = %listener, "stopped accepting");
}

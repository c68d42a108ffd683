//! Serving: open every listener, accept on each, reload on SIGHUP, drain on SIGTERM/SIGINT.

mod front;
mod listeners;
mod send_timeout;
mod stack;
mod trim;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Registry;
use anyhow::Context as _;
use gateway_core::Stats;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use listeners::keyed;
pub use stack::Reloadable;

use crate::config::{Config, ListenAddress, ListenConfig};
use crate::{listen, systemd};
use listeners::Listeners;

/// The multi-threaded runtime a serving process runs on: `workers` threads, or one per core
/// when 0.
pub(crate) fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder
        .on_thread_park(crate::logging::thread_parked)
        .on_thread_stop(crate::logging::thread_stopping)
        .enable_all()
        .build()
}

/// Runs until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish for up
/// to `shutdown_timeout`, and returns (whatever is left is cancelled with the runtime).
///
/// - Each bound address is printed on stdout as `listening PROTOCOL ADDRESS`, so a supervisor
///   or a test can find a port chosen by the kernel (`:0`).
/// - SIGHUP re-reads `path`: an invalid config is logged and the old one stays; a valid one
///   swaps apps and mounts at once and opens, keeps or closes listeners to match.
/// - systemd is told READY, RELOADING and STOPPING, pinged for its watchdog, and sees a status.
/// - When descriptor 0 is a listening socket (a web server spawned us) and no listener names
///   `fd:0`, FastCGI is served on it too.
pub async fn serve(
    path: &Path,
    registry: &Registry,
    stats: &'static Stats,
    config: Config,
) -> anyhow::Result<()> {
    // Before anything is announced: a signal sent as soon as `listening` shows must be ours.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;

    let app = Arc::new(Reloadable::new(config.router, stats));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut listeners = Listeners::new(app.clone(), stats, shutdown.clone(), tracker.clone());
    let mut server = config.server;
    listeners.apply(&with_stdin(config.listen), &server).await?;
    if listeners.is_empty() {
        tracing::warn!("the config has no [[listen]] entry: nothing to serve");
    }
    systemd::ready(&format!("serving on {} listeners", listeners.len()));
    systemd::spawn_watchdog();
    systemd::spawn_status(stats);
    trim::spawn(stats);

    let name = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                systemd::reloading();
                match reload(path, registry, &app, &mut listeners).await {
                    Ok(new_server) => {
                        server = new_server;
                        tracing::info!(config = %path.display(), "reloaded");
                        systemd::ready(&format!("reloaded; serving on {} listeners", listeners.len()));
                    }
                    Err(e) => {
                        tracing::error!("reload failed, the old config stays: {e:#}");
                        systemd::ready(&format!("reload failed ({e}); serving the old config"));
                    }
                }
            }
        }
    };
    tracing::info!(signal = name, timeout = ?server.shutdown_timeout, "draining");
    systemd::stopping();
    shutdown.cancel();
    tracker.close();
    drain(&tracker, server.shutdown_timeout).await;
    Ok(())
}

/// Serves as one worker of a master (`processes`): on the sockets the master bound and
/// passed down (`(key, socket)`), with the apps of `config`, until SIGTERM or SIGINT (drain as
/// [`serve`] does) or SIGUSR2, the master's word that a new worker has taken this one's place:
/// stop accepting, finish what was begun, close each kept-alive HTTP connection after its next
/// response, all within `shutdown_timeout`. SIGHUP is the master's to handle: a worker does
/// not reload, it is replaced. `ready` runs once every socket is served.
pub(crate) async fn serve_worker(
    stats: &'static Stats,
    config: Config,
    sockets: Vec<(String, crate::listen::Listener)>,
    ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).context("cannot catch SIGUSR2")?;

    let app = Arc::new(Reloadable::new(config.router, stats));
    let shutdown = CancellationToken::new();
    // A stop is a retirement too: what watches only `retire` stops either way.
    let retire = shutdown.child_token();
    let tracker = TaskTracker::new();
    let mut listeners =
        Listeners::new(app, stats, shutdown.clone(), tracker.clone()).retiring(retire.clone());
    listeners.adopt(sockets, &config.listen, &config.server);
    trim::spawn(stats);
    ready();

    let timeout = config.server.shutdown_timeout;
    let name = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sigusr2.recv() => break "SIGUSR2",
            _ = sighup.recv() => {
                tracing::info!("SIGHUP ignored: the master reloads by replacing its workers");
            }
        }
    };
    tracker.close();
    let deadline = tokio::time::Instant::now() + timeout;
    if name == "SIGUSR2" {
        tracing::info!(?timeout, "replaced; finishing what was begun");
        retire.cancel();
        // A shutdown meanwhile (the master's SIGTERM) closes idle connections at once.
        tokio::select! {
            () = tracker.wait() => {
                tracing::info!("drained; exiting");
                return Ok(());
            }
            () = tokio::time::sleep_until(deadline) => {}
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
    } else {
        tracing::info!(signal = name, ?timeout, "draining");
    }
    shutdown.cancel();
    drain(
        &tracker,
        deadline.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await;
    Ok(())
}

/// Loads `path` again and applies it; on any error nothing has changed.
async fn reload(
    path: &Path,
    registry: &Registry,
    app: &Reloadable,
    listeners: &mut Listeners,
) -> anyhow::Result<crate::config::ServerConfig> {
    let config = Config::load(path, registry)?;
    listeners
        .apply(&with_stdin(config.listen), &config.server)
        .await?;
    app.swap(config.router);
    Ok(config.server)
}

/// The listeners of the config, plus FastCGI on descriptor 0 when a web server spawned us with
/// a listening socket there (and the config does not name it).
pub(crate) fn with_stdin(mut wanted: Vec<ListenConfig>) -> Vec<ListenConfig> {
    let names_fd0 = wanted
        .iter()
        .any(|l| *l.address.get_ref() == ListenAddress::Fd(0));
    if !names_fd0 && listen::stdin_is_listener() {
        tracing::info!("descriptor 0 is a listening socket: serving FastCGI on it");
        wanted.push(ListenConfig::inherited_fastcgi());
    }
    wanted
}

async fn drain(tracker: &TaskTracker, timeout: Duration) {
    match tokio::time::timeout(timeout, tracker.wait()).await {
        Ok(()) => tracing::info!("drained; exiting"),
        Err(_) => tracing::warn!(
            left = tracker.len(),
            "shutdown_timeout passed; cancelling the connections still open"
        ),
    }
}

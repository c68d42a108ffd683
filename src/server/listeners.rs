//! The open listeners, keyed by address, and their accept loops. A reload applies a new list:
//! what stays keeps its socket (and gets the new limits), what is new is bound first (all or
//! nothing), what is gone stops accepting while its connections finish.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use gateway_core::Stats;
use proto_fastcgi::BodyBudget;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::front::Front;
use super::send_timeout::SendTimeout;
use super::stack::Reloadable;
use crate::config::{ListenConfig, ServerConfig};
use crate::listen::{Listener, Stream};

/// Every listener the daemon serves.
pub(super) struct Listeners {
    running: Vec<Running>,
    app: Arc<Reloadable>,
    /// Where each listener's open connections are counted.
    stats: &'static Stats,
    /// Fired once, on SIGTERM/SIGINT: every accept loop stops and every connection drains.
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// One budget for the unread request bodies of every FastCGI listener, kept across
    /// reloads (a reload only changes its size).
    body_budget: Arc<BodyBudget>,
    /// A worker of a master: fired when a new worker has taken over (and on a stop). The
    /// accept loops stop without taking the backlog (the other workers serve it), HTTP
    /// connections close after their next response (see
    /// [`proto_http::serve_connection_retiring`]) and FastCGI ones drain as on a stop.
    retire: Option<CancellationToken>,
}

struct Running {
    key: String,
    front: Arc<ArcSwap<Front>>,
    /// Stops this listener's accept loop (a reload dropped it, or the daemon drains).
    stop: CancellationToken,
}

impl Listeners {
    /// No listeners yet.
    pub(super) fn new(
        app: Arc<Reloadable>,
        stats: &'static Stats,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Listeners {
            running: Vec::new(),
            app,
            stats,
            shutdown,
            tracker,
            body_budget: Arc::new(BodyBudget::default()),
            retire: None,
        }
    }

    /// Listeners of a worker process, which `retire` hands over to its successor.
    pub(super) fn retiring(mut self, retire: CancellationToken) -> Self {
        self.retire = Some(retire);
        self
    }

    /// How many listeners are open.
    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether none is open.
    pub(super) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Makes the open listeners those of `wanted`. New addresses are bound before anything
    /// changes, so a failure leaves every listener as it was.
    pub(super) async fn apply(
        &mut self,
        wanted: &[ListenConfig],
        server: &ServerConfig,
    ) -> anyhow::Result<()> {
        let wanted = keyed(wanted);
        let budget = &self.body_budget;
        let mut fresh = Vec::new();
        for (key, cfg) in &wanted {
            if !self.running.iter().any(|r| r.key == *key) {
                let listener = Listener::bind(cfg)
                    .await
                    .with_context(|| format!("cannot listen on {}", cfg.address.get_ref()))?;
                fresh.push((key.clone(), *cfg, listener));
            }
        }
        for running in &self.running {
            if let Some((_, cfg)) = wanted.iter().find(|(k, _)| *k == running.key) {
                running
                    .front
                    .store(Arc::new(Front::new(cfg, server, budget)));
            }
        }
        self.running.retain(|r| {
            let keep = wanted.iter().any(|(k, _)| *k == r.key);
            if !keep {
                tracing::info!(address = %r.key, "closing a listener the config no longer names");
                r.stop.cancel();
            }
            keep
        });
        for (key, cfg, listener) in fresh {
            println!("listening {} {listener}", listener.protocol);
            tracing::info!(protocol = %listener.protocol, address = %listener, "listening");
            let front = Front::new(cfg, server, &self.body_budget);
            self.start(key, front, listener);
        }
        std::io::stdout().flush().ok();
        Ok(())
    }

    /// Serves the sockets a master passed down, each with the `[[listen]]` entry of its key in
    /// this worker's config. A socket whose entry the config no longer has, or now gives
    /// another protocol, is still served as it was bound (listener changes need a restart of
    /// the master), with `[server]`'s limits.
    pub(super) fn adopt(
        &mut self,
        sockets: Vec<(String, Listener)>,
        wanted: &[ListenConfig],
        server: &ServerConfig,
    ) {
        let wanted = keyed(wanted);
        for (key, listener) in sockets {
            let entry = wanted
                .iter()
                .find(|(k, cfg)| *k == key && cfg.protocol == listener.protocol)
                .map(|(_, cfg)| (*cfg).clone());
            let cfg = entry.unwrap_or_else(|| ListenConfig::inherited(listener.protocol));
            let front = Front::new(&cfg, server, &self.body_budget);
            tracing::debug!(protocol = %listener.protocol, address = %listener, "serving");
            self.start(key, front, listener);
        }
    }

    /// Starts accepting on `listener`.
    fn start(&mut self, key: String, front: Front, listener: Listener) {
        let front = Arc::new(ArcSwap::from_pointee(front));
        let stop = self.shutdown.child_token();
        let gauge = self
            .stats
            .connections(&format!("{} {listener}", listener.protocol));
        let accept = AcceptLoop {
            connections: gauge,
            listener,
            front: front.clone(),
            app: self.app.clone(),
            stop: stop.clone(),
            shutdown: self.shutdown.clone(),
            retire: self.retire.clone(),
            tracker: self.tracker.clone(),
        };
        self.tracker.spawn(accept.run());
        self.running.push(Running { key, front, stop });
    }
}

/// Each entry with its key: the address, and which occurrence of that address it is, so that
/// two `127.0.0.1:0` entries are two listeners, and each keeps its socket across reloads.
pub(crate) fn keyed(wanted: &[ListenConfig]) -> Vec<(String, &ListenConfig)> {
    let mut keyed: Vec<(String, &ListenConfig)> = Vec::with_capacity(wanted.len());
    for cfg in wanted {
        let address = cfg.address.get_ref().to_string();
        let nth = keyed
            .iter()
            .filter(|(_, c)| c.address.get_ref().to_string() == address)
            .count();
        keyed.push((format!("{address}#{nth}"), cfg));
    }
    keyed
}

struct AcceptLoop {
    /// This listener's open-connection gauge on the status page.
    connections: Arc<AtomicI64>,
    listener: Listener,
    front: Arc<ArcSwap<Front>>,
    app: Arc<Reloadable>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    retire: Option<CancellationToken>,
    tracker: TaskTracker,
}

/// Fires with `retire`; never without one.
async fn retired(retire: &Option<CancellationToken>) {
    match retire {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

impl AcceptLoop {
    async fn run(self) {
        loop {
            let front = self.front.load_full();
            // At max_connections, stop accepting: new connections wait in the kernel's backlog.
            let accepted = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                // The backlog is the other workers' to serve: leave it to them.
                () = retired(&self.retire) => {
                    tracing::debug!(address = %self.listener, "stopped accepting");
                    return;
                }
                r = async {
                    let permit = front.connections.clone().acquire_owned().await;
                    (permit, self.listener.accept().await)
                } => r,
            };
            let (Ok(permit), accepted) = accepted else {
                break;
            };
            match accepted {
                Ok((stream, conn)) => self.spawn(&front, stream, conn, Some(permit)),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the socket stays open.
                    // Out of descriptors, this fails 20 times a second: a few lines and a count.
                    static ACCEPT: gateway_core::Throttle = gateway_core::Throttle::new();
                    if let Some(suppressed) = ACCEPT.allow() {
                        tracing::warn!(address = %self.listener, error = %e, suppressed, "accept failed");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        // Connections the kernel already completed would be reset when the socket closes:
        // serve them too, so that nothing a client managed to connect is lost.
        let front = self.front.load_full();
        for (stream, conn) in self.listener.drain_backlog() {
            self.spawn(&front, stream, conn, None);
        }
        tracing::debug!(address = %self.listener, "stopped accepting");
    }

    fn spawn(
        &self,
        front: &Front,
        stream: Stream,
        conn: proto_http::ConnInfo,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let (app, shutdown) = (self.app.clone(), self.shutdown.clone());
        let timeout = front.send_timeout;
        let retire = &self.retire;
        let served = match stream {
            Stream::Tcp(s) => {
                front
                    .wire
                    .serve(SendTimeout::new(s, timeout), conn, app, shutdown, retire)
            }
            Stream::Unix(s) => {
                front
                    .wire
                    .serve(SendTimeout::new(s, timeout), conn, app, shutdown, retire)
            }
        };
        let open = self.connections.clone();
        open.fetch_add(1, Ordering::Relaxed);
        self.tracker.spawn(async move {
            served.await;
            open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

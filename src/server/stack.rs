//! The app stack every request goes through, swappable at once on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gateway_core::{App, Body, Environ, GatewayStack, Response, Router, Stats};

/// The current app stack: the access log, panic recovery, local redirects, then the mounts. A
/// reload replaces it in one atomic store: a request runs entirely on the stack it started
/// with, and the next one sees the new apps and mounts.
pub struct Reloadable {
    current: ArcSwap<GatewayStack<Router>>,
    stats: &'static Stats,
}

impl Reloadable {
    /// Serves `router` until [`Reloadable::swap`], counting in `stats`.
    pub fn new(router: Router, stats: &'static Stats) -> Self {
        Reloadable {
            current: ArcSwap::from_pointee(stack(router, stats)),
            stats,
        }
    }

    /// From now on, serve `router`.
    pub fn swap(&self, router: Router) {
        self.current.store(Arc::new(stack(router, self.stats)));
    }
}

/// The stack around `router`, its access lines in the daemon's log.
fn stack(router: Router, stats: &'static Stats) -> GatewayStack<Router> {
    GatewayStack::with_sink(router, stats, crate::logging::access_sink())
}

impl App for Reloadable {
    fn call(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send {
        // The request holds the stack it started on, however long it runs: through a guard,
        // which takes no count on the line every core's requests would write (a request that
        // outlives the guard's few slots per thread falls back to a counted reference).
        let stack = self.current.load();
        async move { stack.call(env, body).await }
    }
}

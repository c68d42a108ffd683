//! The app stack every request goes through, swappable at once on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gateway_core::{App, Body, Environ, GatewayStack, Response, Router, async_trait};

/// What every request goes through, whatever the gateway: the access log, panic recovery,
/// local redirects, then the mounts.
pub fn app_stack(router: Router) -> Arc<dyn App> {
    Arc::new(GatewayStack::new(router))
}

/// The current app stack. A reload replaces it in one atomic store: a request runs entirely on
/// the stack it started with, and the next one sees the new apps and mounts.
pub struct Reloadable {
    current: ArcSwap<GatewayStack<Router>>,
}

impl Reloadable {
    /// Serves `router` until [`Reloadable::swap`].
    pub fn new(router: Router) -> Self {
        Reloadable {
            current: ArcSwap::from_pointee(GatewayStack::new(router)),
        }
    }

    /// From now on, serve `router`.
    pub fn swap(&self, router: Router) {
        self.current.store(Arc::new(GatewayStack::new(router)));
    }
}

#[async_trait]
impl App for Reloadable {
    // The stack's own future runs inside this one: one box per request for all of it.
    async fn call(&self, env: Environ, body: Body) -> Response {
        // A guard rather than a clone of the Arc: no count on a line every core writes.
        let stack = self.current.load();
        stack.serve(env, body).await
    }
}

//! The app stack every request goes through, swappable at once on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gateway_core::{Answer, App, Body, CallFuture, Environ, GatewayStack, Router};

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

// By hand (see `CallFuture`): the stack's own answer, which owns the stack it started on.
impl App for Reloadable {
    fn call<'a, 'f>(&'a self, env: Environ, body: Body) -> CallFuture<'f>
    where
        'a: 'f,
        Self: 'f,
    {
        self.answer(env, body).into_call()
    }

    // A guard rather than a clone of the Arc: no count on a line every core writes. A request
    // that waits holds a clone of its own.
    fn answer(&self, env: Environ, body: Body) -> Answer<'_> {
        self.current.load().answer_owned(env, body)
    }
}

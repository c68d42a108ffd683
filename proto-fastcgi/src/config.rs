//! The limits of a FastCGI listener, shared by its connections.

use std::sync::Arc;
use std::time::Duration;

use crate::budget::BodyBudget;

/// The limits of a FastCGI listener.
#[derive(Clone, Debug)]
pub struct FastCgiConfig {
    /// Requests at once on one connection (FCGI_MAX_REQS). Over it: END_REQUEST with
    /// CANT_MPX_CONN (when 1) or OVERLOADED.
    ///
    /// 1 (the default, as php-fpm; nginx never multiplexes anyway): a request's STDIN is
    /// read only as fast as its app reads it, so the web server feels backpressure through
    /// TCP. Above 1: a slow app must not stall its neighbours on the shared connection, so
    /// the reader does not wait on one request, and each unread body is buffered up to
    /// `max_body_size`, within the shared `body_budget`.
    pub max_requests: usize,
    /// Connections at once (FCGI_MAX_CONNS); the listener enforces it, this reports it.
    pub max_connections: usize,
    /// The most bytes of PARAMS per request; over it: 431.
    pub max_params_size: usize,
    /// The request body cap; over it: 413.
    pub max_body_size: u64,
    /// How long a request head (BEGIN_REQUEST to the end of PARAMS) may take, and how long a
    /// new connection may stay silent.
    pub header_read_timeout: Duration,
    /// How long a kept connection (FCGI_KEEP_CONN) may wait for its next request.
    pub keepalive_timeout: Duration,
    /// What every connection sharing it may hold of unread request bodies; past it, a
    /// connection stops reading until bodies are consumed or freed. Share one across
    /// listeners to bound the whole process.
    pub body_budget: Arc<BodyBudget>,
}

impl Default for FastCgiConfig {
    fn default() -> Self {
        FastCgiConfig {
            max_requests: 1,
            max_connections: 1024,
            max_params_size: 64 << 10,
            max_body_size: 100 << 20,
            header_read_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(75),
            body_budget: Arc::new(BodyBudget::default()),
        }
    }
}

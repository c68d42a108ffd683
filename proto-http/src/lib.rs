//! gatewayd's HTTP/1.1 front-end.
//!
//! hyper parses the wire; each request becomes the same [`Environ`](gateway_core::Environ) a
//! CGI server would build ([`environ`], `environ.rs`), the app is called, and its
//! [`Response`](gateway_core::Response) goes back as HTTP ([`into_http`], `response.rs`).
//! [`serve_connection`] drives one connection. With the `tower` feature, [`tower`] adapts apps
//! and tower services (axum) to each other.

#![warn(missing_docs, unreachable_pub)]

mod chunked;
mod environ;
mod guard;
mod head_timer;
mod response;
mod serve;
mod sniff;
#[cfg(feature = "tower")]
pub mod tower;

pub use environ::{
    ConnEnviron, ConnInfo, NotHttp, SERVER_SOFTWARE, check_host, environ, request_from_environ,
};
pub use guard::ambiguity;
pub use response::{from_http, into_http};
pub use serve::{HttpConfig, serve_connection, serve_connection_retiring};
/// The raw-head watch, public only for the differential fuzz target (`fuzz/`), which holds it
/// against hyper's own parser.
#[doc(hidden)]
pub use sniff::{Sniffed, Verdict};

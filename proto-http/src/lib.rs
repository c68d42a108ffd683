//! gatewayd's HTTP/1.1 front-end.
//!
//! hyper parses the wire; each request becomes the same [`Environ`](gateway_core::Environ) a
//! CGI server would build ([`gateway_core::environ`]), the app is called, and its
//! [`Response`](gateway_core::Response) goes back as HTTP ([`gateway_core::into_http`]).
//! [`serve_connection`] drives one connection.

mod chunked;
mod guard;
mod head_timer;
mod serve;
mod sniff;

pub use gateway_core::{ConnInfo, SERVER_SOFTWARE, environ, into_http};
pub use guard::ambiguity;
pub use serve::{HttpConfig, serve_connection};
/// The raw-head watch, public only for the differential fuzz target (`fuzz/`), which holds it
/// against hyper's own parser.
#[doc(hidden)]
pub use sniff::{Sniffed, Verdict};

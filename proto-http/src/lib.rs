//! gatewayd's HTTP/1.1 front-end.
//!
//! hyper parses the wire; this crate maps each request into the same
//! [`Environ`](gateway_core::Environ) a CGI server would build ([`environ`]), calls the app,
//! and turns its [`Response`](gateway_core::Response) back into HTTP ([`into_http`]).
//! [`serve_connection`] drives one connection.

mod environ;
mod response;
mod serve;

pub use environ::{ConnInfo, SERVER_SOFTWARE, environ};
pub use response::into_http;
pub use serve::{HttpConfig, serve_connection};

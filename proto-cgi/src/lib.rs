//! gatewayd's CGI/1.1 pieces (RFC 3875), both sans-IO:
//!
//! - [`read_environ`]: the environment of a CGI process as an [`Environ`](gateway_core::Environ),
//!   for gatewayd running as a CGI program;
//! - [`parse_head`]: a CGI script's output head, for gatewayd hosting CGI scripts.
//!
//! Writing a CGI response is [`gateway_core::write_response_head`], shared with FastCGI and
//! SCGI.

#![warn(missing_docs, unreachable_pub)]

mod env;
mod response;

pub use env::read_environ;
pub use response::{HeadError, Kind, MAX_HEAD, ScriptHead, parse_head};

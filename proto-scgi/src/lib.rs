//! gatewayd's SCGI front-end.
//!
//! SCGI is a netstring header of CGI variables, then exactly CONTENT_LENGTH bytes of body;
//! the answer is a CGI response and the connection closes. [`parse`] is the sans-IO header
//! parser (every malformation an error value, never a panic, never an allocation beyond what
//! arrived); [`serve_connection`] drives one connection. The header becomes the
//! [`Environ`](gateway_core::Environ) through the same normalizer as FastCGI and CGI
//! ([`gateway_core::CgiParams`]).

#![warn(missing_docs, unreachable_pub)]

mod body;
pub mod client;
mod framing;
mod parse;
mod serve;

pub use framing::{Framing, Scgi};
pub use parse::{Header, ScgiError, header_len, parse};
pub use serve::{ScgiConfig, serve_connection, serve_framed};

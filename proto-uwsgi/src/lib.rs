//! gatewayd's uwsgi front-end: uWSGI's binary protocol, as nginx `uwsgi_pass`, Apache
//! mod_proxy_uwsgi and lighttpd mod_scgi (`scgi.protocol = "uwsgi"`) speak it.
//!
//! A request is a 4-byte header (`modifier1` u8, `datasize` u16 little-endian, `modifier2`
//! u8), `datasize` bytes of vars (u16 LE key length, key, u16 LE value length, value), then
//! CONTENT_LENGTH bytes of body; one request per connection. [`parse`] is the sans-IO packet
//! parser (every malformation a [`UwsgiError`], never a panic); [`serve_connection`] drives
//! one connection: the body streams to the app as it reads, and a closed connection cancels
//! the call. The vars become the [`Environ`](gateway_core::Environ) through the same
//! normalizer as FastCGI, SCGI and CGI ([`gateway_core::CgiParams`]).
//!
//! # The response
//!
//! The answer is an HTTP status line, the header fields and the body, then the connection
//! closes: `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello` (the shared
//! [`ResponseWriter`](gateway_core::ResponseWriter) in
//! [`HeadStyle::StatusLine`](gateway_core::HeadStyle::StatusLine)). It is what uWSGI itself
//! sends, and the one form all three web servers read:
//!
//! - nginx's uwsgi module parses an HTTP status line, and falls back to CGI `Status:` fields
//!   when the first line is not one;
//! - Apache's mod_proxy_uwsgi (`uwsgi_response()`) requires the first line to match
//!   `HTTP/#.# ###*` or `HTTP/# ###*` and answers 502 otherwise: a CGI `Status:` head fails;
//! - lighttpd (`http_response_parse_headers()`, shared by mod_scgi in both protocols) reads a
//!   first line starting `HTTP/` as a status line, and `Status:` fields otherwise.
//!
//! Transport fields (`Connection`, `Transfer-Encoding`, `Keep-Alive`) are left out, as for
//! every CGI-family gateway: the body runs to the close.
//!
//! # Refusals
//!
//! `modifier1` other than 0 is answered 501 and the connection closes (nginx's
//! `uwsgi_modifier1 30`, say, is a config to fix). A truncated packet, a var overrunning
//! `datasize`, trailing bytes, a repeated `CONTENT_LENGTH` or one that is not plain decimal
//! digits are answered 400, vars over `max_head_size` 431; each with a log line.

#![warn(missing_docs, unreachable_pub)]

pub mod client;
mod framing;
mod parse;

pub use framing::{Uwsgi, UwsgiConfig, serve_connection};
pub use parse::{HEADER_LEN, Header, UwsgiError, packet_len, parse};

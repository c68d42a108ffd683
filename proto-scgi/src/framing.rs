//! What a one-request-per-connection protocol supplies to the driver ([`serve_framed`]): how
//! its head is framed and read, and how its response head is written. SCGI and uwsgi differ in
//! nothing else (lighttpd serves both from one module, mod_scgi).
//!
//! [`serve_framed`]: crate::serve_framed

use bytes::Bytes;
use gateway_core::{Environ, HeadStyle};

use crate::parse::{ScgiError, header_len, parse};

/// A request head's framing. Each method that refuses input logs why and gives the status to
/// answer.
pub trait Framing: Send + Sync + 'static {
    /// The protocol's name in log lines (`SCGI`, `uwsgi`).
    const NAME: &'static str;
    /// How response heads are written.
    const STYLE: HeadStyle;
    /// How many bytes the whole head takes, once it is all in `buf`; `Ok(None)` before.
    fn head_len(buf: &[u8], max: usize) -> Result<Option<usize>, u16>;
    /// The whole head, `head_len` bytes: the request's environ and its body's length.
    fn parse(head: &Bytes, max: usize) -> Result<(Environ, u64), u16>;
    /// The connection ended inside its head, after `buf`.
    fn truncated(buf: &[u8]) -> u16;
}

/// SCGI: a netstring of NUL-separated pairs, CONTENT_LENGTH first; CGI-format responses.
#[derive(Debug)]
pub struct Scgi;

fn refuse(e: ScgiError) -> u16 {
    tracing::debug!(error = %e, "malformed SCGI header");
    e.status()
}

impl Framing for Scgi {
    const NAME: &'static str = "SCGI";
    const STYLE: HeadStyle = HeadStyle::Cgi;

    fn head_len(buf: &[u8], max: usize) -> Result<Option<usize>, u16> {
        header_len(buf, max).map_err(refuse)
    }

    fn parse(head: &Bytes, max: usize) -> Result<(Environ, u64), u16> {
        let header = parse(head, max).map_err(refuse)?.ok_or(400u16)?;
        Ok((header.environ, header.content_length))
    }

    fn truncated(_buf: &[u8]) -> u16 {
        tracing::debug!("the SCGI header ends early");
        400
    }
}

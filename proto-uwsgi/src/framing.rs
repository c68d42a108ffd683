//! uwsgi's [`Framing`] for the one-request-per-connection driver it shares with SCGI
//! ([`proto_scgi::serve_framed`]): the packet parser, the refusals' log lines, and an HTTP
//! status line as the response head.

use std::sync::Arc;

use bytes::Bytes;
use gateway_core::{App, Environ, HeadStyle};
use proto_scgi::{Framing, ScgiConfig};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::parse::{HEADER_LEN, UwsgiError, packet_len, parse};

/// The limits of a uwsgi listener: `max_header_size` caps the vars (`datasize`, itself at
/// most 65,535 bytes).
pub use proto_scgi::ScgiConfig as UwsgiConfig;

/// uwsgi: a 4-byte header, `datasize` bytes of vars, then the body; an HTTP status line as
/// the response head (see the crate docs).
#[derive(Debug)]
pub struct Uwsgi;

fn refuse(e: UwsgiError) -> u16 {
    match e {
        UwsgiError::Modifier1(_) => tracing::warn!(error = %e, "uwsgi request refused"),
        _ => tracing::info!(error = %e, "malformed uwsgi request"),
    }
    e.status()
}

impl Framing for Uwsgi {
    const NAME: &'static str = "uwsgi";
    const STYLE: HeadStyle = HeadStyle::StatusLine;

    fn head_len(buf: &[u8], max: usize) -> Result<Option<usize>, u16> {
        packet_len(buf, max).map_err(refuse)
    }

    fn parse(head: &Bytes, max: usize) -> Result<(Environ, u64), u16> {
        let header = parse(head, max).map_err(refuse)?.ok_or(400u16)?;
        Ok((header.environ, header.content_length))
    }

    fn truncated(buf: &[u8]) -> u16 {
        let want = match buf.get(1..3) {
            Some(&[lo, hi]) if buf.len() >= HEADER_LEN => {
                HEADER_LEN + usize::from(u16::from_le_bytes([lo, hi]))
            }
            _ => HEADER_LEN,
        };
        refuse(UwsgiError::Truncated {
            got: buf.len(),
            want,
        })
    }
}

/// Serves the one request of a uwsgi connection. A refused packet gets a 400 (501 for a
/// modifier1 other than 0, 431 for vars over the cap) and a log line, and the connection
/// closes; when the web server closes the connection while the app runs, the app's call is
/// cancelled.
pub async fn serve_connection<IO, A: App>(io: IO, app: Arc<A>, cfg: Arc<ScgiConfig>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    proto_scgi::serve_framed::<Uwsgi, IO, A>(io, app, cfg).await;
}

//! What a script reads on stdin, and the `CONTENT_LENGTH` that tells it how much (RFC 3875
//! §4.1.2, §4.2): a script never sees a length that disagrees with the body it gets.
//!
//! A declared length is enforced while the body streams in ([`feed`]). A body of unknown
//! length (an HTTP chunked request, a FastCGI request without `CONTENT_LENGTH`) is spooled
//! first, in memory up to [`IN_MEMORY`] and then in an anonymous temp file, within the
//! request's body cap, so that the script gets its true length.

use std::io::{Seek as _, Write as _};

use bytes::{Bytes, BytesMut};
use gateway_core::{Body, BodyError, Environ};
use tokio::io::AsyncWriteExt as _;
use tokio::process::ChildStdin;
use tokio::time::Instant;

/// A spooled body up to this size stays in memory.
const IN_MEMORY: usize = 64 << 10;

/// The request body, ready for the script.
pub(super) enum Input {
    /// No body: no `CONTENT_LENGTH`, and stdin at its end.
    None,
    /// The body streams in as the script reads; its length was declared.
    Declared(u64, Body),
    /// A spooled body, small.
    Memory(Bytes),
    /// A spooled body in an unlinked temp file, rewound; and its length.
    File(std::fs::File, u64),
}

/// Why a body was refused; the status answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal(pub u16);

impl Input {
    /// The body's length and where it is; a body of unknown length is spooled by `deadline`.
    pub(super) async fn prepare(
        env: &Environ,
        body: Body,
        deadline: Instant,
        script: &str,
    ) -> Result<Input, Refusal> {
        if let Some(raw) = env.get("CONTENT_LENGTH") {
            let Some(declared) = env.content_length() else {
                tracing::warn!(script, content_length = %String::from_utf8_lossy(raw), "CONTENT_LENGTH is not a number; refused");
                return Err(Refusal(400));
            };
            if let Some(actual) = body.exact_len().filter(|&n| n != declared) {
                tracing::warn!(
                    script,
                    declared,
                    actual,
                    "the request body does not match CONTENT_LENGTH; refused"
                );
                return Err(Refusal(400));
            }
            return Ok(Input::Declared(declared, body));
        }
        if body.exact_len() == Some(0) {
            return Ok(Input::None);
        }
        match tokio::time::timeout_at(deadline, spool(body)).await {
            Ok(Ok(input)) => Ok(input),
            Ok(Err(SpoolError::Body(e))) => {
                tracing::warn!(script, error = %e, "request body refused");
                Err(Refusal(e.status()))
            }
            Ok(Err(SpoolError::Io(e))) => {
                tracing::error!(script, error = %e, "cannot spool the request body");
                Err(Refusal(500))
            }
            Err(_) => {
                tracing::warn!(script, "the request body did not arrive within the timeout");
                Err(Refusal(408))
            }
        }
    }

    /// The `CONTENT_LENGTH` the script gets, if any.
    pub(super) fn len(&self) -> Option<u64> {
        match self {
            Input::None => None,
            Input::Declared(n, _) | Input::File(_, n) => Some(*n),
            Input::Memory(b) => Some(b.len() as u64),
        }
    }
}

enum SpoolError {
    Body(BodyError),
    Io(std::io::Error),
}

/// Reads the whole body (the body's own cap bounds it: 413 past `max_body_size`). Past
/// [`IN_MEMORY`] bytes, each [`IN_MEMORY`] bytes go to the temp file in one blocking write.
async fn spool(mut body: Body) -> Result<Input, SpoolError> {
    let mut pending = BytesMut::new();
    let mut file: Option<std::fs::File> = None;
    let mut len = 0u64;
    while let Some(chunk) = body.chunk().await.map_err(SpoolError::Body)? {
        len += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        if pending.len() > IN_MEMORY {
            file = Some(write_out(file, pending.split().freeze()).await?);
        }
    }
    match file {
        Some(f) => {
            let mut f = write_out(Some(f), pending.freeze()).await?;
            f.rewind().map_err(SpoolError::Io)?;
            Ok(Input::File(f, len))
        }
        None if pending.is_empty() => Ok(Input::None),
        None => Ok(Input::Memory(pending.freeze())),
    }
}

/// Appends `data` to the spool file, made on first use, off the runtime's threads.
async fn write_out(file: Option<std::fs::File>, data: Bytes) -> Result<std::fs::File, SpoolError> {
    tokio::task::spawn_blocking(move || {
        let mut f = match file {
            Some(f) => f,
            None => tempfile::tempfile()?,
        };
        f.write_all(&data)?;
        Ok(f)
    })
    .await
    .map_err(|e| SpoolError::Io(std::io::Error::other(e)))?
    .map_err(SpoolError::Io)
}

/// Why feeding a declared body stopped short of its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mismatch {
    /// More bytes than `CONTENT_LENGTH`: the extra chunk was withheld.
    Longer,
    /// The body ended before `CONTENT_LENGTH` bytes.
    Shorter(u64),
    /// The body failed (413 past the cap, 400 for a broken one).
    Failed(u16),
}

impl Mismatch {
    /// The status that answers it when the response has not started.
    pub(super) fn status(self) -> u16 {
        match self {
            Mismatch::Longer | Mismatch::Shorter(_) => 400,
            Mismatch::Failed(status) => status,
        }
    }
}

/// Writes exactly `declared` bytes of `body` to the script's stdin, then closes it. A body
/// that is longer, shorter or broken is a [`Mismatch`], returned with stdin still open so that
/// the script is killed before it could take a short input for a whole one. A script that
/// stops reading is its own business.
pub(super) async fn feed(
    mut stdin: ChildStdin,
    mut body: Body,
    declared: u64,
) -> Result<(), (Mismatch, ChildStdin)> {
    let mut sent = 0u64;
    loop {
        match body.chunk().await {
            Ok(Some(chunk)) => {
                let len = chunk.len() as u64;
                if sent.saturating_add(len) > declared {
                    return Err((Mismatch::Longer, stdin));
                }
                if stdin.write_all(&chunk).await.is_err() {
                    return Ok(());
                }
                sent += len;
            }
            Ok(None) if sent < declared => return Err((Mismatch::Shorter(sent), stdin)),
            Ok(None) => return Ok(()),
            Err(e) => return Err((Mismatch::Failed(e.status()), stdin)),
        }
    }
}

/// Writes a spooled body to the script's stdin, then closes it.
pub(super) async fn feed_bytes(mut stdin: ChildStdin, data: Bytes) {
    let _ = stdin.write_all(&data).await; // a script that stops reading is its own business
}

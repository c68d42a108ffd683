//! A script's stdout: its CGI head, then its body streamed back, each read raced against the
//! script's verdict so that a killed script ends its response at once.

use bytes::{Bytes, BytesMut};
use gateway_core::{Body, BoxError};
use proto_cgi::{ScriptHead, parse_head};
use tokio::io::AsyncReadExt as _;
use tokio::process::ChildStdout;

use super::supervise::{Verdict, Watch};

/// How long a body whose output has ended waits for the script's exit, which says whether the
/// request went as it should (a body that turned out not to match its length kills it).
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A running script's output. Dropping it kills the script (the client went away).
pub(super) struct Output {
    pub(super) stdout: ChildStdout,
    pub(super) watch: Watch,
    pub(super) name: String,
}

/// What one read gave.
enum Read {
    Data,
    End,
    Killed(Verdict),
}

impl Output {
    async fn read(&mut self, buf: &mut BytesMut) -> Read {
        tokio::select! {
            n = self.stdout.read_buf(buf) => match n {
                Ok(0) | Err(_) => Read::End,
                Ok(_) => Read::Data,
            },
            v = self.watch.verdict() => Read::Killed(v),
        }
    }

    /// Reads until the head is complete: the head and the body bytes after it; or the status
    /// that answers a script that failed first.
    pub(super) async fn read_head(&mut self) -> Result<(ScriptHead, Bytes), u16> {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            let frozen = buf.clone().freeze();
            match parse_head(&frozen) {
                Ok(Some(head)) => {
                    // A body found wrong while the head was read still refuses the request.
                    if let Some(Verdict::BadBody(m)) = self.watch.peek() {
                        return Err(m.status());
                    }
                    return Ok((head.clone(), frozen.slice(head.len..)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(script = %self.name, error = %e, "CGI script output is not a CGI response");
                    return Err(502);
                }
            }
            let verdict = match self.read(&mut buf).await {
                Read::Data => continue,
                Read::End => self.watch.output_done().await,
                Read::Killed(v) => v,
            };
            return Err(match verdict {
                Verdict::TimedOut => 504,
                Verdict::BadBody(m) => m.status(),
                Verdict::Exited(_) | Verdict::Abandoned => {
                    tracing::error!(script = %self.name, ?verdict, "CGI script ended before its headers");
                    502
                }
            });
        }
    }

    /// Reads and drops the rest of the output, then waits for the script's exit.
    pub(super) async fn finish(mut self) {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            buf.clear();
            match self.read(&mut buf).await {
                Read::Data => {}
                Read::End => {
                    self.watch.output_done().await;
                    return;
                }
                Read::Killed(_) => return,
            }
        }
    }

    /// The rest of stdout as the response body, ended by the script's exit (or, if it lives on,
    /// by its output's end after [`EXIT_GRACE`]); a kill fails it.
    pub(super) fn into_body(self, early: Bytes) -> Body {
        let chunks =
            futures_util::stream::unfold((Some(self), Some(early)), |(out, early)| async move {
                let mut out = out?;
                if let Some(early) = early.filter(|e| !e.is_empty()) {
                    return Some((Ok(early), (Some(out), None)));
                }
                let mut buf = BytesMut::with_capacity(32 << 10);
                let verdict = match out.read(&mut buf).await {
                    Read::Data => return Some((Ok(buf.freeze()), (Some(out), None))),
                    // A script that closed its output and lives on has still answered in
                    // full: its body ends after a short grace (the watcher keeps its deadline).
                    Read::End => tokio::time::timeout(EXIT_GRACE, out.watch.output_done())
                        .await
                        .unwrap_or(Verdict::Exited(true)),
                    Read::Killed(v) => v,
                };
                match verdict {
                    Verdict::Exited(_) => None,
                    v => {
                        let e: BoxError = format!("the CGI script was killed: {v:?}").into();
                        Some((Err(e), (None, None)))
                    }
                }
            });
        Body::from_stream(chunks)
    }
}

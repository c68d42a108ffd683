//! A script's whole life, watched by a task of its own: it is killed with its process group at
//! its deadline whether or not anyone reads its output, when its request is dropped, or when
//! its declared body turns out wrong; and its `max_scripts` slot is freed the moment it is
//! reaped.
//!
//! The leader is reaped only once its output is done or it is killed: until then its pid, the
//! group's id, cannot be reused, so signalling the group never reaches a stranger.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use super::input::Mismatch;

/// How long a killed script may take to die before its slot is freed anyway.
const REAP_WITHIN: Duration = Duration::from_secs(5);

/// A body feeder: it ends with the body, or with a mismatch and the stdin it kept open.
pub(super) type Feeder = Pin<Box<dyn Future<Output = Result<(), (Mismatch, ChildStdin)>> + Send>>;

/// How the script's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It exited (after its output ended); `true` when it exited with success.
    Exited(bool),
    /// It was killed at its deadline.
    TimedOut,
    /// It was killed because its body did not match `CONTENT_LENGTH`.
    BadBody(Mismatch),
    /// It was killed because its request was dropped.
    Abandoned,
}

/// The request side's end: say that the output is done, and learn the verdict. Dropping it
/// before that kills the script.
pub(super) struct Watch {
    done: Option<oneshot::Sender<()>>,
    verdict: oneshot::Receiver<Verdict>,
    known: Option<Verdict>,
}

impl Watch {
    /// The script's output ended: let it exit (within its deadline) and report how.
    pub(super) async fn output_done(&mut self) -> Verdict {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        self.verdict().await
    }

    /// The verdict, once there is one (a kill comes before the output ends).
    pub(super) async fn verdict(&mut self) -> Verdict {
        if let Some(v) = self.known {
            return v;
        }
        let v = (&mut self.verdict).await.unwrap_or(Verdict::Abandoned);
        self.known = Some(v);
        v
    }

    /// The verdict if it is already known.
    pub(super) fn peek(&mut self) -> Option<Verdict> {
        if self.known.is_none() {
            self.known = self.verdict.try_recv().ok();
        }
        self.known
    }
}

/// Starts watching `child`; `feeder` writes its declared body.
pub(super) fn supervise(
    child: Child,
    feeder: Option<Feeder>,
    deadline: Instant,
    permit: OwnedSemaphorePermit,
    name: String,
) -> Watch {
    let (done_tx, done_rx) = oneshot::channel();
    let (verdict_tx, verdict_rx) = oneshot::channel();
    let group = Group {
        pgid: child.id().map(|id| Pid::from_raw(id as i32)),
    };
    tokio::spawn(async move {
        let verdict = watch(child, group, feeder, deadline, done_rx, &name).await;
        drop(permit);
        let _ = verdict_tx.send(verdict);
    });
    Watch {
        done: Some(done_tx),
        verdict: verdict_rx,
        known: None,
    }
}

async fn watch(
    mut child: Child,
    mut group: Group,
    mut feeder: Option<Feeder>,
    deadline: Instant,
    mut done: oneshot::Receiver<()>,
    name: &str,
) -> Verdict {
    let mut output_done = false;
    let mut kept_stdin = None;
    let verdict = loop {
        tokio::select! {
            fed = async {
                match feeder.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            }, if feeder.is_some() => {
                feeder = None;
                if let Err((mismatch, stdin)) = fed {
                    kept_stdin = Some(stdin);
                    break Verdict::BadBody(mismatch);
                }
            }
            status = child.wait(), if output_done => {
                group.pgid = None;
                return match status {
                    Ok(status) if status.success() => Verdict::Exited(true),
                    Ok(status) => {
                        tracing::warn!(script = name, %status, "CGI script exited with an error");
                        Verdict::Exited(false)
                    }
                    Err(e) => {
                        tracing::error!(script = name, error = %e, "cannot wait for the CGI script");
                        Verdict::Exited(false)
                    }
                };
            }
            () = tokio::time::sleep_until(deadline) => break Verdict::TimedOut,
            said = &mut done, if !output_done => match said {
                Ok(()) => output_done = true,
                Err(_) => break Verdict::Abandoned,
            },
        }
    };
    group.kill();
    drop(feeder);
    if tokio::time::timeout(REAP_WITHIN, child.wait())
        .await
        .is_err()
    {
        // Stuck in the kernel; the runtime reaps it once it dies. Its slot is freed now.
        tracing::error!(
            script = name,
            "CGI script still not dead {REAP_WITHIN:?} after SIGKILL"
        );
    }
    drop(kept_stdin);
    match verdict {
        Verdict::TimedOut => tracing::error!(script = name, "CGI script timed out; killed"),
        Verdict::BadBody(Mismatch::Longer) => tracing::warn!(
            script = name,
            "the request body is longer than its CONTENT_LENGTH; the CGI script was killed"
        ),
        Verdict::BadBody(Mismatch::Shorter(got)) => tracing::warn!(
            script = name,
            got,
            "the request body is shorter than its CONTENT_LENGTH; the CGI script was killed"
        ),
        Verdict::BadBody(Mismatch::Failed(status)) => tracing::warn!(
            script = name,
            status,
            "the request body failed; the CGI script was killed"
        ),
        Verdict::Abandoned => tracing::debug!(script = name, "request gone; CGI script killed"),
        Verdict::Exited(_) => {}
    }
    verdict
}

/// The script's process group while its leader is not reaped; dropped so, it kills the group
/// (the runtime shutting down drops the watching task).
struct Group {
    pgid: Option<Pid>,
}

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

//! gatewayd as a CGI/1.1 program (RFC 3875): one request from the environment and stdin, one
//! response on stdout, then exit.
//!
//! It starts fast because it does little: a current-thread runtime, no listeners, the config
//! parsed once, stdin read only up to CONTENT_LENGTH. It exits once it has answered: a host
//! may keep stdin open, and nothing waits for it then.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use futures_util::FutureExt as _;
use gateway_core::{App as _, Body, Response, ResponseWriter};

use crate::config::Registry;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::config::Config;

mod stdin;

/// Serves the one request of this process.
pub fn run(config: &Path, registry: &Registry) -> ExitCode {
    let config = match Config::load(config, registry) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return respond(Response::error(500), false);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return respond(Response::error(500), false);
        }
    };
    let code = runtime.block_on(async {
        let env = match proto_cgi::read_environ(std::env::vars_os()) {
            Ok(env) => env,
            Err(e) => {
                tracing::error!("bad CGI environment: {e}");
                return respond(Response::error(400), false);
            }
        };
        let head_only = env.method() == "HEAD";
        let chunked = env
            .get("HTTP_TRANSFER_ENCODING")
            .is_some_and(|te| te.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"));
        let limit = config.server.max_body_size;
        // CONTENT_LENGTH is valid or absent (the normalizer drops an invalid one): without
        // one, there is no body (RFC 3875 §4.2), save for a chunked one.
        let body = match env.content_length() {
            Some(n) if n > limit => {
                let code = respond(Response::error(413), head_only);
                stdin::drain(n);
                return code;
            }
            // Never past CONTENT_LENGTH: the host may keep stdin open (RFC 3875 §4.2).
            Some(n) if n > 0 => stdin::exact(n),
            // A chunked request that the host (Apache's mod_cgid) streams without a length:
            // the body is stdin up to its end, within the cap.
            None if chunked => stdin::to_end().limit(limit),
            _ => Body::empty(),
        };
        let app = gateway_core::GatewayStack::with_sink(
            config.router,
            gateway_core::Stats::leak(),
            crate::logging::access_sink(),
        );
        let res = app.call(env, body).await;
        write(res, head_only).await
    });
    // Answered: what is still running (a read of stdin the host keeps open, an app's blocking
    // task or timer) must not keep the process, and dropping the runtime would wait for it.
    runtime.shutdown_background();
    code
}

/// Writes an error page, which needs no runtime: its body is whole.
fn respond(res: Response, head_only: bool) -> ExitCode {
    let (mut w, mut body) = ResponseWriter::new(res, head_only);
    let ready = take_ready(&mut w, &mut body);
    exit_code(ready.and_then(|_| write_now(&mut w)))
}

/// The CGI response on stdout: head, then the body as the app yields it (none for HEAD).
///
/// A response ready at once (the usual page) is written straight to the descriptor, on this
/// thread: nothing else needs to run meanwhile, and tokio's `stdout()` would start a thread
/// for it, a third of a CGI request's time. A response that streams goes through tokio's
/// `stdout()`, whose writes wait on a thread of their own, so that the app's tasks (a CGI
/// script's stdin feeder, say) go on while the host is not reading: a host that writes the
/// whole request body before it reads the response would otherwise wait on us as we wait on
/// it.
async fn write(res: Response, head_only: bool) -> ExitCode {
    let (mut w, mut body) = ResponseWriter::new(res, head_only);
    let sent = match take_ready(&mut w, &mut body) {
        Ok(true) => write_now(&mut w),
        Ok(false) => stream(&mut tokio::io::stdout(), &mut w, &mut body).await,
        Err(e) => Err(e),
    };
    exit_code(sent)
}

/// The most of a body taken at once, before it is streamed instead: a pipe's worth.
const READY_MAX: usize = 64 << 10;

/// Gives `w` what the body has ready, up to [`READY_MAX`]; whether that was all of it.
fn take_ready(w: &mut ResponseWriter, body: &mut Body) -> io::Result<bool> {
    let mut taken = 0;
    while taken <= READY_MAX {
        match body.chunk().now_or_never() {
            None => return Ok(false),
            Some(chunk) => match chunk.map_err(io::Error::other)? {
                Some(chunk) => {
                    taken += chunk.len();
                    w.push(chunk);
                }
                None => {
                    w.end();
                    return Ok(true);
                }
            },
        }
    }
    Ok(false)
}

fn exit_code(sent: io::Result<()>) -> ExitCode {
    match sent {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the response cannot be written whole");
            ExitCode::FAILURE
        }
    }
}

/// Stdout as an unbuffered file of its own (a duplicate of descriptor 1), for writes that
/// block this thread.
fn stdout() -> io::Result<std::fs::File> {
    use std::os::fd::AsFd as _;
    Ok(std::fs::File::from(
        io::stdout().as_fd().try_clone_to_owned()?,
    ))
}

/// Writes what `w` has ready to stdout, blocking this thread.
fn write_now(w: &mut ResponseWriter) -> io::Result<()> {
    let mut out = stdout()?;
    while let Some(bytes) = w.poll_write() {
        out.write_all(&bytes)?;
    }
    Ok(())
}

/// Writes what `w` hands out as the app yields it, flushing only before a wait on the app (so
/// that the host sees a streamed response as it comes) and at the end, not after every chunk.
async fn stream<W: AsyncWrite + Unpin>(
    out: &mut W,
    w: &mut ResponseWriter,
    body: &mut Body,
) -> io::Result<()> {
    loop {
        while let Some(bytes) = w.poll_write() {
            out.write_all(&bytes).await?;
        }
        if w.is_done() {
            return out.flush().await;
        }
        // A chunk's future holds nothing: one that is not ready is dropped and made again.
        let chunk = match body.chunk().now_or_never() {
            Some(chunk) => chunk,
            None => {
                out.flush().await?;
                body.chunk().await
            }
        };
        match chunk.map_err(io::Error::other)? {
            Some(chunk) => w.push(chunk),
            None => w.end(),
        }
    }
}

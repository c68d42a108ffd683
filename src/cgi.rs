//! gatewayd as a CGI/1.1 program (RFC 3875): one request from the environment and stdin, one
//! response on stdout, then exit.
//!
//! It starts fast because it does little: a current-thread runtime, no listeners, the config
//! parsed once, stdin read only up to CONTENT_LENGTH. It exits once it has answered: a host
//! may keep stdin open, and nothing waits for it then.

use std::future::Future as _;
use std::io::Write as _;
use std::path::Path;
use std::pin::pin;
use std::process::ExitCode;
use std::task::Poll;

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
    let (mut w, body) = ResponseWriter::new(res, head_only);
    if let Some(Ok(page)) = body.to_bytes().now_or_never() {
        w.push(page);
    }
    w.end();
    let mut out = std::io::stdout().lock();
    while let Some(bytes) = w.poll_write() {
        if out.write_all(&bytes).is_err() {
            return ExitCode::FAILURE;
        }
    }
    match out.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The CGI response on stdout: head, then the body as the app yields it (none for HEAD).
async fn write(res: Response, head_only: bool) -> ExitCode {
    let (mut w, mut body) = ResponseWriter::new(res, head_only);
    match send(&mut tokio::io::stdout(), &mut w, &mut body).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the response cannot be written whole");
            ExitCode::FAILURE
        }
    }
}

/// Writes what `w` hands out, flushing only before a wait on the app (so that the host sees
/// a streamed response as it comes) and at the end, not after every chunk.
async fn send<W: AsyncWrite + Unpin>(
    out: &mut W,
    w: &mut ResponseWriter,
    body: &mut Body,
) -> std::io::Result<()> {
    loop {
        while let Some(bytes) = w.poll_write() {
            out.write_all(&bytes).await?;
        }
        if w.is_done() {
            return out.flush().await;
        }
        let mut next = pin!(body.chunk());
        let ready = std::future::poll_fn(|cx| match next.as_mut().poll(cx) {
            Poll::Ready(chunk) => Poll::Ready(Some(chunk)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        let chunk = match ready {
            Some(chunk) => chunk,
            None => {
                out.flush().await?;
                next.await
            }
        };
        match chunk.map_err(std::io::Error::other)? {
            Some(chunk) => w.push(chunk),
            None => w.end(),
        }
    }
}

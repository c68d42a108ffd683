//! gatewayd as a CGI/1.1 program (RFC 3875): one request from the environment and stdin, one
//! response on stdout, then exit.
//!
//! It starts fast because it does little: a current-thread runtime, no listeners, the config
//! parsed once, stdin read only up to CONTENT_LENGTH. It exits once it has answered: a host
//! may keep stdin open, and nothing waits for it then.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use bytes::BytesMut;
use gateway_core::{Body, Registry, Response, write_head_or_500, write_response_head};

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
        let app = crate::server::app_stack(config.router);
        let res = app.answer(env, body).await;
        write(res, head_only).await
    });
    // Answered: what is still running (a read of stdin the host keeps open, an app's blocking
    // task or timer) must not keep the process, and dropping the runtime would wait for it.
    runtime.shutdown_background();
    code
}

/// Writes a response that needs no runtime.
fn respond(res: Response, head_only: bool) -> ExitCode {
    let mut out = BytesMut::new();
    let _ = write_response_head(&res, &mut out);
    if !head_only {
        out.extend_from_slice(format!("{}\n", res.status).as_bytes());
    }
    match std::io::stdout().lock().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The CGI response on stdout: head, then the body as the app yields it (none for HEAD).
async fn write(res: Response, head_only: bool) -> ExitCode {
    let mut head = BytesMut::with_capacity(256);
    let mut body = write_head_or_500(res, &mut head);
    // One process, one request: blocking writes to stdout cost nothing here.
    let mut out = std::io::stdout().lock();
    if out.write_all(&head).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    if head_only {
        return ExitCode::SUCCESS;
    }
    loop {
        match body.chunk().await {
            Ok(Some(chunk)) => {
                if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "the response body failed");
                return ExitCode::FAILURE;
            }
        }
    }
}

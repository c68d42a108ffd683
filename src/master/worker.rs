//! A worker process: the config its master handed down, its apps built here (each worker its
//! own interpreter, for app types that embed one), the master's sockets served as a single
//! process serves its own.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use gateway_core::Stats;

use super::counters::{self, Peers};
use super::handoff::Handoff;
use crate::config::{Config, Registry};
use crate::listen::Listener;

/// Runs the worker `handoff` describes until its master stops or replaces it. A config that
/// fails to build exits 1 before the worker says it is ready, with the error on stderr.
pub(crate) fn run(
    handoff: Handoff,
    path: &Path,
    registry: &Registry,
    stats: &'static Stats,
) -> ExitCode {
    let source = match handoff.read_source() {
        Ok(source) => source,
        Err(e) => {
            report(format_args!(
                "gatewayd: worker: cannot read the config its master handed down: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    let Handoff {
        slot,
        sockets,
        mut ready,
        source: text_file,
        status_dir,
        master,
    } = handoff;
    drop(text_file);
    counters::set_worker(Peers {
        dir: status_dir,
        slot,
        master,
    });
    let config = match Config::parse(path, &source, registry) {
        Ok(config) => config,
        Err(e) => {
            report(e);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match crate::server::runtime(config.server.workers) {
        Ok(rt) => rt,
        Err(e) => {
            report(format_args!("gatewayd: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let mut taken = Vec::with_capacity(sockets.len());
        for socket in sockets {
            let listener = Listener::inherited(socket.fd, socket.protocol, socket.name)
                .map_err(|e| anyhow::anyhow!("the socket on descriptor {}: {e}", socket.fd))?;
            taken.push((socket.key, listener));
        }
        if let Some(peers) = counters::peers() {
            counters::spawn_publisher(stats, peers);
        }
        let pid = std::process::id();
        crate::server::serve_worker(stats, config, taken, move || {
            tracing::info!(slot, pid, "worker ready");
            // The master reads one byte; a failed write shows as this worker never ready.
            if let Err(e) = ready.write_all(b"1") {
                tracing::error!(error = %e, "cannot tell the master this worker is ready");
            }
        })
        .await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            crate::logging::flush();
            report(format_args!("gatewayd: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr in one write: the workers of a master share it, and several may fail
/// at once on the same config.
pub(super) fn report(message: impl std::fmt::Display) {
    let line = format!("{message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

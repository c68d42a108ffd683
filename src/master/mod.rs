//! `processes = N`: a master process and N worker processes sharing its listeners, as
//! gunicorn and uWSGI run them, for apps that use one core per process (an interpreter with a
//! global lock).
//!
//! The master binds every listener once and builds no app (it reads the config with
//! [`Config::load_plan`](crate::config::Config::load_plan)). Each worker is this executable
//! started afresh, handed the sockets ([`handoff`]); it builds its own apps and serves as a
//! single process does, and the kernel spreads connections over the workers' accepts. The
//! master replaces a worker that dies, chain-reloads on SIGHUP (a new worker ready, then the
//! old one goes, slot by slot) and forwards SIGTERM/SIGINT. Without `processes` none of this
//! runs: one process serves, as it always did.

mod counters;
mod handoff;
mod supervisor;
mod worker;

use std::path::Path;
use std::process::ExitCode;

use gateway_core::Stats;

use crate::config::{Plan, Registry};
use crate::logging::LogFormat;

pub(crate) use counters::{now, peers, read_all, total};

/// Runs the master on `plan` until SIGTERM or SIGINT.
pub(crate) fn run_master(plan: Plan, registry: Registry, log_format: LogFormat) -> ExitCode {
    // One thread: the master only waits (for signals, its workers, its timers).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatewayd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(supervisor::Supervisor::run(plan, registry, log_format));
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            crate::logging::flush();
            eprintln!("gatewayd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The variable that makes a process a worker of a master.
pub(crate) const WORKER_ENV: &str = handoff::ENV;

/// When this process was started by a master as a worker, runs it and returns its exit code.
pub(crate) fn run_if_worker(
    path: &Path,
    registry: &Registry,
    stats: &'static Stats,
) -> Option<ExitCode> {
    let handoff = match handoff::Handoff::from_env()? {
        Ok(handoff) => handoff,
        Err(e) => {
            worker::report(format_args!("gatewayd: {e}"));
            return Some(ExitCode::FAILURE);
        }
    };
    Some(worker::run(handoff, path, registry, stats))
}

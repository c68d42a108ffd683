//! gatewayd: the daemon, as a library, so that your own binary can be gatewayd plus your own
//! app types.
//!
//! ```no_run
//! use gatewayd::Daemon;
//! use gatewayd::core::{Response, app_fn};
//!
//! fn main() -> std::process::ExitCode {
//!     Daemon::new()
//!         .app_type("teapot", |_cfg| {
//!             Ok(app_fn(|_env, _body| async { Response::text(418, "short and stout\n") }))
//!         })
//!         .run()
//! }
//! ```
//!
//! With `[apps.pot]` `type = "teapot"` and a `[[mount]]` in the TOML config, `gatewayd serve`
//! (your binary) serves it next to the built-in `httpbin` and `hello`.

#![warn(missing_docs, unreachable_pub)]

pub mod apps;
pub mod cgi;
pub mod cli;
pub mod config;
pub mod listen;
pub mod logging;
mod master;
pub mod server;
pub mod systemd;
pub mod testkit;
pub mod wsgi_exec;

use std::process::ExitCode;

use clap::Parser as _;
pub use gateway_core as core;
use gateway_core::{App, BoxError, Stats};
/// Adapters between apps and tower services (axum, tower-http...), both ways.
pub use proto_http::tower;

pub use crate::config::{AppConfig, Registry};

use crate::cli::{Cli, Command};
use crate::config::Config;

/// Under a CGI host (`GATEWAY_INTERFACE` set), whether the arguments are a command line of
/// ours: a wrapper's `exec gatewayd cgi --config FILE`. Hosts pass an ISINDEX query as the
/// arguments (RFC 3875 §4.4: a query with no `=`, split at `+`, each word decoded), so they
/// are the client's words: a request for `?serve` must not start a server, nor `?cgi+--config+F`
/// read a file of the client's choosing. Only `cgi` serves a request, and arguments that are
/// the query's words are never ours.
fn cgi_arguments_are_ours() -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != "cgi") {
        return false;
    }
    let query = std::env::var_os("QUERY_STRING").unwrap_or_default();
    let words = query
        .as_bytes()
        .split(|&b| b == b'+')
        .map(|w| percent_encoding::percent_decode(w).collect::<Vec<u8>>());
    !args.iter().map(|a| a.as_bytes().to_vec()).eq(words)
}

/// The daemon: the app types it knows, and the command line that runs it.
#[derive(Clone)]
pub struct Daemon {
    registry: Registry,
    /// The process's counters: the access log writes them, the `status` app reads them.
    stats: &'static Stats,
    /// Whether a config naming a `wsgi` app has the process exec `gatewayd-wsgi`
    /// ([`Daemon::wsgi_binary`]).
    wsgi_binary: bool,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon::new()
    }
}

impl Daemon {
    /// A daemon with the built-in app types (`httpbin`, `hello`).
    pub fn new() -> Self {
        let mut registry = Registry::new();
        let stats = Stats::leak();
        apps::register_builtins(&mut registry, stats);
        Daemon {
            registry,
            stats,
            wsgi_binary: false,
        }
    }

    /// Adds an app type: `[apps.NAME]` tables with `type = "<name>"` are built by `factory`.
    pub fn app_type<F, A>(mut self, name: &str, factory: F) -> Self
    where
        F: Fn(&AppConfig<'_>) -> Result<A, BoxError> + Send + Sync + 'static,
        A: App,
    {
        self.registry.register(name, factory);
        self
    }

    /// Serves `wsgi` apps by running `gatewayd-wsgi` from this binary's directory in this
    /// process's place, when the config it starts on names one ([`wsgi_exec`]): what the
    /// `gatewayd` binary does, so that it never loads libpython itself.
    pub fn wsgi_binary(mut self) -> Self {
        self.wsgi_binary = true;
        self
    }

    /// The app types known so far.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Parses the process's command line and runs it.
    ///
    /// Started by a web server as a CGI program (`GATEWAY_INTERFACE` set) without a
    /// subcommand, it serves that one request with the config named by `GATEWAYD_CONFIG`, so a
    /// cgi-bin wrapper can be a single `exec` line. Arguments are ignored then (hosts pass an
    /// ISINDEX query as arguments, RFC 3875 §4.4), unless they are `cgi …` and not the query's.
    ///
    /// With [`Daemon::wsgi_binary`], a config that names a `wsgi` app has the process exec
    /// `gatewayd-wsgi` first.
    pub fn run(self) -> ExitCode {
        let as_cgi = std::env::var_os("GATEWAY_INTERFACE").is_some() && !cgi_arguments_are_ours();
        let cli = (!as_cgi).then(Cli::parse);
        let config = match &cli {
            Some(cli) => cli.command.config().to_owned(),
            None => std::env::var_os("GATEWAYD_CONFIG")
                .unwrap_or_default()
                .into(),
        };
        if self.wsgi_binary
            && let Some(failed) = wsgi_exec::exec_if_named(&config)
        {
            return failed;
        }
        let Some(cli) = cli else {
            logging::init_cgi();
            if config.as_os_str().is_empty() {
                tracing::error!("started as a CGI program without GATEWAYD_CONFIG");
            }
            return cgi::run(&config, &self.registry);
        };
        self.run_cli(cli)
    }

    /// Runs a parsed command line.
    pub fn run_cli(self, cli: Cli) -> ExitCode {
        match cli.command {
            // The host's error log is no place for access lines.
            Command::Cgi(_) if cli.log_format == logging::LogFormat::Text => logging::init_cgi(),
            Command::Cgi(_) => logging::init_sync(cli.log_format, "warn"),
            Command::Check(_) => logging::init_sync(cli.log_format, "info"),
            Command::Serve(_) => logging::init(cli.log_format, "info", self.stats),
        }
        let code = self.run_command(cli.command, cli.log_format);
        logging::flush();
        code
    }

    fn run_command(self, command: Command, log_format: logging::LogFormat) -> ExitCode {
        match command {
            Command::Cgi(arg) => cgi::run(&arg.config, &self.registry),
            Command::Check(arg) => match Config::load(&arg.config, &self.registry) {
                Ok(_) => {
                    println!("{}: ok", arg.config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            },
            Command::Serve(arg) => {
                if let Some(code) = master::run_if_worker(&arg.config, &self.registry, self.stats) {
                    return code;
                }
                // `processes = N`: a master, which builds no app, not even to report an error.
                // Without the key, an invalid config fails below with the same error as ever.
                match Config::load_plan(&arg.config, &self.registry) {
                    Ok(plan) if plan.server.processes.is_some() => {
                        return master::run_master(plan, self.registry, log_format);
                    }
                    Err(e) if config::names_processes(&arg.config) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                    _ => {}
                }
                let config = match Config::load(&arg.config, &self.registry) {
                    Ok(config) => config,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                };
                let runtime = match server::runtime(config.server.workers) {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("gatewayd: cannot start the runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let result = runtime.block_on(server::serve(
                    &arg.config,
                    &self.registry,
                    self.stats,
                    config,
                ));
                runtime.shutdown_timeout(std::time::Duration::from_millis(200));
                match result {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!("{e:#}");
                        logging::flush();
                        eprintln!("gatewayd: {e:#}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

pub mod generate;
pub mod manual;

/// `gatewayd --version`: the package version and the commit it was built from (`unknown`
/// outside git; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GATEWAYD_COMMIT"),
    ")"
);

/// gatewayd: one app interface, every gateway (HTTP, FastCGI, SCGI, CGI).
#[derive(Debug, Parser)]
#[command(name = "gatewayd", version = VERSION, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "GATEWAYD_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every listener of the config until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Validate the config; print FILE:LINE:COL: message and exit 1 on the first error.
    Check(ConfigArg),
    /// Serve one request as a CGI/1.1 program: the environment and stdin in, the response on
    /// stdout.
    Cgi(ConfigArg),
}

impl Command {
    /// The config file the command reads.
    pub fn config(&self) -> &std::path::Path {
        match self {
            Command::Serve(arg) | Command::Check(arg) | Command::Cgi(arg) => &arg.config,
        }
    }
}

/// The config file option shared by the subcommands.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The TOML config file.
    #[arg(long, short, env = "GATEWAYD_CONFIG")]
    pub config: PathBuf,
}

//! `gatewayd generate man DIR` and `gatewayd generate completions DIR`: what the Debian package
//! ships (scripts/build-deb.sh runs them), generated from the binary's own clap definition and
//! config table so that they cannot drift from it. Hidden: it is a build step, not an operation,
//! and it is read before the daemon's own command line (see `main.rs`), so it is not part of
//! [`super::Cli`] and of its man page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;

use super::Cli;

/// The command line of `gatewayd generate`.
#[derive(Debug, Parser)]
#[command(
    name = "gatewayd generate",
    about = "Write the man pages or shell completions"
)]
struct Generate {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// gatewayd.8 and gatewayd.toml.5, into DIR.
    Man { dir: PathBuf },
    /// gatewayd.bash, _gatewayd (zsh) and gatewayd.fish, into DIR.
    Completions { dir: PathBuf },
}

/// Runs `gatewayd generate ...` when the first argument is `generate` (and gatewayd was not
/// started as a CGI program, whose arguments are an ISINDEX query); `None` otherwise.
pub fn run_if_asked() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let _bin = args.next();
    if std::env::var_os("GATEWAY_INTERFACE").is_some() || args.next()? != "generate" {
        return None;
    }
    let cli = Generate::parse_from(std::iter::once("gatewayd generate".into()).chain(args));
    let written = match &cli.what {
        What::Man { dir } => man(dir),
        What::Completions { dir } => completions(dir),
    };
    Some(match written {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatewayd generate: {e}");
            ExitCode::FAILURE
        }
    })
}

fn write(dir: &Path, name: &str, text: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// Writes `gatewayd.8` and `gatewayd.toml.5` into `dir`.
pub fn man(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    Ok(vec![
        write(dir, "gatewayd.8", super::manual::gatewayd_8().as_bytes())?,
        write(
            dir,
            "gatewayd.toml.5",
            super::manual::gatewayd_toml_5().as_bytes(),
        )?,
    ])
}

/// Writes the bash, zsh and fish completions into `dir`, under the names each shell's
/// completion directory expects once installed (bash's without its `.bash`).
pub fn completions(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "gatewayd.bash"),
        (Shell::Zsh, "_gatewayd"),
        (Shell::Fish, "gatewayd.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "gatewayd", &mut text);
        files.push(write(dir, name, &text)?);
    }
    Ok(files)
}

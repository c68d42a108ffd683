//! Hands the process to `gatewayd-wsgi` when its config names a `wsgi` app.
//!
//! Python apps need libpython, and a daemon that links it maps and relocates it at every start,
//! Python app or not: 2.5 to 3.9 MiB more idle memory and about 4 ms more per CGI request. So the
//! `wsgi` app type lives in a second binary, `gatewayd-wsgi`, built beside `gatewayd` (cargo
//! feature `wsgi`, on by default), and `gatewayd` execs it before doing anything else when the
//! config it was given names `type = "wsgi"`. `exec` keeps the process: its pid (systemd's
//! `MAINPID` and `LISTEN_PID`), its arguments, environment, inherited sockets and stdio, so
//! `systemctl`, nginx and a CGI host see one daemon as before.
//!
//! Only at start-up, and only in the `gatewayd` binary ([`Daemon::wsgi_binary`]; a daemon of
//! your own on the library registers its own types). A reload that brings the first `wsgi` app
//! into a running `gatewayd` fails with a config error that says to restart, and so does one
//! under `processes = N`: a worker runs the binary and the text its master hands down, never
//! execs (a master started on a `wsgi` config is `gatewayd-wsgi`, and so are its workers).
//!
//! [`Daemon::wsgi_binary`]: crate::Daemon::wsgi_binary

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gateway_core::SharedApp;

use crate::config::AppConfig;

/// The app type `gatewayd-wsgi` adds.
pub const TYPE: &str = "wsgi";

/// The binary that serves `wsgi` apps, by its file name.
pub const BINARY: &str = "gatewayd-wsgi";

/// Execs `gatewayd-wsgi` with this process's arguments when `config` names a `wsgi` app and
/// the binary is next to this one. Returns `None` if not, and the config then fails where it
/// names the type, with [`refusal`]'s reason; `Some` (failure) if the exec itself failed.
pub(crate) fn exec_if_named(config: &Path) -> Option<ExitCode> {
    if std::env::var_os(crate::master::WORKER_ENV).is_some() || !names_wsgi(config) {
        return None;
    }
    let binary = sibling().filter(|b| b.is_file())?;
    // A `gatewayd-wsgi` that is really this binary (a copy, or a link to it) would find
    // itself next and exec itself for ever: it refuses the type instead.
    let this = std::env::current_exe().ok()?;
    if std::fs::canonicalize(&binary).ok()? == std::fs::canonicalize(this).ok()? {
        return None;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("gatewayd"));
    let e = std::process::Command::new(&binary)
        .arg0(arg0)
        .args(args)
        .exec();
    eprintln!("gatewayd: cannot start {}: {e}", binary.display());
    Some(ExitCode::FAILURE)
}

/// The factory `gatewayd` registers for `wsgi`: it only refuses, saying why.
pub(crate) fn refusal(_cfg: &AppConfig<'_>) -> Result<SharedApp, gateway_core::BoxError> {
    let sibling = sibling();
    let place = sibling
        .as_ref()
        .map_or_else(|| BINARY.into(), |b| b.display().to_string());
    let why = if sibling.is_some_and(|b| b.is_file()) {
        "which gatewayd runs in its place when it starts on such a config: a running daemon \
         cannot switch (restart it)"
    } else {
        "which is not there (build it with cargo feature \"wsgi\", on by default)"
    };
    Err(format!("type \"{TYPE}\" is served by {place}, {why}").into())
}

/// `gatewayd-wsgi` next to the running executable.
fn sibling() -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.with_file_name(BINARY))
}

/// Whether some `[apps.NAME]` table of the file says `type = "wsgi"`. An unreadable or invalid
/// file says no: loading it then reports the error, located.
fn names_wsgi(config: &Path) -> bool {
    crate::config::peek(config)
        .as_ref()
        .and_then(|doc| doc.get("apps")?.as_table())
        .is_some_and(|apps| {
            apps.values()
                .any(|app| app.get("type").and_then(toml::Value::as_str) == Some(TYPE))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, text).unwrap();
        names_wsgi(&path)
    }

    #[test]
    fn only_an_app_table_of_type_wsgi_counts() {
        assert!(names("[apps.site]\ntype = \"wsgi\"\nmodule = \"m\"\n"));
        assert!(names(
            "[apps.a]\ntype = \"hello\"\n[apps.b]\ntype = \"wsgi\"\n"
        ));
        assert!(!names("[apps.a]\ntype = \"hello\"\n"));
        assert!(!names("[server]\ntype = \"wsgi\"\n"));
        assert!(!names("apps = 1\n"));
        assert!(
            !names("[apps.a\ntype = \"wsgi\"\n"),
            "invalid TOML is left to the loader"
        );
        assert!(!names_wsgi(Path::new("/nonexistent/g.toml")));
    }
}

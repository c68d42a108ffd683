//! The `gatewayd` binary: the daemon with the built-in app types.

fn main() -> std::process::ExitCode {
    // `gatewayd generate man|completions DIR`: a packaging step, hidden from the daemon's CLI.
    if let Some(code) = gatewayd::cli::generate::run_if_asked() {
        return code;
    }
    gatewayd::Daemon::new().wsgi_binary().run()
}

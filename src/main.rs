//! The `gatewayd` binary: the daemon with the built-in app types.

fn main() -> std::process::ExitCode {
    gatewayd::Daemon::new().run()
}

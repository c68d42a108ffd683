//! `gatewayd-wsgi`: gatewayd with the `wsgi` app type, CPython embedded.
//!
//! A binary of its own so that `gatewayd` itself never maps libpython: linked in, the library
//! cost every daemon 2.5 to 3.9 MiB of idle memory and every CGI start about 4 ms, Python app
//! or not. `gatewayd` execs this binary, found next to it, when its config names a `wsgi` app
//! (see `gatewayd::wsgi_exec`), so users still run one command.

mod wsgi;

fn main() -> std::process::ExitCode {
    gatewayd::Daemon::new()
        .app_type(gatewayd::wsgi_exec::TYPE, wsgi::factory)
        .run()
}

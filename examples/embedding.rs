//! Your own binary: gatewayd plus your own app types, configured in TOML like the built-in
//! ones.
//!
//! ```toml
//! [apps.greet]
//! type = "greeter"
//! greeting = "Bonjour"
//! ```
//!
//! `cargo run --example embedding -- serve --config my.toml`

use std::process::ExitCode;

use gatewayd::core::{App, Body, BoxError, Environ, Response};
use gatewayd::{AppConfig, Daemon};
use serde::Deserialize;

/// The app type's settings: its keys in `[apps.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    greeting: String,
}

struct Greeter {
    greeting: String,
}

impl App for Greeter {
    async fn call(&self, env: Environ, _body: Body) -> Response {
        let who = String::from_utf8_lossy(env.path_info())
            .trim_start_matches('/')
            .to_owned();
        if who == "panic" {
            // A bug in an app costs one 500, logged with the request id; the daemon serves on.
            panic!("the greeter was asked to panic");
        }
        let who = if who.is_empty() {
            "world"
        } else {
            who.as_str()
        };
        Response::text(200, format!("{}, {who}!\n", self.greeting))
    }
}

fn greeter(cfg: &AppConfig<'_>) -> Result<Greeter, BoxError> {
    let settings: Settings = cfg.deserialize()?;
    Ok(Greeter {
        greeting: settings.greeting,
    })
}

fn main() -> ExitCode {
    Daemon::new().app_type("greeter", greeter).run()
}

//! `ping`: a health check that answers without touching any other app (php-fpm's ping page).

use crate::config::AppConfig;
use gateway_core::{App, Body, BoxError, Environ, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The answer (default `pong`).
    #[serde(default = "pong")]
    response: String,
}

fn pong() -> String {
    "pong".into()
}

/// The factory for `type = "ping"`; key `response`.
pub(super) fn factory(cfg: &AppConfig<'_>) -> Result<Ping, BoxError> {
    let s: Settings = cfg.deserialize()?;
    Ok(Ping(format!("{}\n", s.response)))
}

/// The ping app.
pub(super) struct Ping(String);

impl App for Ping {
    async fn call(&self, _env: Environ, _body: Body) -> Response {
        Response::text(200, self.0.clone()).with_header("Cache-Control", "no-store")
    }
}

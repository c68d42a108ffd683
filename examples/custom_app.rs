//! An app written directly against `App`: a tiny key-value store (`PUT /key` stores the body,
//! `GET /key` returns it, `DELETE /key` removes it), registered as the app type `kv`.
//!
//! ```sh
//! cargo run --example custom_app -- serve --config my.toml   # [apps.store] type = "kv"
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;

use bytes::Bytes;
use gatewayd::core::{App, Body, BoxError, Environ, Response};
use gatewayd::{AppConfig, Daemon};
use serde::Deserialize;

/// Settings of `[apps.NAME]` with `type = "kv"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The largest value accepted; larger PUTs get 413.
    max_value: u64,
}

struct Store {
    max_value: u64,
    values: Mutex<HashMap<Vec<u8>, Bytes>>,
}

impl App for Store {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let key = env.path_info().to_vec();
        if key.len() < 2 {
            return Response::text(400, "usage: PUT|GET|DELETE /key\n");
        }
        // A poisoned lock only means another request panicked mid-insert: the map is intact.
        let values = || self.values.lock().unwrap_or_else(|p| p.into_inner());
        match env.method() {
            "PUT" => match body.limit(self.max_value).to_bytes().await {
                Ok(value) => {
                    values().insert(key, value);
                    Response::new(204)
                }
                Err(e) => e.into(), // 413 past max_value, 400 for a broken body
            },
            "GET" | "HEAD" => match values().get(&key) {
                Some(value) => Response::new(200)
                    .with_header("Content-Type", "application/octet-stream")
                    .with_body(value.clone()),
                None => Response::error(404),
            },
            "DELETE" => match values().remove(&key) {
                Some(_) => Response::new(204),
                None => Response::error(404),
            },
            _ => Response::error(405).with_header("Allow", "GET, HEAD, PUT, DELETE"),
        }
    }
}

fn kv(cfg: &AppConfig<'_>) -> Result<Store, BoxError> {
    let settings: Settings = cfg.deserialize()?;
    Ok(Store {
        max_value: settings.max_value,
        values: Mutex::new(HashMap::new()),
    })
}

fn main() -> ExitCode {
    Daemon::new().app_type("kv", kv).run()
}

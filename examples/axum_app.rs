//! A real axum app, unchanged, served by gatewayd under every gateway: HTTP, FastCGI, SCGI
//! (`serve`) and CGI (as a CGI program).
//!
//! ```sh
//! cargo run --example axum_app -- serve --config examples/axum_app.toml
//! curl 127.0.0.1:8081/users/7
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Extension, Form, Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gatewayd::core::BoxError;
use gatewayd::tower::{ScriptName, ServiceApp};
use gatewayd::{AppConfig, Daemon};
use serde::Deserialize;
use serde_json::{Value, json};

/// The app's own state: its greeting (from the TOML table) and a request counter.
struct AppState {
    greeting: String,
    hits: AtomicU64,
}

async fn index(State(state): State<Arc<AppState>>) -> String {
    format!("{} from axum\n", state.greeting)
}

async fn user(Path(id): Path<u32>) -> Json<Value> {
    Json(json!({ "id": id, "name": format!("user{id}") }))
}

async fn echo(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({ "echo": body }))
}

#[derive(Deserialize)]
struct Signup {
    name: String,
    lang: String,
}

async fn signup(Form(form): Form<Signup>) -> String {
    format!("{} writes {}\n", form.name, form.lang)
}

async fn hits(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "hits": state.hits.fetch_add(1, Ordering::Relaxed) + 1 }))
}

/// Builds links that work under whatever prefix the app is mounted at.
async fn links(Extension(ScriptName(prefix)): Extension<ScriptName>) -> Json<Value> {
    let prefix = String::from_utf8_lossy(&prefix).into_owned();
    Json(json!({ "self": format!("{prefix}/links"), "user": format!("{prefix}/users/1") }))
}

/// The axum app: a plain `Router`, nothing gatewayd-specific but the `ScriptName` extractor.
fn router(greeting: String) -> Router {
    let state = Arc::new(AppState {
        greeting,
        hits: AtomicU64::new(0),
    });
    Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(user))
        .route("/echo", post(echo))
        .route("/signup", post(signup))
        .route("/hits", get(hits))
        .route("/links", get(links))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "Hello".into()
}

/// `type = "axum_demo"`: the router as a gatewayd app, configured from its TOML table.
fn factory(cfg: &AppConfig<'_>) -> Result<ServiceApp<Router>, BoxError> {
    let settings: Settings = cfg.deserialize()?;
    Ok(ServiceApp::new(router(settings.greeting)))
}

fn main() -> ExitCode {
    Daemon::new().app_type("axum_demo", factory).run()
}

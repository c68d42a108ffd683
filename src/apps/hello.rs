//! `hello`: a fixed body with no work per request, for benchmarks.

use std::sync::Mutex;

use bytes::Bytes;
use gateway_core::{App, Body, BoxError, Environ, Response};

use crate::config::AppConfig;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    body: String,
    content_type: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            body: "Hello, World!\n".into(),
            content_type: "text/plain".into(),
        }
    }
}

/// Answers `200` with the same body to every request. The head is built once, out of static
/// bytes, so a request touches no reference count (one shared by every core would bounce
/// between them).
pub(super) struct Hello {
    body: Bytes,
    content_type: Bytes,
    content_length: Bytes,
}

/// The factory for `type = "hello"`; keys `body` and `content_type`.
pub(super) fn factory(cfg: &AppConfig<'_>) -> Result<Hello, BoxError> {
    let s: Settings = cfg.deserialize()?;
    Ok(Hello {
        content_length: interned(s.body.len().to_string()),
        body: interned(s.body),
        content_type: interned(s.content_type),
    })
}

/// `text` as static bytes, made once per distinct text: a reload with the same settings
/// reuses them, so reloads do not grow memory.
fn interned(text: String) -> Bytes {
    static TEXTS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut texts = TEXTS.lock().unwrap_or_else(|p| p.into_inner());
    let found = match texts.iter().find(|t| **t == text) {
        Some(t) => *t,
        None => {
            let leaked: &'static str = Box::leak(text.into_boxed_str());
            texts.push(leaked);
            leaked
        }
    };
    Bytes::from_static(found.as_bytes())
}

impl App for Hello {
    async fn call(&self, _env: Environ, _body: Body) -> Response {
        Response {
            status: 200,
            headers: vec![
                (
                    Bytes::from_static(b"Content-Type"),
                    self.content_type.clone(),
                ),
                (
                    Bytes::from_static(b"Content-Length"),
                    self.content_length.clone(),
                ),
            ],
            body: self.body.clone().into(),
            extensions: Default::default(),
        }
    }
}

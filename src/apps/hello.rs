//! `hello`: a fixed body with no work per request, for benchmarks.

use std::sync::Arc;

use bytes::Bytes;
use gateway_core::{App, AppConfig, Body, BoxError, Environ, Response, async_trait};
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

/// Answers `200` with the same body to every request. The head is built once, so a request
/// costs two reference-count increments.
pub struct Hello {
    body: Bytes,
    content_type: Bytes,
    content_length: Bytes,
}

/// The factory for `type = "hello"`; keys `body` and `content_type`.
pub fn factory(cfg: &AppConfig<'_>) -> Result<Arc<dyn App>, BoxError> {
    let s: Settings = cfg.deserialize()?;
    Ok(Arc::new(Hello {
        content_length: s.body.len().to_string().into(),
        body: s.body.into(),
        content_type: s.content_type.into(),
    }))
}

#[async_trait]
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

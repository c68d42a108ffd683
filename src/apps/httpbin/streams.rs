//! The endpoints whose body is generated or streamed: `/bytes`, `/stream-bytes`, `/stream`,
//! `/drip`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use gateway_core::{Body, Environ, Response};
use serde_json::Value;

use super::echo;

/// The most bytes `/bytes` and `/stream-bytes` produce, and the most lines of `/stream`.
pub(super) const MAX_BYTES: usize = 10 << 20;
pub(super) const MAX_LINES: usize = 100;
/// The longest `/delay` and `/drip` waits, in seconds.
pub(super) const MAX_SECONDS: f64 = 10.0;

fn rng(args: &Value) -> fastrand::Rng {
    match args
        .get("seed")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => fastrand::Rng::with_seed(seed),
        None => fastrand::Rng::new(),
    }
}

fn octets(rng: &mut fastrand::Rng, n: usize) -> Bytes {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf);
    buf.into()
}

/// `/bytes/{n}`: `n` random bytes in one body (`?seed=` makes them repeatable).
pub(super) fn bytes(env: &Environ, n: usize) -> Response {
    let data = octets(&mut rng(&echo::args(env)), n.min(MAX_BYTES));
    Response::new(200)
        .with_header("Content-Type", "application/octet-stream")
        .with_header("Content-Length", data.len().to_string())
        .with_body(data)
}

/// `/stream-bytes/{n}?chunk_size=C`: `n` random bytes, streamed in chunks of `C`.
pub(super) fn stream_bytes(env: &Environ, n: usize) -> Response {
    let args = echo::args(env);
    let chunk = arg(&args, "chunk_size")
        .unwrap_or(10240.0)
        .clamp(1.0, MAX_BYTES as f64) as usize;
    let state = (rng(&args), n.min(MAX_BYTES));
    let chunks = stream::unfold(state, move |(mut rng, left)| async move {
        if left == 0 {
            return None;
        }
        let size = left.min(chunk);
        let data = octets(&mut rng, size);
        Some((Ok::<_, std::io::Error>(data), (rng, left - size)))
    });
    Response::new(200)
        .with_header("Content-Type", "application/octet-stream")
        .with_body(Body::from_stream(chunks))
}

/// `/stream/{n}`: `n` JSON lines (at most 100), each the `/get` document with an `id`.
pub(super) fn json_lines(env: &Environ, n: usize) -> Response {
    let fields = echo::get_fields(env);
    let lines = stream::iter((0..n.min(MAX_LINES)).map(move |id| {
        let mut doc = fields.clone();
        doc.insert("id".into(), id.into());
        let mut line = serde_json::to_vec(&doc).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(line)
    }));
    Response::new(200)
        .with_header("Content-Type", "application/json")
        .with_body(Body::from_stream(lines))
}

/// `/drip?duration=&numbytes=&delay=&code=`: waits `delay` seconds, then sends `numbytes`
/// asterisks spread evenly over `duration` seconds.
pub(super) async fn drip(env: &Environ) -> Response {
    let args = echo::args(env);
    let duration = arg(&args, "duration")
        .unwrap_or(2.0)
        .clamp(0.0, MAX_SECONDS);
    let numbytes = arg(&args, "numbytes")
        .unwrap_or(10.0)
        .clamp(0.0, MAX_BYTES as f64) as usize;
    let delay = arg(&args, "delay").unwrap_or(0.0).clamp(0.0, MAX_SECONDS);
    let code = arg(&args, "code").map_or(200, |c| c as u16);
    if !(200..=599).contains(&code) {
        return Response::text(400, "code must be 200..=599\n");
    }
    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
    let pause = Duration::from_secs_f64(duration / numbytes.max(1) as f64);
    let drops = stream::unfold(0usize, move |sent| async move {
        if sent == numbytes {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, std::io::Error>(Bytes::from_static(b"*")), sent + 1))
    });
    Response::new(code)
        .with_header("Content-Type", "application/octet-stream")
        .with_header("Content-Length", numbytes.to_string())
        .with_body(Body::from_stream(drops))
}

/// A numeric query argument.
pub(super) fn arg(args: &Value, name: &str) -> Option<f64> {
    args.get(name)?
        .as_str()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

//! `httpbin`: httpbin-compatible diagnostics, plus `/environ`, which shows what a front
//! server really sent. Every path is relative to the mount (PATH_INFO), so it works at `/` or
//! under any prefix.

mod echo;
mod streams;

use std::time::Duration;

use crate::config::AppConfig;
use base64::Engine as _;
use gateway_core::{App, Body, BoxError, Environ, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use echo::lossy;

/// `type = "httpbin"` takes no keys yet; the empty table still rejects misspellings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

/// The factory for `type = "httpbin"`.
pub(super) fn factory(cfg: &AppConfig<'_>) -> Result<Httpbin, BoxError> {
    let Settings {} = cfg.deserialize()?;
    Ok(Httpbin)
}

/// The httpbin app.
pub(super) struct Httpbin;

impl App for Httpbin {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let path = lossy(env.path_info());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = env.method().to_owned();
        match (method.as_str(), segments.as_slice()) {
            (_, [""]) => index(),
            ("GET" | "HEAD", ["get"]) => json_doc(200, echo::get_fields(&env)),
            ("POST", ["post"])
            | ("PUT", ["put"])
            | ("PATCH", ["patch"])
            | ("DELETE", ["delete"]) => match echo::body_fields(&env, body).await {
                Ok(fields) => json_doc(200, fields),
                Err(e) => e.into(),
            },
            (_, ["get"]) => not_allowed("GET, HEAD"),
            (_, ["post"]) => not_allowed("POST"),
            (_, ["put"]) => not_allowed("PUT"),
            (_, ["patch"]) => not_allowed("PATCH"),
            (_, ["delete"]) => not_allowed("DELETE"),
            (_, ["anything", ..]) => match echo::body_fields(&env, body).await {
                Ok(mut fields) => {
                    fields.insert("method".into(), method.into());
                    json_doc(200, fields)
                }
                Err(e) => e.into(),
            },
            (_, ["environ", ..]) => match echo::environ(&env, body).await {
                Ok(doc) => json(200, &doc),
                Err(e) => e.into(),
            },
            (_, ["headers"]) => json(200, &json!({ "headers": echo::headers(&env) })),
            (_, ["ip"]) => json(200, &json!({ "origin": echo::origin(&env) })),
            (_, ["user-agent"]) => {
                let ua = env.header("user-agent").map(lossy);
                json(200, &json!({ "user-agent": ua }))
            }
            (_, ["status", codes]) => status(codes),
            (_, ["response-headers"]) => response_headers(&env),
            (_, ["bytes", n]) => count(n).map_or_else(bad_count, |n| streams::bytes(&env, n)),
            (_, ["stream-bytes", n]) => {
                count(n).map_or_else(bad_count, |n| streams::stream_bytes(&env, n))
            }
            (_, ["stream", n]) => count(n).map_or_else(bad_count, |n| streams::json_lines(&env, n)),
            (_, ["drip"]) => streams::drip(&env).await,
            (_, ["delay", s]) => match s.parse::<f64>() {
                Ok(s) if s.is_finite() => {
                    let s = s.clamp(0.0, streams::MAX_SECONDS);
                    tokio::time::sleep(Duration::from_secs_f64(s)).await;
                    match echo::body_fields(&env, body).await {
                        Ok(fields) => json_doc(200, fields),
                        Err(e) => e.into(),
                    }
                }
                _ => Response::text(400, "delay must be a number of seconds\n"),
            },
            (_, ["redirect-to"]) => redirect_to(&env),
            (_, ["base64", value]) => base64_decode(value),
            (_, ["cookies"]) => json(200, &json!({ "cookies": cookies(&env) })),
            (_, ["cookies", "set"]) => set_cookies(&env),
            _ => Response::error(404),
        }
    }
}

fn index() -> Response {
    Response::text(
        200,
        "gatewayd httpbin: /get /post /put /patch /delete /anything /headers /ip /user-agent \
         /status/{code} /response-headers?K=V /bytes/{n} /stream-bytes/{n} /stream/{n} /drip \
         /delay/{s} /redirect-to?url= /base64/{value} /cookies /cookies/set?k=v /environ\n",
    )
}

fn json(status: u16, doc: &Value) -> Response {
    let mut body = serde_json::to_vec_pretty(doc).unwrap_or_default();
    body.push(b'\n');
    Response::new(status)
        .with_header("Content-Type", "application/json")
        .with_header("Content-Length", body.len().to_string())
        .with_body(body)
}

fn json_doc(status: u16, fields: Map<String, Value>) -> Response {
    json(status, &Value::Object(fields))
}

fn not_allowed(allow: &'static str) -> Response {
    Response::error(405).with_header("Allow", allow)
}

fn count(n: &str) -> Option<usize> {
    n.parse().ok()
}

fn bad_count() -> Response {
    Response::text(400, "expected a non-negative integer\n")
}

/// `/status/{code}`, or `/status/200,500` for a random pick among several.
fn status(codes: &str) -> Response {
    let codes: Option<Vec<u16>> = codes.split(',').map(|c| c.trim().parse().ok()).collect();
    let codes = codes.filter(|c| !c.is_empty() && c.iter().all(|c| (100..=999).contains(c)));
    let Some(codes) = codes else {
        return Response::text(400, "invalid status code\n");
    };
    let code = codes[fastrand::usize(..codes.len())];
    let res = Response::new(code);
    match code {
        301 | 302 | 303 | 305 | 307 => res.with_header("Location", "/redirect/1"),
        401 => res.with_header("WWW-Authenticate", "Basic realm=\"Fake Realm\""),
        _ => res,
    }
}

/// `/response-headers?K=V`: each pair becomes a response header (a repeated key repeats
/// the header), and the body echoes them.
fn response_headers(env: &Environ) -> Response {
    let mut res = json(200, &echo::args(env));
    for (k, v) in form_urlencoded::parse(env.query_string()) {
        res.append_header(k.into_owned(), v.into_owned());
    }
    res
}

fn redirect_to(env: &Environ) -> Response {
    let args = echo::args(env);
    let Some(url) = args.get("url").and_then(Value::as_str) else {
        return Response::text(400, "redirect-to needs ?url=\n");
    };
    let code = streams::arg(&args, "status_code")
        .map(|c| c as u16)
        .filter(|c| (300..400).contains(c))
        .unwrap_or(302);
    Response::new(code).with_header("Location", url.to_owned())
}

fn base64_decode(value: &str) -> Response {
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    match engine.decode(value) {
        Ok(data) => Response::new(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(data),
        Err(_) => Response::text(400, "Incorrect Base64 data\n"),
    }
}

fn cookies(env: &Environ) -> Value {
    let mut map = Map::new();
    let header = env.header("cookie").map(lossy).unwrap_or_default();
    // `;` separates cookies (RFC 6265 §5.4); Apache's CGI joins two Cookie headers with `, `,
    // which is safe to split too, since a cookie value never holds a comma.
    for pair in header.split([';', ',']) {
        if let Some((k, v)) = pair.trim().split_once('=') {
            map.insert(k.to_owned(), v.into());
        }
    }
    Value::Object(map)
}

/// `/cookies/set?k=v`: sets each cookie and redirects to `/cookies` under the same mount.
fn set_cookies(env: &Environ) -> Response {
    let mut location = env.script_name().to_vec();
    location.extend_from_slice(b"/cookies");
    let mut res = Response::new(302).with_header("Location", location);
    for (k, v) in form_urlencoded::parse(env.query_string()) {
        res.append_header("Set-Cookie", format!("{k}={v}; Path=/"));
    }
    res
}

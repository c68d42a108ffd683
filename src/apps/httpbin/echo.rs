//! The JSON that echoes a request back: httpbin's `args`, `headers`, `origin`, `url`, `form`,
//! `data`, `json`, and gatewayd's `/environ`.

use base64::Engine as _;
use gateway_core::{Body, BodyError, Environ};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// `args`: the query string decoded; a repeated key gives a list.
pub(super) fn args(env: &Environ) -> Value {
    pairs(env.query_string())
}

/// `a=1&b=2&a=3` as `{"a": ["1", "3"], "b": "2"}`.
pub(super) fn pairs(encoded: &[u8]) -> Value {
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(encoded) {
        let v = Value::String(v.into_owned());
        match map.get_mut(k.as_ref()) {
            None => {
                map.insert(k.into_owned(), v);
            }
            Some(Value::Array(list)) => list.push(v),
            Some(first) => *first = Value::Array(vec![first.take(), v]),
        }
    }
    Value::Object(map)
}

/// `headers`: each request header under its Title-Case name.
pub(super) fn headers(env: &Environ) -> Value {
    let mut map = Map::new();
    for (name, value) in env.headers() {
        let title: String = name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next().map_or_else(String::new, |f| {
                    f.to_ascii_uppercase().to_string() + c.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-");
        map.insert(title, lossy(value).into());
    }
    Value::Object(map)
}

/// `origin`: the client's address.
pub(super) fn origin(env: &Environ) -> Value {
    lossy(env.remote_addr()).into()
}

/// `url`: the URL the client asked for, rebuilt from the environ.
pub(super) fn url(env: &Environ) -> Value {
    let host = match env.header("host") {
        Some(h) => lossy(h),
        None => format!(
            "{}:{}",
            lossy(env.server_name()),
            env.server_port().unwrap_or(80)
        ),
    };
    let path = match env.request_uri() {
        Some(uri) => lossy(uri),
        None => {
            let mut p = lossy(env.script_name()) + &lossy(env.path_info());
            if !env.query_string().is_empty() {
                p = p + "?" + &lossy(env.query_string());
            }
            p
        }
    };
    format!("{}://{host}{path}", env.url_scheme()).into()
}

/// The fields of `/get`.
pub(super) fn get_fields(env: &Environ) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("args".into(), args(env));
    map.insert("headers".into(), headers(env));
    map.insert("origin".into(), origin(env));
    map.insert("url".into(), url(env));
    map
}

/// The fields of `/post` and friends: `/get`'s plus the body as `data`, `form`, `files` and
/// `json`.
pub(super) async fn body_fields(
    env: &Environ,
    body: Body,
) -> Result<Map<String, Value>, BodyError> {
    let data = body.to_bytes().await?;
    let mut map = get_fields(env);
    let content_type = env
        .content_type()
        .map(lossy)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is_form = content_type.starts_with("application/x-www-form-urlencoded");
    let (form, text) = match is_form {
        true => (pairs(&data), Value::String(String::new())),
        false => (json!({}), data_string(&data)),
    };
    let parsed = match content_type.contains("json") {
        true => serde_json::from_slice(&data).unwrap_or(Value::Null),
        false => Value::Null,
    };
    map.insert("data".into(), text);
    map.insert("files".into(), json!({}));
    map.insert("form".into(), form);
    map.insert("json".into(), parsed);
    Ok(map)
}

/// The body as text, or as a base64 data URL when it is not UTF-8 (as httpbin does).
fn data_string(data: &[u8]) -> Value {
    match std::str::from_utf8(data) {
        Ok(s) => s.into(),
        Err(_) => format!(
            "data:application/octet-stream;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(data)
        )
        .into(),
    }
}

/// `/environ`: every meta-variable the app received, and a digest of the body, read as a
/// stream so a large upload costs no memory.
pub(super) async fn environ(env: &Environ, mut body: Body) -> Result<Value, BodyError> {
    let mut vars = Map::new();
    for (name, value) in env.iter() {
        vars.insert(escaped(name), escaped(value).into());
    }
    let (mut len, mut sha) = (0u64, Sha256::new());
    while let Some(chunk) = body.chunk().await? {
        len += chunk.len() as u64;
        sha.update(&chunk);
    }
    let digest: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(json!({
        "protocol": env.protocol().as_str(),
        "environ": vars,
        "body_length": len,
        "body_sha256": digest,
    }))
}

/// UTF-8 as is; each byte of an invalid sequence as `\xNN`.
pub(super) fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_args_become_lists() {
        assert_eq!(
            pairs(b"a=1&b=x+y&a=%33&a=4"),
            json!({"a": ["1", "3", "4"], "b": "x y"})
        );
    }

    #[test]
    fn invalid_utf8_is_escaped() {
        assert_eq!(escaped(b"caf\xc3\xa9 \xff\xfe!"), "café \\xFF\\xFE!");
    }
}

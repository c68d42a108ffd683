//! Responses and `http::Response`s, both ways.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION,
    SET_COOKIE, TRANSFER_ENCODING,
};
use http::{HeaderMap, StatusCode};

use gateway_core::{Body, BoxError, Response};

/// Validates the status and headers on the way out. An invalid one cannot go on the wire, so
/// it becomes an error in the log and a 502 (a status that is not final: a 1xx would be taken
/// for an interim answer, and a 101 would switch the connection) or a 500 (a broken header). `Transfer-Encoding` is hyper's to decide and is
/// dropped; `Connection: close` from the app is honoured.
pub fn into_http(res: Response) -> http::Response<Body> {
    if !gateway_core::is_final_status(res.status) {
        tracing::error!(
            status = res.status,
            "app returned a status that is not final; answering 502"
        );
        return into_http(Response::error(502));
    }
    let Ok(status) = StatusCode::from_u16(res.status) else {
        return internal_error();
    };
    // hyper writes a known body length itself (past 1xx, 204 and 304): a Content-Length that
    // says the same need not be parsed and checked again. An empty body is left alone, as
    // hyper writes no length for it on HEAD.
    let own_length = res
        .body
        .exact_len()
        .filter(|&n| n > 0 && !matches!(res.status, 100..=199 | 204 | 304));
    let mut headers = HeaderMap::with_capacity(res.headers.len());
    for (name, value) in res.headers {
        if own_length.is_some()
            && name.eq_ignore_ascii_case(b"content-length")
            && gateway_core::parse_decimal(&value) == own_length
        {
            continue;
        }
        let Some(name) = header_name(&name) else {
            tracing::error!(name = %String::from_utf8_lossy(&name), "app returned an invalid header name");
            return internal_error();
        };
        if name == TRANSFER_ENCODING
            || (name == CONNECTION && !value.eq_ignore_ascii_case(b"close"))
        {
            continue;
        }
        let Ok(value) = HeaderValue::from_maybe_shared(value) else {
            tracing::error!(%name, "app returned a header value with control characters");
            return internal_error();
        };
        headers.append(name, value);
    }
    let mut out = http::Response::new(res.body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// A header name, checked. The names apps send most are matched as written, without going
/// through `HeaderName`'s parser.
fn header_name(name: &[u8]) -> Option<HeaderName> {
    Some(match name {
        b"Content-Type" | b"content-type" => CONTENT_TYPE,
        b"Content-Length" | b"content-length" => CONTENT_LENGTH,
        b"Location" | b"location" => LOCATION,
        b"Set-Cookie" | b"set-cookie" => SET_COOKIE,
        b"Cache-Control" | b"cache-control" => CACHE_CONTROL,
        _ => return HeaderName::from_bytes(name).ok(),
    })
}

fn internal_error() -> http::Response<Body> {
    into_http(Response::error(500))
}

/// An `http::Response` (from hyper, tower or axum) as a [`Response`]: headers in order, the
/// body streamed as it comes, extensions kept.
pub fn from_http<B>(res: http::Response<B>) -> Response
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    let mut headers = Vec::with_capacity(parts.headers.len());
    let mut last = None;
    for (name, value) in parts.headers {
        // HeaderMap names a repeated field only once: the following values carry `None`.
        if let Some(name) = name {
            last = Some(Bytes::copy_from_slice(name.as_str().as_bytes()));
        }
        if let Some(name) = &last {
            headers.push((name.clone(), Bytes::copy_from_slice(value.as_bytes())));
        }
    }
    Response {
        status: parts.status.as_u16(),
        headers,
        body: Body::new(body),
        extensions: parts.extensions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_stay_apart() {
        let res = Response::new(201)
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2")
            .with_header("Transfer-Encoding", "chunked");
        let out = into_http(res);
        assert_eq!(out.status(), 201);
        let cookies: Vec<_> = out.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(out.headers().get("transfer-encoding").is_none());
    }

    #[test]
    fn from_http_keeps_order_and_repeats() {
        let res = http::Response::builder()
            .status(201)
            .header("set-cookie", "a=1")
            .header("x-one", "1")
            .header("set-cookie", "b=2")
            .body(Body::from("hi"))
            .unwrap();
        let res = from_http(res);
        assert_eq!(res.status, 201);
        let cookies: Vec<_> = res
            .headers
            .iter()
            .filter(|(n, _)| &n[..] == b"set-cookie")
            .collect();
        assert_eq!(cookies.len(), 2);
        assert_eq!(res.header("x-one"), Some(&b"1"[..]));
    }

    #[test]
    fn content_length_of_the_body_is_left_to_hyper() {
        let res = Response::new(200)
            .with_header("Content-Length", "2")
            .with_body("hi");
        assert!(into_http(res).headers().get("content-length").is_none());
        // A length that differs from the body (HEAD), or of an empty body, stays.
        let res = Response::new(200).with_header("Content-Length", "14");
        assert_eq!(into_http(res).headers()["content-length"], "14");
        let res = Response::new(304)
            .with_header("Content-Length", "2")
            .with_body("hi");
        assert_eq!(into_http(res).headers()["content-length"], "2");
    }

    #[test]
    fn invalid_head_becomes_500() {
        for status in [42, 100, 101, 103, 600] {
            assert_eq!(into_http(Response::new(status)).status(), 502, "{status}");
        }
        assert_eq!(
            into_http(Response::new(200).with_header("a b", "x")).status(),
            500
        );
        assert_eq!(
            into_http(Response::new(200).with_header("x", "a\nb")).status(),
            500
        );
    }
}

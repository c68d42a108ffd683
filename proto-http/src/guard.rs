//! Requests whose framing could be read two ways (request smuggling, RFC 9112 §6.3 and §11.2)
//! are refused before the app runs. hyper already refuses what is malformed; these are the
//! well-formed but ambiguous heads it would serve, which a front proxy and gatewayd might frame
//! differently.

use http::request::Parts;
use http::{Method, Version, header};

/// The status and reason a request head is refused with, or `None` when its framing is plain.
/// Transfer codings other than `chunked` are not implemented: 501 (RFC 9112 §6.1).
pub fn ambiguity(parts: &Parts) -> Option<(u16, &'static str)> {
    // One pass over the fields, comparing names rather than hashing them per lookup.
    let (mut te, mut cl, mut look_alike) = (Vec::new(), Vec::new(), false);
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING {
            te.push(value);
        } else if name == header::CONTENT_LENGTH {
            cl.push(value);
        } else {
            let letters = || name.as_str().bytes().filter(u8::is_ascii_alphabetic);
            look_alike |= letters().eq(*b"transferencoding") || letters().eq(*b"contentlength");
        }
    }
    if cl.len() > 1 {
        return Some((400, "more than one Content-Length field"));
    }
    if !te.is_empty() && !cl.is_empty() {
        return Some((400, "both Transfer-Encoding and Content-Length"));
    }
    if !te.is_empty() && parts.version == Version::HTTP_10 {
        return Some((400, "Transfer-Encoding in HTTP/1.0"));
    }
    // Some clients send `Content-Length: 0` on GET; a real body there is ambiguous.
    let has_body = !te.is_empty() || cl.first().is_some_and(|v| v.as_bytes() != b"0");
    if (parts.method == Method::GET || parts.method == Method::HEAD) && has_body {
        return Some((400, "a body on GET or HEAD"));
    }
    let codings: Vec<Vec<u8>> = te
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii().to_ascii_lowercase())
        .collect();
    if codings
        .iter()
        .filter(|c| c.as_slice() == b"chunked")
        .count()
        > 1
    {
        return Some((400, "chunked applied twice"));
    }
    if !codings.is_empty() && codings.as_slice() != [b"chunked".to_vec()] {
        return match codings.last().is_some_and(|c| c.as_slice() == b"chunked") {
            true => Some((501, "a transfer coding other than chunked")),
            false => Some((400, "a Transfer-Encoding that does not end in chunked")),
        };
    }
    look_alike.then_some((
        400,
        "a field that looks like Transfer-Encoding or Content-Length",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(build: http::request::Builder) -> Option<&'static str> {
        ambiguity(&build.body(()).unwrap().into_parts().0).map(|(_, why)| why)
    }

    #[test]
    fn plain_framing_passes() {
        assert_eq!(
            head(http::Request::post("/").header("content-length", "3")),
            None
        );
        assert_eq!(
            head(http::Request::post("/").header("transfer-encoding", "Chunked")),
            None
        );
        assert_eq!(head(http::Request::get("/")), None);
        assert_eq!(
            head(http::Request::get("/").header("content-length", "0")),
            None
        );
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let te = |v: &'static str| http::Request::post("/").header("transfer-encoding", v);
        assert!(head(te("chunked").header("transfer-encoding", "chunked")).is_some());
        assert!(head(te("chunked").header("content-length", "5")).is_some());
        let gzip = te("gzip, chunked").body(()).unwrap().into_parts().0;
        assert_eq!(ambiguity(&gzip).map(|(status, _)| status), Some(501));
        assert!(head(te("chunked, chunked")).is_some());
        assert!(
            head(
                http::Request::post("/")
                    .header("content-length", "5")
                    .header("content-length", "5")
            )
            .is_some()
        );
        assert!(head(http::Request::get("/").header("content-length", "5")).is_some());
        assert!(head(te("chunked").version(Version::HTTP_10)).is_some());
        assert!(head(http::Request::post("/").header("transfer_encoding", "chunked")).is_some());
        assert!(head(http::Request::post("/").header("transfer---encoding", "chunked")).is_some());
    }
}

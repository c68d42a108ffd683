//! One battery of checks through a front server (nginx, lighttpd) in front of gatewayd: what
//! every gateway must get right, compared with gatewayd's own HTTP front-end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_core::Body;

use super::{Client, Reply, req, send, sha256};

fn environ(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Runs every check against `front`, which forwards to gatewayd over `protocol`; `direct` is
/// gatewayd's HTTP listener on the same config, for comparison.
pub async fn battery(front: SocketAddr, direct: SocketAddr, protocol: &str) {
    split_matches_direct_http(front, direct, protocol).await;
    big_post(front).await;
    long_and_repeated_headers(front).await;
    repeated_response_headers(front).await;
    bodiless_statuses(front).await;
    drip(front).await;
}

/// SCRIPT_NAME and PATH_INFO (root and sub mount, percent-encoding) are what direct HTTP gives.
async fn split_matches_direct_http(front: SocketAddr, direct: SocketAddr, protocol: &str) {
    for path in [
        "/environ",
        "/environ/a%20b?x=1&y=%2F",
        "/sub/environ/deep/er",
        "/sub/environ",
    ] {
        let via = environ(&super::get(front, path).await);
        let own = environ(&super::get(direct, path).await);
        assert_eq!(via["protocol"], protocol);
        for key in ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD"] {
            assert_eq!(via["environ"][key], own["environ"][key], "{key} of {path}");
        }
        // nginx sends both empty on GET (absent here); lighttpd sends CONTENT_LENGTH "0".
        let length = via["environ"]
            .get("CONTENT_LENGTH")
            .and_then(|v| v.as_str());
        assert!(
            matches!(length, None | Some("0")),
            "CONTENT_LENGTH {length:?}"
        );
        assert!(
            via["environ"].get("CONTENT_TYPE").is_none(),
            "an empty CONTENT_TYPE is absent"
        );
        let uri = via["environ"]["REQUEST_URI"].as_str().unwrap_or_default();
        assert_eq!(uri, path, "REQUEST_URI stays raw");
    }
    assert_eq!(
        super::get(front, "/get").await.json()["args"],
        serde_json::json!({})
    );
    assert_eq!(super::get(front, "/no/such").await.status, 404);
}

async fn big_post(front: SocketAddr) {
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut r = req("POST", "/environ", data.clone());
    r.headers_mut()
        .insert("content-type", "application/octet-stream".parse().unwrap());
    let doc = environ(&send(front, r).await);
    assert_eq!(doc["body_length"], 5_000_000);
    assert_eq!(doc["body_sha256"], sha256(&data));
    assert_eq!(doc["environ"]["CONTENT_LENGTH"], "5000000");
    assert_eq!(doc["environ"]["CONTENT_TYPE"], "application/octet-stream");
}

async fn long_and_repeated_headers(front: SocketAddr) {
    let long = "v".repeat(4096);
    let mut r = req("GET", "/environ", Body::empty());
    let h = r.headers_mut();
    h.insert("x-long", long.parse().unwrap());
    h.append("x-rep", "one".parse().unwrap());
    h.append("x-rep", "two".parse().unwrap());
    h.append("cookie", "a=1".parse().unwrap());
    h.append("cookie", "b=2".parse().unwrap());
    let doc = environ(&send(front, r).await);
    let env = &doc["environ"];
    assert_eq!(env["HTTP_X_LONG"], long);
    assert_eq!(env["HTTP_X_REP"], "one, two");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
}

async fn repeated_response_headers(front: SocketAddr) {
    let reply = super::get(front, "/response-headers?X-Multi=1&X-Multi=2").await;
    assert_eq!(reply.status, 200);
    let multi: Vec<_> = reply
        .headers
        .get_all("x-multi")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(multi, ["1", "2"], "repeated response headers stay apart");
}

async fn bodiless_statuses(front: SocketAddr) {
    let mut c = Client::connect(front).await;
    for code in [204, 304] {
        let reply = c.get(&format!("/status/{code}")).await;
        assert_eq!(reply.status, code);
        assert!(reply.body.is_empty());
    }
    // The connection is still in step.
    assert_eq!(c.get("/status/418").await.status, 418);
}

async fn drip(front: SocketAddr) {
    let start = Instant::now();
    let reply = super::get(front, "/drip?duration=0.4&numbytes=4&delay=0").await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"****");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

//! Every httpbin endpoint, over HTTP against the real binary.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Daemon, HTTPBIN, get, req, send};
use gateway_core::Body;
use serde_json::json;

#[tokio::test]
async fn get_echoes_args_headers_origin_url() {
    let d = Daemon::start(HTTPBIN);
    let mut r = req("GET", "/get?a=1&b=two%20words&a=3", Body::empty());
    r.headers_mut().insert("x-probe", "yes".parse().unwrap());
    let reply = send(d.addr(), r).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let doc = reply.json();
    assert_eq!(doc["args"], json!({"a": ["1", "3"], "b": "two words"}));
    assert_eq!(doc["headers"]["X-Probe"], "yes");
    assert_eq!(doc["origin"], "127.0.0.1");
    assert_eq!(
        doc["url"],
        format!("http://{}/get?a=1&b=two%20words&a=3", d.addr())
    );
    assert_eq!(send(d.addr(), req("POST", "/get", "x")).await.status, 405);
}

#[tokio::test]
async fn methods_with_bodies() {
    let d = Daemon::start(HTTPBIN);
    let mut c = Client::connect(d.addr()).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let path = format!("/{}", method.to_lowercase());
        let mut r = req(method, &path, "{\"k\": [1, 2]}");
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        let doc = c.send(r).await.json();
        assert_eq!(doc["json"], json!({"k": [1, 2]}), "{method}");
        assert_eq!(doc["data"], "{\"k\": [1, 2]}", "{method}");
        assert_eq!(c.get(&path).await.status, 405, "{method}");
    }
    let mut r = req("POST", "/post?q=1", "name=gatewayd&lang=rust&lang=c");
    r.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    let doc = c.send(r).await.json();
    assert_eq!(
        doc["form"],
        json!({"name": "gatewayd", "lang": ["rust", "c"]})
    );
    assert_eq!(doc["args"], json!({"q": "1"}));
    let doc = c
        .send(req("POST", "/post", vec![0xffu8, 0xfe]))
        .await
        .json();
    assert_eq!(doc["data"], "data:application/octet-stream;base64,//4=");
}

#[tokio::test]
async fn anything_takes_every_method_and_subpath() {
    let d = Daemon::start(HTTPBIN);
    let mut c = Client::connect(d.addr()).await;
    for method in ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PROPFIND"] {
        // A body on GET is refused as ambiguous (request smuggling): the others carry one.
        let body = if method == "GET" { "" } else { "payload" };
        let reply = c.send(req(method, "/anything/deep/path?x=1", body)).await;
        assert_eq!(reply.status, 200);
        let doc = reply.json();
        assert_eq!(doc["method"], method);
        assert_eq!(
            doc["url"],
            format!("http://{}/anything/deep/path?x=1", d.addr())
        );
        assert_eq!(doc["data"], body);
    }
}

#[tokio::test]
async fn headers_ip_user_agent() {
    let d = Daemon::start(HTTPBIN);
    let mut r = req("GET", "/headers", Body::empty());
    r.headers_mut()
        .insert("user-agent", "probe/1.0".parse().unwrap());
    r.headers_mut().append("accept", "a/b".parse().unwrap());
    r.headers_mut().append("accept", "c/d".parse().unwrap());
    let doc = send(d.addr(), r).await.json();
    assert_eq!(doc["headers"]["User-Agent"], "probe/1.0");
    assert_eq!(doc["headers"]["Accept"], "a/b, c/d");
    assert_eq!(
        get(d.addr(), "/ip").await.json(),
        json!({"origin": "127.0.0.1"})
    );
    let mut r = req("GET", "/user-agent", Body::empty());
    r.headers_mut()
        .insert("user-agent", "probe/2.0".parse().unwrap());
    assert_eq!(
        send(d.addr(), r).await.json(),
        json!({"user-agent": "probe/2.0"})
    );
}

#[tokio::test]
async fn status_codes() {
    let d = Daemon::start(HTTPBIN);
    let mut c = Client::connect(d.addr()).await;
    for code in [200, 201, 204, 304, 400, 404, 418, 500, 503, 599] {
        let reply = c.get(&format!("/status/{code}")).await;
        assert_eq!(reply.status, code);
        assert!(reply.body.is_empty());
    }
    let reply = c.get("/status/302").await;
    assert_eq!(reply.header("location"), Some("/redirect/1"));
    let code = c.get("/status/201,202").await.status;
    assert!(code == 201 || code == 202);
    assert_eq!(c.get("/status/abc").await.status, 400);
    assert_eq!(c.get("/status/1000").await.status, 400);
}

#[tokio::test]
async fn response_headers_repeat() {
    let d = Daemon::start(HTTPBIN);
    let reply = get(d.addr(), "/response-headers?X-Multi=1&X-Multi=2&X-One=only").await;
    assert_eq!(reply.status, 200);
    let multi: Vec<_> = reply
        .headers
        .get_all("x-multi")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(multi, ["1", "2"]);
    assert_eq!(reply.header("x-one"), Some("only"));
    assert_eq!(
        reply.json(),
        json!({"X-Multi": ["1", "2"], "X-One": "only"})
    );
}

#[tokio::test]
async fn bytes_and_stream_bytes() {
    let d = Daemon::start(HTTPBIN);
    let mut c = Client::connect(d.addr()).await;
    let a = c.get("/bytes/1000?seed=7").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), 1000);
    assert_eq!(a.header("content-length"), Some("1000"));
    assert_eq!(c.get("/bytes/1000?seed=7").await.body, a.body);
    assert_eq!(c.get("/bytes/0").await.body.len(), 0);
    assert_eq!(c.get("/bytes/-1").await.status, 400);

    let s = c.get("/stream-bytes/25000?chunk_size=1000&seed=3").await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body.len(), 25000);
    assert_eq!(s.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        c.get("/stream-bytes/25000?chunk_size=7&seed=3")
            .await
            .body
            .len(),
        25000
    );
}

#[tokio::test]
async fn stream_json_lines() {
    let d = Daemon::start(HTTPBIN);
    let reply = get(d.addr(), "/stream/5?k=v").await;
    assert_eq!(reply.status, 200);
    let lines: Vec<serde_json::Value> = reply
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["id"], i);
        assert_eq!(line["args"]["k"], "v");
    }
    assert_eq!(
        get(d.addr(), "/stream/1000").await.text().lines().count(),
        100
    );
}

#[tokio::test]
async fn streaming_sends_chunks_as_they_come() {
    let d = Daemon::start(HTTPBIN);
    let stream = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut sender = sender;
    let start = Instant::now();
    let mut r = req("GET", "/drip?duration=1&numbytes=5&delay=0", Body::empty());
    r.headers_mut().insert("host", "x".parse().unwrap());
    let res = sender.send_request(r).await.unwrap();
    let mut body = res.into_body();
    use http_body_util::BodyExt as _;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = start.elapsed();
    assert_eq!(&first[..], b"*");
    let mut total = first.len();
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
    }
    let all_at = start.elapsed();
    assert_eq!(total, 5);
    // The first byte came well before the last: it was not buffered.
    assert!(
        first_at < Duration::from_millis(500),
        "first byte after {first_at:?}"
    );
    assert!(
        all_at >= Duration::from_millis(750),
        "all bytes after {all_at:?}"
    );
}

#[tokio::test]
async fn drip_and_delay_wait() {
    let d = Daemon::start(HTTPBIN);
    let start = Instant::now();
    let reply = get(d.addr(), "/drip?duration=0.3&numbytes=3&delay=0.3&code=201").await;
    assert_eq!(reply.status, 201);
    assert_eq!(&reply.body[..], b"***");
    assert!(start.elapsed() >= Duration::from_millis(500));

    let start = Instant::now();
    let reply = get(d.addr(), "/delay/0.5").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.json()["url"]
            .as_str()
            .unwrap()
            .ends_with("/delay/0.5")
    );
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert_eq!(get(d.addr(), "/delay/soon").await.status, 400);
}

#[tokio::test]
async fn redirect_to() {
    let d = Daemon::start(HTTPBIN);
    let reply = get(d.addr(), "/redirect-to?url=https%3A%2F%2Fexample.org%2Fx").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("https://example.org/x"));
    let reply = get(d.addr(), "/redirect-to?url=/get&status_code=307").await;
    assert_eq!(
        (reply.status, reply.header("location")),
        (307, Some("/get"))
    );
    assert_eq!(get(d.addr(), "/redirect-to").await.status, 400);
}

#[tokio::test]
async fn base64() {
    let d = Daemon::start(HTTPBIN);
    let reply = get(d.addr(), "/base64/SFRUUEJJTiBpcyBhd2Vzb21l").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "HTTPBIN is awesome")
    );
    assert_eq!(
        get(d.addr(), "/base64/_-8").await.body.as_ref(),
        &[0xff, 0xef]
    );
    assert_eq!(get(d.addr(), "/base64/%%%").await.status, 400);
}

#[tokio::test]
async fn cookies() {
    let d = Daemon::start(HTTPBIN);
    let mut r = req("GET", "/cookies", Body::empty());
    r.headers_mut().append("cookie", "a=1".parse().unwrap());
    r.headers_mut().append("cookie", "b=2".parse().unwrap());
    assert_eq!(
        send(d.addr(), r).await.json(),
        json!({"cookies": {"a": "1", "b": "2"}})
    );

    let reply = get(d.addr(), "/sub/cookies/set?k=v&x=y").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("/sub/cookies"));
    let set: Vec<_> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, ["k=v; Path=/", "x=y; Path=/"]);
}

#[tokio::test]
async fn index_and_unknown_paths() {
    let d = Daemon::start(HTTPBIN);
    let reply = get(d.addr(), "/").await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("/environ"));
    assert_eq!(get(d.addr(), "/no/such/endpoint").await.status, 404);
}

#[tokio::test]
async fn hello_is_fixed() {
    let d = Daemon::start(HTTPBIN);
    let reply = get(d.addr(), "/hello").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello, World!\n");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
}

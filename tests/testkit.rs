//! The testkit, used as an app author would: one test body, run over HTTP, FastCGI and SCGI
//! in-process and over CGI through the real binary.

mod common;

use bytes::Bytes;
use gatewayd::AppConfig;
use gatewayd::config::Limits;
use gatewayd::core::SharedApp;
use gatewayd::testkit::{self, Gateway, TestClient};
use serde_json::json;

/// httpbin, built by its factory as the daemon builds it from TOML.
fn httpbin() -> SharedApp {
    let daemon = gatewayd::Daemon::new();
    let factory = daemon
        .registry()
        .get("httpbin")
        .expect("httpbin is built in");
    factory(&AppConfig::parse("bin", "").unwrap(), Limits::default()).unwrap()
}

/// The one test body.
async fn checks(client: &TestClient) {
    let g = client.gateway();
    let res = client.get("/environ/a%20b?q=1").await;
    assert_eq!(res.status, 200, "{g}: {}", res.text());
    let doc = res.json();
    assert_eq!(doc["protocol"], g.to_string(), "{g}");
    assert_eq!(doc["environ"]["PATH_INFO"], "/environ/a b", "{g}");
    assert_eq!(doc["environ"]["QUERY_STRING"], "q=1", "{g}");

    let req = http::Request::post("/post")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from_static(b"a=1&b=2"))
        .unwrap();
    let doc = client.send(req).await.json();
    assert_eq!(doc["form"], json!({"a": "1", "b": "2"}), "{g}");

    let res = client.get("/response-headers?X-Multi=1&X-Multi=2").await;
    let multi: Vec<_> = res.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi.len(), 2, "{g}");
    assert_eq!(client.get("/status/418").await.status, 418, "{g}");
    assert_eq!(client.get("/nowhere").await.status, 404, "{g}");
}

#[tokio::test]
async fn one_test_four_gateways() {
    let mut clients = testkit::every_gateway(httpbin());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cgi.toml");
    std::fs::write(
        &config,
        "[apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n",
    )
    .unwrap();
    clients.push(testkit::cgi(common::gatewayd_bin(), &config));
    let gateways: Vec<Gateway> = clients.iter().map(TestClient::gateway).collect();
    assert_eq!(
        gateways,
        [Gateway::Http, Gateway::FastCgi, Gateway::Scgi, Gateway::Cgi]
    );
    for client in &clients {
        checks(client).await;
    }
}

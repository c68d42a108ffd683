//! SCGI end to end: the real binary behind real nginx (`scgi_pass`, TCP and unix socket, the
//! stock `scgi_params`) and lighttpd mod_scgi, with the same battery as FastCGI.

mod common;

use common::front::battery;
use common::peers::{lighttpd, nginx};
use common::{Daemon, HTTPBIN};

/// httpbin over SCGI on TCP and a unix socket, and over HTTP for comparison.
fn config() -> String {
    HTTPBIN.replace(
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n",
        "[[listen]]\nprotocol = \"scgi\"\naddress = \"127.0.0.1:0\"\n\n\
         [[listen]]\nprotocol = \"scgi\"\naddress = \"unix:{dir}/scgi.sock\"\n\n\
         [[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n",
    )
}

fn snippet() -> String {
    format!(
        "    include {}/configs/nginx-scgi.conf;",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn http(d: &Daemon) -> std::net::SocketAddr {
    d.listening[2].1.parse().unwrap()
}

#[tokio::test]
async fn behind_nginx_over_tcp() {
    let d = Daemon::start(&config());
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", d.listening[0].1),
        &snippet(),
    );
    battery(n.addr, http(&d), "scgi").await;
}

#[tokio::test]
async fn behind_nginx_over_a_unix_socket() {
    let d = Daemon::start(&config());
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", d.listening[1].1),
        &snippet(),
    );
    battery(n.addr, http(&d), "scgi").await;
}

#[tokio::test]
async fn behind_lighttpd() {
    let d = Daemon::start(&config());
    let (host, port) = d.listening[0].1.rsplit_once(':').unwrap();
    let l = lighttpd(&format!(
        "server.modules += (\"mod_scgi\")\n\
         scgi.server = ( \"/\" => (( \"host\" => \"{host}\", \"port\" => {port}, \"check-local\" => \"disable\" )) )"
    ));
    battery(l.addr, http(&d), "scgi").await;
}

/// One request on a new SCGI connection: the header of `pairs` (CONTENT_LENGTH first, as
/// given), then `body`, then a half-close. The reply, read until the daemon closes; at most
/// 5 s.
async fn scgi_exchange(addr: &str, pairs: &[(&str, &str)], body: &[u8]) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut header = Vec::new();
    for (n, v) in pairs.iter().chain(&[("SCGI", "1")]) {
        header.extend_from_slice(n.as_bytes());
        header.push(0);
        header.extend_from_slice(v.as_bytes());
        header.push(0);
    }
    let mut wire = format!("{}:", header.len()).into_bytes();
    wire.extend_from_slice(&header);
    wire.push(b',');
    wire.extend_from_slice(body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&wire).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut reply),
    )
    .await
    .expect("the daemon answers and closes")
    .unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(reply.len());
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    (head, reply.get(split + 4..).unwrap_or_default().to_vec())
}

fn post(content_length: &str) -> Vec<(&str, &str)> {
    vec![
        ("CONTENT_LENGTH", content_length),
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/environ"),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
    ]
}

#[tokio::test]
async fn an_invalid_content_length_is_a_400() {
    let d = Daemon::start(&config());
    for bad in ["-1", "+10", "abc", " 5", "5 ", "", "99999999999999999999"] {
        let (head, _) = scgi_exchange(&d.listening[0].1, &post(bad), b"hello").await;
        assert!(head.starts_with("Status: 400 "), "{bad:?}: {head}");
    }
}

#[tokio::test]
async fn the_app_gets_exactly_content_length_bytes() {
    let d = Daemon::start(&config());
    let (head, body) = scgi_exchange(&d.listening[0].1, &post("5"), b"helloEXTRA").await;
    assert!(head.starts_with("Status: 200 "), "{head}");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["body_length"], 5);
    assert_eq!(doc["body_sha256"], common::sha256(b"hello"));
    assert_eq!(doc["environ"]["CONTENT_LENGTH"], "5");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_for_the_app() {
    let d = Daemon::start(&config());
    // The web server closes after 4 of 10 bytes: the app's read fails (400); it does not see
    // a 4-byte body.
    let (head, body) = scgi_exchange(&d.listening[0].1, &post("10"), b"hell").await;
    assert!(head.starts_with("Status: 400 "), "{head}");
    assert!(!String::from_utf8_lossy(&body).contains("body_length"));
    // The same with nothing of it but the header.
    let (head, _) = scgi_exchange(&d.listening[0].1, &post("10"), b"").await;
    assert!(head.starts_with("Status: 400 "), "{head}");
}

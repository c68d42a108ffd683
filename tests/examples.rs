//! The examples, run as users would: the axum app under HTTP, FastCGI behind real nginx, SCGI
//! behind nginx and as a CGI program, with the same assertions each time; the custom app over
//! HTTP.

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::peers::nginx;
use common::{Daemon, Reply, example_bin, req, send};
use gateway_core::Body;
use serde_json::json;

const AXUM_CONFIG: &str = r#"
[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:0"

[[listen]]
protocol = "scgi"
address = "127.0.0.1:0"

[apps.demo]
type = "axum_demo"
greeting = "Bonjour"

[[mount]]
path = "/"
app = "demo"
lint = true

[[mount]]
path = "/api"
app = "demo"
lint = true
"#;

/// One way to reach the app.
enum Gateway {
    Http(SocketAddr),
    /// The example binary run as a CGI program, with its config.
    Cgi(PathBuf, PathBuf),
}

impl Gateway {
    async fn send(&self, req: http::Request<Body>) -> Reply {
        match self {
            Gateway::Http(addr) => send(*addr, req).await,
            Gateway::Cgi(bin, config) => {
                let (bin, config) = (bin.clone(), config.clone());
                let (parts, body) = req.into_parts();
                let body = body.to_bytes().await.unwrap();
                tokio::task::spawn_blocking(move || run_cgi(&bin, &config, &parts, &body))
                    .await
                    .unwrap()
            }
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(req("GET", path, Body::empty())).await
    }
}

/// What a CGI host does: the request as environment and stdin, the output parsed back.
fn run_cgi(bin: &PathBuf, config: &PathBuf, parts: &http::request::Parts, body: &[u8]) -> Reply {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("GATEWAYD_CONFIG", config)
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("SCRIPT_NAME", "")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("SERVER_NAME", "localhost")
        .env("SERVER_PORT", "80")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string());
    for (name, value) in &parts.headers {
        let var = format!("HTTP_{}", name.as_str().to_uppercase().replace('-', "_"));
        let var = if name == "content-type" {
            "CONTENT_TYPE".to_owned()
        } else {
            var
        };
        cmd.env(var, value.to_str().unwrap());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a CGI head");
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    let mut headers = http::HeaderMap::new();
    let mut status = 200;
    for line in head.lines() {
        let (name, value) = line.split_once(": ").unwrap();
        if name == "Status" {
            status = value[..3].parse().unwrap();
        } else {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
    }
    Reply {
        status,
        headers,
        body: out.stdout[split + 4..].to_vec().into(),
    }
}

/// The same assertions through every gateway.
async fn axum_checks(g: &Gateway) {
    let reply = g.get("/").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "Bonjour from axum\n")
    );
    assert_eq!(
        g.get("/users/7").await.json(),
        json!({"id": 7, "name": "user7"})
    );
    assert_eq!(
        g.get("/api/users/8").await.json(),
        json!({"id": 8, "name": "user8"})
    );

    let mut r = req("POST", "/echo", r#"{"a": [1, 2]}"#);
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    assert_eq!(g.send(r).await.json(), json!({"echo": {"a": [1, 2]}}));

    let mut r = req("POST", "/signup", "name=ana&lang=rust");
    r.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    assert_eq!(g.send(r).await.text(), "ana writes rust\n");

    // The mount prefix reaches the app, so its links work under /api as at the root.
    assert_eq!(
        g.get("/api/links").await.json(),
        json!({"self": "/api/links", "user": "/api/users/1"})
    );
    assert_eq!(
        g.get("/links").await.json(),
        json!({"self": "/links", "user": "/users/1"})
    );

    assert!(g.get("/hits").await.json()["hits"].as_u64().unwrap() >= 1);
    assert_eq!(g.get("/users/not-a-number").await.status, 400);
    assert_eq!(g.get("/nowhere").await.status, 404);
}

#[tokio::test]
async fn axum_app_over_http() {
    let d = Daemon::start_bin(&example_bin("axum_app"), AXUM_CONFIG);
    axum_checks(&Gateway::Http(d.addr())).await;
}

#[tokio::test]
async fn axum_app_over_fastcgi_behind_nginx() {
    let d = Daemon::start_bin(&example_bin("axum_app"), AXUM_CONFIG);
    let snippet = format!(
        "    include {}/configs/nginx-fastcgi.conf;",
        env!("CARGO_MANIFEST_DIR")
    );
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", d.listening[1].1),
        &snippet,
    );
    axum_checks(&Gateway::Http(n.addr)).await;
}

#[tokio::test]
async fn axum_app_over_scgi_behind_nginx() {
    let d = Daemon::start_bin(&example_bin("axum_app"), AXUM_CONFIG);
    let snippet = format!(
        "    include {}/configs/nginx-scgi.conf;",
        env!("CARGO_MANIFEST_DIR")
    );
    let n = nginx(
        &format!("upstream gatewayd {{ server {}; }}", d.listening[2].1),
        &snippet,
    );
    axum_checks(&Gateway::Http(n.addr)).await;
}

#[tokio::test]
async fn axum_app_as_a_cgi_program() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("axum.toml");
    let cgi_config: String = AXUM_CONFIG
        .split("[apps.demo]")
        .nth(1)
        .map(|rest| format!("[apps.demo]{rest}"))
        .unwrap();
    std::fs::write(&config, cgi_config).unwrap();
    axum_checks(&Gateway::Cgi(example_bin("axum_app"), config)).await;
}

#[tokio::test]
async fn the_example_config_checks() {
    let out = Command::new(example_bin("axum_app"))
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/axum_app.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn custom_app_stores_and_serves() {
    let d = Daemon::start_bin(
        &example_bin("custom_app"),
        "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n[apps.store]\ntype = \"kv\"\nmax_value = 16\n\n\
         [[mount]]\npath = \"/kv\"\napp = \"store\"\nlint = true\n",
    );
    let g = Gateway::Http(d.addr());
    assert_eq!(g.send(req("PUT", "/kv/color", "teal")).await.status, 204);
    let reply = g.get("/kv/color").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "teal"));
    assert_eq!(
        g.send(req("PUT", "/kv/big", vec![0u8; 17])).await.status,
        413
    );
    assert_eq!(
        g.send(req("DELETE", "/kv/color", Body::empty()))
            .await
            .status,
        204
    );
    assert_eq!(g.get("/kv/color").await.status, 404);
    assert_eq!(g.send(req("PATCH", "/kv/color", "x")).await.status, 405);
}

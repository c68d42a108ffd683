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

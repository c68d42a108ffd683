//! Path bypasses through real front servers. Each front server denies `/admin` itself (nginx
//! `location /admin { return 403; }`, lighttpd `url.access-deny`, Apache `<Location /admin>`),
//! and gatewayd mounts app A at `/admin` and app B (httpbin) at `/`. Whatever dot segments and
//! encodings a request holds, app A never answers: the front server refuses it, or app B gets it
//! with the path the front server decided on. gatewayd must route on that same path (decoded
//! once, dot segments resolved), or `/admin/%2e%2e/x` passes the front server's rule for `/x`
//! and reaches `/admin`. An encoded slash is read two ways: nginx decodes it into a separator,
//! while HAProxy (with every `normalize-uri` it has) and Apache with `AllowEncodedSlashes
//! NoDecode` keep `%2f` inside its segment. No routing matches both, so gatewayd answers any
//! path with `%2f` 400 (unless the front server refused it first).

mod common;

use std::net::SocketAddr;

use common::peers::{Peer, apache, cgi_bin, haproxy, lighttpd, nginx};
use common::{Daemon, raw_exchange};
use serde_json::Value;

/// What app A, mounted at `/admin`, answers to everything.
const APP_A: &str = "app A: admin only";

const APPS: &str = r#"
[apps.a]
type = "hello"
body = "app A: admin only"

[apps.b]
type = "httpbin"

[[mount]]
path = "/admin"
app = "a"

[[mount]]
path = "/"
app = "b"
"#;

fn daemon_config() -> String {
    format!(
        "[server]\nrequest_timeout = \"5s\"\n\n\
         [[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [[listen]]\nprotocol = \"fastcgi\"\naddress = \"127.0.0.1:0\"\n\n\
         [[listen]]\nprotocol = \"scgi\"\naddress = \"127.0.0.1:0\"\n{APPS}"
    )
}

/// Each request target and the path a front server resolves it to: percent-decoded once, dot
/// segments removed (RFC 3986 §5.2.4), `%2f` a slash like any other (as nginx reads it;
/// gatewayd refuses those paths, see `check`).
const VARIANTS: &[(&str, &str)] = &[
    // The four of the finding, and the case spellings of `%2e`.
    ("/admin/../get", "/get"),
    ("/admin/%2e%2e/get", "/get"),
    ("/admin%2f..%2fget", "/get"),
    ("/admin/..%2fget", "/get"),
    ("/admin/%2E%2E/get", "/get"),
    ("/admin/.%2e/get", "/get"),
    ("/admin/%2e./get", "/get"),
    // The same, where httpbin shows the PATH_INFO it got.
    ("/admin/../environ/v", "/environ/v"),
    ("/admin/%2e%2e/environ/v", "/environ/v"),
    ("/admin%2f..%2fenviron/v", "/environ/v"),
    ("/admin/..%2fenviron/v", "/environ/v"),
    ("/admin/.%2e/environ/v", "/environ/v"),
    ("/admin/%2e./environ/v", "/environ/v"),
    ("/admin/x/../../environ/v", "/environ/v"),
    ("/../admin/../environ/v", "/environ/v"),
    // Into /admin from elsewhere: the front server's rule must see it, and app B must not
    // get it as it was written.
    ("/./admin/x", "/admin/x"),
    ("/admin/./x", "/admin/x"),
    ("/admin/%2e/x", "/admin/x"),
    ("/x/%2e%2e/admin/y", "/admin/y"),
    ("/x/.%2e/admin/y", "/admin/y"),
    ("/x/../admin/y", "/admin/y"),
    ("/x%2f..%2fadmin/y", "/admin/y"),
    ("/x/..%2fadmin/y", "/admin/y"),
    ("/x/%2e%2e%2fadmin/y", "/admin/y"),
    ("/admin/x/..", "/admin/"),
    ("/admin%2fx", "/admin/x"),
    ("/admin", "/admin"),
    ("/admin/x", "/admin/x"),
    // Repeated slashes before `..`: front servers merge them first (`/get`), RFC 3986 does not
    // (`/admin/get`): refused by gatewayd.
    ("/admin//../get", "/get"),
    ("/admin/x//../../environ/v", "/environ/v"),
    // A raw `#` ends the path for nginx; REQUEST_URI keeps the rest.
    ("/get#/../admin/y", "/get"),
    // Decoded once: `%252e` is a literal `%2e`, no dot segment anywhere.
    ("/admin/%252e%252e/environ/v", "/admin/%2e%2e/environ/v"),
];

/// Whether front servers read `variant` two ways, so that gatewayd refuses it (400): an encoded
/// slash, or a `..` after a repeated slash.
fn read_two_ways(variant: &str) -> bool {
    variant.to_ascii_lowercase().contains("%2f")
        || (variant.contains("//") && variant.contains(".."))
}

/// Whether `path` falls under the `/admin` mount (whole segments, as mounts match).
fn under_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// A front server in front of the daemon, and what it does of its own accord.
struct Front {
    name: &'static str,
    addr: SocketAddr,
    /// Prepended to every variant: a CGI script's own path (`/cgi-bin/gw`), or "".
    base: &'static str,
    /// Apache answers 404 to any `%2f` in a path (`AllowEncodedSlashes Off`, its default).
    refuses_encoded_slash: bool,
    /// The path the front server decided on, from a variable it sends besides REQUEST_URI,
    /// when it sends one: a check on the expected paths above.
    decided_path: fn(&Value) -> Option<String>,
    _daemon: Option<Daemon>,
    _peer: Option<Peer>,
    _dir: Option<tempfile::TempDir>,
}

impl Front {
    fn plain(name: &'static str, addr: SocketAddr, daemon: Daemon, peer: Option<Peer>) -> Front {
        Front {
            name,
            addr,
            base: "",
            refuses_encoded_slash: false,
            decided_path: |_| None,
            _daemon: Some(daemon),
            _peer: peer,
            _dir: None,
        }
    }
}

/// nginx's `$uri`, which the stock params send as DOCUMENT_URI.
fn nginx_uri(env: &Value) -> Option<String> {
    env["DOCUMENT_URI"].as_str().map(str::to_owned)
}

/// lighttpd's normalised path, which mod_fastcgi and mod_scgi send as REDIRECT_URI (still
/// encoded; the variants' paths for app B hold nothing to encode).
fn lighttpd_uri(env: &Value) -> Option<String> {
    env["REDIRECT_URI"].as_str().map(str::to_owned)
}

/// The path Apache mapped through `ProxyPass`: SCRIPT_FILENAME is `proxy:fcgi://HOST:PORT/path`.
fn apache_proxied_path(env: &Value) -> Option<String> {
    let url = env["SCRIPT_FILENAME"].as_str()?;
    let after_scheme = url.split_once("://")?.1;
    after_scheme
        .find('/')
        .map(|at| after_scheme[at..].to_owned())
}

/// A CGI host's own PATH_INFO, which gatewayd replaces with its own, survives in
/// PATH_TRANSLATED (DOCUMENT_ROOT + PATH_INFO); SCRIPT_NAME goes before it.
fn cgi_path_translated(env: &Value) -> Option<String> {
    let translated = env["PATH_TRANSLATED"].as_str()?;
    let root = env["DOCUMENT_ROOT"].as_str()?.trim_end_matches('/');
    let path = translated.strip_prefix(root)?;
    Some(format!("{}{path}", env["SCRIPT_NAME"].as_str()?))
}

/// HAProxy's SCRIPT_FILENAME is its `docroot` (`/`) followed by the decoded path it routed.
fn haproxy_script_filename(env: &Value) -> Option<String> {
    env["SCRIPT_FILENAME"]
        .as_str()?
        .strip_prefix('/')
        .map(str::to_owned)
}

fn host_port(addr: &str) -> (String, String) {
    let (h, p) = addr.rsplit_once(':').expect("host:port");
    (h.to_owned(), p.to_owned())
}

const NGINX_DENY: &str = "    location /admin { return 403; }\n";
const LIGHTTPD_DENY: &str = "$HTTP[\"url\"] =~ \"^/admin\" { url.access-deny = (\"\") }\n";
/// HAProxy decides on the path as sent unless told to normalise it: every `normalize-uri`
/// 2.6 has, in the order that leaves no dot segment behind, then the rule.
const HAPROXY_DENY: &str = "  http-request normalize-uri percent-decode-unreserved\n\
     http-request normalize-uri path-strip-dot\n\
     http-request normalize-uri path-strip-dotdot full\n\
     http-request normalize-uri path-merge-slashes\n\
     http-request deny deny_status 403 if { path_beg /admin }\n";
const APACHE_DENY: &str = "<Location /admin>\n  Require all denied\n</Location>\n";

fn start(name: &'static str) -> Front {
    let d = Daemon::start(&daemon_config());
    let http: SocketAddr = d.listening[0].1.parse().expect("http address");
    let (fcgi, scgi) = (d.listening[1].1.clone(), d.listening[2].1.clone());
    let conf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");
    match name {
        "http" => Front::plain(name, http, d, None),
        "fastcgi-nginx" => {
            let n = nginx(
                &format!("upstream gatewayd {{ server {fcgi}; }}"),
                &format!("{NGINX_DENY}    include {conf_dir}/nginx-fastcgi.conf;"),
            );
            let mut f = Front::plain(name, n.addr, d, Some(n));
            f.decided_path = nginx_uri;
            f
        }
        "scgi-nginx" => {
            let n = nginx(
                &format!("upstream gatewayd {{ server {scgi}; }}"),
                &format!("{NGINX_DENY}    include {conf_dir}/nginx-scgi.conf;"),
            );
            let mut f = Front::plain(name, n.addr, d, Some(n));
            f.decided_path = nginx_uri;
            f
        }
        "fastcgi-lighttpd" | "scgi-lighttpd" => {
            let (module, key, addr) = match name {
                "fastcgi-lighttpd" => ("mod_fastcgi", "fastcgi.server", &fcgi),
                _ => ("mod_scgi", "scgi.server", &scgi),
            };
            let (h, p) = host_port(addr);
            let l = lighttpd(&format!(
                "server.modules += (\"mod_access\", \"{module}\")\n{LIGHTTPD_DENY}\
                 {key} = ( \"/\" => (( \"host\" => \"{h}\", \"port\" => {p}, \"check-local\" => \"disable\" )) )"
            ));
            let mut f = Front::plain(name, l.addr, d, Some(l));
            f.decided_path = lighttpd_uri;
            f
        }
        "fastcgi-apache" | "scgi-apache" | "fastcgi-apache-nodecode" => {
            let (module, scheme, addr) = match name {
                "scgi-apache" => ("proxy_scgi", "scgi", &scgi),
                _ => ("proxy_fcgi", "fcgi", &fcgi),
            };
            let nodecode = name == "fastcgi-apache-nodecode";
            let slashes = if nodecode {
                "AllowEncodedSlashes NoDecode\n"
            } else {
                ""
            };
            let a = apache(
                &["proxy", module],
                &format!("{slashes}ProxyPass \"/\" \"{scheme}://{addr}/\"\n{APACHE_DENY}"),
            );
            let mut f = Front::plain(name, a.addr, d, Some(a));
            f.refuses_encoded_slash = !nodecode;
            f.decided_path = apache_proxied_path;
            f
        }
        "fastcgi-haproxy" => {
            let h = haproxy(
                HAPROXY_DENY,
                &format!(
                    "fcgi-app gatewayd\n  docroot /\n\n\
                     backend gatewayd\n  use-fcgi-app gatewayd\n  server gatewayd {fcgi} proto fcgi\n"
                ),
            );
            let mut f = Front::plain(name, h.addr, d, Some(h));
            f.decided_path = haproxy_script_filename;
            f
        }
        "cgi-apache" | "cgi-lighttpd" => {
            drop(d);
            let dir = tempfile::tempdir().expect("temp dir");
            let bin = cgi_bin(
                dir.path(),
                &format!("[server]\nrequest_timeout = \"5s\"\n{APPS}"),
            );
            let (peer, refuses_encoded_slash) = if name == "cgi-apache" {
                let conf = format!(
                    "ScriptSock \"cgid.sock\"\nScriptAlias /cgi-bin/ \"{0}/\"\n\
                     <Directory \"{0}\">\n  Require all granted\n</Directory>\n\
                     <Location /cgi-bin/gw/admin>\n  Require all denied\n</Location>\n",
                    bin.display()
                );
                (apache(&["alias", "cgid"], &conf), true)
            } else {
                let conf = format!(
                    "server.modules += (\"mod_access\", \"mod_alias\", \"mod_cgi\")\n\
                     alias.url = ( \"/cgi-bin/\" => \"{}/\" )\n\
                     $HTTP[\"url\"] =~ \"^/cgi-bin/gw/admin\" {{ url.access-deny = (\"\") }}\n\
                     $HTTP[\"url\"] =~ \"^/cgi-bin/\" {{ cgi.assign = ( \"\" => \"\" ) }}",
                    bin.display()
                );
                (lighttpd(&conf), false)
            };
            Front {
                name,
                addr: peer.addr,
                base: "/cgi-bin/gw",
                refuses_encoded_slash,
                decided_path: cgi_path_translated,
                _daemon: None,
                _peer: Some(peer),
                _dir: Some(dir),
            }
        }
        other => panic!("no front server {other}"),
    }
}

/// Whether `status` is the front server's own refusal of `variant`: its deny rule (403), or what
/// it refuses of its own accord, a path above the root or a raw `#` (400) and, for Apache, an
/// encoded slash (404).
fn front_refuses(front: &Front, variant: &str, status: u16) -> bool {
    match status {
        403 => front.name != "http",
        404 => front.refuses_encoded_slash && variant.to_ascii_lowercase().contains("%2f"),
        // A path above the root; Apache and HAProxy also refuse a raw `#` in the target.
        400 => front.name != "http" && (variant.starts_with("/../") || variant.contains('#')),
        _ => false,
    }
}

/// One request written as raw bytes (clients normalise paths), HTTP/1.0 so that no answer is
/// chunked: the status and the body.
async fn exchange(addr: SocketAddr, target: &str) -> (u16, String) {
    let raw = format!("GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let got = raw_exchange(addr, raw.as_bytes(), |_| false).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Checks one variant through `front`; `None` when it went as it must.
async fn check(front: &Front, variant: &str, resolved: &str) -> Option<String> {
    let target = format!("{}{variant}", front.base);
    let (status, body) = exchange(front.addr, &target).await;
    let fail = |why: String| Some(format!("{target} @ {}: {why}", front.name));
    if body.contains(APP_A) {
        return match front.name == "http" && under_admin(resolved) {
            // Direct HTTP has no front server: what resolves into /admin is app A's.
            true if status == 200 => None,
            _ => fail(format!("app A answered {status}")),
        };
    }
    if read_two_ways(variant) {
        // gatewayd's own 400, or the front server's refusal before it.
        return match status {
            400 => None,
            s if front_refuses(front, variant, s) => None,
            _ => fail(format!("{status} for an encoded slash: {body}")),
        };
    }
    if front.name == "http" && under_admin(resolved) {
        return fail(format!("{resolved} is app A's, but {status}: {body}"));
    }
    if front_refuses(front, variant, status) {
        return None;
    }
    if under_admin(resolved) {
        // Only the front server's rule stands between the client and app A here.
        return fail(format!("{status}, not denied: {body}"));
    }
    if status != 200 {
        return fail(format!("{status} where app B should answer: {body}"));
    }
    if resolved == "/get" {
        return (!body.contains("\"args\""))
            .then(|| format!("{target} @ {}: not httpbin's /get: {body}", front.name));
    }
    let doc: Value = match serde_json::from_str(&body) {
        Ok(doc) => doc,
        Err(e) => return fail(format!("not app B's JSON ({e}): {body}")),
    };
    let env = &doc["environ"];
    let path_info = format!(
        "{}{}",
        env["SCRIPT_NAME"].as_str().unwrap_or("?"),
        env["PATH_INFO"].as_str().unwrap_or("?")
    );
    let expected = format!("{}{resolved}", front.base);
    if path_info != expected {
        return fail(format!("app B got {path_info}, not {expected}"));
    }
    match (front.decided_path)(env) {
        Some(decided) if decided != expected => fail(format!(
            "the front server decided on {decided}, not {expected}"
        )),
        _ => None,
    }
}

async fn every_variant(name: &'static str) {
    let front = start(name);
    let mut failures = Vec::new();
    for (variant, resolved) in VARIANTS {
        if !front.base.is_empty() && variant.starts_with("/..") {
            continue; // it would climb out of the CGI script's own path
        }
        failures.extend(check(&front, variant, resolved).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants went wrong:\n{}",
        failures.len(),
        VARIANTS.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn direct_http_routes_on_the_resolved_path() {
    every_variant("http").await;
}

#[tokio::test]
async fn nginx_fastcgi() {
    every_variant("fastcgi-nginx").await;
}

#[tokio::test]
async fn nginx_scgi() {
    every_variant("scgi-nginx").await;
}

#[tokio::test]
async fn lighttpd_fastcgi() {
    every_variant("fastcgi-lighttpd").await;
}

#[tokio::test]
async fn lighttpd_scgi() {
    every_variant("scgi-lighttpd").await;
}

#[tokio::test]
async fn apache_proxy_fcgi() {
    every_variant("fastcgi-apache").await;
}

#[tokio::test]
async fn apache_proxy_scgi() {
    every_variant("scgi-apache").await;
}

#[tokio::test]
async fn apache_cgid() {
    every_variant("cgi-apache").await;
}

#[tokio::test]
async fn lighttpd_cgi() {
    every_variant("cgi-lighttpd").await;
}

#[tokio::test]
async fn apache_proxy_fcgi_encoded_slashes_kept() {
    every_variant("fastcgi-apache-nodecode").await;
}

#[tokio::test]
async fn haproxy_fastcgi_normalised() {
    every_variant("fastcgi-haproxy").await;
}

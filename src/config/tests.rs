use std::path::Path;

use super::*;

const GOOD: &str = r#"
[server]
shutdown_timeout = "5s"

[[listen]]
protocol = "http"
address = "127.0.0.1:0"

[[listen]]
protocol = "http"
address = "unix:/tmp/x.sock"
socket_mode = "0660"

[apps.bin]
type = "httpbin"

[apps.hi]
type = "hello"
body = "hey"

[[mount]]
path = "/"
app = "bin"

[[mount]]
path = "/hi"
app = "hi"
lint = true
"#;

fn registry() -> Registry {
    let mut r = Registry::new();
    crate::apps::register_builtins(&mut r, gateway_core::Stats::leak());
    r
}

/// The error for `source`, as `check` prints it.
fn error(source: &str) -> String {
    match Config::parse(Path::new("g.toml"), source, &registry()) {
        Ok(_) => panic!("expected an error for:\n{source}"),
        Err(e) => e.to_string(),
    }
}

/// Replaces the first `from` in the good config.
fn good_but(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn good_config_loads() {
    let cfg = Config::parse(Path::new("g.toml"), GOOD, &registry()).unwrap();
    assert_eq!(
        cfg.server.shutdown_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(cfg.listen.len(), 2);
    assert_eq!(
        cfg.listen[1].socket_mode.as_ref().map(|m| *m.get_ref()),
        Some(0o660)
    );
    assert_eq!(cfg.server.max_body_size, 100 << 20);
}

#[test]
fn misspelled_keys_name_their_place() {
    let e = error(&good_but("shutdown_timeout", "shutdown_timout"));
    assert!(
        e.starts_with("g.toml:3:1: unknown field `shutdown_timout`"),
        "{e}"
    );
    let e = error(&good_but("address = \"127", "adress = \"127"));
    assert!(e.starts_with("g.toml:7:1: unknown field `adress`"), "{e}");
    let e = error(&good_but("body = \"hey\"", "bdy = \"hey\""));
    assert!(e.starts_with("g.toml:19:1: unknown field `bdy`"), "{e}");
    let e = error(&good_but("[[mount]]", "[[mounts]]"));
    assert!(e.starts_with("g.toml:21:3: unknown field `mounts`"), "{e}");
}

#[test]
fn bad_values_name_their_place() {
    let e = error(&good_but("\"5s\"", "\"5 parsecs\""));
    assert!(e.starts_with("g.toml:3:20: "), "{e}");
    assert!(e.contains("not a duration"), "{e}");
    let e = error(&good_but("\"5s\"", "\"500000000000years\""));
    assert!(e.starts_with("g.toml:3:20: "), "{e}");
    assert!(e.contains("longest duration allowed"), "{e}");
    let e = error(&good_but("127.0.0.1:0", "127.0.0.1"));
    assert!(e.starts_with("g.toml:7:11: "), "{e}");
    let e = error(&good_but("protocol = \"http\"", "protocol = \"gopher\""));
    assert!(
        e.starts_with("g.toml:6:12: unknown variant `gopher`"),
        "{e}"
    );
    let e = error(&good_but("\"0660\"", "\"0999\""));
    assert!(e.starts_with("g.toml:12:15: "), "{e}");
    let e = error(&good_but(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\nsocket_group = \"www\"",
    ));
    assert!(
        e.starts_with("g.toml:8:16: socket_group applies to unix: addresses only"),
        "{e}"
    );
}

#[test]
fn unknown_type_and_missing_app() {
    let e = error(&good_but("type = \"hello\"", "type = \"helo\""));
    assert!(
        e.starts_with("g.toml:18:8: unknown app type \"helo\""),
        "{e}"
    );
    assert!(
        e.contains("known: cgi, hello, httpbin, ping, status"),
        "{e}"
    );
    let e = error(&good_but("app = \"hi\"", "app = \"bye\""));
    assert!(
        e.starts_with("g.toml:27:7: mount \"/hi\" names app \"bye\""),
        "{e}"
    );
    let e = error(&good_but("[apps.hi]\ntype = \"hello\"", "[apps.hi]"));
    assert!(e.contains("app \"hi\" has no type"), "{e}");
}

#[test]
fn bad_mounts() {
    let e = error(&good_but("path = \"/hi\"", "path = \"hi\""));
    assert!(e.starts_with("g.toml:26:8: mount path \"hi\""), "{e}");
    let e = error(&good_but("path = \"/hi\"", "path = \"/\""));
    assert!(
        e.starts_with("g.toml:26:8: path \"/\" is mounted twice"),
        "{e}"
    );
}

#[test]
fn toml_syntax_errors_are_placed() {
    let e = error("[server\nshutdown_timeout = 1");
    assert!(e.starts_with("g.toml:1:"), "{e}");
}

#[test]
fn unreadable_file() {
    let e = Config::load(Path::new("/nonexistent/g.toml"), &registry())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/g.toml: cannot read the config"),
        "{e}"
    );
}

const FASTCGI: &str = r#"[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:9000"
max_requests = 8
max_head_size = "32KiB"
max_connections = 64
max_body_size = "1MiB"
header_read_timeout = "5s"
"#;

#[test]
fn fastcgi_listener_keys() {
    let cfg = Config::parse(Path::new("g.toml"), FASTCGI, &registry()).unwrap();
    let l = &cfg.listen[0];
    assert_eq!(l.protocol, gateway_core::Protocol::FastCgi);
    assert_eq!(l.max_requests.as_ref().map(|m| *m.get_ref()), Some(8));
    assert_eq!(
        l.max_head_size.as_ref().map(|m| *m.get_ref()),
        Some(32 << 10)
    );
    assert_eq!((l.max_connections, l.max_body_size), (64, Some(1 << 20)));
    let cfg = Config::parse(
        Path::new("g.toml"),
        "[[listen]]\nprotocol = \"fastcgi\"\naddress = \"fd:0\"\n",
        &registry(),
    )
    .unwrap();
    assert_eq!(*cfg.listen[0].address.get_ref(), ListenAddress::Fd(0));
}

#[test]
fn uwsgi_listeners_on_every_address_kind() {
    for address in [
        "127.0.0.1:3031",
        "unix:/run/u.sock",
        "fd:3",
        "systemd:uwsgi",
    ] {
        let text = format!(
            "[[listen]]\nprotocol = \"uwsgi\"\naddress = \"{address}\"\nmax_head_size = \"8KiB\"\n"
        );
        let cfg = Config::parse(Path::new("g.toml"), &text, &registry()).unwrap();
        assert_eq!(
            cfg.listen[0].protocol,
            gateway_core::Protocol::Uwsgi,
            "{address}"
        );
        assert_eq!(cfg.listen[0].protocol.to_string(), "uwsgi");
    }
}

#[test]
fn fastcgi_keys_are_checked() {
    let e = error(&FASTCGI.replace("\"fastcgi\"", "\"http\""));
    assert!(
        e.starts_with("g.toml:4:16: max_requests applies to protocol = \"fastcgi\" only"),
        "{e}"
    );
    let e = error(&FASTCGI.replace("\"fastcgi\"", "\"scgi\""));
    assert!(
        e.starts_with("g.toml:4:16: max_requests applies to protocol = \"fastcgi\" only"),
        "{e}"
    );
    let e = error(&FASTCGI.replace("\"fastcgi\"", "\"uwsgi\""));
    assert!(
        e.starts_with("g.toml:4:16: max_requests applies to protocol = \"fastcgi\" only"),
        "{e}"
    );
    let e = error(&FASTCGI.replace("max_requests = 8", "max_requests = 0"));
    assert!(
        e.starts_with("g.toml:4:16: max_requests must be 1..=65535"),
        "{e}"
    );
    let e = error(&FASTCGI.replace("127.0.0.1:9000", "fd:stdin"));
    assert!(
        e.starts_with("g.toml:3:11: \"fd:stdin\": fd: takes a descriptor number"),
        "{e}"
    );
    let e = error(&FASTCGI.replace("\"32KiB\"", "\"lots\""));
    assert!(e.starts_with("g.toml:5:17: "), "{e}");
}

#[test]
fn workers_is_a_thread_count() {
    let cfg = Config::parse(Path::new("g.toml"), GOOD, &registry()).unwrap();
    assert_eq!(cfg.server.workers, 0, "0: one per core");
    let two = good_but(
        "shutdown_timeout = \"5s\"",
        "shutdown_timeout = \"5s\"\nworkers = 2",
    );
    let cfg = Config::parse(Path::new("g.toml"), &two, &registry()).unwrap();
    assert_eq!(cfg.server.workers, 2);
    let e = error(&good_but(
        "shutdown_timeout = \"5s\"",
        "shutdown_timeout = \"5s\"\nworkers = -1",
    ));
    assert!(e.starts_with("g.toml:4:11: "), "{e}");
}

#[test]
fn a_listener_speaks_a_socket_protocol() {
    let e = error(&good_but("protocol = \"http\"", "protocol = \"cgi\""));
    assert!(
        e.contains("g.toml:") && e.contains("unknown variant `cgi`"),
        "{e}"
    );
    assert!(e.contains("`http`, `fastcgi`, `scgi`, `uwsgi`"), "{e}");
}

#[test]
fn processes_is_a_count_of_worker_processes() {
    let path = Path::new("g.toml");
    assert_eq!(
        Config::parse(path, GOOD, &registry())
            .map(|c| c.server.processes)
            .ok(),
        Some(None)
    );
    let four = good_but("[server]\n", "[server]\nprocesses = 4\n");
    let plan = Config::parse_plan(path, &four, &registry()).map(|p| p.server.processes);
    assert_eq!(plan.ok(), Some(Some(4)));
    for bad in ["0", "1025", "-1"] {
        let src = good_but("[server]\n", &format!("[server]\nprocesses = {bad}\n"));
        let want =
            format!("g.toml:3:13: processes must be 1 to 1024 (worker processes), not {bad}");
        assert_eq!(error(&src), want);
    }
    let text = good_but("[server]\n", "[server]\nprocesses = \"4\"\n");
    assert!(
        error(&text).starts_with("g.toml:3:13: "),
        "{}",
        error(&text)
    );
}

#[test]
fn a_plan_builds_no_app_and_checks_the_rest() {
    let path = Path::new("g.toml");
    // Only the cgi factory knows that its root is missing: the plan does not run it.
    let cgi = good_but(
        "[apps.hi]\n",
        "[apps.cgi]\ntype = \"cgi\"\nroot = \"/nonexistent/cgi-bin\"\n\n[apps.hi]\n",
    );
    let plan = Config::parse_plan(path, &cgi, &registry()).map(|p| p.listen.len());
    assert_eq!(plan.ok(), Some(2));
    assert!(Config::parse(path, &cgi, &registry()).is_err());
    // What is not an app type's own is checked as by `parse`, with the same place.
    for broken in [
        good_but("type = \"hello\"", "type = \"nope\""),
        good_but("app = \"hi\"", "app = \"missing\""),
        good_but(
            "address = \"127.0.0.1:0\"\n",
            "address = \"127.0.0.1:0\"\nsocket_mode = \"0600\"\n",
        ),
    ] {
        let plan = Config::parse_plan(path, &broken, &registry())
            .err()
            .map(|e| e.to_string());
        assert_eq!(plan, Some(error(&broken)));
    }
}

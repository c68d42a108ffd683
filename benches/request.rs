//! The gateway's own work for one HTTP request, without IO: the environ built from a parsed
//! head, the smuggling guard, the daemon's app stack around `hello` (as `bench/run.sh` serves
//! it), and the response made ready for hyper. What is left of a request is hyper's and the
//! kernel's.
//!
//! `cargo bench --bench request 2>/dev/null` (the last one writes access lines to stderr)

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use gatewayd::Registry;
use gatewayd::config::Config;
use gatewayd::core::{App, Body};
use gatewayd::server::Reloadable;
use proto_http::{ConnEnviron, ConnInfo, into_http};

/// The app `bench/run.sh` serves (its listeners do not matter here).
const CONFIG: &str = include_str!("../bench/peers/hello.toml");

/// wrk's request, as hyper hands it over.
fn wrk_head() -> http::request::Parts {
    let (parts, ()) = http::Request::get("/")
        .header("host", "127.0.0.1:8080")
        .body(())
        .expect("a valid request")
        .into_parts();
    parts
}

/// A browser's request, with the headers a browser sends.
fn browser_head() -> http::request::Parts {
    let (parts, ()) = http::Request::get("/api/items?page=2&sort=desc")
        .header("host", "example.org")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-US,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br")
        .header("connection", "keep-alive")
        .header(
            "cookie",
            "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
        )
        .body(())
        .expect("a valid request")
        .into_parts();
    parts
}

fn request(c: &mut Criterion) {
    let mut registry = Registry::new();
    let stats = gateway_core::Stats::leak();
    gatewayd::apps::register_builtins(&mut registry, stats);
    let config =
        Config::parse(Path::new("bench.toml"), CONFIG, &registry).expect("the config is valid");
    let stack = Reloadable::new(config.router, stats);
    // Formatted once per connection, as the HTTP front-end does.
    let mut vars = ConnEnviron::new(&ConnInfo {
        local: Some(([127, 0, 0, 1], 8080).into()),
        remote: Some(([127, 0, 0, 1], 51234).into()),
    });
    // The app stack's deadline needs a runtime's timer; `hello` answers on its first poll.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _rt = rt.enter();

    for (name, head) in [("wrk", wrk_head()), ("browser", browser_head())] {
        c.bench_function(&format!("environ/{name}"), |b| {
            b.iter(|| vars.environ(black_box(&head)))
        });
        c.bench_function(&format!("guard/{name}"), |b| {
            b.iter(|| proto_http::ambiguity(black_box(&head)))
        });
        c.bench_function(&format!("request/{name}"), |b| {
            b.iter(|| {
                let refused = proto_http::ambiguity(black_box(&head));
                let env = vars.environ(&head);
                let res = stack.call(env, Body::empty()).now_or_never();
                (refused, res.map(into_http))
            })
        });
    }
    let env = vars.environ(&wrk_head());
    c.bench_function("stack/hello", |b| {
        b.iter(|| stack.call(env.clone(), Body::empty()).now_or_never())
    });
    c.bench_function("into_http/hello", |b| {
        b.iter_batched(
            || stack.call(env.clone(), Body::empty()).now_or_never(),
            |res| res.map(into_http),
            criterion::BatchSize::SmallInput,
        )
    });
    // Last: the logger is global. Its lines go to stderr (run with `2>/dev/null`).
    gatewayd::logging::init(gatewayd::logging::LogFormat::Text, "info", stats);
    let config =
        Config::parse(Path::new("bench.toml"), CONFIG, &registry).expect("the config is valid");
    let stack = Reloadable::new(config.router, stats);
    c.bench_function("stack/hello, access log on", |b| {
        b.iter(|| stack.call(env.clone(), Body::empty()).now_or_never())
    });
}

criterion_group!(benches, request);
criterion_main!(benches);

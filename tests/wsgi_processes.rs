//! Python apps under `processes = N`: each worker its own interpreter; a worker that crashes in
//! C or calls `os._exit` is replaced while the others serve; SIGHUP brings new Python code by
//! replacing the workers one by one.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Daemon, get};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway-wsgi/tests/apps");

fn config(python_path: &str, module: &str) -> String {
    format!(
        "[server]\nprocesses = 2\n\
         [[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [apps.py]\ntype = \"wsgi\"\nmodule = \"{module}\"\npython_path = [\"{python_path}\"]\n\
         threads = 2\n\
         [apps.status]\ntype = \"status\"\n\
         [[mount]]\npath = \"/py\"\napp = \"py\"\n\
         [[mount]]\npath = \"/status\"\napp = \"status\"\n"
    )
}

/// A config that mounts several callables of tests/apps/rules.py.
fn rules_config(callables: &[&str]) -> String {
    let mut config = String::from(
        "[server]\nprocesses = 2\n[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [apps.status]\ntype = \"status\"\n[[mount]]\npath = \"/status\"\napp = \"status\"\n",
    );
    for c in callables {
        config += &format!(
            "[apps.{c}]\ntype = \"wsgi\"\nmodule = \"rules:{c}\"\npython_path = [\"{APPS}\"]\n\
             threads = 2\n[[mount]]\npath = \"/{c}\"\napp = \"{c}\"\n"
        );
    }
    config
}

async fn worker_pids(d: &Daemon) -> BTreeSet<i64> {
    let page = get(d.addr(), "/status").await.json();
    let workers = page["workers"].as_array().cloned().unwrap_or_default();
    workers.iter().filter_map(|w| w["pid"].as_i64()).collect()
}

async fn until<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs `path` on fresh connections until both workers answered, or 200 tries.
async fn pids_answering(d: &Daemon) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let reply = get(d.addr(), "/pid").await;
        assert_eq!(reply.status, 200);
        seen.insert(reply.text());
        if seen.len() == 2 {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_has_its_interpreter_and_says_multiprocess() {
    let d = Daemon::start(&rules_config(&["pid", "environ_keys"]));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    assert_eq!(
        pids_answering(&d).await.len(),
        2,
        "both workers' interpreters answer"
    );
    let keys = get(d.addr(), "/environ_keys").await.json();
    assert_eq!(keys["wsgi.multiprocess"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_crashes_in_c_or_exits_is_replaced_while_the_other_serves() {
    let d = Daemon::start(&rules_config(&["pid", "segfault", "exit_now"]));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    for (path, death) in [
        ("/segfault", "was killed by SIGSEGV"),
        ("/exit_now", "exited with code 1"),
    ] {
        let before = worker_pids(&d).await;
        // The request dies with its worker: the client sees the connection end, no answer.
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let crashed = common::raw_exchange(d.addr(), raw.as_bytes(), |_| false).await;
        assert!(
            crashed.is_empty(),
            "{path}: {}",
            String::from_utf8_lossy(&crashed)
        );
        // The other worker serves meanwhile: every request succeeds.
        for _ in 0..20 {
            assert_eq!(get(d.addr(), "/pid").await.status, 200);
        }
        tokio::task::block_in_place(|| d.wait_log(death));
        until("a new worker in the dead one's place", async || {
            let now = worker_pids(&d).await;
            now.len() == 2 && now != before
        })
        .await;
        assert_eq!(pids_answering(&d).await.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_replaces_the_workers_and_the_new_code_answers() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("versioned.py");
    let app = |v: &str| {
        format!(
            "def application(environ, start_response):\n\
             \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
             \x20   return [b'{v}']\n"
        )
    };
    std::fs::write(&module, app("v1")).unwrap();
    let d = Daemon::start(&config(&dir.path().display().to_string(), "versioned"));
    until("two workers", async || worker_pids(&d).await.len() == 2).await;
    let before = worker_pids(&d).await;
    assert_eq!(get(d.addr(), "/py").await.text(), "v1");

    std::fs::write(&module, app("v2")).unwrap();
    let log_before = d
        .stderr_now()
        .matches("reloaded: every worker is new")
        .count();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    // Requests go on through the reload, and every one is answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while d
        .stderr_now()
        .matches("reloaded: every worker is new")
        .count()
        == log_before
    {
        assert!(Instant::now() < deadline, "no reload:\n{}", d.stderr_now());
        let reply = get(d.addr(), "/py").await;
        assert_eq!(reply.status, 200);
        assert!(
            ["v1", "v2"].contains(&reply.text().as_str()),
            "{}",
            reply.text()
        );
    }
    until("only new workers", async || {
        let now = worker_pids(&d).await;
        now.len() == 2 && now.is_disjoint(&before)
    })
    .await;
    for _ in 0..20 {
        assert_eq!(get(d.addr(), "/py").await.text(), "v2");
    }
}

//! The daemon's access log goes through a writer thread: every line reaches stderr by a normal
//! exit, lines show up within a second while idle, and lines dropped for want of room are
//! counted on the status page.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, gatewayd_bin, get};
use nix::sys::signal::Signal::SIGTERM;

const CONFIG: &str = "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
    [apps.hello]\ntype = \"hello\"\n\n[apps.status]\ntype = \"status\"\n\n\
    [[mount]]\npath = \"/\"\napp = \"hello\"\n\n[[mount]]\npath = \"/status\"\napp = \"status\"\n";

/// Access lines for `path` in the daemon's stderr.
fn access_lines(d: &Daemon, path: &str) -> usize {
    let needle = format!("path={path} ");
    d.stderr()
        .lines()
        .filter(|l| l.contains("gatewayd::access") && l.contains(&needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_access_line_is_written_by_sigterm() {
    let mut d = Daemon::start(CONFIG);
    const N: usize = 300;
    for _ in 0..N {
        assert_eq!(get(d.addr(), "/n").await.status, 200);
    }
    d.signal(SIGTERM);
    let status = tokio::task::block_in_place(|| d.wait(Duration::from_secs(10)));
    assert!(status.success());
    assert_eq!(access_lines(&d, "/n"), N, "{}", d.stderr());
}

#[tokio::test]
async fn lines_appear_within_a_second_while_idle() {
    let d = Daemon::start(CONFIG);
    // Let the startup lines go out first, so this line starts a batch of its own.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(d.addr(), "/idle").await.status, 200);
    let sent = Instant::now();
    while access_lines(&d, "/idle") == 0 {
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "no access line after 1 s:\n{}",
            d.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_status_page_shows_no_dropped_lines_normally() {
    let d = Daemon::start(CONFIG);
    for _ in 0..20 {
        assert_eq!(get(d.addr(), "/x").await.status, 200);
    }
    let doc = get(d.addr(), "/status").await.json();
    assert_eq!(doc["dropped_log_lines"], 0, "{doc}");
    let text = get(d.addr(), "/status?format=prometheus").await.text();
    assert!(
        text.contains("\ngatewayd_log_lines_dropped_total 0\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_past_a_full_buffer_are_counted_not_lost_silently() {
    // A 2 KiB buffer holds about a dozen access lines; a burst of requests overflows it
    // before the writer's next batch (100 ms after its first line).
    let buffer = ("GATEWAYD_LOG_BUFFER", "2048".to_owned());
    let mut d = Daemon::start_full(&gatewayd_bin(), CONFIG, &[], &[buffer]);
    const N: usize = 400;
    let addr = d.addr();
    let burst: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..N / 8 {
                    assert_eq!(get(addr, "/burst").await.status, 200);
                }
            })
        })
        .collect();
    for task in burst {
        task.await.unwrap();
    }
    // The writer empties the buffer; then the status page reads the count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let doc = get(addr, "/status").await.json();
    let dropped = doc["dropped_log_lines"].as_u64().expect("a count");
    let text = get(addr, "/status?format=prometheus").await.text();
    assert!(
        text.contains(&format!("\ngatewayd_log_lines_dropped_total {dropped}\n")),
        "{text}"
    );
    d.signal(SIGTERM);
    let status = tokio::task::block_in_place(|| d.wait(Duration::from_secs(10)));
    assert!(status.success());
    let written = access_lines(&d, "/burst");
    assert!(dropped > 0, "the burst fit: {written} lines written");
    assert_eq!(written as u64 + dropped, N as u64, "{}", d.stderr());
}

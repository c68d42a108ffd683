//! Every worker's counters, for the `status` page that any one of them answers.
//!
//! Each worker writes a copy of its counters to a file of its own, `PID.json`, in a directory
//! the master made (private to the user, removed with the master), at most every 100 ms and
//! only when they changed: written beside, then renamed over, so a reader never sees half a
//! file. The master removes a worker's file when it reaps the worker. A page then shows the
//! answering worker live and the others at most 100 ms behind. Files rather than shared memory:
//! no binary layout to keep in step, no torn reads, no unsafe mapping, and a worker that
//! crashes mid-write leaves only a stray temporary file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::{Protocol, Snapshot, Stats};
use serde::{Deserialize, Serialize};

use super::handoff::Master;

/// How often a worker's file may be rewritten.
const EVERY: Duration = Duration::from_millis(100);

/// Where this worker's peers are: set once when a worker starts, never in a single process.
static WORKER: OnceLock<Peers> = OnceLock::new();

/// A worker's view of the other workers.
#[derive(Debug)]
pub(crate) struct Peers {
    /// The status files' directory.
    pub dir: PathBuf,
    /// This worker's slot.
    pub slot: usize,
    pub master: Master,
}

/// Makes this process a worker whose status page covers every worker.
pub(crate) fn set_worker(peers: Peers) {
    let _ = WORKER.set(peers);
}

/// The other workers, when this process is one of a master's.
pub(crate) fn peers() -> Option<&'static Peers> {
    WORKER.get()
}

/// One worker's counters, as its file holds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub pid: u32,
    pub slot: usize,
    /// When the worker started, in seconds since the epoch.
    pub started: f64,
    /// `(protocol, status class, count)`.
    pub requests: Vec<(String, String, u64)>,
    pub in_flight: i64,
    pub bytes: u64,
    /// Cumulative counts, in the order of the latency buckets.
    pub latency: Vec<u64>,
    pub latency_sum: f64,
    pub connections: Vec<(String, i64)>,
    pub dropped_log_lines: u64,
}

impl Counters {
    /// This process's counters now.
    pub(crate) fn of(snapshot: &Snapshot, slot: usize, started: f64) -> Counters {
        Counters {
            pid: std::process::id(),
            slot,
            started,
            requests: snapshot
                .requests
                .iter()
                .map(|(p, class, n)| (p.as_str().to_owned(), (*class).to_owned(), *n))
                .collect(),
            in_flight: snapshot.in_flight,
            bytes: snapshot.bytes,
            latency: snapshot.latency.iter().map(|(_, n)| *n).collect(),
            latency_sum: snapshot.latency_sum,
            connections: snapshot.connections.clone(),
            dropped_log_lines: snapshot.dropped_log_lines,
        }
    }

    /// As a snapshot shaped like `like` (this process's own: the same protocols, classes and
    /// latency bounds).
    pub(crate) fn snapshot(&self, like: &Snapshot) -> Snapshot {
        let count = |p: &Protocol, class: &str| {
            self.requests
                .iter()
                .find(|(q, c, _)| q == p.as_str() && c == class)
                .map_or(0, |(_, _, n)| *n)
        };
        Snapshot {
            uptime: Duration::from_secs_f64((now() - self.started).max(0.0)),
            requests: like
                .requests
                .iter()
                .map(|(p, class, _)| (*p, *class, count(p, class)))
                .collect(),
            in_flight: self.in_flight,
            bytes: self.bytes,
            latency: like
                .latency
                .iter()
                .enumerate()
                .map(|(i, (le, _))| (*le, self.latency.get(i).copied().unwrap_or(0)))
                .collect(),
            latency_sum: self.latency_sum,
            connections: self.connections.clone(),
            dropped_log_lines: self.dropped_log_lines,
        }
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The file of worker `pid`.
pub(crate) fn file(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.json"))
}

/// Keeps this worker's file current, from a task of its runtime.
pub(crate) fn spawn_publisher(stats: &'static Stats, peers: &'static Peers) {
    let started = now();
    tokio::spawn(async move {
        let path = file(&peers.dir, std::process::id());
        let staged = peers.dir.join(format!(".{}.json", std::process::id()));
        let mut last = None;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snapshot = stats.snapshot();
            let counters = Counters::of(&snapshot, peers.slot, started);
            let Ok(text) = serde_json::to_vec(&counters) else {
                continue;
            };
            // Unchanged since the last write: nothing to write.
            if last.as_ref() == Some(&text) {
                continue;
            }
            let written =
                std::fs::write(&staged, &text).and_then(|()| std::fs::rename(&staged, &path));
            match written {
                Ok(()) => last = Some(text),
                Err(e) => {
                    static FAILED: gateway_core::Throttle = gateway_core::Throttle::new();
                    if let Some(suppressed) = FAILED.allow() {
                        tracing::warn!(path = %path.display(), error = %e, suppressed, "cannot write the status file");
                    }
                }
            }
        }
    });
}

/// Every worker's counters but `except`'s (a file that vanished meanwhile is skipped: its
/// worker was just reaped).
pub(crate) fn read_all(dir: &Path, except: u32) -> Vec<Counters> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut all: Vec<Counters> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|text| serde_json::from_slice::<Counters>(&text).ok())
        .filter(|c| c.pid != except)
        .collect();
    all.sort_by_key(|c| (c.slot, c.pid));
    all
}

/// The sum of `all`, shaped like the first; the uptime is `uptime`.
pub(crate) fn total(all: &[Snapshot], uptime: Duration) -> Option<Snapshot> {
    let mut sum = all.first()?.clone();
    sum.uptime = uptime;
    for s in &all[1..] {
        for (total, (_, _, n)) in sum.requests.iter_mut().zip(&s.requests) {
            total.2 += n;
        }
        sum.in_flight += s.in_flight;
        sum.bytes += s.bytes;
        for (total, (_, n)) in sum.latency.iter_mut().zip(&s.latency) {
            total.1 += n;
        }
        sum.latency_sum += s.latency_sum;
        for (name, n) in &s.connections {
            match sum.connections.iter_mut().find(|(m, _)| m == name) {
                Some(c) => c.1 += n,
                None => sum.connections.push((name.clone(), *n)),
            }
        }
        sum.dropped_log_lines += s.dropped_log_lines;
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_and_add_up() {
        let stats = Stats::new();
        stats.end(Protocol::Http, 200, 10, Duration::from_millis(3));
        stats
            .connections("http 127.0.0.1:1")
            .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        let mine = stats.snapshot();
        let text = serde_json::to_vec(&Counters::of(&mine, 0, now())).unwrap_or_default();
        let theirs: Counters = serde_json::from_slice(&text).expect("round trip");
        let theirs = theirs.snapshot(&mine);
        assert_eq!(theirs.requests, mine.requests);
        assert_eq!(theirs.latency, mine.latency);
        let sum = total(&[mine, theirs], Duration::from_secs(1)).expect("two");
        assert_eq!((sum.total(), sum.bytes), (2, 20));
        assert_eq!(sum.connections, [("http 127.0.0.1:1".to_owned(), 4)]);
    }
}

//! Live counters for the `status` page and systemd's STATUS line: requests by protocol and
//! status class, requests in flight, bytes sent, a latency histogram, open connections per
//! listener. Lock-free on the request path (atomics only), and striped: each thread counts in
//! its own cache line, so that two cores serving requests do not pass counters back and forth.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::Protocol;

/// The upper bounds of the latency histogram, in seconds (Prometheus' default buckets).
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const PROTOCOLS: [Protocol; 4] = [
    Protocol::Http,
    Protocol::FastCgi,
    Protocol::Scgi,
    Protocol::Cgi,
];

/// The process's counters.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    stripes: [Stripe; STRIPES],
    connections: Mutex<Vec<(String, Arc<AtomicI64>)>>,
}

/// Stripes: threads share one when there are more threads than stripes.
const STRIPES: usize = 8;

/// One thread's counters, alone in their cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    /// By protocol, then by status class: 1xx..5xx, and other.
    requests: [[AtomicU64; 6]; 4],
    /// Begun here minus ended here: a request may end on another thread, so only the sum of
    /// the stripes means anything.
    in_flight: AtomicI64,
    bytes: AtomicU64,
    /// `latency[i]` counts requests over the bucket before and at most `LATENCY_BUCKETS[i]`
    /// (the last: over every bound). One counter per request; [`Stats::snapshot`] sums them up
    /// into the cumulative histogram.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

/// This thread's stripe.
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    INDEX.with(|i| *i)
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Since the process started.
    pub uptime: Duration,
    /// `(protocol, status class, count)`; the class is `"1xx"` to `"5xx"` or `"other"`.
    pub requests: Vec<(Protocol, &'static str, u64)>,
    /// Requests whose response has not finished.
    pub in_flight: i64,
    /// Response body bytes sent.
    pub bytes: u64,
    /// `(upper bound in seconds, cumulative count)`; the last bound is infinity.
    pub latency: Vec<(f64, u64)>,
    /// The sum of all latencies, in seconds.
    pub latency_sum: f64,
    /// `(listener, open connections)`.
    pub connections: Vec<(String, i64)>,
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

impl Stats {
    fn new() -> Self {
        Stats {
            started: Instant::now(),
            stripes: Default::default(),
            connections: Mutex::new(Vec::new()),
        }
    }

    /// The counters of this process.
    pub fn global() -> &'static Stats {
        static STATS: OnceLock<Stats> = OnceLock::new();
        STATS.get_or_init(Stats::new)
    }

    /// A request starts; it stays in flight until the guard is dropped, however it ends (a
    /// cancelled call included).
    pub fn begin(&self) -> InFlight<'_> {
        self.stripe().in_flight.fetch_add(1, Relaxed);
        InFlight(self)
    }

    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    /// A request ended with `status` after `took`, having sent `bytes` of body.
    pub fn end(&self, protocol: Protocol, status: u16, bytes: u64, took: Duration) {
        let p = PROTOCOLS.iter().position(|&x| x == protocol).unwrap_or(0);
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        let stripe = self.stripe();
        stripe.requests[p][class].fetch_add(1, Relaxed);
        stripe.bytes.fetch_add(bytes, Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS.partition_point(|bound| *bound < secs);
        stripe.latency[bucket].fetch_add(1, Relaxed);
        stripe
            .latency_sum_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Requests served so far (cheaper than a snapshot).
    pub fn served(&self) -> u64 {
        self.stripes
            .iter()
            .flat_map(|s| s.requests.iter().flatten())
            .map(|n| n.load(Relaxed))
            .sum()
    }

    /// Requests whose response has not finished.
    pub fn in_flight(&self) -> i64 {
        self.stripes.iter().map(|s| s.in_flight.load(Relaxed)).sum()
    }

    /// One counter summed over the stripes.
    fn sum(&self, counter: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes.iter().map(|s| counter(s).load(Relaxed)).sum()
    }

    /// The open-connection gauge of a listener (made on first use).
    pub fn connections(&self, listener: &str) -> Arc<AtomicI64> {
        let mut all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, gauge)) = all.iter().find(|(name, _)| name == listener) {
            return gauge.clone();
        }
        let gauge = Arc::new(AtomicI64::new(0));
        all.push((listener.to_owned(), gauge.clone()));
        gauge
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let mut requests = Vec::new();
        for (pi, p) in PROTOCOLS.iter().enumerate() {
            for (ci, class) in CLASSES.iter().enumerate() {
                requests.push((*p, *class, self.sum(|s| &s.requests[pi][ci])));
            }
        }
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot {
            uptime: self.started.elapsed(),
            requests,
            in_flight: self.in_flight(),
            bytes: self.sum(|s| &s.bytes),
            latency: bounds
                .enumerate()
                .scan(0, |sum, (i, b)| {
                    *sum += self.sum(|s| &s.latency[i]);
                    Some((b, *sum))
                })
                .collect(),
            latency_sum: self.sum(|s| &s.latency_sum_micros) as f64 / 1e6,
            connections: connections
                .iter()
                .map(|(n, g)| (n.clone(), g.load(Relaxed)))
                .collect(),
        }
    }
}

/// A request in flight; dropping it ends that.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.stripe().in_flight.fetch_sub(1, Relaxed);
    }
}

impl Snapshot {
    /// All requests served so far.
    pub fn total(&self) -> u64 {
        self.requests.iter().map(|(_, _, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histogram() {
        let stats = Stats::new();
        let (a, b) = (stats.begin(), stats.begin());
        assert_eq!(stats.snapshot().in_flight, 2);
        stats.end(Protocol::FastCgi, 200, 10, Duration::from_millis(3));
        stats.end(Protocol::Http, 503, 5, Duration::from_secs(20));
        drop((a, b));
        let s = stats.snapshot();
        assert_eq!((s.in_flight, s.bytes, s.total()), (0, 15, 2));
        assert!(s.requests.contains(&(Protocol::FastCgi, "2xx", 1)));
        assert!(s.requests.contains(&(Protocol::Http, "5xx", 1)));
        assert_eq!(s.latency[0], (0.005, 1));
        assert_eq!(s.latency[10], (10.0, 1));
        assert_eq!(s.latency[11].1, 2);
        let gauge = stats.connections("http 127.0.0.1:80");
        gauge.fetch_add(3, Relaxed);
        assert_eq!(
            stats.snapshot().connections,
            [("http 127.0.0.1:80".to_owned(), 3)]
        );
    }
}

//! Live counters for the `status` page and systemd's STATUS line: requests by protocol and
//! status class, requests in flight, bytes sent, a latency histogram, open connections per
//! listener. Lock-free on the request path (atomics only), and striped: each thread counts in
//! its own cache line, so that two cores serving requests do not pass counters back and forth,
//! and a thread that has a stripe to itself counts without locked instructions.

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Protocol;

/// The upper bounds of the latency histogram, in seconds (Prometheus' default buckets).
pub(crate) const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`LATENCY_BUCKETS`] in microseconds, for a request's bucket found without floats.
const BUCKET_MICROS: [u64; LATENCY_BUCKETS.len()] = {
    let mut micros = [0; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < micros.len() {
        micros[i] = (LATENCY_BUCKETS[i] * 1e6) as u64;
        i += 1;
    }
    micros
};

/// In the order of their discriminants, which index the counters.
const PROTOCOLS: [Protocol; 5] = [
    Protocol::Http,
    Protocol::FastCgi,
    Protocol::Scgi,
    Protocol::Cgi,
    Protocol::Uwsgi,
];

/// A server's counters: made once by whoever runs the server ([`Stats::leak`]) and handed to
/// each part that counts ([`AccessLog`](crate::AccessLog), the listeners) or reads (a status
/// page). Not a global: two servers in one process, two tests, count apart.
///
/// ```
/// use gateway_core::Stats;
///
/// let stats = Stats::leak();
/// drop(stats.begin());
/// assert_eq!(stats.snapshot().in_flight, 0);
/// ```
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    stripes: [Stripe; STRIPES],
    connections: Mutex<Vec<(String, Arc<AtomicI64>)>>,
    /// Log lines the log writer had no room for: counted, so that none is lost silently.
    dropped_log_lines: AtomicU64,
}

/// Stripes: threads beyond the first seven share the last.
const STRIPES: usize = 8;

/// One thread's counters, alone in their cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    /// By protocol, then by status class: 1xx..5xx, and other.
    requests: [[AtomicU64; 6]; PROTOCOLS.len()],
    /// Begun here minus ended here, in two's complement: a request may end on another thread,
    /// so only the sum of the stripes means anything.
    in_flight: AtomicU64,
    bytes: AtomicU64,
    /// `latency[i]` counts requests over the bucket before and at most `LATENCY_BUCKETS[i]`
    /// (the last: over every bound). One counter per request; [`Stats::snapshot`] sums them up
    /// into the cumulative histogram.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

/// This thread's stripe: one of its own while there is one free, counted with plain loads and
/// stores; otherwise the last, which the threads beyond the first `STRIPES - 1` share.
#[derive(Clone, Copy)]
struct Slot {
    index: usize,
    own: bool,
}

/// Which of the stripes `0..STRIPES - 1` a thread holds.
static CLAIMED: [AtomicBool; STRIPES - 1] = [const { AtomicBool::new(false) }; STRIPES - 1];

/// A thread's claim, given back when it exits (a blocking-pool thread, say), so that a later
/// thread can own the stripe: the counts stay, and only one thread at a time writes them.
struct Claim(Slot);

impl Claim {
    fn new() -> Self {
        let free = CLAIMED
            .iter()
            .position(|c| c.compare_exchange(false, true, Acquire, Relaxed).is_ok());
        Claim(match free {
            Some(index) => Slot { index, own: true },
            None => Slot {
                index: STRIPES - 1,
                own: false,
            },
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0.own {
            CLAIMED[self.0.index].store(false, Release);
        }
    }
}

fn slot() -> Slot {
    thread_local! {
        static CLAIM: Claim = Claim::new();
    }
    // During the thread's teardown, after its claim is gone: the shared stripe.
    CLAIM.try_with(|c| c.0).unwrap_or(Slot {
        index: STRIPES - 1,
        own: false,
    })
}

/// Adds `n` to a counter of this thread's stripe.
#[inline]
fn add(counter: &AtomicU64, n: u64, own: bool) {
    match own {
        true => counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed),
        false => {
            counter.fetch_add(n, Relaxed);
        }
    }
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
    /// Log lines dropped because the log writer was behind.
    pub dropped_log_lines: u64,
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Counters from zero.
    pub fn new() -> Self {
        Stats {
            started: Instant::now(),
            stripes: Default::default(),
            connections: Mutex::new(Vec::new()),
            dropped_log_lines: AtomicU64::new(0),
        }
    }

    /// New counters for the rest of the process's life: a request's count then borrows them,
    /// with no reference count on a line every core writes.
    pub fn leak() -> &'static Stats {
        Box::leak(Box::new(Stats::new()))
    }

    /// A request starts; it stays in flight until the guard is dropped, however it ends (a
    /// cancelled call included).
    pub fn begin(&self) -> InFlight<'_> {
        let (stripe, own) = self.stripe();
        add(&stripe.in_flight, 1, own);
        InFlight(self)
    }

    /// This thread's stripe, and whether it is the thread's own.
    fn stripe(&self) -> (&Stripe, bool) {
        let Slot { index, own } = slot();
        (&self.stripes[index], own)
    }

    /// A request ended with `status` after `took`, having sent `bytes` of body.
    pub fn end(&self, protocol: Protocol, status: u16, bytes: u64, took: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_MICROS.partition_point(|bound| *bound < micros);
        let (stripe, own) = self.stripe();
        add(&stripe.requests[protocol as usize][class], 1, own);
        add(&stripe.bytes, bytes, own);
        add(&stripe.latency[bucket], 1, own);
        add(&stripe.latency_sum_micros, micros, own);
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
        // Two's complement: a stripe's count below zero reads back as one.
        let sum = self.stripes.iter().map(|s| s.in_flight.load(Relaxed));
        sum.fold(0u64, u64::wrapping_add) as i64
    }

    /// One counter summed over the stripes.
    fn sum(&self, counter: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes.iter().map(|s| counter(s).load(Relaxed)).sum()
    }

    /// A log line was dropped (the log writer is behind); rare, so one shared counter.
    pub fn log_line_dropped(&self) {
        self.dropped_log_lines.fetch_add(1, Relaxed);
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
            dropped_log_lines: self.dropped_log_lines.load(Relaxed),
        }
    }
}

/// A request in flight; dropping it ends that.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    /// The counters it is counted in.
    pub fn stats(&self) -> &'a Stats {
        self.0
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let (stripe, own) = self.0.stripe();
        add(&stripe.in_flight, 1u64.wrapping_neg(), own); // minus one
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
    fn more_threads_than_stripes_lose_no_count() {
        // Twelve threads: seven own a stripe, five share the last; run twice so that the
        // second round's threads take over the stripes the first round's gave back.
        let stats = Stats::new();
        for _ in 0..2 {
            std::thread::scope(|s| {
                for _ in 0..12 {
                    s.spawn(|| {
                        for _ in 0..20_000 {
                            let _in_flight = stats.begin();
                            stats.end(Protocol::Http, 200, 1, Duration::from_micros(1));
                        }
                    });
                }
            });
        }
        let s = stats.snapshot();
        assert_eq!((s.total(), s.bytes, s.in_flight), (480_000, 480_000, 0));
    }

    #[test]
    fn counts_and_histogram() {
        for (i, p) in PROTOCOLS.iter().enumerate() {
            assert_eq!(*p as usize, i, "a protocol indexes its own counters");
        }
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
        assert_eq!(s.dropped_log_lines, 0);
        stats.log_line_dropped();
        assert_eq!(stats.snapshot().dropped_log_lines, 1);
        let gauge = stats.connections("http 127.0.0.1:80");
        gauge.fetch_add(3, Relaxed);
        assert_eq!(
            stats.snapshot().connections,
            [("http 127.0.0.1:80".to_owned(), 3)]
        );
    }
}

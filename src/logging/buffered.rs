//! The daemon's log writer. A request's thread appends its whole line to a shared buffer and
//! makes no system call; one writer thread empties the buffer to stderr at most 100 ms after
//! its first line (sooner once it holds 64 KiB), so the access log costs a copy, not a `write`.
//!
//! Lines stay whole and in order: only the writer thread and [`flush`] write, one batch at a
//! time, and journald's stream reader splits on newlines, not on writes. A line that finds the
//! buffer full (stderr is slower than the requests) is dropped and counted in
//! [`Stats`](gateway_core::Stats), which the status page shows: never lost silently.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use gateway_core::Stats;
use tracing_subscriber::fmt::MakeWriter;

/// How long the first line of a batch waits for others.
const COALESCE: Duration = Duration::from_millis(100);
/// A batch this big is written at once.
const EAGER: usize = 64 * 1024;
/// Past this many buffered bytes, lines are dropped: seconds of lines at any realistic rate.
const CAPACITY: usize = 8 << 20;

/// The installed writer's buffer, for [`flush`].
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

/// A [`MakeWriter`] whose lines a background thread writes to stderr.
#[derive(Clone)]
pub(crate) struct Buffered(Arc<Shared>);

struct Shared {
    /// Lines not yet taken by a writer.
    pending: Mutex<Vec<u8>>,
    /// Wakes the writer thread: a first line, or a batch worth writing now.
    wake: Condvar,
    /// The batch being written, swapped with `pending`; its lock orders the batches.
    writing: Mutex<Vec<u8>>,
    capacity: usize,
    /// Where a line dropped for want of room is counted.
    stats: &'static Stats,
}

impl Buffered {
    /// Starts the writer thread. `GATEWAYD_LOG_BUFFER` (bytes; undocumented) shrinks the
    /// buffer, for tests that make it overflow.
    pub(crate) fn start(stats: &'static Stats) -> std::io::Result<Buffered> {
        let capacity = std::env::var("GATEWAYD_LOG_BUFFER")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CAPACITY);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(EAGER)),
            wake: Condvar::new(),
            writing: Mutex::new(Vec::with_capacity(EAGER)),
            capacity,
            stats,
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("gatewayd-log".into())
            .spawn(move || worker.run())?;
        let _ = INSTALLED.set(shared.clone());
        Ok(Buffered(shared))
    }
}

impl Buffered {
    /// Appends one whole line, as an event's writer would.
    pub(crate) fn push(&self, line: &[u8]) {
        let _ = self.make_writer().write_all(line);
    }
}

/// Writes every buffered line now: at exit, and before anything else goes to stderr.
pub(crate) fn flush() {
    if let Some(shared) = INSTALLED.get() {
        shared.write_pending();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The writer thread: sleeps while nothing is buffered, then lets a batch gather.
    fn run(&self) {
        let mut pending = lock(&self.pending);
        loop {
            pending = self
                .wake
                .wait_while(pending, |p| p.is_empty())
                .unwrap_or_else(|p| p.into_inner());
            pending = self
                .wake
                .wait_timeout_while(pending, COALESCE, |p| p.len() < EAGER)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            drop(pending);
            self.write_pending();
            pending = lock(&self.pending);
        }
    }

    /// Takes the buffered lines and writes them; errors are dropped (stderr has no one to tell).
    fn write_pending(&self) {
        let mut batch = lock(&self.writing);
        std::mem::swap(&mut *lock(&self.pending), &mut *batch);
        if batch.is_empty() {
            return;
        }
        let _ = std::io::stderr().lock().write_all(&batch);
        batch.clear();
        // A burst's buffer is given back rather than kept for ever.
        batch.shrink_to(EAGER);
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        let pending = lock(&self.0.pending);
        if pending.len() >= self.0.capacity {
            drop(pending);
            self.0.stats.log_line_dropped();
            return Line::Dropped;
        }
        Line::Kept {
            start: pending.len(),
            pending,
            wake: &self.0.wake,
        }
    }
}

/// One event's line: appended to the buffer under its lock, so no other line comes between its
/// parts; or dropped, already counted.
pub(crate) enum Line<'a> {
    Kept {
        pending: MutexGuard<'a, Vec<u8>>,
        start: usize,
        wake: &'a Condvar,
    },
    Dropped,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Line::Kept { pending, .. } = self {
            pending.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if let Line::Kept {
            pending,
            start,
            wake,
        } = self
        {
            // Only the first line of a batch and the one that makes it big wake the writer
            // (a notify is a system call).
            let len = pending.len();
            if (*start == 0 && len > 0) || (*start < EAGER && len >= EAGER) {
                wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(capacity: usize) -> Buffered {
        Buffered(Arc::new(Shared {
            pending: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            writing: Mutex::new(Vec::new()),
            capacity,
            stats: Stats::leak(),
        }))
    }

    #[test]
    fn lines_are_whole_and_past_capacity_dropped_and_counted() {
        let b = shared(10);
        {
            let mut line = b.make_writer();
            line.write_all(b"abc").unwrap();
            line.write_all(b"defgh\n").unwrap();
        }
        b.make_writer().write_all(b"ij\n").unwrap();
        // 12 bytes buffered, over the capacity: this one is dropped.
        b.make_writer().write_all(b"kl\n").unwrap();
        assert_eq!(&*lock(&b.0.pending), b"abcdefgh\nij\n");
        assert_eq!(b.0.stats.snapshot().dropped_log_lines, 1);
    }
}

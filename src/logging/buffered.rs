//! The daemon's log writer. A request's thread appends its whole line to a buffer and makes no
//! system call; one writer thread empties the buffers to stderr at most 100 ms after their
//! first line (sooner once one holds 64 KiB), so the access log costs a copy, not a `write`.
//!
//! Access lines go to a buffer of the thread's own ([`Buffered::push_with`]), so that the runtime's
//! threads, each writing a line per request, never share a lock or a cache line; other lines
//! (events, rarer) go to one shared buffer. A runtime worker's access lines first gather in its
//! own memory, and reach its buffer when it goes idle ([`parked`]: an idle worker holds no
//! line), at 16 KiB, within 16 lines of the first turning 100 ms old (a worker too busy to
//! park), or when it ends. (A worker stuck in one poll past the runtime's shutdown, 200 ms
//! after the drain, ends with the process, and its last lines with it.)
//!
//! A batch is the shared lines, then each thread's: in order within a thread, but across
//! threads a batch's access lines can be out of time order, as with nginx's
//! `access_log … buffer=` or Apache's `BufferedLogs`. Each line carries its own timestamp.
//!
//! Lines stay whole: only the writer thread and [`flush`] write, one batch at a time, and
//! journald's stream reader splits on newlines, not on writes. A line that finds its buffer full
//! (stderr is slower than the requests) is dropped and counted in
//! [`Stats`](gateway_core::Stats), which the status page shows: never lost silently.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gateway_core::Stats;
use tracing_subscriber::fmt::MakeWriter;

/// How long the first line of a batch waits for others.
const COALESCE: Duration = Duration::from_millis(100);
/// A batch this big is written at once.
const EAGER: usize = 64 * 1024;
/// A buffer's room: a batch and the line that made it eager, without growing. A buffer that
/// a burst grew past `KEEP` is given back at its next write rather than kept for ever;
/// below that it keeps its room (growing and shrinking at each batch cost page faults and
/// other cores' TLB flushes).
const ROOM: usize = 2 * EAGER;
const KEEP: usize = 1 << 20;
/// Past this many buffered bytes (in the shared buffer, or in one thread's), lines are dropped:
/// seconds of lines at any realistic rate. (So all buffers together hold at most this much per
/// thread that writes access lines, and once more for the shared one.)
const CAPACITY: usize = 8 << 20;

/// The installed writer's buffers, for [`flush`].
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

/// A [`MakeWriter`] whose lines a background thread writes to stderr.
#[derive(Clone)]
pub(crate) struct Buffered(Arc<Shared>);

struct Shared {
    /// Lines not yet taken by a writer, and what the writer thread waits for.
    pending: Mutex<Pending>,
    /// Wakes the writer thread: a first line, or a batch worth writing now.
    wake: Condvar,
    /// The batch being written, taken from `pending` and the threads' buffers; its lock orders
    /// the batches.
    writing: Mutex<Batch>,
    /// Each thread's access lines (see [`Buffered::push_with`]).
    threads: Mutex<Vec<Arc<ThreadLines>>>,
    capacity: usize,
    /// Where a line dropped for want of room is counted.
    stats: &'static Stats,
}

#[derive(Default)]
pub(crate) struct Pending {
    lines: Vec<u8>,
    /// A thread's buffer has had its first line since the last batch.
    threads_dirty: bool,
    /// A thread's buffer is worth writing now.
    eager: bool,
}

/// One thread's access lines; locked by the writer only to take them, once a batch.
struct ThreadLines(Mutex<Slot>);

struct Slot {
    lines: Vec<u8>,
    /// Its thread has ended, after handing over its last lines: once they are taken, the slot
    /// leaves the list. (Under the same lock as the lines, so none can come after.)
    closed: bool,
}

/// The buffers of one batch, swapped out whole (the writer copies nothing), and the emptied
/// ones it hands back.
#[derive(Default)]
struct Batch {
    shared: Vec<u8>,
    threads: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.threads.is_empty()
    }

    /// Empties the batch, keeping its buffers for the next.
    fn clear(&mut self) {
        for mut buf in self
            .threads
            .drain(..)
            .chain([std::mem::take(&mut self.shared)])
        {
            buf.clear();
            if buf.capacity() > KEEP {
                buf.shrink_to(ROOM);
            }
            self.spare.push(buf);
        }
        self.shared = self.spare.pop().unwrap_or_default();
    }
}

impl Buffered {
    /// Starts the writer thread. `GATEWAYD_LOG_BUFFER` (bytes; undocumented) shrinks the
    /// buffers, for tests that make them overflow.
    pub(crate) fn start(stats: &'static Stats) -> std::io::Result<Buffered> {
        let capacity = std::env::var("GATEWAYD_LOG_BUFFER")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CAPACITY);
        let buffered = Buffered::new(capacity, stats);
        let worker = buffered.0.clone();
        std::thread::Builder::new()
            .name("gatewayd-log".into())
            .spawn(move || worker.run())?;
        let _ = INSTALLED.set(buffered.0.clone());
        Ok(buffered)
    }

    fn new(capacity: usize, stats: &'static Stats) -> Buffered {
        Buffered(Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(ROOM),
                ..Pending::default()
            }),
            wake: Condvar::new(),
            writing: Mutex::new(Batch::default()),
            threads: Mutex::new(Vec::new()),
            capacity,
            stats,
        }))
    }

    /// Appends one whole line to this thread's own buffer: the one `write` appends to the
    /// buffer it is given (formatted in place, not into a buffer of its own and then copied),
    /// or nothing. Only the first line of a batch and the one that makes it big touch anything
    /// shared (a notify is a system call).
    ///
    /// On a runtime worker (one that has [`parked`]), lines first gather in memory no other
    /// thread touches, and are copied to the thread's buffer when it parks (goes idle) or once
    /// they reach 16 KiB: a line handed to another core costs that core's cache lines, about
    /// 0.2 µs a request when each line went on its own (a lock's fence waiting on the stores).
    pub(crate) fn push_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut write = Some(write);
        let pushed = MINE.try_with(|mine| {
            let mut mine = mine.try_borrow_mut().ok()?;
            let mine = match &mut *mine {
                Some(mine) if Arc::ptr_eq(&mine.shared, &self.0) => mine,
                // A former writer's `Mine` (tests make several) hands its lines over as it goes.
                other => other.insert(Mine::new(&self.0)),
            };
            mine.push_with(write.take()?);
            Some(())
        });
        // A thread being torn down: its line goes to the shared buffer.
        if let (false, Some(write)) = (matches!(pushed, Ok(Some(()))), write) {
            let mut line = Vec::new();
            write(&mut line);
            let _ = self.make_writer().write_all(&line);
        }
    }
}

/// A runtime worker's lines gather in its own memory up to this size between parks.
const HANDOFF: usize = 16 * 1024;

thread_local! {
    /// This thread's buffer, with the writer it belongs to (one in the daemon; tests make more).
    static MINE: RefCell<Option<Mine>> = const { RefCell::new(None) };
    /// Whether this thread is a runtime worker, which says when it goes idle ([`parked`]).
    static PARKS: Cell<bool> = const { Cell::new(false) };
}

/// One thread's side of its buffer.
struct Mine {
    shared: Arc<Shared>,
    lines: Arc<ThreadLines>,
    /// A worker's lines since it last parked: no other thread reads or writes this memory.
    local: Vec<u8>,
    /// When `local`'s first line came.
    since: Instant,
    /// Lines pushed, for reading the clock only now and then.
    pushed: u32,
}

impl Mine {
    /// This thread's buffer for `shared`, put on its list.
    fn new(shared: &Arc<Shared>) -> Mine {
        let lines = Arc::new(ThreadLines(Mutex::new(Slot {
            lines: Vec::with_capacity(ROOM),
            closed: false,
        })));
        lock(&shared.threads).push(lines.clone());
        Mine {
            shared: shared.clone(),
            lines,
            local: Vec::new(),
            since: Instant::now(),
            pushed: 0,
        }
    }

    fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let parks = PARKS.try_with(Cell::get).unwrap_or(false);
        let start = self.local.len();
        if parks && start == 0 {
            self.local.reserve(2 * HANDOFF);
            self.since = Instant::now();
        }
        write(&mut self.local);
        if !parks {
            // Not a runtime worker: `local` is only where the line is formatted.
            self.hand_over(&self.local[start..]);
            self.local.truncate(start);
            return;
        }
        // A worker too busy to park still hands its lines over within the batch time (the
        // clock read every 16 lines).
        self.pushed = self.pushed.wrapping_add(1);
        if self.local.len() >= HANDOFF
            || (self.pushed.is_multiple_of(16) && self.since.elapsed() >= COALESCE)
        {
            self.hand_over_local();
        }
    }

    /// Appends whole lines to this thread's buffer, where the writer takes them.
    fn hand_over(&self, bytes: &[u8]) {
        let mut slot = lock(&self.lines.0);
        let buf = &mut slot.lines;
        let before = buf.len();
        if before >= self.shared.capacity {
            drop(slot);
            for _ in bytes.iter().filter(|&&b| b == b'\n') {
                self.shared.stats.log_line_dropped();
            }
            return;
        }
        buf.extend_from_slice(bytes);
        let after = buf.len();
        drop(slot);
        if wakes_the_writer(before, after) {
            let mut pending = lock(&self.shared.pending);
            pending.threads_dirty = true;
            pending.eager |= after >= EAGER;
            self.shared.wake.notify_one();
        }
    }

    fn hand_over_local(&mut self) {
        if !self.local.is_empty() {
            self.hand_over(&self.local);
            self.local.clear();
        }
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        self.hand_over_local();
        lock(&self.lines.0).closed = true;
    }
}

/// A runtime worker goes idle: its lines go to the writer now, and from now on its lines
/// gather between parks (see [`Buffered::push_with`]). For tokio's `on_thread_park`.
pub(crate) fn parked() {
    let _ = PARKS.try_with(|parks| parks.set(true));
    hand_over_local();
}

/// A runtime thread ends: its lines go to the writer (before the runtime's shutdown returns and
/// the last [`flush`]). For tokio's `on_thread_stop`.
pub(crate) fn stopping() {
    hand_over_local();
}

fn hand_over_local() {
    let _ = MINE.try_with(|mine| {
        if let Ok(mut mine) = mine.try_borrow_mut()
            && let Some(mine) = mine.as_mut()
        {
            mine.hand_over_local();
        }
    });
}

/// Writes every buffered line now: at exit, and before anything else goes to stderr. This
/// thread's own lines are included; another worker's are once it has parked or stopped.
pub(crate) fn flush() {
    hand_over_local();
    if let Some(shared) = INSTALLED.get() {
        shared.write_pending();
    }
}

/// Whether a buffer that went from `before` to `after` bytes wakes the writer thread: only
/// for a batch's first line and for the one that makes it big (a notify is a system call).
fn wakes_the_writer(before: usize, after: usize) -> bool {
    (before == 0 && after > 0) || (before < EAGER && after >= EAGER)
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
                .wait_while(pending, |p| p.lines.is_empty() && !p.threads_dirty)
                .unwrap_or_else(|p| p.into_inner());
            pending = self
                .wake
                .wait_timeout_while(pending, COALESCE, |p| p.lines.len() < EAGER && !p.eager)
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
        self.take(&mut batch);
        if batch.is_empty() {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        for buf in std::iter::once(&batch.shared).chain(&batch.threads) {
            let _ = stderr.write_all(buf);
        }
        drop(stderr);
        batch.clear();
    }

    /// Swaps the shared lines, then each thread's, into `batch`, leaving empty buffers behind.
    fn take(&self, batch: &mut Batch) {
        {
            let mut pending = lock(&self.pending);
            std::mem::swap(&mut pending.lines, &mut batch.shared);
            // Cleared before the threads' buffers are taken: a line pushed after its buffer
            // was taken finds it empty and says so again.
            pending.threads_dirty = false;
            pending.eager = false;
        }
        lock(&self.threads).retain(|thread| {
            let mut slot = lock(&thread.0);
            if !slot.lines.is_empty() {
                let empty = batch
                    .spare
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(ROOM));
                batch
                    .threads
                    .push(std::mem::replace(&mut slot.lines, empty));
            }
            !slot.closed
        });
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        let pending = lock(&self.0.pending);
        if pending.lines.len() >= self.0.capacity {
            drop(pending);
            self.0.stats.log_line_dropped();
            return Line::Dropped;
        }
        Line::Kept {
            start: pending.lines.len(),
            pending,
            wake: &self.0.wake,
        }
    }
}

/// One event's line: appended to the shared buffer under its lock, so no other line comes
/// between its parts; or dropped, already counted.
pub(crate) enum Line<'a> {
    Kept {
        pending: MutexGuard<'a, Pending>,
        start: usize,
        wake: &'a Condvar,
    },
    Dropped,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Line::Kept { pending, .. } = self {
            pending.lines.extend_from_slice(buf);
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
            && wakes_the_writer(*start, pending.lines.len())
        {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
impl Buffered {
    fn push(&self, line: &[u8]) {
        self.push_with(|buf| buf.extend_from_slice(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(capacity: usize) -> Buffered {
        Buffered::new(capacity, Stats::leak())
    }

    fn batch(b: &Buffered) -> Vec<u8> {
        let mut batch = Batch::default();
        b.0.take(&mut batch);
        let bytes = [&batch.shared[..]]
            .into_iter()
            .chain(batch.threads.iter().map(|t| &t[..]));
        let bytes = bytes.flatten().copied().collect();
        batch.clear();
        bytes
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
        assert_eq!(lock(&b.0.pending).lines, b"abcdefgh\nij\n");
        assert_eq!(b.0.stats.snapshot().dropped_log_lines, 1);
    }

    #[test]
    fn each_threads_lines_are_taken_whole_and_in_order_after_the_shared_ones() {
        let b = shared(1 << 20);
        b.push(b"main 1\n");
        let other = b.clone();
        // `join` (not a scope) waits for the thread's locals to be dropped too.
        std::thread::spawn(move || {
            for i in 0..100 {
                other.push(format!("other {i}\n").as_bytes());
            }
        })
        .join()
        .unwrap();
        b.make_writer().write_all(b"event\n").unwrap();
        b.push(b"main 2\n");
        let text = String::from_utf8(batch(&b)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "event");
        let mine: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("main"))
            .collect();
        assert_eq!(mine, ["main 1", "main 2"]);
        let other: Vec<String> = (0..100).map(|i| format!("other {i}")).collect();
        let theirs: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("other"))
            .collect();
        assert_eq!(theirs, other);
        assert_eq!(lines.len(), 103);
        // The ended thread's buffer, emptied, has left the list; this thread's stays.
        assert_eq!(lock(&b.0.threads).len(), 1);
        assert!(batch(&b).is_empty());
    }

    /// A worker thread run in step with the test: each `pause` there waits for one `step`
    /// here.
    struct InStep {
        go: std::sync::mpsc::Sender<()>,
        paused: std::sync::mpsc::Receiver<()>,
        thread: std::thread::JoinHandle<()>,
        started: Cell<bool>,
    }

    impl InStep {
        fn run(worker: impl FnOnce(&dyn Fn()) + Send + 'static) -> InStep {
            let (done, paused) = std::sync::mpsc::channel();
            let (go, resume) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                worker(&|| {
                    done.send(()).unwrap();
                    resume.recv().unwrap();
                })
            });
            let started = Cell::new(false);
            InStep {
                go,
                paused,
                thread,
                started,
            }
        }

        /// Lets the worker on (after its last pause) and waits for its next pause.
        fn step(&self) {
            if self.started.replace(true) {
                self.go.send(()).unwrap();
            }
            self.paused.recv().unwrap();
        }

        /// Lets the worker finish, and waits for its thread to end (its locals dropped).
        fn end(self) {
            let _ = self.go.send(());
            self.thread.join().unwrap();
        }
    }

    #[test]
    fn a_workers_lines_go_over_when_it_parks_or_has_16_kib_or_ends() {
        let b = shared(1 << 20);
        let mine = b.clone();
        let worker = InStep::run(move |pause| {
            parked();
            for i in 0..3 {
                mine.push(format!("w {i}\n").as_bytes());
            }
            pause();
            parked();
            pause();
            let line = [&[b'x'; 99][..], b"\n"].concat();
            for _ in 0..HANDOFF / 100 + 1 {
                mine.push(&line);
            }
            mine.push(b"last\n");
            pause();
        });
        worker.step();
        assert!(batch(&b).is_empty(), "not handed over before the park");
        worker.step();
        assert_eq!(batch(&b), b"w 0\nw 1\nw 2\n");
        worker.step();
        let big = batch(&b);
        assert!(
            big.len() >= HANDOFF && big.ends_with(b"x\n"),
            "{}",
            big.len()
        );
        worker.end();
        assert_eq!(batch(&b), b"last\n", "handed over as the thread ends");
    }

    #[test]
    fn a_worker_too_busy_to_park_hands_its_lines_over_after_the_batch_time() {
        let b = shared(1 << 20);
        let mine = b.clone();
        let worker = InStep::run(move |pause| {
            parked();
            mine.push(b"first\n");
            std::thread::sleep(COALESCE + Duration::from_millis(10));
            for _ in 0..14 {
                mine.push(b"more\n");
            }
            pause();
            mine.push(b"16th\n");
            pause();
        });
        worker.step();
        assert!(batch(&b).is_empty(), "15 lines: the clock is not read yet");
        worker.step();
        let text = String::from_utf8(batch(&b)).unwrap();
        assert!(
            text.starts_with("first\n") && text.ends_with("16th\n"),
            "{text}"
        );
        worker.end();
    }

    #[test]
    fn a_threads_full_buffer_drops_and_counts_and_its_first_line_wakes_the_writer() {
        let b = shared(10);
        b.push(b"abcdefgh\n");
        assert!(lock(&b.0.pending).threads_dirty);
        b.push(b"ij\n");
        // 12 bytes in this thread's buffer, over the capacity: this one is dropped.
        b.push(b"kl\n");
        assert_eq!(b.0.stats.snapshot().dropped_log_lines, 1);
        assert_eq!(batch(&b), b"abcdefgh\nij\n");
        assert!(!lock(&b.0.pending).threads_dirty);
        b.push(b"mn\n");
        assert!(lock(&b.0.pending).threads_dirty);
        assert_eq!(batch(&b), b"mn\n");
    }
}

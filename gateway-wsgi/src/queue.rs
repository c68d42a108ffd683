//! The app's queue of requests and its threads' wake-ups.
//!
//! Only one thread runs Python at a time (the GIL), so waking a second thread for a request
//! helps only when the running one waits with the GIL released (sleep, IO, a slow client).
//! Waking one for every request instead costs two thread switches and a GIL handover each: on
//! a hello app, eight threads served 18.6k req/s where one served 22.6k. So a request that
//! finds a thread at work is left for that thread to take next, and an idle thread is woken
//! for it only when nobody is at work, or when the threads at work have finished nothing for
//! [`STALL`] (they are waiting, not computing).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the threads at work may finish nothing before an idle one is woken for the
/// requests that wait.
pub(crate) const STALL: Duration = Duration::from_millis(1);

/// How long a thread that finished a job looks for the next one before it sleeps: under load
/// the next request comes within microseconds, and finding it awake saves the two thread
/// switches of a sleep and a wake-up. Kept short: on 2 cores a longer look (50 µs) took CPU
/// from the runtime's threads and doubled the p99 latency for a few more requests a second.
pub(crate) const LINGER: Duration = Duration::from_micros(15);

/// A bounded queue of `T` for a pool of threads.
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    cap: usize,
}

struct State<T> {
    jobs: VecDeque<T>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads running a job.
    busy: usize,
    /// When a thread last finished a job (or started one, after being idle).
    progress: Instant,
    closed: bool,
}

/// Why a job was not queued.
pub(crate) enum Refused {
    Full,
    Closed,
}

/// A queued job, and whether some thread is sure to take it soon.
pub(crate) struct Queued {
    /// No thread was woken for it: the caller should [`Queue::nudge`] if it still waits after
    /// [`STALL`].
    pub(crate) left_to_busy: bool,
}

impl<T> Queue<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                busy: 0,
                progress: Instant::now(),
                closed: false,
            }),
            ready: Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A poisoned lock means a thread panicked between two lines of this file, which hold
        // no invariant a panic can break: go on with the state as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, job: T) -> Result<Queued, (Refused, T)> {
        let mut s = self.lock();
        if s.closed {
            return Err((Refused::Closed, job));
        }
        if s.jobs.len() >= self.cap {
            return Err((Refused::Full, job));
        }
        s.jobs.push_back(job);
        let wake = s.idle > 0 && (s.busy == 0 || s.progress.elapsed() >= STALL);
        let left_to_busy = !wake && s.idle > 0;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(Queued { left_to_busy })
    }

    /// Wakes an idle thread if jobs still wait and the busy ones have stalled.
    pub(crate) fn nudge(&self) {
        let s = self.lock();
        let stalled = s.progress.elapsed() >= STALL;
        if !s.jobs.is_empty() && s.idle > 0 && stalled {
            drop(s);
            self.ready.notify_one();
        }
    }

    /// The next job, waiting for one; `None` once the queue is closed and empty.
    pub(crate) fn take(&self) -> Option<T> {
        let mut s = self.lock();
        loop {
            if let Some(job) = s.jobs.pop_front() {
                s.busy += 1;
                s.progress = Instant::now();
                return Some(job);
            }
            if s.closed {
                return None;
            }
            s.idle += 1;
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
            s.idle -= 1;
        }
    }

    /// A busy thread finished a job: the next one, if any waits or comes within [`LINGER`],
    /// without going idle.
    pub(crate) fn next(&self) -> Option<T> {
        let start = Instant::now();
        let mut s = self.lock();
        s.progress = start;
        loop {
            if let Some(job) = s.jobs.pop_front() {
                return Some(job);
            }
            if start.elapsed() >= LINGER {
                s.busy -= 1;
                return None;
            }
            drop(s);
            std::thread::yield_now();
            s = self.lock();
        }
    }

    /// No more jobs: idle threads end, busy ones end after the jobs queued.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    use super::*;

    /// Waits until `n` threads are idle on the queue.
    fn until_idle(q: &Queue<u32>, n: usize) {
        while q.lock().idle < n {
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_job_with_nobody_at_work_wakes_an_idle_thread() {
        let q = Arc::new(Queue::new(8));
        let t = thread::spawn({
            let q = q.clone();
            move || q.take()
        });
        until_idle(&q, 1);
        let queued = q.push(7).ok().unwrap();
        assert!(!queued.left_to_busy);
        assert_eq!(t.join().unwrap(), Some(7));
    }

    #[test]
    fn a_job_behind_a_thread_at_work_is_left_to_it_until_it_stalls() {
        let q = Arc::new(Queue::new(8));
        // One thread at work (it took a job and has not finished it), one idle.
        q.push(1).ok().unwrap();
        assert_eq!(q.take(), Some(1));
        let idle = thread::spawn({
            let q = q.clone();
            move || q.take()
        });
        until_idle(&q, 1);
        // As if the busy thread had just finished a job.
        q.lock().progress = Instant::now();
        let queued = q.push(2).ok().unwrap();
        assert!(queued.left_to_busy, "the busy thread takes it next");
        thread::sleep(Duration::from_millis(20));
        assert!(!idle.is_finished(), "the idle thread was woken");
        // Still at work after STALL: a nudge wakes the idle thread for the waiting job.
        q.nudge();
        assert_eq!(idle.join().unwrap(), Some(2));
        // The busy thread finishes: nothing waits, it is no longer busy.
        assert_eq!(q.next(), None);
        assert_eq!(q.lock().busy, 1, "the woken thread is at work");
    }

    #[test]
    fn a_busy_thread_takes_the_next_job_without_going_idle() {
        let q = Queue::new(8);
        q.push(1).ok().unwrap();
        assert_eq!(q.take(), Some(1));
        q.push(2).ok().unwrap();
        assert_eq!(q.next(), Some(2));
        assert_eq!(q.next(), None);
        assert_eq!(q.lock().busy, 0);
    }

    #[test]
    fn a_full_or_closed_queue_refuses() {
        let q = Queue::new(1);
        q.push(1).ok().unwrap();
        assert!(matches!(q.push(2), Err((Refused::Full, 2))));
        q.close();
        assert!(matches!(q.push(3), Err((Refused::Closed, 3))));
        // Closed: what was queued is still served, then the threads end.
        assert_eq!(q.take(), Some(1));
        assert_eq!(q.take(), None);
    }
}

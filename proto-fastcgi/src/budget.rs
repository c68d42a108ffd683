//! One budget for the request bodies that FastCGI connections hold unread, shared by every
//! connection of the process.
//!
//! A multiplexed connection must keep reading for its other requests while an app leaves its
//! body unread, so it buffers. Without a common bound, connections × requests × body cap is
//! the worst case (3 × 8 × 32 MiB took the daemon to 775 MiB). With it, a connection that
//! would pass the budget stops reading its socket until bodies are consumed or freed, and the
//! web server feels the push back through TCP.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The bytes of request bodies held in FastCGI STDIN queues, and their cap.
#[derive(Debug)]
pub struct BodyBudget {
    limit: AtomicU64,
    used: AtomicU64,
    /// Connections waiting for room: only then is a release worth a wake-up.
    paused: AtomicUsize,
    freed: Notify,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        BodyBudget {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
            paused: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// Changes the cap (a reload): bytes already held stay; waiting connections look again.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// The cap.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// The bytes held now.
    pub fn used(&self) -> u64 {
        // SeqCst here and in `give_back`/`wait_for_room`: a waiter that counts itself in, then
        // reads `used`, and a releaser that lowers `used`, then reads the count, must not both
        // see the old values (or the wake-up is lost).
        self.used.load(Ordering::SeqCst)
    }

    /// Takes `n` bytes if they fit under the cap.
    pub(crate) fn try_take(&self, n: u64) -> bool {
        let limit = self.limit();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    /// Takes `n` bytes even past the cap: for a body whose app is waiting for them, which
    /// will hand them back at once, so that it never waits on the others.
    pub(crate) fn force_take(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Hands `n` bytes back (consumed by the app, or dropped with its queue).
    pub(crate) fn give_back(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) > 0 {
            self.freed.notify_waiters();
        }
    }

    /// Waits until some bytes are handed back, or `also` completes, or the cap changes. It
    /// returns at once when `fits` already holds (checked after registering, so that no
    /// release between the check and the wait is missed).
    pub(crate) async fn wait_for_room(
        &self,
        fits: impl Fn() -> bool,
        also: impl Future<Output = ()>,
    ) {
        let mut freed = pin!(self.freed.notified());
        freed.as_mut().enable();
        self.paused.fetch_add(1, Ordering::SeqCst);
        let _unpause = Unpause(&self.paused);
        if fits() {
            return;
        }
        tokio::select! {
            () = freed => {}
            () = also => {}
        }
    }
}

impl Default for BodyBudget {
    /// 64 MiB, the daemon's default.
    fn default() -> Self {
        BodyBudget::new(64 << 20)
    }
}

struct Unpause<'a>(&'a AtomicUsize);

impl Drop for Unpause<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn takes_up_to_the_cap_and_gives_back() {
        let b = BodyBudget::new(10);
        assert!(b.try_take(6));
        assert!(!b.try_take(5));
        assert!(b.try_take(4));
        b.give_back(6);
        assert_eq!(b.used(), 4);
        b.force_take(20);
        assert_eq!(b.used(), 24);
    }

    #[tokio::test]
    async fn a_release_wakes_a_waiting_connection() {
        let b = Arc::new(BodyBudget::new(10));
        assert!(b.try_take(10));
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                let fits = || b.used() + 5 <= b.limit();
                b.wait_for_room(fits, std::future::pending()).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        b.give_back(5);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}

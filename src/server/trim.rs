//! Gives the memory a burst of requests used back to the kernel once the burst is over.
//!
//! glibc's malloc keeps what is freed in its per-thread arenas for reuse, so after a load the
//! process stays at its peak RSS though nothing is live any more. `malloc_trim(0)` returns the
//! free pages of every arena. It is called once per burst, a second after the last request:
//! never under steady load, where it would only cost, and never when idle. No crate wraps
//! this; it is one libc call.

use std::time::Duration;

use gateway_core::Stats;

/// How long without a request counts as the end of a burst.
const QUIET: Duration = Duration::from_secs(1);

/// Watches the request counters and trims after each burst.
pub(super) fn spawn(stats: &'static Stats) {
    tokio::spawn(async move {
        let mut trimmed_at = stats.served();
        let mut last = trimmed_at;
        loop {
            tokio::time::sleep(QUIET).await;
            let now = stats.served();
            let quiet = now == last && stats.in_flight() == 0;
            if quiet && now != trimmed_at {
                trimmed_at = now;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
            last = now;
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer and
    // is thread-safe (each arena is locked while it is trimmed).
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

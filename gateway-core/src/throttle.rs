//! Log lines that an attacker can cause at will (a malformed connection, an accept failing
//! while out of file descriptors, a full app) are throttled per call site: a flood writes a
//! few lines and a count, not a line per event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window over which repeats are counted.
pub(crate) const THROTTLE_WINDOW: Duration = Duration::from_secs(10);

/// Lines logged per call site and window; the rest are counted.
const LINES_PER_WINDOW: u32 = 5;

/// A call site's budget of log lines.
///
/// ```
/// use gateway_core::Throttle;
///
/// static MALFORMED: Throttle = Throttle::new();
/// for _ in 0..100 {
///     if let Some(suppressed) = MALFORMED.allow() {
///         // `suppressed`: how many were left out before this one, to say so in the line.
///         tracing::warn!(suppressed, "malformed input");
///     }
/// }
/// ```
pub struct Throttle {
    state: Mutex<State>,
}

struct State {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Throttle {
    /// A fresh budget, for a `static`.
    pub const fn new() -> Self {
        Throttle {
            state: Mutex::new(State {
                window_start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were suppressed since the
    /// last line (say so when it is not 0); `None` when it is to be counted only.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = s
            .window_start
            .is_none_or(|start| now.duration_since(start) >= THROTTLE_WINDOW);
        if expired {
            s.window_start = Some(now);
            s.logged = 0;
        }
        if s.logged < LINES_PER_WINDOW {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_few_lines_and_counts_the_rest() {
        let t = Throttle::new();
        let start = Instant::now();
        let logged: Vec<_> = (0..1000).filter_map(|_| t.allow_at(start)).collect();
        assert_eq!(logged, vec![0; LINES_PER_WINDOW as usize]);
        // The next window's first line says how many were left out.
        assert_eq!(t.allow_at(start + THROTTLE_WINDOW), Some(995));
        assert_eq!(t.allow_at(start + THROTTLE_WINDOW), Some(0));
    }
}

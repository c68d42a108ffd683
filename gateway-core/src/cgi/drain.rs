//! The drain of a request body nobody reads, sans-IO: after a refusal (413) or an app that
//! answered without reading, a front server still writing the body would meet a reset and
//! drop the answer, so the front-end reads and drops the rest, within bounds.

use std::time::{Duration, Instant};

/// How much more unread input to read and drop, and until when. The caller owns the bounds
/// (the bytes left, the longest drain, the longest silence) and the IO: it reads at most
/// [`want`](Self::want) bytes, reports them with [`read`](Self::read), and gives up at
/// [`deadline`](Self::deadline).
///
/// ```
/// use std::time::{Duration, Instant};
/// use gateway_core::Drain;
///
/// let t0 = Instant::now();
/// let mut drain = Drain::new(10, t0, Duration::from_secs(5), Duration::from_secs(1));
/// assert_eq!(drain.want(4096), 10);
/// assert_eq!(drain.deadline(), Some(t0 + Duration::from_secs(1)));
/// drain.read(4, t0 + Duration::from_millis(500));
/// assert_eq!(drain.want(4096), 6);
/// drain.read(6, t0 + Duration::from_millis(600));
/// assert_eq!(drain.deadline(), None); // all read: done
/// ```
#[derive(Clone, Debug)]
pub struct Drain {
    left: u64,
    /// The end of the whole drain.
    end: Instant,
    idle: Duration,
    /// When the input has been silent too long.
    silent_at: Instant,
}

impl Drain {
    /// A drain of `left` bytes starting `now`, for at most `max`, waiting at most `idle` for
    /// each next read (pass `max` for no idle bound).
    pub fn new(left: u64, now: Instant, max: Duration, idle: Duration) -> Self {
        Drain {
            left,
            end: now + max,
            idle,
            silent_at: now + idle,
        }
    }

    /// How many bytes the next read may take into a buffer of `buf` bytes: never past the
    /// input's end, so nothing that follows it is taken; 0 once done.
    pub fn want(&self, buf: usize) -> usize {
        usize::try_from(self.left).map_or(buf, |left| left.min(buf))
    }

    /// `n` bytes were read at `now`; 0 means the input ended.
    pub fn read(&mut self, n: usize, now: Instant) {
        self.left = match n {
            0 => 0,
            n => self.left.saturating_sub(n as u64),
        };
        self.silent_at = now + self.idle;
    }

    /// When to stop waiting for the next read; `None` once there is nothing left to read.
    /// A deadline already past means the drain is over.
    pub fn deadline(&self) -> Option<Instant> {
        (self.left > 0).then(|| self.end.min(self.silent_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn reads_never_go_past_the_body() {
        let t0 = Instant::now();
        let mut d = Drain::new(100_000, t0, 5 * S, S);
        assert_eq!(d.want(65_536), 65_536);
        d.read(65_536, t0);
        assert_eq!(d.want(65_536), 100_000 - 65_536);
        d.read(100_000 - 65_536, t0);
        assert_eq!((d.want(65_536), d.deadline()), (0, None));
    }

    #[test]
    fn a_huge_declared_length_is_bounded_by_the_buffer() {
        let d = Drain::new(u64::MAX, Instant::now(), 5 * S, S);
        assert_eq!(d.want(4096), 4096);
    }

    #[test]
    fn silence_ends_it() {
        let t0 = Instant::now();
        let mut d = Drain::new(1000, t0, 5 * S, S);
        assert_eq!(d.deadline(), Some(t0 + S));
        // Each read pushes the idle deadline on.
        d.read(1, t0 + S / 2);
        assert_eq!(d.deadline(), Some(t0 + S / 2 + S));
    }

    #[test]
    fn a_slow_trickle_ends_at_the_cap() {
        let t0 = Instant::now();
        let mut d = Drain::new(1000, t0, 5 * S, S);
        for ms in (0..=4_800).step_by(400) {
            d.read(1, t0 + Duration::from_millis(ms));
        }
        assert_eq!(d.deadline(), Some(t0 + 5 * S));
    }

    #[test]
    fn the_end_of_input_ends_it() {
        let t0 = Instant::now();
        let mut d = Drain::new(1000, t0, 5 * S, 5 * S);
        assert_eq!(d.deadline(), Some(t0 + 5 * S));
        d.read(0, t0);
        assert_eq!(d.deadline(), None);
    }
}

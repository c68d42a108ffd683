//! The log lines' timestamp, as tracing-subscriber's default writes it
//! (`2026-12-01T16:03:13.903904Z`), with the date and time of day formatted once a second per
//! thread: formatting them for every line cost the access log more than the line's `write`.
//!
//! An access line is stamped with the [`Instant`] its duration was measured to, turned into
//! wall-clock time from the thread's anchor (both clocks read together, again once a second):
//! one clock read per request fewer. Between two anchors the stamp runs on the monotonic clock,
//! so a step of the wall clock shows within a second, and NTP's slewing (at most 0.05%) moves
//! a stamp by at most half a millisecond. (The monotonic clock stops while the machine is
//! suspended: a line in the second after a resume can carry the time before it.)

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A stamp: `2026-12-01T16:03:13.903904Z`.
pub(crate) type Stamp = [u8; STAMP_LEN];
const STAMP_LEN: usize = 27;
/// Where the stamp's six digits of microseconds start.
const MICROS: usize = 20;

/// The thread's anchor and the stamp of its current second.
struct Clock {
    /// An instant and the wall-clock time (since the epoch) read with it.
    anchor: Option<(Instant, Duration)>,
    second: u64,
    /// The last stamp made: its date and time of day are those of `second`.
    stamp: Stamp,
}

/// How long an anchor is used.
const ANCHOR: Duration = Duration::from_secs(1);

impl Clock {
    const fn new() -> Clock {
        Clock {
            anchor: None,
            second: u64::MAX,
            stamp: *b"0000-00-00T00:00:00.000000Z",
        }
    }

    /// The stamp of `at`.
    #[inline]
    fn stamp(&mut self, at: Instant) -> Stamp {
        // Within a second of the anchor, either side (an instant read before the anchor was: a
        // line formatted after a later one), the anchor says: one instant, one stamp.
        let since = match self.anchor.map(|anchor| by_anchor(anchor, at)) {
            Some((since, distance)) if distance < ANCHOR => since,
            _ => {
                let anchor = (
                    Instant::now(),
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default(),
                );
                self.anchor = Some(anchor);
                by_anchor(anchor, at).0
            }
        };
        if self.second != since.as_secs() {
            self.second = since.as_secs();
            write_second(&mut self.stamp, since.as_secs());
        }
        put_digits(
            &mut self.stamp[MICROS..MICROS + 6],
            since.subsec_micros().into(),
        );
        self.stamp
    }
}

/// The wall-clock time (since the epoch) of `at` by an anchor read as `(instant, wall)`, and
/// how far `at` is from the anchor.
#[inline]
fn by_anchor((instant, wall): (Instant, Duration), at: Instant) -> (Duration, Duration) {
    match at.checked_duration_since(instant) {
        Some(ahead) => (wall + ahead, ahead),
        None => {
            let behind = instant - at;
            (wall.saturating_sub(behind), behind)
        }
    }
}

/// The wall-clock time of `at`, UTC, to the microsecond, as a stamp of fixed length: the
/// access line copies it whole.
pub(crate) fn stamp(at: Instant) -> Stamp {
    thread_local! {
        static CLOCK: RefCell<Clock> = const { RefCell::new(Clock::new()) };
    }
    // A thread being torn down (a line from a thread-local's drop) reads a clock of its own.
    match CLOCK.try_with(|cell| Some(cell.try_borrow_mut().ok()?.stamp(at))) {
        Ok(Some(stamp)) => stamp,
        _ => Clock::new().stamp(at),
    }
}

/// Writes the wall-clock time of `at`, UTC, to the microsecond.
pub(crate) fn write_at(w: &mut impl fmt::Write, at: Instant) -> fmt::Result {
    let stamp = stamp(at);
    // A stamp is ASCII digits and punctuation.
    w.write_str(std::str::from_utf8(&stamp).map_err(|_| fmt::Error)?)
}

/// Writes `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch (Howard Hinnant's
/// `civil_from_days`) at the start of `stamp`.
fn write_second(stamp: &mut Stamp, secs: u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Years past 9999 keep four digits, the last four: the stamp's length is fixed.
    for (at, len, value) in [
        (0, 4, year.rem_euclid(10_000) as u64),
        (5, 2, month as u64),
        (8, 2, day as u64),
        (11, 2, rem / 3600),
        (14, 2, rem / 60 % 60),
        (17, 2, rem % 60),
    ] {
        put_digits(&mut stamp[at..at + len], value);
    }
}

/// `value`'s last `out.len()` decimal digits, zero-padded, into `out`.
fn put_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(instant: Instant) -> String {
        let mut out = String::new();
        write_at(&mut out, instant).unwrap();
        out
    }

    #[test]
    fn now_has_six_digits_of_microseconds() {
        let out = at(Instant::now());
        assert_eq!(out.len(), "2026-12-01T16:23:13.000123Z".len(), "{out}");
        assert!(out.ends_with('Z') && out.as_bytes()[19] == b'.', "{out}");
        assert!(out[20..26].bytes().all(|b| b.is_ascii_digit()), "{out}");
    }

    #[test]
    fn an_instant_is_stamped_with_the_wall_clock_of_its_time() {
        let wall = |s: &str| {
            // Seconds of the day plus the fraction: enough to compare stamps a second apart.
            let h: f64 = s[11..13].parse().unwrap();
            let m: f64 = s[14..16].parse().unwrap();
            let sec: f64 = s[17..26].parse().unwrap();
            h * 3600.0 + m * 60.0 + sec
        };
        let now = Instant::now();
        let stamp = wall(&at(now));
        let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let expected = (system.as_secs() % 86_400) as f64 + f64::from(system.subsec_micros()) / 1e6;
        assert!(
            (stamp - expected).abs() < 0.05,
            "{stamp} against {expected}"
        );
        // Within the anchor's second, before and after it, and far from it: the same offsets.
        for offset in [Duration::from_millis(300), Duration::from_millis(1700)] {
            let later = wall(&at(now + offset));
            let earlier = wall(&at(now.checked_sub(offset).unwrap()));
            let d = offset.as_secs_f64();
            assert!(
                (later - stamp - d).abs() < 0.001,
                "{later} - {stamp} != {d}"
            );
            assert!(
                (stamp - earlier - d).abs() < 0.001,
                "{stamp} - {earlier} != {d}"
            );
        }
    }

    #[test]
    fn an_instant_has_one_stamp_though_read_before_the_anchor() {
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // A later instant first (it may anchor the clock), then the earlier one, twice.
        let _ = at(Instant::now());
        assert_eq!(at(before), at(before));
    }

    #[test]
    fn civil_dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_142_193, "2026-12-01T16:23:13"),
            (4_107_542_399, "2100-02-28T23:59:59"),
        ] {
            let mut stamp = Clock::new().stamp;
            write_second(&mut stamp, secs);
            assert_eq!(&stamp[..19], text.as_bytes());
        }
    }
}

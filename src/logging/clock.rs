//! The log lines' timestamp, as tracing-subscriber's default writes it
//! (`2026-12-01T16:03:13.903904Z`), with the date and time of day formatted once a second per
//! thread: formatting them for every line cost the access log more than the line's `write`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes the time now, UTC, to the microsecond.
pub(crate) fn write_now(w: &mut impl fmt::Write) -> fmt::Result {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        let (second, text) = &mut *cached;
        if *second != since.as_secs() {
            *second = since.as_secs();
            text.clear();
            let _ = write_second(text, since.as_secs());
        }
        w.write_str(text)
    })?;
    // `.uuuuuuZ`, by hand: `{:06}` goes through the formatter's padding.
    let mut micros = since.subsec_micros();
    let mut frac = *b".000000Z";
    for digit in frac[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    w.write_str(std::str::from_utf8(&frac).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch (Howard Hinnant's `civil_from_days`).
fn write_second(out: &mut String, secs: u64) -> std::fmt::Result {
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
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_six_digits_of_microseconds() {
        let mut out = String::new();
        write_now(&mut out).unwrap();
        assert_eq!(out.len(), "2026-12-01T16:23:13.000123Z".len(), "{out}");
        assert!(out.ends_with('Z') && out.as_bytes()[19] == b'.', "{out}");
        assert!(out[20..26].bytes().all(|b| b.is_ascii_digit()), "{out}");
    }

    #[test]
    fn civil_dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_142_193, "2026-12-01T16:23:13"),
            (4_107_542_399, "2100-02-28T23:59:59"),
        ] {
            let mut out = String::new();
            write_second(&mut out, secs).unwrap();
            assert_eq!(out, text);
        }
    }
}

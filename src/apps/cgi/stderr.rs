//! A script's stderr in the log: line by line, each line capped, control bytes escaped (a
//! script cannot forge a log line or drive a terminal), and a flood rate-limited, so that no
//! script can grow the daemon's memory or drown its log.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;

/// The longest line logged; the rest of a longer line is counted, not kept.
pub(super) const MAX_LINE: usize = 8 << 10;

/// Lines logged per script and per second; the others are counted and summed up in one line.
const LINES_PER_SECOND: u32 = 100;

/// Lines logged per second for all scripts together: 64 scripts at their own cap would
/// otherwise write 50 MB of log a second.
const ALL_LINES_PER_SECOND: u32 = 1000;

static ALL_SCRIPTS: Budget = Budget(std::sync::Mutex::new(None));

/// The lines left to all scripts in the current second.
struct Budget(std::sync::Mutex<Option<(Instant, u32)>>);

impl Budget {
    fn take(&self, now: Instant) -> bool {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            Some((start, used)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *used += 1;
                *used <= ALL_LINES_PER_SECOND
            }
            other => {
                *other = Some((now, 1));
                true
            }
        }
    }
}

/// Logs each line `stderr` gives under the script's `name`, until its end.
pub(super) async fn log_stderr(mut stderr: tokio::process::ChildStderr, name: String) {
    let mut lines = Lines::new(name);
    let mut buf = vec![0u8; 8 << 10];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.push(&buf[..n], Instant::now()),
        }
    }
    lines.finish();
}

/// The line being read and the rate budget.
struct Lines {
    name: String,
    line: Vec<u8>,
    /// Bytes of the current line past [`MAX_LINE`].
    cut: u64,
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Lines {
    fn new(name: String) -> Self {
        Lines {
            name,
            line: Vec::new(),
            cut: 0,
            window: None,
            logged: 0,
            suppressed: 0,
        }
    }

    fn push(&mut self, mut data: &[u8], now: Instant) {
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n');
            let part = &data[..end.unwrap_or(data.len())];
            let room = MAX_LINE - self.line.len();
            let kept = part.len().min(room);
            self.line.extend_from_slice(&part[..kept]);
            self.cut += (part.len() - kept) as u64;
            match end {
                Some(at) => {
                    self.emit(now);
                    data = &data[at + 1..];
                }
                None => break,
            }
        }
    }

    /// The end of stderr: the last line without its newline, and the count of what was held back.
    fn finish(mut self) {
        if !self.line.is_empty() || self.cut > 0 {
            self.emit(Instant::now());
        }
        self.summarise();
    }

    fn emit(&mut self, now: Instant) {
        let cut = std::mem::take(&mut self.cut);
        if self
            .window
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1))
        {
            self.summarise();
            self.window = Some(now);
            self.logged = 0;
        }
        if self.logged >= LINES_PER_SECOND || !ALL_SCRIPTS.take(now) {
            self.line.clear();
            self.suppressed += 1;
            return;
        }
        self.logged += 1;
        let text = escape(&self.line);
        self.line.clear();
        if cut > 0 {
            tracing::warn!(script = %self.name, "{text}… ({cut} bytes cut)");
        } else {
            tracing::warn!(script = %self.name, "{text}");
        }
    }

    fn summarise(&mut self) {
        let n = std::mem::take(&mut self.suppressed);
        if n > 0 {
            tracing::warn!(script = %self.name, "{n} lines suppressed");
        }
    }
}

/// The line as text with every control character escaped (`\r`, `\t`, `\x1b`, C1 controls as
/// `\u{9b}`), bytes that are not UTF-8 as `\xNN`, a backslash as `\\`, and the trailing CR of a
/// CRLF line dropped.
fn escape(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_scripts_share_one_budget_a_second() {
        let budget = Budget(std::sync::Mutex::new(None));
        let now = Instant::now();
        let taken = (0..1500).filter(|_| budget.take(now)).count();
        assert_eq!(taken, ALL_LINES_PER_SECOND as usize);
        assert!(budget.take(now + Duration::from_secs(1)));
    }

    use super::*;

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(
            escape(b"a\rFORGED\x1b[31m\t\\\xff\xc2\x9b z\r"),
            "a\\rFORGED\\x1b[31m\\t\\\\\\xff\\u{9b} z"
        );
        assert_eq!(escape("héllo".as_bytes()), "héllo");
    }

    #[test]
    fn a_long_line_is_cut_and_counted() {
        let mut lines = Lines::new("x".into());
        let now = Instant::now();
        lines.push(&vec![b'a'; MAX_LINE + 100], now);
        lines.push(&[b'a'; 50], now);
        assert_eq!((lines.line.len(), lines.cut), (MAX_LINE, 150));
        lines.push(b"\nnext", now);
        assert_eq!((&lines.line[..], lines.cut), (&b"next"[..], 0));
    }

    #[test]
    fn a_flood_is_counted_past_the_budget() {
        let mut lines = Lines::new("x".into());
        let now = Instant::now();
        lines.push(&b"x\n".repeat(250), now);
        assert_eq!((lines.logged, lines.suppressed), (LINES_PER_SECOND, 150));
        lines.push(b"y\n", now + Duration::from_secs(1));
        assert_eq!((lines.logged, lines.suppressed), (1, 0));
    }
}

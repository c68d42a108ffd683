//! The daemon's access lines: each formatted straight into the log buffer, in the shape the
//! rest of the log has (see [`format`](super::format)), without a `tracing` event: the event's
//! dispatch, filter and formatting plumbing cost more than the line (`cargo bench --bench
//! request`).

use std::fmt;
use std::io::Write as _;

use gateway_core::{AccessLine, AccessSink};
use tracing::Level;

use super::buffered::Buffered;
use super::format::{ACCESS, Lines, json_end, json_start, prefix, string, target};

/// Writes access lines where the log goes.
pub(crate) struct Sink {
    /// Whether `RUST_LOG` lets `gatewayd::access` lines through, read once at start.
    pub(crate) enabled: bool,
    pub(crate) lines: Lines,
    pub(crate) ansi: bool,
    /// `None`: straight to stderr.
    pub(crate) out: Option<Buffered>,
}

impl AccessSink for Sink {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn write(&self, line: &AccessLine<'_>) {
        match &self.out {
            // Formatted straight into the thread's buffer.
            Some(out) => out.push_with(|buf| {
                let start = buf.len();
                // Formatting fails only if a Display impl does; ours do not.
                if self.format(&mut Appender(buf), line).is_err() {
                    buf.truncate(start);
                }
            }),
            None => {
                let mut text = String::new();
                if self.format(&mut text, line).is_ok() {
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
            }
        }
    }
}

impl Sink {
    fn format(&self, w: &mut impl fmt::Write, line: &AccessLine<'_>) -> fmt::Result {
        match self.lines {
            Lines::Text { time } => self.text(w, time, line),
            Lines::Json => json(w, line),
        }
    }

    fn text(&self, w: &mut impl fmt::Write, time: bool, line: &AccessLine<'_>) -> fmt::Result {
        prefix(
            w,
            self.ansi,
            time.then_some(line.at),
            Level::INFO,
            Some(line.id),
        )?;
        target(w, self.ansi, ACCESS)?;
        w.write_str("protocol=")?;
        w.write_str(line.protocol.as_str())?;
        w.write_str(" method=")?;
        bare(w, line.method)?;
        w.write_str(" path=")?;
        bare(w, line.path)?;
        let mut n = itoa::Buffer::new();
        w.write_str(" status=")?;
        w.write_str(n.format(line.status))?;
        w.write_str(" bytes=")?;
        w.write_str(n.format(line.bytes))?;
        w.write_str(" micros=")?;
        w.write_str(n.format(line.micros))?;
        w.write_str(" peer=")?;
        bare(w, line.peer)?;
        w.write_str(if line.complete {
            " complete=true\n"
        } else {
            " complete=false\n"
        })
    }
}

/// A value as it came, but for control characters, escaped as Rust writes them (`\n`,
/// `\u{1b}`): a path decoded from `%0A` must not end the line and forge the next one, nor a
/// terminal escape reach whoever reads the log.
fn bare(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if !value.bytes().any(|b| b.is_ascii_control()) {
        return w.write_str(value);
    }
    for c in value.chars() {
        if c.is_ascii_control() {
            write!(w, "{}", c.escape_debug())?;
        } else {
            w.write_char(c)?;
        }
    }
    Ok(())
}

/// Formats into the log's byte buffer: what a `fmt::Write` is given is UTF-8 already.
struct Appender<'a>(&'a mut Vec<u8>);

impl fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn json(w: &mut impl fmt::Write, line: &AccessLine<'_>) -> fmt::Result {
    json_start(w, Level::INFO, line.at)?;
    w.write_str("\"protocol\":\"")?;
    w.write_str(line.protocol.as_str())?;
    w.write_str("\",\"method\":")?;
    string(w, line.method)?;
    w.write_str(",\"path\":")?;
    string(w, line.path)?;
    let mut n = itoa::Buffer::new();
    for (name, value) in [
        (",\"status\":", u64::from(line.status)),
        (",\"bytes\":", line.bytes),
        (",\"micros\":", line.micros),
    ] {
        w.write_str(name)?;
        w.write_str(n.format(value))?;
    }
    w.write_str(",\"peer\":")?;
    string(w, line.peer)?;
    w.write_str(if line.complete {
        ",\"complete\":true},\"target\":\""
    } else {
        ",\"complete\":false},\"target\":\""
    })?;
    w.write_str(ACCESS)?;
    w.write_char('"')?;
    json_end(w, Some(line.id))
}

#[cfg(test)]
mod tests {
    use gateway_core::Protocol;

    use super::*;

    fn line(path: &str) -> AccessLine<'_> {
        AccessLine {
            id: 7,
            at: std::time::Instant::now(),
            protocol: Protocol::Scgi,
            method: "POST",
            path,
            status: 201,
            bytes: 12,
            micros: 345,
            peer: "10.0.0.1",
            complete: false,
        }
    }

    fn text(ansi: bool) -> String {
        let sink = Sink {
            enabled: true,
            lines: Lines::Text { time: false },
            ansi,
            out: None,
        };
        let mut out = String::new();
        sink.text(&mut out, false, &line("/a b?c")).unwrap();
        out
    }

    #[test]
    fn a_text_line_has_the_event_shape() {
        assert_eq!(
            text(false),
            " INFO request{id=7}: gatewayd::access: protocol=scgi method=POST path=/a b?c \
             status=201 bytes=12 micros=345 peer=10.0.0.1 complete=false\n"
        );
        assert!(text(true).starts_with("\x1b[32m INFO\x1b[0m request{id=7}: \x1b[2m"));
    }

    #[test]
    fn control_characters_in_a_text_line_are_escaped() {
        let sink = Sink {
            enabled: true,
            lines: Lines::Text { time: false },
            ansi: false,
            out: None,
        };
        let mut out = String::new();
        let mut forged = line("/a\n2026-12-02T00:00:00.000000Z  INFO forged\r\x1b[2J\t");
        forged.peer = "p\n";
        sink.text(&mut out, false, &forged).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(
            out.contains(
                " path=/a\\n2026-12-02T00:00:00.000000Z  INFO forged\\r\\u{1b}[2J\\t status="
            ),
            "{out}"
        );
        assert!(out.ends_with(" peer=p\\n complete=false\n"), "{out}");
    }

    #[test]
    fn a_json_line_is_json_with_the_event_fields() {
        let mut out = String::new();
        json(&mut out, &line("/\"quoted\"\n")).unwrap();
        assert!(out.ends_with("}\n"), "{out}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["level"], "INFO");
        assert_eq!(doc["target"], "gatewayd::access");
        assert_eq!(doc["fields"]["path"], "/\"quoted\"\n");
        assert_eq!(doc["fields"]["protocol"], "scgi");
        assert_eq!(doc["fields"]["status"], 201);
        assert_eq!(doc["fields"]["micros"], 345);
        assert_eq!(doc["fields"]["complete"], false);
        assert_eq!(doc["span"]["id"], 7);
        assert_eq!(doc["spans"][0]["name"], "request");
        assert!(doc["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

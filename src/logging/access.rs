//! The daemon's access lines: each formatted straight into the log buffer, in the shape the
//! rest of the log has (see [`format`](super::format)), without a `tracing` event: the event's
//! dispatch, filter and formatting plumbing cost more than the line (`cargo bench --bench
//! request`).

use std::fmt::{self, Write as _};
use std::io::Write as _;

use gateway_core::{AccessLine, AccessSink};
use tracing::Level;

use super::buffered::Buffered;
use super::clock::stamp;
use super::format::{ACCESS, Lines, json_end, json_start, string};

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
            Some(out) => out.push_with(|buf| self.format(buf, line)),
            None => {
                let mut text = Vec::new();
                self.format(&mut text, line);
                let _ = std::io::stderr().lock().write_all(&text);
            }
        }
    }
}

impl Sink {
    fn format(&self, buf: &mut Vec<u8>, line: &AccessLine<'_>) {
        match self.lines {
            Lines::Text { time } => text(buf, time, self.ansi, line),
            Lines::Json => {
                let start = buf.len();
                // Formatting fails only if a Display impl does; ours do not.
                if json(&mut Appender(buf), line).is_err() {
                    buf.truncate(start);
                }
            }
        }
    }
}

/// The text line, in the shape [`prefix`](super::format::prefix) and
/// [`target`](super::format::target) give an event (a test holds the
/// two together), written as bytes in as few pieces as it has fields: a line per request,
/// where each piece through `fmt::Write` and each call cost about 30 instructions.
fn text(buf: &mut Vec<u8>, time: bool, ansi: bool, line: &AccessLine<'_>) {
    buf.reserve(160 + line.method.len() + line.path.len() + line.peer.len());
    if time {
        buf.extend_from_slice(&stamp(line.at));
        buf.push(b' ');
    }
    buf.extend_from_slice(if ansi {
        b"\x1b[32m INFO\x1b[0m request{id="
    } else {
        b" INFO request{id="
    });
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(n.format(line.id).as_bytes());
    buf.extend_from_slice(if ansi {
        b"}: \x1b[2mgatewayd::access:\x1b[0m protocol="
    } else {
        b"}: gatewayd::access: protocol="
    });
    buf.extend_from_slice(line.protocol.as_str().as_bytes());
    buf.extend_from_slice(b" method=");
    bare(buf, line.method, line.printable);
    buf.extend_from_slice(b" path=");
    bare(buf, line.path, line.printable);
    buf.extend_from_slice(b" status=");
    buf.extend_from_slice(n.format(line.status).as_bytes());
    buf.extend_from_slice(b" bytes=");
    buf.extend_from_slice(n.format(line.bytes).as_bytes());
    buf.extend_from_slice(b" micros=");
    buf.extend_from_slice(n.format(line.micros).as_bytes());
    buf.extend_from_slice(b" peer=");
    bare(buf, line.peer, line.printable);
    buf.extend_from_slice(if line.complete {
        b" complete=true\n"
    } else {
        b" complete=false\n"
    });
}

/// A value as it came, but for control characters, escaped as Rust writes them (`\n`,
/// `\u{1b}`): a path decoded from `%0A` must not end the line and forge the next one, nor a
/// terminal escape reach whoever reads the log. (`printable`: known to have none.)
#[inline]
fn bare(buf: &mut Vec<u8>, value: &str, printable: bool) {
    if printable || !value.bytes().any(|b| b.is_ascii_control()) {
        buf.extend_from_slice(value.as_bytes());
    } else {
        escaped(buf, value);
    }
}

#[cold]
fn escaped(buf: &mut Vec<u8>, value: &str) {
    let mut w = Appender(buf);
    for c in value.chars() {
        // Writing to a `Vec` does not fail.
        let _ = if c.is_ascii_control() {
            write!(w, "{}", c.escape_debug())
        } else {
            w.write_char(c)
        };
    }
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
    use crate::logging::format::{prefix, target};

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
            printable: false,
            complete: false,
        }
    }

    fn written(ansi: bool, time: bool, line: &AccessLine<'_>) -> String {
        let mut out = Vec::new();
        text(&mut out, time, ansi, line);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_text_line_has_the_event_shape() {
        assert_eq!(
            written(false, false, &line("/a b?c")),
            " INFO request{id=7}: gatewayd::access: protocol=scgi method=POST path=/a b?c \
             status=201 bytes=12 micros=345 peer=10.0.0.1 complete=false\n"
        );
        // The head as an event's: time, level, request id and target, plain and coloured.
        for ansi in [false, true] {
            let mut line = line("/");
            line.printable = true;
            let mut head = String::new();
            prefix(&mut head, ansi, Some(line.at), Level::INFO, Some(7)).unwrap();
            target(&mut head, ansi, ACCESS).unwrap();
            head.push_str("protocol=scgi method=POST path=/ ");
            let out = written(ansi, true, &line);
            assert!(out.starts_with(&head), "{out:?} against {head:?}");
        }
    }

    #[test]
    fn control_characters_in_a_text_line_are_escaped() {
        let mut forged = line("/a\n2026-12-02T00:00:00.000000Z  INFO forged\r\x1b[2J\t");
        forged.peer = "p\n";
        let out = written(false, false, &forged);
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(
            out.contains(
                " path=/a\\n2026-12-02T00:00:00.000000Z  INFO forged\\r\\u{1b}[2J\\t status="
            ),
            "{out}"
        );
        assert!(out.ends_with(" peer=p\\n complete=false\n"), "{out}");
        // Not ASCII, but valid and without control characters: as it came.
        assert!(written(false, false, &line("/café")).contains(" path=/café status="));
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

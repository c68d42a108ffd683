//! The daemon's access lines: each formatted straight into the log buffer, in the shape the
//! rest of the log has (see [`format`](super::format)), without a `tracing` event: the event's
//! dispatch, filter and formatting plumbing cost more than the line (`cargo bench --bench
//! request`).

use std::cell::RefCell;
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
        thread_local! {
            static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let written = TEXT.try_with(|text| match text.try_borrow_mut() {
            Ok(mut text) => {
                self.emit(&mut text, line);
                true
            }
            Err(_) => false,
        });
        // The thread's text is in use or torn down (a body dropped late): a String of its own.
        if !matches!(written, Ok(true)) {
            self.emit(&mut String::new(), line);
        }
    }
}

impl Sink {
    /// Formats `line` into `text` and writes it.
    fn emit(&self, text: &mut String, line: &AccessLine<'_>) {
        text.clear();
        let formatted = match self.lines {
            Lines::Text { time } => self.text(text, time, line),
            Lines::Json => json(text, line),
        };
        // Formatting into a String fails only if a Display impl does; ours do not.
        if formatted.is_err() {
            return;
        }
        match &self.out {
            Some(out) => out.push(text.as_bytes()),
            None => drop(std::io::stderr().lock().write_all(text.as_bytes())),
        }
    }

    fn text(&self, w: &mut String, time: bool, line: &AccessLine<'_>) -> fmt::Result {
        prefix(w, self.ansi, time, Level::INFO, Some(line.id))?;
        target(w, self.ansi, ACCESS)?;
        let mut n = itoa::Buffer::new();
        for (name, value) in [
            ("protocol=", line.protocol.as_str()),
            (" method=", line.method),
            (" path=", line.path),
            (" status=", n.format(line.status)),
        ] {
            w.push_str(name);
            w.push_str(value);
        }
        for (name, value) in [(" bytes=", line.bytes), (" micros=", line.micros)] {
            w.push_str(name);
            w.push_str(n.format(value));
        }
        w.push_str(" peer=");
        w.push_str(line.peer);
        w.push_str(if line.complete {
            " complete=true\n"
        } else {
            " complete=false\n"
        });
        Ok(())
    }
}

fn json(w: &mut String, line: &AccessLine<'_>) -> fmt::Result {
    json_start(w, Level::INFO)?;
    w.push_str("\"protocol\":\"");
    w.push_str(line.protocol.as_str());
    w.push_str("\",\"method\":");
    string(w, line.method)?;
    w.push_str(",\"path\":");
    string(w, line.path)?;
    let mut n = itoa::Buffer::new();
    for (name, value) in [
        (",\"status\":", u64::from(line.status)),
        (",\"bytes\":", line.bytes),
        (",\"micros\":", line.micros),
    ] {
        w.push_str(name);
        w.push_str(n.format(value));
    }
    w.push_str(",\"peer\":");
    string(w, line.peer)?;
    w.push_str(if line.complete {
        ",\"complete\":true},\"target\":\""
    } else {
        ",\"complete\":false},\"target\":\""
    });
    w.push_str(ACCESS);
    w.push('"');
    json_end(w, Some(line.id))
}

#[cfg(test)]
mod tests {
    use gateway_core::Protocol;

    use super::*;

    fn line(path: &str) -> AccessLine<'_> {
        AccessLine {
            id: 7,
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

//! The log line, in tracing-subscriber's text or JSON shape, with the request id of
//! [`gateway_core::request_id`] where tracing-subscriber would print the request's span.
//!
//! Written here rather than with tracing-subscriber's `Format` because the request is no
//! longer a span (a span per request cost a slab entry, its fields formatted, and filter
//! lookups on every poll), and that `Format` prints spans only. The shapes are theirs: text
//! `2026-12-01T16:03:13.903904Z  INFO request{id=1}: gatewayd::access: protocol=http ...`,
//! JSON `{"timestamp":..,"level":..,"fields":{..},"target":..,"span":{"id":1,"name":"request"},"spans":[..]}`.

use std::fmt::{self, Write as _};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::clock::write_at;

/// How one event becomes one line.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lines {
    /// `time` off under journald, which stamps each line itself.
    Text {
        time: bool,
    },
    Json,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *self {
            Lines::Text { time } => text(ctx, &mut w, event, time),
            Lines::Json => json(&mut w, event),
        }
    }
}

fn text<S, N>(
    ctx: &FmtContext<'_, S, N>,
    w: &mut Writer<'_>,
    event: &Event<'_>,
    time: bool,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    let ansi = w.has_ansi_escapes();
    prefix(
        w,
        ansi,
        time.then(Instant::now),
        *meta.level(),
        gateway_core::request_id::current(),
    )?;
    // The libraries' own spans (hyper's, at debug level), as tracing-subscriber prints them.
    for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
        w.write_str(span.name())?;
        if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
            && !fields.is_empty()
        {
            write!(w, "{{{fields}}}")?;
        }
        w.write_str(": ")?;
    }
    target(w, ansi, meta.target())?;
    fields(w, event)
}

/// A text line's start: time (of `time`, if any), level and request id, as
/// tracing-subscriber's `Full` writes them (the id where it would print the span
/// `request{id=N}`).
pub(crate) fn prefix(
    w: &mut impl fmt::Write,
    ansi: bool,
    time: Option<Instant>,
    level: Level,
    id: Option<u64>,
) -> fmt::Result {
    if let Some(at) = time {
        write_at(w, at)?;
        w.write_char(' ')?;
    }
    // With its space: one piece fewer on a line per request.
    let (level, colour) = match level {
        Level::TRACE => ("TRACE ", "35"),
        Level::DEBUG => ("DEBUG ", "34"),
        Level::INFO => (" INFO ", "32"),
        Level::WARN => (" WARN ", "33"),
        Level::ERROR => ("ERROR ", "31"),
    };
    if ansi {
        coloured(w, colour, level.trim_end(), "")?;
    } else {
        w.write_str(level)?;
    }
    if let Some(id) = id {
        w.write_str("request{id=")?;
        w.write_str(itoa::Buffer::new().format(id))?;
        w.write_str("}: ")?;
    }
    Ok(())
}

/// `text` and `then` in the ANSI colour `colour`, then a space: for a terminal, out of the
/// plain path (a line per request) so that it stays small enough to inline.
#[cold]
fn coloured(w: &mut impl fmt::Write, colour: &str, text: &str, then: &str) -> fmt::Result {
    write!(w, "\x1b[{colour}m{text}{then}\x1b[0m ")
}

/// `target: `, dimmed on a terminal.
pub(crate) fn target(w: &mut impl fmt::Write, ansi: bool, target: &str) -> fmt::Result {
    if ansi {
        coloured(w, "2", target, ":")
    } else {
        w.write_str(target)?;
        w.write_str(": ")
    }
}

/// The access line's target.
pub(crate) const ACCESS: &str = "gatewayd::access";

/// An event's fields and the line's end.
pub(crate) fn fields(w: &mut impl fmt::Write, event: &Event<'_>) -> fmt::Result {
    let mut fields = TextFields {
        w,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    w.write_char('\n')
}

/// Fields as tracing-subscriber's default visitor writes them: the message bare, then
/// `name=value` with values in their `Debug` form (so a `str` field is quoted and a `%` one
/// is not), separated by spaces.
struct TextFields<'a, W> {
    w: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: fmt::Write> TextFields<'_, W> {
    /// Writes ` name=` (or ` ` for the message) and says whether the field is to be written.
    fn name(&mut self, field: &Field) -> bool {
        if self.result.is_err() || field.name().starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.w.write_char(' ');
        }
        let name = field.name();
        if self.result.is_ok() && name != "message" {
            self.result = self
                .w
                .write_str(name.strip_prefix("r#").unwrap_or(name))
                .and_then(|()| self.w.write_char('='));
        }
        self.result.is_ok()
    }
}

impl<W: fmt::Write> Visit for TextFields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" if self.name(field) => self.result = self.w.write_str(value),
            "message" => {}
            _ => self.record_debug(field, &value),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.name(field) {
            self.result = self.w.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.name(field) {
            self.result = self.w.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field) {
            self.result = self.w.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            self.result = write!(self.w, "{value:?}");
        }
    }
}

fn json(w: &mut Writer<'_>, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    json_start(w, *meta.level(), Instant::now())?;
    let mut fields = JsonFields {
        w,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    w.write_str("},\"target\":")?;
    string(w, meta.target())?;
    json_end(w, gateway_core::request_id::current())
}

/// A JSON line's start, as tracing-subscriber writes it (stamped with the time of `at`), up to
/// the opening of its fields.
pub(crate) fn json_start(w: &mut impl fmt::Write, level: Level, at: Instant) -> fmt::Result {
    w.write_str("{\"timestamp\":\"")?;
    write_at(w, at)?;
    w.write_str("\",\"level\":\"")?;
    w.write_str(level.as_str())?;
    w.write_str("\",\"fields\":{")
}

/// A JSON line's end: the request as tracing-subscriber writes the current span and the span
/// list, then the closing brace.
pub(crate) fn json_end(w: &mut impl fmt::Write, id: Option<u64>) -> fmt::Result {
    if let Some(id) = id {
        let mut digits = itoa::Buffer::new();
        let id = digits.format(id);
        w.write_str(",\"span\":{\"id\":")?;
        w.write_str(id)?;
        w.write_str(",\"name\":\"request\"},\"spans\":[{\"id\":")?;
        w.write_str(id)?;
        w.write_str(",\"name\":\"request\"}]")?;
    }
    w.write_str("}\n")
}

/// Fields as tracing-subscriber's JSON writes them: numbers and booleans as such, everything
/// else a string (a `Debug` value in its `Debug` form).
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    /// Writes `"name":` and says whether the field is to be written.
    fn name(&mut self, field: &Field) -> bool {
        if self.result.is_err() || field.name().starts_with("log.") {
            return false;
        }
        let sep = if self.first { "" } else { "," };
        self.first = false;
        self.result = write!(self.w, "{sep}\"{}\":", field.name());
        self.result.is_ok()
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        if self.name(field) {
            self.result = write!(self.w, "{value}");
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match value.is_finite() {
            true => self.raw(field, value),
            false => self.record_debug(field, &value),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.name(field) {
            self.result = string(self.w, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            self.result = (|| {
                self.w.write_char('"')?;
                write!(Escaped(self.w), "{value:?}")?;
                self.w.write_char('"')
            })();
        }
    }
}

/// A JSON string.
pub(crate) fn string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what passes through for the inside of a JSON string (RFC 8259, section 7).
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            self.0.write_str(&rest[..i])?;
            let c = rest.as_bytes()[i];
            match c {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{c:04x}")?,
            }
            rest = &rest[i + 1..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        let mut w = Writer::new(&mut out);
        string(&mut w, s).unwrap();
        out
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_would() {
        for s in [
            "plain",
            "a\"b\\c",
            "line\nnext\r\ttab",
            "\u{1}\u{1f}",
            "é ✓ \u{7f}",
        ] {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}

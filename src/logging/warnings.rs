//! CGI mode's logger: warnings and errors on stderr, one line each, nothing else.
//!
//! A CGI program starts once per request, and tracing-subscriber's fmt layer sets up a span
//! registry (slab shards allocated up front) and a filter for each start: about 5% of a whole
//! CGI request. CGI mode needs neither spans nor filtering below WARN, so unless `RUST_LOG`
//! asks for more, this subscriber stands in. It is the part of `fmt` that CGI uses: the
//! level, the target, the message and the fields.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};

/// Writes events at WARN and ERROR to stderr; spans are not tracked.
pub(super) struct Warnings;

impl tracing::Subscriber for Warnings {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::WARN)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{:>5} {}: ", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        line.push('\n');
        // One write per line: lines from several processes do not interleave in the host's log.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The message first, then `name=value` for every other field.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = match field.name() {
            "message" => write!(self.0, "{value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = match field.name() {
            "message" => write!(self.0, "{value}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }
}

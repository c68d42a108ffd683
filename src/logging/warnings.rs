//! CGI mode's logger: warnings and errors on stderr, one line each, nothing else.
//!
//! A CGI program starts once per request, and tracing-subscriber's fmt layer sets up a span
//! registry (slab shards allocated up front) and a filter for each start: about 5% of a whole
//! CGI request. CGI mode needs neither spans nor filtering below WARN, so unless `RUST_LOG`
//! asks for more, this subscriber stands in. It writes its lines as the daemon's text log
//! does ([`format`]), without the time (the host's error log stamps them).

use std::io::Write as _;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};

use super::format;

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
        let mut line = String::new();
        let id = gateway_core::request_id::current();
        let _ = format::prefix(&mut line, false, None, *meta.level(), id)
            .and_then(|()| format::target(&mut line, false, meta.target()))
            .and_then(|()| format::fields(&mut line, event));
        // One write per line: lines from several processes do not interleave in the host's log.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

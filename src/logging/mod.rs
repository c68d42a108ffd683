//! Logs on `tracing`: human-readable by default, JSON on request; `RUST_LOG` filters.

mod access;
mod buffered;
mod clock;
mod format;
mod warnings;

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use format::Lines;

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Installs the global subscriber, filtered by `RUST_LOG` or else `default_level` (once; later calls do nothing) and routes panics through it,
/// so a panic's message and place land in the same log as everything else.
///
/// Lines go through [`buffered`]'s writer thread, so that a request's access line costs no
/// `write`; call [`flush`] before exiting. Text is coloured only on a terminal. Under journald
/// (`JOURNAL_STREAM` set) text lines carry no colour and no timestamp: the journal adds its own.
pub fn init(format: LogFormat, default_level: &str, stats: &'static gateway_core::Stats) {
    match buffered::Buffered::start(stats) {
        Ok(writer) => install(format, default_level, writer.clone(), Some(writer)),
        Err(_) => install(format, default_level, std::io::stderr, None),
    }
}

/// [`init`], writing each line to stderr at once, without a thread: for one-request processes.
pub fn init_sync(format: LogFormat, default_level: &str) {
    install(format, default_level, std::io::stderr, None);
}

/// Where the app stack writes its access lines: into the log [`init`] installed, formatted
/// as its other lines are but without a `tracing` event; a `tracing` event when the daemon's
/// logger is not installed (tests, benches, CGI mode).
pub fn access_sink() -> &'static dyn gateway_core::AccessSink {
    match SINK.get() {
        Some(sink) => sink,
        None => &gateway_core::TracingSink,
    }
}

static SINK: std::sync::OnceLock<access::Sink> = std::sync::OnceLock::new();

/// Writes the lines [`init`]'s writer holds: at exit, and before anything else goes to stderr.
pub fn flush() {
    buffered::flush();
}

/// For the runtime's `on_thread_park`: a worker going idle hands its access lines to the
/// writer (between parks they gather in its own memory).
pub(crate) fn thread_parked() {
    buffered::parked();
}

/// For the runtime's `on_thread_stop`: a thread's last lines go to the writer.
pub(crate) fn thread_stopping() {
    buffered::stopping();
}

fn install<W>(format: LogFormat, default_level: &str, writer: W, buffer: Option<buffered::Buffered>)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let (lines, ansi) = match format {
        LogFormat::Json => (Lines::Json, false),
        LogFormat::Text if journald => (Lines::Text { time: false }, false),
        LogFormat::Text => (Lines::Text { time: true }, std::io::stderr().is_terminal()),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .event_format(lines)
        .with_writer(writer)
        .try_init();
    if installed.is_ok() {
        route_panics();
        let _ = SINK.set(access::Sink {
            enabled: tracing::enabled!(target: "gatewayd::access", tracing::Level::INFO),
            lines,
            ansi,
            out: buffer,
        });
    }
}

/// CGI mode: warnings and errors on stderr, set up in no time (see [`warnings`]). With
/// `RUST_LOG` set, the full logger instead, to debug.
pub fn init_cgi() {
    if std::env::var_os("RUST_LOG").is_some() {
        return init_sync(LogFormat::Text, "warn");
    }
    if tracing::subscriber::set_global_default(warnings::Warnings).is_ok() {
        route_panics();
    }
}

/// Panics go to the log, with their place.
fn route_panics() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(
            place = place.as_deref().unwrap_or("?"),
            "panic: {}",
            panic_message(info)
        );
        // The process may be about to end.
        flush();
    }));
}

fn panic_message<'a>(info: &'a std::panic::PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string payload)")
}

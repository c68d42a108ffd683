//! systemd's service notifications (`Type=notify`, sd_notify(3)): READY, RELOADING, STOPPING,
//! WATCHDOG and STATUS. Without `NOTIFY_SOCKET` each call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Every listener is open: `READY=1`, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts: `RELOADING=1` with the monotonic time `Type=notify-reload` asks for.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// The drain starts: `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// A status line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Keeps `systemctl status` current: requests in flight, open connections, requests served,
/// every 5 seconds (only under systemd).
pub fn spawn_status(stats: &'static gateway_core::Stats) {
    spawn_status_line(move || {
        let s = stats.snapshot();
        let open: i64 = s.connections.iter().map(|(_, n)| n).sum();
        format!(
            "{} in flight, {open} connections, {} served",
            s.in_flight,
            s.total()
        )
    });
}

/// Sets `systemctl status` to `line()` every 5 seconds, from a task of the runtime (only under
/// systemd).
pub fn spawn_status_line(line: impl Fn() -> String + Send + 'static) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tick.tick().await;
            status(&line());
        }
    });
}

/// When systemd watches us (`WatchdogSec=`, so `WATCHDOG_USEC` is set), pings it at half the
/// interval from a task of the runtime: a stuck runtime stops the pings and systemd restarts us.
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(10));
    tracing::info!(?interval, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}

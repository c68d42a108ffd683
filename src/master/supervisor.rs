//! The master's work: bind every listener once, keep `processes` workers serving them, replace
//! one that dies (with a backoff), chain-reload on SIGHUP, stop them all on SIGTERM/SIGINT.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::counters;
use super::handoff::{self, Bound, Master, Start};
use crate::config::{Config, Plan, Registry};
use crate::listen::Listener;
use crate::logging::LogFormat;
use crate::server::{keyed, with_stdin};
use crate::systemd;

/// Past `shutdown_timeout`, how long a worker told to go may take before it is killed.
const GRACE: Duration = Duration::from_secs(5);
/// A worker that lived this long died of something new: its slot's backoff starts over.
const STEADY: Duration = Duration::from_secs(10);
/// The first wait before a dead worker is replaced, doubled at each death in a row.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait before a replacement.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// What a worker's watcher reports.
enum Event {
    /// The worker's apps are built and its sockets served.
    Ready(u32),
    /// The worker is gone (reaped).
    Exited(u32, io::Result<ExitStatus>),
}

/// A worker process.
struct Worker {
    pid: u32,
    /// Which of the `processes` places it fills.
    slot: usize,
    ready: bool,
    /// Told to go (replaced, or beyond a smaller `processes`): not replaced when it exits.
    leaving: bool,
    spawned: Instant,
    /// When a leaving worker is killed if still there.
    kill_at: Option<Instant>,
}

/// One of the `processes` places.
#[derive(Default)]
struct Slot {
    /// Deaths in a row, for the backoff.
    failures: u32,
    /// When the next worker for it starts.
    restart_at: Option<Instant>,
}

/// A chain reload under way: each slot in turn gets a new worker; once it is ready, the old
/// one is told to go, and the next slot follows.
struct Reload {
    plan: Plan,
    source: Arc<File>,
    /// The next slot to replace.
    next: usize,
    /// Slots to go through: the larger of the old and the new `processes`.
    slots: usize,
    /// The new worker being waited for.
    incoming: Option<u32>,
}

#[derive(PartialEq, Eq)]
enum Phase {
    /// The first workers are starting: one that dies fails the start.
    Starting,
    Serving,
}

/// The master's state.
pub(super) struct Supervisor {
    registry: Registry,
    exe: PathBuf,
    log_format: LogFormat,
    /// The config the workers run.
    plan: Plan,
    /// Its text, handed to every new worker.
    source: Arc<File>,
    sockets: Vec<Bound>,
    /// The workers' status files.
    status_dir: tempfile::TempDir,
    workers: Vec<Worker>,
    slots: Vec<Slot>,
    reload: Option<Reload>,
    /// A SIGHUP came during a reload (or the start): reload again after it.
    reload_again: bool,
    phase: Phase,
    started: f64,
    events: mpsc::UnboundedSender<Event>,
}

impl Supervisor {
    /// Binds the listeners of `plan` and runs until SIGTERM or SIGINT. Fails when a listener
    /// cannot be opened or a first worker dies before it is ready.
    pub(super) async fn run(
        plan: Plan,
        registry: Registry,
        log_format: LogFormat,
    ) -> anyhow::Result<()> {
        // Before anything is announced: a signal sent as soon as `listening` shows must be ours.
        let mut sigterm = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
        let mut sigint = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
        let mut sighup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;

        let exe =
            std::env::current_exe().context("cannot find this executable to start workers")?;
        let wanted = with_stdin(plan.listen.clone());
        let mut sockets = Vec::with_capacity(wanted.len());
        for (key, cfg) in keyed(&wanted) {
            let listener = Listener::bind(cfg)
                .await
                .with_context(|| format!("cannot listen on {}", cfg.address.get_ref()))?;
            let socket = listener.into_held().context("cannot hand a socket down")?;
            sockets.push(Bound { key, socket });
        }
        if sockets.is_empty() {
            tracing::warn!("the config has no [[listen]] entry: nothing to serve");
        }
        let source = snapshot(&plan.source).context("cannot keep the config's text")?;
        let status_dir = tempfile::Builder::new()
            .prefix("gatewayd-workers-")
            .tempdir()
            .context("cannot make a directory for the workers' status")?;
        let (events, mut rx) = mpsc::unbounded_channel();
        let processes = plan.server.processes.unwrap_or(1);
        let mut master = Supervisor {
            registry,
            exe,
            log_format,
            plan,
            source,
            sockets,
            status_dir,
            workers: Vec::new(),
            slots: (0..processes).map(|_| Slot::default()).collect(),
            reload: None,
            reload_again: false,
            phase: Phase::Starting,
            started: counters::now(),
            events,
        };
        tracing::info!(
            processes,
            pid = std::process::id(),
            "master starting its workers"
        );
        for slot in 0..processes {
            let source = master.source.clone();
            master
                .spawn(slot, &source, processes)
                .context("cannot start a worker")?;
        }

        let outcome = loop {
            let wake = master.next_wake();
            tokio::select! {
                _ = sigterm.recv() => break Ok("SIGTERM"),
                _ = sigint.recv() => break Ok("SIGINT"),
                _ = sighup.recv() => master.begin_reload(),
                Some(event) = rx.recv() => match event {
                    Event::Ready(pid) => master.on_ready(pid),
                    Event::Exited(pid, status) => {
                        if let Err(e) = master.on_exit(pid, &status) {
                            break Err(e);
                        }
                    }
                },
                () = sleep_until(wake), if wake.is_some() => master.on_timer(),
            }
        };
        let name = match &outcome {
            Ok(name) => name,
            Err(_) => "a failed start",
        };
        master.stop(name, &mut rx).await;
        outcome.map(drop)
    }

    /// How many workers the current config wants.
    fn processes(&self) -> usize {
        self.plan.server.processes.unwrap_or(1)
    }

    /// Starts a worker for `slot` on the config text `source` (whose `processes` is given).
    fn spawn(&mut self, slot: usize, source: &File, processes: usize) -> io::Result<u32> {
        let start = Start {
            exe: &self.exe,
            config: &self.plan.path,
            log_format: self.log_format,
            slot,
            sockets: &self.sockets,
            source,
            status_dir: self.status_dir.path(),
            master: Master {
                pid: std::process::id(),
                started: self.started,
                processes,
            },
        };
        let (child, ready) = handoff::spawn(&start)?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the worker was gone at once"))?;
        watch(child, ready, self.events.clone());
        tracing::info!(slot, pid, "worker started");
        self.workers.push(Worker {
            pid,
            slot,
            ready: false,
            leaving: false,
            spawned: Instant::now(),
            kill_at: None,
        });
        Ok(pid)
    }

    fn on_ready(&mut self, pid: u32) {
        let Some(worker) = self.workers.iter_mut().find(|w| w.pid == pid) else {
            return;
        };
        worker.ready = true;
        if self.phase == Phase::Starting {
            let serving = self.workers.iter().filter(|w| !w.leaving);
            if serving.clone().count() >= self.processes() && serving.clone().all(|w| w.ready) {
                self.announce();
            }
            return;
        }
        if self
            .reload
            .as_ref()
            .is_some_and(|r| r.incoming == Some(pid))
        {
            self.took_over(pid);
        }
    }

    /// Every first worker is ready: the listeners are announced, systemd is told.
    fn announce(&mut self) {
        self.phase = Phase::Serving;
        for bound in &self.sockets {
            let (protocol, address) = (bound.socket.protocol, &bound.socket);
            println!("listening {protocol} {address}");
            tracing::info!(%protocol, %address, "listening");
        }
        std::io::stdout().flush().ok();
        systemd::ready(&self.status_line());
        systemd::spawn_watchdog();
        spawn_status(self.status_dir.path().to_owned());
        if std::mem::take(&mut self.reload_again) {
            self.begin_reload();
        }
    }

    fn status_line(&self) -> String {
        format!(
            "serving on {} listeners with {} workers",
            self.sockets.len(),
            self.processes()
        )
    }

    /// A worker was reaped. Only a failed start is an error.
    fn on_exit(&mut self, pid: u32, status: &io::Result<ExitStatus>) -> anyhow::Result<()> {
        let Some(at) = self.workers.iter().position(|w| w.pid == pid) else {
            return Ok(());
        };
        let worker = self.workers.remove(at);
        let _ = std::fs::remove_file(counters::file(self.status_dir.path(), pid));
        let how = describe(status);
        let slot = worker.slot;
        if worker.leaving {
            tracing::info!(slot, pid, "old worker {how}");
            return Ok(());
        }
        if self.phase == Phase::Starting {
            anyhow::bail!("worker {slot} (pid {pid}) {how} before it was ready");
        }
        if self
            .reload
            .as_ref()
            .is_some_and(|r| r.incoming == Some(pid))
        {
            tracing::error!(
                slot,
                pid,
                "reload failed: the new worker {how} before it was ready (its error is above); \
                 the old workers stay"
            );
            self.reload = None;
            systemd::ready(&format!("reload failed; {}", self.status_line()));
            self.cover();
            if std::mem::take(&mut self.reload_again) {
                self.begin_reload();
            }
            return Ok(());
        }
        let covered = self.workers.iter().any(|w| w.slot == slot && !w.leaving);
        match self.slots.get_mut(slot) {
            Some(s) if !covered => {
                if worker.spawned.elapsed() >= STEADY {
                    s.failures = 0;
                }
                s.failures += 1;
                let delay = backoff(s.failures);
                tracing::warn!(slot, pid, "worker {how}; starting another in {delay:?}");
            }
            _ => tracing::warn!(slot, pid, "worker {how}"),
        }
        self.cover();
        Ok(())
    }

    /// Schedules a worker for every slot that has none.
    fn cover(&mut self) {
        let now = Instant::now();
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let covered = self.workers.iter().any(|w| w.slot == slot && !w.leaving);
            if !covered && s.restart_at.is_none() {
                let delay = match s.failures {
                    0 => Duration::ZERO,
                    n => backoff(n),
                };
                s.restart_at = Some(now + delay);
            }
        }
    }

    /// The next replacement or kill that is due.
    fn next_wake(&self) -> Option<Instant> {
        let restarts = self.slots.iter().filter_map(|s| s.restart_at);
        let kills = self.workers.iter().filter_map(|w| w.kill_at);
        restarts.chain(kills).min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if w.kill_at.is_some_and(|at| at <= now) {
                tracing::warn!(
                    slot = w.slot,
                    pid = w.pid,
                    "an old worker outlived its drain: killing it"
                );
                send(w.pid, Signal::SIGKILL);
                w.kill_at = None;
            }
        }
        let due: Vec<usize> = (0..self.slots.len())
            .filter(|s| self.slots[*s].restart_at.is_some_and(|at| at <= now))
            .collect();
        let processes = self.processes();
        for slot in due {
            self.slots[slot].restart_at = None;
            if self.workers.iter().any(|w| w.slot == slot && !w.leaving) {
                continue;
            }
            let source = self.source.clone();
            if let Err(e) = self.spawn(slot, &source, processes) {
                tracing::error!(slot, error = %e, "cannot start a worker");
                self.slots[slot].failures += 1;
            }
        }
        self.cover();
    }

    /// SIGHUP: checks the config, then replaces the workers one by one.
    fn begin_reload(&mut self) {
        if self.phase == Phase::Starting || self.reload.is_some() {
            tracing::info!("SIGHUP: a reload follows the one under way (or the start)");
            self.reload_again = true;
            return;
        }
        systemd::reloading();
        let plan = match Config::load_plan(&self.plan.path, &self.registry) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!("reload failed, the old config stays: {e}");
                systemd::ready(&format!("reload failed ({e}); {}", self.status_line()));
                return;
            }
        };
        let source = match snapshot(&plan.source) {
            Ok(source) => source,
            Err(e) => {
                tracing::error!("reload failed, the old config stays: cannot keep its text: {e}");
                systemd::ready(&format!("reload failed; {}", self.status_line()));
                return;
            }
        };
        self.warn_of_listener_changes(&plan);
        if plan.server.processes.is_none() {
            tracing::warn!(
                "processes is gone from the config: leaving master mode needs a restart; one worker runs"
            );
        }
        let slots = self.processes().max(plan.server.processes.unwrap_or(1));
        tracing::info!(slots, "reloading: replacing the workers one by one");
        self.reload = Some(Reload {
            plan,
            source,
            next: 0,
            slots,
            incoming: None,
        });
        self.advance_reload();
    }

    /// Sockets are bound once: a config that changes them is served on the old ones.
    fn warn_of_listener_changes(&self, plan: &Plan) {
        let wanted = with_stdin(plan.listen.clone());
        let wanted: Vec<_> = keyed(&wanted)
            .into_iter()
            .map(|(key, cfg)| (key, cfg.protocol))
            .collect();
        let bound: Vec<_> = self
            .sockets
            .iter()
            .map(|b| (b.key.clone(), b.socket.protocol))
            .collect();
        if wanted != bound {
            let bound: Vec<String> = self.sockets.iter().map(|b| b.key.clone()).collect();
            tracing::warn!(
                ?bound,
                "the [[listen]] entries changed: listener changes need a restart; \
                 the workers keep serving the sockets bound at start"
            );
        }
    }

    /// Starts the next slot's new worker, or ends the reload.
    fn advance_reload(&mut self) {
        loop {
            let Some(reload) = &mut self.reload else {
                return;
            };
            if reload.incoming.is_some() {
                return;
            }
            if reload.next >= reload.slots {
                let replaced = reload.slots;
                self.reload = None;
                tracing::info!(replaced, "reloaded: every worker is new");
                systemd::ready(&format!("reloaded; {}", self.status_line()));
                if std::mem::take(&mut self.reload_again) {
                    self.begin_reload();
                }
                return;
            }
            let slot = reload.next;
            reload.next += 1;
            let processes = reload.plan.server.processes.unwrap_or(1);
            if slot >= processes {
                self.retire_slot(slot, None);
                continue;
            }
            let source = reload.source.clone();
            match self.spawn(slot, &source, processes) {
                Ok(pid) => {
                    if let Some(reload) = &mut self.reload {
                        reload.incoming = Some(pid);
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        "reload failed: cannot start a worker: {e}; the old workers stay"
                    );
                    self.reload = None;
                    systemd::ready(&format!("reload failed; {}", self.status_line()));
                    return;
                }
            }
        }
    }

    /// The reload's new worker `pid` is ready: its config is now the one every new worker
    /// runs, and the slot's old worker goes.
    fn took_over(&mut self, pid: u32) {
        let Some(reload) = &mut self.reload else {
            return;
        };
        reload.incoming = None;
        if !Arc::ptr_eq(&self.source, &reload.source) {
            self.plan = reload.plan.clone();
            self.source = reload.source.clone();
            let processes = self.processes();
            self.slots.resize_with(processes, Slot::default);
        }
        if let Some(slot) = self.workers.iter().find(|w| w.pid == pid).map(|w| w.slot) {
            self.retire_slot(slot, Some(pid));
        }
        self.advance_reload();
    }

    /// Tells every worker of `slot` but `keep` to finish and go (SIGUSR2; see
    /// `server::serve_worker`).
    fn retire_slot(&mut self, slot: usize, keep: Option<u32>) {
        let kill_at = Instant::now() + self.plan.server.shutdown_timeout + GRACE;
        for w in &mut self.workers {
            if w.slot == slot && Some(w.pid) != keep && !w.leaving {
                tracing::info!(slot, pid = w.pid, "replacing worker");
                send(w.pid, Signal::SIGUSR2);
                w.leaving = true;
                w.kill_at = Some(kill_at);
            }
        }
    }

    /// Forwards the stop to every worker, waits for them (killing what outlives
    /// `shutdown_timeout` and a grace), and returns when none is left.
    async fn stop(&mut self, name: &str, rx: &mut mpsc::UnboundedReceiver<Event>) {
        let timeout = self.plan.server.shutdown_timeout;
        tracing::info!(
            signal = name,
            workers = self.workers.len(),
            ?timeout,
            "stopping the workers"
        );
        systemd::stopping();
        self.reload = None;
        for w in &self.workers {
            send(w.pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + timeout + GRACE;
        let mut killed = false;
        while !self.workers.is_empty() {
            tokio::select! {
                Some(event) = rx.recv() => {
                    if let Event::Exited(pid, status) = event
                        && let Some(at) = self.workers.iter().position(|w| w.pid == pid)
                    {
                        let w = self.workers.remove(at);
                        tracing::info!(slot = w.slot, pid, "worker {}", describe(&status));
                    }
                }
                () = tokio::time::sleep_until(deadline), if !killed => {
                    tracing::warn!(left = self.workers.len(), "workers outlived shutdown_timeout: killing them");
                    for w in &self.workers {
                        send(w.pid, Signal::SIGKILL);
                    }
                    killed = true;
                }
            }
        }
        tracing::info!("every worker has exited; exiting");
    }
}

/// Waits for a worker's readiness byte, then for its end.
fn watch(mut child: tokio::process::Child, ready: OwnedFd, events: mpsc::UnboundedSender<Event>) {
    let Some(pid) = child.id() else {
        return;
    };
    tokio::spawn(async move {
        // EOF instead of the byte: the worker died (or closed the pipe) before it was ready.
        if let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(ready) {
            let mut byte = [0u8; 1];
            if matches!(pipe.read(&mut byte).await, Ok(1)) {
                let _ = events.send(Event::Ready(pid));
            }
        }
        let status = child.wait().await;
        let _ = events.send(Event::Exited(pid, status));
    });
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn send(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    if let Err(e) = kill(Pid::from_raw(raw), signal) {
        tracing::debug!(pid, %signal, error = %e, "cannot signal a worker");
    }
}

/// How a worker ended, for the log: `was killed by SIGSEGV (core dumped)`, `exited with code 1`.
fn describe(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.signal(), s.code()) {
            (Some(sig), _) => {
                let name = Signal::try_from(sig).map_or("an unknown signal", Signal::as_str);
                let core = if s.core_dumped() {
                    " (core dumped)"
                } else {
                    ""
                };
                format!("was killed by {name}{core}")
            }
            (None, Some(code)) => format!("exited with code {code}"),
            (None, None) => "ended".to_owned(),
        },
        Err(e) => format!("was lost ({e})"),
    }
}

/// The wait before the `failures`-th replacement in a row: 100 ms, doubling, at most 10 s.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(10);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// The config text in an unlinked file, for workers to read (see `handoff`).
fn snapshot(text: &str) -> io::Result<Arc<File>> {
    let mut file = tempfile::tempfile()?;
    file.write_all(text.as_bytes())?;
    Ok(Arc::new(file))
}

/// Keeps `systemctl status` current with every worker's counts, every 5 seconds (only under
/// systemd).
fn spawn_status(dir: PathBuf) {
    systemd::spawn_status_line(move || {
        let all = counters::read_all(&dir, 0);
        let served: u64 = all
            .iter()
            .flat_map(|c| &c.requests)
            .map(|(_, _, n)| n)
            .sum();
        let in_flight: i64 = all.iter().map(|c| c.in_flight).sum();
        format!(
            "{} workers, {in_flight} in flight, {served} served",
            all.len()
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(9), MAX_DELAY);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn deaths_are_described() {
        let segv = ExitStatus::from_raw(11);
        assert_eq!(describe(&Ok(segv)), "was killed by SIGSEGV");
        let one = ExitStatus::from_raw(1 << 8);
        assert_eq!(describe(&Ok(one)), "exited with code 1");
    }
}

//! What a master hands each worker it starts, and how the worker takes it.
//!
//! A worker is the same executable started afresh (`gatewayd serve --config PATH`), not a
//! fork: it inherits no runtime, no thread and no interpreter from the master. Its descriptors
//! 3 and up are the listening sockets, in the master's order, then the write end of a pipe (one
//! byte on it: the worker's apps are built and its sockets served), then the config text the
//! master validated (an unlinked file, read at offsets: every worker of a reload runs the same
//! text, whatever the file on disk says by then). One private variable, `GATEWAYD_WORKER`,
//! form-encoded, says which descriptor is what, the worker's slot and where status files go.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use gateway_core::Protocol;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use crate::listen::Held;
use crate::logging::LogFormat;

/// The variable that makes `gatewayd serve` a worker.
pub(crate) const ENV: &str = "GATEWAYD_WORKER";

/// Variables that are the master's alone: systemd's, whose sockets and notifications go
/// through the master.
const MASTER_ONLY: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// The first descriptor handed down.
const FIRST: RawFd = 3;

/// A socket the master bound, under the key its `[[listen]]` entry has (see
/// `server::listeners`).
pub(crate) struct Bound {
    pub key: String,
    pub socket: Held,
}

/// Everything one worker is started with.
pub(crate) struct Start<'a> {
    pub exe: &'a Path,
    pub config: &'a Path,
    pub log_format: LogFormat,
    pub slot: usize,
    pub sockets: &'a [Bound],
    /// The config text the worker is to run.
    pub source: &'a File,
    /// Where the workers' status files go.
    pub status_dir: &'a Path,
    pub master: Master,
}

/// The master, as the status page shows it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Master {
    pub pid: u32,
    /// When it started, in seconds since the epoch.
    pub started: f64,
    /// Its `processes`.
    pub processes: usize,
}

/// Starts a worker: the child, and the read end of its readiness pipe.
pub(crate) fn spawn(start: &Start<'_>) -> io::Result<(tokio::process::Child, OwnedFd)> {
    let (ready_read, ready_write) = io::pipe()?;
    let mut passed: Vec<&dyn AsFd> = start
        .sockets
        .iter()
        .map(|b| &b.socket as &dyn AsFd)
        .collect();
    passed.push(&ready_write);
    passed.push(start.source);
    // Each copy lands above every target descriptor, so that no dup2 below overwrites a copy
    // still to be placed; close-on-exec, so that no other child gets them.
    let above = FIRST + RawFd::try_from(passed.len()).map_err(io::Error::other)?;
    let copies = passed
        .iter()
        .map(|fd| {
            let raw = fcntl(fd.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(above))?;
            // SAFETY: fcntl just made this descriptor; nothing else owns it.
            Ok(unsafe { OwnedFd::from_raw_fd(raw) })
        })
        .collect::<Result<Vec<OwnedFd>, nix::Error>>()?;
    let raws: Vec<RawFd> = copies.iter().map(AsRawFd::as_raw_fd).collect();

    let mut env = form_urlencoded::Serializer::new(String::new());
    env.append_pair("slot", &start.slot.to_string());
    let n = start.sockets.len() as RawFd;
    for (i, bound) in start.sockets.iter().enumerate() {
        let socket = form_urlencoded::Serializer::new(String::new())
            .append_pair("fd", &(FIRST + i as RawFd).to_string())
            .append_pair("protocol", bound.socket.protocol.as_str())
            .append_pair("key", &bound.key)
            .append_pair("name", &bound.socket.to_string())
            .finish();
        env.append_pair("socket", &socket);
    }
    env.append_pair("ready", &(FIRST + n).to_string());
    env.append_pair("source", &(FIRST + n + 1).to_string());
    env.append_pair("status", &start.status_dir.to_string_lossy());
    env.append_pair("master", &start.master.pid.to_string());
    env.append_pair("started", &start.master.started.to_string());
    env.append_pair("processes", &start.master.processes.to_string());

    let format = match start.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let mut cmd = tokio::process::Command::new(start.exe);
    cmd.arg("--log-format")
        .arg(format)
        .args(["serve", "--config"])
        .arg(start.config)
        .env(ENV, env.finish())
        .stdin(Stdio::null());
    for name in MASTER_ONLY {
        cmd.env_remove(name);
    }
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, prctl) run, on
    // descriptors the parent keeps open until spawn returns; nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            for (i, raw) in raws.iter().enumerate() {
                // dup2 clears close-on-exec on the target: these are what the worker keeps.
                if nix::libc::dup2(*raw, FIRST + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // The master gone (even by SIGKILL), its workers drain and exit.
            nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(copies);
    drop(ready_write);
    Ok((child, OwnedFd::from(ready_read)))
}

/// A socket handed down.
pub(crate) struct Socket {
    pub fd: RawFd,
    pub protocol: Protocol,
    /// Its `[[listen]]` entry's key.
    pub key: String,
    /// Its address as bound (`unix:/run/x.sock`, `127.0.0.1:41234`).
    pub name: String,
}

/// What a worker was handed, read from [`ENV`].
pub(crate) struct Handoff {
    pub slot: usize,
    pub sockets: Vec<Socket>,
    pub ready: File,
    pub source: File,
    pub status_dir: PathBuf,
    pub master: Master,
}

impl Handoff {
    /// The handoff, when this process is a worker. Every descriptor named is made
    /// close-on-exec at once, before any app can start a process of its own.
    pub(crate) fn from_env() -> Option<Result<Handoff, String>> {
        let value = std::env::var_os(ENV)?;
        Some(parse(value.as_encoded_bytes()).map_err(|e| format!("{ENV}: {e}")))
    }

    /// The config text, whole.
    pub(crate) fn read_source(&self) -> io::Result<String> {
        let len = self.source.metadata()?.len();
        let mut text = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        // At an offset: the file's position is shared with the master and the other workers.
        self.source.read_exact_at(&mut text, 0)?;
        String::from_utf8(text).map_err(io::Error::other)
    }
}

fn parse(value: &[u8]) -> Result<Handoff, String> {
    let (mut slot, mut ready, mut source, mut status_dir) = (None, None, None, None);
    let (mut pid, mut started, mut processes) = (None, None, None);
    let mut sockets = Vec::new();
    let number = |v: &str| {
        v.parse::<usize>()
            .map_err(|_| format!("{v:?} is not a number"))
    };
    for (key, v) in form_urlencoded::parse(value) {
        match &*key {
            "slot" => slot = Some(number(&v)?),
            "ready" => ready = Some(take_fd(&v)?),
            "source" => source = Some(take_fd(&v)?),
            "status" => status_dir = Some(PathBuf::from(&*v)),
            "master" => pid = Some(v.parse::<u32>().map_err(|_| format!("bad pid {v:?}"))?),
            "started" => started = Some(v.parse::<f64>().map_err(|_| format!("bad time {v:?}"))?),
            "processes" => processes = Some(number(&v)?),
            "socket" => sockets.push(parse_socket(&v)?),
            _ => return Err(format!("unknown key {key:?}")),
        }
    }
    let missing = |what: &str| format!("no {what}");
    Ok(Handoff {
        slot: slot.ok_or_else(|| missing("slot"))?,
        sockets,
        ready: ready.ok_or_else(|| missing("ready"))?,
        source: source.ok_or_else(|| missing("source"))?,
        status_dir: status_dir.ok_or_else(|| missing("status"))?,
        master: Master {
            pid: pid.ok_or_else(|| missing("master"))?,
            started: started.ok_or_else(|| missing("started"))?,
            processes: processes.ok_or_else(|| missing("processes"))?,
        },
    })
}

fn parse_socket(v: &str) -> Result<Socket, String> {
    let (mut fd, mut protocol, mut key, mut name) = (None, None, None, None);
    for (k, v) in form_urlencoded::parse(v.as_bytes()) {
        match &*k {
            "fd" => fd = Some(v.parse().map_err(|_| format!("bad descriptor {v:?}"))?),
            "protocol" => {
                let known = [
                    Protocol::Http,
                    Protocol::FastCgi,
                    Protocol::Scgi,
                    Protocol::Uwsgi,
                ];
                let found = known.into_iter().find(|p| p.as_str() == v);
                protocol = Some(found.ok_or_else(|| format!("unknown protocol {v:?}"))?);
            }
            "key" => key = Some(v.into_owned()),
            "name" => name = Some(v.into_owned()),
            _ => return Err(format!("unknown socket key {k:?}")),
        }
    }
    let (Some(fd), Some(protocol), Some(key), Some(name)) = (fd, protocol, key, name) else {
        return Err(format!("socket {v:?} lacks fd, protocol, key or name"));
    };
    cloexec(fd)?;
    Ok(Socket {
        fd,
        protocol,
        key,
        name,
    })
}

fn cloexec(fd: RawFd) -> Result<(), String> {
    // SAFETY: only a flag is set; the descriptor's owner is decided by the caller.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(|e| format!("descriptor {fd}: {e}"))
}

/// Takes the descriptor `v` names as a file of this process's own.
fn take_fd(v: &str) -> Result<File, String> {
    let fd: RawFd = v.parse().map_err(|_| format!("bad descriptor {v:?}"))?;
    if fd < FIRST {
        return Err(format!("descriptor {fd} is not one a master hands down"));
    }
    cloexec(fd)?;
    // SAFETY: the master placed this descriptor for this process alone, and the handoff is
    // read once (see `worker::run`), so nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_without_its_parts_is_refused() {
        let e = parse(b"slot=0&status=%2Ftmp").err().unwrap_or_default();
        assert_eq!(e, "no ready");
        let e = parse(b"slot=x").err().unwrap_or_default();
        assert!(e.contains("not a number"), "{e}");
        let e = parse(b"socket=fd%3D3%26protocol%3Dgopher")
            .err()
            .unwrap_or_default();
        assert!(e.contains("unknown protocol \"gopher\""), "{e}");
        let e = parse(b"socket=fd%3D3").err().unwrap_or_default();
        assert!(e.contains("lacks"), "{e}");
        let e = parse(b"ready=1").err().unwrap_or_default();
        assert!(e.contains("not one a master hands down"), "{e}");
    }
}

//! `cgi`: hosts external CGI scripts (RFC 3875), as fcgiwrap does for nginx, behind every
//! gateway.
//!
//! The first `PATH_INFO` segment below the mount names the script in `root`; the rest is the
//! script's own `PATH_INFO`. Each request runs the script in its own process group, with the
//! request body streamed to its stdin and its stdout parsed as a CGI response and streamed
//! back. A timeout or a client that goes away kills the whole group.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_core::{App, AppConfig, Body, BoxError, Environ, Response, async_trait};
use proto_cgi::{Kind, ScriptHead, parse_head};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The directory that holds the scripts.
    root: PathBuf,
    /// How long a script may run, from start to the end of its output.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration"
    )]
    timeout: Duration,
    /// Variables of the daemon's own environment that scripts also get (`PATH`, `LANG`...).
    #[serde(default)]
    pass_env: Vec<String>,
    /// Scripts running at once; beyond it: 503 with Retry-After.
    #[serde(default = "default_max_scripts")]
    max_scripts: usize,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_scripts() -> usize {
    64
}

/// The factory for `type = "cgi"`; keys `root`, `timeout`, `pass_env`, `max_scripts`.
pub fn factory(cfg: &AppConfig<'_>) -> Result<Arc<dyn App>, BoxError> {
    let s: Settings = cfg.deserialize()?;
    let root = std::fs::canonicalize(&s.root)
        .map_err(|e| format!("root {:?} cannot be used: {e}", s.root.display()))?;
    if !root.is_dir() {
        return Err(format!("root {:?} is not a directory", s.root.display()).into());
    }
    if let Some(bad) = s
        .pass_env
        .iter()
        .find(|n| n.eq_ignore_ascii_case("HTTP_PROXY"))
    {
        return Err(
            format!("pass_env may not hold {bad}: scripts never get HTTP_PROXY (httpoxy)").into(),
        );
    }
    let pass_env = s
        .pass_env
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
        .collect();
    Ok(Arc::new(CgiHost {
        root,
        timeout: s.timeout,
        pass_env,
        slots: Arc::new(Semaphore::new(s.max_scripts.max(1))),
    }))
}

/// The `cgi` app.
pub struct CgiHost {
    root: PathBuf,
    timeout: Duration,
    pass_env: Vec<(OsString, OsString)>,
    slots: Arc<Semaphore>,
}

/// A script found for a request.
struct Script {
    path: PathBuf,
    /// Its name in the URL (the first segment).
    name: Bytes,
    /// What follows the name: the script's PATH_INFO.
    path_info: Bytes,
}

#[async_trait]
impl App for CgiHost {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let script = match self.resolve(env.path_info()) {
            Ok(script) => script,
            Err(status) => return Response::error(status),
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Response::error(503).with_header("Retry-After", "1");
        };
        let deadline = Instant::now() + self.timeout;
        let mut running = match self.spawn(&script, &env, body, permit) {
            Ok(running) => running,
            Err(e) => {
                tracing::error!(script = %script.path.display(), error = %e, "cannot start the CGI script");
                return Response::error(500);
            }
        };
        let (head, early) = match running.read_head(deadline).await {
            Ok(pair) => pair,
            Err(status) => return Response::error(status),
        };
        match head.kind() {
            Kind::LocalRedirect(location) => {
                running.finish(deadline).await;
                Response::local_redirect(location, env)
            }
            Kind::ClientRedirect => {
                running.finish(deadline).await;
                respond(302, head.headers, Body::empty())
            }
            Kind::Document => {
                let status = head.status.unwrap_or(200);
                respond(status, head.headers, running.into_body(early, deadline))
            }
        }
    }
}

impl CgiHost {
    /// The script named by the first segment of `path_info`: 404 when there is none, 403 when
    /// it escapes `root` (through a symlink) or is not an executable file.
    fn resolve(&self, path_info: &[u8]) -> Result<Script, u16> {
        let rest = path_info.strip_prefix(b"/").ok_or(404u16)?;
        let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let name = &rest[..end];
        // PATH_INFO is already decoded, so `%2e%2e` arrives here as `..`.
        if name.is_empty() || name == b"." || name == b".." || name.contains(&0) {
            return Err(404);
        }
        let path =
            std::fs::canonicalize(self.root.join(OsStr::from_bytes(name))).map_err(|e| match e
                .kind()
            {
                std::io::ErrorKind::NotFound => 404u16,
                _ => 403,
            })?;
        if !path.starts_with(&self.root) {
            tracing::warn!(script = %String::from_utf8_lossy(name), "CGI script resolves outside root");
            return Err(403);
        }
        let meta = std::fs::metadata(&path).map_err(|_| 403u16)?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(403);
        }
        Ok(Script {
            path,
            name: Bytes::copy_from_slice(name),
            path_info: Bytes::copy_from_slice(&rest[end..]),
        })
    }

    fn spawn(
        &self,
        script: &Script,
        env: &Environ,
        mut body: Body,
        permit: OwnedSemaphorePermit,
    ) -> std::io::Result<Running> {
        let mut cmd = Command::new(&script.path);
        cmd.env_clear()
            .current_dir(script.path.parent().unwrap_or(&self.root))
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.envs(self.pass_env.iter().map(|(n, v)| (n, v)));
        for (name, value) in env.iter() {
            // httpoxy: a client's `Proxy:` header must not become the script's HTTP_PROXY.
            // Authorization stays with the host, as Apache and lighttpd keep it by default.
            let withheld = matches!(name, b"HTTP_PROXY" | b"HTTP_AUTHORIZATION");
            if withheld || name.contains(&b'=') || name.contains(&0) || value.contains(&0) {
                continue;
            }
            cmd.env(OsStr::from_bytes(name), OsStr::from_bytes(value));
        }
        let mut script_name = env.script_name().to_vec();
        script_name.push(b'/');
        script_name.extend_from_slice(&script.name);
        cmd.env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("SCRIPT_NAME", OsStr::from_bytes(&script_name))
            .env("PATH_INFO", OsStr::from_bytes(&script.path_info))
            .env("SCRIPT_FILENAME", &script.path);
        if env.get("DOCUMENT_ROOT").is_none() {
            cmd.env("DOCUMENT_ROOT", &self.root);
        }
        let mut child = cmd.spawn()?;
        let pgid = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let log_name = String::from_utf8_lossy(&script.name).into_owned();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, log_name.clone()));
        }
        let feeder = child.stdin.take().map(|mut stdin| {
            tokio::spawn(async move {
                loop {
                    match body.chunk().await {
                        Ok(Some(chunk)) => {
                            if stdin.write_all(&chunk).await.is_err() {
                                return; // the script stopped reading: its business
                            }
                        }
                        Ok(None) => return, // dropping stdin is the script's EOF
                        Err(e) => {
                            tracing::debug!(error = %e, "request body failed; closing the script's stdin");
                            return;
                        }
                    }
                }
            })
        });
        Ok(Running {
            child,
            stdout,
            pgid,
            feeder,
            name: log_name,
            _permit: permit,
        })
    }
}

/// A script's process and its pipes. Dropping it before the script is reaped kills the whole
/// process group: a timeout, or a client that went away (the app's future is dropped).
struct Running {
    child: Child,
    stdout: ChildStdout,
    /// Set until the script is reaped.
    pgid: Option<nix::unistd::Pid>,
    feeder: Option<tokio::task::JoinHandle<()>>,
    name: String,
    _permit: OwnedSemaphorePermit,
}

impl Running {
    /// Reads stdout until the head is complete: the head and the body bytes after it.
    async fn read_head(&mut self, deadline: Instant) -> Result<(ScriptHead, Bytes), u16> {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            let frozen = buf.clone().freeze();
            match parse_head(&frozen) {
                Ok(Some(head)) => return Ok((head.clone(), frozen.slice(head.len..))),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(script = %self.name, error = %e, "CGI script output is not a CGI response");
                    return Err(502);
                }
            }
            match tokio::time::timeout_at(deadline, self.stdout.read_buf(&mut buf)).await {
                Err(_) => {
                    tracing::error!(script = %self.name, "CGI script timed out before its headers; killed");
                    return Err(504);
                }
                Ok(Ok(0)) | Ok(Err(_)) => {
                    let status = tokio::time::timeout_at(deadline, self.child.wait()).await;
                    self.pgid = None;
                    tracing::error!(script = %self.name, ?status, "CGI script ended before its headers");
                    return Err(502);
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Waits for the script to exit (within the deadline); kills it otherwise.
    async fn finish(&mut self, deadline: Instant) {
        if let Ok(Ok(status)) = tokio::time::timeout_at(deadline, self.child.wait()).await {
            self.pgid = None;
            if !status.success() {
                tracing::warn!(script = %self.name, %status, "CGI script exited with an error");
            }
        }
    }

    /// The rest of stdout as the response body, ended by the script's exit.
    fn into_body(self, early: Bytes, deadline: Instant) -> Body {
        let chunks =
            futures_util::stream::unfold((self, Some(early)), move |(mut run, early)| async move {
                if let Some(early) = early.filter(|e| !e.is_empty()) {
                    return Some((Ok(early), (run, None)));
                }
                let mut buf = BytesMut::with_capacity(32 << 10);
                match tokio::time::timeout_at(deadline, run.stdout.read_buf(&mut buf)).await {
                    Ok(Ok(0)) => {
                        run.finish(deadline).await;
                        None
                    }
                    Ok(Ok(_)) => Some((Ok(buf.freeze()), (run, None))),
                    Ok(Err(e)) => Some((Err(BoxError::from(e)), (run, None))),
                    Err(_) => {
                        tracing::error!(script = %run.name, "CGI script timed out; killed");
                        Some((Err("the CGI script timed out".into()), (run, None)))
                    }
                }
            });
        Body::from_stream(chunks)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(feeder) = &self.feeder {
            feeder.abort();
        }
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn respond(status: u16, headers: Vec<(Bytes, Bytes)>, body: Body) -> Response {
    let mut res = Response::new(status).with_body(body);
    res.headers = headers;
    res
}

/// Each line the script writes to stderr goes to the log, under the script's name.
async fn log_stderr(stderr: tokio::process::ChildStderr, name: String) {
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Ok(n) = lines.read_until(b'\n', &mut line).await {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        tracing::warn!(script = %name, "{}", text.trim_end());
        line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let dir = tempfile_dir();
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let script = root.join("ok.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("plain.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/bin/sh", root.join("escape")).unwrap();
        let host = CgiHost {
            root: std::fs::canonicalize(&root).unwrap(),
            timeout: Duration::from_secs(1),
            pass_env: Vec::new(),
            slots: Arc::new(Semaphore::new(1)),
        };
        let found = host.resolve(b"/ok.sh/extra/path").unwrap();
        assert_eq!(
            (&found.name[..], &found.path_info[..]),
            (&b"ok.sh"[..], &b"/extra/path"[..])
        );
        assert_eq!(host.resolve(b"/ok.sh").unwrap().path_info, Bytes::new());
        for (path, status) in [
            (&b"/../root/ok.sh"[..], 404),
            (b"/", 404),
            (b"", 404),
            (b"/missing.sh", 404),
            (b"/plain.txt", 403),
            (b"/escape", 403),
        ] {
            assert_eq!(
                host.resolve(path).err(),
                Some(status),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gatewayd-cgi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

//! `cgi`: hosts external CGI scripts (RFC 3875), as fcgiwrap does for nginx, behind every
//! gateway.
//!
//! The first `PATH_INFO` segment below the mount names the script in `root`; the rest is the
//! script's own `PATH_INFO`. Each request runs the script in its own process group, with
//! exactly the CGI environment, its body on stdin (with a `CONTENT_LENGTH` that is true) and
//! its stdout parsed as a CGI response and streamed back. Its deadline, a client that goes
//! away or a body that belies its length kills the whole group.

mod environment;
mod input;
mod output;
mod resolve;
mod stderr;
mod supervise;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::config::AppConfig;
use bytes::Bytes;
use gateway_core::{App, Body, BoxError, Environ, Response};
use proto_cgi::Kind;
use serde::Deserialize;
use tokio::process::Command;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use input::Input;
use output::Output;
use resolve::Script;

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
    /// Variables a front server may pass through to scripts besides the CGI ones.
    #[serde(default)]
    pass_params: Vec<String>,
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

/// The factory for `type = "cgi"`; keys `root`, `timeout`, `pass_env`, `pass_params`,
/// `max_scripts`.
pub(super) fn factory(cfg: &AppConfig<'_>) -> Result<CgiHost, BoxError> {
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
    environment::check_pass_params(&s.pass_params, &s.pass_env)?;
    let pass_env = s
        .pass_env
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
        .collect();
    Ok(CgiHost {
        root,
        timeout: s.timeout,
        pass_env,
        pass_params: s.pass_params,
        slots: Arc::new(Semaphore::new(s.max_scripts.max(1))),
    })
}

/// The `cgi` app.
pub(super) struct CgiHost {
    root: PathBuf,
    timeout: Duration,
    pass_env: Vec<(OsString, OsString)>,
    pass_params: Vec<String>,
    slots: Arc<Semaphore>,
}

impl App for CgiHost {
    async fn call(&self, env: Environ, body: Body) -> Response {
        let script = match resolve::resolve(&self.root, env.path_info()) {
            Ok(script) => script,
            Err(status) => return Response::error(status),
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Response::error(503).with_header("Retry-After", "1");
        };
        let deadline = Instant::now() + self.timeout;
        let name = String::from_utf8_lossy(&script.name).into_owned();
        let input = match Input::prepare(&env, body, deadline, &name).await {
            Ok(input) => input,
            Err(refusal) => return Response::error(refusal.0),
        };
        let mut output = match self.spawn(&script, &env, input, permit, deadline, name) {
            Ok(output) => output,
            Err(e) => {
                tracing::error!(script = %script.path.display(), error = %e, "cannot start the CGI script");
                return Response::error(500);
            }
        };
        let (head, early) = match output.read_head().await {
            Ok(pair) => pair,
            Err(status) => return Response::error(status),
        };
        match head.kind() {
            Kind::LocalRedirect(location) => {
                output.finish().await;
                Response::local_redirect(location, env)
            }
            Kind::ClientRedirect => {
                output.finish().await;
                respond(302, head.headers, Body::empty())
            }
            Kind::Document => {
                let status = head.status.unwrap_or(200);
                respond(status, head.headers, output.into_body(early))
            }
        }
    }
}

impl CgiHost {
    /// Starts the script and the task that watches its life.
    fn spawn(
        &self,
        script: &Script,
        env: &Environ,
        input: Input,
        permit: OwnedSemaphorePermit,
        deadline: Instant,
        name: String,
    ) -> std::io::Result<Output> {
        let mut cmd = Command::new(&script.path);
        cmd.env_clear()
            .current_dir(script.path.parent().unwrap_or(&self.root))
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.envs(self.pass_env.iter().map(|(n, v)| (n, v)));
        for (name, value) in env.iter() {
            if environment::passes(name, &self.pass_params) && !value.contains(&0) {
                cmd.env(OsStr::from_bytes(name), OsStr::from_bytes(value));
            }
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
        if let Some(len) = input.len() {
            cmd.env("CONTENT_LENGTH", len.to_string());
        }
        let (stdin, feed) = match input {
            Input::None => (Stdio::null(), Feed::Nothing),
            Input::File(file, _) => (Stdio::from(file), Feed::Nothing),
            Input::Memory(data) => (Stdio::piped(), Feed::Bytes(data)),
            Input::Declared(len, body) => (Stdio::piped(), Feed::Body(len, body)),
        };
        let mut child = cmd.stdin(stdin).spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(stderr::log_stderr(stderr, name.clone()));
        }
        let feeder: Option<supervise::Feeder> = match (child.stdin.take(), feed) {
            (Some(stdin), Feed::Body(len, body)) => Some(Box::pin(input::feed(stdin, body, len))),
            (Some(stdin), Feed::Bytes(data)) => {
                tokio::spawn(input::feed_bytes(stdin, data));
                None
            }
            _ => None,
        };
        let watch = supervise::supervise(child, feeder, deadline, permit, name.clone());
        Ok(Output {
            stdout,
            watch,
            name,
        })
    }
}

/// What goes to a piped stdin.
enum Feed {
    Nothing,
    Bytes(Bytes),
    Body(u64, Body),
}

fn respond(status: u16, headers: Vec<(Bytes, Bytes)>, body: Body) -> Response {
    let mut res = Response::new(status).with_body(body);
    res.headers = headers;
    res
}

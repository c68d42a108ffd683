//! The shape of the TOML config: `[server]`, `[[listen]]`, `[apps.NAME]`, `[[mount]]`.
//! Unknown keys are errors everywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use gateway_core::Protocol;
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The whole file, as serde reads it; the app tables are read by their types' factories.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub listen: Vec<ListenConfig>,
    #[serde(default)]
    #[allow(dead_code)] // read through the spanned document, for precise errors
    pub apps: BTreeMap<String, IgnoredAny>,
    #[serde(default)]
    pub mount: Vec<MountConfig>,
}

/// `[server]`: process-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// How long in-flight requests may run after SIGTERM/SIGINT (`"30s"`).
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// The request body cap (`"100MiB"`); over it: 413.
    #[serde(deserialize_with = "size")]
    pub max_body_size: u64,
    /// How long a client may take to send a request head (`"30s"`).
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// The default deadline of an app call (`"60s"`): past it the call is cancelled and the
    /// client gets 504. An app's own `request_timeout` overrides it.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request (`"75s"`). For HTTP,
    /// hyper times the wait and the head with one timer: the shorter of the two applies.
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    /// The longest a write to a client may wait (`"60s"`, nginx's `send_timeout`): past it the
    /// connection closes and its requests are cancelled, freeing every slot they held.
    #[serde(deserialize_with = "duration")]
    pub send_timeout: Duration,
    /// The runtime's worker threads; `0` (the default) means one per CPU core. Read at start:
    /// a reload keeps the running count.
    pub workers: usize,
    /// Worker processes under a master that binds the listeners once (uWSGI's `processes`):
    /// for apps that use one core per process (an interpreter with a global lock). Absent: one
    /// process, no master.
    #[serde(deserialize_with = "processes")]
    pub processes: Option<usize>,
    /// What FastCGI connections may hold in all of unread request bodies (`"64MiB"`). A
    /// multiplexing connection (`max_requests > 1`) buffers each body its app has not read
    /// yet; past this budget, a connection stops reading its socket until bodies are consumed
    /// or freed, so that memory stays bounded whatever the web server sends. A request whose
    /// app is waiting for its body still gets it.
    #[serde(deserialize_with = "size")]
    pub body_buffer_budget: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_timeout: Duration::from_secs(30),
            max_body_size: 100 << 20,
            header_read_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            workers: 0,
            processes: None,
            body_buffer_budget: 64 << 20,
        }
    }
}

/// The most worker processes `processes` takes: more is a typo, not a machine.
pub const MAX_PROCESSES: usize = 1024;

/// `processes = N`, 1 to [`MAX_PROCESSES`]; the error carries the value's place.
fn processes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = i64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 1..=MAX_PROCESSES) => Ok(Some(n)),
        _ => Err(de::Error::custom(format!(
            "processes must be 1 to {MAX_PROCESSES} (worker processes), not {n}"
        ))),
    }
}

/// A listener's protocol: `http`, `fastcgi`, `scgi` or `uwsgi` (CGI is no socket's).
fn listen_protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    const NAMES: &[&str] = &["http", "fastcgi", "scgi", "uwsgi"];
    let name = String::deserialize(d)?;
    [
        Protocol::Http,
        Protocol::FastCgi,
        Protocol::Scgi,
        Protocol::Uwsgi,
    ]
    .into_iter()
    .find(|p| p.as_str() == name)
    .ok_or_else(|| de::Error::unknown_variant(&name, NAMES))
}

/// `[[listen]]`: one socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// What the socket speaks.
    #[serde(deserialize_with = "listen_protocol")]
    pub protocol: Protocol,
    /// `host:port`, `[v6]:port` or `unix:/path`.
    pub address: Spanned<ListenAddress>,
    /// Unix sockets: the mode set after bind (`"0660"` or `0o660`; default 0660 whatever the
    /// umask, as php-fpm's `listen.mode`).
    #[serde(default, deserialize_with = "mode")]
    pub socket_mode: Option<Spanned<u32>>,
    /// Unix sockets: the owner (name or uid) set by chown after bind.
    pub socket_owner: Option<Spanned<String>>,
    /// Unix sockets: the group (name or gid) set by chown after bind.
    pub socket_group: Option<Spanned<String>>,
    /// Connections served at once; more wait in the kernel's backlog (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Overrides `[server] max_body_size` for this listener.
    #[serde(default, deserialize_with = "opt_size")]
    pub max_body_size: Option<u64>,
    /// Overrides `[server] header_read_timeout` for this listener.
    #[serde(default, deserialize_with = "opt_duration")]
    pub header_read_timeout: Option<Duration>,
    /// Overrides `[server] keepalive_timeout` for this listener.
    #[serde(default, deserialize_with = "opt_duration")]
    pub keepalive_timeout: Option<Duration>,
    /// Overrides `[server] send_timeout` for this listener.
    #[serde(default, deserialize_with = "opt_duration")]
    pub send_timeout: Option<Duration>,
    /// FastCGI: requests at once on one connection (default 1: no multiplexing).
    pub max_requests: Option<Spanned<usize>>,
    /// The largest request head: HTTP's request line and headers, FastCGI's PARAMS, SCGI's
    /// header netstring, uwsgi's vars (default "64KiB"); over it: 431.
    #[serde(default, deserialize_with = "opt_spanned_size")]
    pub max_head_size: Option<Spanned<u64>>,
}

impl ListenConfig {
    /// FastCGI on the listening socket inherited on descriptor 0, with default limits: what a
    /// web server that spawned us expects.
    pub fn inherited_fastcgi() -> Self {
        ListenConfig::inherited(Protocol::FastCgi)
    }

    /// `protocol` with default limits (`[server]`'s), on a socket that is not bound from this
    /// entry (it says `fd:0`): a web server's, or a master's whose entry is gone.
    pub fn inherited(protocol: Protocol) -> Self {
        ListenConfig {
            protocol,
            address: Spanned::new(0..0, ListenAddress::Fd(0)),
            socket_mode: None,
            socket_owner: None,
            socket_group: None,
            max_connections: default_max_connections(),
            max_body_size: None,
            header_read_timeout: None,
            keepalive_timeout: None,
            send_timeout: None,
            max_requests: None,
            max_head_size: None,
        }
    }
}

fn default_max_connections() -> usize {
    1024
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// `host:port`; the host may be a name, resolved at bind time.
    Tcp(String),
    /// `unix:/path`.
    Unix(PathBuf),
    /// `fd:N`: a listening socket inherited on descriptor N (FastCGI's convention is `fd:0`,
    /// as spawn-fcgi, lighttpd's `bin-path` and mod_fcgid pass it).
    Fd(i32),
    /// `systemd:NAME`: a socket passed by systemd socket activation, by its name.
    Systemd(String),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(a) => f.write_str(a),
            ListenAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddress::Fd(fd) => write!(f, "fd:{fd}"),
            ListenAddress::Systemd(name) => write!(f, "systemd:{name}"),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(de::Error::custom("unix: needs a socket path"));
            }
            return Ok(ListenAddress::Unix(path.into()));
        }
        if let Some(name) = s.strip_prefix("systemd:") {
            if name.is_empty() || name.contains(':') {
                return Err(de::Error::custom(format!(
                    "{s:?}: systemd: takes a socket name"
                )));
            }
            return Ok(ListenAddress::Systemd(name.to_owned()));
        }
        if let Some(fd) = s.strip_prefix("fd:") {
            return match fd.parse() {
                Ok(fd) if fd >= 0 => Ok(ListenAddress::Fd(fd)),
                _ => Err(de::Error::custom(format!(
                    "{s:?}: fd: takes a descriptor number"
                ))),
            };
        }
        let port_ok = s
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(de::Error::custom(format!(
                "address {s:?} is not host:port, [v6]:port, unix:/path, fd:N or systemd:NAME"
            )));
        }
        Ok(ListenAddress::Tcp(s))
    }
}

/// The keys every `[apps.NAME]` table takes, whatever its type.
pub(super) const COMMON_APP_KEYS: &[&str] = &["request_timeout", "max_concurrency"];

/// The values of [`COMMON_APP_KEYS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommonAppKeys {
    /// Overrides `[server] request_timeout` for this app.
    #[serde(default, deserialize_with = "opt_duration")]
    pub request_timeout: Option<Duration>,
    /// Calls at once; beyond it: 503 with Retry-After (default 1024).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
}

pub(super) fn default_max_concurrency() -> usize {
    1024
}

/// `[[mount]]`: an app at a path prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// The prefix: `/` or `/a/b`; it becomes SCRIPT_NAME.
    pub path: Spanned<String>,
    /// The `NAME` of an `[apps.NAME]` table.
    pub app: Spanned<String>,
    /// Wrap the app in the Lint validator.
    #[serde(default)]
    pub lint: bool,
}

/// A duration like `"30s"` or `"500ms"`, for every config key that takes one.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let parsed = humantime::parse_duration(&s).map_err(|e| {
        de::Error::custom(format!(
            "{s:?} is not a duration like \"30s\" or \"500ms\": {e}"
        ))
    })?;
    // Deadlines are computed as `now + duration`; past a century that can overflow the clock.
    if parsed > MAX_DURATION {
        return Err(de::Error::custom(format!(
            "{s:?} is longer than the longest duration allowed, 100 years"
        )));
    }
    Ok(parsed)
}

const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A size in bytes: an integer, or text like `"10MiB"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes<E: de::Error>(self) -> Result<u64, E> {
        match self {
            Size::Bytes(n) => Ok(n),
            Size::Text(s) => s
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| E::custom(format!("{s:?} is not a size like \"10MiB\": {e}"))),
        }
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Size::deserialize(d)?.bytes()
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    size(d).map(Some)
}

fn opt_spanned_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<u64>>, D::Error> {
    let spanned = Spanned::<Size>::deserialize(d)?;
    let span = spanned.span();
    Ok(Some(Spanned::new(span, spanned.into_inner().bytes()?)))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<u32>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mode {
        Number(u32),
        Text(String),
    }
    let spanned = Spanned::<Mode>::deserialize(d)?;
    let span = spanned.span();
    let mode = match spanned.into_inner() {
        Mode::Number(n) => n,
        Mode::Text(s) => u32::from_str_radix(&s, 8).map_err(|_| {
            de::Error::custom(format!("socket_mode {s:?} is not octal like \"0660\""))
        })?,
    };
    if mode > 0o7777 {
        return Err(de::Error::custom(format!(
            "socket_mode {mode:o} is not a file mode"
        )));
    }
    Ok(Some(Spanned::new(span, mode)))
}

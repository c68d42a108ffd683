//! The shape of the TOML config: `[server]`, `[[listen]]`, `[apps.NAME]`, `[[mount]]`.
//! Unknown keys are errors everywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_timeout: Duration::from_secs(30),
            max_body_size: 100 << 20,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The wire protocol of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenProtocol {
    /// HTTP/1.1.
    Http,
}

impl fmt::Display for ListenProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenProtocol::Http => "http",
        })
    }
}

/// `[[listen]]`: one socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// What the socket speaks.
    pub protocol: ListenProtocol,
    /// `host:port`, `[v6]:port` or `unix:/path`.
    pub address: Spanned<ListenAddress>,
    /// Unix sockets: the mode set by chmod after bind (`"0660"` or `0o660`).
    #[serde(default, deserialize_with = "mode")]
    pub socket_mode: Option<Spanned<u32>>,
    /// Unix sockets: the owner (name or uid) set by chown after bind.
    pub socket_owner: Option<Spanned<String>>,
    /// Unix sockets: the group (name or gid) set by chown after bind.
    pub socket_group: Option<Spanned<String>>,
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// `host:port`; the host may be a name, resolved at bind time.
    Tcp(String),
    /// `unix:/path`.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(a) => f.write_str(a),
            ListenAddress::Unix(p) => write!(f, "unix:{}", p.display()),
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
        let port_ok = s
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(de::Error::custom(format!(
                "address {s:?} is not host:port, [v6]:port or unix:/path"
            )));
        }
        Ok(ListenAddress::Tcp(s))
    }
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

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        de::Error::custom(format!(
            "{s:?} is not a duration like \"30s\" or \"500ms\": {e}"
        ))
    })
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(s) => s
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|e| de::Error::custom(format!("{s:?} is not a size like \"10MiB\": {e}"))),
    }
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

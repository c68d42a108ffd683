//! The TOML config: read, validate, and build the apps and mounts it names.
//!
//! Every error names the file, line and column (`gatewayd check` prints it as
//! `FILE:LINE:COL: message`): TOML syntax, unknown keys, bad values, an unknown app type, a
//! mount to a missing app.

mod error;
mod registry;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gateway_core::{Lint, Router, SharedApp};

pub use self::registry::{AppConfig, AppFactory, Limits, Registry};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use error::ConfigError;
pub(crate) use schema::duration;
pub use schema::{ListenAddress, ListenConfig, MAX_PROCESSES, MountConfig, ServerConfig};

/// A validated config with its apps built and mounted.
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[listen]]`, in file order.
    pub listen: Vec<ListenConfig>,
    /// The mounts, each app already built (and linted where asked).
    pub router: Router,
}

impl Config {
    /// Reads `path` and builds every app with the factories in `registry`.
    pub fn load(path: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the config: {e}")))?;
        Config::parse(path, &source, registry)
    }

    /// Validates `source` as the contents of `path`.
    pub fn parse(path: &Path, source: &str, registry: &Registry) -> Result<Config, ConfigError> {
        let (raw, router) = parse_with(path, source, registry, Build::Apps)?;
        Ok(Config {
            path: path.to_owned(),
            server: raw.server,
            listen: raw.listen,
            router,
        })
    }

    /// Reads `path` as [`Config::load`] does, but builds no app: what a master process needs.
    pub fn load_plan(path: &Path, registry: &Registry) -> Result<Plan, ConfigError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the config: {e}")))?;
        Config::parse_plan(path, &source, registry)
    }

    /// Validates `source` as [`Config::parse`] does, except what only an app's own factory can
    /// check (its type's keys, a CGI root...): no factory runs, so no app is built and no
    /// interpreter starts. A master binds the listeners on this and leaves the apps to its
    /// workers, whose own [`Config::parse`] is the full check.
    pub fn parse_plan(path: &Path, source: &str, registry: &Registry) -> Result<Plan, ConfigError> {
        let (raw, _) = parse_with(path, source, registry, Build::Nothing)?;
        Ok(Plan {
            path: path.to_owned(),
            source: source.to_owned(),
            server: raw.server,
            listen: raw.listen,
        })
    }
}

/// Whether the file at `path` sets `[server] processes`, however wrong the rest of it is (a
/// file that is not TOML does not).
pub fn names_processes(path: &Path) -> bool {
    peek(path)
        .as_ref()
        .and_then(|doc| doc.get("server")?.as_table())
        .is_some_and(|s| s.contains_key("processes"))
}

/// The file at `path` as plain TOML, its keys unchecked: a look at one key before the config
/// is loaded. `None` when it cannot be read or is not TOML (loading it then says why, located).
pub fn peek(path: &Path) -> Option<toml::Table> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

/// A config checked without building its apps: its `[server]` and `[[listen]]`, and the text
/// it was read from, for workers to build the apps from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text as read.
    pub source: String,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[listen]]`, in file order.
    pub listen: Vec<ListenConfig>,
}

/// Whether [`parse_with`] runs the app factories.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    Apps,
    /// Each app is a stand-in that answers 503: the mounts are still checked.
    Nothing,
}

/// The whole validation, with the apps built or stood in for.
fn parse_with(
    path: &Path,
    source: &str,
    registry: &Registry,
    build: Build,
) -> Result<(schema::RawConfig, Router), ConfigError> {
    let toml_err = |e: toml::de::Error| ConfigError::toml(path, source, &e);
    let raw: schema::RawConfig = toml::from_str(source).map_err(toml_err)?;
    let doc = DeTable::parse(source).map_err(toml_err)?;

    let apps = build_apps(path, source, doc.get_ref(), registry, &raw.server, build)?;
    let mut router = Router::new();
    for mount in &raw.mount {
        let Some(app) = apps.get(mount.app.get_ref()) else {
            return Err(ConfigError::at(
                path,
                source,
                Some(mount.app.span()),
                format!(
                    "mount {:?} names app {:?}, which no [apps.*] table defines",
                    mount.path.get_ref(),
                    mount.app.get_ref()
                ),
            ));
        };
        let app = match mount.lint {
            true => SharedApp::new(Lint::new(app.clone())),
            false => app.clone(),
        };
        router
            .mount_shared(mount.path.get_ref(), app)
            .map_err(|e| ConfigError::at(path, source, Some(mount.path.span()), e.to_string()))?;
    }
    for listen in &raw.listen {
        check_listen(path, source, listen)?;
    }
    Ok((raw, router))
}

/// Builds each `[apps.NAME]` with the factory of its `type`.
fn build_apps(
    path: &Path,
    source: &str,
    doc: &DeTable<'_>,
    registry: &Registry,
    server: &ServerConfig,
    build: Build,
) -> Result<BTreeMap<String, SharedApp>, ConfigError> {
    let at = |span, msg: String| ConfigError::at(path, source, Some(span), msg);
    let Some(apps) = doc.get("apps") else {
        return Ok(BTreeMap::new());
    };
    let DeValue::Table(apps) = apps.get_ref() else {
        return Err(at(
            apps.span(),
            "apps must be a table of [apps.NAME] tables".into(),
        ));
    };
    let mut built = BTreeMap::new();
    for (name, table) in apps.iter() {
        let DeValue::Table(fields) = table.get_ref() else {
            return Err(at(
                table.span(),
                format!("apps.{} must be a table", name.get_ref()),
            ));
        };
        let Some(kind) = fields.get("type") else {
            return Err(at(
                name.span(),
                format!("app {:?} has no type", name.get_ref()),
            ));
        };
        let DeValue::String(kind_name) = kind.get_ref() else {
            return Err(at(kind.span(), "type must be a string".into()));
        };
        let Some(factory) = registry.get(kind_name) else {
            let known: Vec<_> = registry.names().collect();
            return Err(at(
                kind.span(),
                format!(
                    "unknown app type {kind_name:?} (known: {})",
                    known.join(", ")
                ),
            ));
        };
        // The keys every app type takes are the daemon's; the rest is the type's own.
        let mut own = fields.clone();
        let mut common = DeTable::new();
        for key in schema::COMMON_APP_KEYS {
            if let Some((k, v)) = own.remove_entry(*key) {
                common.insert(k, v);
            }
        }
        let common: schema::CommonAppKeys = serde::Deserialize::deserialize(
            toml::de::Deserializer::from(Spanned::new(table.span(), common)),
        )
        .map_err(|e| ConfigError::toml(path, source, &e))?;
        let limits = Limits {
            max_concurrency: common.max_concurrency,
            timeout: common.request_timeout.unwrap_or(server.request_timeout),
        };
        let cfg = AppConfig::new(name.get_ref().to_string(), Spanned::new(table.span(), own))
            .with_context(limits, path);
        if build == Build::Nothing {
            let stand_in =
                gateway_core::app_fn(|_, _| async { gateway_core::Response::error(503) });
            built.insert(name.get_ref().to_string(), SharedApp::new(stand_in));
            continue;
        }
        let app = factory(&cfg, limits).map_err(|e| match e.downcast_ref::<toml::de::Error>() {
            Some(te) => ConfigError::toml(path, source, te),
            None => at(table.span(), format!("app {:?}: {e}", name.get_ref())),
        })?;
        built.insert(name.get_ref().to_string(), app);
    }
    Ok(built)
}

fn check_listen(path: &Path, source: &str, listen: &ListenConfig) -> Result<(), ConfigError> {
    let misplaced = |key: &str, span, why: &str| {
        Err(ConfigError::at(
            path,
            source,
            Some(span),
            format!("{key} {why}"),
        ))
    };
    if !matches!(listen.address.get_ref(), ListenAddress::Unix(_)) {
        let unix_only = [
            listen
                .socket_mode
                .as_ref()
                .map(|m| ("socket_mode", m.span())),
            listen
                .socket_owner
                .as_ref()
                .map(|o| ("socket_owner", o.span())),
            listen
                .socket_group
                .as_ref()
                .map(|g| ("socket_group", g.span())),
        ];
        if let Some((key, span)) = unix_only.into_iter().flatten().next() {
            return misplaced(key, span, "applies to unix: addresses only");
        }
    }
    if let Some(m) = &listen.max_requests
        && listen.protocol != gateway_core::Protocol::FastCgi
    {
        return misplaced(
            "max_requests",
            m.span(),
            "applies to protocol = \"fastcgi\" only",
        );
    }
    if let Some(m) = &listen.max_requests
        && !(1..=u16::MAX as usize).contains(m.get_ref())
    {
        return misplaced("max_requests", m.span(), "must be 1..=65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests;

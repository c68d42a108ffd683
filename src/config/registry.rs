//! App types by name, and the TOML table each app instance is built from.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::{App, BoxError, Limit, SharedApp};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Builds an app instance from its `[apps.NAME]` table, under its [`Limits`].
pub type AppFactory =
    Arc<dyn Fn(&AppConfig<'_>, Limits) -> Result<SharedApp, BoxError> + Send + Sync>;

/// What every app instance is held to, whatever its type: the `max_concurrency` and
/// `request_timeout` keys (see [`Limit`]). The default is what a config without them gets.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most calls at once.
    pub max_concurrency: usize,
    /// Each call's deadline.
    pub timeout: Duration,
}

/// The `[apps.NAME]` table of one app instance, without its `type` key.
///
/// [`AppConfig::deserialize`] reads it into the app type's own settings; its errors carry the
/// byte span in the config file, so `gatewayd check` can name the line and column.
#[derive(Clone, Debug)]
pub struct AppConfig<'a> {
    name: String,
    table: Spanned<DeTable<'a>>,
    limits: Limits,
    dir: PathBuf,
}

impl<'a> AppConfig<'a> {
    /// The table of `[apps.NAME]` as parsed from a whole config document.
    pub fn new(name: impl Into<String>, mut table: Spanned<DeTable<'a>>) -> Self {
        table.get_mut().remove("type");
        AppConfig {
            name: name.into(),
            table,
            limits: Limits::default(),
            dir: PathBuf::new(),
        }
    }

    /// Sets what the daemon holds the instance to, and the config file's directory.
    pub(crate) fn with_context(mut self, limits: Limits, config_file: &Path) -> Self {
        self.limits = limits;
        self.dir = config_file.parent().map(Path::to_owned).unwrap_or_default();
        self
    }

    /// The [`Limits`] the daemon holds this instance to (the registry applies them; an app
    /// that queues work of its own sizes its queue by them).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many worker processes of this daemon run an instance of the app: `[server]
    /// processes`, or 1 without a master (an app that shares state across requests can say
    /// so, as `wsgi.multiprocess` does).
    pub fn processes(&self) -> usize {
        crate::master::peers().map_or(1, |p| p.master.processes)
    }

    /// A path from the table, relative to the config file's directory unless absolute.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }

    /// An app table from standalone TOML text, e.g. `body = "hi"`: for tests and embedding.
    ///
    /// ```
    /// use gatewayd::AppConfig;
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Settings { body: String }
    ///
    /// let cfg = AppConfig::parse("greeter", "type = \"hello\"\nbody = \"hi\"").unwrap();
    /// assert_eq!(cfg.deserialize::<Settings>().unwrap().body, "hi");
    /// let cfg = AppConfig::parse("greeter", "bdy = \"hi\"").unwrap();
    /// assert_eq!(cfg.deserialize::<Settings>().unwrap_err().span(), Some(0..3));
    /// ```
    pub fn parse(name: impl Into<String>, toml: &'a str) -> Result<Self, toml::de::Error> {
        Ok(AppConfig::new(name, DeTable::parse(toml)?))
    }

    /// The instance's name, the `NAME` of `[apps.NAME]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the table stands in the config file, as a byte range.
    pub fn span(&self) -> Range<usize> {
        self.table.span()
    }

    /// Whether the table has a key (other than `type`).
    pub fn contains_key(&self, key: &str) -> bool {
        self.table.get_ref().contains_key(key)
    }

    /// A key's raw value, when it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.table.get_ref().get(key)?.get_ref() {
            DeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Reads the table into the app type's settings. Use `#[serde(deny_unknown_fields)]` so a
    /// misspelled key is an error.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, toml::de::Error> {
        T::deserialize(toml::de::Deserializer::from(self.table.clone()))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrency: super::schema::default_max_concurrency(),
            timeout: super::schema::ServerConfig::default().request_timeout,
        }
    }
}

/// The app types a daemon knows, by name.
///
/// ```
/// use gatewayd::Registry;
/// use gatewayd::core::{Response, app_fn};
///
/// let mut registry = Registry::new();
/// registry.register("teapot", |_cfg| Ok(app_fn(|_, _| async { Response::new(418) })));
/// assert!(registry.get("teapot").is_some());
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    types: BTreeMap<String, AppFactory>,
}

impl Registry {
    /// A registry with no app types.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers (or replaces) the app type `name`. Each instance is held under its
    /// [`Limits`] and then shared: the one box of its calls.
    pub fn register<F, A>(&mut self, name: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&AppConfig<'_>) -> Result<A, BoxError> + Send + Sync + 'static,
        A: App,
    {
        let build = move |cfg: &AppConfig<'_>, limits: Limits| {
            let app = Limit::new(factory(cfg)?)
                .max_concurrency(limits.max_concurrency)
                .timeout(limits.timeout);
            Ok(SharedApp::new(app))
        };
        self.types.insert(name.into(), Arc::new(build));
        self
    }

    /// The factory of an app type.
    pub fn get(&self, name: &str) -> Option<&AppFactory> {
        self.types.get(name)
    }

    /// The registered type names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }
}

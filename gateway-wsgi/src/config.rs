//! The settings of one WSGI app: the `[apps.NAME]` table of `type = "wsgi"`.

use std::path::PathBuf;

use serde::Deserialize;

/// Where the app is and how many threads run it.
///
/// ```toml
/// [apps.site]
/// type = "wsgi"
/// module = "mysite.wsgi:application"   # "pkg.mod:callable"; the callable defaults to application
/// python_path = ["/srv/mysite"]
/// virtualenv = "/srv/venv"             # its site-packages are used
/// threads = 8
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsgiConfig {
    /// `package.module:callable`; without `:callable`, the callable is `application`. The
    /// callable may be a dotted path inside the module (`app:server.wsgi_app`).
    pub module: String,
    /// Directories put first on `sys.path`, in order.
    #[serde(default)]
    pub python_path: Vec<PathBuf>,
    /// A virtualenv whose `site-packages` (and its `.pth` files) come before the system's.
    #[serde(default)]
    pub virtualenv: Option<PathBuf>,
    /// Python threads of this app in each process (1..=1024, default 8).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Most requests waiting for a thread or running (the app's `max_concurrency`); beyond
    /// it a request is answered 503 at once.
    #[serde(skip, default = "default_queue")]
    pub queue: usize,
    /// `wsgi.multiprocess`: other processes serve the same app.
    #[serde(skip)]
    pub multiprocess: bool,
}

fn default_threads() -> usize {
    8
}

fn default_queue() -> usize {
    1024
}

impl WsgiConfig {
    /// The settings for `module` (`pkg.mod:callable`), everything else at its default.
    pub fn new(module: impl Into<String>) -> Self {
        WsgiConfig {
            module: module.into(),
            python_path: Vec::new(),
            virtualenv: None,
            threads: default_threads(),
            queue: default_queue(),
            multiprocess: false,
        }
    }

    /// Sets [`python_path`](Self::python_path).
    pub fn python_path<P: Into<PathBuf>>(mut self, dirs: impl IntoIterator<Item = P>) -> Self {
        self.python_path = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`threads`](Self::threads).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
}

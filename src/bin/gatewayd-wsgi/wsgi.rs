//! `wsgi`: a Python WSGI app (PEP 3333), run by the `gateway-wsgi` crate.

use gateway_core::BoxError;
use gateway_wsgi::{WsgiApp, WsgiConfig};
use gatewayd::AppConfig;

/// The factory for `type = "wsgi"`: keys `module`, `python_path`, `virtualenv`, `threads`.
///
/// Paths are relative to the config file's directory. Loading imports the app, so
/// `gatewayd check` finds a missing module, a missing callable or an import that raises, and
/// prints the Python traceback.
pub(crate) fn factory(cfg: &AppConfig<'_>) -> Result<WsgiApp, BoxError> {
    let mut wsgi: WsgiConfig = cfg.deserialize()?;
    wsgi.python_path = wsgi.python_path.iter().map(|p| cfg.resolve(p)).collect();
    wsgi.virtualenv = wsgi.virtualenv.as_deref().map(|p| cfg.resolve(p));
    wsgi.queue = cfg.limits().max_concurrency;
    wsgi.multiprocess = cfg.processes() > 1;
    Ok(WsgiApp::load(cfg.name(), &wsgi)?)
}

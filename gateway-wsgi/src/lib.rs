//! Python WSGI apps (PEP 3333) as gatewayd apps, with CPython embedded through PyO3.
//!
//! [`WsgiApp::load`] imports `module:callable` into the process's one interpreter and starts a
//! pool of Python threads; each request is a job for that pool. The GIL is held only while
//! Python code runs: a thread waiting for the request body, for the client to take the
//! response, or for its next job has released it.
//!
//! ```no_run
//! use gateway_wsgi::{WsgiApp, WsgiConfig};
//!
//! let cfg = WsgiConfig::new("mysite.wsgi:application").python_path(["/srv/mysite"]);
//! let app = WsgiApp::load("site", &cfg)?; // a gateway_core::App
//! # Ok::<(), gateway_wsgi::LoadError>(())
//! ```
//!
//! What a PEP 3333 app sees: `environ` is a `dict` of `str` (each value latin-1-decoded, so a
//! byte survives the round trip), with the `wsgi.*` keys; `wsgi.input` streams the body;
//! `start_response` returns `write()`, honours `exc_info` and may be called as late as the
//! first iteration of the result; the result's `close()` is called exactly once, on every path;
//! `wsgi.file_wrapper` sends a real file without Python in the loop.

#![warn(missing_docs, unreachable_pub)]

mod body;
mod config;
mod environ;
mod file_wrapper;
mod input;
mod load;
mod log;
mod pool;
mod queue;
mod run;
mod start_response;

pub use config::WsgiConfig;
pub use load::LoadError;
pub use pool::WsgiApp;

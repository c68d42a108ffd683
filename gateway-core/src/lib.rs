//! The one app interface of gatewayd.
//!
//! Write an app once against [`App`]: it receives an [`Environ`] (the CGI/WSGI
//! meta-variables) and a streamed [`Body`], and returns a [`Response`]. Every front-end
//! (HTTP, FastCGI, SCGI, CGI) decodes its wire format into the same `Environ`, so the app runs
//! unchanged under each of them.
//!
//! The [`Router`] mounts apps by path prefix (the prefix becomes `SCRIPT_NAME`, the rest
//! `PATH_INFO`); [`Lint`], [`CatchPanic`], [`Limit`], [`LocalRedirects`] and [`AccessLog`]
//! are middleware, and [`GatewayStack`] is what every gateway puts around its apps.
//!
//! ```
//! use gateway_core::{App, Body, Environ, Protocol, Response, Router, app_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut router = Router::new();
//! router.mount("/hello", app_fn(|env: Environ, _body: Body| async move {
//!     let who = String::from_utf8_lossy(env.path_info()).into_owned();
//!     Response::text(200, format!("hello {who}\n"))
//! })).unwrap();
//!
//! let mut env = Environ::new(Protocol::Http);
//! env.insert("PATH_INFO", "/hello/world");
//! let res = router.call(env, Body::empty()).await;
//! assert_eq!(res.body.to_bytes().await.unwrap(), "hello /world\n");
//! # });
//! ```

#![warn(missing_docs, unreachable_pub)]

mod access_log;
mod app;
mod body;
mod cgi;
mod environ;
mod limit;
mod lint;
mod path;
mod recover;
mod redirect;
pub mod request_id;
mod response;
mod router;
mod shutdown;
mod stack;
mod stats;
mod throttle;

pub use access_log::{AccessLine, AccessLog, AccessSink, TracingSink};
pub use app::{App, AppFn, SharedApp, app_fn};
pub use body::{Body, BodyError, BoxError};
pub use cgi::{
    CgiError, CgiParams, Drain, HeadStyle, InvalidHead, PathMode, ResponseWriter, is_final_status,
    write_response_head,
};
pub use environ::{Environ, Protocol, Text, join_values, parse_decimal};
pub use limit::Limit;
pub use lint::{Lint, Violation, check_environ, check_response};
pub use path::{ambiguous_path, routing_path};
pub use recover::CatchPanic;
pub use redirect::{LocalRedirect, LocalRedirects};
pub use response::Response;
pub use router::{MountError, Route, Router};
pub use shutdown::Shutdown;
pub use stack::GatewayStack;
pub use stats::{Snapshot, Stats};
pub use throttle::Throttle;

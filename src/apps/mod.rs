//! The built-in app types.

mod cgi;
mod hello;
#[cfg(feature = "httpbin")]
mod httpbin;
mod ping;
mod status;

use gateway_core::Registry;

/// Registers `cgi`, `hello`, `httpbin`, `ping` and `status`.
///
/// Without the `httpbin` feature, `httpbin` stays a known name whose factory refuses, so a config
/// written for the full build fails `gatewayd check` saying why rather than "unknown app type".
pub fn register_builtins(registry: &mut Registry) {
    registry.register("cgi", cgi::factory);
    registry.register("ping", ping::factory);
    registry.register("status", status::factory);
    registry.register("hello", hello::factory);
    #[cfg(feature = "httpbin")]
    registry.register("httpbin", httpbin::factory);
    #[cfg(not(feature = "httpbin"))]
    registry.register("httpbin", |_cfg| {
        Err("type \"httpbin\" is not built into this gatewayd (cargo feature \"httpbin\")".into())
    });
}

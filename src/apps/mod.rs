//! The built-in app types.

mod cgi;
mod hello;
mod httpbin;
mod ping;
mod status;

use gateway_core::Registry;

/// Registers `cgi`, `hello`, `httpbin`, `ping` and `status`.
pub fn register_builtins(registry: &mut Registry) {
    registry.register("cgi", cgi::factory);
    registry.register("ping", ping::factory);
    registry.register("status", status::factory);
    registry.register("hello", hello::factory);
    registry.register("httpbin", httpbin::factory);
}

//! The built-in app types.

mod cgi;
mod hello;
mod httpbin;

use gateway_core::Registry;

/// Registers `cgi`, `hello` and `httpbin`.
pub fn register_builtins(registry: &mut Registry) {
    registry.register("cgi", cgi::factory);
    registry.register("hello", hello::factory);
    registry.register("httpbin", httpbin::factory);
}

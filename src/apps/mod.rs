//! The built-in app types.

mod hello;
mod httpbin;

use gateway_core::Registry;

/// Registers `hello` and `httpbin`.
pub fn register_builtins(registry: &mut Registry) {
    registry.register("hello", hello::factory);
    registry.register("httpbin", httpbin::factory);
}

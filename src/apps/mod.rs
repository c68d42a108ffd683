//! The built-in app types.

mod cgi;
mod hello;
#[cfg(feature = "httpbin")]
mod httpbin;
mod ping;
mod status;

use crate::config::Registry;

/// Registers `cgi`, `hello`, `httpbin`, `ping` and `status`, and `wsgi` as the type that
/// `gatewayd-wsgi` serves (see [`crate::wsgi_exec`]).
///
/// Without the `httpbin` feature, `httpbin` stays a known name whose factory refuses, so a config
/// written for the full build fails `gatewayd check` saying why rather than "unknown app type".
pub fn register_builtins(registry: &mut Registry, stats: &'static gateway_core::Stats) {
    registry.register("cgi", cgi::factory);
    registry.register("ping", ping::factory);
    registry.register("status", status::factory(stats));
    registry.register("hello", hello::factory);
    #[cfg(feature = "httpbin")]
    registry.register("httpbin", httpbin::factory);
    #[cfg(not(feature = "httpbin"))]
    registry.register("httpbin", |_cfg| -> Result<gateway_core::SharedApp, _> {
        Err("type \"httpbin\" is not built into this gatewayd (cargo feature \"httpbin\")".into())
    });
    registry.register(crate::wsgi_exec::TYPE, crate::wsgi_exec::refusal);
}

// Runs only in the lean build: `cargo test --no-default-features --lib apps::`.
#[cfg(all(test, not(feature = "httpbin")))]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn httpbin_not_built_in_is_a_config_error_at_its_table() {
        let mut registry = crate::config::Registry::new();
        super::register_builtins(&mut registry, gateway_core::Stats::leak());
        let source = "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
                      [apps.bin]\ntype = \"httpbin\"\n\n[[mount]]\npath = \"/\"\napp = \"bin\"\n";
        let e = match Config::parse(Path::new("g.toml"), source, &registry) {
            Ok(_) => panic!("httpbin built without its feature"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("g.toml:5:1: app \"bin\": "), "{e}");
        assert!(
            e.contains(
                "type \"httpbin\" is not built into this gatewayd (cargo feature \"httpbin\")"
            ),
            "{e}"
        );
    }
}

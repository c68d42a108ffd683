//! The config loader, with the built-in app types: any text gives a config or a located error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let daemon = gatewayd::Daemon::new();
    if let Err(e) = gatewayd::config::Config::parse(Path::new("fuzz.toml"), text, daemon.registry()) {
        let _ = e.to_string();
    }
});

//! The CGI environment reader: the input is `NAME=value` pairs separated by NUL, as a process
//! environment is laid out.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let vars = data.split(|&b| b == 0).filter_map(|entry| {
        let eq = entry.iter().position(|&b| b == b'=')?;
        Some((OsString::from_vec(entry[..eq].to_vec()), OsString::from_vec(entry[eq + 1..].to_vec())))
    });
    if let Ok(env) = proto_cgi::read_environ(vars) {
        let _ = gateway_core::check_environ(&env);
        let _ = env.content_length();
        let _ = env.headers().count();
    }
});

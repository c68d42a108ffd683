//! The environment of a CGI process (RFC 3875 §4.1) as an [`Environ`].

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use gateway_core::{CgiError, CgiParams, Environ, PathMode, Protocol};

/// Builds the environ of the one request a CGI process serves from its environment, read as
/// bytes (values need not be UTF-8). Every variable is kept, as the host set it, except
/// gatewayd's own `GATEWAYD_*` settings; `SCRIPT_NAME` (the script's own path) is kept and
/// the mounts apply below it, in `PATH_INFO`.
///
/// ```
/// use std::ffi::OsString;
///
/// let vars = [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/cgi-bin/app"), ("PATH_INFO", "/x")]
///     .map(|(n, v)| (OsString::from(n), OsString::from(v)));
/// let env = proto_cgi::read_environ(vars).unwrap();
/// assert_eq!((env.script_name(), env.path_info()), (&b"/cgi-bin/app"[..], &b"/x"[..]));
/// ```
pub fn read_environ(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Environ, CgiError> {
    let mut params = CgiParams::new(Protocol::Cgi);
    for (name, value) in vars {
        let name = name.into_vec();
        if name.starts_with(b"GATEWAYD_") {
            continue;
        }
        params.push(name, value.into_vec())?;
    }
    params.finish(PathMode::Keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_extras_and_normalisation() {
        let vars = vec![
            (OsString::from("CONTENT_LENGTH"), OsString::from("")),
            (OsString::from("DOCUMENT_ROOT"), OsString::from("/srv")),
            (
                OsString::from("HTTP_X_NAME"),
                OsString::from_vec(b"caf\xe9".to_vec()),
            ),
            (
                OsString::from("GATEWAYD_CONFIG"),
                OsString::from("/etc/g.toml"),
            ),
        ];
        let env = read_environ(vars).unwrap();
        assert_eq!(env.content_length(), None);
        assert_eq!(env.get("DOCUMENT_ROOT"), Some(&b"/srv"[..]));
        assert_eq!(env.get("HTTP_X_NAME"), Some(&b"caf\xe9"[..]));
        assert_eq!(env.get("GATEWAYD_CONFIG"), None);
        assert_eq!(
            (env.script_name(), env.path_info(), env.query_string()),
            (&b""[..], &b""[..], &b""[..])
        );
        assert_eq!(env.protocol(), Protocol::Cgi);
    }

    #[test]
    fn a_hundred_thousand_variables() {
        // What fits in a process's 2 MiB of environment: each is read once, and a repeat is
        // found among all of them.
        let vars = (0..131_072)
            .map(|i| (format!("V{i:X}"), i.to_string()))
            .chain([("CONTENT_LENGTH".into(), "-1".into())])
            .map(|(n, v)| (OsString::from(n), OsString::from(v)));
        let env = read_environ(vars).unwrap();
        assert_eq!(env.len(), 131_072 + 4);
        assert_eq!(env.get("V1FFFF"), Some(&b"131071"[..]));
        assert_eq!(env.content_length(), None);
        let repeated = (0..100)
            .map(|i| format!("V{i}"))
            .chain(["V1".into()])
            .map(|n| (OsString::from(n), OsString::new()));
        assert_eq!(
            read_environ(repeated).unwrap_err(),
            CgiError::Repeated("V1".into())
        );
    }
}

//! Which variables a script gets: the CGI meta-variables, the request's headers, and what the
//! operator lets through. Nothing else a front server sends reaches a script, so no peer can
//! set `LD_PRELOAD`, `BASH_ENV`, `PATH`, `IFS` or a lower-case `http_proxy` for it.

/// The variables passed from the request's environ, sorted for a binary search: RFC 3875 §4.1's
/// meta-variables, and the extensions that Apache mod_cgi, nginx's `fastcgi_params` and
/// `scgi_params`, lighttpd mod_cgi and php-cgi (`REDIRECT_STATUS`) agree on. `HTTP_*` headers
/// are checked apart ([`passes`]).
const CGI_VARIABLES: &[&str] = &[
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "CONTEXT_DOCUMENT_ROOT",
    "CONTEXT_PREFIX",
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "GATEWAY_INTERFACE",
    "HTTPS",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REDIRECT_STATUS",
    "REDIRECT_URL",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_PORT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "REQUEST_SCHEME",
    "REQUEST_URI",
    "SCRIPT_FILENAME",
    "SCRIPT_NAME",
    "SCRIPT_URI",
    "SCRIPT_URL",
    "SERVER_ADDR",
    "SERVER_ADMIN",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SIGNATURE",
    "SERVER_SOFTWARE",
];

/// Names that change how a program, its loader, shell or interpreter runs, matched without
/// regard to case: `pass_params` may not hold them.
const DANGEROUS: &[&str] = &[
    "BASHOPTS",
    "BASH_ENV",
    "CDPATH",
    "CLASSPATH",
    "ENV",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "GLOBIGNORE",
    "HOME",
    "HOSTALIASES",
    "IFS",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "LANG",
    "LANGUAGE",
    "LOCALDOMAIN",
    "LOCPATH",
    "NLSPATH",
    "PATH",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "PROMPT_COMMAND",
    "PS4",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "SHELL",
    "SHELLOPTS",
    "TMPDIR",
    "TZ",
    "_JAVA_OPTIONS",
];

/// Prefixes of such names (`LD_PRELOAD`, `BASH_FUNC_f%%`, `PYTHONPATH`, `PERL5OPT`...).
const DANGEROUS_PREFIXES: &[&str] = &[
    "BASH_FUNC_",
    "DYLD_",
    "GIT_",
    "LC_",
    "LD_",
    "MALLOC_",
    "NODE_",
    "PERL",
    "PYTHON",
    "RUBY",
];

/// Whether a variable of the request's environ goes to the script: a CGI variable, a
/// well-formed `HTTP_*` header other than `Proxy` (httpoxy) and `Authorization` (kept by the
/// host, as Apache and lighttpd do), or a name the operator listed in `pass_params`.
/// `CONTENT_LENGTH` is not decided here: the host sets the true one.
pub(super) fn passes(name: &[u8], pass_params: &[String]) -> bool {
    if name == b"CONTENT_LENGTH" {
        return false;
    }
    if pass_params.iter().any(|p| p.as_bytes() == name) {
        return true;
    }
    if let Some(header) = name.strip_prefix(b"HTTP_") {
        let well_formed = !header.is_empty()
            && header
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        return well_formed && !matches!(header, b"PROXY" | b"AUTHORIZATION");
    }
    std::str::from_utf8(name).is_ok_and(|n| CGI_VARIABLES.binary_search(&n).is_ok())
}

/// Checks the `pass_params` key: each a variable name that cannot change how a script runs, and
/// none also in `pass_env` (a front server would override the operator's value).
pub(super) fn check_pass_params(pass_params: &[String], pass_env: &[String]) -> Result<(), String> {
    for name in pass_params {
        let mut bytes = name.bytes();
        let well_formed = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(format!("pass_params: {name:?} is not a variable name"));
        }
        if is_dangerous(name) {
            return Err(format!(
                "pass_params may not hold {name}: it changes how programs run, and a front \
                 server could set it for every script"
            ));
        }
        if pass_env.contains(name) {
            return Err(format!(
                "{name} is in both pass_env and pass_params: a front server would override it"
            ));
        }
    }
    Ok(())
}

fn is_dangerous(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    DANGEROUS.contains(&upper.as_str())
        || DANGEROUS_PREFIXES.iter().any(|p| upper.starts_with(p))
        || upper.ends_with("_PROXY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_sorted() {
        assert!(CGI_VARIABLES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn only_cgi_variables_headers_and_listed_names_pass() {
        let listed = ["GEOIP_COUNTRY".to_string()];
        for name in [
            "REQUEST_METHOD",
            "HTTPS",
            "HTTP_X_PROBE",
            "HTTP_ACCEPT",
            "GEOIP_COUNTRY",
        ] {
            assert!(passes(name.as_bytes(), &listed), "{name}");
        }
        for name in [
            "LD_PRELOAD",
            "BASH_ENV",
            "PATH",
            "IFS",
            "http_proxy",
            "HTTP_PROXY",
            "HTTP_AUTHORIZATION",
            "HTTP_",
            "HTTP_x_lower",
            "HTTP_A-B",
            "CONTENT_LENGTH",
            "GEOIP_CITY",
            "request_method",
        ] {
            assert!(!passes(name.as_bytes(), &listed), "{name}");
        }
    }

    #[test]
    fn dangerous_pass_params_are_refused() {
        for name in [
            "LD_PRELOAD",
            "ld_library_path",
            "BASH_ENV",
            "PATH",
            "IFS",
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "BASH_FUNC_x%%",
            "PYTHONPATH",
            "PERL5OPT",
            "",
            "A=B",
            "1X",
        ] {
            assert!(
                check_pass_params(&[name.to_string()], &[]).is_err(),
                "{name}"
            );
        }
        let ok = [
            "GEOIP_COUNTRY".to_string(),
            "HTTP_AUTHORIZATION".to_string(),
        ];
        assert!(check_pass_params(&ok, &[]).is_ok());
        assert!(check_pass_params(&ok, &["GEOIP_COUNTRY".to_string()]).is_err());
    }
}

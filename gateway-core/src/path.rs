//! The request path an app is routed on: the path the front server made its decisions on.
//!
//! nginx, Apache and lighttpd match their `location` rules on the target's path percent-decoded
//! once and with its dot segments resolved (RFC 3986 §5.2.4). Routing on anything less resolved
//! lets `/admin/../x`, `/admin/%2e%2e/x` or `/admin%2f..%2fx` pass a front server's rule for
//! `/` and still reach the app mounted at `/admin`. Every gateway builds `PATH_INFO` here.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// The routing path of a raw request-target path: decoded once, then dot segments removed,
/// including those an encoded slash forms (but see [`has_encoded_slash`]: gateways refuse
/// those paths). Repeated slashes are kept, as over direct HTTP.
///
/// ```
/// use gateway_core::routing_path;
///
/// assert_eq!(&*routing_path(b"/a%20b/c"), b"/a b/c");
/// assert_eq!(&*routing_path(b"/admin/%2e%2e/get"), b"/get");
/// assert_eq!(&*routing_path(b"/admin%2f..%2fget"), b"/get");
/// assert_eq!(&*routing_path(b"/a/b/.."), b"/a/");
/// assert_eq!(&*routing_path(b"/x//y"), b"/x//y");
/// ```
pub fn routing_path(raw: &[u8]) -> Cow<'_, [u8]> {
    let decoded: Cow<'_, [u8]> = percent_decode(raw).into();
    if !has_dot_segment(&decoded) {
        return decoded;
    }
    Cow::Owned(remove_dot_segments(&decoded))
}

/// Whether a raw request-target path holds an encoded slash (`%2F`), which front servers read
/// two ways: nginx decodes it into a separator (and resolves the dot segments it forms), while
/// HAProxy and Apache with `AllowEncodedSlashes NoDecode` keep it inside its segment. No one
/// routing of such a path matches every front server's rules (`/x%2f..%2fadmin/y` is `/admin/y`
/// to nginx and outside `/admin` to HAProxy), so every gateway refuses it with 400, as Apache
/// (404) and Tomcat (400) do by default.
///
/// ```
/// use gateway_core::has_encoded_slash;
///
/// assert!(has_encoded_slash(b"/admin%2f..%2fget"));
/// assert!(has_encoded_slash(b"/a%2Fb"));
/// assert!(!has_encoded_slash(b"/a%252Fb/%2e%2e/c"));
/// ```
pub fn has_encoded_slash(raw: &[u8]) -> bool {
    raw.windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] == b'f' || w[2] == b'F'))
}

/// Whether `path` holds a `.` or `..` segment. Cheap: most paths have no `/.` at all.
pub(crate) fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/')
        .skip(1)
        .any(|segment| matches!(segment, b"." | b".."))
}

/// RFC 3986 §5.2.4 for an absolute path; `..` never climbs above the root. A path that does
/// not start with `/` (`*`, or empty) has no segments to resolve and is returned as it is.
pub(crate) fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let Some(rest) = path.strip_prefix(b"/") else {
        return path.to_vec();
    };
    let mut segments: Vec<&[u8]> = Vec::new();
    // A path ending in `.` or `..` names a directory: the result keeps its trailing slash.
    let mut trailing = false;
    for segment in rest.split(|&b| b == b'/') {
        trailing = matches!(segment, b"." | b"..");
        match segment {
            b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(raw: &str) -> String {
        String::from_utf8(routing_path(raw.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn the_bypasses_resolve_to_what_nginx_decides_on() {
        for raw in [
            "/admin/../get",
            "/admin/%2e%2e/get",
            "/admin%2f..%2fget",
            "/admin/..%2fget",
            "/admin/.%2e/get",
            "/admin/%2e./get",
            "/admin/%2E%2E/get",
            "/./get",
            "/%2e/get",
            "/admin/x/../../get",
            "/../get",
            "/../../get",
        ] {
            assert_eq!(route(raw), "/get", "{raw}");
        }
    }

    #[test]
    fn rfc_3986_examples() {
        // §5.2.4's own and §5.4's normal examples, as paths.
        assert_eq!(route("/a/b/c/./../../g"), "/a/g");
        assert_eq!(route("/mid/content=5/../6"), "/mid/6");
        assert_eq!(route("/b/c/."), "/b/c/");
        assert_eq!(route("/b/c/./"), "/b/c/");
        assert_eq!(route("/b/c/.."), "/b/");
        assert_eq!(route("/b/c/../"), "/b/");
        assert_eq!(route("/b/c/../g"), "/b/g");
        assert_eq!(route("/b/c/../.."), "/");
        assert_eq!(route("/admin/.."), "/");
        assert_eq!(route("/admin/."), "/admin/");
        assert_eq!(route("/a//../b"), "/a/b");
    }

    #[test]
    fn what_is_not_a_dot_segment_stays() {
        for raw in ["/", "/a.b/.c/..d/...", "/x//y", "/.well-known/a", "", "*"] {
            assert_eq!(route(raw), raw, "{raw}");
        }
        // Decoded once: an encoded percent is a percent, not a dot.
        assert_eq!(route("/a/%252e%252e/b"), "/a/%2e%2e/b");
    }
}

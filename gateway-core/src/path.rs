//! The request path an app is routed on: the path the front server made its decisions on.
//!
//! nginx, Apache and lighttpd match their `location` rules on the target's path percent-decoded
//! once and with its dot segments resolved (RFC 3986 §5.2.4). Routing on anything less resolved
//! lets `/admin/../x`, `/admin/%2e%2e/x` or `/admin%2f..%2fx` pass a front server's rule for
//! `/` and still reach the app mounted at `/admin`. Every gateway builds `PATH_INFO` here.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// The routing path of a raw request-target path: decoded once, then dot segments removed,
/// including those an encoded slash forms (but see [`ambiguous_path`]: gateways refuse those
/// paths). Repeated slashes are kept, as over direct HTTP.
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

/// Why front servers may disagree on a raw request-target path, if they may; gateways answer
/// such a path 400, since no one routing of it can match every front server's rules.
///
/// - An encoded slash (`%2F`): nginx decodes it into a separator (and resolves the dot
///   segments it forms), while HAProxy and Apache with `AllowEncodedSlashes NoDecode` keep it
///   inside its segment, so `/x%2f..%2fadmin/y` is `/admin/y` to nginx and outside `/admin` to
///   HAProxy. Apache (404) and Tomcat (400) refuse it by default too.
/// - A `..` whose result depends on repeated slashes: nginx, Apache and lighttpd merge `//`
///   before they resolve dot segments (`/admin//../x` is `/x` to them), RFC 3986 does not
///   (`/admin/x`).
///
/// ```
/// use gateway_core::ambiguous_path;
///
/// assert!(ambiguous_path(b"/admin%2f..%2fget").is_some());
/// assert!(ambiguous_path(b"/a%2Fb").is_some());
/// assert!(ambiguous_path(b"/admin//../get").is_some());
/// assert!(ambiguous_path(b"/admin//%2e%2e/get").is_some());
/// assert!(ambiguous_path(b"/a%252Fb/%2e%2e/c").is_none());
/// assert!(ambiguous_path(b"/x//y/../z").is_none());
/// ```
pub fn ambiguous_path(raw: &[u8]) -> Option<&'static str> {
    let encoded_slash = raw
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] == b'f' || w[2] == b'F'));
    if encoded_slash {
        return Some("an encoded slash (%2F)");
    }
    let decoded: Cow<'_, [u8]> = percent_decode(raw).into();
    let repeated = decoded.windows(2).any(|w| w == b"//");
    if repeated && has_dot_segment(&decoded) {
        let merged_first = remove_dot_segments(&merge_slashes(&decoded));
        let merged_after = merge_slashes(&remove_dot_segments(&decoded));
        if merged_first != merged_after {
            return Some("a dot segment next to repeated slashes");
        }
    }
    None
}

fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
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
    fn paths_front_servers_read_two_ways() {
        for raw in [
            "/admin%2f..%2fget",
            "/admin/..%2Fget",
            "/a%2fb",
            "/admin//../get",
            "/admin//%2e%2e/get",
            "/admin//./../get",
            "/admin/.//../get",
            "/admin/x//../../get",
        ] {
            assert!(ambiguous_path(raw.as_bytes()).is_some(), "{raw}");
        }
        for raw in [
            "/x//y",
            "/x//y/../z",
            "/a/./b//c",
            "/admin/../get",
            "/a%252f/..",
            "/",
        ] {
            assert_eq!(ambiguous_path(raw.as_bytes()), None, "{raw}");
        }
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

//! The script a request names: the first `PATH_INFO` segment below the mount, inside `root`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// A script found for a request.
pub(super) struct Script {
    pub(super) path: PathBuf,
    /// Its name in the URL (the first segment).
    pub(super) name: Bytes,
    /// What follows the name: the script's PATH_INFO.
    pub(super) path_info: Bytes,
}

/// The script named by the first segment of `path_info`: 404 when there is none, 403 when
/// it escapes `root` (through a symlink) or is not an executable file.
pub(super) fn resolve(root: &Path, path_info: &[u8]) -> Result<Script, u16> {
    let rest = path_info.strip_prefix(b"/").ok_or(404u16)?;
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let name = &rest[..end];
    // PATH_INFO is already decoded, so `%2e%2e` arrives here as `..`.
    if name.is_empty() || name == b"." || name == b".." || name.contains(&0) {
        return Err(404);
    }
    let path =
        std::fs::canonicalize(root.join(OsStr::from_bytes(name))).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => 404u16,
            _ => 403,
        })?;
    if !path.starts_with(root) {
        tracing::warn!(script = %String::from_utf8_lossy(name), "CGI script resolves outside root");
        return Err(403);
    }
    let meta = std::fs::metadata(&path).map_err(|_| 403u16)?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(403);
    }
    Ok(Script {
        path,
        name: Bytes::copy_from_slice(name),
        path_info: Bytes::copy_from_slice(&rest[end..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let dir = std::env::temp_dir().join(format!("gatewayd-cgi-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let script = root.join("ok.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("plain.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/bin/sh", root.join("escape")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let found = resolve(&root, b"/ok.sh/extra/path").unwrap();
        assert_eq!(
            (&found.name[..], &found.path_info[..]),
            (&b"ok.sh"[..], &b"/extra/path"[..])
        );
        assert_eq!(resolve(&root, b"/ok.sh").unwrap().path_info, Bytes::new());
        for (path, status) in [
            (&b"/../root/ok.sh"[..], 404),
            (b"/", 404),
            (b"", 404),
            (b"/missing.sh", 404),
            (b"/plain.txt", 403),
            (b"/escape", 403),
        ] {
            assert_eq!(
                resolve(&root, path).err(),
                Some(status),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

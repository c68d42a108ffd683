//! Stamps the binary with the commit it was built from, for `gatewayd --version`:
//! `GATEWAYD_COMMIT` is `git rev-parse --short HEAD`, or the `GATEWAYD_COMMIT` environment
//! variable when set (a build from a source tarball), or `unknown` outside git. Uncommitted
//! changes are not flagged: cargo would not rerun this script for them, so a flag would lie.
//! `GATEWAYD_COMMIT_DATE` (the commit's date, or the variable of that name) dates the man pages.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=GATEWAYD_COMMIT");
    let commit = match std::env::var("GATEWAYD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => from_git().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=GATEWAYD_COMMIT={commit}");
    // The man pages' date: the commit's, so that two builds of one commit make the same pages.
    let date = std::env::var("GATEWAYD_COMMIT_DATE")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%cs"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rerun-if-env-changed=GATEWAYD_COMMIT_DATE");
    println!("cargo:rustc-env=GATEWAYD_COMMIT_DATE={date}");
}

/// The short commit, and the files whose change means a new one: HEAD (a checkout), the
/// branch it names (a commit) and packed-refs. In a worktree HEAD lives in its own git dir and
/// the refs in the common one.
fn from_git() -> Option<String> {
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let git_dir = PathBuf::from(git(&["rev-parse", "--git-dir"])?);
    let common =
        git(&["rev-parse", "--git-common-dir"]).map_or_else(|| git_dir.clone(), PathBuf::from);
    let watch = |p: &Path| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    watch(&git_dir.join("HEAD"));
    watch(&common.join("packed-refs"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&common.join(branch));
    }
    Some(commit)
}

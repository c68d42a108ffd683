//! The command line: `check` names the place of an error; `serve` refuses a bad config.

mod common;

use std::path::Path;
use std::process::Command;

use common::gatewayd_bin;

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("g.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `gatewayd SUBCOMMAND --config PATH` to completion: (exit code, stdout, stderr).
fn run(subcommand: &str, path: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(gatewayd_bin())
        .args([subcommand, "--config"])
        .arg(path)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

const MISSPELLED: &str = "[server]\nshutdown_timeout = \"1s\"\n\n[[listen]]\nprotocol = \"http\"\nadress = \"127.0.0.1:0\"\n";

#[test]
fn check_names_line_and_column_of_a_misspelled_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, MISSPELLED);
    let (code, _, err) = run("check", &path);
    assert_eq!(code, Some(1));
    let expected = format!("{}:6:1: unknown field `adress`", path.display());
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn check_accepts_the_example_config() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/gatewayd.toml"
    ));
    let (code, out, err) = run("check", path);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, format!("{}: ok\n", path.display()));
}

#[test]
fn config_comes_from_the_environment_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[apps.x]\ntype = \"nope\"\n");
    let out = Command::new(gatewayd_bin())
        .arg("check")
        .env("GATEWAYD_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:2:8: unknown app type \"nope\"", path.display());
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, MISSPELLED);
    let (code, _, err) = run("serve", &path);
    assert_eq!(code, Some(1));
    assert!(err.contains(":6:1: unknown field `adress`"), "{err}");
}

#[test]
fn serve_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &format!("[[listen]]\nprotocol = \"http\"\naddress = \"{addr}\"\n"),
    );
    let (code, _, err) = run("serve", &path);
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

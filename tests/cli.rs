//! The command line: `check` names the place of an error; `serve` refuses a bad config.

mod common;

use std::process::Command;

use common::gatewayd_bin;

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("g.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const MISSPELLED: &str = "[server]\nshutdown_timeout = \"1s\"\n\n[[listen]]\nprotocol = \"http\"\nadress = \"127.0.0.1:0\"\n";

#[test]
fn check_names_line_and_column_of_a_misspelled_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, MISSPELLED);
    let out = Command::new(gatewayd_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:6:1: unknown field `adress`", path.display());
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn check_accepts_the_example_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/gatewayd.toml");
    let out = Command::new(gatewayd_bin())
        .args(["check", "--config", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{path}: ok\n")
    );
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
    assert!(
        err.starts_with(&format!(
            "{}:2:8: unknown app type \"nope\"",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, MISSPELLED);
    let out = Command::new(gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":6:1: unknown field `adress`"));
}

#[test]
fn serve_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[listen]]\nprotocol = \"http\"\naddress = \"{}\"\n",
        taken.local_addr().unwrap()
    );
    let path = write(&dir, &config);
    let out = Command::new(gatewayd_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {}", taken.local_addr().unwrap())),
        "{err}"
    );
}

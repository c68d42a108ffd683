//! The man pages cannot drift: gatewayd.toml(5) documents exactly the keys the config schema
//! takes (asked of the schema itself, through the "unknown field" error serde gives for a
//! key it does not know), and `gatewayd generate` writes both pages and the completions.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use gatewayd::cli::manual::{APP_TYPES, TABLES, Table};
use gatewayd::config::Config;

const UNKNOWN: &str = "zz_not_a_key";

/// A config that is valid but for [`UNKNOWN`] in the place `put` says.
fn with_unknown_key(table: &str) -> String {
    let listen = "[[listen]]\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n";
    let mount = "[[mount]]\npath = \"/\"\napp = \"a\"\n";
    let app = "[apps.a]\ntype = \"ping\"\n";
    match table {
        "" => format!("{UNKNOWN} = 1\n{listen}"),
        "server" => format!("[server]\n{UNKNOWN} = 1\n{listen}"),
        "listen" => format!("{listen}{UNKNOWN} = 1\n"),
        "mount" => format!("{listen}{app}{mount}{UNKNOWN} = 1\n"),
        app_type => {
            let required = match app_type {
                "cgi" => "root = \"/nonexistent\"\n",
                _ => "",
            };
            format!("{listen}[apps.a]\ntype = \"{app_type}\"\n{required}{UNKNOWN} = 1\n")
        }
    }
}

/// The keys the schema takes at `table`, read from its error for an unknown key:
/// "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or "there are no fields").
fn schema_keys(table: &str) -> BTreeSet<String> {
    let source = with_unknown_key(table);
    let err = if table == "wsgi" {
        // The type of the gatewayd-wsgi binary, not of the library's Daemon.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, &source).unwrap();
        let (code, stderr) = common::check(&path);
        assert_eq!(code, Some(1), "{table}: the schema took {UNKNOWN}");
        stderr
    } else {
        let registry = gatewayd::Daemon::new().registry().clone();
        match Config::parse(Path::new("g.toml"), &source, &registry) {
            Ok(_) => panic!("{table}: the schema took {UNKNOWN}"),
            Err(e) => e.to_string(),
        }
    };
    let unknown = format!("unknown field `{UNKNOWN}`");
    assert!(err.contains(&unknown), "{table}: {err}");
    if err.contains("there are no fields") {
        return BTreeSet::new();
    }
    let Some((_, expected)) = err.split_once("expected ") else {
        panic!("{table}: no list of fields in {err}");
    };
    let expected = expected.lines().next().unwrap_or_default();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn documented(t: &Table) -> BTreeSet<String> {
    t.keys.iter().map(|k| k.name.to_owned()).collect()
}

#[test]
fn every_table_of_the_schema_is_documented() {
    let top: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(top, schema_keys(""), "top-level tables");
    for t in TABLES.iter().filter(|t| t.name != "apps") {
        assert_eq!(documented(t), schema_keys(t.name), "keys of {}", t.header);
    }
}

#[test]
fn every_app_type_and_its_keys_are_documented() {
    let registry = gatewayd::Daemon::new().registry().clone();
    let types: BTreeSet<String> = registry.names().map(str::to_owned).collect();
    let doc: BTreeSet<String> = APP_TYPES.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(doc, types, "app types");
    for t in APP_TYPES {
        assert_eq!(documented(t), schema_keys(t.name), "keys of {}", t.header);
    }
}

/// The keys every app takes are stripped before the type sees its table, so no error lists
/// them: each documented one must be accepted by a type that has no keys of its own.
#[test]
fn the_common_app_keys_are_accepted_by_every_type() {
    let apps = TABLES
        .iter()
        .find(|t| t.name == "apps")
        .expect("[apps.NAME]");
    let registry = gatewayd::Daemon::new().registry().clone();
    for k in apps.keys.iter().filter(|k| k.name != "type") {
        let value = match k.value {
            "duration" => "\"5s\"",
            "integer" => "8",
            other => panic!("no sample value for {other}"),
        };
        let source = format!("[apps.s]\ntype = \"status\"\n{} = {value}\n", k.name);
        if let Err(e) = Config::parse(Path::new("g.toml"), &source, &registry) {
            panic!("{}: {e}", k.name);
        }
    }
}

#[test]
fn generate_writes_the_man_pages_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    for what in ["man", "completions"] {
        let out = Command::new(common::gatewayd_bin())
            .args(["generate", what])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let page = read("gatewayd.8");
    assert!(page.contains(".TH gatewayd 8 "), "{page}");
    for sub in ["serve", "check", "cgi"] {
        assert!(page.contains(&format!("gatewayd {sub}")), "{sub}");
    }
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    let toml = read("gatewayd.toml.5");
    for t in TABLES.iter().chain(APP_TYPES) {
        for k in t.keys {
            assert!(toml.contains(k.name), "{} in gatewayd.toml.5", k.name);
        }
    }
    assert!(read("gatewayd.bash").contains("complete -F _gatewayd"));
    assert!(read("_gatewayd").starts_with("#compdef gatewayd"));
    assert!(read("gatewayd.fish").contains("complete -c gatewayd"));
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(common::gatewayd_bin())
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("gatewayd {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text}");
    // Built in a git checkout, the commit is HEAD's (unless the tree moved since the build).
    if let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        && head.status.success()
    {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
        assert!(
            text.contains(&format!("(commit {head})")),
            "{text} vs {head}"
        );
    }
}

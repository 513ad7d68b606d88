//! The `orbitlab` binary as people use it: exit codes, messages, formats.

use std::path::Path;
use std::process::{Command, Output};

fn orbitlab(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orbitlab"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ORBITLAB_ROOT")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_shows_examples_and_version_works() {
    let dir = tempfile::tempdir().unwrap();
    let help = orbitlab(dir.path(), &["--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).contains("orbitlab create /sectors --name web --cidr 172.16.0.0/24"));
    let version = orbitlab(dir.path(), &["--version"]);
    assert_eq!(
        stdout(&version).trim(),
        format!("orbitlab {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_and_refusals_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(orbitlab(dir.path(), &["frobnicate"]).status.code(), Some(2));
    let bad_path = orbitlab(dir.path(), &["get", "/vpcs"]);
    assert_eq!(bad_path.status.code(), Some(1));
    assert!(
        stderr(&bad_path).contains("unknown collection \"vpcs\""),
        "{}",
        stderr(&bad_path)
    );
    let missing = orbitlab(dir.path(), &["get", "/cluster"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("orbitlab init"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn create_get_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let created = orbitlab(
        dir.path(),
        &[
            "create",
            "/sectors",
            "--name",
            "web",
            "--cidr",
            "172.16.0.0/24",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("/sectors/web") && stdout(&created).contains("created"));

    let json = orbitlab(dir.path(), &["get", "/sectors", "--output-format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value[0]["metadata"]["name"], "web");
    let pretty = orbitlab(
        dir.path(),
        &["get", "/sectors/web", "--output-format", "json-pretty"],
    );
    assert!(stdout(&pretty).contains("\n  \"kind\": \"Sector\""));
    let yaml = orbitlab(
        dir.path(),
        &["get", "/sectors/web", "--output-format", "yaml"],
    );
    assert!(
        stdout(&yaml).contains("cidr: 172.16.0.0/24"),
        "{}",
        stdout(&yaml)
    );
    let text = orbitlab(dir.path(), &["get", "/sectors"]);
    assert!(
        stdout(&text).contains("│ web  │ 172.16.0.0/24 │"),
        "{}",
        stdout(&text)
    );
    // pvesh accepts the format after the path too.
    let after = orbitlab(
        dir.path(),
        &[
            "set",
            "/sectors/web",
            "--alias",
            "front",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(
        stdout(&after).trim(),
        r#"[{"path":"/sectors/web","action":"configured"}]"#
    );
}

#[test]
fn apply_and_validate_directories() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("manifests");
    std::fs::create_dir_all(files.join("nested")).unwrap();
    std::fs::write(
        files.join("web.yaml"),
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n",
    )
    .unwrap();
    std::fs::write(
        files.join("nested/db.yml"),
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: db\nspec:\n  cidr: 172.16.0.0/24\n",
    )
    .unwrap();
    std::fs::write(files.join("README.txt"), "not a manifest").unwrap();
    let root = dir.path().join("pve");
    let files_arg = files.to_str().unwrap();
    let validated = orbitlab(&root, &["validate", "-f", files_arg]);
    assert!(validated.status.success(), "{}", stderr(&validated));
    assert!(
        !root.join("orbitlab/manifests").exists(),
        "validate wrote something"
    );
    let applied = orbitlab(
        &root,
        &["apply", "-f", files_arg, "--output-format", "json"],
    );
    assert!(applied.status.success(), "{}", stderr(&applied));
    let value: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 2);

    // A broken file anywhere refuses the whole apply, naming file and line.
    std::fs::write(
        files.join("zz-broken.yaml"),
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: \"bad name\"\nspec:\n  cidr: 10.0.0.0/24\n",
    )
    .unwrap();
    let refused = orbitlab(&root, &["apply", "-f", files_arg]);
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains("zz-broken.yaml:4") && message.contains("metadata.name"),
        "{message}"
    );
}

#[test]
fn an_oversized_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    let refused = orbitlab(
        &dir.path().join("pve"),
        &["apply", "-f", big.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("at most 1 MiB"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn completions_for_bash() {
    let dir = tempfile::tempdir().unwrap();
    let out = orbitlab(dir.path(), &["completions", "bash"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("_orbitlab()"));
}

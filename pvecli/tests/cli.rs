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

/// A lock left by a crashed command: the command says which lock it waits
/// for, who took it and when pmxcfs frees it, then gives up after
/// `--lock-wait` naming the lock, and changes nothing.
#[test]
fn a_busy_lock_is_named_while_waiting_and_lock_wait_bounds_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("priv/lock/orbitlab-manifests");
    std::fs::create_dir_all(&lock).unwrap();
    let owners = dir.path().join("priv/orbitlab/locks");
    std::fs::create_dir_all(&owners).unwrap();
    std::fs::write(
        owners.join("manifests.owner"),
        "node=pve9 pid=4242 since=1765000000\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = orbitlab(
        dir.path(),
        &[
            "--lock-wait",
            "2",
            "create",
            "/sectors",
            "--name",
            "web",
            "--cidr",
            "172.16.0.0/24",
        ],
    );
    let took = started.elapsed();
    println!("gave up after {took:?}");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let waiting = err
        .lines()
        .find(|l| l.contains("waiting for cluster lock"))
        .unwrap_or_else(|| panic!("no waiting message: {err}"));
    for needle in [
        "orbitlab-manifests",
        "node=pve9 pid=4242",
        "pmxcfs frees it",
        "giving up after 2s",
    ] {
        assert!(waiting.contains(needle), "{needle}: {waiting}");
    }
    let timeout = err
        .lines()
        .find(|l| l.contains("timed out"))
        .unwrap_or_else(|| panic!("no timeout: {err}"));
    assert!(timeout.contains("orbitlab-manifests"), "{timeout}");
    assert!(took >= std::time::Duration::from_secs(2), "{took:?}");
    assert!(
        !dir.path()
            .join("orbitlab/manifests/sector/web.yaml")
            .exists()
    );
}

#[test]
fn get_with_a_label_selector() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pve");
    let file = dir.path().join("all.yaml");
    let lxc = |name: &str, labels: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
        )
    };
    let yaml = [
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n".to_owned(),
        lxc("web1", "{app: web, tier: front}"),
        lxc("web2", "{app: web}"),
        lxc("db1", "{app: db}"),
    ]
    .join("---\n");
    std::fs::write(&file, yaml).unwrap();
    let applied = orbitlab(&root, &["apply", "-f", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let names = |selector: &str| -> Vec<String> {
        let out = orbitlab(
            &root,
            &["get", "/lxc", "-l", selector, "--output-format", "json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("app=web"), ["web1", "web2"]);
    assert_eq!(names("app=web,!tier"), ["web2"]);
    assert_eq!(names("app in (db,web),tier"), ["web1"]);
    let bad = orbitlab(&root, &["get", "/lxc", "--selector", "app=web,"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("at column 9"), "{}", stderr(&bad));
}

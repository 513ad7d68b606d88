//! `orbitlab audit` and `orbitlab audit verify` as people use them: the
//! changes and secret reads of earlier commands are listed with who, how
//! and from which node; an edited record makes `verify` exit 1 naming it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const VALUE: &str = "AUDITCLI-value-0c4d2e";

fn orbitlab(root: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ORBITLAB_ROOT")
        .env_remove("ORBITLAB_HOST")
        .env("ORBITLAB_NODE", "pve7")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(VALUE)
            || args.starts_with(&["secret", "get"]),
        "the value is only ever printed by `secret get`"
    );
    out
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_log_lists_changes_and_reads_and_verify_finds_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(orbitlab(
        root,
        &[
            "create",
            "/sectors",
            "--name",
            "web",
            "--cidr",
            "172.16.0.0/24",
        ],
        None,
    ));
    ok(orbitlab(root, &["secret", "set", "app/db"], Some(VALUE)));
    assert!(ok(orbitlab(root, &["secret", "get", "app/db"], None)).contains(VALUE));
    ok(orbitlab(root, &["secret", "versions", "app/db"], None));

    let table = ok(orbitlab(root, &["audit"], None));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for word in ["SEQ", "TIME", "NODE", "ACTOR", "ACTION", "OBJECT"] {
        assert!(lines[0].contains(word), "{table}");
    }
    for (line, (action, outcome, object)) in lines[1..].iter().zip([
        ("create", "begun", "/sectors/web"),
        ("secret-set", "begun", "/vault/values/app/db"),
        ("secret-read", "done", "/vault/values/app/db"),
    ]) {
        assert!(line.contains("pve7"), "{line}");
        assert!(line.contains("@pam (local)"), "{line}");
        assert!(line.contains(action) && line.contains(outcome), "{line}");
        assert!(line.ends_with(object), "{line}");
    }
    assert!(!table.contains(VALUE));

    let json: serde_json::Value =
        serde_json::from_str(&ok(orbitlab(root, &["audit", "--json"], None))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[1]["action"], "secret-set");
    assert_eq!(json[1]["node"], "pve7");
    let day = json[0]["at"].as_str().unwrap()[..10].to_owned();
    let since = ok(orbitlab(root, &["audit", "--since", &day, "--json"], None));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&since).unwrap(),
        json
    );
    let bad = orbitlab(root, &["audit", "--since", "yesterday"], None);
    assert_eq!(bad.status.code(), Some(2));

    let verified = ok(orbitlab(root, &["audit", "verify"], None));
    assert!(
        verified.starts_with("audit log intact: 3 records in 1 shards; head "),
        "{verified}"
    );

    // Edit the second record.
    let shard = root.join("orbitlab/audit").join(format!("{day}.jsonl"));
    let text = std::fs::read_to_string(&shard).unwrap();
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                l.replace("secret-set", "secret-delete")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&shard, edited.join("\n") + "\n").unwrap();
    let refused = orbitlab(root, &["audit", "verify"], None);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(
        said.trim(),
        format!(
            "audit log broken: {day}.jsonl line 2 (seq 2): edited: its content does not match its hash"
        )
    );
}

#[test]
fn audit_runs_on_a_node_only() {
    let dir = tempfile::tempdir().unwrap();
    let fingerprint = vec!["AB"; 32].join(":");
    let out = Command::new(env!("CARGO_BIN_EXE_orbitlab"))
        .arg("--root")
        .arg(dir.path())
        .args([
            "--host",
            "https://127.0.0.1:9",
            "--fingerprint",
            &fingerprint,
        ])
        .args(["audit", "verify"])
        .env(
            "ORBITLAB_TOKEN",
            "root@pam!x=00000000-0000-0000-0000-000000000000",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`orbitlab audit` cannot run with --host"),
        "{err}"
    );
}

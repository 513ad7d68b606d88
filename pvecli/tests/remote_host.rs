//! `orbitlab --host`: the built command against a running agent's HTTPS
//! API (the server test fixtures, with a canned authenticator), printing
//! what it prints in-process, with the server's permission checks.

#[path = "../../agent/tests/server_common/mod.rs"]
mod server_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use orbitlab_engine::pve::Fingerprint;
use serde_json::Value;
use server_common::*;

const ADMIN_TOKEN: &str = "root@pam!ci=admin-secret-1";
const OPERATOR_TOKEN: &str = "ops@pve!ci=operator-secret-2";
const AUDITOR_TOKEN: &str = "audit@pve!ci=auditor-secret-3";
const VALUE: &str = "s3cr3t-value-7f1c";

struct Agent {
    running: Running,
    ca: PathBuf,
}

fn agent() -> Agent {
    let mut admin = ADMIN.to_vec();
    admin.push("Sys.Console");
    let auth = CannedAuth::with(&[
        ("root@pam!ci", "admin-secret-1", admin.leak()),
        (
            "ops@pve!ci",
            "operator-secret-2",
            &["Sys.Audit", "Sys.Modify"],
        ),
        ("audit@pve!ci", "auditor-secret-3", &["Sys.Audit"]),
    ]);
    let running = start(auth);
    let ca = running.tls.dir.path().join("ca.pem");
    std::fs::write(&ca, running.tls.ca.pem()).expect("write CA");
    Agent { running, ca }
}

impl Agent {
    fn host(&self) -> String {
        format!(
            "https://localhost:{}",
            self.running.handle.local_addr().port()
        )
    }

    /// `orbitlab --host ... args` with `token` in ORBITLAB_TOKEN.
    fn run(&self, token: &str, args: &[&str], stdin: &[u8]) -> Output {
        let (ca, host) = (self.ca.display().to_string(), self.host());
        let mut all = vec!["--host", &host, "--cacert", &ca];
        all.extend_from_slice(args);
        orbitlab(&all, &[("ORBITLAB_TOKEN", token)], stdin)
    }

    fn root(&self) -> &Path {
        self.running.store_dir.path()
    }

    /// Each command prints the same over `--host` (as the admin) as the
    /// command run in-process on the node's store.
    fn prints_as_on_the_node(&self, commands: &[&[&str]]) {
        let root = self.root().display().to_string();
        for args in commands {
            let remote = ok(&self.run(ADMIN_TOKEN, args, b""));
            let local = ok(&orbitlab(
                &[&["--root", &root][..], args].concat(),
                &[],
                b"",
            ));
            assert_eq!(remote, local, "{args:?}");
        }
    }
}

fn orbitlab(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orbitlab"));
    command
        .args(args)
        .env_remove("ORBITLAB_HOST")
        .env_remove("ORBITLAB_TOKEN")
        .env_remove("ORBITLAB_CACERT")
        .env_remove("ORBITLAB_FINGERPRINT")
        .env("ORBITLAB_ROOT", "/nonexistent/orbitlab-test-root")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("orbitlab starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("orbitlab ends")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8(output.stderr.clone()).expect("UTF-8")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON output")
}

#[test]
fn objects_over_https_print_what_the_local_command_prints() {
    let a = agent();
    let created = ok(&a.run(
        OPERATOR_TOKEN,
        &[
            "create",
            "/nodes",
            "--name",
            "pve2",
            "--uplink_bridge",
            "vmbr1",
            "--output-format",
            "json",
        ],
        b"",
    ));
    assert_eq!(
        json(&created),
        serde_json::json!([{"path": "/nodes/pve2", "action": "created"}])
    );
    let root = a.root().display().to_string();
    for args in [["get", "/nodes/pve2"], ["ls", "/nodes"], ["get", "/"]] {
        let remote = ok(&a.run(AUDITOR_TOKEN, &args, b""));
        let local = ok(&orbitlab(
            &[&["--root", &root][..], &args[..]].concat(),
            &[],
            b"",
        ));
        assert_eq!(remote, local, "{args:?}");
    }

    // The server's permission rules: an auditor changes nothing.
    let err = refused(&a.run(AUDITOR_TOKEN, &["delete", "/nodes/pve2"], b""));
    assert!(err.contains("lacks Sys.Modify"), "{err}");

    // An apply of a kind nothing acts on says so.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.yaml");
    std::fs::write(
        &file,
        "apiVersion: orbitlab.io/v1\nkind: Node\nmetadata:\n  name: pve3\nspec:\n  uplink_bridge: vmbr1\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let output = a.run(OPERATOR_TOKEN, &["apply", "-f", &file], b"");
    let shown = ok(&output);
    assert!(shown.contains("/nodes/pve3"), "{shown}");
    let note = String::from_utf8_lossy(&output.stderr);
    assert!(
        note.contains("/nodes/pve3 is stored, but no agent acts on Node manifests yet"),
        "{note}"
    );
    // --wait needs the engine in-process.
    let err = refused(&a.run(OPERATOR_TOKEN, &["apply", "--wait", "-f", &file], b""));
    assert!(err.contains("not served over --host"), "{err}");

    let status = ok(&a.run(AUDITOR_TOKEN, &["status", "--output-format", "json"], b""));
    let local = ok(&orbitlab(
        &["--root", &root, "status", "--output-format", "json"],
        &[],
        b"",
    ));
    assert_eq!(status, local);
    assert_eq!(
        json(&status)[0],
        serde_json::json!({"object": "/nodes/pve2", "kind": "Node", "phase": "Pending", "acted_on": false})
    );

    let ok_delete = ok(&a.run(OPERATOR_TOKEN, &["delete", "/nodes/pve2"], b""));
    assert!(ok_delete.contains("deleted"), "{ok_delete}");
}

#[test]
fn secrets_over_https_need_the_same_privileges_as_the_api() {
    let a = agent();
    let set = ok(&a.run(
        OPERATOR_TOKEN,
        &["secret", "set", "app/db", "--output-format", "json"],
        VALUE.as_bytes(),
    ));
    assert_eq!(json(&set)["version"], 1);

    // Metadata for an auditor; the value for nobody without Sys.Console.
    let listed = ok(&a.run(
        AUDITOR_TOKEN,
        &["secret", "list", "--output-format", "json"],
        b"",
    ));
    assert_eq!(json(&listed)["secrets"][0]["path"], "app/db");
    assert!(!listed.contains(VALUE));
    let err = refused(&a.run(AUDITOR_TOKEN, &["secret", "set", "app/db"], b"x"));
    assert!(err.contains("lacks Sys.Modify"), "{err}");
    for token in [AUDITOR_TOKEN, OPERATOR_TOKEN] {
        let output = a.run(token, &["secret", "get", "app/db"], b"");
        let err = refused(&output);
        assert!(err.contains("Sys.Console"), "{err}");
        assert!(output.stdout.is_empty());
        assert!(!err.contains(VALUE));
    }
    let value = ok(&a.run(ADMIN_TOKEN, &["secret", "get", "app/db"], b""));
    assert_eq!(value, VALUE);

    // The same output as the command in-process on the node.
    a.prints_as_on_the_node(&[
        &["secret", "get", "app/db", "--output-format", "json"][..],
        &["secret", "versions", "app/db"][..],
        &["secret", "list"][..],
    ]);

    // The token may come from a file; a pinned fingerprint replaces the CA.
    let token_file = a.running.tls.dir.path().join("token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let cert = std::fs::read_to_string(&a.running.tls.cert).unwrap();
    let pin = Fingerprint::of_pem(&cert).expect("fingerprint").to_string();
    let token_path = token_file.display().to_string();
    let host = a.host();
    let pinned = ok(&orbitlab(
        &[
            "--host",
            &host,
            "--fingerprint",
            &pin,
            "--token-file",
            &token_path,
            "secret",
            "get",
            "app/db",
        ],
        &[],
        b"",
    ));
    assert_eq!(pinned, VALUE);
    let wrong = "00:".repeat(31) + "00";
    let err = refused(&orbitlab(
        &[
            "--host",
            &host,
            "--fingerprint",
            &wrong,
            "--token-file",
            &token_path,
            "vault",
            "status",
        ],
        &[],
        b"",
    ));
    assert!(err.contains("cannot reach the agent"), "{err}");
    // Another CA is refused, and so is plain HTTP.
    let other = a.running.tls.dir.path().join("other.pem");
    std::fs::write(&other, server_tls().ca.pem()).unwrap();
    let other = other.display().to_string();
    let err = refused(&orbitlab(
        &["--host", &host, "--cacert", &other, "vault", "status"],
        &[("ORBITLAB_TOKEN", ADMIN_TOKEN)],
        b"",
    ));
    assert!(err.contains("cannot reach the agent"), "{err}");
    let plain = host.replace("https", "http");
    let err = refused(&orbitlab(
        &["--host", &plain, "vault", "status"],
        &[("ORBITLAB_TOKEN", ADMIN_TOKEN)],
        b"",
    ));
    assert!(err.contains("HTTPS only"), "{err}");
    // Without a token nothing is sent.
    let err = refused(&orbitlab(&["--host", &host, "vault", "status"], &[], b""));
    assert!(err.contains("ORBITLAB_TOKEN"), "{err}");
}

#[test]
fn ssh_keys_over_https_keep_private_keys_for_console_holders() {
    let a = agent();
    let created = ok(&a.run(
        OPERATOR_TOKEN,
        &["ssh-key", "create", "deploy", "--output-format", "json"],
        b"",
    ));
    assert_eq!(json(&created)["name"], "deploy");
    let public = ok(&a.run(AUDITOR_TOKEN, &["ssh-key", "public", "deploy"], b""));
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    let err = refused(&a.run(AUDITOR_TOKEN, &["ssh-key", "rotate", "deploy"], b""));
    assert!(err.contains("lacks Sys.Modify"), "{err}");
    let output = a.run(OPERATOR_TOKEN, &["ssh-key", "private", "deploy"], b"");
    assert!(refused(&output).contains("Sys.Console"));
    assert!(output.stdout.is_empty());
    let private = ok(&a.run(ADMIN_TOKEN, &["ssh-key", "private", "deploy"], b""));
    assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"), "shape only");
    a.prints_as_on_the_node(&[
        &["ssh-key", "private", "deploy"][..],
        &["ssh-key", "list"][..],
        &["ssh-key", "show", "deploy", "--output-format", "json"][..],
    ]);
    let rotated = ok(&a.run(
        OPERATOR_TOKEN,
        &["ssh-key", "rotate", "deploy", "--output-format", "json"],
        b"",
    ));
    let rotated = json(&rotated);
    assert_ne!(
        rotated["current"]["fingerprint"],
        rotated["previous"]["fingerprint"]
    );
}

#[test]
fn pki_over_https_issues_revokes_and_keeps_keys_for_console_holders() {
    let a = agent();
    let root = a.root().display().to_string();
    // Creating a CA runs on a node only.
    let err = refused(&a.run(ADMIN_TOKEN, &["pki", "ca", "create-root", "root"], b""));
    assert!(err.contains("not served over --host"), "{err}");
    ok(&orbitlab(
        &["--root", &root, "pki", "ca", "create-root", "root"],
        &[],
        b"",
    ));
    let err = refused(&a.run(
        AUDITOR_TOKEN,
        &[
            "pki",
            "cert",
            "issue",
            "root",
            "web",
            "--dns",
            "web.orbitlab.internal",
        ],
        b"",
    ));
    assert!(err.contains("lacks Sys.Modify"), "{err}");
    let issued = ok(&a.run(
        OPERATOR_TOKEN,
        &[
            "pki",
            "cert",
            "issue",
            "root",
            "web",
            "--dns",
            "web.orbitlab.internal",
            "--output-format",
            "json",
        ],
        b"",
    ));
    assert_eq!(json(&issued)["name"], "web");
    let output = a.run(OPERATOR_TOKEN, &["pki", "cert", "key", "root", "web"], b"");
    assert!(refused(&output).contains("Sys.Console"));
    assert!(output.stdout.is_empty());
    a.prints_as_on_the_node(&[
        &["pki", "cert", "key", "root", "web"][..],
        &["pki", "cert", "show", "root", "web", "--chain"][..],
        &["pki", "cert", "list", "--output-format", "json"][..],
        &["pki", "ca", "show", "root", "--pem"][..],
    ]);
    let revoked = ok(&a.run(
        OPERATOR_TOKEN,
        &[
            "pki",
            "revoke",
            "root",
            "--cert",
            "web",
            "--reason",
            "superseded",
        ],
        b"",
    ));
    assert!(revoked.contains("superseded"), "{revoked}");
    let crl = ok(&a.run(AUDITOR_TOKEN, &["pki", "crl", "root"], b""));
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
}

#[test]
fn plan_over_https_is_the_plan_of_the_node() {
    use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, SimConfig, TestCa};
    let a = agent();
    let root = a.root().display().to_string();
    // Before `orbitlab init` there is no plan, and the answer says why.
    let err = refused(&a.run(AUDITOR_TOKEN, &["plan"], b""));
    assert!(err.contains("orbitlab init"), "{err}");

    let pve_ca = TestCa::new("simulated cluster CA").unwrap();
    let sim = PveSim::start(SimConfig {
        tls: Some(pve_ca.issue_server(&["127.0.0.1"]).unwrap()),
        ..SimConfig::default()
    })
    .unwrap();
    let pve_ca_file = a.running.tls.dir.path().join("pve-root-ca.pem");
    std::fs::write(&pve_ca_file, pve_ca.pem()).unwrap();
    let init = orbitlab(
        &[
            "--root",
            &root,
            "init",
            "--api-url",
            &sim.origin(),
            "--api-token",
            "root@pam!orbitlab",
            "--api-ca",
            pve_ca_file.to_str().unwrap(),
        ],
        &[
            ("ORBITLAB_API_TOKEN_SECRET", DEFAULT_TOKEN_SECRET),
            ("ORBITLAB_NODE", "pve1"),
            ("ORBITLAB_CACHE_DIR", ""),
        ],
        b"",
    );
    ok(&init);
    ok(&a.run(
        ADMIN_TOKEN,
        &[
            "create",
            "/sectors",
            "--name",
            "web",
            "--cidr",
            "172.16.0.0/24",
        ],
        b"",
    ));
    let args = ["plan", "--detailed-exitcode", "--output-format", "json"];
    let remote = a.run(AUDITOR_TOKEN, &args, b"");
    let local = orbitlab(&[&["--root", &root][..], &args[..]].concat(), &[], b"");
    assert_eq!(remote.status.code(), Some(2), "{remote:?}");
    assert_eq!(local.status.code(), Some(2), "{local:?}");
    assert_eq!(remote.stdout, local.stdout);
    let steps = json(&String::from_utf8(remote.stdout).unwrap());
    assert!(
        steps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["object"] == "/sectors/web"),
        "{steps}"
    );
}

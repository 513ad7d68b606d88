//! `orbitlab --host`: the built command against a running agent's HTTPS
//! API (the server test fixtures, with a canned authenticator), printing
//! what it prints in-process, with the server's permission checks.

#[path = "../../agent/tests/server_common/mod.rs"]
mod server_common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use orbitlab_engine::pve::Fingerprint;
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_engine::store::Store;
use orbitlab_manifests::Kind;
use serde_json::Value;
use server_common::*;

const ADMIN_TOKEN: &str = "root@pam!ci=admin-secret-1";
const OPERATOR_TOKEN: &str = "ops@pve!ci=operator-secret-2";
const AUDITOR_TOKEN: &str = "audit@pve!ci=auditor-secret-3";
/// May change networks but not read: an apply goes through, reading
/// statuses does not.
const BLIND_TOKEN: &str = "blind@pve!ci=blind-secret-4";
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
        (
            "blind@pve!ci",
            "blind-secret-4",
            &["Sys.Modify", "SDN.Allocate"],
        ),
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

    // An apply of a kind used without a status of its own says how.
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
        note.contains("/nodes/pve3 applies to instances placed from now on"),
        "{note}"
    );
    // --wait works over HTTPS too, and waits only for kinds that report a
    // status: a Node is not waited for.
    let output = a.run(OPERATOR_TOKEN, &["apply", "--wait", "-f", &file], b"");
    ok(&output);
    let note = String::from_utf8_lossy(&output.stderr);
    assert!(
        note.contains("/nodes/pve3 applies to instances placed from now on; instances already on the node stay there (it has no status of its own and is not waited for)"),
        "{note}"
    );

    let status = ok(&a.run(AUDITOR_TOKEN, &["status", "--output-format", "json"], b""));
    let local = ok(&orbitlab(
        &["--root", &root, "status", "--output-format", "json"],
        &[],
        b"",
    ));
    assert_eq!(status, local);
    assert_eq!(
        json(&status)[0],
        serde_json::json!({"object": "/nodes/pve2", "kind": "Node", "phase": "Pending", "acted_on": true})
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
    ok(&a.run(OPERATOR_TOKEN, &["pki", "ca", "create-root", "root"], b""));
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
    let host = a.running.tls.dir.path().join("host");
    orbitlab_sim::host::HostSetup::ready("8.4.1", env!("CARGO_PKG_VERSION"))
        .write(&host)
        .unwrap();
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
            ("ORBITLAB_HOST_ROOT", host.to_str().unwrap()),
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

#[test]
fn pki_cas_and_csrs_over_https_keep_private_keys_on_the_node() {
    let a = agent();
    // Creating a CA is a change: Sys.Modify, as for issuing.
    let err = refused(&a.run(AUDITOR_TOKEN, &["pki", "ca", "create-root", "root"], b""));
    assert!(err.contains("lacks Sys.Modify"), "{err}");
    let listed = ok(&a.run(
        AUDITOR_TOKEN,
        &["pki", "ca", "list", "--output-format", "json"],
        b"",
    ));
    assert_eq!(json(&listed), serde_json::json!([]), "nothing was created");

    let root = ok(&a.run(
        OPERATOR_TOKEN,
        &[
            "pki",
            "ca",
            "create-root",
            "root",
            "--common-name",
            "Remote Root CA",
            "--days",
            "10y",
            "--output-format",
            "json",
        ],
        b"",
    ));
    assert!(!root.contains("PRIVATE KEY"), "{root}");
    let root = json(&root);
    assert_eq!(root["info"]["subject"], "O=OrbitLab, CN=Remote Root CA");
    assert_eq!(root["key_path"], "pki/root/key");
    let sectors = json(&ok(&a.run(
        OPERATOR_TOKEN,
        &[
            "pki",
            "ca",
            "create-intermediate",
            "sectors",
            "--parent",
            "root",
            "--permitted-dns",
            "orbitlab.internal",
            "--output-format",
            "json",
        ],
        b"",
    )));
    assert_eq!(sectors["parent"], "root");
    assert_eq!(sectors["chain_verified"], true);
    // The CA keys are vault secrets on the node, shown as metadata only.
    let secrets = ok(&a.run(
        AUDITOR_TOKEN,
        &["secret", "list", "--output-format", "json"],
        b"",
    ));
    for key in ["pki/root/key", "pki/sectors/key"] {
        assert!(secrets.contains(key), "{secrets}");
    }
    let err = refused(&a.run(OPERATOR_TOKEN, &["secret", "get", "pki/root/key"], b""));
    assert!(err.contains("Sys.Console"), "{err}");
    a.prints_as_on_the_node(&[
        &["pki", "ca", "list"][..],
        &["pki", "ca", "show", "sectors", "--pem"][..],
    ]);

    // A CSR made here is signed there; only the certificate comes back.
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), "db.orbitlab.internal")
        .display()
        .to_string();
    let sign = [
        "pki",
        "cert",
        "sign-csr",
        "sectors",
        "db",
        "--csr",
        &csr,
        "--output-format",
        "json",
    ];
    let err = refused(&a.run(AUDITOR_TOKEN, &sign, b""));
    assert!(err.contains("lacks Sys.Modify"), "{err}");
    let signed = ok(&a.run(OPERATOR_TOKEN, &sign, b""));
    assert!(!signed.contains("PRIVATE KEY"), "{signed}");
    let signed = json(&signed);
    assert_eq!(signed["info"]["dns_names"][0], "db.orbitlab.internal");
    assert_eq!(signed["key_path"], Value::Null);
    // The certificate verifies with openssl against the CAs fetched the
    // same way.
    let pem = |args: &[&str], name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, ok(&a.run(AUDITOR_TOKEN, args, b""))).unwrap();
        path.display().to_string()
    };
    let root_pem = pem(&["pki", "ca", "show", "root", "--pem"], "root.pem");
    let sectors_pem = pem(&["pki", "ca", "show", "sectors", "--pem"], "sectors.pem");
    let leaf_pem = pem(&["pki", "cert", "show", "sectors", "db", "--pem"], "db.pem");
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            &root_pem,
            "-untrusted",
            &sectors_pem,
            &leaf_pem,
        ])
        .output()
        .expect("openssl runs");
    assert!(verify.status.success(), "{verify:?}");
    // A bad CSR is refused by the agent, naming the file given here.
    let garbage = dir.path().join("garbage.csr");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    let garbage = garbage.display().to_string();
    let err = refused(&a.run(
        OPERATOR_TOKEN,
        &[
            "pki", "cert", "sign-csr", "sectors", "bad", "--csr", &garbage,
        ],
        b"",
    ));
    assert!(err.contains(&format!("CSR file {garbage}")), "{err}");
    assert!(err.contains("PKCS#10"), "{err}");
}

/// Writes the status an agent would report for `/sectors/{name}`.
fn report(a: &Agent, name: &str, condition: ConditionType, message: &str) {
    let mut status = ObjectStatus {
        node: Some("pve1".into()),
        ..ObjectStatus::default()
    };
    status.set_condition(condition, true, "Test", message);
    Store::open(a.root())
        .write_status(Kind::Sector, &name.parse().unwrap(), &status)
        .expect("status written");
}

fn sector_file(dir: &Path, name: &str, cidr: &str) -> String {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!("apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n"),
    )
    .unwrap();
    file.display().to_string()
}

#[test]
fn apply_wait_over_https_polls_the_agents_statuses() {
    let a = agent();
    let dir = tempfile::tempdir().unwrap();

    // Reported Ready: --wait returns, and says so as on the node.
    let web = sector_file(dir.path(), "web", "172.16.0.0/24");
    report(&a, "web", ConditionType::Ready, "zone web is up");
    let output = a.run(ADMIN_TOKEN, &["apply", "--wait", "-f", &web], b"");
    ok(&output);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "/sectors/web: Ready: zone web is up\n"
    );
    let db_local = sector_file(dir.path(), "db", "172.16.1.0/24");
    report(&a, "db", ConditionType::Ready, "zone db is up");
    let root = a.root().display().to_string();
    let local = orbitlab(
        &["--root", &root, "apply", "--wait", "-f", &db_local],
        &[],
        b"",
    );
    ok(&local);
    assert_eq!(
        String::from_utf8_lossy(&local.stderr),
        "/sectors/db: Ready: zone db is up\n"
    );

    // Reported Failed: --wait fails with the agent's message.
    let bad = sector_file(dir.path(), "bad", "172.16.2.0/24");
    report(&a, "bad", ConditionType::Failed, "Proxmox refused the zone");
    let err = refused(&a.run(ADMIN_TOKEN, &["apply", "--wait", "-f", &bad], b""));
    assert!(
        err.contains("/sectors/bad failed: Proxmox refused the zone"),
        "{err}"
    );

    // Only kinds that report a status are waited for: a Node beside a
    // Sector is noted, not waited on.
    let both = dir.path().join("both.yaml");
    std::fs::write(
        &both,
        "apiVersion: orbitlab.io/v1\nkind: Node\nmetadata:\n  name: pve2\nspec:\n  schedulable: true\n---\napiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: app\nspec:\n  cidr: 172.16.3.0/24\n",
    )
    .unwrap();
    report(&a, "app", ConditionType::Ready, "zone app is up");
    let both = both.display().to_string();
    let output = a.run(ADMIN_TOKEN, &["apply", "--wait", "-f", &both], b"");
    ok(&output);
    let note = String::from_utf8_lossy(&output.stderr);
    assert!(
        note.contains("/nodes/pve2 applies to instances placed from now on"),
        "{note}"
    );
    assert!(
        note.contains("(it has no status of its own and is not waited for)"),
        "{note}"
    );
    assert!(
        note.contains("/sectors/app: Ready: zone app is up"),
        "{note}"
    );
    assert!(!note.contains("/nodes/pve2: "), "{note}");

    // Reading statuses needs Sys.Audit, as GET /status does: a token that
    // may apply but not read gets the apply done and the wait refused.
    let blind = sector_file(dir.path(), "blind", "172.16.4.0/24");
    let err = refused(&a.run(BLIND_TOKEN, &["apply", "--wait", "-f", &blind], b""));
    assert!(err.contains("lacks Sys.Audit"), "{err}");
}

#[test]
fn apply_wait_over_https_follows_a_status_until_ready() {
    let a = agent();
    let dir = tempfile::tempdir().unwrap();
    let web = sector_file(dir.path(), "web", "172.16.0.0/24");
    let (ca, host) = (a.ca.display().to_string(), a.host());
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab"))
        .args([
            "--host",
            &host,
            "--cacert",
            &ca,
            "apply",
            "--wait",
            "--timeout",
            "120",
            "-f",
            &web,
        ])
        .env("ORBITLAB_TOKEN", ADMIN_TOKEN)
        .env("ORBITLAB_ROOT", "/nonexistent/orbitlab-test-root")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orbitlab starts");
    // Once it has seen no report, the agent reports Progressing, then Ready.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("text");
    assert_eq!(next(), "/sectors/web: Pending: no agent has reported yet");
    report(&a, "web", ConditionType::Progressing, "making zone web");
    assert_eq!(next(), "/sectors/web: Progressing: making zone web");
    report(&a, "web", ConditionType::Ready, "zone web is up");
    assert_eq!(next(), "/sectors/web: Ready: zone web is up");
    let output = child.wait_with_output().expect("orbitlab ends");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("/sectors/web"));
}

#[test]
fn init_and_reconcile_refuse_host_and_do_nothing_here() {
    let a = agent();
    let here = tempfile::tempdir().unwrap();
    let here_root = here.path().display().to_string();
    for (args, command) in [
        (
            &[
                "init",
                "--backplane-cidr",
                "10.200.0.0/16",
                "--api-token",
                "root@pam!orbitlab",
            ][..],
            "`orbitlab init` cannot run with --host",
        ),
        (
            &["reconcile", "--once"][..],
            "`orbitlab reconcile --once` cannot run with --host",
        ),
    ] {
        let all = [&["--root", &here_root][..], args].concat();
        // No stdin: the refusal comes before anything would read it.
        let output = a.run(ADMIN_TOKEN, &all, b"");
        let err = refused(&output);
        assert!(err.contains(command), "{err}");
        assert!(err.contains("as the node it runs on"), "{err}");
        assert!(err.contains("nothing was done"), "{err}");
        assert!(output.stdout.is_empty());
        // Neither the --root given here nor the agent's store changed.
        assert_eq!(std::fs::read_dir(here.path()).unwrap().count(), 0);
    }
    let err = refused(&a.run(AUDITOR_TOKEN, &["get", "/cluster"], b""));
    assert!(err.contains("run `orbitlab init` first"), "{err}");
}

//! `orbitlab init --login root@pam` against a simulator that knows only
//! root's password (no API token): it makes the role `OrbitLab` with
//! exactly `ORBITLAB_PRIVILEGES` (read back through the API, and compared
//! with the README), the user, the token and their ACL; the token is stored
//! root-only and works alone afterwards (every later call is made with it,
//! and it holds exactly those privileges); a rerun changes nothing; a role
//! changed by hand is corrected; a token whose secret is lost is replaced.
//! The password never appears in output or stored files.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use orbitlab_engine::pve::privileges::ORBITLAB_PRIVILEGES;
use orbitlab_engine::pve::{
    AclKind, ApiErrorKind, ClientConfig, ClientOptions, Credentials, Method, PveClient, Retry,
    Secret, Trust,
};
use orbitlab_sim::host::HostSetup;
use orbitlab_sim::pve::{AuthConfig, PveSim, SimConfig, SimHandle, TestCa, UserLogin};
use serde_json::Value;

const PASSWORD: &str = "first-run-Pa55word";
const CONNECTION: &str = "priv/orbitlab/pve-api.json";

struct Env {
    sim: SimHandle,
    ca: String,
    dir: tempfile::TempDir,
    outputs: Vec<Output>,
}

impl Env {
    fn new() -> Env {
        let ca = TestCa::new("simulated cluster CA").unwrap();
        let sim = PveSim::start(SimConfig {
            task_duration: Duration::from_millis(5),
            tls: Some(ca.issue_server(&["127.0.0.1"]).unwrap()),
            auth: AuthConfig {
                tokens: Vec::new(),
                users: vec![UserLogin {
                    user: "root@pam".into(),
                    password: PASSWORD.into(),
                }],
                privileges: Default::default(),
            },
            ..SimConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        HostSetup::ready("9.1.1", env!("CARGO_PKG_VERSION"))
            .write(&dir.path().join("host"))
            .unwrap();
        let pct = dir.path().join("pct");
        std::fs::write(&pct, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&pct, std::fs::Permissions::from_mode(0o755)).unwrap();
        Env {
            sim,
            ca: ca.pem(),
            dir,
            outputs: Vec::new(),
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("pve")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orbitlab"));
        command
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("ORBITLAB_NODE", "pve1")
            .env("ORBITLAB_HOST_ROOT", self.dir.path().join("host"))
            .env("ORBITLAB_PCT", self.dir.path().join("pct"))
            .env("ORBITLAB_CACHE_DIR", "")
            .env_remove("ORBITLAB_ROOT")
            .env_remove("ORBITLAB_LOGIN_PASSWORD")
            .env_remove("ORBITLAB_API_TOKEN_SECRET");
        command
    }

    /// `init --login root@pam` against `origin`, the password still to be
    /// given.
    fn login_init(&self, origin: &str) -> Command {
        let ca = self.dir.path().join("ca.pem");
        self.command(&[
            "init",
            "--api-url",
            origin,
            "--api-ca",
            ca.to_str().unwrap(),
            "--login",
            "root@pam",
        ])
    }

    /// `init --login root@pam`, the password on standard input; the report.
    fn init(&mut self) -> Value {
        let origin = self.sim.origin();
        let ca = self.dir.path().join("ca.pem");
        let mut child = self
            .command(&[
                "init",
                "--api-url",
                &origin,
                "--api-ca",
                ca.to_str().unwrap(),
                "--login",
                "root@pam",
                "--output-format",
                "json",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = serde_json::from_slice(&out.stdout).unwrap();
        self.outputs.push(out);
        report
    }

    fn run(&mut self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.outputs.push(out.clone());
        out
    }

    fn client(&self, credentials: Credentials) -> PveClient {
        PveClient::new(ClientConfig {
            base_url: self.sim.origin(),
            trust: Trust::CaPem(self.ca.clone()),
            credentials,
            options: ClientOptions::default(),
        })
        .unwrap()
    }

    fn admin(&self) -> PveClient {
        self.client(Credentials::password("root@pam", Secret::new(PASSWORD)).unwrap())
    }

    fn stored(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.root().join(CONNECTION)).unwrap()).unwrap()
    }

    fn token_client(&self) -> PveClient {
        let stored = self.stored();
        let token = format!(
            "{}={}",
            stored["token"].as_str().unwrap(),
            stored["secret"].as_str().unwrap()
        );
        self.client(token.parse().unwrap())
    }
}

fn privileges() -> BTreeSet<String> {
    ORBITLAB_PRIVILEGES
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

/// The privileges the README's "Privileges" section lists.
fn readme_privileges() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("\n## Privileges\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn every_file(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            every_file(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn init_with_a_root_login_makes_and_keeps_orbitlabs_identity() {
    let mut env = Env::new();
    let report = env.init();
    assert_eq!(report["backplane"], "10.200.0.0/16");
    let changes = report["proxmox"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 5, "{changes:?}");

    // Read back through the API as root.
    let admin = env.admin();
    let role = admin.role(&"OrbitLab".parse().unwrap()).unwrap();
    assert_eq!(role, privileges());
    assert_eq!(readme_privileges(), privileges());
    let users = admin.users().unwrap();
    let user = users.iter().find(|u| u.userid == "orbitlab@pve").unwrap();
    assert_eq!(user.tokens.len(), 1);
    assert_eq!(user.tokens[0].tokenid, "agent");
    assert_eq!(user.tokens[0].privsep, Some(true));
    let acl = admin.acl().unwrap();
    for (kind, ugid) in [
        (AclKind::User, "orbitlab@pve"),
        (AclKind::Token, "orbitlab@pve!agent"),
    ] {
        let ours: Vec<_> = acl.iter().filter(|e| e.ugid == ugid).collect();
        assert_eq!(ours.len(), 1, "{acl:?}");
        assert_eq!(
            (ours[0].kind, ours[0].path.as_str(), ours[0].roleid.as_str()),
            (kind, "/", "OrbitLab")
        );
        assert!(ours[0].propagates());
    }

    // The stored connection: root-only, the token's id.
    let file = env.root().join(CONNECTION);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = env.stored();
    assert_eq!(stored["token"], "orbitlab@pve!agent");
    let secret = stored["secret"].as_str().unwrap().to_owned();

    // The token holds exactly the listed privileges.
    let token = env.token_client();
    let perms = token
        .call(
            Method::GET,
            "/access/permissions",
            &[("path".into(), "/".into())],
            Retry::Safe,
        )
        .unwrap();
    let held: BTreeSet<String> = perms["/"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(held, privileges());

    // The token works alone: the login made only the /access calls, the
    // token built the Backplane (SDN applied) and reconciles afterwards.
    let by_token = |r: &orbitlab_sim::pve::RequestRecord| {
        r.user.as_deref() == Some("orbitlab@pve!agent") && r.status < 400
    };
    let requests = env.sim.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "PUT" && r.path == "/cluster/sdn" && by_token(r))
    );
    for r in requests.iter().filter(|r| !r.path.starts_with("/access/")) {
        assert!(by_token(r), "{r:?}");
    }
    env.sim.clear_requests();
    let out = env.run(&["reconcile", "--once", "--output-format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = env.sim.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(by_token(r), "{r:?}");
    }
    assert_eq!(
        env.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0)
    );

    // A rerun changes nothing and keeps the token.
    let again = env.init();
    assert_eq!(again["proxmox"]["changes"], serde_json::json!([]));
    assert_eq!(env.stored()["secret"], secret.as_str());

    // A role changed by hand is refused what it lacks, then corrected.
    admin
        .set_role_privileges(&"OrbitLab".parse().unwrap(), &["Sys.Audit"])
        .unwrap();
    let refused = token
        .call(Method::PUT, "/cluster/sdn", &[], Retry::Never)
        .unwrap_err();
    assert_eq!(refused.kind(), Some(&ApiErrorKind::Forbidden));
    let fixed = env.init();
    assert_eq!(
        fixed["proxmox"]["changes"],
        serde_json::json!(["set the privileges of role OrbitLab"])
    );
    assert_eq!(
        admin.role(&"OrbitLab".parse().unwrap()).unwrap(),
        privileges()
    );

    // A lost secret: the token is replaced, the old secret stops working.
    std::fs::remove_file(&file).unwrap();
    let replaced = env.init();
    let changes: Vec<&str> = replaced["proxmox"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes.iter().any(|c| c.starts_with("deleted token")),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|c| c.starts_with("created token")),
        "{changes:?}"
    );
    assert_ne!(env.stored()["secret"], secret.as_str());
    assert_eq!(
        token.version().unwrap_err().kind(),
        Some(&ApiErrorKind::Unauthorized)
    );
    let users = admin.users().unwrap();
    let user = users.iter().find(|u| u.userid == "orbitlab@pve").unwrap();
    assert_eq!(user.tokens.len(), 1);
    let out = env.run(&["reconcile", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The password is nowhere: not in any output, not in any stored file.
    for out in &env.outputs {
        for stream in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(PASSWORD));
        }
    }
    let mut files = Vec::new();
    every_file(&env.root(), &mut files);
    assert!(files.len() > 2, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(PASSWORD),
            "{}",
            f.display()
        );
    }
}

#[test]
fn a_wrong_password_is_refused_without_echoing_it() {
    let mut env = Env::new();
    let origin = env.sim.origin();
    let out = env
        .login_init(&origin)
        .env("ORBITLAB_LOGIN_PASSWORD", "not-the-Pa55word")
        .output()
        .unwrap();
    env.outputs.push(out.clone());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication"), "{stderr}");
    assert!(!stderr.contains("not-the-Pa55word"), "{stderr}");
    assert!(!env.root().join(CONNECTION).exists());
    // Nothing was made.
    let users = env.admin().users().unwrap();
    assert!(users.iter().all(|u| u.userid != "orbitlab@pve"));
}

#[test]
fn unmet_prerequisites_are_each_refused_with_their_fix_and_nothing_is_made() {
    let mut env = Env::new();
    let origin = env.sim.origin();
    let host = env.dir.path().join("host");
    let cases = [
        (
            HostSetup::ready("9.1.1", "0.1.0").without("frr"),
            "frr pve1: frr is not installed; fix: on pve1: install FRR for EVPN",
            "apt install frr-pythontools",
        ),
        (
            HostSetup {
                interfaces_include: false,
                ..HostSetup::ready("9.1.1", "0.1.0")
            },
            "interfaces-include pve1: /etc/network/interfaces does not include /etc/network/interfaces.d; fix:",
            "add the line `source /etc/network/interfaces.d/*` at the end of /etc/network/interfaces",
        ),
    ];
    for (setup, line, fix) in cases {
        std::fs::remove_dir_all(&host).unwrap();
        setup.write(&host).unwrap();
        env.sim.clear_requests();
        let out = env
            .login_init(&origin)
            .env("ORBITLAB_LOGIN_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        env.outputs.push(out.clone());
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("prerequisites not met; nothing was changed"),
            "{stderr}"
        );
        assert!(stderr.contains(line), "{stderr}");
        assert!(stderr.contains(fix), "{stderr}");
        // Exactly one failed check, on its own line.
        assert_eq!(stderr.matches("; fix: ").count(), 1, "{stderr}");
        // Nothing reached Proxmox, nothing was stored.
        assert_eq!(env.sim.requests().len(), 0, "{:?}", env.sim.requests());
        assert!(!env.root().join(CONNECTION).exists());
    }
    // Fixed, init goes through.
    HostSetup::ready("9.1.1", "0.1.0").write(&host).unwrap();
    env.init();
}

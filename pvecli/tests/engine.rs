//! The engine commands end to end against the Proxmox simulator: `init`,
//! `plan --detailed-exitcode`, `reconcile --once` as each node, and
//! `apply --wait` while the nodes reconcile; `init` never stores a plain
//! HTTP connection.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use orbitlab_sim::host::HostSetup;
use orbitlab_sim::pve::{DEFAULT_TOKEN_SECRET, PveSim, SimConfig, TestCa};

struct Env<'a> {
    root: &'a Path,
    pct: &'a Path,
}

impl Env<'_> {
    fn command(&self, node: &str, args: &[&str]) -> Command {
        // Every node's host meets the prerequisites `init` checks.
        let host = self.root.with_file_name("host");
        if !host.exists() {
            HostSetup::ready("8.4.1", env!("CARGO_PKG_VERSION"))
                .write(&host)
                .unwrap();
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_orbitlab"));
        command
            .env("ORBITLAB_HOST_ROOT", &host)
            .arg("--root")
            .arg(self.root)
            .args(args)
            .env("ORBITLAB_NODE", node)
            .env("ORBITLAB_PCT", self.pct)
            .env("ORBITLAB_CACHE_DIR", "")
            .env_remove("ORBITLAB_ROOT");
        command
    }

    fn run(&self, node: &str, args: &[&str]) -> Output {
        self.command(node, args).output().unwrap()
    }

    fn reconcile_everywhere(&self) {
        for node in ["pve1", "pve2", "pve3"] {
            let out = self.run(node, &["reconcile", "--once", "--output-format", "json"]);
            assert!(
                out.status.success(),
                "{node}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn init_plan_reconcile_and_apply_wait() {
    let ca = TestCa::new("simulated cluster CA").unwrap();
    let sim = PveSim::start(SimConfig {
        task_duration: Duration::from_millis(5),
        tls: Some(ca.issue_server(&["127.0.0.1"]).unwrap()),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pve");
    let ca_file = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // A stand-in `pct`: pushes and execs succeed; the appliance helper's
    // `apply` is remembered and its health probe answers healthy with it.
    let pct = dir.path().join("pct");
    std::fs::write(
        &pct,
        format!(
            r#"#!/bin/sh
state={}/current-$2
if [ "$1" = exec ] && [ "$4" = /usr/sbin/orbitlab-appliance ]; then
  case "$5" in
    apply) echo "$6" > "$state" ;;
    health)
      if [ -f "$state" ]; then
        printf '{{"role":"gateway","version":"1.0.0","bundle":"%s","healthy":true,"services":{{}},"problems":[]}}\n' "$(cat "$state")"
      else
        echo '{{"role":"gateway","version":"1.0.0","bundle":null,"healthy":false,"services":{{}},"problems":["no current bundle"]}}'
        exit 1
      fi ;;
  esac
fi
exit 0
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pct, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Env {
        root: &root,
        pct: &pct,
    };

    // Without a stored connection, plan says what to do.
    let plan = env.run("pve1", &["plan"]);
    assert_eq!(plan.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plan.stderr).contains("orbitlab init"));

    // init: the secret comes from the environment, never the arguments.
    let init = env
        .command(
            "pve1",
            &[
                "init",
                "--api-url",
                &sim.origin(),
                "--api-token",
                "root@pam!orbitlab",
                "--api-ca",
                ca_file.to_str().unwrap(),
                "--output-format",
                "json",
            ],
        )
        .env("ORBITLAB_API_TOKEN_SECRET", DEFAULT_TOKEN_SECRET)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    assert_eq!(report["backplane"], "10.200.0.0/16");
    let connection = std::fs::metadata(root.join("priv/orbitlab/pve-api.json")).unwrap();
    assert_eq!(connection.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        env.run("pve1", &["plan", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );
    // A second init changes nothing; a different Backplane is refused.
    assert!(env.run("pve1", &["init"]).status.success());
    let refused = env.run("pve1", &["init", "--backplane-cidr", "10.50.0.0/16"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("can never change"));

    // A new Sector: plan shows the steps (exit 2); reconcile makes them.
    assert!(
        env.run(
            "pve1",
            &[
                "create",
                "/sectors",
                "--name",
                "web",
                "--cidr",
                "172.16.0.0/24"
            ]
        )
        .status
        .success()
    );
    let plan = env.run(
        "pve1",
        &["plan", "--detailed-exitcode", "--output-format", "json"],
    );
    assert_eq!(plan.status.code(), Some(2));
    let steps: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(steps.as_array().unwrap().iter().any(|s| {
        s["step"]
            .as_str()
            .unwrap()
            .starts_with("create zone olz1001")
    }));
    env.reconcile_everywhere();
    env.reconcile_everywhere();
    assert_eq!(
        env.run("pve1", &["plan", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );

    // apply --wait returns once the nodes made the new Sector Ready.
    let manifest = dir.path().join("shop.yaml");
    std::fs::write(&manifest, "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: shop\nspec:\n  cidr: 172.16.0.0/24\n").unwrap();
    let waiting = env
        .command(
            "pve1",
            &[
                "apply",
                "-f",
                manifest.to_str().unwrap(),
                "--wait",
                "--timeout",
                "60",
            ],
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        env.reconcile_everywhere();
    }
    let out = waiting.wait_with_output().unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{progress}");
    assert!(progress.contains("/sectors/shop: Ready"), "{progress}");
    let listed = env.run("pve1", &["get", "/sectors", "--output-format", "json"]);
    let sectors: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(sectors.as_array().unwrap().len(), 2);
    // The token secret is nowhere but the root-only connection file.
    for output in [&init.stdout, &init.stderr, &out.stderr, &listed.stdout] {
        assert!(!String::from_utf8_lossy(output).contains(DEFAULT_TOKEN_SECRET));
    }
}

/// Plain HTTP is never stored by `init`, not even to a loopback address:
/// there a root daemon such as pvedaemon (127.0.0.1:85) may answer. The
/// simulator is reached over HTTPS with its CA like a node.
#[test]
fn init_never_stores_a_plain_http_connection() {
    let sim = PveSim::start(SimConfig::default()).unwrap();
    assert!(sim.origin().starts_with("http://127.0.0.1:"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pve");
    let env = Env {
        root: &root,
        pct: Path::new("/bin/true"),
    };
    let origin = sim.origin();
    for extra in [&["--api-loopback-http"][..], &[]] {
        let mut args = vec![
            "init",
            "--api-url",
            origin.as_str(),
            "--api-token",
            "root@pam!orbitlab",
        ];
        args.extend_from_slice(extra);
        let out = env
            .command("pve1", &args)
            .env("ORBITLAB_API_TOKEN_SECRET", DEFAULT_TOKEN_SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} was accepted: {stderr}");
        assert!(!stderr.contains(DEFAULT_TOKEN_SECRET), "{stderr}");
        assert!(
            !root.join("priv/orbitlab/pve-api.json").exists(),
            "{extra:?}: a connection was stored"
        );
    }
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
}

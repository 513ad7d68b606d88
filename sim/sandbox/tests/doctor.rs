//! `orbitlab doctor` against the sandbox: all green on a fresh sandbox;
//! then, with a template removed from a node's storage (through the
//! Proxmox API), an agent SIGKILLed and quorum taken away, each problem is
//! reported with its fix and the exit status is 1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// `orbitlab doctor --output-format json` as node pve1.
fn doctor(cli: &Path, root: &str, host: &Path) -> (Output, Value) {
    let output = Command::new(cli)
        .args(["doctor", "--output-format", "json"])
        .env("ORBITLAB_ROOT", root)
        .env("ORBITLAB_NODE", "pve1")
        .env("ORBITLAB_HOST_ROOT", host)
        .output()
        .expect("orbitlab doctor runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// `check target` of every failed finding, with its fix.
fn failed(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| {
            let label = match f["target"].as_str() {
                Some(t) => format!("{} {t}", f["check"].as_str().unwrap()),
                None => f["check"].as_str().unwrap().to_owned(),
            };
            (label, f["fix"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn doctor_is_green_on_the_sandbox_and_names_each_problem_with_its_fix() {
    let mut sandbox = common::start();
    // `  ORBITLAB_ROOT=<root> <cli> get /sectors`
    let words: Vec<&str> = sandbox.line("ORBITLAB_ROOT=").split_whitespace().collect();
    let root = words[0].strip_prefix("ORBITLAB_ROOT=").unwrap().to_owned();
    let cli = PathBuf::from(words[1]);
    let host = sandbox.dir.join("hosts/pve1");

    let (output, report) = doctor(&cli, &root, &host);
    assert_eq!(failed(&report), [], "{report:#}");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(report["healthy"], true);
    let labels: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["check"].as_str().unwrap(),
                f["target"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "quorum ",
        "agent pve1",
        "agent pve2",
        "agent pve3",
        "frr pve2",
        "interfaces-include pve3",
        "time-sync pve1",
        "orbitlab-version ",
        "sdn-pending ",
        "template pve3/gateway",
        "vault ",
    ] {
        assert!(
            labels.iter().any(|l| l == expected),
            "no {expected:?} in {labels:?}"
        );
    }

    // The appliance templates removed from pve3's storage, as an admin
    // would (the API).
    // `  curl -s --cacert <ca> <origin>/_sim/state ...`
    let words: Vec<&str> = sandbox.line("/_sim/state").split_whitespace().collect();
    let ca = std::fs::read(words[3]).unwrap();
    let origin = words[4].strip_suffix("/_sim/state").unwrap();
    let header = std::fs::read_to_string(sandbox.dir.join("api-token.header")).unwrap();
    let token = header.trim().strip_prefix("Authorization: ").unwrap();
    let http = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    for role in ["gateway", "dns"] {
        let removed = http
            .delete(format!(
                "{origin}/api2/json/nodes/pve3/storage/local/content/local%3Avztmpl%2Forbitlab-{role}_1.1.0_amd64.tar.zst"
            ))
            .header("Authorization", token)
            .send()
            .unwrap();
        assert!(removed.status().is_success(), "{:?}", removed.text());
    }

    // pve2's agent dies; quorum goes.
    kill(Pid::from_raw(sandbox.agents[1]), Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    std::fs::write(sandbox.dir.join("pmxcfs-control/quorate"), "0\n").unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let (output, report) = loop {
        let (output, report) = doctor(&cli, &root, &host);
        let labels: Vec<String> = failed(&report).into_iter().map(|(l, _)| l).collect();
        let all = [
            "quorum",
            "agent pve2",
            "template pve3/gateway",
            "template pve3/dns",
        ]
        .iter()
        .all(|e| labels.iter().any(|l| l == e));
        if all || Instant::now() > deadline {
            break (output, report);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let problems = failed(&report);
    for expected in [
        "quorum",
        "agent pve2",
        "template pve3/gateway",
        "template pve3/dns",
    ] {
        let (_, fix) = problems
            .iter()
            .find(|(l, _)| l == expected)
            .unwrap_or_else(|| panic!("{expected} not reported: {report:#}"));
        assert!(!fix.is_empty(), "{expected} has no fix");
    }
    let fix_of = |label: &str| &problems.iter().find(|(l, _)| l == label).unwrap().1;
    assert!(fix_of("agent pve2").contains("systemctl restart orbitlab-agent"));
    assert!(fix_of("quorum").contains("pvecm status"));
    assert!(fix_of("template pve3/dns").contains("pve3"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["healthy"], false);

    // The text form: one line per failed check, with its fix.
    let text = Command::new(&cli)
        .arg("doctor")
        .env("ORBITLAB_ROOT", &root)
        .env("ORBITLAB_NODE", "pve1")
        .env("ORBITLAB_HOST_ROOT", &host)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    let agent_line = text
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("agent pve2"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(agent_line.contains("; fix: "), "{agent_line}");

    std::fs::write(sandbox.dir.join("pmxcfs-control/quorate"), "1\n").unwrap();
    kill(Pid::from_raw(sandbox.child.id() as i32), Signal::SIGTERM).unwrap();
    sandbox.child.wait().unwrap();
}

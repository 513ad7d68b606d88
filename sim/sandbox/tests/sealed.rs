//! The sealed vault with real agent processes (issue 13, item 4): the
//! sandbox's vault sealed with `orbitlab vault seal`; each agent is then
//! sealed (it cannot serve a value) and says so in its heartbeat, which
//! `orbitlab doctor` reports per node; a wrong passphrase is refused; after
//! `orbitlab --host ... vault unseal` that agent serves get and set; after
//! that agent is restarted (SIGKILL, started again with the same command
//! line) it is sealed again. Neither the passphrase nor a value is found in
//! any file of the sandbox (logs, status files, audit log, keyring) or in
//! any process's arguments.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const PASSPHRASE: &str = "sandbox unseal phrase 7f3a";
const NEW_VALUE: &str = "db-s3cret-rotated-91c2";

struct Cli {
    cli: PathBuf,
    root: String,
    remote: Vec<String>,
}

impl Cli {
    /// `orbitlab ARGS` as root on node pve1 (`remote`: through pve1's
    /// agent), `stdin` on its standard input.
    fn run(&self, remote: bool, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(&self.cli);
        if remote {
            command.args(&self.remote).env_remove("ORBITLAB_ROOT");
        } else {
            command
                .env("ORBITLAB_ROOT", &self.root)
                .env("ORBITLAB_NODE", "pve1");
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("orbitlab runs");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `vault` of `orbitlab get /nodes`, per node.
    fn node_vault(&self) -> Vec<String> {
        let out = self.run(false, &["get", "/nodes", "--output-format", "json"], "");
        let nodes: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["vault"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The vault-seal findings of `orbitlab doctor`: node → ok.
    fn seal_findings(&self) -> Vec<(String, bool)> {
        let out = self.run(false, &["doctor", "--output-format", "json"], "");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["check"] == "vault-seal")
            .map(|f| (f["target"].as_str().unwrap().to_owned(), f["ok"] == true))
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Kills the agent `pid` and starts it again with the same command line
/// and environment, as systemd would after a crash.
fn restart_agent(pid: i32, log: &Path) -> Child {
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let argv = split(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap());
    let env = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap());
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    wait_until("the agent is gone", || !common::alive(pid));
    let out = std::fs::File::create(log).unwrap();
    Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("the agent starts again")
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn a_sealed_vault_needs_each_agent_unsealed_and_a_restart_seals_it_again() {
    let sandbox = common::start();
    // The sandbox printed the example's value while setting it up.
    assert!(
        sandbox
            .printed
            .iter()
            .any(|l| l.contains("secret set app/db-password"))
    );
    let words: Vec<&str> = sandbox.line("ORBITLAB_ROOT=").split_whitespace().collect();
    let root = words[0].strip_prefix("ORBITLAB_ROOT=").unwrap().to_owned();
    let cli = PathBuf::from(words[1]);
    // `  <cli> --host API --cacert CA --token-file FILE get /sectors`
    let line = sandbox
        .printed
        .iter()
        .find(|l| l.contains("--token-file") && l.trim_end().ends_with(" get /sectors"))
        .expect("the guide shows orbitlab --host");
    let remote: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .take(6)
        .map(str::to_owned)
        .collect();
    let cli = Cli { cli, root, remote };

    // The agent serves the value while the vault is plain.
    let get = ["secret", "get", "app/db-password"];
    let out = cli.run(true, &get, "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "db-s3cret");

    // Sealed (on pve1, by the command in its own process): every agent is
    // sealed now, and doctor says so per node.
    let out = cli.run(
        false,
        &["vault", "seal", "--kdf-memory-mib", "8"],
        PASSPHRASE,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cli.run(true, &get, "");
    assert!(!out.status.success());
    assert!(text(&out).contains("the vault is sealed"), "{}", text(&out));
    wait_until("every agent reports sealed", || {
        cli.seal_findings()
            == [
                ("pve1".to_owned(), false),
                ("pve2".to_owned(), false),
                ("pve3".to_owned(), false),
            ]
    });

    // A wrong passphrase is refused.
    let out = cli.run(true, &["vault", "unseal"], "not the passphrase");
    assert!(!out.status.success());
    assert!(text(&out).contains("does not unseal"), "{}", text(&out));
    assert!(!text(&out).contains("not the passphrase"), "{}", text(&out));

    // Unsealed through pve1's agent: get and set work there.
    let out = cli.run(true, &["vault", "unseal"], PASSPHRASE);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli.run(true, &get, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "db-s3cret",
        "{}",
        text(&out)
    );
    let out = cli.run(true, &["secret", "set", "app/db-password"], NEW_VALUE);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli.run(true, &get, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        NEW_VALUE,
        "{}",
        text(&out)
    );
    wait_until("pve1 reports unsealed", || {
        cli.seal_findings().first() == Some(&("pve1".to_owned(), true))
    });
    assert_eq!(cli.node_vault(), ["unsealed", "sealed", "sealed"]);

    // A restarted agent is sealed again.
    let log = sandbox.dir.join("logs/agent-pve1-restarted.log");
    let mut agent = restart_agent(sandbox.agents[0], &log);
    wait_until("the restarted agent answers, sealed", || {
        let out = cli.run(true, &get, "");
        text(&out).contains("the vault is sealed")
    });
    wait_until("doctor says pve1 is sealed again", || {
        cli.seal_findings().first() == Some(&("pve1".to_owned(), false))
    });
    assert_eq!(cli.node_vault(), ["sealed", "sealed", "sealed"]);

    // Neither the passphrase nor a value in any file or process argument.
    for file in files(&sandbox.dir) {
        if file.starts_with(sandbox.dir.join("pve")) {
            continue; // the simulated Proxmox: what containers received
        }
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let content = String::from_utf8_lossy(&bytes);
        for needle in [PASSPHRASE, "not the passphrase", NEW_VALUE, "db-s3cret"] {
            assert!(
                !content.contains(needle),
                "{needle:?} in {}",
                file.display()
            );
        }
    }
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(proc.path().join("cmdline")) {
            let args = String::from_utf8_lossy(&cmdline);
            assert!(
                !args.contains(PASSPHRASE) && !args.contains(NEW_VALUE),
                "{args}"
            );
        }
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let mut sandbox = sandbox;
    kill(Pid::from_raw(sandbox.child.id() as i32), Signal::SIGTERM).unwrap();
    sandbox.child.wait().unwrap();
}

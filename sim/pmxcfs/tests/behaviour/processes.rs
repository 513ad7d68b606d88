//! The binary: several processes share its mount as nodes share pmxcfs, it
//! is steered through the control directory, and it unmounts on SIGTERM.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::is_mounted;

/// The simulator binary running in the background; killed and unmounted on
/// drop if the test did not stop it.
struct SimProcess {
    child: Child,
    mount: PathBuf,
    control: PathBuf,
}

impl SimProcess {
    fn start(mount: &Path, control: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab-pmxcfs-sim"))
            .arg("--mount")
            .arg(mount)
            .arg("--control")
            .arg(control)
            .args(["--lock-timeout", "2", "--exit-with-parent"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orbitlab-pmxcfs-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the ready line");
        if !line.starts_with("ready ") {
            let mut err = String::new();
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!(
                "orbitlab-pmxcfs-sim did not start (it needs FUSE: root and /dev/fuse): {line}{err}"
            );
        }
        assert!(
            line.contains(&format!("mount={}", mount.display())),
            "{line}"
        );
        Self {
            child,
            mount: mount.to_path_buf(),
            control: control.to_path_buf(),
        }
    }

    fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, sig).expect("signal the simulator");
    }

    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if is_mounted(&self.mount) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.mount)
                .status();
        }
    }
}

/// One worker: takes the pmxcfs lock with mkdir, increments a counter by
/// tmp + rename, appends a line to a log, releases with rmdir.
const WORKER: &str = r#"
set -eu
m=$1; id=$2; n=$3
i=0
while [ "$i" -lt "$n" ]; do
  until mkdir "$m/priv/lock/counter" 2>/dev/null; do :; done
  c=$(cat "$m/counter")
  echo $((c + 1)) > "$m/counter.tmp.$$"
  mv "$m/counter.tmp.$$" "$m/counter"
  echo "$id $i" >> "$m/log"
  rmdir "$m/priv/lock/counter"
  i=$((i + 1))
done
"#;

#[test]
fn processes_sharing_the_mount_lose_no_update_and_sigterm_unmounts() {
    const WORKERS: usize = 4;
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("pve");
    let mut sim = SimProcess::start(&mount, &dir.path().join("control"));
    assert!(is_mounted(&mount));

    std::fs::create_dir_all(mount.join("priv/lock")).unwrap();
    std::fs::write(mount.join("counter"), "0\n").unwrap();
    let workers: Vec<Child> = (0..WORKERS)
        .map(|id| {
            Command::new("sh")
                .args(["-c", WORKER, "worker"])
                .arg(&mount)
                .args([id.to_string(), ROUNDS.to_string()])
                .spawn()
                .expect("spawn sh worker")
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().unwrap().success(), "a worker failed");
    }
    let total = WORKERS * ROUNDS;
    let counter = std::fs::read_to_string(mount.join("counter")).unwrap();
    assert_eq!(counter.trim(), total.to_string(), "lost counter updates");
    let log = std::fs::read_to_string(mount.join("log")).unwrap();
    let lines: BTreeSet<&str> = log.lines().collect();
    assert_eq!(
        (log.lines().count(), lines.len()),
        (total, total),
        "lost or doubled appends"
    );
    assert!(!mount.join("priv/lock/counter").exists(), "lock released");

    // Another process switches quorum off through the control directory.
    let sh = |script: &str| {
        Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&mount)
            .arg(&sim.control)
            .status()
            .unwrap()
            .success()
    };
    assert!(sh(r#"echo 0 > "$2/quorate""#));
    assert!(
        !sh(r#"mkdir "$1/after" 2>/dev/null"#),
        "mkdir must fail without quorum"
    );
    assert!(
        sh(r#"cat "$1/counter" >/dev/null"#),
        "reads work without quorum"
    );
    assert!(sh(r#"echo 1 > "$2/quorate" && mkdir "$1/after""#));

    sim.signal(Signal::SIGTERM);
    let status = sim
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    assert!(!is_mounted(&mount), "unmounted after SIGTERM");
}

#[test]
fn exit_with_parent_unmounts_when_the_spawner_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("pve");
    let mut parent = Command::new("sh")
        .args([
            "-c",
            r#""$0" --mount "$1" --exit-with-parent & wait"#,
            env!("CARGO_BIN_EXE_orbitlab-pmxcfs-sim"),
        ])
        .arg(&mount)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ready "),
        "simulator did not start (needs FUSE): {line}"
    );
    assert!(is_mounted(&mount));
    parent.kill().unwrap();
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mounted(&mount) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let still = is_mounted(&mount);
    if still {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&mount)
            .status();
    }
    assert!(!still, "the orphaned simulator should have unmounted");
}

//! The sandbox closed as a terminal or an SSH session closes it (SIGHUP)
//! leaves nothing behind: no agent or simulator process, no mount, no work
//! directory — as Ctrl-C (SIGINT) does. It runs the programs this build
//! made (`--no-build`), in a work directory of the test's own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn alive(pid: i32) -> bool {
    // A zombie child of the sandbox still has a /proc entry until reaped;
    // its state says whether it runs.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z')
}

fn stops_cleanly_on(signal: Signal) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("sandbox");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab-sandbox"))
        .args(["--no-build", "--task-ms", "0", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the sandbox starts");
    let mut pids: Vec<i32> = Vec::new();
    let mut ready = false;
    let started = Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        println!("{line}");
        // `pve1: pid 1234, API ...`
        if let Some(pid) = line
            .split("pid ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|p| p.trim().parse().ok())
        {
            pids.push(pid);
        }
        if line.contains("Press Ctrl-C") {
            ready = true;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the sandbox did not get ready"
        );
    }
    assert!(ready, "the sandbox stopped before it was ready");
    assert_eq!(pids.len(), 3, "three agents were started: {pids:?}");
    assert!(pids.iter().all(|p| alive(*p)));
    assert!(dir.is_dir());

    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "it exited by itself: {status:?}");
    for pid in &pids {
        assert!(!alive(*pid), "agent {pid} still runs after {signal}");
    }
    assert!(
        !dir.exists(),
        "{} is left behind after {signal}",
        dir.display()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir.display().to_string()),
        "a mount below {} is left",
        dir.display()
    );
    assert!(
        Path::new(parent.path())
            .read_dir()
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn sighup_stops_everything_and_removes_the_work_directory() {
    stops_cleanly_on(Signal::SIGHUP);
}

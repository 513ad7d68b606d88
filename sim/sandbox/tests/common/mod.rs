//! Starting the sandbox as a person would, for the tests in this folder:
//! the programs this build made (`--no-build`), a work directory of the
//! test's own, its printed guide kept for the paths and addresses in it.

#![allow(dead_code)]

pub mod browser;
pub mod panel;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A sandbox that printed its guide and serves.
pub struct Running {
    pub child: Child,
    /// Holds the work directory.
    pub parent: tempfile::TempDir,
    /// The work directory.
    pub dir: PathBuf,
    /// The agents' process ids, pve1..pve3.
    pub agents: Vec<i32>,
    /// Everything it printed up to its guide.
    pub printed: Vec<String>,
}

/// Starts the sandbox and waits for its guide (`Press Ctrl-C`).
pub fn start() -> Running {
    start_with(&[])
}

/// [`start`] with more arguments.
pub fn start_with(extra: &[String]) -> Running {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("sandbox");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab-sandbox"))
        .args(["--no-build", "--task-ms", "0", "--dir"])
        .arg(&dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the sandbox starts");
    let mut agents = Vec::new();
    let mut printed = Vec::new();
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
            agents.push(pid);
        }
        let ready = line.contains("Press Ctrl-C");
        printed.push(line);
        if ready {
            return Running {
                child,
                parent,
                dir,
                agents,
                printed,
            };
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the sandbox did not get ready:\n{}", printed.join("\n"));
        }
    }
    let _ = child.kill();
    let status = child.wait();
    panic!(
        "the sandbox stopped before it was ready ({status:?}):\n{}",
        printed.join("\n")
    );
}

impl Running {
    /// The first printed line containing `needle`.
    pub fn line(&self, needle: &str) -> &str {
        self.printed
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("the sandbox printed no line with {needle:?}"))
    }
}

/// Whether process `pid` runs (a zombie child of the sandbox still has a
/// /proc entry until reaped; its state says whether it runs).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| state != 'Z')
}

impl Drop for Running {
    /// A test that ends (or fails) stops its sandbox as Ctrl-C would:
    /// SIGTERM, then up to 30 s for it to stop everything and clean up.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let started = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if started.elapsed() > Duration::from_secs(30) {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

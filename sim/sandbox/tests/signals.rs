//! The sandbox closed as a terminal or an SSH session closes it (SIGHUP)
//! leaves nothing behind: no agent or simulator process, no mount, no work
//! directory — as Ctrl-C (SIGINT) does. It runs the programs this build
//! made (`--no-build`), in a work directory of the test's own.

mod common;

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::alive;

fn stops_cleanly_on(signal: Signal) {
    let mut sandbox = common::start();
    let (pids, dir) = (sandbox.agents.clone(), sandbox.dir.clone());
    assert_eq!(pids.len(), 3, "three agents were started: {pids:?}");
    assert!(pids.iter().all(|p| alive(*p)));
    assert!(dir.is_dir());

    kill(Pid::from_raw(sandbox.child.id() as i32), signal).unwrap();
    let status = sandbox.child.wait().unwrap();
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
        Path::new(sandbox.parent.path())
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

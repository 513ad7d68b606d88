//! Several processes appending to one store object under the cluster lock
//! lose no update. The test binary re-runs itself as the child processes.

use std::process::Command;
use std::time::Duration;

use orbitlab_engine::store::{LockName, LockOptions, Store, StorePath};

const PROCESSES: usize = 6;
const APPENDS_PER_PROCESS: usize = 40;
const CHILD_ENV: &str = "ORBITLAB_TEST_APPENDER";

fn options() -> LockOptions {
    LockOptions {
        wait: Duration::from_secs(120),
        max_poll: Duration::from_millis(5),
        renew_every: Duration::from_secs(20),
        notice: None,
    }
}

/// One appender: lock, read the log, add a line, replace it, unlock.
fn append_lines(root: &str, who: &str) {
    let store = Store::open(root).with_lock_options(options());
    let name: LockName = "append-test".parse().unwrap();
    let path = StorePath::config("counter/log").unwrap();
    for i in 0..APPENDS_PER_PROCESS {
        let _guard = store.lock(&name).unwrap();
        let mut log = store.read(&path).unwrap().unwrap_or_default();
        log.extend_from_slice(format!("{who} {i}\n").as_bytes());
        // Widen the race window a mutual-exclusion bug would need.
        std::thread::yield_now();
        store.write(&path, &log).unwrap();
    }
}

#[test]
fn concurrent_appenders_lose_no_update() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (root, who) = spec.split_once('|').unwrap();
        append_lines(root, who);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrent_appenders_lose_no_update",
                    "--nocapture",
                ])
                .env(CHILD_ENV, format!("{root}|p{n}"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "an appender failed");
    }
    let log = std::fs::read_to_string(dir.path().join("orbitlab/counter/log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    println!(
        "{} processes x {} appends: {} lines kept",
        PROCESSES,
        APPENDS_PER_PROCESS,
        lines.len()
    );
    assert_eq!(lines.len(), PROCESSES * APPENDS_PER_PROCESS);
    for n in 0..PROCESSES {
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("p{n} ")))
            .collect();
        let expected: Vec<String> = (0..APPENDS_PER_PROCESS)
            .map(|i| format!("p{n} {i}"))
            .collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "p{n}'s appends out of order or lost"
        );
    }
    assert!(!dir.path().join("priv/lock/orbitlab-append-test").exists());
}

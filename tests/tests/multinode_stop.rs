//! SIGTERM stops an agent cleanly even in the middle of a reconcile: the
//! reconcile in flight finishes (no status turns Failed because of the
//! stop), the process exits with status 0 within its grace period, and it
//! leaves no cluster lock behind (a SIGKILL would leave them to expire).
//! Needs root (FUSE).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_engine::placement::rendezvous;
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, secs, wait_for};
use orbitlab_tests::{NODES, test_programs};

/// Locks whose directory exists, with the process id their owner note names.
fn held_locks(root: &Path) -> Vec<(String, Option<u32>)> {
    let Ok(entries) = std::fs::read_dir(root.join("priv/lock")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|dir| dir.strip_prefix("orbitlab-").map(str::to_owned))
        .map(|name| {
            let note =
                std::fs::read_to_string(root.join(format!("priv/orbitlab/locks/{name}.owner")))
                    .unwrap_or_default();
            let pid = note
                .split_whitespace()
                .find_map(|f| f.strip_prefix("pid="))
                .and_then(|p| p.parse().ok());
            (name, pid)
        })
        .collect()
}

#[test]
fn sigterm_mid_reconcile_finishes_the_pass_and_releases_every_lock() {
    let options = ClusterOptions {
        task_duration: Duration::from_millis(200),
        ..ClusterOptions::default()
    };
    let mut lab = MultiNode::start(test_programs!(), options);
    lab.start_agents();
    let root = lab.mount().to_owned();
    let owner = rendezvous("cluster", NODES).unwrap().to_owned();
    let pid = lab.agent_pid(&owner).unwrap();
    let api = lab.api();
    let expected: BTreeSet<String> = (0..2).map(|i| format!("u{i}")).collect();
    for name in &expected {
        let props = PropertyValue::from_pairs([("name", name.as_str()), ("cidr", "172.16.0.0/24")])
            .unwrap();
        api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
            .unwrap();
    }
    wait_for(Duration::from_secs(60), || {
        held_locks(&root)
            .contains(&("reconcile".to_owned(), Some(pid)))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{owner} never held orbitlab-reconcile\n{}",
            lab.agent_logs()
        )
    });

    let (status, took) = lab.terminate_agent(&owner);
    assert!(
        status.success(),
        "the agent exited with {status} (1 means the grace period ran out)"
    );
    // A lock's owner note is informative and written just after the lock is
    // taken: another agent that took a released lock a moment ago may not
    // have written its note yet, so the stopped agent's pid still shows. A
    // lock is left behind only if it is still the stopped agent's half a
    // second later — well within the lab's 3 s lock expiry, after which a
    // truly leaked lock would change hands.
    let held_by_stopped = || -> Vec<_> {
        held_locks(&root)
            .into_iter()
            .filter(|(_, holder)| *holder == Some(pid))
            .collect()
    };
    let started = std::time::Instant::now();
    let mut left = held_by_stopped();
    while !left.is_empty() && started.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
        left = held_by_stopped();
    }
    assert!(
        left.is_empty(),
        "locks left behind by the stopped agent: {left:?}"
    );
    let phases = lab.phases();
    assert!(
        phases.values().all(|p| p != "Failed"),
        "a status turned Failed because of the stop: {phases:?}"
    );

    lab.start_agent(&owner);
    let converge = lab
        .wait_converged(&expected, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let audit = lab.audit(&expected).unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();
    println!(
        "multinode stop: SIGTERM to {owner}'s agent in the middle of a reconcile: exited 0 after {}, no lock left, no Failed status; \
         converged {} after its restart; {} Sectors, {} containers",
        secs(took),
        secs(converge),
        audit.sectors,
        audit.containers,
    );
}

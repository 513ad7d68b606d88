//! A cluster lock left by a killed agent is taken over after its timeout:
//! the agent owning cluster-scoped work is killed (SIGKILL) while it holds
//! `orbitlab-reconcile` and its node goes offline; the next owner waits for
//! the pmxcfs lock timeout — never less — then takes the lock with
//! `utime(0,0)` + `mkdir` and carries on. When the node comes back with a
//! fresh agent, everything converges. Needs root (FUSE).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_engine::placement::rendezvous;
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, secs, wait_for};
use orbitlab_tests::{NODES, test_programs};

/// `node=pve1 pid=123 since=...` from the lock's owner note.
fn holder(root: &Path) -> Option<(String, u32)> {
    let note = std::fs::read_to_string(root.join("priv/orbitlab/locks/reconcile.owner")).ok()?;
    let field = |key: &str| {
        note.split_whitespace()
            .find_map(|f| f.strip_prefix(key))
            .map(str::to_owned)
    };
    Some((field("node=")?, field("pid=")?.parse().ok()?))
}

#[test]
fn a_dead_agents_lock_is_taken_over_after_its_timeout() {
    let options = ClusterOptions {
        task_duration: Duration::from_millis(250),
        ..ClusterOptions::default()
    };
    let (timeout, renew) = (options.lock_timeout, options.lock_renew);
    let mut lab = MultiNode::start(test_programs!(), options);
    lab.start_agents();
    let root = lab.mount().to_owned();
    let lock_dir = root.join("priv/lock/orbitlab-reconcile");
    let owner = rendezvous("cluster", NODES).unwrap().to_owned();
    let api = lab.api();
    let expected: BTreeSet<String> = (0..3).map(|i| format!("t{i}")).collect();
    for name in &expected {
        let props = PropertyValue::from_pairs([("name", name.as_str()), ("cidr", "172.16.0.0/24")])
            .unwrap();
        api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
            .unwrap();
    }

    // Kill the owner while it holds the lock (retrying if the pass ended
    // just before the kill landed).
    let mut attempts = 0;
    let (killed_pid, killed_at) = loop {
        attempts += 1;
        assert!(
            attempts <= 5,
            "never caught the owner holding the lock\n{}",
            lab.agent_logs()
        );
        let pid = lab.agent_pid(&owner).unwrap();
        wait_for(Duration::from_secs(60), || {
            (lock_dir.exists() && holder(&root) == Some((owner.clone(), pid))).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{owner} never held orbitlab-reconcile\n{}",
                lab.agent_logs()
            )
        });
        lab.kill_agent(&owner);
        let killed_at = Instant::now();
        if lock_dir.exists() && holder(&root) == Some((owner.clone(), pid)) {
            break (pid, killed_at);
        }
        lab.start_agent(&owner);
    };
    assert!(lab.sim.set_node_online(&owner, false));
    let next_owner = rendezvous("cluster", NODES.iter().copied().filter(|n| *n != owner))
        .unwrap()
        .to_owned();

    let (node, pid) = wait_for(Duration::from_secs(30), || {
        holder(&root).filter(|(_, p)| *p != killed_pid)
    })
    .unwrap_or_else(|| panic!("nobody took over the lock\n{}", lab.agent_logs()));
    let taken_after = killed_at.elapsed();
    assert_eq!(
        (node.as_str(), Some(pid)),
        (next_owner.as_str(), lab.agent_pid(&next_owner)),
        "the next owner takes over"
    );
    // The dead holder renewed at most `renew` before it died; pmxcfs lets
    // nobody in before the lock is `timeout` old.
    assert!(
        taken_after + renew + Duration::from_millis(100) >= timeout,
        "lock taken after {} although it expires {} after its last renewal",
        secs(taken_after),
        secs(timeout)
    );

    // The node comes back with a fresh agent; everything converges.
    assert!(lab.sim.set_node_online(&owner, true));
    lab.start_agent(&owner);
    let converge = lab
        .wait_converged(&expected, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let audit = lab.audit(&expected).unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();
    println!(
        "multinode lock: {owner}'s agent (pid {killed_pid}) killed holding orbitlab-reconcile; {next_owner} (pid {pid}) took it over \
         {} later (lock timeout {}, renewal every {}); converged {} after {owner} returned; {} Sectors, {} containers",
        secs(taken_after),
        secs(timeout),
        secs(renew),
        secs(converge),
        audit.sectors,
        audit.containers,
    );
}

//! Without quorum every agent stops changing things and keeps reading:
//! quorum is switched off on the pmxcfs simulator while three agents are
//! in the middle of building Sectors. During the window the PVE simulator
//! receives no write request and no container is configured, the store
//! still answers reads (and refuses writes), and every agent keeps polling
//! and reports `quorate 0`. When quorum returns they resume and converge.
//! Needs root (FUSE).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, secs, wait_for};
use orbitlab_tests::{NODES, test_programs};

/// In-flight requests finish within this after quorum is lost.
const SETTLE: Duration = Duration::from_millis(1500);
/// How long quorum stays off after settling.
const WINDOW: Duration = Duration::from_secs(4);

#[test]
fn without_quorum_agents_change_nothing_keep_reading_and_resume() {
    let options = ClusterOptions {
        task_duration: Duration::from_millis(150),
        metrics: true,
        ..ClusterOptions::default()
    };
    let mut lab = MultiNode::start(test_programs!(), options);
    lab.start_agents();
    let api = lab.api();
    let expected: BTreeSet<String> = (0..4).map(|i| format!("q{i}")).collect();
    for name in &expected {
        let props = PropertyValue::from_pairs([("name", name.as_str()), ("cidr", "172.16.0.0/24")])
            .unwrap();
        api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
            .unwrap();
    }
    // Work is under way: a container exists, not every Sector is Ready.
    wait_for(Duration::from_secs(60), || {
        lab.sim.with_state(|st| !st.guests.is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("no container was created\n{}", lab.agent_logs()));
    let phases = lab.phases();
    assert!(
        phases.values().any(|p| p != "Ready"),
        "everything was Ready before quorum went: {phases:?}"
    );

    lab.control().set_quorate(false).unwrap();
    std::thread::sleep(SETTLE);
    let mark = lab.sim.requests().last().map_or(0, |r| r.seq);
    let pushed = lab.sim.pct_log();
    let polls: Vec<f64> = NODES
        .iter()
        .map(|n| lab.metric(n, "orbitlab_agent_polls_total"))
        .collect();
    let window = Instant::now();
    while window.elapsed() < WINDOW {
        // Reads keep working, writes are refused.
        assert_eq!(
            api.get(&"/sectors".parse::<ApiPath>().unwrap())
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            expected.len()
        );
        let props =
            PropertyValue::from_pairs([("name", "late"), ("cidr", "172.16.0.0/24")]).unwrap();
        let refused = api
            .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("read-only (no quorum)"), "{refused}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let during: Vec<_> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.seq > mark)
        .collect();
    let writes: Vec<String> = during
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "write requests without quorum: {writes:?}"
    );
    assert_eq!(
        lab.sim.pct_log(),
        pushed,
        "a container was configured without quorum"
    );
    for (node, before) in NODES.iter().zip(&polls) {
        assert_eq!(
            lab.metric(node, "orbitlab_agent_quorate"),
            0.0,
            "{node} did not notice\n{}",
            lab.agent_logs()
        );
        let after = lab.metric(node, "orbitlab_agent_polls_total");
        assert!(
            after >= before + 5.0,
            "{node} stopped polling: {before} -> {after}\n{}",
            lab.agent_logs()
        );
    }

    lab.control().set_quorate(true).unwrap();
    let converge = lab
        .wait_converged(&expected, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let writes_after = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.seq > mark && r.method != "GET")
        .count();
    assert!(
        writes_after > 0,
        "nothing was written after quorum returned"
    );
    let audit = lab.audit(&expected).unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();
    println!(
        "multinode quorum: {} without quorum (after {} to settle): {} reads and 0 writes to Proxmox, agents kept polling; \
         converged {} after quorum returned ({} write requests); {} Sectors, {} containers",
        secs(WINDOW),
        secs(SETTLE),
        during.len(),
        secs(converge),
        writes_after,
        audit.sectors,
        audit.containers,
    );
}

//! Agent liveness on the simulators (three agent processes on a FUSE
//! pmxcfs, needs root):
//! - an agent SIGKILLed and not restarted, on a node that stays online,
//!   hands the cluster-scoped work over: another agent takes it within the
//!   lock timeout plus two polls (the figure is printed);
//! - a newer agent alive on the cluster (its heartbeat, written by the
//!   test) makes the older agents stand down: no Proxmox write, no status;
//!   once it stops they resume; a status in a newer format is never
//!   overwritten, and the agent says so.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_engine::liveness::{self, AgentRecord};
use orbitlab_engine::status::STATUS_FORMAT;
use orbitlab_engine::store::Store;
use orbitlab_manifests::Kind;
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, secs, wait_for};
use orbitlab_tests::{NODES, test_programs};

fn create_sector(lab: &MultiNode, name: &str) {
    let props = PropertyValue::from_pairs([("name", name), ("cidr", "172.16.0.0/24")]).unwrap();
    lab.api()
        .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
}

/// The agents' heartbeats that are readable, by node.
fn heartbeats(store: &Store) -> std::collections::BTreeMap<String, AgentRecord> {
    liveness::read_all(store)
        .unwrap()
        .into_iter()
        .filter_map(|(node, r)| r.ok().map(|r| (node, r)))
        .collect()
}

/// The node whose heartbeat says it owns cluster-scoped work, if exactly
/// one alive agent says so.
fn owner(store: &Store) -> Option<String> {
    let now = SystemTime::now();
    let owners: Vec<String> = heartbeats(store)
        .into_values()
        .filter(|r| r.owner && r.fresh(now))
        .map(|r| r.node)
        .collect();
    match owners.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

#[test]
fn a_killed_agent_hands_cluster_work_over_within_the_lock_timeout_and_two_polls() {
    let options = ClusterOptions::default();
    let mut lab = MultiNode::start(test_programs!(), options.clone());
    lab.start_agents();
    create_sector(&lab, "first");
    let expected: BTreeSet<String> = ["first".to_owned()].into();
    lab.wait_converged(&expected, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let before = wait_for(Duration::from_secs(10), || owner(&lab.store))
        .unwrap_or_else(|| panic!("no single owner\n{}", lab.agent_logs()));
    for node in NODES {
        let beat = &heartbeats(&lab.store)[node];
        assert_eq!(beat.version.to_string(), env!("CARGO_PKG_VERSION"));
        assert_eq!(beat.status_format, STATUS_FORMAT);
    }
    // The owner's next heartbeat reports its last pass.
    wait_for(Duration::from_secs(10), || {
        heartbeats(&lab.store)[&before].last_pass.as_ref().map(drop)
    })
    .unwrap_or_else(|| panic!("{before} reports no pass\n{}", lab.agent_logs()));

    // `orbitlab get /nodes`: every agent, its version, heartbeat age and
    // last pass.
    let nodes = lab
        .api()
        .get(&"/nodes".parse::<ApiPath>().unwrap())
        .unwrap();
    let rows = nodes.as_array().unwrap();
    assert_eq!(rows.len(), NODES.len(), "{nodes:#}");
    for row in rows {
        assert_eq!(row["member"], true, "{row:#}");
        assert_eq!(row["online"], true, "{row:#}");
        assert_eq!(row["agent"], "alive", "{row:#}");
        assert_eq!(row["version"], env!("CARGO_PKG_VERSION"), "{row:#}");
        assert!(row["heartbeat_age_s"].as_f64().unwrap() < 5.0, "{row:#}");
        assert_eq!(row["owner"], row["name"] == before.as_str(), "{row:#}");
        assert!(row["prerequisites"].as_str().is_some(), "{row:#}");
    }
    let owner_row = rows.iter().find(|r| r["name"] == before.as_str()).unwrap();
    assert!(
        owner_row["last_pass"]
            .as_str()
            .unwrap()
            .starts_with("cluster: "),
        "{owner_row:#}"
    );

    // The owner's agent dies and is not restarted; its node stays online
    // (pmxcfs still lists it), so membership alone would wait forever.
    lab.kill_agent(&before);
    let killed = Instant::now();
    create_sector(&lab, "second");
    let after = wait_for(Duration::from_secs(30), || {
        owner(&lab.store).filter(|o| *o != before)
    })
    .unwrap_or_else(|| panic!("nobody took over from {before}\n{}", lab.agent_logs()));
    let handed_over = killed.elapsed();
    // Work resumed: the Sector created at the kill gets a status from the
    // new owner.
    let name = "second".parse().unwrap();
    wait_for(Duration::from_secs(30), || {
        lab.store
            .read_status(Kind::Sector, &name)
            .unwrap()
            .filter(|s| s.node.as_deref() == Some(after.as_str()))
    })
    .unwrap_or_else(|| {
        panic!(
            "{after} did not work on the new Sector\n{}",
            lab.agent_logs()
        )
    });
    let resumed = killed.elapsed();
    let bound = options.lock_timeout + options.poll * 2;
    println!(
        "agent {before} killed: {after} owns cluster work after {} and reported on the new Sector after {} (lock timeout {} + two polls = {}; heartbeat {}, dead after 3 missed)",
        secs(handed_over),
        secs(resumed),
        secs(options.lock_timeout),
        secs(bound),
        secs(options.heartbeat),
    );
    // The node's agent comes back (a container of the new Sector may be
    // placed there: only its own agent configures it).
    lab.start_agent(&before);
    let expected: BTreeSet<String> = ["first".to_owned(), "second".to_owned()].into();
    lab.wait_converged(&expected, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    lab.audit(&expected).unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();
    // A clean stop is visible at once.
    let nodes = lab
        .api()
        .get(&"/nodes".parse::<ApiPath>().unwrap())
        .unwrap();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["agent"] == "stopped"),
        "{nodes:#}"
    );
}

#[test]
fn older_agents_stand_down_while_a_newer_one_is_alive_and_never_overwrite_a_newer_status() {
    let mut lab = MultiNode::start(test_programs!(), ClusterOptions::default());
    // pve2 runs a newer agent: the test keeps its heartbeat fresh.
    let stop = Arc::new(AtomicBool::new(false));
    let newer = {
        let store = lab.store.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut seq = 0;
            loop {
                seq += 1;
                let stopped = stop.load(Ordering::SeqCst);
                let record = AgentRecord {
                    node: "pve2".into(),
                    version: "99.0.0".parse().unwrap(),
                    status_format: STATUS_FORMAT + 1,
                    written_ms: liveness::unix_ms(SystemTime::now()),
                    seq,
                    interval_ms: 300,
                    started_ms: 0,
                    owner: true,
                    standing_down: None,
                    last_pass: None,
                    host: Default::default(),
                    stopped,
                    appliances: Default::default(),
                    vault: None,
                };
                record.write(&store).unwrap();
                if stopped {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    lab.start_agent("pve1");
    lab.start_agent("pve3");
    let mark = lab.sim.requests().last().map_or(0, |r| r.seq);
    create_sector(&lab, "web");
    // Both older agents say why they change nothing.
    wait_for(Duration::from_secs(20), || {
        let logs = lab.agent_logs();
        (logs
            .matches("standing down: node(s) pve2 run orbitlab-agent 99.0.0")
            .count()
            >= 2)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the older agents did not stand down\n{}", lab.agent_logs()));
    std::thread::sleep(Duration::from_secs(3));
    let writes: Vec<String> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.seq > mark && r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "an older agent wrote: {writes:?}");
    let web = "web".parse().unwrap();
    assert!(lab.store.read_status(Kind::Sector, &web).unwrap().is_none());
    for node in ["pve1", "pve3"] {
        let beat = &heartbeats(&lab.store)[node];
        assert!(!beat.owner, "{beat:?}");
        assert!(
            beat.standing_down
                .as_deref()
                .is_some_and(|s| s.contains("99.0.0")),
            "{beat:?}"
        );
    }

    // A status the newer agent wrote in its newer format.
    let newer_status = lab.mount().join("orbitlab/status/sector/legacy.json");
    std::fs::create_dir_all(newer_status.parent().unwrap()).unwrap();
    let text = format!(
        "{{\"format\": {}, \"node\": \"pve2\", \"conditions\": [], \"novel\": {{\"field\": 1}}}}\n",
        STATUS_FORMAT + 1
    );
    std::fs::write(&newer_status, &text).unwrap();

    // The newer agent goes away (a clean stop): the older ones resume, but
    // refuse to run over the newer status and say so.
    stop.store(true, Ordering::SeqCst);
    newer.join().unwrap();
    wait_for(Duration::from_secs(20), || {
        lab.agent_logs()
            .contains("newer than this agent's format")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no agent said it leaves the newer status alone\n{}",
            lab.agent_logs()
        )
    });
    assert_eq!(std::fs::read_to_string(&newer_status).unwrap(), text);
    assert!(lab.store.read_status(Kind::Sector, &web).unwrap().is_none());

    // Once the newer status is gone (the newer agent's kind is no longer
    // there), the older agents converge.
    std::fs::remove_file(&newer_status).unwrap();
    lab.start_agent("pve2");
    let expected: BTreeSet<String> = ["web".to_owned()].into();
    lab.wait_converged(&expected, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();
}

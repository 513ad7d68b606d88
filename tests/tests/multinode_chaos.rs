//! Three agent processes on one pmxcfs-simulator mount against one PVE
//! simulator, while agents are killed with SIGKILL at random moments (at
//! least 30 kills, each agent restarted at once, as systemd would):
//!
//! - 20 Sectors created concurrently through the three "nodes" (three
//!   writers on the shared mount), and four of them deleted midway;
//! - 20 instances (`kind: Lxc`) in one Sector, applied concurrently in
//!   batches through the three "nodes".
//!
//! Everything must converge, and the end state must hold no duplicate VNI,
//! VMID or address, no orphan Proxmox object, no lost manifest, and
//! exactly one container and one IPAM address per instance. Needs root
//! (FUSE).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_engine::pve::{LxcCreate, Pve};
use orbitlab_manifests::codec;
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, secs};
use orbitlab_tests::{NODES, test_programs};
use rand::Rng;

const SECTORS: usize = 20;
const DELETED: usize = 4;
const KILLS: usize = 30;
const INSTANCES: usize = 20;
const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/// SIGKILLs a random agent [`KILLS`] times, 150–900 ms apart, restarting
/// it at once as systemd would; `after(kill, lab)` runs after each (from
/// 1). The kills per node.
fn kill_agents(lab: &mut MultiNode, mut after: impl FnMut(usize, &MultiNode)) -> [usize; 3] {
    let mut rng = rand::thread_rng();
    let mut per_node = [0usize; 3];
    for kill in 1..=KILLS {
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        let n = rng.gen_range(0..NODES.len());
        lab.kill_agent(NODES[n]);
        per_node[n] += 1;
        lab.start_agent(NODES[n]);
        after(kill, lab);
    }
    per_node
}

fn cidr(i: usize) -> String {
    // Half the Sectors share one CIDR (overlap is allowed), half have their own.
    if i.is_multiple_of(2) {
        "172.16.0.0/24".to_owned()
    } else {
        format!("172.17.{i}.0/24")
    }
}

#[test]
fn twenty_sectors_converge_through_thirty_kills() {
    let mut lab = MultiNode::start(test_programs!(), ClusterOptions::default());
    lab.start_agents();
    let started = Instant::now();

    // Three writers, one per node, create the Sectors concurrently.
    let writers: Vec<_> = NODES
        .iter()
        .enumerate()
        .map(|(w, node)| {
            let api = lab.api();
            let node = node.to_string();
            std::thread::spawn(move || {
                for i in (w..SECTORS).step_by(NODES.len()) {
                    let props = PropertyValue::from_pairs([
                        ("name", format!("s{i}").as_str()),
                        ("cidr", cidr(i).as_str()),
                    ])
                    .unwrap();
                    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
                        .unwrap_or_else(|e| panic!("writer on {node}: create s{i}: {e}"));
                }
            })
        })
        .collect();

    // Kill a random agent at random moments, restarting it at once.
    let mut deleted = false;
    let kills_per_node = kill_agents(&mut lab, |kill, lab| {
        if !deleted && kill >= KILLS / 2 && writers.iter().all(|w| w.is_finished()) {
            let api = lab.api();
            for i in 0..DELETED {
                api.delete(&format!("/sectors/s{i}").parse::<ApiPath>().unwrap(), false)
                    .expect("delete");
            }
            deleted = true;
        }
    });
    let chaos = started.elapsed();
    for writer in writers {
        writer.join().expect("a writer failed");
    }
    if !deleted {
        let api = lab.api();
        for i in 0..DELETED {
            api.delete(&format!("/sectors/s{i}").parse::<ApiPath>().unwrap(), false)
                .expect("delete");
        }
    }
    let expected: BTreeSet<String> = (DELETED..SECTORS).map(|i| format!("s{i}")).collect();
    let after_kills = lab
        .wait_converged(&expected, Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{e}"));
    let audit = lab.audit(&expected).unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();

    println!(
        "multinode chaos: {SECTORS} Sectors created by {} writers, {DELETED} deleted; {KILLS} SIGKILLs (per node {:?}) over {}; \
         converged {} after the last kill, {} in all; end state: {} Sectors, {} containers, {} addresses, no duplicate or orphan",
        NODES.len(),
        kills_per_node,
        secs(chaos),
        secs(after_kills),
        secs(started.elapsed()),
        audit.sectors,
        audit.containers,
        audit.addresses,
    );
    assert_eq!(kills_per_node.iter().sum::<usize>(), KILLS);
    assert_eq!(audit.containers, 2 * (SECTORS - DELETED));
}

/// An instance manifest in Sector `web`.
fn lxc(i: usize) -> String {
    format!(
        "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: i{i}\nspec:\n  sector: web\n  template: {TEMPLATE}\n  memory: 128\n"
    )
}

#[test]
fn twenty_instances_converge_through_thirty_kills() {
    // Tasks long enough that kills land while containers are being made.
    let options = ClusterOptions {
        task_duration: Duration::from_millis(100),
        ..ClusterOptions::default()
    };
    let mut lab = MultiNode::start(test_programs!(), options);
    lab.start_agents();
    let started = Instant::now();
    let props = PropertyValue::from_pairs([("name", "web"), ("cidr", "172.16.0.0/24")]).unwrap();
    lab.api()
        .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .expect("create Sector web");
    let sectors = BTreeSet::from(["web".to_owned()]);
    let sector_ready = lab
        .wait_converged(&sectors, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));

    // Three writers, one per node, apply the instances in batches of one
    // or two manifests, at random moments while agents die.
    let chaos_started = Instant::now();
    let writers: Vec<_> = NODES
        .iter()
        .enumerate()
        .map(|(w, node)| {
            let api = lab.api();
            let node = node.to_string();
            std::thread::spawn(move || {
                let mut rng = rand::thread_rng();
                let mine: Vec<usize> = (w..INSTANCES).step_by(NODES.len()).collect();
                let mut batches = 0;
                let mut rest = mine.as_slice();
                while !rest.is_empty() {
                    std::thread::sleep(Duration::from_millis(rng.gen_range(200..3000)));
                    let (batch, after) = rest.split_at(rest.len().min(1 + batches % 2));
                    let text: Vec<String> = batch.iter().map(|i| lxc(*i)).collect();
                    let docs = codec::decode(&format!("{node}.yaml"), &text.join("---\n"))
                        .expect("the manifests decode");
                    api.apply(docs)
                        .unwrap_or_else(|e| panic!("writer on {node}: apply {batch:?}: {e}"));
                    batches += 1;
                    rest = after;
                }
                batches
            })
        })
        .collect();

    let kills_per_node = kill_agents(&mut lab, |_, _| {});
    let chaos = chaos_started.elapsed();
    let batches: usize = writers
        .into_iter()
        .map(|w| w.join().expect("a writer failed"))
        .sum();
    let instances: BTreeSet<String> = (0..INSTANCES).map(|i| format!("i{i}")).collect();
    let after_kills = lab
        .wait_converged_with_instances(&sectors, &instances, Duration::from_secs(150))
        .unwrap_or_else(|e| panic!("{e}"));
    let audit = lab
        .audit_with_instances(&sectors, &instances)
        .unwrap_or_else(|e| panic!("{e}"));
    let per_node = lab.sim.with_state(|st| {
        let mut per_node = std::collections::BTreeMap::<String, usize>::new();
        for guest in st.guests.values() {
            *per_node.entry(guest.node.clone()).or_default() += 1;
        }
        per_node
    });
    lab.stop_agents();
    audit_catches_duplicates_and_orphans(&lab, &sectors, &instances);

    println!(
        "multinode chaos: Sector web Ready in {}; {INSTANCES} instances applied by {} writers in {batches} batches; \
         {} SIGKILLs (per node {:?}) over {}; converged {} after the last kill, {} in all; \
         end state: {} instances, {} containers (per node {per_node:?}), {} addresses, no duplicate or orphan",
        secs(sector_ready),
        NODES.len(),
        kills_per_node.iter().sum::<usize>(),
        kills_per_node,
        secs(chaos),
        secs(after_kills),
        secs(started.elapsed()),
        audit.instances,
        audit.containers,
        audit.addresses,
    );
    assert!(kills_per_node.iter().sum::<usize>() >= KILLS);
    assert_eq!(batches, 14, "7, 7 and 6 instances in batches of 1 and 2");
    assert_eq!(audit.instances, INSTANCES);
    assert_eq!(
        audit.containers,
        2 + INSTANCES,
        "gateway, DNS and one per instance"
    );
}

/// With the agents stopped, breaks the converged state by hand — a second
/// container marked for instance i0 at i0's address, and a container
/// marked for an instance nobody declared — and checks that the audit
/// reports both: its passing above means something.
fn audit_catches_duplicates_and_orphans(
    lab: &MultiNode,
    sectors: &BTreeSet<String>,
    instances: &BTreeSet<String>,
) {
    let net0 = lab.sim.with_state(|st| {
        st.guests
            .values()
            .find(|g| {
                g.config
                    .get("description")
                    .is_some_and(|d| d.split_whitespace().any(|w| w == "orbitlab:lxc/i0"))
            })
            .and_then(|g| g.config.get("net0").cloned())
            .expect("i0's container has net0")
    });
    let ghost_net0 = net0
        .split(',')
        .map(|kv| match kv.strip_prefix("ip=") {
            Some(_) => "ip=172.16.0.250/24".to_owned(),
            None => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",");
    for (vmid, marker, net0) in [
        (9000, "orbitlab:lxc/i0", net0),
        (9001, "orbitlab:lxc/ghost", ghost_net0),
    ] {
        let upid = lab
            .pve
            .lxc_create(
                NODES[1],
                &LxcCreate {
                    vmid,
                    ostemplate: TEMPLATE.into(),
                    rootfs: Some("local-lvm:1".into()),
                    nets: [(0, net0)].into(),
                    description: Some(format!("made by hand\n{marker}\n")),
                    ..LxcCreate::default()
                },
            )
            .expect("a container made by hand");
        lab.pve
            .wait_task(&upid, Duration::from_secs(10))
            .expect("the create task ends");
    }
    let problems = lab
        .audit_with_instances(sectors, instances)
        .expect_err("the audit finds the containers made by hand");
    for expected in [
        "instance i0 has 2 containers",
        "held by containers",
        "orphan container 9001",
    ] {
        assert!(
            problems.contains(expected),
            "the audit does not report {expected:?}: {problems}"
        );
    }
}

#[test]
fn a_pool_of_six_converges_through_thirty_kills() {
    let options = ClusterOptions {
        task_duration: Duration::from_millis(100),
        ..ClusterOptions::default()
    };
    let mut lab = MultiNode::start(test_programs!(), options);
    lab.start_agents();
    let started = Instant::now();
    let yaml = format!(
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata: {{name: web}}\nspec: {{cidr: 172.16.0.0/24}}\n---\n\
         apiVersion: orbitlab.io/v1\nkind: Pool\nmetadata: {{name: api}}\nspec:\n  instance: {{sector: web, template: '{TEMPLATE}', memory: 128}}\n  replicas: 6\n  \
         health: {{tcp: {{port: 80}}, interval: 2s, timeout: 1s}}\n"
    );
    lab.api()
        .apply(codec::decode("pool.yaml", &yaml).expect("the manifests decode"))
        .expect("apply");
    let kills_per_node = kill_agents(&mut lab, |_, _| {});
    let chaos = started.elapsed();
    let sectors = BTreeSet::from(["web".to_owned()]);
    let members = |lab: &MultiNode| -> BTreeSet<String> {
        let records = orbitlab_engine::pool::read_records(&lab.store).unwrap_or_default();
        records
            .values()
            .flat_map(|r| r.members.keys())
            .map(|n| format!("api-{n}"))
            .collect()
    };
    let converged_at = Instant::now();
    let done = orbitlab_tests::multinode::wait_for(Duration::from_secs(150), || {
        let members = members(&lab);
        (members.len() == 6 && lab.audit_with_instances(&sectors, &members).is_ok())
            .then_some(members)
    });
    let Some(names) = done else {
        let members = members(&lab);
        panic!(
            "the pool did not converge: members {members:?}; {}\n{}",
            lab.audit_with_instances(&sectors, &members)
                .err()
                .unwrap_or_default(),
            lab.agent_logs()
        );
    };
    let after_kills = converged_at.elapsed();
    let audit = lab
        .audit_with_instances(&sectors, &names)
        .unwrap_or_else(|e| panic!("{e}"));
    lab.stop_agents();
    println!(
        "multinode chaos: Pool api of 6 applied; {} SIGKILLs (per node {:?}) over {}; converged {} after the last kill, {} in all; \
         end state: members {names:?}, {} containers, {} addresses, no duplicate or orphan",
        kills_per_node.iter().sum::<usize>(),
        kills_per_node,
        secs(chaos),
        secs(after_kills),
        secs(started.elapsed()),
        audit.containers,
        audit.addresses,
    );
    assert_eq!(audit.instances, 6);
    assert_eq!(audit.containers, 2 + 6, "gateway, DNS and one per member");
}

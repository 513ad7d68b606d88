//! Three agent processes on one pmxcfs-simulator mount against one PVE
//! simulator: 20 Sectors created concurrently through the three "nodes"
//! (three writers on the shared mount), and four of them deleted midway,
//! while agents are killed with SIGKILL at random moments (at least 30
//! kills, each agent restarted at once, as systemd would). Everything must
//! converge, and the end state must hold no duplicate VNI, VMID or address,
//! no orphan Proxmox object and no lost manifest. Needs root (FUSE).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orbitlab_engine::api::{ApiPath, PropertyValue};
use orbitlab_tests::multinode::{ClusterOptions, MultiNode, secs};
use orbitlab_tests::{NODES, test_programs};
use rand::Rng;

const SECTORS: usize = 20;
const DELETED: usize = 4;
const KILLS: usize = 30;

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
    let mut rng = rand::thread_rng();
    let mut kills_per_node = [0usize; 3];
    let mut deleted = false;
    for kill in 1..=KILLS {
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        let n = rng.gen_range(0..NODES.len());
        lab.kill_agent(NODES[n]);
        kills_per_node[n] += 1;
        lab.start_agent(NODES[n]);
        if !deleted && kill >= KILLS / 2 && writers.iter().all(|w| w.is_finished()) {
            let api = lab.api();
            for i in 0..DELETED {
                api.delete(&format!("/sectors/s{i}").parse::<ApiPath>().unwrap(), false)
                    .expect("delete");
            }
            deleted = true;
        }
    }
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

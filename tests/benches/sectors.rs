//! Sector figures for BENCHMARKS.md:
//! - Proxmox API calls per Sector create and per Sector delete (3 simulated
//!   nodes, every node running a cluster-scoped reconcile in turn, as
//!   before issue 9), and per Sector create with the scopes the agents
//!   really use (`pve1` owns cluster-scoped work, the others run
//!   node-scoped reconciles);
//! - time to plan 1,000 Sectors (the pure planner).
//!
//! Each is measured twice: with a bare store root, and with the files
//! pmxcfs generates (`.vmlist`, `.version`: what lets an observation reuse
//! Proxmox reads across runs), as on a real node.
//!
//! Run: `cargo bench -p orbitlab-tests --bench sectors`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::reconcile::observed::{NodeObs, Observed, Uplink};
use orbitlab_engine::reconcile::{Desired, plan::plan};
use orbitlab_manifests::{ClusterSpec, SectorSpec};
use orbitlab_tests::Lab;

fn calls(lab: &Lab) -> (usize, usize) {
    let requests = lab.sim.requests();
    let writes = requests.iter().filter(|r| r.method != "GET").count();
    (requests.len(), writes)
}

/// The recorded requests counted by method and endpoint (VMIDs, UPIDs and
/// SDN ids folded into placeholders), most requested first.
fn by_endpoint(lab: &Lab) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in lab.sim.requests() {
        *counts
            .entry(format!("{} {}", r.method, endpoint(&r.path)))
            .or_default() += 1;
    }
    let mut rows: Vec<(String, usize)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.iter()
        .map(|(e, n)| format!("  {n:>4}  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn endpoint(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let after = |name: &str| i > 0 && parts[i - 1] == name;
            if p.parse::<u32>().is_ok() {
                "{vmid}"
            } else if p.starts_with("UPID:") {
                "{upid}"
            } else if after("vnets") || after("zones") || after("subnets") {
                "{id}"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Creates and deletes a Sector, then creates another with the agents'
/// scopes, printing the requests each took.
fn sector_requests(lab: &Lab) {
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    lab.converge();
    let api = Api::new(lab.store.clone());

    lab.sim.clear_requests();
    let started = Instant::now();
    let props = PropertyValue::from_pairs([("name", "web"), ("cidr", "172.16.0.0/24")]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    lab.converge();
    let create_time = started.elapsed();
    let (create_all, create_writes) = calls(lab);
    let create_endpoints = by_endpoint(lab);

    lab.sim.clear_requests();
    let started = Instant::now();
    api.delete(&"/sectors/web".parse().unwrap(), false).unwrap();
    lab.converge();
    let delete_time = started.elapsed();
    let (delete_all, delete_writes) = calls(lab);
    let delete_endpoints = by_endpoint(lab);
    println!(
        "Sector create: {create_all} Proxmox API calls ({create_writes} writes, {} reads) over 3 agents' passes, {:.0} ms with 5 ms simulated tasks",
        create_all - create_writes,
        create_time.as_secs_f64() * 1000.0
    );
    println!("{create_endpoints}");
    println!(
        "Sector delete: {delete_all} Proxmox API calls ({delete_writes} writes, {} reads), {:.0} ms",
        delete_all - delete_writes,
        delete_time.as_secs_f64() * 1000.0
    );
    println!("{delete_endpoints}");

    // The same create with the scopes the daemons use.
    lab.sim.clear_requests();
    let props = PropertyValue::from_pairs([("name", "app"), ("cidr", "172.16.0.0/24")]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    lab.converge_as_agents("pve1");
    let (agents_all, agents_writes) = calls(lab);
    println!(
        "Sector create, owner cluster-scoped and the others node-scoped (as the agents run): {agents_all} Proxmox API calls ({agents_writes} writes, {} reads)",
        agents_all - agents_writes
    );
    println!("{}", by_endpoint(lab));

    // One instance in Sector app, as the agents run it.
    lab.converge_as_agents("pve1");
    for (i, name) in ["i1", "i2", "i3"].iter().enumerate() {
        lab.sim.clear_requests();
        let started = Instant::now();
        let yaml = format!(
            "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: {name}\nspec:\n  sector: app\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
        );
        api.apply(orbitlab_manifests::codec::decode("i.yaml", &yaml).unwrap())
            .unwrap();
        lab.converge_as_agents("pve1");
        let elapsed = started.elapsed();
        let (all, writes) = calls(lab);
        println!(
            "instance create #{} (as the agents run it, DNS pushed into the Sector's container): {all} Proxmox API calls ({writes} writes, {} reads), {:.0} ms with 5 ms simulated tasks",
            i + 1,
            all - writes,
            elapsed.as_secs_f64() * 1000.0
        );
        if i == 0 {
            println!("{}", by_endpoint(lab));
        }
    }
}

fn main() {
    println!("== store root without pmxcfs's generated files (nothing reused across runs)");
    sector_requests(&Lab::new());
    println!("== store root with .members, .vmlist and .version, as /etc/pve has them");
    sector_requests(&Lab::with_pmxcfs_files());

    // The pure planner with 1,000 Sectors to build from scratch.
    let mut desired = Desired {
        cluster: Some(("lab".parse().unwrap(), ClusterSpec::default())),
        sectors: BTreeMap::new(),
        ..Desired::default()
    };
    for i in 0..1000u32 {
        let cidr = format!("172.{}.{}.0/24", 16 + i / 256, i % 256)
            .parse()
            .unwrap();
        desired
            .sectors
            .insert(format!("s{i:04}").parse().unwrap(), SectorSpec::new(cidr));
    }
    let mut observed = Observed {
        pve_major: 8,
        ..Observed::default()
    };
    for n in 1..=3u8 {
        observed.nodes.insert(
            format!("pve{n}").parse().unwrap(),
            NodeObs {
                online: true,
                uplink: Some(Uplink {
                    address: Ipv4Addr::new(192, 168, 100, 10 + n),
                    network: "192.168.100.0/24".parse().unwrap(),
                    mtu: 1500,
                }),
            },
        );
    }
    let mut times = Vec::new();
    let mut steps = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let planned = plan(&desired, &observed);
        times.push(started.elapsed());
        steps = planned.actions.len();
    }
    times.sort();
    println!(
        "plan 1,000 Sectors from scratch ({steps} steps): median {:.1} ms, min {:.1} ms over 10 runs",
        times[5].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0
    );
    plan_instances(&observed);
}

/// The pure planner with 10,000 instances to place in one applied Sector
/// (a /16), on three nodes with memory to spare.
fn plan_instances(nodes: &Observed) {
    let web: orbitlab_manifests::Name = "web".parse().unwrap();
    let cidr: ipnet::Ipv4Net = "10.0.0.0/16".parse().unwrap();
    let mut desired = Desired {
        cluster: Some(("lab".parse().unwrap(), ClusterSpec::default())),
        ..Desired::default()
    };
    desired.sectors.insert(web.clone(), SectorSpec::new(cidr));
    let template: orbitlab_manifests::VolumeId =
        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
            .parse()
            .unwrap();
    for i in 0..10_000u32 {
        desired.instances.insert(
            format!("i{i:05}").parse().unwrap(),
            orbitlab_manifests::LxcSpec::new(web.clone(), template.clone()),
        );
    }
    // The cluster and the Sector as they are once applied: plan them from
    // nothing, then take their first pass's SDN objects as observed.
    let mut observed = nodes.clone();
    observed.tags.insert(1001, "web".into());
    let sdn = plan(&desired, &observed);
    apply_sdn(&sdn.actions, &mut observed);
    for (node, _) in nodes.nodes.iter() {
        observed.loads.insert(
            node.clone(),
            orbitlab_engine::reconcile::observed::NodeLoad {
                free_mib: 16 << 20,
                total_mib: 16 << 20,
                cpus: 64,
            },
        );
    }
    let mut times = Vec::new();
    let mut creates = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let planned = plan(&desired, &observed);
        times.push(started.elapsed());
        creates = planned
            .actions
            .iter()
            .filter(|a| matches!(a, orbitlab_engine::reconcile::Action::CreateContainer(c) if c.marker.kind == orbitlab_manifests::Kind::Lxc))
            .count();
    }
    times.sort();
    println!(
        "plan 10,000 instances from scratch ({creates} containers to create): median {:.1} ms, min {:.1} ms over 5 runs",
        times[2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0
    );
}

/// Records the SDN objects a plan creates as applied (what Proxmox holds
/// after the pass).
fn apply_sdn(actions: &[orbitlab_engine::reconcile::Action], observed: &mut Observed) {
    use orbitlab_engine::reconcile::Action;
    use orbitlab_engine::reconcile::observed::{SubnetObs, VnetObs, ZoneObs};
    for action in actions {
        match action {
            Action::CreateZone { id, .. } => {
                observed.zones.insert(
                    id.clone(),
                    ZoneObs {
                        kind: "vxlan".into(),
                        controller: None,
                        vrf_vxlan: None,
                        peers: Vec::new(),
                        exitnodes: Vec::new(),
                        exitnodes_primary: None,
                        advertise_subnets: false,
                        mtu: Some(1450),
                        pending: None,
                    },
                );
            }
            Action::CreateVnet { id, zone, tag, .. } => {
                observed.vnets.insert(
                    id.clone(),
                    VnetObs {
                        zone: Some(zone.clone()),
                        tag: Some(*tag),
                        alias: None,
                        pending: None,
                    },
                );
            }
            Action::CreateSubnet {
                vnet, id, gateway, ..
            } => {
                observed.subnets.insert(
                    id.clone(),
                    SubnetObs {
                        vnet: vnet.clone(),
                        cidr: id.cidr,
                        gateway: Some(*gateway),
                        snat: false,
                        pending: None,
                    },
                );
            }
            _ => {}
        }
    }
}

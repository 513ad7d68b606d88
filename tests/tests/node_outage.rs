//! A node goes offline and comes back, on the simulated cluster (PVE 8.4
//! and 9.1): the Backplane keeps it as a peer and exit node (membership,
//! not who is online), so the outage makes no SDN write; the Sector
//! appliance and the instance on it are reported Unavailable, never made
//! again elsewhere; once it is back they are Ready with the containers they
//! had, and nothing was written to Proxmox in between. The Backplane zone
//! carries `exitnodes-primary` (the simulator checks every request against
//! the official schema, so a wrong parameter is answered 400).
//!
//! With `ha` declared on the Sector, its gateway and DNS containers are
//! Proxmox HA resources with the declared state; on node loss OrbitLab
//! still makes nothing, Proxmox HA recovers them on another node (the
//! simulator's `recover_ha`), and OrbitLab follows them there: one
//! container per role, the Sector Ready again.

use orbitlab_engine::api::Api;
use orbitlab_engine::reconcile::Scope;
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_manifests::{Kind, codec};
use orbitlab_sim::pve::PveVersion;
use orbitlab_tests::{Lab, NODES};

fn status(lab: &Lab, kind: Kind, name: &str) -> ObjectStatus {
    lab.store
        .read_status(kind, &name.parse().unwrap())
        .unwrap()
        .unwrap_or_else(|| panic!("{kind} {name} has no status"))
}

fn reason(lab: &Lab, kind: Kind, name: &str) -> String {
    let s = status(lab, kind, name);
    let ready = s
        .condition(ConditionType::Ready)
        .expect("a Ready condition");
    if ready.status {
        "Ready".into()
    } else {
        format!("{}: {}", ready.reason, ready.message)
    }
}

/// The agents of the online nodes, `owner` cluster-scoped, until a round
/// does nothing.
fn converge_online(lab: &Lab, owner: &str, offline: &str) {
    for _ in 0..6 {
        let mut steps = 0;
        for node in NODES.iter().filter(|n| **n != offline) {
            let host = lab.host(node);
            let mut reconciler = lab.reconciler(&host);
            if *node != owner {
                reconciler.options.scope = Scope::Node;
            }
            steps += reconciler.run().expect("a reconcile runs").steps;
            // As the node's agent: probe its appliances, publish the answers.
            steps += usize::from(lab.probe(node));
        }
        if steps == 0 {
            return;
        }
    }
}

fn outage(version: PveVersion) {
    let lab = Lab::with_version(version);
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    let zone = lab.sim.snapshot()["sdn"]["running"]["zones"]["olbp"].clone();
    assert_eq!(zone["exitnodes"], "pve1,pve2,pve3", "{zone}");
    assert_eq!(zone["exitnodes-primary"], "pve1", "{zone}");

    let api = Api::new(lab.store.clone());
    api.apply(
        codec::decode(
            "web.yaml",
            "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: db\nspec:\n  cidr: 172.18.0.0/24\n",
        )
        .unwrap(),
    )
    .unwrap();
    lab.converge_as_agents("pve1");
    let gateway_node = status(&lab, Kind::Sector, "db").outputs["gateway/node"].clone();
    assert_ne!(gateway_node, "pve1", "test premise: the owner stays online");
    api.apply(
        codec::decode(
            "app.yaml",
            &format!(
                "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app\nspec:\n  sector: db\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n  node: {gateway_node}\n"
            ),
        )
        .unwrap(),
    )
    .unwrap();
    lab.converge_as_agents("pve1");
    assert_eq!(reason(&lab, Kind::Lxc, "app"), "Ready");
    assert_eq!(reason(&lab, Kind::Sector, "db"), "Ready");
    let guests_before = lab.sim.with_state(|st| st.guests.len());
    lab.sim.clear_requests();

    // The node goes down.
    assert!(lab.sim.set_node_online(&gateway_node, false));
    converge_online(&lab, "pve1", &gateway_node);
    converge_online(&lab, "pve1", &gateway_node);
    for (kind, name) in [(Kind::Sector, "db"), (Kind::Lxc, "app")] {
        let why = reason(&lab, kind, name);
        assert!(
            why.starts_with("Unavailable:") && why.contains(&gateway_node),
            "{kind} {name}: {why}"
        );
    }
    let writes = lab.writes();
    assert!(
        writes.is_empty(),
        "writes while {gateway_node} was offline: {writes:?}"
    );
    assert_eq!(lab.sim.with_state(|st| st.guests.len()), guests_before);

    // It comes back: Ready with what it had, still nothing written.
    assert!(lab.sim.set_node_online(&gateway_node, true));
    lab.converge_as_agents("pve1");
    assert_eq!(reason(&lab, Kind::Sector, "db"), "Ready");
    assert_eq!(reason(&lab, Kind::Lxc, "app"), "Ready");
    let writes = lab.writes();
    assert!(
        writes.is_empty(),
        "writes after {gateway_node} returned: {writes:?}"
    );
    assert_eq!(lab.sim.with_state(|st| st.guests.len()), guests_before);
    let refused = lab
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 400)
        .count();
    assert_eq!(refused, 0, "a request broke the schema");
}

#[test]
fn a_node_outage_writes_nothing_and_duplicates_nothing_on_pve_8() {
    outage(PveVersion::V8_4);
}

#[test]
fn a_node_outage_writes_nothing_and_duplicates_nothing_on_pve_9() {
    outage(PveVersion::V9_1);
}

fn sector_ha(version: PveVersion) {
    let lab = Lab::with_version(version);
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    let api = Api::new(lab.store.clone());
    api.apply(
        codec::decode(
            "db.yaml",
            "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: db\nspec:\n  cidr: 172.18.0.0/24\n  ha:\n    state: started\n",
        )
        .unwrap(),
    )
    .unwrap();
    lab.converge_as_agents("pve1");
    assert_eq!(reason(&lab, Kind::Sector, "db"), "Ready");
    let outputs = status(&lab, Kind::Sector, "db").outputs;
    let gateway_node = outputs["gateway/node"].clone();
    assert_ne!(gateway_node, "pve1", "test premise: the owner stays online");
    let vmids: Vec<String> = ["gateway", "dns"]
        .iter()
        .map(|role| outputs[&format!("{role}/vmid")].clone())
        .collect();
    let ha = lab.sim.snapshot()["ha"].clone();
    for vmid in &vmids {
        let resource = &ha[format!("ct:{vmid}")];
        assert!(
            resource.is_object(),
            "ct:{vmid} is not an HA resource: {ha}"
        );
        assert_eq!(
            resource["state"].as_str().unwrap_or("started"),
            "started",
            "{ha}"
        );
    }
    let markers_before = lab.container_markers();
    lab.sim.clear_requests();

    // The node dies: reported, nothing made again.
    assert!(lab.sim.set_node_online(&gateway_node, false));
    converge_online(&lab, "pve1", &gateway_node);
    let why = reason(&lab, Kind::Sector, "db");
    assert!(
        why.starts_with("Unavailable:") && why.contains("Proxmox HA recovers it"),
        "{why}"
    );
    assert!(lab.writes().is_empty(), "{:?}", lab.writes());

    // Proxmox HA recovers the containers on another node: OrbitLab follows.
    let moved = lab.sim.recover_ha();
    assert!(
        moved
            .iter()
            .any(|(vmid, from, _)| vmid.to_string() == vmids[0] && *from == gateway_node),
        "{moved:?}"
    );
    converge_online(&lab, "pve1", &gateway_node);
    assert_eq!(reason(&lab, Kind::Sector, "db"), "Ready");
    let now_on = status(&lab, Kind::Sector, "db").outputs["gateway/node"].clone();
    assert_ne!(now_on, gateway_node);
    assert_eq!(
        lab.container_markers(),
        markers_before,
        "a container was made twice"
    );
    let creates: Vec<String> = lab
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("POST") && w.ends_with("/lxc"))
        .collect();
    assert!(creates.is_empty(), "{creates:?}");

    // The node returns: nothing changes.
    lab.sim.clear_requests();
    assert!(lab.sim.set_node_online(&gateway_node, true));
    lab.converge_as_agents("pve1");
    assert_eq!(reason(&lab, Kind::Sector, "db"), "Ready");
    assert_eq!(lab.container_markers(), markers_before);
    assert!(lab.writes().is_empty(), "{:?}", lab.writes());
}

#[test]
fn sector_ha_lets_proxmox_recover_the_appliances_without_duplicates_on_pve_8() {
    sector_ha(PveVersion::V8_4);
}

#[test]
fn sector_ha_lets_proxmox_recover_the_appliances_without_duplicates_on_pve_9() {
    sector_ha(PveVersion::V9_1);
}

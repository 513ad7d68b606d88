//! How much the reconcilers read: node-scoped runs observe only what they
//! need, and a Sector created through the API converges, as the three
//! agents would run, with far fewer Proxmox requests than one full
//! observation per node and pass.

use std::collections::BTreeMap;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{LxcUpdate, Pve, ZoneConfig};
use orbitlab_engine::reconcile::{Scope, init::init, observe};
use orbitlab_manifests::Kind;
use orbitlab_sim::pve::RequestRecord;
use orbitlab_tests::Lab;

fn ready(lab: &Lab, name: &str) -> bool {
    lab.store
        .read_status(Kind::Sector, &name.parse().unwrap())
        .unwrap()
        .is_some_and(|s| s.phase() == "Ready")
}

/// Requests by method and path, for failure messages.
fn by_path(requests: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts
            .entry(format!("{} {}", r.method, r.path))
            .or_default() += 1;
    }
    counts
}

/// A lab initialised, with the web Sector created and converged as the
/// agents run it; returns the requests the Sector took.
fn sector_created(lab: &Lab) -> Vec<RequestRecord> {
    init(&lab.reconciler(&lab.host("pve1")), None).expect("init");
    lab.converge_as_agents("pve1");
    created(lab, "web")
}

/// Creates the Sector `name` (172.16.0.0/24) and converges as the agents
/// run it until it is Ready; returns the requests that took.
fn created(lab: &Lab, name: &str) -> Vec<RequestRecord> {
    lab.sim.clear_requests();
    let props = PropertyValue::from_pairs([("name", name), ("cidr", "172.16.0.0/24")]).unwrap();
    Api::new(lab.store.clone())
        .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    let last = lab.converge_as_agents("pve1");
    assert!(
        last.iter().all(|r| r.steps == 0 && r.failed.is_empty()),
        "{last:?}"
    );
    assert!(ready(lab, name));
    lab.sim.requests()
}

#[test]
fn node_scope_without_orbitlab_containers_asks_proxmox_once() {
    let lab = Lab::new();
    init(&lab.reconciler(&lab.host("pve1")), None).expect("init");
    lab.converge();
    lab.sim.clear_requests();
    let host = lab.host("pve2");
    let mut reconciler = lab.reconciler(&host);
    reconciler.options.scope = Scope::Node;
    let report = reconciler.run().expect("runs");
    assert_eq!(report.steps, 0);
    let requests = lab.sim.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert!(
        requests[0].path.ends_with("/nodes/pve2/lxc"),
        "{requests:?}"
    );
}

#[test]
fn a_sector_converges_as_the_agents_run_it_with_few_reads() {
    let lab = Lab::new();
    let requests = sector_created(&lab);
    let writes = requests.iter().filter(|r| r.method != "GET").count();
    // zone, VNet, subnet, SDN apply, 2 container creates (each task
    // starts its container).
    assert_eq!(writes, 6, "{requests:#?}");
    // One full observation costs about 16 reads; before observations were
    // shared between passes, this took 171 requests.
    assert!(
        requests.len() <= 100,
        "{} requests: {requests:#?}",
        requests.len()
    );
}

#[test]
fn with_pmxcfs_counters_a_sector_create_reads_little() {
    let lab = Lab::with_pmxcfs_files();
    let requests = sector_created(&lab);
    let writes = requests.iter().filter(|r| r.method != "GET").count();
    assert_eq!(writes, 6, "{:#?}", by_path(&requests));
    // 157 before pmxcfs's counters were used, passes that change nothing in
    // Proxmox stopped re-observing it and creates started their containers
    // (40 then).
    assert!(
        requests.len() <= 50,
        "{} requests: {:#?}",
        requests.len(),
        by_path(&requests)
    );
    // Each task's status is asked once (tasks take 5 ms here): the SDN
    // apply and the two creates.
    let polls = requests
        .iter()
        .filter(|r| r.path.ends_with("/status") && r.path.contains("/tasks/"))
        .count();
    assert_eq!(polls, 3, "{:#?}", by_path(&requests));
}

#[test]
fn changes_made_by_hand_are_seen_despite_the_counters() {
    let lab = Lab::with_pmxcfs_files();
    sector_created(&lab);
    let before = observe(&lab.pve, &lab.store, "vmbr0").unwrap();
    // Nothing changed: the SDN listings and the markers are not read again.
    lab.sim.clear_requests();
    assert_eq!(observe(&lab.pve, &lab.store, "vmbr0").unwrap(), before);
    let reread: Vec<String> = lab
        .sim
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/cluster/sdn") || p.ends_with("/config"))
        .collect();
    assert!(reread.is_empty(), "{reread:?}");

    // A zone's MTU changed by hand is seen at once.
    let (zone, mtu) = before
        .zones
        .iter()
        .find(|(id, _)| id.as_str().starts_with("olz"))
        .map(|(id, z)| (id.clone(), z.mtu))
        .expect("the Sector's zone");
    let hand = ZoneConfig {
        mtu: Some(1234),
        ..ZoneConfig::default()
    };
    lab.pve
        .sdn_update(zone.as_str(), SdnSpec::Zone(&hand), None)
        .unwrap();
    let after = observe(&lab.pve, &lab.store, "vmbr0").unwrap();
    assert_ne!(mtu, Some(1234));
    assert_eq!(after.zones[&zone].mtu, Some(1234));

    // So is a container's marker removed by hand.
    let (vmid, container) = before
        .containers
        .iter()
        .find(|(_, c)| c.marker.is_some())
        .map(|(vmid, c)| (*vmid, c.clone()))
        .expect("an OrbitLab container");
    let mut update = LxcUpdate::default();
    update
        .set
        .insert("description".into(), "edited by hand".into());
    lab.pve
        .lxc_update(container.node.as_str(), vmid.get(), &update)
        .unwrap();
    let after = observe(&lab.pve, &lab.store, "vmbr0").unwrap();
    assert_eq!(after.containers[&vmid].marker, None);

    // And the owner's next run puts both back.
    lab.converge_as_agents("pve1");
    let fixed = observe(&lab.pve, &lab.store, "vmbr0").unwrap();
    assert_eq!(fixed.zones[&zone].mtu, mtu);
    assert!(
        fixed
            .containers
            .values()
            .any(|c| c.marker == container.marker),
        "{fixed:#?}"
    );
}

#[test]
fn a_vmid_freed_and_reused_by_another_sector_is_not_taken_for_the_old_one() {
    let lab = Lab::with_pmxcfs_files();
    sector_created(&lab);
    let api = Api::new(lab.store.clone());
    let vmids: Vec<u32> = lab.sim.with_state(|st| st.guests.keys().copied().collect());
    api.delete(&"/sectors/web".parse().unwrap(), false).unwrap();
    lab.converge_as_agents("pve1");
    let requests = created(&lab, "app");
    let writes = requests.iter().filter(|r| r.method != "GET").count();
    assert_eq!(writes, 6, "{:#?}", by_path(&requests));
    // The new Sector's containers got the freed VMIDs back.
    let reused: Vec<u32> = lab.sim.with_state(|st| st.guests.keys().copied().collect());
    assert_eq!(reused, vmids);
}

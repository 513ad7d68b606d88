//! How much the reconcilers read: node-scoped runs observe only what they
//! need, and a Sector created through the API converges, as the three
//! agents would run, with far fewer Proxmox requests than one full
//! observation per node and pass.

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::reconcile::{Scope, init::init};
use orbitlab_manifests::Kind;
use orbitlab_tests::Lab;

fn ready(lab: &Lab, name: &str) -> bool {
    lab.store
        .read_status(Kind::Sector, &name.parse().unwrap())
        .unwrap()
        .is_some_and(|s| s.phase() == "Ready")
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
    init(&lab.reconciler(&lab.host("pve1")), None).expect("init");
    lab.converge_as_agents("pve1");
    let api = Api::new(lab.store.clone());
    lab.sim.clear_requests();
    let props = PropertyValue::from_pairs([("name", "web"), ("cidr", "172.16.0.0/24")]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    let last = lab.converge_as_agents("pve1");
    assert!(
        last.iter().all(|r| r.steps == 0 && r.failed.is_empty()),
        "{last:?}"
    );
    assert!(ready(&lab, "web"));
    let requests = lab.sim.requests();
    let writes = requests.iter().filter(|r| r.method != "GET").count();
    // zone, VNet, subnet, SDN apply, 2 container creates, 2 starts.
    assert_eq!(writes, 8, "{requests:#?}");
    // One full observation costs about 16 reads; before observations were
    // shared between passes, this took 171 requests.
    assert!(
        requests.len() <= 100,
        "{} requests: {requests:#?}",
        requests.len()
    );
}

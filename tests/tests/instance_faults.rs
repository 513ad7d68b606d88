//! Crash safety of an instance create: for every Proxmox call the create
//! makes, a run where exactly that call fails once, then the agents
//! reconcile again. Every run must converge to what an undisturbed one
//! reaches: the instance Ready and running, exactly one container carrying
//! its marker, one IPAM address held by it, no other container and no
//! other address.

use std::time::Duration;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::reconcile::init::init;
use orbitlab_manifests::{Kind, codec};
use orbitlab_sim::pve::PveVersion;
use orbitlab_tests::{Lab, every_call_fails_once};

/// The node whose agent does the cluster-scoped work.
const OWNER: &str = "pve1";

const APP: &str = "apiVersion: orbitlab.io/v1
kind: Lxc
metadata:
  name: app
spec:
  sector: web
  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
  cores: 2
  memory: 256
";

/// The cluster initialised, Sector `web` Ready, instance `app` declared.
fn lab_with_instance_declared() -> Lab {
    let lab = Lab::with_config(PveVersion::V9_1, Duration::ZERO);
    let host = lab.host(OWNER);
    init(&lab.reconciler(&host), None).expect("init");
    let api = Api::new(lab.store.clone());
    let props = PropertyValue::from_pairs([("name", "web"), ("cidr", "172.16.0.0/24")]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    lab.converge_as_agents(OWNER);
    api.apply(codec::decode("app.yaml", APP).unwrap()).unwrap();
    lab.sim.clear_requests();
    lab
}

fn check(lab: &Lab, what: &str) {
    let status = lab
        .store
        .read_status(Kind::Lxc, &"app".parse().unwrap())
        .unwrap()
        .unwrap_or_default();
    assert!(status.is_ready(), "{what}: not Ready: {status:?}");
    assert_eq!(
        status.outputs.get("power").map(String::as_str),
        Some("running"),
        "{what}"
    );
    assert_eq!(
        lab.container_markers(),
        [
            ("orbitlab:lxc/app".to_string(), 1),
            ("orbitlab:sector/web/dns".into(), 1),
            ("orbitlab:sector/web/gateway".into(), 1)
        ]
        .into(),
        "{what}: containers"
    );
    let holdings = lab.address_holdings();
    assert_eq!(
        holdings,
        [
            ("cluster/orbitlab/gateway".to_string(), 1),
            ("lxc/app".into(), 1),
            ("sector/web/dns".into(), 1),
            ("sector/web/gateway".into(), 2)
        ]
        .into(),
        "{what}: IPAM"
    );
}

#[test]
fn every_call_of_an_instance_create_may_fail_once() {
    let runs = every_call_fails_once(lab_with_instance_declared, OWNER, check);
    println!(
        "{} Proxmox calls in an instance create; {} injected failures fired, {} of them surfaced as a failed run; every run converged",
        runs.calls, runs.fired, runs.surfaced
    );
    let unfired_writes = runs.unfired_writes();
    assert!(
        unfired_writes.is_empty(),
        "these writes were never failed: {unfired_writes:?}"
    );
}

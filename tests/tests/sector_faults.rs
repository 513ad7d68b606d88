//! Crash safety of a Sector create: for every Proxmox call the create makes,
//! a run where exactly that call fails once, then reconciles again. Every
//! run must converge to the same result as an undisturbed one: the Sector
//! Ready, no duplicate container, no leaked IPAM address or VNet tag, no
//! SDN change left pending.

use std::time::Duration;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::reconcile::{init::init, tags};
use orbitlab_manifests::Kind;
use orbitlab_sim::pve::PveVersion;
use orbitlab_tests::{Lab, every_call_fails_once};

/// A lab with the cluster initialised and the Sector `web` declared.
fn lab_with_sector_declared() -> Lab {
    let lab = Lab::with_config(PveVersion::V8_4, Duration::ZERO);
    let host = lab.host(OWNER);
    init(&lab.reconciler(&host), None).expect("init");
    let api = Api::new(lab.store.clone());
    let props = PropertyValue::from_pairs([("name", "web"), ("cidr", "172.16.0.0/24")]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    lab.sim.clear_requests();
    lab
}

/// The node whose agent does the cluster-scoped work.
const OWNER: &str = "pve1";

/// Asserts the converged state.
fn check(lab: &Lab, what: &str) {
    let status = lab
        .store
        .read_status(Kind::Sector, &"web".parse().unwrap())
        .unwrap()
        .unwrap_or_default();
    assert!(status.is_ready(), "{what}: not Ready: {status:?}");
    assert_eq!(
        lab.container_markers(),
        [
            ("orbitlab:sector/web/dns".to_string(), 1),
            ("orbitlab:sector/web/gateway".into(), 1)
        ]
        .into(),
        "{what}: containers"
    );
    let snapshot = lab.sim.snapshot();
    assert_eq!(
        snapshot["sdn"]["current"], snapshot["sdn"]["running"],
        "{what}: SDN changes left pending"
    );
    let zones: Vec<&String> = snapshot["sdn"]["running"]["zones"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(zones, ["olbp", "olz1001"], "{what}: zones");
    let holdings = lab.address_holdings();
    assert_eq!(
        holdings,
        [
            ("cluster/orbitlab/gateway".to_string(), 1),
            ("sector/web/dns".into(), 1),
            ("sector/web/gateway".into(), 2)
        ]
        .into(),
        "{what}: IPAM"
    );
    assert_eq!(
        tags::read(&lab.store).unwrap(),
        [(1001, "web".to_string())].into(),
        "{what}: tags"
    );
}

#[test]
fn every_call_of_a_sector_create_may_fail_once() {
    let runs = every_call_fails_once(lab_with_sector_declared, OWNER, check);
    println!(
        "{} Proxmox calls in a Sector create; {} injected failures fired, {} of them surfaced as a failed run; every run converged",
        runs.calls, runs.fired, runs.surfaced
    );
    // Reads vary with timing (task polls) and with what an earlier failure
    // skipped; every write must have been failed once.
    let unfired_writes = runs.unfired_writes();
    assert!(
        unfired_writes.is_empty(),
        "these writes were never failed: {unfired_writes:?}"
    );
    println!("reads whose failure never came: {:?}", runs.unfired);
}

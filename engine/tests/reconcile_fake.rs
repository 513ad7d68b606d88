//! The reconciler against the in-memory `FakePve`: `orbitlab init` and a
//! Sector create produce the expected Proxmox calls, under the 9.x SDN
//! lock or without it on 8.x, and a VMID taken by someone else between
//! `nextid` and the create is retried by its error kind.

use std::sync::Mutex;
use std::time::Duration;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::host::{ContainerHost, ExecOutput, HostError, InstallFile, bundle, health};
use orbitlab_engine::pve::fake::FakePve;
use orbitlab_engine::pve::{Release, SdnKind};
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::reconcile::{Options, Reconciler};
use orbitlab_engine::store::Store;

/// `pct` of `pve1`, recording what was pushed where (the executor asks it
/// only for containers on its own node).
#[derive(Debug, Default)]
struct Host {
    pushed: Mutex<Vec<(u32, String)>>,
    /// The bundle each container's helper applied last.
    applied: Mutex<std::collections::BTreeMap<u32, String>>,
}

impl ContainerHost for Host {
    fn local_node(&self) -> &str {
        "pve1"
    }

    fn push(
        &self,
        _node: &str,
        vmid: u32,
        path: &str,
        _mode: u32,
        _c: &[u8],
    ) -> Result<(), HostError> {
        self.pushed.lock().unwrap().push((vmid, path.to_owned()));
        Ok(())
    }

    fn install(&self, node: &str, vmid: u32, file: &InstallFile<'_>) -> Result<(), HostError> {
        self.push(node, vmid, file.path, file.mode, file.content)
    }

    fn exec(&self, _node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError> {
        if let Some(id) = bundle::applied(argv) {
            self.applied.lock().unwrap().insert(vmid, id.to_string());
        }
        Ok(())
    }

    /// A healthy helper, running the bundle applied last.
    fn exec_output(
        &self,
        _node: &str,
        vmid: u32,
        argv: &[String],
    ) -> Result<ExecOutput, HostError> {
        assert_eq!(argv, health::command());
        let bundle = self.applied.lock().unwrap().get(&vmid).cloned();
        let answer = serde_json::json!({
            "role": "dns", "version": "1.0.0", "bundle": bundle,
            "healthy": true, "problems": [],
        });
        Ok(ExecOutput {
            status: Some(0),
            stdout: answer.to_string().into_bytes(),
            truncated: false,
            stderr: String::new(),
        })
    }
}

fn fake(major: u32) -> FakePve {
    FakePve::new(
        Release { major, minor: 1 },
        &[
            ("pve1", "192.168.100.11/24"),
            ("pve2", "192.168.100.12/24"),
            ("pve3", "192.168.100.13/24"),
        ],
    )
}

fn reconciler<'a>(pve: &'a FakePve, store: &'a Store, host: &'a Host) -> Reconciler<'a> {
    Reconciler {
        pve,
        store,
        host,
        options: Options {
            task_deadline: Duration::from_secs(5),
            max_passes: 8,
            ..Options::default()
        },
    }
}

fn create_sector(store: &Store, name: &str, cidr: &str) {
    let props = PropertyValue::from_pairs([("name", name), ("cidr", cidr)]).unwrap();
    Api::new(store.clone())
        .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
}

/// The calls that change something, in order.
fn writes(pve: &FakePve) -> Vec<String> {
    pve.writes()
}

/// Init, then a Sector `web` reconciled; returns the writes the Sector
/// caused and the objects the reconcile reported ready or failed.
fn sector_after_init(pve: &FakePve, before_sector: impl FnOnce(&FakePve)) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    let host = Host::default();
    let rec = reconciler(pve, &store, &host);
    init(&rec, None).expect("init");
    assert!(!pve.has_pending(), "init applied the Backplane");
    pve.clear_calls();
    before_sector(pve);
    create_sector(&store, "web", "172.16.0.0/24");
    let report = rec.run().expect("a reconcile runs");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(
        !host.pushed.lock().unwrap().is_empty(),
        "the gateway was configured"
    );
    assert!(
        !format!("{:?}", report.ready).contains("\"web\""),
        "Ready before its health probe: {report:?}"
    );
    // pve1's agent probes its appliances and publishes the answers; the
    // next run finds them healthy.
    let vmids = orbitlab_engine::reconcile::local_appliances(pve, &store, "pve1").unwrap();
    let probes = health::probe_all(
        &host,
        "pve1",
        vmids.into_iter().map(|v| v.get()),
        std::time::SystemTime::now(),
    );
    assert!(orbitlab_engine::liveness::record_probes(&store, "pve1", probes).unwrap());
    let report = rec.run().expect("a reconcile runs");
    assert_eq!(report.steps, 0, "{report:?}");
    (writes(pve), format!("{:?}", report.ready))
}

#[test]
fn on_9x_a_sector_is_built_under_the_sdn_lock() {
    let pve = fake(9);
    let (writes, ready) = sector_after_init(&pve, |_| {});
    assert_eq!(
        writes,
        [
            "sdn_lock",
            "sdn_create_zone olz1001 lock",
            "sdn_create_vnet olvn1001 lock",
            "sdn_create_subnet 172.16.0.0/24 lock",
            "sdn_apply lock",
            "lxc_create pve1 100",
            "lxc_create pve1 101",
        ]
    );
    assert!(ready.contains("\"web\""), "{ready}");
    let vnet = pve
        .running(SdnKind::Vnet, None, "olvn1001")
        .expect("the vnet is applied");
    assert_eq!(vnet["zone"], "olz1001");
    assert_eq!(vnet["tag"], 1001);
    assert!(!pve.has_pending());
    let containers = pve.containers();
    assert!(
        containers
            .values()
            .any(|(_, host, running)| host.as_deref() == Some("olvn1001-router") && *running),
        "{containers:?}"
    );
}

#[test]
fn on_8x_no_sdn_lock_is_asked_for() {
    let pve = fake(8);
    let (writes, _) = sector_after_init(&pve, |_| {});
    // The engine asks; 8.x has no lock to give, so no edit carries a token.
    assert_eq!(writes[0], "sdn_lock");
    assert!(!writes.iter().any(|w| w.ends_with(" lock")), "{writes:?}");
    assert_eq!(
        writes.iter().filter(|w| *w == "sdn_apply").count(),
        1,
        "{writes:?}"
    );
    assert!(pve.running(SdnKind::Zone, None, "olz1001").is_some());
}

#[test]
fn a_vmid_taken_after_nextid_is_asked_for_again() {
    let pve = fake(9);
    let (writes, ready) = sector_after_init(&pve, |pve| pve.steal_vmid(100));
    let creates: Vec<&String> = writes
        .iter()
        .filter(|w| w.starts_with("lxc_create"))
        .collect();
    assert_eq!(
        creates,
        [
            "lxc_create pve1 100",
            "lxc_create pve1 101",
            "lxc_create pve1 102"
        ]
    );
    assert!(ready.contains("\"web\""), "{ready}");
    let containers = pve.containers();
    assert_eq!(
        containers[&100].1.as_deref(),
        Some("outsider"),
        "the outsider's container is left alone"
    );
    assert!(
        !writes
            .iter()
            .any(|w| w.ends_with(" 100") && !w.starts_with("lxc_create"))
    );
}

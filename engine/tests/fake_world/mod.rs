//! A fake three-node 9.x cluster after `orbitlab init`, shared by the
//! tests that drive the planner and controllers end to end against
//! `FakePve`: the store in a temporary directory, manifests written through
//! the API, each node's agent as a reconciler with a `Host` fake that
//! records what is pushed into which container.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::host::{ContainerHost, ExecOutput, HostError, InstallFile, bundle, health};
use orbitlab_engine::liveness;
use orbitlab_engine::pve::Release;
use orbitlab_engine::pve::fake::FakePve;
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::reconcile::{Options, Reconciler, Report, Scope};
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_engine::store::Store;
use orbitlab_manifests::{Kind, codec};

pub const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];

/// One file pushed into a container.
#[derive(Debug, Clone)]
pub struct Push {
    pub node: String,
    pub vmid: u32,
    pub path: String,
    pub content: String,
}

/// What the appliance helpers of every container have: the bundle each
/// runs, and the problems a test made one have.
#[derive(Debug, Default)]
pub struct Helpers {
    /// The active bundle id, by VMID (none: the factory configuration).
    pub current: BTreeMap<u32, String>,
    /// Problems the health probe of a container reports, by VMID.
    pub problems: BTreeMap<u32, Vec<String>>,
    /// What the probe prints instead of its answer, by VMID.
    pub garbage: BTreeMap<u32, String>,
    /// Containers `pct exec` cannot reach.
    pub unreachable: BTreeSet<u32>,
}

/// One node's container host; every node's host writes to the same log.
#[derive(Debug)]
pub struct Host {
    local: String,
    log: Arc<Mutex<Vec<Push>>>,
    helpers: Arc<Mutex<Helpers>>,
}

impl Host {
    /// Plays `orbitlab-appliance health`: healthy once a bundle was
    /// applied and no problem was set.
    fn health(&self, vmid: u32) -> ExecOutput {
        let helpers = self.helpers.lock().unwrap();
        let bundle = helpers.current.get(&vmid).cloned();
        let mut problems = helpers.problems.get(&vmid).cloned().unwrap_or_default();
        if bundle.is_none() {
            problems.insert(0, "no current bundle".into());
        }
        let healthy = problems.is_empty();
        let answer = serde_json::json!({
            "role": "gateway", "version": "1.0.0", "bundle": bundle,
            "healthy": healthy, "services": {"frr.service": "active"},
            "default_route": true, "problems": problems,
        });
        ExecOutput {
            status: Some(if healthy { 0 } else { 1 }),
            stdout: answer.to_string().into_bytes(),
            truncated: false,
            stderr: String::new(),
        }
    }
}

impl ContainerHost for Host {
    fn local_node(&self) -> &str {
        &self.local
    }

    /// Records an installed file as a push of its path.
    fn install(&self, node: &str, vmid: u32, file: &InstallFile<'_>) -> Result<(), HostError> {
        self.push(node, vmid, file.path, file.mode, file.content)
    }

    fn push(
        &self,
        node: &str,
        vmid: u32,
        path: &str,
        _mode: u32,
        content: &[u8],
    ) -> Result<(), HostError> {
        assert_eq!(node, self.local, "pct only reaches this node's containers");
        self.log.lock().unwrap().push(Push {
            node: node.to_owned(),
            vmid,
            path: path.to_owned(),
            content: String::from_utf8_lossy(content).into_owned(),
        });
        Ok(())
    }

    /// Plays the appliance helper: applying a bundle puts its files in
    /// place (recorded as pushes of their final paths).
    fn exec(&self, node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError> {
        assert_eq!(node, self.local, "pct only reaches this node's containers");
        let Some(id) = bundle::applied(argv) else {
            return Ok(());
        };
        let mut log = self.log.lock().unwrap();
        let staged = |path: &str| {
            log.iter()
                .rev()
                .find(|p| p.vmid == vmid && p.path == path)
                .map(|p| p.content.clone().into_bytes())
        };
        let files = bundle::unpack(&id, staged).map_err(|stderr| HostError::Failed {
            command: argv.join(" "),
            status: "exit status: 1".into(),
            stderr,
        })?;
        for (path, _mode, content) in files {
            log.push(Push {
                node: node.to_owned(),
                vmid,
                path,
                content: String::from_utf8_lossy(&content).into_owned(),
            });
        }
        self.helpers
            .lock()
            .unwrap()
            .current
            .insert(vmid, id.to_string());
        Ok(())
    }

    fn exec_output(&self, node: &str, vmid: u32, argv: &[String]) -> Result<ExecOutput, HostError> {
        assert_eq!(node, self.local, "pct only reaches this node's containers");
        assert_eq!(argv, health::command(), "only the health probe is asked");
        let helpers = self.helpers.lock().unwrap();
        if helpers.unreachable.contains(&vmid) {
            return Err(HostError::Failed {
                command: format!("pct exec {vmid}"),
                status: "exit status: 255".into(),
                stderr: format!("CT {vmid} is locked (backup)"),
            });
        }
        if let Some(text) = helpers.garbage.get(&vmid) {
            return Ok(ExecOutput {
                status: Some(139),
                stdout: text.clone().into_bytes(),
                truncated: false,
                stderr: "Segmentation fault".into(),
            });
        }
        drop(helpers);
        Ok(self.health(vmid))
    }
}

/// An initialised cluster: store, fake Proxmox, and the agent of `pve1`
/// (the cluster-scoped one).
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub pve: FakePve,
    pub host: Host,
    pub log: Arc<Mutex<Vec<Push>>>,
    pub helpers: Arc<Mutex<Helpers>>,
    pub offline: Mutex<BTreeSet<String>>,
}

impl World {
    /// `orbitlab init` done; no call or push recorded yet.
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let pve = FakePve::new(
            Release { major: 9, minor: 1 },
            &[
                ("pve1", "192.168.100.11/24"),
                ("pve2", "192.168.100.12/24"),
                ("pve3", "192.168.100.13/24"),
            ],
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let helpers = Arc::new(Mutex::new(Helpers::default()));
        let host = Host {
            local: "pve1".into(),
            log: Arc::clone(&log),
            helpers: Arc::clone(&helpers),
        };
        let world = World {
            dir,
            store,
            pve,
            host,
            log,
            helpers,
            offline: Mutex::new(BTreeSet::new()),
        };
        init(&world.rec(), None).expect("init");
        assert!(!world.pve.has_pending(), "init applied the Backplane");
        world.pve.clear_calls();
        world
    }

    pub fn reconciler<'a>(&'a self, host: &'a dyn ContainerHost, scope: Scope) -> Reconciler<'a> {
        Reconciler {
            pve: &self.pve,
            store: &self.store,
            host,
            options: Options {
                task_deadline: Duration::from_secs(5),
                max_passes: 8,
                scope,
            },
        }
    }

    /// The reconciler `node`'s agent runs through `host`: cluster-scoped
    /// on `pve1` (the owner here), node-scoped elsewhere.
    pub fn agent<'a>(&'a self, node: &str, host: &'a dyn ContainerHost) -> Reconciler<'a> {
        let scope = if node == "pve1" {
            Scope::Cluster
        } else {
            Scope::Node
        };
        self.reconciler(host, scope)
    }

    /// The cluster-scoped reconciler (on `pve1`).
    pub fn rec(&self) -> Reconciler<'_> {
        self.reconciler(&self.host, Scope::Cluster)
    }

    /// One run of the cluster-scoped reconciler, then, as `pve1`'s agent
    /// does, a probe of its appliances and, if an answer changed, another
    /// run (the report of the last run).
    pub fn run(&self) -> Report {
        let report = self.rec().run().expect("a reconcile runs");
        if self.probe("pve1") {
            return self.rec().run().expect("a reconcile runs");
        }
        report
    }

    /// The host of `node`.
    pub fn host_of(&self, node: &str) -> Host {
        Host {
            local: node.into(),
            log: Arc::clone(&self.log),
            helpers: Arc::clone(&self.helpers),
        }
    }

    /// One run of the node-scoped reconciler of `node`, then a probe of
    /// its appliances.
    pub fn run_on(&self, node: &str) -> Report {
        let host = self.host_of(node);
        let report = self
            .reconciler(&host, Scope::Node)
            .run()
            .expect("a node-scoped reconcile runs");
        self.probe(node);
        report
    }

    /// What `node`'s agent does after a reconcile: probes the appliance
    /// containers running there and publishes the answers in its
    /// heartbeat; true when an answer changed.
    pub fn probe(&self, node: &str) -> bool {
        if self.offline.lock().unwrap().contains(node) {
            return false;
        }
        let host = self.host_of(node);
        let vmids = orbitlab_engine::reconcile::local_appliances(&self.pve, &self.store, node)
            .expect("the node's containers are listed");
        let probes = health::probe_all(
            &host,
            node,
            vmids.into_iter().map(|v| v.get()),
            std::time::SystemTime::now(),
        );
        liveness::record_probes(&self.store, node, probes).unwrap()
    }

    /// Makes the health probe of container `vmid` report `problems`
    /// (none: healthy again).
    pub fn set_problems(&self, vmid: u32, problems: &[&str]) {
        let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let mut helpers = self.helpers.lock().unwrap();
        if problems.is_empty() {
            helpers.problems.remove(&vmid);
        } else {
            helpers.problems.insert(vmid, problems);
        }
    }

    /// What every agent does: the cluster-scoped run, each other online
    /// node's node-scoped run, the cluster-scoped run again (statuses).
    pub fn settle(&self) -> Report {
        self.run();
        let offline = self.offline.lock().unwrap().clone();
        for node in NODES
            .iter()
            .filter(|n| **n != "pve1" && !offline.contains(**n))
        {
            self.run_on(node);
        }
        self.run()
    }

    pub fn set_online(&self, node: &str, online: bool) {
        self.pve.set_online(node, online);
        let mut offline = self.offline.lock().unwrap();
        if online {
            offline.remove(node);
        } else {
            offline.insert(node.to_owned());
        }
    }

    pub fn create_sector(&self, name: &str, cidr: &str) {
        let props = PropertyValue::from_pairs([("name", name), ("cidr", cidr)]).unwrap();
        Api::new(self.store.clone())
            .create(&"/sectors".parse::<ApiPath>().unwrap(), props)
            .unwrap();
    }

    /// Writes manifests through the API's apply.
    pub fn apply(&self, yaml: &str) {
        Api::new(self.store.clone())
            .apply(codec::decode("test.yaml", yaml).unwrap())
            .unwrap();
    }

    pub fn status(&self, sector: &str) -> ObjectStatus {
        self.status_of(Kind::Sector, sector)
    }

    /// The status of any object.
    pub fn status_of(&self, kind: Kind, name: &str) -> ObjectStatus {
        self.store
            .read_status(kind, &name.parse().unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("{kind} {name} has no status"))
    }

    /// An output of a Sector's status (`gateway/vmid`, `dns/node`...).
    pub fn output(&self, sector: &str, key: &str) -> String {
        let status = self.status(sector);
        status
            .outputs
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no output {key} in {status:#?}"))
    }

    pub fn vmid(&self, sector: &str, role: &str) -> u32 {
        self.output(sector, &format!("{role}/vmid"))
            .parse()
            .unwrap()
    }

    /// The calls that change something, in order.
    pub fn writes(&self) -> Vec<String> {
        self.pve.writes()
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.log.lock().unwrap().clone()
    }

    /// The containers something was pushed into.
    pub fn pushed_vmids(&self) -> BTreeSet<u32> {
        self.pushes().iter().map(|p| p.vmid).collect()
    }

    pub fn forget_calls_and_pushes(&self) {
        self.pve.clear_calls();
        self.log.lock().unwrap().clear();
    }

    /// The record of what was last pushed into `vmid`.
    pub fn pushed_record(&self, vmid: u32) -> PathBuf {
        self.dir
            .path()
            .join(format!("orbitlab/status/containers/{vmid}.json"))
    }

    /// VMIDs of the containers named `hostname`.
    pub fn named(&self, hostname: &str) -> Vec<u32> {
        self.pve
            .containers()
            .into_iter()
            .filter(|(_, (_, h, _))| h.as_deref() == Some(hostname))
            .map(|(vmid, _)| vmid)
            .collect()
    }
}

pub fn assert_ready(world: &World, sector: &str) {
    let status = world.status(sector);
    assert!(
        status.is_ready(),
        "Sector {sector} is not Ready: {status:#?}"
    );
}

/// The Ready condition of a Sector that must not be Ready: (reason,
/// message).
pub fn not_ready(world: &World, sector: &str) -> (String, String) {
    let status = world.status(sector);
    let ready = status
        .condition(ConditionType::Ready)
        .unwrap_or_else(|| panic!("no Ready condition: {status:#?}"));
    assert!(!ready.status, "Sector {sector} is Ready: {status:#?}");
    (ready.reason.clone(), ready.message.clone())
}

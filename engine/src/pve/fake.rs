//! [`FakePve`]: an in-memory [`Pve`] for the planner and controller tests.
//!
//! It keeps what the engine reads and writes — nodes and their `vmbr0`,
//! SDN objects with their pending state, containers, the 9.x SDN lock —
//! and records every call in order ([`FakePve::calls`]). Tasks finish at
//! once with `OK`. Refusals carry Proxmox's own message shapes and go
//! through the client's classifier, so the engine sees the same
//! [`ApiErrorKind`]s as against Proxmox. No I/O; not for production use
//! (hidden from the documentation).
//!
//! Hooks play what happens outside OrbitLab, without being recorded as
//! calls: a node going offline ([`FakePve::set_online`]), an administrator
//! editing, creating or applying SDN objects by hand
//! ([`FakePve::edit_sdn_by_hand`], [`FakePve::create_sdn_by_hand`],
//! [`FakePve::apply_sdn_by_hand`]), and stopping, destroying or creating
//! containers by hand ([`FakePve::stop_by_hand`],
//! [`FakePve::destroy_by_hand`], [`FakePve::create_by_hand`]), editing a
//! container's config in the GUI ([`FakePve::edit_config_by_hand`]), and
//! the memory and CPUs of a node ([`FakePve::set_node_memory`],
//! [`FakePve::set_node_cpu`]), a node's DNS settings
//! ([`FakePve::set_node_dns`]; by default `192.168.100.1` and `9.9.9.9`,
//! search `lab.example`; [`FakePve::fail_node_dns`] makes reading them
//! fail), and storages: a shared storage
//! ([`FakePve::set_storage_shared`]) and a template on chosen nodes only
//! ([`FakePve::place_template`]; uploads add nodes, checking the file's
//! SHA-256 as Proxmox does).
//!
//! Containers are stored the way Proxmox stores them: `rootfs`
//! `STORAGE:SIZE` becomes `STORAGE:vm-<vmid>-disk-0,size=<SIZE>G`, the
//! password and SSH keys are not config, every write changes the config's
//! `digest`. A node's used memory is a base (2 GiB unless set) plus the
//! `memory` of its running containers; a node has 64 GiB and 16 CPUs
//! unless set. HA resources are kept; destroying an HA-managed container
//! needs `purge`, which also removes its resource.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::api::Pve;
use super::error::{ApiErrorKind, PveError, Result};
use super::lxc::{LxcConfig, LxcCreate, LxcStatus, LxcUpdate};
use super::sdn::{SdnCollection, SdnKind, SdnLock, SdnLockToken, SdnSpec};
use super::types::{
    ClusterStatusEntry, HaResource, HaResourceAdd, NetworkInterface, NodeDns, NodeStatus,
    NodeStorage, NodeSummary, Release, StorageUpload, StorageVolume, TaskStatus, Upid,
    VolumeAttributes,
};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// An SDN object: what is applied and what will be once applied
/// (`None`: pending deletion).
#[derive(Debug, Clone)]
struct SdnObject {
    running: Option<Map<String, Value>>,
    desired: Option<Map<String, Value>>,
}

/// A container.
#[derive(Debug, Clone)]
struct Guest {
    node: String,
    config: BTreeMap<String, Value>,
    running: bool,
    /// The config's digest: changes on every write.
    digest: u64,
}

impl Guest {
    /// Memory (MiB) it takes while running (Proxmox's default 512).
    fn memory_mib(&self) -> u64 {
        self.config
            .get("memory")
            .and_then(|m| m.as_u64().or_else(|| m.as_str()?.parse().ok()))
            .unwrap_or(512)
    }

    fn digest_text(&self) -> String {
        format!("{:040x}", self.digest)
    }
}

/// A node's memory and CPUs.
#[derive(Debug, Clone, Copy)]
struct NodeResources {
    memory_total: u64,
    /// Used by the host itself; running containers add their memory.
    memory_base: u64,
    cpus: u32,
    load: f64,
}

impl Default for NodeResources {
    fn default() -> Self {
        NodeResources {
            memory_total: 64 * GIB,
            memory_base: 2 * GIB,
            cpus: 16,
            load: 0.05,
        }
    }
}

#[derive(Debug)]
struct State {
    release: Release,
    /// Node → its `vmbr0` address with prefix (`192.168.100.11/24`).
    nodes: BTreeMap<String, String>,
    /// Nodes that are down or cut off from the others.
    offline: BTreeSet<String>,
    /// (kind, vnet of a subnet, id) → object.
    sdn: BTreeMap<(SdnKind, Option<String>, String), SdnObject>,
    guests: BTreeMap<u32, Guest>,
    /// Nodes whose memory or CPUs were set (the others have the defaults).
    resources: BTreeMap<String, NodeResources>,
    /// Nodes whose DNS settings were set (the others have
    /// [`default_node_dns`]).
    dns: BTreeMap<String, NodeDns>,
    /// Nodes whose DNS settings cannot be read.
    unreadable_dns: BTreeSet<String>,
    /// HA resources by sid.
    ha: BTreeMap<String, HaResource>,
    /// Template volumes missing from a node's storage (every node has
    /// every template otherwise).
    missing_templates: BTreeSet<(String, String)>,
    /// Nodes whose storages cannot be listed (a storage missing there).
    unlisted_storage: BTreeSet<String>,
    /// Storages shared between nodes (`local` and `local-lvm` are not,
    /// unless named here).
    shared_storages: BTreeSet<String>,
    /// Templates placed on chosen nodes only (by a test, or uploaded):
    /// volid → node → the local file standing for it. Such a template is
    /// on exactly those nodes (every node when its storage is shared).
    placed: BTreeMap<String, BTreeMap<String, PathBuf>>,
    /// The last config digest given out.
    digests: u64,
    lock: Option<SdnLockToken>,
    locks_taken: u32,
    tasks: u32,
    /// Creates of these VMIDs find them taken by someone outside OrbitLab.
    stolen: Vec<u32>,
    calls: Vec<String>,
}

/// An in-memory Proxmox cluster (see the module documentation).
#[derive(Debug)]
pub struct FakePve {
    state: Mutex<State>,
    hook: Mutex<Option<Hook>>,
}

/// Something a test runs right after a chosen call is made.
struct Hook {
    /// The call's name starts with this.
    call: String,
    run: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hook(after {})", self.call)
    }
}

fn fail(method: &str, path: &str, status: u16, message: String) -> PveError {
    PveError::Api {
        method: method.into(),
        path: path.into(),
        status,
        kind: ApiErrorKind::classify(status, &message, BTreeMap::new()),
        message,
    }
}

/// A node's DNS settings unless set: its LAN router and a public resolver.
fn default_node_dns() -> NodeDns {
    NodeDns {
        dns1: Some("192.168.100.1".into()),
        dns2: Some("9.9.9.9".into()),
        dns3: None,
        search: Some("lab.example".into()),
    }
}

fn typed<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| PveError::Decode {
        method: "GET".into(),
        path: "(fake)".into(),
        message: e.to_string(),
    })
}

impl FakePve {
    /// A quorate cluster of `release` whose nodes (all online) have `vmbr0`
    /// at the given address with prefix.
    pub fn new(release: Release, nodes: &[(&str, &str)]) -> Self {
        FakePve {
            state: Mutex::new(State {
                release,
                nodes: nodes
                    .iter()
                    .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
                    .collect(),
                offline: BTreeSet::new(),
                sdn: BTreeMap::new(),
                guests: BTreeMap::new(),
                resources: BTreeMap::new(),
                dns: BTreeMap::new(),
                unreadable_dns: BTreeSet::new(),
                ha: BTreeMap::new(),
                missing_templates: BTreeSet::new(),
                unlisted_storage: BTreeSet::new(),
                shared_storages: BTreeSet::new(),
                placed: BTreeMap::new(),
                digests: 0,
                lock: None,
                locks_taken: 0,
                tasks: 0,
                stolen: Vec::new(),
                calls: Vec::new(),
            }),
            hook: Mutex::new(None),
        }
    }

    /// Runs `run` once, right after the first call whose name starts with
    /// `call` (see [`FakePve::calls`]) has been recorded, before it
    /// returns.
    pub fn after_call(&self, call: &str, run: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap_or_else(PoisonError::into_inner) = Some(Hook {
            call: call.to_owned(),
            run: Box::new(run),
        });
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call(&self, what: String) -> MutexGuard<'_, State> {
        let fire = {
            let mut hook = self.hook.lock().unwrap_or_else(PoisonError::into_inner);
            match hook.as_ref() {
                Some(h) if what.starts_with(&h.call) => hook.take(),
                _ => None,
            }
        };
        let mut st = self.st();
        st.calls.push(what);
        if let Some(hook) = fire {
            drop(st);
            (hook.run)();
            st = self.st();
        }
        st
    }

    /// Every call so far, in order: the method name and its main
    /// arguments (`sdn_create_zone olbp lock`, `lxc_create pve1 100`...).
    pub fn calls(&self) -> Vec<String> {
        self.st().calls.clone()
    }

    /// The calls that change something (every call but the reads the
    /// engine makes to observe), in order.
    pub fn writes(&self) -> Vec<String> {
        const READS: [&str; 14] = [
            "release",
            "nodes",
            "node_status",
            "node_dns",
            "storage_content",
            "node_storages",
            "storage_volume",
            "ha_resources",
            "node_network",
            "cluster_status",
            "sdn_list_",
            "lxc_list",
            "lxc_config",
            "next_vmid",
        ];
        self.calls()
            .into_iter()
            .filter(|c| !READS.iter().any(|r| c.starts_with(r)))
            .collect()
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.st().calls.clear();
    }

    /// The next create of container `vmid` finds it taken by someone
    /// outside OrbitLab (a race after `GET /cluster/nextid`).
    pub fn steal_vmid(&self, vmid: u32) {
        self.st().stolen.push(vmid);
    }

    /// The applied configuration of an SDN object, if it exists and was
    /// applied (`vnet` for subnets).
    pub fn running(&self, kind: SdnKind, vnet: Option<&str>, id: &str) -> Option<Value> {
        let st = self.st();
        let obj = st
            .sdn
            .get(&(kind, vnet.map(str::to_owned), id.to_owned()))?;
        obj.running.clone().map(Value::Object)
    }

    /// Whether any SDN change waits for an apply.
    pub fn has_pending(&self) -> bool {
        self.st().sdn.values().any(|o| o.running != o.desired)
    }

    /// Containers: VMID → (node, hostname, running).
    pub fn containers(&self) -> BTreeMap<u32, (String, Option<String>, bool)> {
        self.st()
            .guests
            .iter()
            .map(|(id, g)| {
                let host = g.config.get("hostname").and_then(Value::as_str);
                (*id, (g.node.clone(), host.map(str::to_owned), g.running))
            })
            .collect()
    }

    /// Puts `node` offline (`online: false`) or back online. While it is
    /// offline, `GET /nodes` and `GET /cluster/status` report it so
    /// (`status: offline`, `online: 0`), and every request addressed to it
    /// (`/nodes/<node>/...`, its tasks' status) fails the way the API
    /// proxy of the node answering fails to reach it: HTTP 595 `No route
    /// to host` ([`ApiErrorKind::Unavailable`]). Its containers are kept
    /// and found again once it is back.
    pub fn set_online(&self, node: &str, online: bool) {
        let mut st = self.st();
        if online {
            st.offline.remove(node);
        } else {
            st.offline.insert(node.to_owned());
        }
    }

    /// Fails a request addressed to `node` while it is offline.
    fn reach(st: &State, method: &str, path: &str, node: &str) -> Result<()> {
        if st.offline.contains(node) {
            return Err(fail(method, path, 595, "No route to host".into()));
        }
        Ok(())
    }

    /// [`Self::reach`], and the node must be a cluster member (500 as
    /// Proxmox answers otherwise).
    fn reach_member(st: &State, method: &str, path: &str, node: &str) -> Result<()> {
        Self::reach(st, method, path, node)?;
        if !st.nodes.contains_key(node) {
            return Err(fail(
                method,
                path,
                500,
                format!("no such cluster node '{node}'"),
            ));
        }
        Ok(())
    }

    /// An administrator sets `key` of an SDN object to `value` by hand
    /// (`vnet` for subnets); like an edit in the GUI it stays pending until
    /// an apply. Panics when the object does not exist or is pending
    /// deletion (a test set-up error).
    pub fn edit_sdn_by_hand(
        &self,
        kind: SdnKind,
        vnet: Option<&str>,
        id: &str,
        key: &str,
        value: Value,
    ) {
        let mut st = self.st();
        let config = st
            .sdn
            .get_mut(&(kind, vnet.map(str::to_owned), id.to_owned()))
            .and_then(|o| o.desired.as_mut())
            .unwrap_or_else(|| panic!("no live SDN {kind} {id} to edit"));
        config.insert(key.to_owned(), value);
    }

    /// An administrator creates an SDN object by hand (a zone, VNet or
    /// controller; `config` is its parameters, e.g. `{"type": "simple"}`):
    /// pending (`state: new`) until an apply.
    pub fn create_sdn_by_hand(&self, kind: SdnKind, id: &str, config: Value) {
        let Value::Object(map) = config else {
            panic!("an SDN object's configuration is a JSON object");
        };
        self.st().sdn.insert(
            (kind, None, id.to_owned()),
            SdnObject {
                running: None,
                desired: Some(map),
            },
        );
    }

    /// An administrator applies every pending SDN change (Datacenter → SDN
    /// → Apply) without the SDN lock.
    pub fn apply_sdn_by_hand(&self) {
        let mut st = self.st();
        st.sdn.retain(|_, o| o.desired.is_some());
        for obj in st.sdn.values_mut() {
            obj.running.clone_from(&obj.desired);
        }
    }

    /// An administrator stops container `vmid` by hand. Panics when it
    /// does not exist.
    pub fn stop_by_hand(&self, vmid: u32) {
        let mut st = self.st();
        let guest = st.guests.get_mut(&vmid);
        guest
            .unwrap_or_else(|| panic!("no container {vmid} to stop"))
            .running = false;
    }

    /// An administrator destroys container `vmid` by hand (its VMID is
    /// free again). Panics when it does not exist.
    pub fn destroy_by_hand(&self, vmid: u32) {
        let removed = self.st().guests.remove(&vmid);
        assert!(removed.is_some(), "no container {vmid} to destroy");
    }

    /// Someone outside OrbitLab creates a stopped container `vmid` named
    /// `hostname` on `node`, without OrbitLab's tag or marker. Panics when
    /// the VMID is taken.
    pub fn create_by_hand(&self, vmid: u32, node: &str, hostname: &str) {
        let guest = Guest {
            node: node.to_owned(),
            config: BTreeMap::from([("hostname".to_owned(), Value::from(hostname))]),
            running: false,
            digest: 0,
        };
        let mut st = self.st();
        let digest = next_digest(&mut st);
        let previous = st.guests.insert(vmid, Guest { digest, ..guest });
        assert!(previous.is_none(), "container {vmid} exists already");
    }

    /// An administrator sets `key` of container `vmid`'s config to `value`
    /// by hand (in the GUI): the digest changes. Panics when the container
    /// does not exist.
    pub fn edit_config_by_hand(&self, vmid: u32, key: &str, value: &str) {
        let mut st = self.st();
        let digest = next_digest(&mut st);
        let guest = st
            .guests
            .get_mut(&vmid)
            .unwrap_or_else(|| panic!("no container {vmid} to edit"));
        guest.config.insert(key.to_owned(), Value::from(value));
        guest.digest = digest;
    }

    /// Sets `node`'s total memory and the memory its host uses itself
    /// (bytes); running containers add their `memory` to the used part.
    pub fn set_node_memory(&self, node: &str, total_bytes: u64, used_bytes: u64) {
        let mut st = self.st();
        let r = st.resources.entry(node.to_owned()).or_default();
        r.memory_total = total_bytes;
        r.memory_base = used_bytes;
    }

    /// Removes the template `volid` (`local:vztmpl/x.tar.zst`) from
    /// `node`'s storage, as deleting it in the Proxmox UI would; a
    /// container create from it on that node then fails.
    pub fn remove_template(&self, node: &str, volid: &str) {
        self.st()
            .missing_templates
            .insert((node.to_owned(), volid.to_owned()));
    }

    /// Makes every storage listing of `node` fail, as for a storage that
    /// does not exist there.
    pub fn fail_storage_listing(&self, node: &str) {
        self.st().unlisted_storage.insert(node.to_owned());
    }

    /// Marks `storage` shared between the nodes (as NFS or Ceph is): a
    /// volume on it is on every node at once.
    pub fn set_storage_shared(&self, storage: &str) {
        self.st().shared_storages.insert(storage.to_owned());
    }

    /// Puts the template `volid` (`local:vztmpl/x.tar.zst`) on `node`'s
    /// storage only, `file` (a real local file) standing for its content,
    /// as building or uploading it on that node would: other nodes lack
    /// it (unless its storage is shared) until it is uploaded there.
    pub fn place_template(&self, node: &str, volid: &str, file: &Path) {
        self.st()
            .placed
            .entry(volid.to_owned())
            .or_default()
            .insert(node.to_owned(), file.to_owned());
    }

    /// The nodes holding the placed template `volid` (see
    /// [`FakePve::place_template`]), by name.
    pub fn template_nodes(&self, volid: &str) -> Vec<String> {
        let st = self.st();
        st.nodes
            .keys()
            .filter(|n| Self::has_template(&st, n, volid))
            .cloned()
            .collect()
    }

    /// Whether `volid` is on `node`'s storage.
    fn has_template(st: &State, node: &str, volid: &str) -> bool {
        if st
            .missing_templates
            .contains(&(node.to_owned(), volid.to_owned()))
        {
            return false;
        }
        let Some(holders) = st.placed.get(volid) else {
            return true;
        };
        let storage = volid.split_once(':').map_or("", |(s, _)| s);
        holders.contains_key(node) || (st.shared_storages.contains(storage) && !holders.is_empty())
    }

    /// Sets `node`'s DNS settings (`GET /nodes/{node}/dns`), as editing
    /// them under the node's System → DNS would (or as systemd-resolved's
    /// stub `127.0.0.53` in its `/etc/resolv.conf` shows).
    pub fn set_node_dns(&self, node: &str, dns: NodeDns) {
        self.st().dns.insert(node.to_owned(), dns);
    }

    /// Makes reading `node`'s DNS settings fail (`fail`), as a node whose
    /// `pveproxy` answers 500 would, or read again.
    pub fn fail_node_dns(&self, node: &str, fail: bool) {
        let mut st = self.st();
        if fail {
            st.unreadable_dns.insert(node.to_owned());
        } else {
            st.unreadable_dns.remove(node);
        }
    }

    /// Sets `node`'s logical CPU count and its CPU load (0 to 1).
    pub fn set_node_cpu(&self, node: &str, cpus: u32, load: f64) {
        let mut st = self.st();
        let r = st.resources.entry(node.to_owned()).or_default();
        r.cpus = cpus;
        r.load = load;
    }

    /// The HA resources, by sid.
    pub fn ha_resources(&self) -> BTreeMap<String, HaResource> {
        self.st().ha.clone()
    }

    /// Container `vmid`'s config as stored (with its digest), if it exists.
    pub fn config_of(&self, vmid: u32) -> Option<LxcConfig> {
        let st = self.st();
        st.guests.get(&vmid).map(config_with_digest)
    }

    fn task(st: &mut State, node: &str, kind: &str, id: &str) -> Result<Upid> {
        st.tasks += 1;
        format!("UPID:{node}:{:08X}:0:0:{kind}:{id}:root@pam:", st.tasks).parse()
    }

    fn check_lock(st: &State, lock: Option<&SdnLockToken>, path: &str) -> Result<()> {
        match (&st.lock, lock) {
            (Some(held), Some(given)) if held == given => Ok(()),
            (None, None) => Ok(()),
            (Some(_), None) => Err(fail(
                "PUT",
                path,
                500,
                "SDN is locked by another operation; pass its lock-token".into(),
            )),
            _ => Err(fail(
                "PUT",
                path,
                500,
                "lock-token does not match the SDN lock".into(),
            )),
        }
    }

    fn listed(&self, at: SdnCollection<'_>) -> Vec<Value> {
        let (wanted, vnet) = (at.kind(), at.vnet());
        let st = self.call(format!("sdn_list_{wanted}"));
        let key = wanted.id_key();
        let mut out = Vec::new();
        for ((kind, v, id), obj) in &st.sdn {
            if *kind != wanted || v.as_deref() != vnet {
                continue;
            }
            let mut top = obj.running.clone().unwrap_or_default();
            top.insert(key.into(), Value::from(id.clone()));
            let state = match (&obj.running, &obj.desired) {
                (r, d) if r == d => None,
                (None, _) => Some("new"),
                (_, None) => Some("deleted"),
                _ => Some("changed"),
            };
            let mut pending = obj.desired.clone().unwrap_or_default();
            if let (Some(running), Some(_)) = (&obj.running, &obj.desired) {
                for k in running.keys() {
                    pending.entry(k.clone()).or_insert_with(|| "deleted".into());
                }
            }
            if let Some(s) = state {
                top.insert("state".into(), s.into());
                top.insert("pending".into(), Value::Object(pending));
            }
            out.push(Value::Object(top));
        }
        out
    }

    fn create(&self, id: &str, spec: SdnSpec<'_>, lock: Option<&SdnLockToken>) -> Result<()> {
        let kind = spec.kind();
        let vnet = spec.collection().vnet();
        let mut st = self.call(format!("sdn_create_{kind} {id}{}", lock_mark(lock)));
        let path = format!("/cluster/sdn/{kind}s");
        Self::check_lock(&st, lock, &path)?;
        let mut id = id.to_owned();
        let mut map = spec.to_map()?;
        if kind == SdnKind::Subnet {
            let zone = vnet
                .and_then(|v| st.sdn.get(&(SdnKind::Vnet, None, v.to_owned())))
                .and_then(|o| o.desired.as_ref()?.get("zone")?.as_str().map(str::to_owned))
                .ok_or_else(|| {
                    fail(
                        "POST",
                        &path,
                        500,
                        format!("vnet '{vnet:?}' does not exist"),
                    )
                })?;
            map.insert("cidr".into(), Value::from(id.clone()));
            map.insert("zone".into(), Value::from(zone.clone()));
            id = format!("{zone}-{}", id.replace('/', "-"));
        }
        let key = (kind, vnet.map(str::to_owned), id.clone());
        if st.sdn.contains_key(&key) {
            return Err(fail(
                "POST",
                &path,
                500,
                format!("sdn {kind} object ID '{id}' already defined"),
            ));
        }
        st.sdn.insert(
            key,
            SdnObject {
                running: None,
                desired: Some(map),
            },
        );
        Ok(())
    }

    fn update(&self, id: &str, spec: SdnSpec<'_>, lock: Option<&SdnLockToken>) -> Result<()> {
        let kind = spec.kind();
        let mut st = self.call(format!("sdn_update_{kind} {id}{}", lock_mark(lock)));
        let path = format!("/cluster/sdn/{kind}s/{id}");
        Self::check_lock(&st, lock, &path)?;
        let obj = st
            .sdn
            .get_mut(&(kind, None, id.to_owned()))
            .and_then(|o| o.desired.as_mut())
            .ok_or_else(|| {
                fail(
                    "PUT",
                    &path,
                    500,
                    format!("sdn {kind} '{id}' does not exist"),
                )
            })?;
        obj.extend(spec.to_map()?);
        Ok(())
    }
}

fn lock_mark(lock: Option<&SdnLockToken>) -> &'static str {
    if lock.is_some() { " lock" } else { "" }
}

impl Pve for FakePve {
    fn release(&self) -> Result<Release> {
        Ok(self.call("release".into()).release)
    }

    fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>> {
        let st = self.call("cluster_status".into());
        let mut entries = vec![json!({"type": "cluster", "name": "lab", "quorate": 1})];
        for (i, (node, addr)) in st.nodes.iter().enumerate() {
            let ip = addr.split('/').next().unwrap_or_default();
            entries.push(
                json!({"type": "node", "name": node, "nodeid": i + 1, "ip": ip,
                    "online": u8::from(!st.offline.contains(node))}),
            );
        }
        typed(Value::Array(entries))
    }

    fn nodes(&self) -> Result<Vec<NodeSummary>> {
        let st = self.call("nodes".into());
        let nodes: Vec<Value> = st
            .nodes
            .keys()
            .map(|n| {
                let status = if st.offline.contains(n) {
                    "offline"
                } else {
                    "online"
                };
                json!({"node": n, "status": status})
            })
            .collect();
        typed(Value::Array(nodes))
    }

    fn node_network(&self, node: &str) -> Result<Vec<NetworkInterface>> {
        let st = self.call(format!("node_network {node}"));
        Self::reach(&st, "GET", &format!("/nodes/{node}/network"), node)?;
        let addr = st.nodes.get(node).ok_or_else(|| {
            fail(
                "GET",
                "/nodes",
                500,
                format!("no such cluster node '{node}'"),
            )
        })?;
        // A second bridge, 10.99.0.<same host part>/24 with jumbo frames,
        // for nodes whose Node manifest names another uplink.
        let host = addr
            .split('/')
            .next()
            .and_then(|a| a.rsplit('.').next())
            .unwrap_or("1");
        typed(json!([
            {"iface": "vmbr0", "type": "bridge", "cidr": addr, "mtu": "1500", "active": 1},
            {"iface": "vmbr1", "type": "bridge", "cidr": format!("10.99.0.{host}/24"), "mtu": "9000", "active": 1},
        ]))
    }

    fn node_dns(&self, node: &str) -> Result<NodeDns> {
        let st = self.call(format!("node_dns {node}"));
        let path = format!("/nodes/{node}/dns");
        Self::reach_member(&st, "GET", &path, node)?;
        if st.unreadable_dns.contains(node) {
            return Err(fail(
                "GET",
                &path,
                500,
                "unable to open file '/etc/resolv.conf' - Permission denied".into(),
            ));
        }
        Ok(st.dns.get(node).cloned().unwrap_or_else(default_node_dns))
    }

    fn next_vmid(&self, wanted: Option<u32>) -> Result<u32> {
        let st = self.call("next_vmid".into());
        match wanted {
            Some(w) if st.guests.contains_key(&w) => {
                let errors =
                    BTreeMap::from([("vmid".to_owned(), format!("VM {w} already exists"))]);
                Err(PveError::Api {
                    method: "GET".into(),
                    path: "/cluster/nextid".into(),
                    status: 400,
                    message: "Parameter verification failed.".into(),
                    kind: ApiErrorKind::classify(400, "", errors),
                })
            }
            Some(w) => Ok(w),
            None => Ok((100..)
                .find(|id| !st.guests.contains_key(id))
                .unwrap_or(100)),
        }
    }

    fn sdn_list(&self, at: SdnCollection<'_>) -> Result<Vec<Value>> {
        Ok(self.listed(at))
    }

    fn sdn_create(&self, id: &str, spec: SdnSpec<'_>, lock: Option<&SdnLockToken>) -> Result<()> {
        self.create(id, spec, lock)
    }

    fn sdn_update(&self, id: &str, spec: SdnSpec<'_>, lock: SdnLock<'_>) -> Result<()> {
        self.update(id, spec, lock)
    }

    fn sdn_delete(&self, at: SdnCollection<'_>, id: &str, lock: SdnLock<'_>) -> Result<()> {
        let (kind, vnet) = (at.kind(), at.vnet());
        let mut st = self.call(format!("sdn_delete_{kind} {id}{}", lock_mark(lock)));
        let path = format!("/cluster/sdn/{kind}s/{id}");
        Self::check_lock(&st, lock, &path)?;
        let key = (kind, vnet.map(str::to_owned), id.to_owned());
        match st.sdn.get_mut(&key) {
            None => Err(fail(
                "DELETE",
                &path,
                500,
                format!("sdn {kind} '{id}' does not exist"),
            )),
            Some(obj) if obj.running.is_none() => {
                st.sdn.remove(&key);
                Ok(())
            }
            Some(obj) => {
                obj.desired = None;
                Ok(())
            }
        }
    }

    fn sdn_lock(&self, allow_pending: bool) -> Result<Option<SdnLockToken>> {
        let pending = self.has_pending();
        let mut st = self.call("sdn_lock".into());
        if !st.release.has_sdn_lock() {
            return Ok(None);
        }
        let path = "/cluster/sdn/lock";
        if st.lock.is_some() {
            return Err(fail(
                "POST",
                path,
                500,
                "SDN is locked by another operation".into(),
            ));
        }
        if pending && !allow_pending {
            return Err(fail(
                "POST",
                path,
                500,
                "there are pending SDN changes".into(),
            ));
        }
        st.locks_taken += 1;
        let token = SdnLockToken(format!("fake-lock-{}", st.locks_taken));
        st.lock = Some(token.clone());
        Ok(Some(token))
    }

    fn sdn_unlock(&self, lock: &SdnLockToken, _force: bool) -> Result<()> {
        let mut st = self.call("sdn_unlock".into());
        Self::check_lock(&st, Some(lock), "/cluster/sdn/lock")?;
        st.lock = None;
        Ok(())
    }

    fn sdn_apply(&self, lock: Option<&SdnLockToken>, release_lock: bool) -> Result<Upid> {
        let mut st = self.call(format!("sdn_apply{}", lock_mark(lock)));
        Self::check_lock(&st, lock, "/cluster/sdn")?;
        st.sdn.retain(|_, o| o.desired.is_some());
        for obj in st.sdn.values_mut() {
            obj.running.clone_from(&obj.desired);
        }
        if release_lock {
            st.lock = None;
        }
        // The task runs on the node that answered: an online one.
        let node = st
            .nodes
            .keys()
            .find(|n| !st.offline.contains(*n))
            .cloned()
            .unwrap_or_default();
        Self::task(&mut st, &node, "reloadnetworkall", "")
    }

    fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>> {
        let st = self.call(format!("lxc_list {node}"));
        Self::reach(&st, "GET", &format!("/nodes/{node}/lxc"), node)?;
        let guests: Vec<Value> = st
            .guests
            .iter()
            .filter(|(_, g)| g.node == node)
            .map(|(id, g)| {
                json!({
                    "vmid": id,
                    "status": if g.running { "running" } else { "stopped" },
                    "name": g.config.get("hostname"),
                    "tags": g.config.get("tags"),
                    // Proxmox's listing gives the config's memory (512
                    // MiB when unset) in bytes.
                    "maxmem": g.config.get("memory")
                        .and_then(|m| m.as_u64().or_else(|| m.as_str()?.parse().ok()))
                        .unwrap_or(512) * 1024 * 1024,
                })
            })
            .collect();
        typed(Value::Array(guests))
    }

    fn lxc_create(&self, node: &str, req: &LxcCreate) -> Result<Upid> {
        let vmid = req.vmid;
        let mut st = self.call(format!("lxc_create {node} {vmid}"));
        Self::reach(&st, "POST", &format!("/nodes/{node}/lxc"), node)?;
        if !Self::has_template(&st, node, &req.ostemplate) {
            return Err(fail(
                "POST",
                &format!("/nodes/{node}/lxc"),
                500,
                format!("volume '{}' does not exist", req.ostemplate),
            ));
        }
        if let Some(i) = st.stolen.iter().position(|v| *v == vmid) {
            st.stolen.remove(i);
            let outsider = Guest {
                node: node.to_owned(),
                config: BTreeMap::from([("hostname".to_owned(), Value::from("outsider"))]),
                running: false,
                digest: next_digest(&mut st),
            };
            st.guests.insert(vmid, outsider);
        }
        if let Some(other) = st.guests.get(&vmid) {
            return Err(fail(
                "POST",
                &format!("/nodes/{node}/lxc"),
                500,
                format!(
                    "unable to create CT {vmid} - CT {vmid} already exists on node '{}'",
                    other.node
                ),
            ));
        }
        let mut config: BTreeMap<String, Value> = req
            .params()
            .into_iter()
            .filter(|(k, _)| !NOT_STORED.contains(&k.as_str()))
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        let storage = req.storage.as_deref().unwrap_or("local");
        let rootfs = req.rootfs.clone().unwrap_or_else(|| format!("{storage}:4"));
        config.insert("rootfs".into(), Value::from(allocate(&rootfs, vmid)));
        let digest = next_digest(&mut st);
        st.guests.insert(
            vmid,
            Guest {
                node: node.to_owned(),
                config,
                running: req.start == Some(true),
                digest,
            },
        );
        Self::task(&mut st, node, "vzcreate", &vmid.to_string())
    }

    fn lxc_config(&self, node: &str, vmid: u32) -> Result<LxcConfig> {
        let st = self.call(format!("lxc_config {node} {vmid}"));
        Self::reach(
            &st,
            "GET",
            &format!("/nodes/{node}/lxc/{vmid}/config"),
            node,
        )?;
        st.guests
            .get(&vmid)
            .filter(|g| g.node == node)
            .map(config_with_digest)
            .ok_or_else(|| {
                let message =
                    format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist");
                fail(
                    "GET",
                    &format!("/nodes/{node}/lxc/{vmid}/config"),
                    500,
                    message,
                )
            })
    }

    fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.power(node, vmid, true)
    }

    fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.power(node, vmid, false)
    }

    fn lxc_delete(&self, node: &str, vmid: u32, purge: bool) -> Result<Upid> {
        let mut st = self.call(format!("lxc_delete {node} {vmid}"));
        Self::reach(&st, "DELETE", &format!("/nodes/{node}/lxc/{vmid}"), node)?;
        let sid = format!("ct:{vmid}");
        if st.guests.contains_key(&vmid) && st.ha.contains_key(&sid) {
            if !purge {
                let message = format!(
                    "unable to remove CT {vmid} - used in HA resources and purge parameter not set."
                );
                return Err(fail(
                    "DELETE",
                    &format!("/nodes/{node}/lxc/{vmid}"),
                    500,
                    message,
                ));
            }
            st.ha.remove(&sid);
        }
        if st.guests.remove(&vmid).is_none() {
            let message =
                format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist");
            return Err(fail(
                "DELETE",
                &format!("/nodes/{node}/lxc/{vmid}"),
                500,
                message,
            ));
        }
        Self::task(&mut st, node, "vzdestroy", &vmid.to_string())
    }

    /// Every template any container was made from, Debian's standard one
    /// and OrbitLab's appliance templates of this release, on every storage
    /// of every node, less those removed.
    fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageVolume>> {
        let st = self.call(format!("storage_content {node} {storage}"));
        let path = format!("/nodes/{node}/storage/{storage}/content");
        Self::reach(&st, "GET", &path, node)?;
        if st.unlisted_storage.contains(node) {
            return Err(fail(
                "GET",
                &path,
                500,
                format!("storage '{storage}' does not exist"),
            ));
        }
        if content.is_some_and(|c| c != "vztmpl") {
            return Ok(Vec::new());
        }
        let mut volids: BTreeSet<String> = st
            .guests
            .values()
            .filter_map(|g| g.config.get("ostemplate")?.as_str().map(str::to_owned))
            .collect();
        volids.insert(format!(
            "{storage}:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
        ));
        for role in orbitlab_manifests::ApplianceRole::ALL {
            volids.insert(format!(
                "{storage}:{}",
                crate::reconcile::plan::default_appliance_template(role)
            ));
        }
        volids.extend(st.placed.keys().cloned());
        Ok(volids
            .into_iter()
            .filter(|v| v.starts_with(&format!("{storage}:")))
            .filter(|v| Self::has_template(&st, node, v))
            .map(|volid| StorageVolume {
                volid,
                content: "vztmpl".into(),
                size: Some(128 << 20),
                format: Some("tzst".into()),
            })
            .collect())
    }

    /// `local` (templates, ISOs, backups) and `local-lvm` (disks) on
    /// every node, and every storage marked shared.
    fn node_storages(&self, node: &str) -> Result<Vec<NodeStorage>> {
        let st = self.call(format!("node_storages {node}"));
        let path = format!("/nodes/{node}/storage");
        Self::reach(&st, "GET", &path, node)?;
        if st.unlisted_storage.contains(node) {
            return Err(fail("GET", &path, 500, "storage listing failed".into()));
        }
        let storage = |id: &str, content: &str| NodeStorage {
            storage: id.to_owned(),
            content: content.to_owned(),
            shared: Some(st.shared_storages.contains(id)),
            active: Some(true),
        };
        let mut out = vec![
            storage("local", "vztmpl,iso,backup"),
            storage("local-lvm", "rootdir,images"),
        ];
        out.extend(
            st.shared_storages
                .iter()
                .filter(|s| !matches!(s.as_str(), "local" | "local-lvm"))
                .map(|s| storage(s, "vztmpl,rootdir")),
        );
        Ok(out)
    }

    /// A template's path: the file it was placed with, else where Proxmox
    /// keeps templates of `local`.
    fn storage_volume(&self, node: &str, storage: &str, volume: &str) -> Result<VolumeAttributes> {
        let st = self.call(format!("storage_volume {node} {storage} {volume}"));
        let path = format!("/nodes/{node}/storage/{storage}/content/{volume}");
        Self::reach(&st, "GET", &path, node)?;
        let volid = if volume.contains(':') {
            volume.to_owned()
        } else {
            format!("{storage}:{volume}")
        };
        if !Self::has_template(&st, node, &volid) {
            return Err(fail(
                "GET",
                &path,
                500,
                format!("volume '{volid}' does not exist"),
            ));
        }
        let file = st
            .placed
            .get(&volid)
            .and_then(|holders| holders.get(node).or_else(|| holders.values().next()))
            .map(|p| p.display().to_string());
        let name = volid.rsplit('/').next().unwrap_or_default();
        Ok(VolumeAttributes {
            path: file.unwrap_or_else(|| format!("/var/lib/vz/template/cache/{name}")),
            size: Some(128 << 20),
            format: Some("tzst".into()),
        })
    }

    /// Reads the file, refuses it when its SHA-256 is not the one given
    /// (as Proxmox does), and places the template on `node`.
    fn storage_upload(
        &self,
        node: &str,
        storage: &str,
        upload: &StorageUpload<'_>,
    ) -> Result<Upid> {
        let mut st = self.call(format!(
            "storage_upload {node} {storage} {}",
            upload.file_name
        ));
        let path = format!("/nodes/{node}/storage/{storage}/upload");
        Self::reach(&st, "POST", &path, node)?;
        let bytes = std::fs::read(upload.file).map_err(|e| {
            PveError::Config(format!("opening {} for upload: {e}", upload.file.display()))
        })?;
        let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if !got.eq_ignore_ascii_case(upload.sha256) {
            return Err(fail(
                "POST",
                &path,
                500,
                format!(
                    "checksum mismatch: got '{got}' != expected '{}'",
                    upload.sha256
                ),
            ));
        }
        let dir = match upload.content {
            "vztmpl" => "vztmpl",
            "iso" => "iso",
            _ => "import",
        };
        st.placed
            .entry(format!("{storage}:{dir}/{}", upload.file_name))
            .or_default()
            .insert(node.to_owned(), upload.file.to_owned());
        Self::task(&mut st, node, "imgcopy", storage)
    }

    fn node_status(&self, node: &str) -> Result<NodeStatus> {
        let st = self.call(format!("node_status {node}"));
        let path = format!("/nodes/{node}/status");
        Self::reach_member(&st, "GET", &path, node)?;
        let r = st.resources.get(node).copied().unwrap_or_default();
        let guests: u64 = st
            .guests
            .values()
            .filter(|g| g.node == node && g.running)
            .map(|g| g.memory_mib() * MIB)
            .sum();
        let used = (r.memory_base + guests).min(r.memory_total);
        Ok(NodeStatus {
            memory_total: r.memory_total,
            memory_used: used,
            memory_free: r.memory_total - used,
            cpu: r.load,
            cpus: r.cpus,
        })
    }

    fn lxc_update(&self, node: &str, vmid: u32, update: &LxcUpdate) -> Result<()> {
        let mut st = self.call(format!("lxc_update {node} {vmid}"));
        let path = format!("/nodes/{node}/lxc/{vmid}/config");
        Self::reach(&st, "PUT", &path, node)?;
        let digest = next_digest(&mut st);
        let guest = Self::guest_mut(&mut st, node, vmid, "PUT", &path)?;
        check_digest(guest, update.digest.as_deref(), "PUT", &path)?;
        for key in &update.delete {
            if update.set.contains_key(key) {
                let errors = BTreeMap::from([(
                    "delete".to_owned(),
                    format!("you can't use '-{key}' and -delete {key}' at the same time"),
                )]);
                return Err(PveError::Api {
                    method: "PUT".into(),
                    path,
                    status: 400,
                    message: "Parameter verification failed.".into(),
                    kind: ApiErrorKind::classify(400, "", errors),
                });
            }
            if let Some(message) = undeletable(key) {
                return Err(fail("PUT", &path, 500, message));
            }
        }
        for key in &update.delete {
            guest.config.remove(key);
        }
        for (k, v) in &update.set {
            guest.config.insert(k.clone(), Value::from(v.as_str()));
        }
        guest.digest = digest;
        Ok(())
    }

    fn lxc_resize(&self, node: &str, vmid: u32, disk: &str, size_gib: u32) -> Result<Upid> {
        let mut st = self.call(format!("lxc_resize {node} {vmid} {disk} {size_gib}"));
        let path = format!("/nodes/{node}/lxc/{vmid}/resize");
        Self::reach(&st, "PUT", &path, node)?;
        let digest = next_digest(&mut st);
        let guest = Self::guest_mut(&mut st, node, vmid, "PUT", &path)?;
        let value = guest
            .config
            .get(disk)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                fail(
                    "PUT",
                    &path,
                    500,
                    format!("unable to parse volume '{disk}'"),
                )
            })?;
        let current = disk_size(&value).ok_or_else(|| {
            fail(
                "PUT",
                &path,
                500,
                format!("Could not determine current size of volume '{value}'"),
            )
        })?;
        let wanted = u64::from(size_gib) * GIB;
        if wanted < current {
            return Err(fail("PUT", &path, 500, "unable to shrink disk size".into()));
        }
        if wanted == current {
            let message = "disk is already at specified size".to_owned();
            return Err(fail("PUT", &path, 500, message));
        }
        guest
            .config
            .insert(disk.to_owned(), Value::from(with_size(&value, wanted)));
        guest.digest = digest;
        Self::task(&mut st, node, "resize", &vmid.to_string())
    }

    fn ha_resources(&self) -> Result<Vec<HaResource>> {
        Ok(self
            .call("ha_resources".into())
            .ha
            .values()
            .cloned()
            .collect())
    }

    fn ha_add(&self, resource: &HaResourceAdd) -> Result<()> {
        let sid = resource.sid();
        let mut st = self.call(format!("ha_add {sid}"));
        resource.check_release(st.release)?;
        let path = "/cluster/ha/resources";
        if !st.guests.contains_key(&resource.vmid) {
            let message = format!("resource '{sid}' does not exist in cluster");
            return Err(fail("POST", path, 500, message));
        }
        if st.ha.contains_key(&sid) {
            let message = format!("resource ID '{sid}' already defined");
            return Err(fail("POST", path, 500, message));
        }
        let entry = HaResource {
            sid: sid.clone(),
            kind: Some("ct".into()),
            state: Some(resource.state.as_str().into()),
            group: resource.group.clone(),
            comment: resource.comment.clone(),
            max_restart: None,
            max_relocate: None,
        };
        st.ha.insert(sid, entry);
        Ok(())
    }

    fn ha_remove(&self, sid: &str) -> Result<()> {
        let mut st = self.call(format!("ha_remove {sid}"));
        if st.ha.remove(sid).is_none() {
            let message = format!("cannot delete service '{sid}', not HA managed!");
            return Err(fail(
                "DELETE",
                &format!("/cluster/ha/resources/{sid}"),
                500,
                message,
            ));
        }
        Ok(())
    }

    fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        let node = upid.node();
        let path = format!("/nodes/{node}/tasks/{}/status", upid.as_str());
        Self::reach(&self.st(), "GET", &path, node)?;
        typed(json!({
            "upid": upid.as_str(),
            "node": upid.node(),
            "status": "stopped",
            "exitstatus": "OK",
            "type": upid.kind(),
        }))
    }
}

/// Create parameters Proxmox does not keep in the config.
const NOT_STORED: &[&str] = &[
    "vmid",
    "ostemplate",
    "start",
    "storage",
    "password",
    "ssh-public-keys",
];

/// Proxmox's refusal to delete a config key, if it refuses.
fn undeletable(key: &str) -> Option<String> {
    match key {
        "memory" | "rootfs" | "ostype" => Some(format!("unable to delete required option '{key}'")),
        "unprivileged" => Some(format!("unable to delete read-only option: '{key}'")),
        _ => None,
    }
}

fn next_digest(st: &mut State) -> u64 {
    st.digests += 1;
    st.digests
}

fn config_with_digest(g: &Guest) -> LxcConfig {
    let mut config = g.config.clone();
    config.insert("digest".into(), Value::from(g.digest_text()));
    LxcConfig(config)
}

fn check_digest(g: &Guest, given: Option<&str>, method: &str, path: &str) -> Result<()> {
    match given {
        Some(d) if d != g.digest_text() => Err(fail(
            method,
            path,
            500,
            "detected modified configuration - file changed by other user? Try again.".into(),
        )),
        _ => Ok(()),
    }
}

/// `STORAGE:SIZE` (GiB) allocates `STORAGE:vm-<vmid>-disk-0,size=<SIZE>G`;
/// an existing volume is kept as given.
fn allocate(rootfs: &str, vmid: u32) -> String {
    let (volume, options) = rootfs.split_once(',').unwrap_or((rootfs, ""));
    let volume = volume.strip_prefix("volume=").unwrap_or(volume);
    match volume.split_once(':') {
        Some((storage, size)) if size.parse::<f64>().is_ok() => {
            let mut opts: Vec<&str> = options.split(',').filter(|o| !o.is_empty()).collect();
            let size = format!("size={size}G");
            opts.push(&size);
            opts.sort_unstable();
            format!("{storage}:vm-{vmid}-disk-0,{}", opts.join(","))
        }
        _ => rootfs.to_owned(),
    }
}

/// The `size=` of a mount point value, in bytes (`8G`, `512M`, plain bytes).
fn disk_size(value: &str) -> Option<u64> {
    let size = value.split(',').find_map(|o| o.strip_prefix("size="))?;
    let (number, unit) = match size.char_indices().last()? {
        (i, u @ ('K' | 'M' | 'G' | 'T')) => (&size[..i], u),
        _ => (size, 'B'),
    };
    let factor: f64 = match unit {
        'K' => 1024.0,
        'M' => 1024.0 * 1024.0,
        'G' => 1024.0 * 1024.0 * 1024.0,
        'T' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    let bytes = number.parse::<f64>().ok()? * factor;
    // Sizes are whole bytes well below 2^53: the cast is exact.
    Some(bytes as u64)
}

/// A mount point value with its `size=` set to `bytes` (whole GiB here).
fn with_size(value: &str, bytes: u64) -> String {
    let size = format!("size={}G", bytes / GIB);
    let mut parts: Vec<String> = value
        .split(',')
        .filter(|p| !p.starts_with("size="))
        .map(str::to_owned)
        .collect();
    parts.push(size);
    parts[1..].sort_unstable();
    parts.join(",")
}

impl FakePve {
    /// The container `vmid` on `node`, or Proxmox's "does not exist".
    fn guest_mut<'s>(
        st: &'s mut State,
        node: &str,
        vmid: u32,
        method: &str,
        path: &str,
    ) -> Result<&'s mut Guest> {
        st.guests
            .get_mut(&vmid)
            .filter(|g| g.node == node)
            .ok_or_else(|| {
                let message =
                    format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist");
                fail(method, path, 500, message)
            })
    }

    fn power(&self, node: &str, vmid: u32, on: bool) -> Result<Upid> {
        let verb = if on { "start" } else { "stop" };
        let mut st = self.call(format!("lxc_{verb} {node} {vmid}"));
        let path = format!("/nodes/{node}/lxc/{vmid}/status/{verb}");
        Self::reach(&st, "POST", &path, node)?;
        let guest = st.guests.get_mut(&vmid).ok_or_else(|| {
            let message =
                format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist");
            fail("POST", &path, 500, message)
        })?;
        guest.running = on;
        Self::task(&mut st, node, &format!("vz{verb}"), &vmid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::{HaState, Secret};

    fn fake(major: u32) -> FakePve {
        let release = Release { major, minor: 1 };
        FakePve::new(
            release,
            &[("pve1", "192.168.100.11/24"), ("pve2", "192.168.100.12/24")],
        )
    }

    fn create(f: &FakePve, vmid: u32, start: bool) {
        let req = LxcCreate {
            vmid,
            ostemplate: "local:vztmpl/debian-12.tar.zst".into(),
            hostname: Some("web1".into()),
            memory: Some(1024),
            cores: Some(2),
            rootfs: Some("local-lvm:8".into()),
            nets: [(0, "name=eth0,bridge=olvn1001,ip=10.0.0.5/24".to_string())].into(),
            nameserver: Some("10.0.0.1".into()),
            searchdomain: Some("lab.internal".into()),
            onboot: Some(true),
            unprivileged: Some(true),
            start: Some(start),
            storage: Some("local-lvm".into()),
            ssh_public_keys: Some("ssh-ed25519 AAAA root@x".into()),
            password: Some(Secret::new("hunter2-hunter2")),
            ..LxcCreate::default()
        };
        f.lxc_create("pve1", &req).expect("create");
    }

    fn api_message(e: &PveError) -> (u16, String) {
        match e {
            PveError::Api {
                status, message, ..
            } => (*status, message.clone()),
            other => panic!("not an API error: {other}"),
        }
    }

    #[test]
    fn create_stores_what_proxmox_stores() {
        let f = fake(8);
        create(&f, 101, false);
        let cfg = f.lxc_config("pve1", 101).expect("config");
        assert_eq!(
            cfg.get("rootfs").as_deref(),
            Some("local-lvm:vm-101-disk-0,size=8G")
        );
        for (key, value) in [
            ("net0", "name=eth0,bridge=olvn1001,ip=10.0.0.5/24"),
            ("nameserver", "10.0.0.1"),
            ("searchdomain", "lab.internal"),
            ("onboot", "1"),
            ("cores", "2"),
            ("memory", "1024"),
            ("unprivileged", "1"),
        ] {
            assert_eq!(cfg.get(key).as_deref(), Some(value), "{key}");
        }
        for secret in [
            "password",
            "ssh-public-keys",
            "storage",
            "start",
            "ostemplate",
        ] {
            assert!(cfg.get(secret).is_none(), "{secret} is not config");
        }
        assert!(cfg.digest().is_some());
    }

    #[test]
    fn update_applies_set_and_delete_and_checks_the_digest() {
        let f = fake(9);
        create(&f, 101, false);
        let before = f.lxc_config("pve1", 101).expect("config");
        let mut update = LxcUpdate {
            digest: before.digest(),
            ..LxcUpdate::default()
        };
        update.set.insert("memory".into(), "2048".into());
        update.delete.push("searchdomain".into());
        f.lxc_update("pve1", 101, &update).expect("update");
        let after = f.lxc_config("pve1", 101).expect("config");
        assert_eq!(after.get("memory").as_deref(), Some("2048"));
        assert!(after.get("searchdomain").is_none());
        assert_ne!(after.digest(), before.digest());
        // The old digest is stale now.
        let err = f.lxc_update("pve1", 101, &update).expect_err("stale");
        assert!(api_message(&err).1.contains("file changed by other user"));
        // So is the digest read before a hand edit in the GUI.
        let update = LxcUpdate {
            digest: after.digest(),
            set: [("cores".to_string(), "4".to_string())].into(),
            ..LxcUpdate::default()
        };
        f.edit_config_by_hand(101, "description", "edited");
        let err = f.lxc_update("pve1", 101, &update).expect_err("edited");
        assert!(api_message(&err).1.contains("file changed by other user"));
        // Without a digest it goes through.
        let update = LxcUpdate {
            digest: None,
            ..update
        };
        f.lxc_update("pve1", 101, &update).expect("update");
        assert_eq!(
            f.config_of(101).and_then(|c| c.get("cores")).as_deref(),
            Some("4")
        );
        // Required keys stay.
        let delete = LxcUpdate {
            delete: vec!["rootfs".into()],
            ..LxcUpdate::default()
        };
        let err = f.lxc_update("pve1", 101, &delete).expect_err("rootfs");
        assert_eq!(
            api_message(&err),
            (500, "unable to delete required option 'rootfs'".into())
        );
        let err = f.lxc_update("pve2", 101, &delete).expect_err("other node");
        assert_eq!(err.kind(), Some(&ApiErrorKind::NotFound));
        assert!(f.writes().contains(&"lxc_update pve1 101".to_string()));
    }

    #[test]
    fn resize_grows_and_refuses_a_shrink() {
        let f = fake(8);
        create(&f, 101, false);
        let upid = f.lxc_resize("pve1", 101, "rootfs", 10).expect("grow");
        assert_eq!(upid.kind(), "resize");
        assert_eq!(
            f.config_of(101).and_then(|c| c.get("rootfs")).as_deref(),
            Some("local-lvm:vm-101-disk-0,size=10G")
        );
        let err = f.lxc_resize("pve1", 101, "rootfs", 4).expect_err("shrink");
        assert_eq!(
            api_message(&err),
            (500, "unable to shrink disk size".into())
        );
        let err = f.lxc_resize("pve1", 101, "rootfs", 10).expect_err("same");
        assert_eq!(
            api_message(&err),
            (500, "disk is already at specified size".into())
        );
        assert!(f.lxc_resize("pve1", 101, "mp0", 10).is_err());
        // Sizes in other units are read too.
        f.edit_config_by_hand(101, "rootfs", "local-lvm:vm-101-disk-0,size=12288M");
        let err = f.lxc_resize("pve1", 101, "rootfs", 11).expect_err("shrink");
        assert_eq!(api_message(&err).1, "unable to shrink disk size");
        f.lxc_resize("pve1", 101, "rootfs", 13).expect("grow");
        assert_eq!(
            f.config_of(101).and_then(|c| c.get("rootfs")).as_deref(),
            Some("local-lvm:vm-101-disk-0,size=13G")
        );
    }

    #[test]
    fn node_memory_counts_running_guests() {
        let f = fake(8);
        let idle = f.node_status("pve1").expect("status");
        assert_eq!(
            (idle.memory_total, idle.memory_used, idle.memory_free),
            (64 * GIB, 2 * GIB, 62 * GIB)
        );
        assert_eq!(idle.free_mib(), 62 * 1024);
        assert_eq!(idle.cpus, 16);
        create(&f, 101, true);
        create(&f, 102, false);
        let busy = f.node_status("pve1").expect("status");
        assert_eq!(
            busy.memory_used,
            2 * GIB + GIB,
            "only the running one counts"
        );
        f.set_node_memory("pve2", 8 * GIB, 7 * GIB);
        f.set_node_cpu("pve2", 4, 0.5);
        let small = f.node_status("pve2").expect("status");
        assert_eq!((small.free_mib(), small.cpus, small.cpu), (1024, 4, 0.5));
        f.set_online("pve2", false);
        let err = f.node_status("pve2").expect_err("offline");
        assert_eq!(err.kind(), Some(&ApiErrorKind::Unavailable));
        assert!(f.node_status("pve9").is_err());
    }

    #[test]
    fn ha_resources_are_kept_and_purged_with_the_container() {
        let f = fake(8);
        create(&f, 101, false);
        let add = HaResourceAdd {
            vmid: 101,
            state: HaState::Started,
            group: Some("olgroup".into()),
            comment: Some("orbitlab".into()),
        };
        f.ha_add(&add).expect("add");
        let err = f.ha_add(&add).expect_err("twice");
        assert_eq!(err.kind(), Some(&ApiErrorKind::AlreadyExists));
        let missing = HaResourceAdd {
            vmid: 999,
            ..add.clone()
        };
        assert_eq!(
            f.ha_add(&missing).expect_err("no CT").kind(),
            Some(&ApiErrorKind::NotFound)
        );
        let listed = Pve::ha_resources(&f).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].vmid(),
                listed[0].state.as_deref(),
                listed[0].group.as_deref()
            ),
            (Some(101), Some("started"), Some("olgroup"))
        );
        let err = f.lxc_delete("pve1", 101, false).expect_err("HA managed");
        assert!(api_message(&err).1.contains("purge parameter not set"));
        f.lxc_delete("pve1", 101, true).expect("purged");
        assert!(FakePve::ha_resources(&f).is_empty());
        create(&f, 102, false);
        f.ha_add(&HaResourceAdd {
            vmid: 102,
            group: None,
            ..add.clone()
        })
        .expect("add");
        f.ha_remove("ct:102").expect("remove");
        let err = f.ha_remove("ct:102").expect_err("gone");
        assert!(api_message(&err).1.contains("not HA managed"));
        assert!(FakePve::ha_resources(&f).is_empty());
    }

    #[test]
    fn nine_refuses_ha_groups_before_sending() {
        let f = fake(9);
        create(&f, 101, false);
        let add = HaResourceAdd {
            vmid: 101,
            state: HaState::Stopped,
            group: Some("olgroup".into()),
            comment: None,
        };
        let err = f.ha_add(&add).expect_err("group on 9");
        assert!(matches!(err, PveError::Config(_)), "{err}");
        f.ha_add(&HaResourceAdd { group: None, ..add })
            .expect("add without group");
        assert_eq!(
            FakePve::ha_resources(&f)["ct:101"].state.as_deref(),
            Some("stopped")
        );
    }
}

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
//! [`FakePve::destroy_by_hand`], [`FakePve::create_by_hand`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::api::Pve;
use super::error::{ApiErrorKind, PveError, Result};
use super::lxc::{LxcConfig, LxcCreate, LxcStatus};
use super::sdn::{SdnCollection, SdnKind, SdnLock, SdnLockToken, SdnSpec};
use super::types::{ClusterStatusEntry, NetworkInterface, NodeSummary, Release, TaskStatus, Upid};

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
                lock: None,
                locks_taken: 0,
                tasks: 0,
                stolen: Vec::new(),
                calls: Vec::new(),
            }),
        }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call(&self, what: String) -> MutexGuard<'_, State> {
        let mut st = self.st();
        st.calls.push(what);
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
        const READS: [&str; 8] = [
            "release",
            "nodes",
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
        };
        let previous = self.st().guests.insert(vmid, guest);
        assert!(previous.is_none(), "container {vmid} exists already");
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
        typed(
            json!([{"iface": "vmbr0", "type": "bridge", "cidr": addr, "mtu": "1500", "active": 1}]),
        )
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
                })
            })
            .collect();
        typed(Value::Array(guests))
    }

    fn lxc_create(&self, node: &str, req: &LxcCreate) -> Result<Upid> {
        let vmid = req.vmid;
        let mut st = self.call(format!("lxc_create {node} {vmid}"));
        Self::reach(&st, "POST", &format!("/nodes/{node}/lxc"), node)?;
        if let Some(i) = st.stolen.iter().position(|v| *v == vmid) {
            st.stolen.remove(i);
            let outsider = Guest {
                node: node.to_owned(),
                config: BTreeMap::from([("hostname".to_owned(), Value::from("outsider"))]),
                running: false,
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
        let config = req
            .params()
            .into_iter()
            .filter(|(k, _)| k != "vmid" && k != "ostemplate" && k != "start")
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        st.guests.insert(
            vmid,
            Guest {
                node: node.to_owned(),
                config,
                running: req.start == Some(true),
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
            .map(|g| LxcConfig(g.config.clone()))
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

    fn lxc_delete(&self, node: &str, vmid: u32, _purge: bool) -> Result<Upid> {
        let mut st = self.call(format!("lxc_delete {node} {vmid}"));
        Self::reach(&st, "DELETE", &format!("/nodes/{node}/lxc/{vmid}"), node)?;
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

impl FakePve {
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

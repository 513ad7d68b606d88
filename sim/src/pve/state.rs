//! The simulated cluster's state: nodes, SDN (running and pending), guests,
//! tasks, HA resources, storage content, auth sessions. Everything lives in
//! memory behind one mutex (see `server.rs`); `files.rs` mirrors the node
//! list and guest list into a pmxcfs-like directory when asked to.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use super::schema::PveVersion;

/// A JSON object as stored for one SDN object or HA resource.
pub type Obj = Map<String, Value>;

/// One simulated node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    /// Corosync node id (1-based).
    pub nodeid: u32,
    /// Address of `vmbr0` (also the cluster address).
    pub ip: Ipv4Addr,
    /// Prefix length of `vmbr0`'s address.
    pub prefix: u8,
    /// MTU of `vmbr0`.
    pub mtu: u32,
    /// Whether the node is online (a dropped node is not).
    pub online: bool,
    /// Total memory (bytes).
    pub memory_total: u64,
    /// Memory the host uses itself (bytes); running containers add theirs.
    pub memory_base: u64,
    /// Logical CPUs.
    pub cpus: u32,
    /// DNS settings (`GET /nodes/{node}/dns`).
    pub dns: NodeDns,
}

/// A node's DNS settings, as Proxmox reads them from its
/// `/etc/resolv.conf`: up to three name servers (any address text: IPv4,
/// IPv6, a loopback stub) and a search domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeDns {
    /// `dns1`, `dns2`, `dns3` in order (at most [`MAX_NODE_DNS_SERVERS`]).
    pub servers: Vec<String>,
    /// `search`.
    pub search: Option<String>,
}

/// Name servers a Proxmox node's DNS settings hold.
pub const MAX_NODE_DNS_SERVERS: usize = 3;

impl NodeDns {
    /// A node's DNS settings unless set through the control API: the
    /// router of its network (`.1`) and a public resolver, search domain
    /// `lab.example`. Neither is loopback, so a Sector DNS on the node can
    /// forward to them.
    pub fn default_for(ip: Ipv4Addr, prefix: u8) -> Self {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let router = Ipv4Addr::from((u32::from(ip) & mask) | 1);
        NodeDns {
            servers: vec![router.to_string(), "9.9.9.9".into()],
            search: Some("lab.example".into()),
        }
    }
}

/// A node's memory unless set through the control API: 64 GiB.
pub const DEFAULT_NODE_MEMORY: u64 = 64 << 30;
/// What a node's host uses of its memory: 2 GiB.
pub const NODE_BASE_MEMORY: u64 = 2 << 30;
/// A node's logical CPUs unless set through the control API.
pub const DEFAULT_NODE_CPUS: u32 = 16;

/// SDN objects of one configuration (running or current).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SdnConfig {
    /// Controllers by id.
    pub controllers: BTreeMap<String, Obj>,
    /// Zones by id.
    pub zones: BTreeMap<String, Obj>,
    /// VNets by id.
    pub vnets: BTreeMap<String, Obj>,
    /// Subnets by id (`<zone>-<ip>-<mask>`).
    pub subnets: BTreeMap<String, Obj>,
}

/// The SDN state: what is applied and what is configured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SdnState {
    /// Applied configuration.
    pub running: SdnConfig,
    /// Configuration including pending edits.
    pub current: SdnConfig,
    /// The 9.x global SDN lock token, when taken.
    pub lock_token: Option<String>,
}

/// Power state of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Not running.
    Stopped,
    /// Running.
    Running,
}

/// One container.
#[derive(Debug, Clone, Serialize)]
pub struct Guest {
    /// Node the container lives on.
    pub node: String,
    /// Power state.
    pub status: PowerState,
    /// Config keys as Proxmox stores them.
    pub config: BTreeMap<String, String>,
    /// Config lock (`create`, `destroyed`...), if any.
    pub lock: Option<String>,
    /// The config file's version (`.vmlist`): as in pmxcfs's database,
    /// taken from one cluster-wide counter on every write, so a config
    /// recreated under the same VMID never repeats an earlier version.
    pub version: u64,
    /// When it last started (its `uptime` counts from there).
    #[serde(skip)]
    pub started: Option<std::time::Instant>,
    /// The config version it was made with: which container this is
    /// (a VMID is reused once its container is destroyed; this never is).
    #[serde(default)]
    pub created: u64,
}

impl Guest {
    /// Sets the power state; a start (from stopped) restarts the uptime.
    pub fn set_status(&mut self, status: PowerState) {
        match status {
            PowerState::Running if self.status != PowerState::Running => {
                self.started = Some(std::time::Instant::now());
            }
            PowerState::Running => {}
            _ => self.started = None,
        }
        self.status = status;
    }

    /// Seconds since it started (0 when not running).
    pub fn uptime(&self) -> u64 {
        match (self.status, self.started) {
            (PowerState::Running, Some(t)) => t.elapsed().as_secs(),
            _ => 0,
        }
    }
}

/// What a task does to the state when it ends.
#[derive(Debug, Clone, Serialize)]
pub enum Effect {
    /// Nothing beyond the task itself.
    None,
    /// A disk resized: its `size=` set on success.
    Resize {
        /// The container.
        vmid: u32,
        /// `rootfs`, `mp0`...
        disk: String,
        /// The new size, as Proxmox writes it (`10G`).
        size: String,
    },
    /// A container being created: unlocked (and started if asked) on
    /// success, removed on failure.
    Create {
        /// The container.
        vmid: u32,
        /// Start it once created.
        start: bool,
    },
    /// Container power change on success.
    Power(u32, PowerState),
    /// Container removed on success.
    Destroy(u32),
    /// A volume disappears from a storage on success.
    RemoveVolume {
        /// Node of the storage.
        node: String,
        /// The storage.
        storage: String,
        /// `storage:content/name`.
        volid: String,
    },
    /// A volume appears on a storage on success.
    AddVolume {
        /// Node.
        node: String,
        /// Storage id.
        storage: String,
        /// The new volume.
        volume: Volume,
    },
}

/// A worker task.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// The task's UPID.
    pub upid: String,
    /// Node it runs on.
    pub node: String,
    /// Task type (`vzcreate`, `reloadnetworkall`...).
    pub kind: String,
    /// Object id (vmid...).
    pub id: String,
    /// Who started it.
    pub user: String,
    /// Start time (Unix seconds).
    pub starttime: u64,
    #[serde(skip)]
    started: Instant,
    /// How long it runs.
    pub duration: Duration,
    /// `None` while running; `Some("OK")` or the failure message after.
    pub exitstatus: Option<String>,
    /// When it ended (Unix seconds), once it has.
    #[serde(default)]
    pub endtime: Option<u64>,
    /// Planned failure message, if the task is to fail.
    pub fail_with: Option<String>,
    /// What happens when it ends.
    pub effect: Effect,
}

/// One volume on a storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    /// Volume id (`local:vztmpl/debian-12.tar.zst`).
    pub volid: String,
    /// Content type (`vztmpl`, `iso`, `rootdir`...).
    pub content: String,
    /// Size in bytes.
    pub size: u64,
    /// Format (`tzst`, `raw`...).
    pub format: String,
    /// The file holding its bytes, when the simulator keeps them
    /// ([`crate::pve::SimConfig::volume_files`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

/// One simulated storage on one node.
#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    /// Storage type (`dir`, `lvmthin`).
    pub kind: String,
    /// Allowed content types.
    pub content: Vec<String>,
    /// Volumes.
    pub volumes: Vec<Volume>,
}

/// A ticket session.
#[derive(Debug, Clone)]
pub struct Session {
    /// `user@realm`.
    pub user: String,
}

/// Users, roles, API tokens and the ACL made through the `/access` API
/// (`user.cfg` on a real cluster). Users and tokens given in the
/// simulator's configuration are not here (see `endpoints/access.rs`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessState {
    /// Roles made through the API, by id: their privileges.
    pub roles: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Users made through the API, by `name@realm`.
    pub users: BTreeMap<String, UserEntry>,
    /// API tokens made through the API, by `user@realm!name`.
    pub tokens: BTreeMap<String, TokenEntry>,
    /// The access control list, in the order entries were made.
    pub acl: Vec<AclEntry>,
}

/// A user made through the API.
#[derive(Clone, Default, Serialize)]
pub struct UserEntry {
    /// Free text.
    pub comment: Option<String>,
    /// Whether the account may be used.
    pub enable: bool,
    /// The password it logs in with, when one was set (`password` of
    /// `POST /access/users`; never serialised, never printed).
    #[serde(skip)]
    pub password: Option<String>,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("comment", &self.comment)
            .field("enable", &self.enable)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// An API token made through the API.
#[derive(Clone, Serialize)]
pub struct TokenEntry {
    /// Free text.
    pub comment: Option<String>,
    /// Privilege separation: the token holds only what its own ACL
    /// entries grant (and its user holds too).
    pub privsep: bool,
    /// Expiry (seconds since the epoch; 0: never).
    pub expire: i64,
    /// The secret (never serialised, never printed).
    #[serde(skip)]
    pub secret: String,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("comment", &self.comment)
            .field("privsep", &self.privsep)
            .field("expire", &self.expire)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// Whom an ACL entry grants a role to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AclKind {
    /// A user (`name@realm`).
    User,
    /// A group.
    Group,
    /// An API token (`user@realm!name`).
    Token,
}

/// One ACL entry: a role granted on a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclEntry {
    /// The path (`/`, `/vms/100`...).
    pub path: String,
    /// User, group or token.
    #[serde(rename = "type")]
    pub kind: AclKind,
    /// Its id.
    pub ugid: String,
    /// The role.
    pub roleid: String,
    /// Whether the grant also holds below the path.
    pub propagate: bool,
}

/// The whole simulated cluster.
#[derive(Debug, Serialize)]
pub struct ClusterState {
    /// Version served.
    pub version: PveVersion,
    /// Cluster name.
    pub cluster_name: String,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeState>,
    /// SDN.
    pub sdn: SdnState,
    /// Containers by vmid.
    pub guests: BTreeMap<u32, Guest>,
    /// Tasks by UPID.
    pub tasks: BTreeMap<String, Task>,
    /// HA resources by sid (`ct:100`).
    pub ha: BTreeMap<String, Obj>,
    /// Storages by (node, storage id).
    pub storage: BTreeMap<String, BTreeMap<String, Storage>>,
    /// Default task duration.
    pub task_duration: Duration,
    /// Planned task failures: (task type or `*`, message), used once each.
    pub task_failures: Vec<(String, String)>,
    /// Users, roles, tokens and ACL made through the API.
    pub access: AccessState,
    #[serde(skip)]
    pub(crate) sessions: BTreeMap<String, Session>,
    #[serde(skip)]
    pub(crate) pid_counter: u32,
    /// Bumped on every change to guests (`.vmlist` version).
    pub vmlist_version: u64,
    /// The last version given to a guest config ([`ClusterState::next_config_version`]).
    pub config_version: u64,
    /// Bumped on every change to nodes (`.members` version).
    pub members_version: u64,
    /// Where uploaded volumes' bytes are kept, if anywhere.
    #[serde(skip)]
    pub volume_files: Option<std::path::PathBuf>,
    /// Simulated CPU use of running containers, by host-name prefix
    /// (`web-` → 0.9): a fraction of their cores (`POST /_sim/load`).
    pub loads: BTreeMap<String, f64>,
}

impl ClusterState {
    /// The CPU use a running container `g` reports: the load of the
    /// longest host-name prefix that matches, else 0.
    pub fn cpu_of(&self, g: &Guest) -> f64 {
        let Some(name) = g.config.get("hostname") else {
            return 0.0;
        };
        self.loads
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(0.0, |(_, load)| *load)
    }

    /// The running container with address `addr` on `net0`, by VMID.
    pub fn guest_at(&self, addr: &str) -> Option<(u32, &Guest)> {
        self.guests.iter().map(|(v, g)| (*v, g)).find(|(_, g)| {
            g.config.get("net0").is_some_and(|net| {
                net.split(',').any(|kv| {
                    kv.strip_prefix("ip=").and_then(|ip| ip.split('/').next()) == Some(addr)
                })
            })
        })
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The template every node's `local` storage starts with.
pub const DEFAULT_TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/// The version of OrbitLab's appliance templates of this release
/// (`appliances/VERSION`).
pub const APPLIANCE_VERSION: &str = "1.1.0";

/// OrbitLab's appliance templates of this release, on every simulated
/// node's `local` storage as if `orbitlab appliance build` had run there.
pub const APPLIANCE_TEMPLATES: [&str; 2] = [
    "local:vztmpl/orbitlab-dns_1.1.0_amd64.tar.zst",
    "local:vztmpl/orbitlab-gateway_1.1.0_amd64.tar.zst",
];

impl ClusterState {
    /// A fresh cluster of these nodes.
    pub fn new(nodes: &[String], version: PveVersion, task_duration: Duration, mtu: u32) -> Self {
        let mut map = BTreeMap::new();
        let mut storage = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            let idx = u8::try_from(i + 11).unwrap_or(u8::MAX);
            map.insert(
                n.clone(),
                NodeState {
                    nodeid: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    ip: Ipv4Addr::new(192, 168, 100, idx),
                    prefix: 24,
                    mtu,
                    online: true,
                    memory_total: DEFAULT_NODE_MEMORY,
                    memory_base: NODE_BASE_MEMORY,
                    cpus: DEFAULT_NODE_CPUS,
                    dns: NodeDns::default_for(Ipv4Addr::new(192, 168, 100, idx), 24),
                },
            );
            let mut st = BTreeMap::new();
            st.insert(
                "local".to_string(),
                Storage {
                    kind: "dir".into(),
                    content: vec![
                        "vztmpl".into(),
                        "iso".into(),
                        "backup".into(),
                        "import".into(),
                    ],
                    volumes: [(DEFAULT_TEMPLATE, 126_000_000)]
                        .into_iter()
                        .chain(APPLIANCE_TEMPLATES.map(|t| (t, 30_000_000)))
                        .map(|(volid, size)| Volume {
                            volid: volid.into(),
                            content: "vztmpl".into(),
                            size,
                            format: "tzst".into(),
                            file: None,
                        })
                        .collect(),
                },
            );
            st.insert(
                "local-lvm".to_string(),
                Storage {
                    kind: "lvmthin".into(),
                    content: vec!["rootdir".into(), "images".into()],
                    volumes: Vec::new(),
                },
            );
            storage.insert(n.clone(), st);
        }
        ClusterState {
            version,
            cluster_name: "orbitlab".into(),
            nodes: map,
            sdn: SdnState::default(),
            guests: BTreeMap::new(),
            loads: BTreeMap::new(),
            tasks: BTreeMap::new(),
            ha: BTreeMap::new(),
            storage,
            task_duration,
            task_failures: Vec::new(),
            access: AccessState::default(),
            sessions: BTreeMap::new(),
            pid_counter: 1000,
            vmlist_version: 1,
            config_version: 0,
            members_version: 1,
            volume_files: None,
        }
    }

    /// The version of a guest config written now.
    /// What Proxmox HA does once a dead node is fenced: every HA-managed
    /// container on an offline node is recovered on the first online node
    /// (by name), started unless its HA state is `stopped`. Returns
    /// `(vmid, from, to)` of each move.
    pub fn recover_ha(&mut self) -> Vec<(u32, String, String)> {
        let Some(target) = self
            .nodes
            .iter()
            .find(|(_, n)| n.online)
            .map(|(name, _)| name.clone())
        else {
            return Vec::new();
        };
        let mut moved = Vec::new();
        let managed: Vec<(u32, bool)> = self
            .ha
            .iter()
            .filter_map(|(sid, o)| {
                let vmid = sid.strip_prefix("ct:")?.parse().ok()?;
                let stopped = o.get("state").and_then(|v| v.as_str()) == Some("stopped");
                Some((vmid, !stopped))
            })
            .collect();
        for (vmid, start) in managed {
            let version = self.next_config_version();
            let offline = |node: &str| self.nodes.get(node).is_none_or(|n| !n.online);
            let Some(from) = self
                .guests
                .get(&vmid)
                .map(|g| g.node.clone())
                .filter(|n| offline(n))
            else {
                continue;
            };
            if let Some(g) = self.guests.get_mut(&vmid) {
                g.node = target.clone();
                g.set_status(PowerState::Stopped);
                if start {
                    g.set_status(PowerState::Running);
                }
                g.version = version;
            }
            moved.push((vmid, from, target.clone()));
        }
        if !moved.is_empty() {
            self.vmlist_version += 1;
        }
        moved
    }

    /// Storage `storage` of `node`.
    fn storage_mut(&mut self, node: &str, storage: &str) -> Option<&mut Storage> {
        self.storage.get_mut(node).and_then(|s| s.get_mut(storage))
    }

    pub fn next_config_version(&mut self) -> u64 {
        self.config_version += 1;
        self.config_version
    }

    /// Whether a majority of nodes is online.
    pub fn quorate(&self) -> bool {
        let online = self.nodes.values().filter(|n| n.online).count();
        online * 2 > self.nodes.len()
    }

    /// Start a task; returns its UPID.
    pub fn start_task(
        &mut self,
        node: &str,
        kind: &str,
        id: &str,
        user: &str,
        effect: Effect,
    ) -> String {
        self.pid_counter += 1;
        let starttime = unix_now();
        let pid = self.pid_counter;
        let upid = format!(
            "UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:",
            pstart = pid * 7
        );
        let fail_with = self
            .task_failures
            .iter()
            .position(|(k, _)| k == kind || k == "*")
            .map(|i| self.task_failures.remove(i).1);
        self.tasks.insert(
            upid.clone(),
            Task {
                upid: upid.clone(),
                node: node.to_string(),
                kind: kind.to_string(),
                id: id.to_string(),
                user: user.to_string(),
                starttime,
                started: Instant::now(),
                duration: self.task_duration,
                exitstatus: None,
                endtime: None,
                fail_with,
                effect,
            },
        );
        self.tick();
        upid
    }

    /// Finish every task whose time is up; returns whether anything changed.
    pub fn tick(&mut self) -> bool {
        let now = Instant::now();
        let done: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.exitstatus.is_none() && now.duration_since(t.started) >= t.duration)
            .map(|t| t.upid.clone())
            .collect();
        for upid in &done {
            let Some(task) = self.tasks.get_mut(upid) else {
                continue;
            };
            let ok = task.fail_with.is_none();
            task.exitstatus = Some(task.fail_with.clone().unwrap_or_else(|| "OK".into()));
            task.endtime = Some(unix_now());
            let effect = task.effect.clone();
            self.finish(effect, ok);
        }
        !done.is_empty()
    }

    fn finish(&mut self, effect: Effect, ok: bool) {
        match effect {
            Effect::None => {}
            Effect::Create { vmid, start } => {
                if ok {
                    let version = self.next_config_version();
                    if let Some(g) = self.guests.get_mut(&vmid) {
                        g.lock = None;
                        g.version = version;
                        if start {
                            g.set_status(PowerState::Running);
                        }
                    }
                } else {
                    self.guests.remove(&vmid);
                }
                self.vmlist_version += 1;
            }
            Effect::Resize { vmid, disk, size } => {
                let version = self.next_config_version();
                if let (true, Some(g)) = (ok, self.guests.get_mut(&vmid))
                    && let Some(value) = g.config.get(&disk)
                {
                    let resized = with_size(value, &size);
                    g.config.insert(disk, resized);
                    g.version = version;
                }
                self.vmlist_version += 1;
            }
            Effect::Power(vmid, st) => {
                if let (true, Some(g)) = (ok, self.guests.get_mut(&vmid)) {
                    g.set_status(st);
                }
            }
            Effect::Destroy(vmid) => {
                if ok {
                    self.guests.remove(&vmid);
                    self.ha.remove(&format!("ct:{vmid}"));
                } else if let Some(g) = self.guests.get_mut(&vmid) {
                    g.lock = None;
                }
                self.vmlist_version += 1;
            }
            Effect::RemoveVolume {
                node,
                storage,
                volid,
            } => {
                if let (true, Some(st)) = (ok, self.storage_mut(&node, &storage)) {
                    st.volumes.retain(|v| v.volid != volid);
                }
            }
            Effect::AddVolume {
                node,
                storage,
                volume,
            } => {
                if let (true, Some(st)) = (ok, self.storage_mut(&node, &storage)) {
                    st.volumes.retain(|v| v.volid != volume.volid);
                    st.volumes.push(volume);
                }
            }
        }
    }

    /// Memory used on `node` (bytes): the host's own plus the `memory`
    /// of its running containers, at most the total.
    pub fn node_memory_used(&self, node: &str) -> u64 {
        let Some(n) = self.nodes.get(node) else {
            return 0;
        };
        let guests: u64 = self
            .guests
            .values()
            .filter(|g| g.node == node && g.status == PowerState::Running)
            .map(|g| {
                g.config
                    .get("memory")
                    .and_then(|m| m.parse::<u64>().ok())
                    .unwrap_or(512)
                    << 20
            })
            .sum();
        (n.memory_base + guests).min(n.memory_total)
    }

    /// The node a guest lives on, if it exists.
    pub fn guest_node(&self, vmid: u32) -> Option<&str> {
        self.guests.get(&vmid).map(|g| g.node.as_str())
    }

    /// Every VNI or tag in use (vnet tags and EVPN VRF VXLAN ids) with its owner.
    pub fn vnis_in_use(&self) -> BTreeMap<i64, String> {
        let mut out = BTreeMap::new();
        let cfg = &self.sdn.current;
        for (id, z) in &cfg.zones {
            if let Some(n) = z.get("vrf-vxlan").and_then(Value::as_i64) {
                out.insert(n, format!("zone {id}"));
            }
        }
        for (id, v) in &cfg.vnets {
            if let Some(n) = v.get("tag").and_then(Value::as_i64) {
                out.insert(n, format!("vnet {id}"));
            }
        }
        out
    }
}

/// A mount point value (`local-lvm:vm-100-disk-0,size=8G`) with its
/// `size=` replaced (or added): the volume first, the options sorted, as
/// Proxmox prints it.
pub fn with_size(value: &str, size: &str) -> String {
    let mut parts = value.split(',');
    let volume = parts.next().unwrap_or_default();
    let size = format!("size={size}");
    let mut options: Vec<&str> = parts.filter(|p| !p.starts_with("size=")).collect();
    options.push(&size);
    options.sort_unstable();
    std::iter::once(volume)
        .chain(options)
        .collect::<Vec<_>>()
        .join(",")
}

/// Proxmox's `parse_size`: a number with an optional `K`/`M`/`G`/`T`
/// (powers of 1024); without a unit, bytes. `None` if malformed.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, power) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 1),
        b'M' => (&text[..text.len() - 1], 2),
        b'G' => (&text[..text.len() - 1], 3),
        b'T' => (&text[..text.len() - 1], 4),
        _ => (text, 0),
    };
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let bytes = value * 1024f64.powi(power);
    // Proxmox truncates to whole bytes (`int()`); sizes stay far below 2^53.
    Some(bytes as u64)
}

/// Proxmox's `format_size`: the largest unit that divides the size
/// exactly (`10G`, `10752M`, `512K`, or bytes).
pub fn format_size(bytes: u64) -> String {
    let mut value = bytes;
    for unit in ["", "K", "M", "G"] {
        if !value.is_multiple_of(1024) {
            return format!("{value}{unit}");
        }
        value /= 1024;
    }
    format!("{value}T")
}

//! Typed answers and requests of the general endpoints: version, cluster
//! status, nodes and their status, network interfaces, DNS settings,
//! tasks, HA resources, storage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::de;
use super::error::PveError;

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VersionInfo {
    /// Full version (`8.4.1`).
    pub version: String,
    /// Release (`8.4`).
    pub release: String,
    /// Build id.
    #[serde(default)]
    pub repoid: Option<String>,
}

/// A Proxmox VE release (major.minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Release {
    /// Whether the SDN lock API (`/cluster/sdn/lock`, `lock-token`) exists (9.x).
    pub fn has_sdn_lock(self) -> bool {
        self.major >= 9
    }

    /// Whether HA resources may name an HA group (8.x). 9.x replaced
    /// groups by HA rules and refuses `group` once they are migrated
    /// ("invalid parameter 'group': ha groups have been migrated to
    /// rules"), which a cluster without groups always is.
    pub fn has_ha_groups(self) -> bool {
        self.major < 9
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl VersionInfo {
    /// The release as numbers.
    pub fn parse_release(&self) -> Result<Release, PveError> {
        let src = if self.release.is_empty() {
            &self.version
        } else {
            &self.release
        };
        let mut it = src.split(['.', '-']);
        let major = it.next().and_then(|m| m.parse().ok());
        let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        major.map(|major| Release { major, minor }).ok_or_else(|| {
            PveError::Config(format!("cannot read the Proxmox VE release from '{src}'"))
        })
    }
}

/// One entry of `GET /cluster/status` (the cluster itself or a node).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterStatusEntry {
    /// `cluster` or `node`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Cluster or node name.
    pub name: String,
    /// Node id (nodes).
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub nodeid: Option<u32>,
    /// Cluster address (nodes).
    #[serde(default)]
    pub ip: Option<String>,
    /// Online (nodes).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub online: Option<bool>,
    /// Whether this is the node answering (nodes).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub local: Option<bool>,
    /// Quorate (cluster).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub quorate: Option<bool>,
    /// Node count (cluster).
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub nodes: Option<u32>,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeSummary {
    /// Node name.
    pub node: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
}

/// A node's DNS settings (`GET /nodes/{node}/dns`): what its
/// `/etc/resolv.conf` says, as Proxmox reads it. Every field is optional;
/// the name servers are text as written there (IPv4, IPv6, or a loopback
/// stub such as systemd-resolved's `127.0.0.53`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NodeDns {
    /// First name server.
    #[serde(default)]
    pub dns1: Option<String>,
    /// Second name server.
    #[serde(default)]
    pub dns2: Option<String>,
    /// Third name server.
    #[serde(default)]
    pub dns3: Option<String>,
    /// Search domain.
    #[serde(default)]
    pub search: Option<String>,
}

impl NodeDns {
    /// The name servers given, in order (`dns1`, `dns2`, `dns3`), blank
    /// ones left out.
    pub fn servers(&self) -> Vec<&str> {
        [&self.dns1, &self.dns2, &self.dns3]
            .into_iter()
            .filter_map(|s| s.as_deref().map(str::trim))
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// One network interface of a node (`GET /nodes/{node}/network`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInterface {
    /// Interface name (`vmbr0`).
    pub iface: String,
    /// `bridge`, `eth`, `bond`...
    #[serde(rename = "type")]
    pub kind: String,
    /// IPv4 address.
    #[serde(default)]
    pub address: Option<String>,
    /// IPv4 netmask.
    #[serde(default)]
    pub netmask: Option<String>,
    /// Address with prefix (`192.168.100.11/24`).
    #[serde(default)]
    pub cidr: Option<String>,
    /// Default gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// MTU, if configured.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub mtu: Option<u32>,
    /// Bridge ports.
    #[serde(default)]
    pub bridge_ports: Option<String>,
    /// Whether the interface is up.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
}

/// A task id (`UPID:node:pid:pstart:starttime:type:id:user:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Upid(String);

impl Upid {
    /// The node the task runs on.
    pub fn node(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }
    /// The task type (`vzcreate`...).
    pub fn kind(&self) -> &str {
        self.0.split(':').nth(5).unwrap_or_default()
    }
    /// The UPID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Upid {
    type Err = PveError;
    fn from_str(s: &str) -> Result<Self, PveError> {
        let parts: Vec<&str> = s.split(':').collect();
        let ok = parts.len() >= 8
            && parts[0] == "UPID"
            && !parts[1].is_empty()
            && !s
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '/');
        if ok {
            Ok(Upid(s.to_string()))
        } else {
            Err(PveError::Config(format!(
                "'{s}' is not a Proxmox task id (UPID:node:...)"
            )))
        }
    }
}

impl TryFrom<String> for Upid {
    type Error = PveError;
    fn try_from(s: String) -> Result<Self, PveError> {
        s.parse()
    }
}

impl From<Upid> for String {
    fn from(u: Upid) -> String {
        u.0
    }
}

/// Whether a task still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Still running.
    Running,
    /// Ended; see `exitstatus`.
    Stopped,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub upid: Upid,
    /// Node.
    pub node: String,
    /// Running or stopped.
    pub status: TaskState,
    /// `OK`, or the failure message, once stopped.
    #[serde(default)]
    pub exitstatus: Option<String>,
    /// Task type.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Who started it.
    #[serde(default)]
    pub user: Option<String>,
}

/// An HA resource (`GET /cluster/ha/resources`); keys it does not know
/// are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HaResource {
    /// Resource id (`ct:100`).
    pub sid: String,
    /// `ct` or `vm`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Requested state (`started`, `stopped`, `disabled`, `ignored`).
    #[serde(default)]
    pub state: Option<String>,
    /// HA group (deprecated on 9.x in favour of HA rules).
    #[serde(default)]
    pub group: Option<String>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Restart attempts.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub max_restart: Option<u32>,
    /// Relocation attempts.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub max_relocate: Option<u32>,
}

impl HaResource {
    /// The VMID of a container resource (`ct:123` → 123); `None` for VMs
    /// and anything else.
    pub fn vmid(&self) -> Option<u32> {
        self.sid.strip_prefix("ct:")?.parse().ok()
    }
}

/// The requested state of an HA resource, as the schema spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HaState {
    /// Keep it running.
    Started,
    /// Keep it stopped.
    Stopped,
    /// Managed but not acted on.
    Disabled,
    /// Not managed.
    Ignored,
}

impl HaState {
    /// The schema's word (`started`...).
    pub fn as_str(self) -> &'static str {
        match self {
            HaState::Started => "started",
            HaState::Stopped => "stopped",
            HaState::Disabled => "disabled",
            HaState::Ignored => "ignored",
        }
    }
}

/// `POST /cluster/ha/resources` for a container: sid `ct:<vmid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaResourceAdd {
    /// The container.
    pub vmid: u32,
    /// Requested state.
    pub state: HaState,
    /// HA group (8.x; deprecated on 9.x, where HA rules replace groups).
    pub group: Option<String>,
    /// Comment.
    pub comment: Option<String>,
}

impl HaResourceAdd {
    /// The resource id (`ct:<vmid>`).
    pub fn sid(&self) -> String {
        format!("ct:{}", self.vmid)
    }

    /// Refuses a group on a release without HA groups (9.x), before
    /// anything is sent.
    pub fn check_release(&self, release: Release) -> Result<(), PveError> {
        match &self.group {
            Some(g) if !release.has_ha_groups() => Err(PveError::Config(format!(
                "HA group '{g}' for {}: Proxmox VE {release} replaced HA groups by HA rules; \
                 leave the group out",
                self.sid()
            ))),
            _ => Ok(()),
        }
    }

    /// The form parameters.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("sid".to_string(), self.sid()),
            ("state".to_string(), self.state.as_str().to_string()),
        ];
        if let Some(g) = &self.group {
            p.push(("group".into(), g.clone()));
        }
        if let Some(c) = &self.comment {
            p.push(("comment".into(), c.clone()));
        }
        p
    }
}

/// What to set on an HA resource (add or update).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HaResourceSpec {
    /// Requested state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<HaState>,
    /// Comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Restart attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restart: Option<u32>,
    /// Relocation attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_relocate: Option<u32>,
}

/// `GET /nodes/{node}/status`: what placement needs of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// Total memory (bytes).
    pub memory_total: u64,
    /// Used memory (bytes).
    pub memory_used: u64,
    /// Free memory (bytes).
    pub memory_free: u64,
    /// CPU load, 0 to 1.
    pub cpu: f64,
    /// Logical CPUs (`cpuinfo.cpus`).
    pub cpus: u32,
}

impl NodeStatus {
    /// Free memory in MiB (rounded down).
    pub fn free_mib(&self) -> u64 {
        self.memory_free / (1024 * 1024)
    }
}

/// The wire shape of `GET /nodes/{node}/status` (only what we read).
#[derive(Debug, Deserialize)]
pub(crate) struct NodeStatusWire {
    memory: NodeMemoryWire,
    #[serde(default)]
    cpu: Option<f64>,
    cpuinfo: NodeCpuWire,
}

#[derive(Debug, Deserialize)]
struct NodeMemoryWire {
    #[serde(deserialize_with = "de::u64_any")]
    total: u64,
    #[serde(deserialize_with = "de::u64_any")]
    used: u64,
    #[serde(deserialize_with = "de::u64_any")]
    free: u64,
}

#[derive(Debug, Deserialize)]
struct NodeCpuWire {
    #[serde(deserialize_with = "de::u32_any")]
    cpus: u32,
}

impl From<NodeStatusWire> for NodeStatus {
    fn from(w: NodeStatusWire) -> Self {
        NodeStatus {
            memory_total: w.memory.total,
            memory_used: w.memory.used,
            memory_free: w.memory.free,
            cpu: w.cpu.unwrap_or(0.0),
            cpus: w.cpuinfo.cpus,
        }
    }
}

/// One volume on a storage (`GET .../storage/{storage}/content`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageVolume {
    /// Volume id (`local:vztmpl/debian-12.tar.zst`).
    pub volid: String,
    /// Content type.
    pub content: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// Format.
    #[serde(default)]
    pub format: Option<String>,
}

/// One template of the appliance index (`GET /nodes/{node}/aplinfo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApplianceTemplate {
    /// File name to pass to the download call.
    pub template: String,
    /// OS.
    #[serde(default)]
    pub os: Option<String>,
    /// Package name.
    #[serde(default)]
    pub package: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub version: Option<String>,
}

/// `POST /nodes/{node}/storage/{storage}/download-url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DownloadUrl {
    /// `http(s)://` URL.
    pub url: String,
    /// Target file name.
    pub filename: String,
    /// `vztmpl`, `iso` or `import`.
    pub content: String,
    /// Expected checksum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Checksum algorithm (`sha256`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
}

/// One storage a node can use (`GET /nodes/{node}/storage`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeStorage {
    /// Storage id (`local`).
    pub storage: String,
    /// Content types it takes, comma-separated (`vztmpl,iso,backup`).
    #[serde(default)]
    pub content: String,
    /// Shared between nodes: one copy of a volume serves every node.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Accessible now.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
}

impl NodeStorage {
    /// True when the storage takes `content` (`vztmpl`...).
    pub fn takes(&self, content: &str) -> bool {
        self.content.split(',').any(|c| c.trim() == content)
    }

    /// True when the storage is shared between nodes.
    pub fn is_shared(&self) -> bool {
        self.shared.unwrap_or(false)
    }
}

/// One volume's attributes (`GET /nodes/{node}/storage/{storage}/content/{volume}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VolumeAttributes {
    /// Where the volume is on that node (`/var/lib/vz/template/cache/...`).
    pub path: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// Format (`tzst`...).
    #[serde(default)]
    pub format: Option<String>,
}

/// A local file to put on a storage (`POST /nodes/{node}/storage/{storage}/upload`),
/// sent as `multipart/form-data` with `checksum-algorithm=sha256`: Proxmox
/// refuses the upload if the bytes it received have another SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUpload<'a> {
    /// `vztmpl`, `iso` or `import`.
    pub content: &'a str,
    /// The file on this machine.
    pub file: &'a std::path::Path,
    /// The name it gets on the storage (a plain file name).
    pub file_name: &'a str,
    /// The file's SHA-256, lower-case hex.
    pub sha256: &'a str,
}

//! Typed answers and requests of the general endpoints: version, cluster
//! status, nodes, network interfaces, tasks, HA resources, storage.

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

/// An HA resource (`GET /cluster/ha/resources`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HaResource {
    /// Resource id (`ct:100`).
    pub sid: String,
    /// `ct` or `vm`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Requested state.
    #[serde(default)]
    pub state: Option<String>,
    /// HA group (8.x).
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

/// The requested state of an HA resource.
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

//! `kind: Lxc` — a container instance placed in a Sector subnet: its
//! template and size, where it runs, and the SSH keys and password it gets
//! (both by reference; values live in the vault).
//!
//! Single-object rules: sizes in range, `node` and `placement` not both
//! set, no SSH key listed twice. References (Sector, subnet, SSH keys,
//! password Secret, fixed address) are resolved by [`crate::ManifestSet`].
//! Pure: no I/O.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::PlacementPolicy;
use super::files::{CertificateFiles, SecretFile, check_tmpfs};
use super::rules::{duplicates, within};
use crate::error::Problems;
use crate::names::{Name, NodeName, VolumeId};

/// The desired state of a container instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct LxcSpec {
    /// The Sector the instance lives in.
    #[garde(skip)]
    pub sector: Name,
    /// The subnet of that Sector; defaults to its first subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub subnet: Option<Name>,
    /// Container template, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    #[garde(skip)]
    pub template: VolumeId,
    /// CPU cores, 1–128.
    #[serde(default = "default_cores")]
    #[garde(custom(within(1u16, 128, "")))]
    pub cores: u16,
    /// Memory in MiB, 16–1048576.
    #[serde(default = "default_memory")]
    #[garde(custom(within(16u32, 1_048_576, " MiB")))]
    pub memory: u32,
    /// Root disk in GiB, 1–65536.
    #[serde(default = "default_disk")]
    #[garde(custom(within(1u32, 65_536, " GiB")))]
    pub disk: u32,
    /// Pin the instance to this Proxmox node (or use `placement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub node: Option<NodeName>,
    /// Only nodes whose Node manifest's labels match (`rack=b`,
    /// `gpu,zone in (a,b)`); with `placement` choosing among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub node_selector: Option<crate::selector::Selector>,
    /// Placement policy when `node` is absent; defaults to the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub placement: Option<PlacementPolicy>,
    /// SSH keys (names of `SshKey` objects) installed for root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub ssh_keys: Vec<Name>,
    /// Root password (name of a `Secret` object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub password: Option<Name>,
    /// Secrets delivered as files into the running container (each
    /// Secret must grant this instance read access).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub secrets: Vec<SecretFile>,
    /// Certificates delivered as files (certificate, chain, key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub certificates: Vec<CertificateFiles>,
    /// A fixed address inside the subnet; otherwise IPAM picks one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::cidr::opt_addr"
    )]
    #[garde(skip)]
    pub address: Option<Ipv4Addr>,
    /// `running` (default) or `stopped`: the power state OrbitLab keeps.
    #[serde(default, skip_serializing_if = "PowerState::is_running")]
    #[garde(skip)]
    pub state: PowerState,
    /// Start the container when its node boots (default true).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    #[garde(skip)]
    pub onboot: bool,
    /// Register the container as a Proxmox HA resource; while HA manages
    /// it, HA (not OrbitLab) decides where it runs and its power state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub ha: Option<HaSpec>,
}

/// Where an instance's `ssh_keys` are kept current (root's
/// `authorized_keys`, which OrbitLab owns while keys are declared).
pub const AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";

/// The power state OrbitLab keeps an instance in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Started, and started again when found stopped.
    #[default]
    Running,
    /// Stopped, and stopped again when found running.
    Stopped,
}

impl PowerState {
    fn is_running(&self) -> bool {
        *self == PowerState::Running
    }

    /// `running` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::Running => "running",
            PowerState::Stopped => "stopped",
        }
    }
}

/// The state an HA resource is asked to keep.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum HaResourceState {
    /// HA keeps it running, recovering it on another node when its node fails.
    #[default]
    Started,
    /// HA keeps it stopped.
    Stopped,
}

impl HaResourceState {
    /// `started` or `stopped`, as Proxmox spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HaResourceState::Started => "started",
            HaResourceState::Stopped => "stopped",
        }
    }
}

/// Proxmox HA for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaSpec {
    /// `started` (default) or `stopped`.
    #[serde(default)]
    pub state: HaResourceState,
    /// An existing HA group (Datacenter → HA → Groups) restricting nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Name>,
}

fn yes() -> bool {
    true
}

fn default_cores() -> u16 {
    1
}
fn default_memory() -> u32 {
    512
}
fn default_disk() -> u32 {
    8
}

impl LxcSpec {
    /// An instance in `sector` from `template` with default sizes
    /// (1 core, 512 MiB, 8 GiB) and automatic placement.
    pub fn new(sector: Name, template: VolumeId) -> Self {
        LxcSpec {
            sector,
            subnet: None,
            template,
            cores: default_cores(),
            memory: default_memory(),
            disk: default_disk(),
            node: None,
            node_selector: None,
            placement: None,
            ssh_keys: Vec::new(),
            password: None,
            secrets: Vec::new(),
            certificates: Vec::new(),
            address: None,
            state: PowerState::Running,
            onboot: true,
            ha: None,
        }
    }

    /// Every file the instance declares it receives, with its field:
    /// `(field, path)`.
    pub fn delivered_paths(&self) -> Vec<(String, &super::files::FilePath)> {
        let mut out = Vec::new();
        for (i, f) in self.secrets.iter().enumerate() {
            out.push((format!("secrets[{i}].path"), &f.path));
        }
        for (i, c) in self.certificates.iter().enumerate() {
            out.push((format!("certificates[{i}].cert"), &c.cert));
            out.push((format!("certificates[{i}].key"), &c.key));
            if let Some(chain) = &c.chain {
                out.push((format!("certificates[{i}].chain"), chain));
            }
        }
        out
    }

    fn check_files(&self, p: &mut Problems) {
        for (i, f) in self.secrets.iter().enumerate() {
            check_tmpfs(p, format!("secrets[{i}].path"), &f.path, f.on_disk);
        }
        for (i, c) in self.certificates.iter().enumerate() {
            check_tmpfs(p, format!("certificates[{i}].key"), &c.key, c.on_disk);
        }
        let paths = self.delivered_paths();
        let mut seen: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
        for (field, path) in &paths {
            if let Some(first) = seen.insert(path.as_str(), field) {
                p.push(
                    field.clone(),
                    format!("{path} is already delivered by {first}; give each file its own path"),
                );
            }
            if !self.ssh_keys.is_empty() && path.as_str() == AUTHORIZED_KEYS {
                p.push(
                    field.clone(),
                    format!("{AUTHORIZED_KEYS} holds the instance's ssh_keys; choose another path"),
                );
            }
        }
    }

    pub(crate) fn check(&self, p: &mut Problems) {
        self.check_files(p);
        if self.node.is_some() && self.node_selector.is_some() {
            p.push(
                "node_selector",
                "set either node (pin to one node) or node_selector, not both",
            );
        }
        if self.node.is_some() && self.placement.is_some() {
            p.push(
                "placement",
                "set either node (pin to one node) or placement, not both",
            );
        }
        if let Some(ha) = &self.ha {
            let agrees = matches!(
                (ha.state, self.state),
                (HaResourceState::Started, PowerState::Running)
                    | (HaResourceState::Stopped, PowerState::Stopped)
            );
            if !agrees {
                p.push(
                    "ha.state",
                    format!(
                        "HA state {} contradicts state {}; while HA manages the instance it keeps the power state, so make them agree",
                        ha.state.as_str(),
                        self.state.as_str()
                    ),
                );
            }
        }
        for (i, first) in duplicates(&self.ssh_keys, |k| k) {
            p.push(
                format!("ssh_keys[{i}]"),
                format!(
                    "SSH key {} is already listed at ssh_keys[{first}]; list each key once",
                    self.ssh_keys[i]
                ),
            );
        }
    }
}

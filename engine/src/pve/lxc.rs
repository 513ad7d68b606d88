//! Typed LXC requests and answers: create, config (read back as Proxmox
//! stores it), update, status.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::auth::Secret;
use super::de;

/// `POST /nodes/{node}/lxc`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LxcCreate {
    /// VMID (choose under a lock; `nextid` reserves nothing).
    pub vmid: u32,
    /// Template volume (`local:vztmpl/...`).
    pub ostemplate: String,
    /// Host name.
    pub hostname: Option<String>,
    /// Memory (MiB).
    pub memory: Option<u32>,
    /// Swap (MiB).
    pub swap: Option<u32>,
    /// CPU cores.
    pub cores: Option<u32>,
    /// Root disk (`local-lvm:4` allocates 4 GiB).
    pub rootfs: Option<String>,
    /// Default storage.
    pub storage: Option<String>,
    /// Network devices by index (`net0` = `name=eth0,bridge=...`).
    pub nets: BTreeMap<u8, String>,
    /// Tags (`;` separated).
    pub tags: Option<String>,
    /// Description (OrbitLab puts its marker here).
    pub description: Option<String>,
    /// Unprivileged container.
    pub unprivileged: Option<bool>,
    /// Features (`nesting=1,...`).
    pub features: Option<String>,
    /// DNS servers.
    pub nameserver: Option<String>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// Start at boot.
    pub onboot: Option<bool>,
    /// Start after creation.
    pub start: Option<bool>,
    /// SSH public keys for root.
    pub ssh_public_keys: Option<String>,
    /// Root password.
    pub password: Option<Secret>,
}

fn b(v: bool) -> String {
    u8::from(v).to_string()
}

impl LxcCreate {
    /// The form parameters (secrets included: only for sending).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("vmid".to_string(), self.vmid.to_string()),
            ("ostemplate".to_string(), self.ostemplate.clone()),
        ];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k.to_string(), v));
            }
        };
        opt("hostname", self.hostname.clone());
        opt("memory", self.memory.map(|v| v.to_string()));
        opt("swap", self.swap.map(|v| v.to_string()));
        opt("cores", self.cores.map(|v| v.to_string()));
        opt("rootfs", self.rootfs.clone());
        opt("storage", self.storage.clone());
        opt("tags", self.tags.clone());
        opt("description", self.description.clone());
        opt("unprivileged", self.unprivileged.map(b));
        opt("features", self.features.clone());
        opt("nameserver", self.nameserver.clone());
        opt("searchdomain", self.searchdomain.clone());
        opt("onboot", self.onboot.map(b));
        opt("start", self.start.map(b));
        opt("ssh-public-keys", self.ssh_public_keys.clone());
        opt(
            "password",
            self.password.as_ref().map(|s| s.expose().to_string()),
        );
        for (i, n) in &self.nets {
            p.push((format!("net{i}"), n.clone()));
        }
        p
    }
}

/// A container's config as Proxmox returns it (`GET .../config`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcConfig(pub BTreeMap<String, Value>);

impl LxcConfig {
    /// A key as text (numbers are printed).
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
    }
    /// Host name.
    pub fn hostname(&self) -> Option<String> {
        self.get("hostname")
    }
    /// Description.
    pub fn description(&self) -> Option<String> {
        self.get("description")
    }
    /// Tags, split.
    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .map(|t| {
                t.split([';', ',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Network devices by index.
    pub fn nets(&self) -> BTreeMap<u8, String> {
        self.0
            .keys()
            .filter_map(|k| k.strip_prefix("net").and_then(|n| n.parse::<u8>().ok()))
            .filter_map(|i| self.get(&format!("net{i}")).map(|v| (i, v)))
            .collect()
    }
    /// Digest to pass back on update (detects concurrent edits).
    pub fn digest(&self) -> Option<String> {
        self.get("digest")
    }
    /// Config lock (`create`, `backup`...).
    pub fn lock(&self) -> Option<String> {
        self.get("lock")
    }
}

/// `PUT /nodes/{node}/lxc/{vmid}/config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LxcUpdate {
    /// Keys to set.
    pub set: BTreeMap<String, String>,
    /// Keys to remove.
    pub delete: Vec<String>,
    /// Refuse the update if the config changed since this digest.
    pub digest: Option<String>,
}

impl LxcUpdate {
    /// The form parameters.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = self
            .set
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !self.delete.is_empty() {
            p.push(("delete".into(), self.delete.join(",")));
        }
        if let Some(d) = &self.digest {
            p.push(("digest".into(), d.clone()));
        }
        p
    }
}

/// Power state of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestState {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
}

/// `GET .../status/current` and the entries of `GET /nodes/{node}/lxc`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LxcStatus {
    /// VMID.
    #[serde(deserialize_with = "de::u32_any")]
    pub vmid: u32,
    /// Running or stopped.
    pub status: GuestState,
    /// Host name.
    #[serde(default)]
    pub name: Option<String>,
    /// Config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// The memory limit in bytes: the config's `memory` (Proxmox's default
    /// of 512 MiB when unset), running or not.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Seconds since it started (0 or absent when stopped).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// CPU use in thousandths of its cores (Proxmox's `cpu` fraction:
    /// 1000 = every core it may use is busy); absent when stopped.
    #[serde(default, deserialize_with = "de::opt_permille")]
    pub cpu: Option<u32>,
    /// Memory in use, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
}

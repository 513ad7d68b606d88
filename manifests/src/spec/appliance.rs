//! `kind: Appliance` — a container template built by this project and the
//! role it serves (Sector Gateway or Sector DNS). At most one Appliance per
//! role exists in a set. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::rules::within;
use crate::names::{Version, VolumeId};

/// What an appliance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplianceRole {
    /// The Sector Gateway (FRR + nftables).
    Gateway,
    /// The Sector DNS server (dnsmasq).
    Dns,
}

impl ApplianceRole {
    /// The YAML form (`gateway`, `dns`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApplianceRole::Gateway => "gateway",
            ApplianceRole::Dns => "dns",
        }
    }

    /// Every role.
    pub const ALL: [ApplianceRole; 2] = [ApplianceRole::Gateway, ApplianceRole::Dns];
}

impl std::str::FromStr for ApplianceRole {
    type Err = String;

    /// The YAML form back (`gateway`, `dns`).
    fn from_str(s: &str) -> Result<Self, String> {
        ApplianceRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not an appliance role (gateway, dns)"))
    }
}

/// The desired state of an appliance template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct ApplianceSpec {
    /// `gateway` or `dns`.
    #[garde(skip)]
    pub role: ApplianceRole,
    /// The template volume, e.g. `local:vztmpl/orbitlab-gateway_0.1.0_amd64.tar.zst`.
    #[garde(skip)]
    pub template: VolumeId,
    /// The appliance version built into that template.
    #[garde(skip)]
    pub version: Version,
    /// Memory per appliance container in MiB, 64–4096 (default 128).
    #[serde(default = "default_memory")]
    #[garde(custom(within(64u32, 4096, " MiB")))]
    pub memory: u32,
}

fn default_memory() -> u32 {
    128
}

impl ApplianceSpec {
    /// An appliance with the default 128 MiB of memory.
    pub fn new(role: ApplianceRole, template: VolumeId, version: Version) -> Self {
        ApplianceSpec {
            role,
            template,
            version,
            memory: default_memory(),
        }
    }
}

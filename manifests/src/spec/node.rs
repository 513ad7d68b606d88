//! `kind: Node` — per-node settings for one Proxmox node; the object's
//! name is the node's name. Nodes themselves are discovered from
//! `/etc/pve/.members`; this manifest only adjusts how OrbitLab uses one.
//! Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::rules::within_opt;
use crate::names::BridgeName;

/// Per-node settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Uplink bridge of this node when it differs from the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub uplink_bridge: Option<BridgeName>,
    /// Whether new instances may be placed here (`false` cordons the node;
    /// instances pinned to it are refused).
    #[serde(default = "yes")]
    #[garde(skip)]
    pub schedulable: bool,
    /// Most OrbitLab instances this node may run, 1–10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(custom(within_opt(1u32, 10_000, "")))]
    pub max_instances: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            uplink_bridge: None,
            schedulable: true,
            max_instances: None,
        }
    }
}

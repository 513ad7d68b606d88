//! Typed SDN objects (controllers, zones, vnets, subnets) and how they
//! read back with `pending=1&running=1`: the applied values at the top,
//! a `state` (`new`, `changed`, `deleted`) and the `pending` values.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::de;
use super::error::PveError;

/// Which kind of SDN object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SdnKind {
    /// `/cluster/sdn/controllers`.
    Controller,
    /// `/cluster/sdn/zones`.
    Zone,
    /// `/cluster/sdn/vnets`.
    Vnet,
    /// `/cluster/sdn/vnets/{vnet}/subnets`.
    Subnet,
}

impl SdnKind {
    /// The id parameter's name.
    pub fn id_key(self) -> &'static str {
        match self {
            SdnKind::Controller => "controller",
            SdnKind::Zone => "zone",
            SdnKind::Vnet => "vnet",
            SdnKind::Subnet => "subnet",
        }
    }
}

impl fmt::Display for SdnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id_key())
    }
}

/// A typed SDN configuration (one per kind).
pub trait SdnConfig: Serialize + DeserializeOwned + Clone + fmt::Debug + Default {
    /// The kind of object.
    const KIND: SdnKind;
}

macro_rules! sdn_config {
    ($(#[$m:meta])* $name:ident, $kind:expr, { $($(#[$fm:meta])* $field:ident : $ty:ty $(=> $de:literal)?),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "Option::is_none" $(, deserialize_with = $de)?)]
                pub $field: $ty,
            )*
        }
        impl SdnConfig for $name {
            const KIND: SdnKind = $kind;
        }
    };
}

sdn_config!(
    /// An SDN controller.
    ControllerConfig, SdnKind::Controller, {
    /// `evpn`, `bgp`, `isis`, `faucet`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// BGP AS number.
    asn: Option<u32> => "de::opt_u32",
    /// Peer addresses (comma separated).
    peers: Option<String>,
    /// eBGP.
    ebgp: Option<bool> => "de::opt_bool",
    /// eBGP multihop.
    ebgp_multihop: Option<u32> => "de::opt_u32",
    /// Loopback interface.
    loopback: Option<String>,
    /// Node (bgp/isis controllers).
    node: Option<String>,
});

sdn_config!(
    /// An SDN zone.
    ZoneConfig, SdnKind::Zone, {
    /// `simple`, `vlan`, `qinq`, `vxlan`, `evpn`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// VXLAN peers.
    peers: Option<String>,
    /// MTU.
    mtu: Option<u32> => "de::opt_u32",
    /// EVPN controller.
    controller: Option<String>,
    /// EVPN VRF VXLAN id.
    vrf_vxlan: Option<u32> => "de::opt_u32",
    /// EVPN exit nodes.
    exitnodes: Option<String>,
    /// Primary exit node.
    exitnodes_primary: Option<String>,
    /// Local routing on exit nodes.
    exitnodes_local_routing: Option<bool> => "de::opt_bool",
    /// Advertise subnets.
    advertise_subnets: Option<bool> => "de::opt_bool",
    /// Disable ARP/ND suppression.
    disable_arp_nd_suppression: Option<bool> => "de::opt_bool",
    /// Route targets to import.
    rt_import: Option<String>,
    /// Anycast MAC.
    mac: Option<String>,
    /// Nodes the zone exists on.
    nodes: Option<String>,
    /// IPAM plugin.
    ipam: Option<String>,
    /// Bridge (vlan/qinq zones).
    bridge: Option<String>,
    /// Service VLAN (qinq).
    tag: Option<u32> => "de::opt_u32",
    /// VXLAN UDP port.
    vxlan_port: Option<u32> => "de::opt_u32",
});

sdn_config!(
    /// An SDN vnet.
    VnetConfig, SdnKind::Vnet, {
    /// Always `vnet`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Zone.
    zone: Option<String>,
    /// VLAN tag or VXLAN VNI.
    tag: Option<u32> => "de::opt_u32",
    /// Alias (description).
    alias: Option<String>,
    /// VLAN aware.
    vlanaware: Option<bool> => "de::opt_bool",
    /// Isolate ports.
    isolate_ports: Option<bool> => "de::opt_bool",
});

sdn_config!(
    /// An SDN subnet. `cidr`, `network`, `mask` and `zone` are read-only.
    SubnetConfig, SdnKind::Subnet, {
    /// Always `subnet`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// VNet.
    vnet: Option<String>,
    /// Gateway address.
    gateway: Option<String>,
    /// Source NAT.
    snat: Option<bool> => "de::opt_bool",
    /// DNS zone prefix.
    dnszoneprefix: Option<String>,
    /// DHCP DNS server.
    dhcp_dns_server: Option<String>,
    /// The network (read back; never sent).
    cidr: Option<String>,
    /// Zone (read back; never sent).
    zone: Option<String>,
});

/// Pending state of an SDN object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PendingState {
    /// Created, not applied yet.
    New,
    /// Changed, not applied yet.
    Changed,
    /// Deleted, not applied yet.
    Deleted,
}

/// One SDN object as read with `pending=1&running=1`.
#[derive(Debug, Clone, PartialEq)]
pub struct SdnItem<C> {
    /// Object id.
    pub id: String,
    /// `None` when applied and unchanged.
    pub state: Option<PendingState>,
    /// The applied configuration (`None` for new objects).
    pub running: Option<C>,
    /// Pending values (`"deleted"` marks a removed key).
    pub pending: Map<String, Value>,
    top: Map<String, Value>,
}

impl<C: SdnConfig> SdnItem<C> {
    /// Read one object from Proxmox's answer.
    pub fn from_value(v: Value) -> Result<Self, String> {
        let Value::Object(mut top) = v else {
            return Err(format!("an SDN {} is not a JSON object", C::KIND));
        };
        let id = top
            .get(C::KIND.id_key())
            .and_then(Value::as_str)
            .ok_or_else(|| format!("an SDN {} without its id", C::KIND))?
            .to_string();
        let state = match top.remove("state") {
            None | Some(Value::Null) => None,
            Some(s) => Some(
                serde_json::from_value(s)
                    .map_err(|e| format!("SDN {} '{id}' state: {e}", C::KIND))?,
            ),
        };
        let pending = match top.remove("pending") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let running = if state == Some(PendingState::New) {
            None
        } else {
            Some(
                serde_json::from_value(Value::Object(top.clone()))
                    .map_err(|e| format!("SDN {} '{id}': {e}", C::KIND))?,
            )
        };
        Ok(SdnItem {
            id,
            state,
            running,
            pending,
            top,
        })
    }

    /// Whether the object has changes not applied yet.
    pub fn is_pending(&self) -> bool {
        self.state.is_some()
    }

    /// The configuration once everything pending is applied (`None` if the
    /// object is pending deletion).
    pub fn desired(&self) -> Result<Option<C>, PveError> {
        if self.state == Some(PendingState::Deleted) {
            return Ok(None);
        }
        let mut m = self.top.clone();
        for (k, v) in &self.pending {
            if v.as_str() == Some("deleted") && self.state != Some(PendingState::New) {
                m.remove(k);
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(Value::Object(m))
            .map(Some)
            .map_err(|e| PveError::Decode {
                method: "GET".into(),
                path: format!("/cluster/sdn ({} {})", C::KIND, self.id),
                message: e.to_string(),
            })
    }
}

/// What an SDN create or update sends: one object's configuration, of
/// any kind (a subnet with the vnet it belongs to).
#[derive(Debug, Clone, Copy)]
pub enum SdnSpec<'a> {
    /// A controller.
    Controller(&'a ControllerConfig),
    /// A zone.
    Zone(&'a ZoneConfig),
    /// A vnet.
    Vnet(&'a VnetConfig),
    /// A subnet of `vnet`.
    Subnet {
        /// The vnet.
        vnet: &'a str,
        /// The subnet.
        config: &'a SubnetConfig,
    },
}

/// Where the SDN objects of one kind live: `/cluster/sdn/controllers`,
/// `.../zones`, `.../vnets`, or the subnets of one vnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdnCollection<'a> {
    /// `/cluster/sdn/controllers`.
    Controllers,
    /// `/cluster/sdn/zones`.
    Zones,
    /// `/cluster/sdn/vnets`.
    Vnets,
    /// `/cluster/sdn/vnets/{vnet}/subnets`.
    Subnets(&'a str),
}

impl<'a> SdnCollection<'a> {
    /// The kind of the objects.
    pub fn kind(&self) -> SdnKind {
        match self {
            SdnCollection::Controllers => SdnKind::Controller,
            SdnCollection::Zones => SdnKind::Zone,
            SdnCollection::Vnets => SdnKind::Vnet,
            SdnCollection::Subnets(_) => SdnKind::Subnet,
        }
    }

    /// The vnet whose subnets these are.
    pub fn vnet(&self) -> Option<&'a str> {
        match *self {
            SdnCollection::Subnets(vnet) => Some(vnet),
            _ => None,
        }
    }
}

impl<'a> SdnSpec<'a> {
    /// Where the object lives.
    pub fn collection(&self) -> SdnCollection<'a> {
        match *self {
            SdnSpec::Controller(_) => SdnCollection::Controllers,
            SdnSpec::Zone(_) => SdnCollection::Zones,
            SdnSpec::Vnet(_) => SdnCollection::Vnets,
            SdnSpec::Subnet { vnet, .. } => SdnCollection::Subnets(vnet),
        }
    }

    /// The kind of object.
    pub fn kind(&self) -> SdnKind {
        self.collection().kind()
    }

    /// The configuration as Proxmox names it (kebab-case keys; unset
    /// fields absent).
    pub fn to_map(&self) -> Result<Map<String, Value>, PveError> {
        let value = match self {
            SdnSpec::Controller(c) => serde_json::to_value(c),
            SdnSpec::Zone(z) => serde_json::to_value(z),
            SdnSpec::Vnet(v) => serde_json::to_value(v),
            SdnSpec::Subnet { config, .. } => serde_json::to_value(config),
        };
        match value {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(PveError::Config(format!(
                "an SDN {} encodes as {other}, not an object",
                self.kind()
            ))),
            Err(e) => Err(PveError::Config(format!(
                "encoding an SDN {}: {e}",
                self.kind()
            ))),
        }
    }
}

/// The 9.x global SDN lock (`POST /cluster/sdn/lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdnLockToken(pub String);

/// The lock an SDN edit passes: the 9.x token, or `None` (8.x, where the
/// caller serialises edits through its own lock).
pub type SdnLock<'a> = Option<&'a SdnLockToken>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_views_read_back() {
        let v = json!({"zone": "z1", "type": "vxlan", "state": "new",
                       "pending": {"peers": "10.0.0.1", "mtu": 1450}});
        let item = SdnItem::<ZoneConfig>::from_value(v).expect("item");
        assert_eq!(item.state, Some(PendingState::New));
        assert!(item.running.is_none());
        let want = item.desired().expect("ok").expect("exists");
        assert_eq!(want.mtu, Some(1450));
        assert_eq!(want.kind.as_deref(), Some("vxlan"));
        let v = json!({"zone": "z1", "type": "vxlan", "peers": "10.0.0.1", "mtu": "1450",
                       "state": "changed", "pending": {"mtu": 1400, "peers": "deleted"}});
        let item = SdnItem::<ZoneConfig>::from_value(v).expect("item");
        assert_eq!(item.running.as_ref().and_then(|r| r.mtu), Some(1450));
        let want = item.desired().expect("ok").expect("exists");
        assert_eq!((want.mtu, want.peers), (Some(1400), None));
    }
}

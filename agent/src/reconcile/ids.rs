//! Names of the Proxmox objects OrbitLab creates, and the marker that lets a
//! restarted agent find what it already made.
//!
//! | object | id |
//! | --- | --- |
//! | EVPN controller | `orbitlab` |
//! | Backplane zone / VNet | `olbp` / `olbpnet` |
//! | Sector zone / VNet (tag 1001–9999) | `olz<tag>` / `olvn<tag>` |
//! | Sector Gateway / DNS container hostname | `olvn<tag>-router` / `olvn<tag>-dns` |
//!
//! SDN zones and subnets carry no free text, so they are recognised by id
//! prefix and by OrbitLab's tag reservations; VNets carry the marker in their
//! alias, containers in their description plus the tag `orbitlab`.

use std::fmt;
use std::str::FromStr;

use orbitlab_manifests::{Kind, Name};

/// The EVPN controller of the Backplane.
pub const CONTROLLER: &str = "orbitlab";
/// The Backplane's EVPN zone.
pub const BACKPLANE_ZONE: &str = "olbp";
/// The Backplane's VNet.
pub const BACKPLANE_VNET: &str = "olbpnet";
/// The Proxmox tag on every container OrbitLab creates.
pub const GUEST_TAG: &str = "orbitlab";

/// Zone id of the Sector with VNet tag `tag`.
pub fn sector_zone(tag: u32) -> String {
    format!("olz{tag}")
}

/// VNet id of the Sector with VNet tag `tag`.
pub fn sector_vnet(tag: u32) -> String {
    format!("olvn{tag}")
}

/// The tag of an OrbitLab Sector zone or VNet id, if it is one.
pub fn tag_of_sector_id(id: &str) -> Option<u32> {
    id.strip_prefix("olz")
        .or_else(|| id.strip_prefix("olvn"))
        .and_then(|t| t.parse().ok())
}

/// True for every SDN id OrbitLab owns.
pub fn is_ours(id: &str) -> bool {
    id == CONTROLLER
        || id == BACKPLANE_ZONE
        || id == BACKPLANE_VNET
        || tag_of_sector_id(id).is_some()
}

/// What part of an object a container plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Gateway,
    Dns,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Dns => "dns",
        }
    }

    /// The container's hostname in the Sector with VNet tag `tag`.
    pub fn hostname(self, tag: u32) -> String {
        match self {
            Role::Gateway => format!("{}-router", sector_vnet(tag)),
            Role::Dns => format!("{}-dns", sector_vnet(tag)),
        }
    }
}

/// `orbitlab:<kind>/<name>[/<role>]`: who a Proxmox object belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Marker {
    pub kind: Kind,
    pub name: Name,
    pub role: Option<Role>,
}

impl Marker {
    /// The marker of an object itself (a VNet's alias).
    pub fn object(kind: Kind, name: &Name) -> Self {
        Marker {
            kind,
            name: name.clone(),
            role: None,
        }
    }

    /// The marker of a container playing `role` for an object.
    pub fn part(kind: Kind, name: &Name, role: Role) -> Self {
        Marker {
            kind,
            name: name.clone(),
            role: Some(role),
        }
    }

    /// The IPAM owner string of this marker (`sector/web/gateway`).
    pub fn owner(&self) -> String {
        self.to_string().trim_start_matches("orbitlab:").to_owned()
    }

    /// Finds a marker in free text (a description may hold more lines).
    pub fn find_in(text: &str) -> Option<Self> {
        text.split_whitespace().find_map(|word| word.parse().ok())
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "orbitlab:{}/{}", self.kind.dir_name(), self.name)?;
        if let Some(role) = self.role {
            write!(f, "/{}", role.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Marker {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let rest = s.strip_prefix("orbitlab:").ok_or(())?;
        let mut parts = rest.split('/');
        let kind_dir = parts.next().ok_or(())?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.dir_name() == kind_dir)
            .ok_or(())?;
        let name: Name = parts.next().ok_or(())?.parse().map_err(drop)?;
        let role = match parts.next() {
            None => None,
            Some("gateway") => Some(Role::Gateway),
            Some("dns") => Some(Role::Dns),
            Some(_) => return Err(()),
        };
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Marker { kind, name, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fit_proxmox_limits() {
        for tag in [1001, 9999] {
            for id in [sector_zone(tag), sector_vnet(tag)] {
                assert!(
                    id.len() <= 8
                        && id
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                );
                assert_eq!(tag_of_sector_id(&id), Some(tag));
                assert!(is_ours(&id));
            }
        }
        assert!(!is_ours("myzone"));
        assert_eq!(Role::Gateway.hostname(1001), "olvn1001-router");
    }

    #[test]
    fn markers_round_trip_and_are_found_in_text() {
        let web: Name = "web".parse().unwrap();
        let m = Marker::part(Kind::Sector, &web, Role::Dns);
        assert_eq!(m.to_string(), "orbitlab:sector/web/dns");
        assert_eq!(m.owner(), "sector/web/dns");
        assert_eq!("orbitlab:sector/web/dns".parse::<Marker>(), Ok(m.clone()));
        assert_eq!(
            Marker::find_in("Managed by OrbitLab.\norbitlab:sector/web/dns\n"),
            Some(m)
        );
        for bad in [
            "orbitlab:sector",
            "orbitlab:vpc/web",
            "orbitlab:sector/web/x",
            "orbitlab:sector/We",
        ] {
            assert!(bad.parse::<Marker>().is_err(), "{bad}");
        }
    }
}

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
//! alias, containers in their description plus the tag `orbitlab`. An
//! appliance container's description also records the appliance version it
//! was made from (`appliance-version: 1.1.0`, [`appliance_version_line`]),
//! so that an upgrade is decided from what exists.

use std::fmt;
use std::str::FromStr;

use orbitlab_manifests::{ApplianceRole, Kind, Name};

use crate::ipam::Owner;
use crate::pve::{VnetId, ZoneId};

/// The EVPN controller of the Backplane.
pub const CONTROLLER: &str = "orbitlab";
/// The Proxmox tag on every container OrbitLab creates.
pub const GUEST_TAG: &str = "orbitlab";

/// The key of the description line recording an appliance container's
/// version.
const APPLIANCE_VERSION_KEY: &str = "appliance-version:";

/// The description line recording that a container runs appliance
/// `version`: `appliance-version: <version>`.
pub fn appliance_version_line(version: &str) -> String {
    format!("{APPLIANCE_VERSION_KEY} {version}")
}

/// The appliance version a container's description records, if any.
pub fn appliance_version_in(description: &str) -> Option<String> {
    description.lines().find_map(|line| {
        let version = line.trim().strip_prefix(APPLIANCE_VERSION_KEY)?.trim();
        (!version.is_empty()).then(|| version.to_owned())
    })
}

/// Parses an id this module spells; every spelling is checked by the tests.
fn known<T: FromStr>(id: &str) -> T
where
    T::Err: fmt::Debug,
{
    id.parse()
        .unwrap_or_else(|e| unreachable!("OrbitLab's own id {id:?} is invalid: {e:?}"))
}

/// The Backplane's EVPN zone, `olbp`.
pub fn backplane_zone() -> ZoneId {
    known("olbp")
}

/// The Backplane's VNet, `olbpnet`.
pub fn backplane_vnet() -> VnetId {
    known("olbpnet")
}

/// The VNet tag (VXLAN id) of a Sector: 1001–9999, so that its zone and
/// VNet ids (`olz<tag>`, `olvn<tag>`) fit Proxmox's 8 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectorTag(u32);

impl SectorTag {
    /// Every tag a Sector may use.
    pub const RANGE: std::ops::RangeInclusive<u32> = 1001..=9999;

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Every Sector tag, lowest first.
    pub fn all() -> impl Iterator<Item = SectorTag> {
        Self::RANGE.map(SectorTag)
    }
}

impl TryFrom<u32> for SectorTag {
    type Error = u32;

    /// Refuses (returning it) a number outside [`SectorTag::RANGE`].
    fn try_from(tag: u32) -> Result<Self, u32> {
        if Self::RANGE.contains(&tag) {
            Ok(SectorTag(tag))
        } else {
            Err(tag)
        }
    }
}

impl fmt::Display for SectorTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Zone id of the Sector with VNet tag `tag`.
pub fn sector_zone(tag: SectorTag) -> ZoneId {
    known(&format!("olz{tag}"))
}

/// VNet id of the Sector with VNet tag `tag`.
pub fn sector_vnet(tag: SectorTag) -> VnetId {
    known(&format!("olvn{tag}"))
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
        || backplane_zone() == *id
        || backplane_vnet() == *id
        || tag_of_sector_id(id).is_some()
}

/// The hostname of the container playing `role` in the Sector with VNet
/// tag `tag`: `olvn<tag>-router` or `olvn<tag>-dns`.
pub fn appliance_hostname(role: ApplianceRole, tag: SectorTag) -> String {
    match role {
        ApplianceRole::Gateway => format!("{}-router", sector_vnet(tag)),
        ApplianceRole::Dns => format!("{}-dns", sector_vnet(tag)),
    }
}

/// `orbitlab:<kind>/<name>[/<role>]`: who a Proxmox object belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Marker {
    pub kind: Kind,
    pub name: Name,
    pub role: Option<ApplianceRole>,
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
    pub fn part(kind: Kind, name: &Name, role: ApplianceRole) -> Self {
        Marker {
            kind,
            name: name.clone(),
            role: Some(role),
        }
    }

    /// The IPAM owner of this marker (`sector/web/gateway`).
    pub fn owner(&self) -> Owner {
        // A kind's directory, a DNS label and a role: always a valid owner
        // (`markers_round_trip_and_are_found_in_text` checks the longest).
        known(self.to_string().trim_start_matches("orbitlab:"))
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
            Some(role) => Some(role.parse::<ApplianceRole>().map_err(drop)?),
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
        assert_eq!(backplane_zone().as_str(), "olbp");
        assert_eq!(backplane_vnet().as_str(), "olbpnet");
        assert!(SectorTag::try_from(1000).is_err() && SectorTag::try_from(10_000).is_err());
        assert_eq!(SectorTag::all().count(), 8999);
        for tag in [1001, 9999] {
            let tag = SectorTag::try_from(tag).unwrap();
            for id in [sector_zone(tag).to_string(), sector_vnet(tag).to_string()] {
                assert!(
                    id.len() <= 8
                        && id
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                );
                assert_eq!(tag_of_sector_id(&id), Some(tag.get()));
                assert!(is_ours(&id));
            }
        }
        assert!(!is_ours("myzone"));
        assert_eq!(
            appliance_hostname(ApplianceRole::Gateway, SectorTag(1001)),
            "olvn1001-router"
        );
    }

    #[test]
    fn appliance_versions_round_trip_through_a_description() {
        let text = format!(
            "orbitlab:sector/web/dns\n{}\nManaged by OrbitLab.",
            appliance_version_line("1.1.0-rc.1+b2")
        );
        assert_eq!(
            appliance_version_in(&text).as_deref(),
            Some("1.1.0-rc.1+b2")
        );
        assert_eq!(
            Marker::find_in(&text).map(|m| m.to_string()).as_deref(),
            Some("orbitlab:sector/web/dns")
        );
        assert_eq!(appliance_version_in("orbitlab:sector/web/dns\n"), None);
        assert_eq!(appliance_version_in("appliance-version:  \n"), None);
    }

    #[test]
    fn markers_round_trip_and_are_found_in_text() {
        let web: Name = "web".parse().unwrap();
        let m = Marker::part(Kind::Sector, &web, ApplianceRole::Dns);
        assert_eq!(m.to_string(), "orbitlab:sector/web/dns");
        assert_eq!(m.owner().as_str(), "sector/web/dns");
        let longest: Name = "a".repeat(63).parse().unwrap();
        for kind in Kind::ALL {
            let m = Marker::part(kind, &longest, ApplianceRole::Gateway);
            assert_eq!(
                m.owner().as_str(),
                m.to_string().trim_start_matches("orbitlab:")
            );
        }
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

//! An instance container's owned config keys as Proxmox stores them, and
//! how they differ from what the manifest asks for.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use orbitlab_manifests::{LxcSpec, Name};

use super::search_domain;
use crate::reconcile::action::{AddressRef, NicPlan};

/// `net0`'s keys OrbitLab sets; the others (`hwaddr`, `type`, `firewall`,
/// ...) are Proxmox's or the admin's and kept as they are.
const NET_KEYS: &[&str] = &["name", "bridge", "ip", "gw", "mtu"];

/// What the container's config holds.
#[derive(Debug)]
pub(super) struct Have<'a> {
    keys: &'a BTreeMap<String, String>,
    net0: Vec<(String, String)>,
    /// The `key: value` lines of its description (what it was made with).
    notes: Vec<(String, String)>,
}

impl<'a> Have<'a> {
    pub fn read(keys: &'a BTreeMap<String, String>) -> Self {
        Have {
            keys,
            net0: keys.get("net0").map(|v| split(v)).unwrap_or_default(),
            notes: keys
                .get("description")
                .map(|d| {
                    d.lines()
                        .filter_map(|l| l.trim().split_once(": "))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// What the description records for `key` (`template`, `ssh_keys`,
    /// `password`).
    pub fn creation_note(&self, key: &str) -> Option<&str> {
        self.notes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn net(&self, key: &str) -> Option<&str> {
        self.net0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The VNet `net0` is on.
    pub fn bridge(&self) -> Option<&str> {
        self.net("bridge")
    }

    /// `net0` as stored.
    pub fn net0_text(&self) -> Option<&str> {
        self.keys.get("net0").map(String::as_str)
    }

    /// The address `net0` gives the container.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.net("ip")?.split('/').next()?.parse().ok()
    }

    /// The root disk's size in GiB (`local-lvm:vm-101-disk-0,size=8G`).
    pub fn disk_gib(&self) -> Option<u32> {
        let size = self
            .keys
            .get("rootfs")?
            .split(',')
            .find_map(|part| part.strip_prefix("size="))?;
        let (number, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
        let n: u64 = number.parse().ok()?;
        let gib = match unit {
            "T" => n * 1024,
            "G" => n,
            "M" => n.div_ceil(1024),
            _ => return None,
        };
        u32::try_from(gib).ok()
    }

    /// The owned keys (except the disk, which only grows) with the value
    /// the manifest asks for; `net0` only when OrbitLab's keys in it
    /// differ (its other keys kept). Compared with the container by
    /// the controllers' `config_update`.
    pub fn wanted(
        &self,
        name: &Name,
        spec: &LxcSpec,
        nic: &NicPlan,
        nameserver: Ipv4Addr,
    ) -> Vec<(&'static str, String)> {
        let bool_text = |b: bool| u8::from(b).to_string();
        let mut want: Vec<(&'static str, String)> = vec![
            ("hostname", name.to_string()),
            ("cores", spec.cores.to_string()),
            ("memory", spec.memory.to_string()),
            ("swap", "0".into()),
            ("nameserver", nameserver.to_string()),
            ("searchdomain", search_domain(&spec.sector)),
            ("onboot", bool_text(spec.onboot)),
        ];
        if let Some(net0) = self.net0_wanted(nic) {
            want.push(("net0", net0));
        }
        want
    }

    /// `net0` with OrbitLab's keys as `nic` says and every other key kept;
    /// `None` when OrbitLab's keys already match.
    fn net0_wanted(&self, nic: &NicPlan) -> Option<String> {
        let AddressRef::Known(address) = nic.address else {
            return None;
        };
        let mut ours: Vec<(&str, String)> = vec![
            ("name", "eth0".into()),
            ("bridge", nic.bridge.to_string()),
            ("ip", format!("{address}/{}", nic.prefix)),
        ];
        if let Some(gw) = nic.gateway {
            ours.push(("gw", gw.to_string()));
        }
        if let Some(mtu) = nic.mtu {
            ours.push(("mtu", mtu.to_string()));
        }
        let matches = NET_KEYS.iter().all(|key| {
            let want = ours.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            self.net(key) == want
        });
        if matches {
            return None;
        }
        let mut value: Vec<String> = ours.iter().map(|(k, v)| format!("{k}={v}")).collect();
        value.extend(
            self.net0
                .iter()
                .filter(|(k, _)| !NET_KEYS.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}")),
        );
        Some(value.join(","))
    }
}

/// `a=1,b=2` → pairs (a bare word is Proxmox's default key; kept as is).
fn split(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn disk_sizes_in_any_unit() {
        for (rootfs, gib) in [
            ("local-lvm:vm-101-disk-0,size=8G", Some(8)),
            ("local:101/vm-101-disk-0.raw,size=2048M", Some(2)),
            ("local-lvm:vm-101-disk-0,size=1T", Some(1024)),
            ("local-lvm:vm-101-disk-0", None),
        ] {
            let k = keys(&[("rootfs", rootfs)]);
            assert_eq!(Have::read(&k).disk_gib(), gib, "{rootfs}");
        }
    }

    #[test]
    fn net0_keeps_the_keys_orbitlab_does_not_own() {
        let k = keys(&[(
            "net0",
            "name=eth0,bridge=olvn1001,gw=10.0.0.1,hwaddr=BC:24:11:00:00:01,ip=10.0.0.10/24,mtu=1400,type=veth,firewall=1",
        )]);
        let have = Have::read(&k);
        let nic = NicPlan {
            bridge: "olvn1001".parse().unwrap(),
            address: AddressRef::Known("10.0.0.10".parse().unwrap()),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            mtu: Some(1400),
        };
        assert_eq!(have.net0_wanted(&nic), None, "same keys in another order");
        let nic = NicPlan {
            mtu: Some(1450),
            ..nic
        };
        assert_eq!(
            have.net0_wanted(&nic).unwrap(),
            "name=eth0,bridge=olvn1001,ip=10.0.0.10/24,gw=10.0.0.1,mtu=1450,hwaddr=BC:24:11:00:00:01,type=veth,firewall=1"
        );
        assert_eq!(have.address(), Some("10.0.0.10".parse().unwrap()));
        assert_eq!(have.bridge(), Some("olvn1001"));
    }
}

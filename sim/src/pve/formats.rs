//! Proxmox VE's named string formats (`pve-node`, `pve-sdn-zone-id`,
//! `ip-list`...). The schema only names them; their rules live in Proxmox's
//! Perl code, and are restated here as facts. Pure functions, no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;

/// Every format name this module knows. A rule table naming any other
/// format is refused by the tests.
pub const KNOWN: &[&str] = &[
    "CIDR",
    "CIDRv4",
    "CIDRv6",
    "disk-size",
    "dns-name",
    "dns-name-list",
    "email-opt",
    "ip",
    "ip-list",
    "ipv4",
    "ipv4mask",
    "ipv6",
    "lxc-ip-with-ll-iface-list",
    "mac-addr",
    "pve-configid",
    "pve-configid-list",
    "pve-ct-timezone",
    "pve-groupid-list",
    "pve-ha-resource-or-vm-id",
    "pve-iface",
    "pve-iface-list",
    "pve-ipv4-config",
    "pve-ipv6-config",
    "pve-lxc-dev-string",
    "pve-lxc-mp-string",
    "pve-node",
    "pve-node-list",
    "pve-poolid",
    "pve-priv-list",
    "pve-realm",
    "pve-roleid",
    "pve-roleid-list",
    "pve-sdn-bgp-rt-list",
    "pve-sdn-controller-id",
    "pve-sdn-dhcp-range",
    "pve-sdn-fabric-id",
    "pve-sdn-isis-net",
    "pve-sdn-subnet-id",
    "pve-sdn-vnet-id",
    "pve-sdn-zone-id",
    "pve-startup-order",
    "pve-storage-content",
    "pve-storage-content-list",
    "pve-storage-id",
    "pve-tag-list",
    "pve-tokenid-list",
    "pve-userid",
    "pve-userid-list",
    "pve-vmid",
    "pve-volume-id",
];

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).unwrap_or_else(|e| panic!("format regex {pat}: {e}")))
}

macro_rules! rx {
    ($pat:expr) => {{
        static CELL: OnceLock<Regex> = OnceLock::new();
        re(&CELL, $pat)
    }};
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split([',', ';', ' ', '\0']).filter(|s| !s.is_empty())
}

fn each(v: &str, what: &str, ok: impl Fn(&str) -> bool) -> Result<(), String> {
    for item in split_list(v) {
        if !ok(item) {
            return Err(format!("value '{item}' does not look like a valid {what}"));
        }
    }
    Ok(())
}

fn is_cidr(v: &str, v4: bool, v6: bool) -> bool {
    let Some((ip, len)) = v.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => v4 && len <= 32,
        Ok(IpAddr::V6(_)) => v6 && len <= 128,
        Err(_) => false,
    }
}

fn is_node(v: &str) -> bool {
    rx!(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$").is_match(v)
}

fn is_dns_name(v: &str) -> bool {
    v.len() <= 255
        && rx!(r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])$")
            .is_match(v)
}

fn is_storage_id(v: &str) -> bool {
    rx!(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$").is_match(v)
}

fn is_volume_id(v: &str) -> bool {
    v.split_once(':')
        .is_some_and(|(s, rest)| is_storage_id(s) && !rest.is_empty())
}

/// A user id, `name@realm` (Proxmox: `[^\s:/]+` `@` a realm), at most
/// 64 bytes.
pub fn is_userid(v: &str) -> bool {
    v.len() <= 64 && rx!(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$").is_match(v)
}

/// An API token's name (after `!`).
pub fn is_token_name(v: &str) -> bool {
    rx!(r"^[A-Za-z][A-Za-z0-9.\-_]+$").is_match(v)
}

/// A role or group name.
fn is_ugid_name(v: &str) -> bool {
    rx!(r"^[A-Za-z0-9.\-_]+$").is_match(v)
}

const CONTENT: &[&str] = &[
    "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
];

/// Check `value` against the named format; `Err` holds Proxmox-style text
/// (the caller prefixes `invalid format - `). Unknown names are accepted.
pub fn check(format: &str, value: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("value '{value}' does not look like a valid {what}"));
    match format {
        "pve-node" => {
            if is_node(value) {
                Ok(())
            } else {
                bad("node name")
            }
        }
        "pve-node-list" => each(value, "node name", is_node),
        "pve-vmid" => match value.parse::<u64>() {
            Ok(n) if (100..=999_999_999).contains(&n) => Ok(()),
            _ => bad("VM ID"),
        },
        "pve-sdn-zone-id" | "pve-sdn-vnet-id" | "pve-sdn-fabric-id" => {
            let what = match format {
                "pve-sdn-zone-id" => "zone",
                "pve-sdn-vnet-id" => "vnet",
                _ => "fabric",
            };
            if !rx!(r"^[a-z][a-z0-9]*[a-z0-9]$").is_match(value) {
                Err(format!("{what} ID '{value}' contains illegal characters"))
            } else if value.len() > 8 {
                Err(format!(
                    "{what} ID '{value}' can't be more length than 8 characters"
                ))
            } else {
                Ok(())
            }
        }
        "pve-sdn-controller-id" => {
            if !rx!(r"(?i)^[a-z][a-z0-9_-]*[a-z0-9]$").is_match(value) {
                Err(format!(
                    "controller ID '{value}' contains illegal characters"
                ))
            } else if value.len() > 64 {
                Err(format!(
                    "controller ID '{value}' can't be more length than 64 characters"
                ))
            } else {
                Ok(())
            }
        }
        "pve-sdn-subnet-id" => {
            let cidr = if value.contains('/') {
                value.to_string()
            } else {
                let mut parts = value.splitn(3, '-');
                let (_zone, ip, mask) = (parts.next(), parts.next(), parts.next());
                format!("{}/{}", ip.unwrap_or(""), mask.unwrap_or(""))
            };
            if is_cidr(&cidr, true, true) {
                Ok(())
            } else {
                Err("value does not look like a valid CIDR network".into())
            }
        }
        "pve-sdn-isis-net" => {
            if rx!(r"^[0-9a-fA-F]{2}(\.[0-9a-fA-F]{4}){3,9}\.[0-9a-fA-F]{2}$").is_match(value) {
                Ok(())
            } else {
                bad("ISIS network entity title")
            }
        }
        "pve-sdn-bgp-rt-list" => each(value, "route target", |v| rx!(r"^\d+:\d+$").is_match(v)),
        "pve-sdn-dhcp-range" => {
            let mut start = false;
            let mut end = false;
            for kv in value.split(',') {
                match kv.split_once('=') {
                    Some(("start-address", ip)) if ip.parse::<IpAddr>().is_ok() => start = true,
                    Some(("end-address", ip)) if ip.parse::<IpAddr>().is_ok() => end = true,
                    _ => return bad("DHCP range"),
                }
            }
            if start && end {
                Ok(())
            } else {
                bad("DHCP range")
            }
        }
        "ip" => value
            .parse::<IpAddr>()
            .map(|_| ())
            .or_else(|_| bad("IP address")),
        "ipv4" => value
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .or_else(|_| bad("IPv4 address")),
        "ipv6" => value
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .or_else(|_| bad("IPv6 address")),
        "ipv4mask" => match value.parse::<Ipv4Addr>() {
            Ok(m) if u32::from(m).leading_ones() + u32::from(m).trailing_zeros() == 32 => Ok(()),
            _ => bad("IPv4 netmask"),
        },
        "CIDR" => is_cidr(value, true, true)
            .then_some(())
            .map_or_else(|| bad("CIDR network"), Ok),
        "CIDRv4" => is_cidr(value, true, false)
            .then_some(())
            .map_or_else(|| bad("IPv4 CIDR network"), Ok),
        "CIDRv6" => is_cidr(value, false, true)
            .then_some(())
            .map_or_else(|| bad("IPv6 CIDR network"), Ok),
        "ip-list" => each(value, "IP address", |v| v.parse::<IpAddr>().is_ok()),
        "lxc-ip-with-ll-iface-list" => each(value, "IP address", |v| {
            let ip = v.split_once('%').map_or(v, |(ip, _)| ip);
            ip.parse::<IpAddr>().is_ok()
        }),
        "pve-ipv4-config" => {
            if value == "dhcp" || value == "manual" || is_cidr(value, true, false) {
                Ok(())
            } else {
                bad("IPv4 network configuration")
            }
        }
        "pve-ipv6-config" => {
            if ["auto", "dhcp", "manual"].contains(&value) || is_cidr(value, false, true) {
                Ok(())
            } else {
                bad("IPv6 network configuration")
            }
        }
        "dns-name" => {
            if is_dns_name(value) {
                Ok(())
            } else {
                bad("DNS name")
            }
        }
        "dns-name-list" => each(value, "DNS name", is_dns_name),
        "mac-addr" => {
            let ok = rx!(r"(?i)^[0-9a-f]{2}(:[0-9a-f]{2}){5}$").is_match(value)
                && u8::from_str_radix(&value[..2], 16).is_ok_and(|b| b & 1 == 0);
            if ok {
                Ok(())
            } else {
                bad("unicast MAC address")
            }
        }
        "pve-configid" => {
            if rx!(r"(?i)^[a-z][a-z0-9_-]+$").is_match(value) {
                Ok(())
            } else {
                Err(format!("invalid configuration ID '{value}'"))
            }
        }
        "pve-configid-list" => each(value, "configuration ID", |v| {
            rx!(r"(?i)^[a-z][a-z0-9_\-\[\]]*$").is_match(v)
        }),
        "pve-tag-list" => each(value, "tag", |v| {
            rx!(r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$").is_match(v)
        }),
        "pve-storage-id" => {
            if is_storage_id(value) {
                Ok(())
            } else {
                Err(format!("storage ID '{value}' contains illegal characters"))
            }
        }
        "pve-volume-id" => {
            if is_volume_id(value) {
                Ok(())
            } else {
                Err(format!("unable to parse volume ID '{value}'"))
            }
        }
        "pve-lxc-mp-string" => {
            let path_ok =
                value.starts_with('/') && !value.split('/').any(|c| c == "." || c == "..");
            if path_ok || is_volume_id(value) {
                Ok(())
            } else {
                bad("mount point volume or path")
            }
        }
        "pve-lxc-dev-string" => {
            if value.starts_with("/dev/") && !value.split('/').any(|c| c == "..") {
                Ok(())
            } else {
                bad("device path")
            }
        }
        "pve-storage-content" => {
            if CONTENT.contains(&value) {
                Ok(())
            } else {
                Err(format!("invalid content type '{value}'"))
            }
        }
        "pve-storage-content-list" => each(value, "content type", |v| CONTENT.contains(&v)),
        "pve-iface" => {
            if rx!(r"^[a-zA-Z][a-zA-Z0-9_.\-]*$").is_match(value) && value.len() <= 20 {
                Ok(())
            } else {
                bad("interface name")
            }
        }
        "pve-iface-list" => each(value, "interface name", |v| {
            rx!(r"^[a-zA-Z][a-zA-Z0-9_.\-]*$").is_match(v)
        }),
        "pve-ha-resource-or-vm-id" => {
            if rx!(r"^(?:(?:vm|ct):)?[1-9][0-9]{2,8}$").is_match(value) {
                Ok(())
            } else {
                Err(format!("unable to parse HA resource id '{value}'"))
            }
        }
        "pve-poolid" => {
            if rx!(r"^[A-Za-z0-9_\-/]+$").is_match(value) {
                Ok(())
            } else {
                bad("pool ID")
            }
        }
        "pve-startup-order" => {
            let ok = value
                .split(',')
                .enumerate()
                .all(|(i, part)| match part.split_once('=') {
                    Some(("order" | "up" | "down", n)) => n.parse::<u32>().is_ok(),
                    None => i == 0 && part.parse::<u32>().is_ok(),
                    _ => false,
                });
            if ok { Ok(()) } else { bad("startup order") }
        }
        "pve-ct-timezone" => {
            if value == "host" || rx!(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$").is_match(value) {
                Ok(())
            } else {
                Err(format!("invalid time zone '{value}'"))
            }
        }
        "disk-size" => {
            if rx!(r"^\d+(\.\d+)?[KMGT]?$").is_match(value) {
                Ok(())
            } else {
                bad("disk size")
            }
        }
        "pve-realm" => {
            if rx!(r"^[A-Za-z][A-Za-z0-9.\-_]+$").is_match(value) {
                Ok(())
            } else {
                bad("realm")
            }
        }
        "pve-priv-list" => each(value, "privilege", |v| {
            rx!(r"^[A-Za-z][A-Za-z.]*$").is_match(v)
        }),
        "pve-userid" => {
            if is_userid(value) {
                Ok(())
            } else {
                Err(format!(
                    "value '{value}' does not look like a valid user name"
                ))
            }
        }
        "pve-userid-list" => each(value, "user name", is_userid),
        "pve-tokenid-list" => each(value, "API token id", |v| {
            v.split_once('!')
                .is_some_and(|(user, name)| is_userid(user) && is_token_name(name))
        }),
        "pve-roleid" => {
            if is_ugid_name(value) {
                Ok(())
            } else {
                Err(format!("role name '{value}' contains invalid characters"))
            }
        }
        "pve-roleid-list" => each(value, "role name", is_ugid_name),
        "pve-groupid-list" => each(value, "group name", is_ugid_name),
        "email-opt" => {
            let email = r"^[\w+\-~]+(\.[\w+\-~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*$";
            if value.is_empty() || rx!(email).is_match(value) {
                Ok(())
            } else {
                bad("email address")
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn zone_ids_follow_proxmox() {
        assert!(check("pve-sdn-zone-id", "zone1").is_ok());
        assert!(check("pve-sdn-zone-id", "ab").is_ok());
        assert!(check("pve-sdn-zone-id", "a").is_err());
        assert!(check("pve-sdn-zone-id", "Zone").is_err());
        assert!(check("pve-sdn-zone-id", "zone-1").is_err());
        assert!(check("pve-sdn-zone-id", "abcdefghi").is_err());
        assert!(check("pve-sdn-zone-id", "zone1_").is_err());
    }

    #[test]
    fn addresses_and_lists() {
        assert!(check("ip-list", "10.0.0.1,10.0.0.2 fd00::1").is_ok());
        assert!(check("ip-list", "10.0.0.1,nope").is_err());
        assert!(check("pve-sdn-subnet-id", "10.0.0.0/24").is_ok());
        assert!(check("pve-sdn-subnet-id", "zone1-10.0.0.0-24").is_ok());
        assert!(check("pve-sdn-subnet-id", "zone1-10.0.0.0").is_err());
        assert!(check("mac-addr", "BC:24:11:00:00:01").is_ok());
        assert!(check("mac-addr", "01:00:5e:00:00:01").is_err());
        assert!(check("pve-ipv4-config", "10.1.2.3/24").is_ok());
        assert!(check("pve-ipv4-config", "10.1.2.3").is_err());
        assert!(check("pve-ha-resource-or-vm-id", "ct:100").is_ok());
        assert!(check("pve-ha-resource-or-vm-id", "lxc:100").is_err());
    }
}

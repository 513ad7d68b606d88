//! Address pools and their reserved addresses. Pure: no I/O.
//!
//! Offsets count from the pool's network address, so in `10.200.0.0/16`
//! "`.1`" is `10.200.0.1` and `10.200.1.1` is an ordinary address.
//! Never handed out by [`crate::ipam::IpamSession::allocate_next`]:
//! - offset 0 (network) and the broadcast address — never allocatable;
//! - offset 1, the gateway ([`ApplianceRole::Gateway`]) and offset 2, the DNS server
//!   ([`ApplianceRole::Dns`]) — only through
//!   [`crate::ipam::IpamSession::allocate_role`];
//! - offsets 3–9 ([`RESERVED_OFFSETS`]) — kept free for future appliances
//!   (load-balancer VIPs, a second DNS); never allocatable today.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use orbitlab_manifests::ApplianceRole;

use super::{IpamError, PoolId};

/// Offsets (from the network address) held back for future roles.
pub const RESERVED_OFFSETS: RangeInclusive<u32> = 3..=9;
/// Shortest accepted prefix: a /16 keeps the pool at 256 shards.
pub const MIN_PREFIX: u8 = 16;
/// Longest accepted prefix: a /28 still leaves 5 allocatable addresses.
pub const MAX_PREFIX: u8 = 28;

/// The offset from the network address of the fixed address an appliance
/// role holds in every pool: `.1` the gateway (the Sector Gateway's `eth0`
/// address; on the Backplane, Proxmox's EVPN gateway), `.2` the Sector DNS.
pub fn role_offset(role: ApplianceRole) -> u32 {
    match role {
        ApplianceRole::Gateway => 1,
        ApplianceRole::Dns => 2,
    }
}

/// The address `role` holds in `net` (see [`role_offset`]).
pub fn role_address(net: Ipv4Net, role: ApplianceRole) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + role_offset(role))
}

/// Why an address can not be handed out as an ordinary address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reserved {
    Network,
    Broadcast,
    Role(ApplianceRole),
    Future,
}

impl Reserved {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Network => "it is the network address",
            Self::Broadcast => "it is the broadcast address",
            Self::Role(ApplianceRole::Gateway) => {
                "it is the gateway address (.1); request it by role (allocate_role)"
            }
            Self::Role(ApplianceRole::Dns) => {
                "it is the DNS address (.2); request it by role (allocate_role)"
            }
            Self::Future => "it is in the reserved range .3-.9, which is never handed out",
        }
    }
}

/// One address pool: an id and a CIDR between /16 and /28.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    id: PoolId,
    cidr: Ipv4Net,
}

impl Pool {
    /// A pool over `cidr`, which must be a network address (no host bits)
    /// with a prefix between [`MIN_PREFIX`] and [`MAX_PREFIX`].
    pub fn new(id: PoolId, cidr: Ipv4Net) -> Result<Self, IpamError> {
        let bad = |reason: String| IpamError::PoolCidr {
            pool: id.clone(),
            cidr,
            reason,
        };
        if cidr != cidr.trunc() {
            return Err(bad(format!("it has host bits set; write {}", cidr.trunc())));
        }
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&cidr.prefix_len()) {
            return Err(bad(format!(
                "pools must be between /{MIN_PREFIX} and /{MAX_PREFIX}"
            )));
        }
        Ok(Self { id, cidr })
    }

    /// The pool's id.
    pub fn id(&self) -> &PoolId {
        &self.id
    }

    /// The pool's network.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// Number of addresses in the CIDR, reserved ones included.
    pub fn size(&self) -> u32 {
        1 << (32 - self.cidr.prefix_len())
    }

    /// Number of addresses `allocate_next` can hand out.
    pub fn allocatable(&self) -> u32 {
        self.size() - 2 - 1 - 1 - RESERVED_OFFSETS.count() as u32
    }

    /// The address of `role` in this pool.
    pub fn role_address(&self, role: ApplianceRole) -> Ipv4Addr {
        role_address(self.cidr, role)
    }

    /// True when `addr` belongs to the pool's CIDR.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.cidr.contains(&addr)
    }

    /// Why `addr` (inside the pool) is not an ordinary address, if it is not.
    pub(crate) fn reserved(&self, addr: Ipv4Addr) -> Option<Reserved> {
        let offset = u32::from(addr) - u32::from(self.cidr.network());
        if addr == self.cidr.broadcast() {
            return Some(Reserved::Broadcast);
        }
        match offset {
            0 => Some(Reserved::Network),
            1 => Some(Reserved::Role(ApplianceRole::Gateway)),
            2 => Some(Reserved::Role(ApplianceRole::Dns)),
            o if RESERVED_OFFSETS.contains(&o) => Some(Reserved::Future),
            _ => None,
        }
    }

    /// The /24 blocks (shards) covering the pool, as block base addresses.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = u32> + use<> {
        let first = u32::from(self.cidr.network()) & !0xff;
        let last = u32::from(self.cidr.broadcast()) & !0xff;
        (first..=last).step_by(256)
    }

    /// The addresses of `block` that lie inside the pool.
    pub(crate) fn block_range(&self, block: u32) -> RangeInclusive<u32> {
        let start = block.max(u32::from(self.cidr.network()));
        let end = (block | 0xff).min(u32::from(self.cidr.broadcast()));
        start..=end
    }
}

/// The base address of the /24 block holding `addr`.
pub(crate) fn block_of(addr: Ipv4Addr) -> u32 {
    u32::from(addr) & !0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str) -> Pool {
        Pool::new(PoolId::backplane(), cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn sizes_and_blocks() {
        let p = pool("10.200.0.0/16");
        assert_eq!(p.size(), 65536);
        assert_eq!(p.allocatable(), 65536 - 11);
        assert_eq!(p.blocks().count(), 256);
        let p = pool("172.16.0.64/28");
        assert_eq!(p.allocatable(), 5);
        assert_eq!(
            p.blocks().collect::<Vec<_>>(),
            vec![u32::from(Ipv4Addr::new(172, 16, 0, 0))]
        );
        let r = p.block_range(u32::from(Ipv4Addr::new(172, 16, 0, 0)));
        assert_eq!(Ipv4Addr::from(*r.start()), Ipv4Addr::new(172, 16, 0, 64));
        assert_eq!(Ipv4Addr::from(*r.end()), Ipv4Addr::new(172, 16, 0, 79));
        assert_eq!(
            p.role_address(ApplianceRole::Dns),
            Ipv4Addr::new(172, 16, 0, 66)
        );
    }

    #[test]
    fn refuses_bad_cidrs() {
        for bad in ["10.0.0.0/8", "10.0.0.0/15", "10.0.0.0/29", "10.0.0.5/24"] {
            let err = Pool::new(PoolId::backplane(), bad.parse().unwrap()).unwrap_err();
            assert!(matches!(err, IpamError::PoolCidr { .. }), "{bad}: {err}");
        }
    }
}

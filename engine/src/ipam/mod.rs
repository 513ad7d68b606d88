//! IPAM: IPv4 allocation for the Backplane and every Sector subnet.
//!
//! - [`Pool`]: an id ([`PoolId`]) and a CIDR (/16 to /28). The pool's
//!   network and broadcast addresses, `.1` ([`ApplianceRole::Gateway`](orbitlab_manifests::ApplianceRole)), `.2`
//!   ([`ApplianceRole::Dns`](orbitlab_manifests::ApplianceRole)) and `.3`–`.9` ([`RESERVED_OFFSETS`]) are never handed
//!   out by [`IpamSession::allocate_next`]; `.1` and `.2` only by role.
//! - [`Owner`]: who holds an address (`sector/web/gateway`, `lxc/web1`).
//!   An owner holds at most one address per pool, and allocating again for
//!   the same owner returns the same address.
//! - [`IpamSession`]: every read and change happens in a session, which
//!   takes the cluster-wide IPAM lock through the store when it begins
//!   ([`IpamSession::begin`]) and releases it when dropped. Callers keep
//!   sessions short (well under pmxcfs' 120 s lock expiry).
//! - [`listing`]: every allocation at once, cached per store handle while
//!   IPAM's change token (replaced by every changing session) stands still.
//! - [`IpamStore`]: the storage boundary (pmxcfs in production; memory or
//!   a directory in tests and benchmarks).
//!
//! On disk (see `layout`): under `ipam/<pool-id>/` of OrbitLab's root
//! (`/etc/pve/orbitlab`), a `pool.json`, one address shard per /24
//! (`addr/<a.b.c.0>-24.json`) and owner-index buckets (`owners/NNN.json`);
//! every file stays below 40 KiB even for a fully allocated /16, and no
//! write may exceed [`MAX_FILE_BYTES`].
//!
//! Crash safety: each file write is atomic, and a change touches files in
//! an order that never loses an address. An allocation writes the owner
//! index first and the address shard second, and is returned only after
//! both are written (so it is recorded before it is handed to Proxmox); a
//! release removes the shard entry first. After a failure at any step the
//! shard is still the truth and the index at worst holds a stale hint that
//! the next session ignores, so re-running the same allocation converges
//! and releasing by owner finds every address the owner holds.

pub mod cluster;
mod layout;
pub mod listing;
mod names;
mod pool;
mod session;
mod store;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub use layout::MAX_FILE_BYTES;
pub use listing::{Listing, listing};
pub use names::{MAX_OWNER_LEN, MAX_POOL_ID_LEN, Owner, PoolId};
pub use pool::{MAX_PREFIX, MIN_PREFIX, Pool, RESERVED_OFFSETS, role_address, role_offset};
pub use session::IpamSession;
pub use store::{DirLock, DirStore, IpamStore, MemoryLock, MemoryStore, StoreError};

/// Why an IPAM operation failed. When one is returned nothing was changed,
/// except for the `Store` variant, after which the on-disk state is still
/// consistent and the operation can simply be retried.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// A pool id is malformed.
    #[error("invalid IPAM pool id {value:?}: {reason}; use lowercase letters, digits, '.' and '-'")]
    InvalidPoolId {
        /// The refused text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An owner is malformed.
    #[error(
        "invalid IPAM owner {value:?}: {reason}; use '/'-separated lowercase names such as \"lxc/web1\""
    )]
    InvalidOwner {
        /// The refused text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pool's CIDR is not acceptable.
    #[error("IPAM pool {pool}: CIDR {cidr} is not acceptable: {reason}")]
    PoolCidr {
        /// The pool.
        pool: PoolId,
        /// The refused CIDR.
        cidr: Ipv4Net,
        /// Why.
        reason: String,
    },
    /// The pool is recorded with a different CIDR than the one requested.
    #[error(
        "IPAM pool {pool} is recorded with CIDR {recorded} but was used with {requested}; a pool's CIDR never changes, use a new pool id"
    )]
    PoolMismatch {
        /// The pool.
        pool: PoolId,
        /// CIDR in `pool.json`.
        recorded: Ipv4Net,
        /// CIDR of the request.
        requested: Ipv4Net,
    },
    /// Every allocatable address of the pool is taken.
    #[error(
        "IPAM pool {pool} ({cidr}) is exhausted: all {allocatable} allocatable addresses of its {size} are in use; release unused addresses or use a larger subnet"
    )]
    Exhausted {
        /// The pool.
        pool: PoolId,
        /// Its CIDR.
        cidr: Ipv4Net,
        /// Its size.
        size: u32,
        /// How many of those `allocate_next` may hand out.
        allocatable: u32,
    },
    /// An address is not inside the pool.
    #[error("{addr} is outside IPAM pool {pool} ({cidr}); choose an address inside {cidr}")]
    OutsidePool {
        /// The pool.
        pool: PoolId,
        /// Its CIDR.
        cidr: Ipv4Net,
        /// The refused address.
        addr: Ipv4Addr,
    },
    /// A reserved address was requested as an ordinary one.
    #[error("{addr} cannot be allocated from IPAM pool {pool}: {reason}")]
    Reserved {
        /// The pool.
        pool: PoolId,
        /// The refused address.
        addr: Ipv4Addr,
        /// Which reservation.
        reason: &'static str,
    },
    /// The requested address belongs to someone else.
    #[error(
        "{addr} in IPAM pool {pool} is already held by {holder}; choose another address or release it first"
    )]
    AddressInUse {
        /// The pool.
        pool: PoolId,
        /// The requested address.
        addr: Ipv4Addr,
        /// Who holds it.
        holder: Owner,
    },
    /// The owner already holds a different address in the pool.
    #[error(
        "{owner} already holds {held} in IPAM pool {pool} and cannot also take {requested}; release {held} first"
    )]
    OwnerConflict {
        /// The pool.
        pool: PoolId,
        /// The owner.
        owner: Owner,
        /// What it holds.
        held: Ipv4Addr,
        /// What it asked for.
        requested: Ipv4Addr,
    },
    /// A pool still has allocations and cannot be removed.
    #[error(
        "IPAM pool {pool} still holds {count} allocation(s); release them before removing the pool"
    )]
    PoolNotEmpty {
        /// The pool.
        pool: PoolId,
        /// Remaining allocations.
        count: usize,
    },
    /// An IPAM file does not hold what it should.
    #[error(
        "IPAM file {path} is invalid: {reason}; repair or remove it (addresses it records are then forgotten)"
    )]
    Corrupt {
        /// The file (relative to OrbitLab's root).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file would grow past [`MAX_FILE_BYTES`].
    #[error(
        "IPAM file {path} would be {size} bytes, more than the {limit} allowed; nothing was written"
    )]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its would-be size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The IPAM lock could not be taken.
    #[error("cannot take the IPAM lock: {0}")]
    Lock(#[source] StoreError),
    /// The store failed.
    #[error(
        "IPAM store failed to {op} {path}: {source}; the allocation state is consistent, retry"
    )]
    Store {
        /// `read`, `write`, `remove` or `list`.
        op: &'static str,
        /// The file or directory.
        path: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

//! IPAM's on-disk form: file paths and the JSON documents stored in them.
//! Pure: encoding and decoding only; the session does the I/O.
//!
//! Paths are relative to OrbitLab's root in the store (`/etc/pve/orbitlab`):
//!
//! ```text
//! ipam/<pool-id>/pool.json                  {"format":1,"cidr":"10.200.0.0/16","full":["10.200.0.0/24"]}
//! ipam/<pool-id>/addr/<a.b.c.0>-24.json     {"10.200.0.10":"sector/web/gateway", ...}   address -> owner
//! ipam/<pool-id>/owners/<bucket>.json       {"sector/web/gateway":"10.200.0.10", ...}   owner -> address
//! ```
//!
//! The address shards are the truth. The owner buckets (FNV-1a of the owner,
//! `max(1, size/128)` buckets rounded up to a power of two, three hex
//! digits) are an index that makes "which address does this owner hold?"
//! cost one small file; an entry counts only when the shard agrees. `full`
//! lists blocks believed to have no free address, so a search skips them;
//! it is a hint, checked again before a pool is reported exhausted.
//!
//! Size bound: a shard holds at most 256 entries and a bucket, for a /16,
//! about 128 (rarely more than 200); with owners of at most 128 bytes an
//! entry takes under 150 bytes, so every file stays below 40 KiB, far under
//! pmxcfs' 1 MiB limit. [`MAX_FILE_BYTES`] is enforced on every write.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{IpamError, Owner, Pool, PoolId};

/// Largest IPAM file OrbitLab writes (a quarter of pmxcfs' 1 MiB limit).
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Directory (relative to the OrbitLab root) holding every pool.
pub const IPAM_DIR: &str = "ipam";
/// On-disk format version written in `pool.json`.
const FORMAT: u32 = 1;

/// `pool.json`: the pool's CIDR (checked on every use) and the blocks
/// believed full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolMeta {
    pub format: u32,
    pub cidr: Ipv4Net,
    #[serde(default)]
    pub full: BTreeSet<Ipv4Net>,
}

impl PoolMeta {
    pub(crate) fn new(cidr: Ipv4Net) -> Self {
        Self {
            format: FORMAT,
            cidr,
            full: BTreeSet::new(),
        }
    }
}

/// One address shard: address → owner, for one /24 block.
pub(crate) type Shard = BTreeMap<Ipv4Addr, Owner>;
/// One owner bucket: owner → address.
pub(crate) type Bucket = BTreeMap<Owner, Ipv4Addr>;

pub(crate) fn meta_path(id: &PoolId) -> String {
    format!("{IPAM_DIR}/{id}/pool.json")
}

pub(crate) fn shard_path(id: &PoolId, block: u32) -> String {
    format!("{IPAM_DIR}/{id}/addr/{}-24.json", Ipv4Addr::from(block))
}

pub(crate) fn bucket_path(id: &PoolId, bucket: u32) -> String {
    format!("{IPAM_DIR}/{id}/owners/{bucket:03x}.json")
}

/// The /24 block as a network, for `pool.json`'s `full` list.
pub(crate) fn block_net(block: u32) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(block), 24).unwrap_or_default()
}

/// Number of owner buckets of a pool (fixed by its size, hence by its CIDR).
pub(crate) fn bucket_count(pool: &Pool) -> u32 {
    (pool.size() / 128).max(1).next_power_of_two()
}

/// The bucket of `owner`: FNV-1a (32 bit) of its bytes, masked. Part of the
/// on-disk format: never change it.
pub(crate) fn bucket_of(pool: &Pool, owner: &Owner) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in owner.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash & (bucket_count(pool) - 1)
}

/// Serialises a document, refusing anything larger than [`MAX_FILE_BYTES`].
pub(crate) fn encode<T: Serialize>(path: &str, doc: &T) -> Result<Vec<u8>, IpamError> {
    let mut bytes = serde_json::to_vec(doc).map_err(|e| IpamError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot encode: {e}"),
    })?;
    bytes.push(b'\n');
    if bytes.len() > MAX_FILE_BYTES {
        return Err(IpamError::FileTooLarge {
            path: path.to_owned(),
            size: bytes.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

fn decode<T: for<'de> Deserialize<'de>>(path: &str, bytes: &[u8]) -> Result<T, IpamError> {
    serde_json::from_slice(bytes).map_err(|e| IpamError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn decode_meta(path: &str, bytes: &[u8]) -> Result<PoolMeta, IpamError> {
    let meta: PoolMeta = decode(path, bytes)?;
    if meta.format != FORMAT {
        return Err(IpamError::Corrupt {
            path: path.to_owned(),
            reason: format!("format {} is not supported (this agent reads format {FORMAT}); upgrade OrbitLab", meta.format),
        });
    }
    Ok(meta)
}

/// Decodes a shard and checks that every address lies in `block` and is an
/// address of `pool` other than its network and broadcast addresses.
pub(crate) fn decode_shard(
    path: &str,
    bytes: &[u8],
    pool: &Pool,
    block: u32,
) -> Result<Shard, IpamError> {
    let shard: Shard = decode(path, bytes)?;
    let range = pool.block_range(block);
    for addr in shard.keys() {
        let n = u32::from(*addr);
        if !range.contains(&n) || n == u32::from(pool.cidr().network()) || *addr == pool.cidr().broadcast() {
            return Err(IpamError::Corrupt {
                path: path.to_owned(),
                reason: format!("address {addr} does not belong in this file of pool {} ({})", pool.id(), pool.cidr()),
            });
        }
    }
    Ok(shard)
}

/// Decodes a bucket and checks that every address is inside `pool`.
pub(crate) fn decode_bucket(path: &str, bytes: &[u8], pool: &Pool) -> Result<Bucket, IpamError> {
    let bucket: Bucket = decode(path, bytes)?;
    if let Some((owner, addr)) = bucket.iter().find(|(_, a)| !pool.contains(**a)) {
        return Err(IpamError::Corrupt {
            path: path.to_owned(),
            reason: format!("owner {owner} points to {addr}, outside pool {} ({})", pool.id(), pool.cidr()),
        });
    }
    Ok(bucket)
}

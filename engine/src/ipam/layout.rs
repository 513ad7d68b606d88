//! IPAM's on-disk form: file paths and the JSON documents stored in them.
//! Pure: encoding and decoding only; the session does the I/O.
//!
//! Paths are relative to OrbitLab's root in the store (`/etc/pve/orbitlab`)
//! and come from [`crate::store::layout`], which owns them:
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
use crate::store::layout as store_layout;

/// Largest IPAM file OrbitLab writes (a quarter of pmxcfs' 1 MiB limit).
pub const MAX_FILE_BYTES: usize = 256 * 1024;
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

/// `ipam/`, the directory holding every pool (store-relative, as the
/// [`IpamStore`](super::IpamStore) takes it).
pub(crate) fn pools_dir() -> String {
    store_layout::ipam_dir().relative().to_owned()
}

/// `ipam/<id>/pool.json`.
pub(crate) fn meta_path(id: &PoolId) -> String {
    store_layout::ipam_pool(id).relative().to_owned()
}

/// `ipam/<id>/addr/<a.b.c.0>-24.json`.
pub(crate) fn shard_path(id: &PoolId, block: u32) -> String {
    store_layout::ipam_shard(id, Ipv4Addr::from(block))
        .relative()
        .to_owned()
}

/// `ipam/<id>/owners/<xxx>.json`.
pub(crate) fn bucket_path(id: &PoolId, bucket: u32) -> String {
    store_layout::ipam_bucket(id, bucket).relative().to_owned()
}

/// `ipam.serial`, the change token (see `listing`).
pub(crate) fn token_path() -> String {
    store_layout::ipam_serial().relative().to_owned()
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
    fnv1a32(owner.as_str().as_bytes()) & (bucket_count(pool) - 1)
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Serialises `pool.json`.
pub(crate) fn encode_meta(path: &str, meta: &PoolMeta) -> Result<Vec<u8>, IpamError> {
    let mut bytes = serde_json::to_vec(meta).map_err(|e| IpamError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot encode: {e}"),
    })?;
    bytes.push(b'\n');
    checked_size(path, bytes)
}

/// A key or value of a shard or bucket, appended to JSON text as is.
pub(crate) trait JsonAtom {
    /// Appends the atom's text (which never needs JSON escaping).
    fn push_to(&self, out: &mut String);
}

impl JsonAtom for Ipv4Addr {
    fn push_to(&self, out: &mut String) {
        for (i, octet) in self.octets().into_iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            if octet >= 100 {
                out.push(char::from(b'0' + octet / 100));
            }
            if octet >= 10 {
                out.push(char::from(b'0' + octet / 10 % 10));
            }
            out.push(char::from(b'0' + octet % 10));
        }
    }
}

impl JsonAtom for Owner {
    fn push_to(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
}

/// Encodes an address shard or an owner bucket as one compact JSON object.
/// Keys and values are IPv4 addresses and validated owners (`[a-z0-9._/-]`),
/// which never need escaping; written directly because this runs on every
/// allocation.
pub(crate) fn encode_map<K: JsonAtom, V: JsonAtom>(
    path: &str,
    map: &BTreeMap<K, V>,
) -> Result<Vec<u8>, IpamError> {
    let mut out = String::with_capacity(map.len() * 48 + 4);
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        key.push_to(&mut out);
        out.push_str("\":\"");
        value.push_to(&mut out);
        out.push('"');
    }
    out.push_str("}\n");
    checked_size(path, out.into_bytes())
}

/// Refuses anything larger than [`MAX_FILE_BYTES`].
fn checked_size(path: &str, bytes: Vec<u8>) -> Result<Vec<u8>, IpamError> {
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
            reason: format!(
                "format {} is not supported (this agent reads format {FORMAT}); upgrade OrbitLab",
                meta.format
            ),
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
        if !range.contains(&n)
            || n == u32::from(pool.cidr().network())
            || *addr == pool.cidr().broadcast()
        {
            return Err(IpamError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "address {addr} does not belong in this file of pool {} ({})",
                    pool.id(),
                    pool.cidr()
                ),
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
            reason: format!(
                "owner {owner} points to {addr}, outside pool {} ({})",
                pool.id(),
                pool.cidr()
            ),
        });
    }
    Ok(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::MAX_OWNER_LEN;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn bucket_counts_follow_pool_size() {
        let pool = |cidr: &str| Pool::new(PoolId::backplane(), cidr.parse().unwrap()).unwrap();
        assert_eq!(bucket_count(&pool("10.0.0.0/16")), 512);
        assert_eq!(bucket_count(&pool("10.0.0.0/24")), 2);
        assert_eq!(bucket_count(&pool("10.0.0.0/28")), 1);
        assert_eq!(
            shard_path(&PoolId::backplane(), 0x0ac8_0100),
            "ipam/backplane/addr/10.200.1.0-24.json"
        );
        assert_eq!(
            bucket_path(&PoolId::backplane(), 0x1ff),
            "ipam/backplane/owners/1ff.json"
        );
    }

    fn longest_owner(n: u32) -> Owner {
        let head = format!("lxc/{n:05}-");
        format!("{head}{}", "x".repeat(MAX_OWNER_LEN - head.len()))
            .parse()
            .unwrap()
    }

    #[test]
    fn hand_encoded_maps_are_json_that_decodes_back() {
        let pool = Pool::new(PoolId::backplane(), "10.200.0.0/16".parse().unwrap()).unwrap();
        let shard: Shard = (10..=255u32)
            .map(|o| (Ipv4Addr::from(0x0ac8_0000 + o), longest_owner(o)))
            .collect();
        let bytes = encode_map("s", &shard).unwrap();
        assert_eq!(
            decode_shard("s", &bytes, &pool, 0x0ac8_0000).unwrap(),
            shard
        );
        let bucket: Bucket = shard.iter().map(|(a, o)| (o.clone(), *a)).collect();
        let bytes = encode_map("b", &bucket).unwrap();
        assert_eq!(decode_bucket("b", &bytes, &pool).unwrap(), bucket);
        assert_eq!(
            encode_map::<Owner, Ipv4Addr>("e", &Bucket::new()).unwrap(),
            b"{}\n"
        );
        for addr in ["0.0.0.0", "10.200.9.99", "100.10.1.255", "255.255.255.255"] {
            let mut out = String::new();
            addr.parse::<Ipv4Addr>().unwrap().push_to(&mut out);
            assert_eq!(out, addr);
        }
    }

    #[test]
    fn worst_case_files_stay_far_below_the_limits() {
        // A full /24 shard of the longest owners.
        let shard: Shard = (0..=255u32)
            .map(|o| (Ipv4Addr::from(0x0ac8_ff00 + o), longest_owner(o)))
            .collect();
        let shard_len = encode_map("s", &shard).unwrap().len();
        assert!(shard_len < 40 * 1024, "{shard_len}");
        // A bucket of a /16 holds 128 owners on average; 400 would be a
        // deviation far beyond what FNV-1a gives for distinct names.
        let bucket: Bucket = (0..400u32)
            .map(|n| (longest_owner(n), Ipv4Addr::from(0x0ac8_0000 + n)))
            .collect();
        let bucket_len = encode_map("b", &bucket).unwrap().len();
        assert!(bucket_len < 64 * 1024, "{bucket_len}");
    }

    #[test]
    fn oversized_files_are_refused() {
        let bucket: Bucket = (0..2000u32)
            .map(|n| (longest_owner(n), Ipv4Addr::from(0x0ac8_0000 + n)))
            .collect();
        let err = encode_map("ipam/x/owners/000.json", &bucket).unwrap_err();
        assert!(matches!(err, IpamError::FileTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("ipam/x/owners/000.json"), "{err}");
    }
}

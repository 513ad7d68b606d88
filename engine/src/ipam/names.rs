//! Validated IPAM names: [`PoolId`] (becomes a directory name under
//! `ipam/`) and [`Owner`] (recorded next to each allocated address).
//! Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::IpamError;

/// Longest pool id, in bytes.
pub const MAX_POOL_ID_LEN: usize = 64;
/// Longest owner, in bytes. Together with /24 shards this bounds every IPAM
/// file (see the `ipam` module documentation).
pub const MAX_OWNER_LEN: usize = 128;

/// The id of an address pool, used as its directory name:
/// 1–64 bytes of `[a-z0-9.-]`, starting and ending with a letter or digit,
/// without `..`. Examples: `backplane`, `sector-web-172.16.0.0-24`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(String);

impl PoolId {
    /// The Backplane's pool.
    pub fn backplane() -> Self {
        Self("backplane".into())
    }

    /// The pool of one Sector subnet: `sector-<sector>-<a.b.c.d>-<prefix>`.
    /// Fails when `sector` makes an invalid id.
    pub fn sector_subnet(sector: &str, cidr: Ipv4Net) -> Result<Self, IpamError> {
        format!("sector-{sector}-{}-{}", cidr.network(), cidr.prefix_len()).parse()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PoolId {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_segment(s, MAX_POOL_ID_LEN, |c| c == '.' || c == '-').map_err(|reason| {
            IpamError::InvalidPoolId {
                value: s.to_owned(),
                reason,
            }
        })?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who holds an address: `/`-separated segments of `[a-z0-9._-]`, each
/// starting and ending with a letter or digit, 1–128 bytes in all, without
/// `..`. Examples: `sector/web/gateway`, `sector/web/dns`, `lxc/web1`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Owner(String);

impl Owner {
    /// The owner as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Owner {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| IpamError::InvalidOwner {
            value: s.to_owned(),
            reason,
        };
        if s.len() > MAX_OWNER_LEN {
            return Err(invalid(format!(
                "it is {} bytes long, at most {MAX_OWNER_LEN} are allowed",
                s.len()
            )));
        }
        for segment in s.split('/') {
            check_segment(segment, MAX_OWNER_LEN, |c| c == '.' || c == '-' || c == '_')
                .map_err(|reason| invalid(format!("segment {segment:?}: {reason}")))?;
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Owner {
    type Error = IpamError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Owner> for String {
    fn from(owner: Owner) -> Self {
        owner.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shared rule: non-empty, at most `max` bytes, lowercase letters and
/// digits plus the `extra` punctuation, alphanumeric at both ends, no `..`.
fn check_segment(s: &str, max: usize, extra: impl Fn(char) -> bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > max {
        return Err(format!(
            "it is {} bytes long, at most {max} are allowed",
            s.len()
        ));
    }
    if let Some((pos, c)) = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || extra(c)))
    {
        return Err(format!("{c:?} at byte {pos} is not allowed"));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Err("it must start and end with a letter or digit".into());
    }
    if s.contains("..") {
        return Err("it must not contain \"..\"".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids() {
        assert_eq!(PoolId::backplane().as_str(), "backplane");
        let id = PoolId::sector_subnet("web", "172.16.0.0/24".parse().unwrap()).unwrap();
        assert_eq!(id.as_str(), "sector-web-172.16.0.0-24");
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            ".a",
            "a-",
            "A",
            "a b",
            "a\nb",
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<PoolId>().is_err(), "{bad:?}");
        }
        assert!(PoolId::sector_subnet("We b", "10.0.0.0/24".parse().unwrap()).is_err());
    }

    #[test]
    fn owners() {
        for ok in [
            "sector/web/gateway",
            "lxc/web1",
            "vm/100",
            "a",
            "lb/web_1.x",
        ] {
            assert_eq!(ok.parse::<Owner>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "a/../b",
            "a/.b",
            "A",
            "a b",
            "a\"b",
            "a\nb",
            &"a".repeat(129),
        ] {
            let err = bad.parse::<Owner>().unwrap_err().to_string();
            assert!(err.contains("invalid IPAM owner"), "{bad:?}: {err}");
        }
    }
}

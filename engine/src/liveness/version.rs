//! The version of an agent, as its heartbeat reports it: the package's
//! version (`major.minor.patch`, optionally `-pre`), ordered so that
//! agents can tell which of them is newer during a rolling upgrade.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `major.minor.patch[-pre]`; a pre-release sorts before its release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentVersion {
    numbers: [u64; 3],
    pre: Option<String>,
}

/// A version that is not `major.minor.patch[-pre]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent version {0:?}: expected major.minor.patch, e.g. 0.4.1")]
pub struct VersionError(String);

impl AgentVersion {
    /// The version of this build.
    pub fn this_build() -> AgentVersion {
        env!("CARGO_PKG_VERSION")
            .parse()
            .expect("the package version is major.minor.patch")
    }
}

impl FromStr for AgentVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError(text.to_owned());
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_owned())),
            Some(_) => return Err(bad()),
            None => (text, None),
        };
        let mut numbers = [0u64; 3];
        let mut parts = core.split('.');
        for slot in &mut numbers {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            *slot = part.parse().map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(AgentVersion { numbers, pre })
    }
}

impl Ord for AgentVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers
            .cmp(&other.numbers)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for AgentVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for AgentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.numbers;
        write!(f, "{major}.{minor}.{patch}")?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl Serialize for AgentVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> AgentVersion {
        text.parse().unwrap()
    }

    #[test]
    fn versions_order_numerically_and_pre_releases_first() {
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0") > v("1.0.0-rc1"));
        assert!(v("1.0.0-rc2") > v("1.0.0-rc1"));
        assert_eq!(v("2.3.4").to_string(), "2.3.4");
        assert_eq!(v("2.3.4-beta").to_string(), "2.3.4-beta");
        for bad in [
            "", "1", "1.2", "1.2.3.4", "1.x.3", "1.2.3-", "-1.2.3", "1.2.+3",
        ] {
            assert!(bad.parse::<AgentVersion>().is_err(), "{bad:?}");
        }
        let _ = AgentVersion::this_build();
    }
}

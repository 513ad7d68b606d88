//! Validated names and numbers of the vault: [`SecretPath`], [`Version`],
//! and the [`Timestamp`] every version carries. Pure: no I/O.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Longest secret path, in bytes.
pub const MAX_PATH_LEN: usize = 256;
/// Most segments a secret path may have.
pub const MAX_PATH_DEPTH: usize = 16;

/// Why a secret path or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct InvalidName {
    /// What was being parsed ("secret path", "version").
    pub what: &'static str,
    /// The input, shown escaped (`{:?}`) so control bytes stay visible.
    pub input: String,
    /// Why it was refused and what is allowed.
    pub reason: String,
}

/// Where a secret lives: `a/b/c`, segments of `[A-Za-z0-9._-]`, never `.`
/// or `..`, no leading, trailing or doubled `/`, at most
/// [`MAX_PATH_DEPTH`] segments and [`MAX_PATH_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct SecretPath(String);

impl SecretPath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path with more segments appended (`pki/root` + `key`).
    pub fn join(&self, tail: &str) -> Result<SecretPath, InvalidName> {
        format!("{}/{}", self.0, tail).parse()
    }

    /// True when `self` is `prefix` or lies below it (segment-wise:
    /// `app/db` is under `app` but `application` is not).
    pub fn starts_with(&self, prefix: &SecretPath) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }
}

impl FromStr for SecretPath {
    type Err = InvalidName;

    fn from_str(input: &str) -> Result<Self, InvalidName> {
        let invalid = |reason: String| InvalidName {
            what: "secret path",
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid(
                "it is empty; give a path like `app/db/password`".into(),
            ));
        }
        if input.len() > MAX_PATH_LEN {
            return Err(invalid(format!(
                "it is {} bytes long; at most {MAX_PATH_LEN} are allowed",
                input.len()
            )));
        }
        if input.starts_with('/') {
            return Err(invalid(
                "it starts with `/`; secret paths are relative (`app/db/password`)".into(),
            ));
        }
        let segments: Vec<&str> = input.split('/').collect();
        if segments.len() > MAX_PATH_DEPTH {
            return Err(invalid(format!(
                "it has {} segments; at most {MAX_PATH_DEPTH} are allowed",
                segments.len()
            )));
        }
        for segment in segments {
            if segment.is_empty() {
                return Err(invalid(
                    "it has an empty segment (`//` or a trailing `/`)".into(),
                ));
            }
            if segment == "." || segment == ".." {
                return Err(invalid(format!("it has a `{segment}` segment")));
            }
            if let Some(bad) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return Err(invalid(format!(
                    "it contains {bad:?}; segments may only hold letters, digits, `.`, `_` and `-`"
                )));
            }
        }
        Ok(SecretPath(input.to_owned()))
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SecretPath> for String {
    fn from(path: SecretPath) -> String {
        path.0
    }
}

/// A version number of a secret: 1, 2, 3… Written `3` or `v3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u64", try_from = "u64")]
pub struct Version(NonZeroU64);

impl Version {
    /// The first version of every secret.
    pub const FIRST: Version = Version(NonZeroU64::MIN);

    /// Version `n`; `None` for 0.
    pub fn new(n: u64) -> Option<Version> {
        NonZeroU64::new(n).map(Version)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The version after this one.
    pub fn next(self) -> Version {
        Version(self.0.saturating_add(1))
    }
}

impl FromStr for Version {
    type Err = InvalidName;

    fn from_str(input: &str) -> Result<Self, InvalidName> {
        let digits = input.strip_prefix('v').unwrap_or(input);
        digits
            .parse::<u64>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(Version::new)
            .ok_or_else(|| InvalidName {
                what: "version",
                input: input.to_owned(),
                reason: "versions are whole numbers from 1 (`3` or `v3`)".into(),
            })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u64> for Version {
    type Error = &'static str;

    fn try_from(n: u64) -> Result<Version, &'static str> {
        Version::new(n).ok_or("versions start at 1")
    }
}

impl From<Version> for u64 {
    fn from(v: Version) -> u64 {
        v.get()
    }
}

/// Seconds since the Unix epoch (UTC). Serialized as the number; shown as
/// RFC 3339 (`2025-01-31T12:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i64::try_from(self.0).unwrap_or(i64::MAX);
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for good in [
            "a",
            "app/db/password",
            "pki/root-ca/key",
            "x.y_z-1/.env",
            "a/b..c",
        ] {
            let p: SecretPath = good.parse().unwrap();
            assert_eq!(p.as_str(), good);
        }
        let deep = vec!["s"; MAX_PATH_DEPTH].join("/");
        assert!(deep.parse::<SecretPath>().is_ok());
    }

    #[test]
    fn refuses_bad_paths_with_a_reason() {
        let long = "a".repeat(MAX_PATH_LEN + 1);
        let deep = vec!["s"; MAX_PATH_DEPTH + 1].join("/");
        for (bad, needle) in [
            ("", "empty"),
            ("/abs", "starts with `/`"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("../etc", "`..`"),
            ("a/../b", "`..`"),
            ("a/./b", "`.`"),
            ("a/b\0c", "'\\0'"),
            ("a/b\nc", "'\\n'"),
            ("a b", "' '"),
            ("a/é", "'é'"),
            ("a\\b", "'\\\\'"),
            (long.as_str(), "bytes long"),
            (deep.as_str(), "segments"),
        ] {
            let err = bad.parse::<SecretPath>().unwrap_err().to_string();
            assert!(err.contains(needle), "{bad:?}: {err}");
            assert!(err.starts_with("invalid secret path"), "{err}");
        }
    }

    #[test]
    fn prefixes_are_segment_wise() {
        let p: SecretPath = "app/db/password".parse().unwrap();
        assert!(p.starts_with(&"app".parse().unwrap()));
        assert!(p.starts_with(&"app/db".parse().unwrap()));
        assert!(p.starts_with(&p));
        assert!(!p.starts_with(&"ap".parse().unwrap()));
        assert!(!p.starts_with(&"app/d".parse().unwrap()));
        assert_eq!(p.join("old").unwrap().as_str(), "app/db/password/old");
        assert!(p.join("..").is_err());
    }

    #[test]
    fn versions_parse_and_refuse() {
        assert_eq!("3".parse::<Version>().unwrap().get(), 3);
        assert_eq!("v12".parse::<Version>().unwrap().get(), 12);
        for bad in [
            "0",
            "v0",
            "-1",
            "+2",
            "x",
            "",
            "1.0",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
        assert_eq!(Version::FIRST.next().get(), 2);
    }

    #[test]
    fn timestamps_show_as_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_700_000_000).to_string(), "2023-11-14T22:13:20Z");
    }
}

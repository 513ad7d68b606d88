//! Validated inputs of the PKI: CA and certificate names, DNS names for
//! SANs and name constraints, lifetimes, common names. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct InvalidInput {
    /// What was being parsed.
    pub what: &'static str,
    /// The input (shown escaped).
    pub input: String,
    /// Why, and what is allowed.
    pub reason: String,
}

fn invalid(what: &'static str, input: &str, reason: impl Into<String>) -> InvalidInput {
    InvalidInput {
        what,
        input: input.to_owned(),
        reason: reason.into(),
    }
}

/// Checks an object name: `[a-z0-9][a-z0-9-]*`, 1 to 63 characters, no
/// trailing `-`. These names become store file names and vault paths.
pub(crate) fn check_object_name(what: &'static str, input: &str) -> Result<(), InvalidInput> {
    if input.is_empty() || input.len() > 63 {
        return Err(invalid(what, input, "must be 1 to 63 characters long"));
    }
    if let Some(bad) = input
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(invalid(
            what,
            input,
            format!("contains {bad:?}; only lowercase letters, digits and `-` are allowed"),
        ));
    }
    if input.starts_with('-') || input.ends_with('-') {
        return Err(invalid(what, input, "may not start or end with `-`"));
    }
    Ok(())
}

/// Defines a validated object-name type (see [`check_object_name`]).
macro_rules! object_name {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::pki::InvalidInput;

            fn from_str(input: &str) -> Result<Self, $crate::pki::InvalidInput> {
                $crate::pki::names::check_object_name($what, input)?;
                Ok($name(input.to_owned()))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use object_name;

object_name!(
    /// Name of a certificate authority (`root`, `sector-web`).
    CaName,
    "CA name"
);
object_name!(
    /// Name of a leaf certificate, unique per CA (`web`, `db-client`).
    CertName,
    "certificate name"
);

/// A DNS name for a SAN or a name constraint: labels of `[A-Za-z0-9-]`
/// (1–63 characters, no leading or trailing `-`), at most 253 characters,
/// optionally starting with a `*.` wildcard label. Stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DnsName(String);

impl DnsName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this name lies within the constraint `base` (RFC 5280
    /// dNSName subtree: equal, or ending in `.base`).
    pub fn is_within(&self, base: &DnsName) -> bool {
        let name = self.0.strip_prefix("*.").unwrap_or(&self.0);
        name == base.0 || name.ends_with(&format!(".{}", base.0))
    }
}

impl FromStr for DnsName {
    type Err = InvalidInput;

    fn from_str(input: &str) -> Result<Self, InvalidInput> {
        let what = "DNS name";
        if input.is_empty() || input.len() > 253 {
            return Err(invalid(what, input, "must be 1 to 253 characters long"));
        }
        let rest = input.strip_prefix("*.").unwrap_or(input);
        for label in rest.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid(
                    what,
                    input,
                    "every label must be 1 to 63 characters long",
                ));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(invalid(
                    what,
                    input,
                    format!(
                        "contains {bad:?}; labels hold letters, digits and `-` (a `*.` wildcard only in front)"
                    ),
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid(
                    what,
                    input,
                    "a label may not start or end with `-`",
                ));
            }
        }
        Ok(DnsName(input.to_ascii_lowercase()))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a certificate is valid: whole days (1 to 36500) from the
/// command, any number of seconds from one minute up from a manifest's
/// `lifetime` (short-lived certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Lifetime(u64);

/// Longest lifetime, in days.
const MAX_DAYS: u64 = 36_500;

impl Lifetime {
    /// `days` days; refused outside 1..=36500.
    pub fn days(days: u32) -> Result<Lifetime, InvalidInput> {
        if (1..=MAX_DAYS).contains(&u64::from(days)) {
            Ok(Lifetime(u64::from(days) * 86_400))
        } else {
            Err(invalid(
                "lifetime",
                &days.to_string(),
                "must be 1 to 36500 days",
            ))
        }
    }

    /// `secs` seconds; refused below one minute or above 36500 days.
    pub fn seconds(secs: u64) -> Result<Lifetime, InvalidInput> {
        if (60..=MAX_DAYS * 86_400).contains(&secs) {
            Ok(Lifetime(secs))
        } else {
            Err(invalid(
                "lifetime",
                &format!("{secs}s"),
                "must be one minute to 36500 days",
            ))
        }
    }

    /// A lifetime as records keep it: whole days, or seconds when it is
    /// not a whole number of days.
    pub(crate) fn from_record(days: u32, secs: Option<u64>) -> Result<Lifetime, InvalidInput> {
        match secs {
            Some(s) => Lifetime::seconds(s),
            None => Lifetime::days(days),
        }
    }

    /// The seconds records keep when it is not a whole number of days.
    pub(crate) fn odd_seconds(self) -> Option<u64> {
        (!self.0.is_multiple_of(86_400)).then_some(self.0)
    }

    /// The number of whole days.
    pub fn get(self) -> u32 {
        u32::try_from(self.0 / 86_400).unwrap_or(u32::MAX)
    }

    /// The number of seconds.
    pub fn secs(self) -> u64 {
        self.0
    }
}

impl FromStr for Lifetime {
    type Err = InvalidInput;

    /// `90`, `90d` or `2y` (365-day years).
    fn from_str(input: &str) -> Result<Self, InvalidInput> {
        let bad = || {
            invalid(
                "lifetime",
                input,
                "write days (`90` or `90d`) or years (`2y`)",
            )
        };
        let (digits, factor) = match input.strip_suffix('y') {
            Some(d) => (d, 365),
            None => (input.strip_suffix('d').unwrap_or(input), 1),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = digits.parse().map_err(|_| bad())?;
        Lifetime::days(n.checked_mul(factor).ok_or_else(bad)?)
    }
}

/// Checks a subject common name: 1 to 64 characters, no control characters.
pub(crate) fn check_common_name(input: &str) -> Result<(), InvalidInput> {
    if input.is_empty() || input.chars().count() > 64 {
        return Err(invalid(
            "common name",
            input,
            "must be 1 to 64 characters long",
        ));
    }
    if input.chars().any(char::is_control) {
        return Err(invalid(
            "common name",
            input,
            "may not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        assert!("root".parse::<CaName>().is_ok());
        assert!("sector-web-1".parse::<CertName>().is_ok());
        for bad in [
            "",
            "Root",
            "a_b",
            "-a",
            "a-",
            "../x",
            "a/b",
            "a\nb",
            &"x".repeat(64),
        ] {
            let err = bad.parse::<CaName>().unwrap_err().to_string();
            assert!(err.starts_with("invalid CA name"), "{err}");
        }
    }

    #[test]
    fn dns_names_and_constraints() {
        let n: DnsName = "Web.Example.internal".parse().unwrap();
        assert_eq!(n.as_str(), "web.example.internal");
        let base: DnsName = "example.internal".parse().unwrap();
        assert!(n.is_within(&base));
        assert!(base.is_within(&base));
        assert!(
            "*.example.internal"
                .parse::<DnsName>()
                .unwrap()
                .is_within(&base)
        );
        assert!(
            !"badexample.internal"
                .parse::<DnsName>()
                .unwrap()
                .is_within(&base)
        );
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a.*.b",
            "a_b.c",
            "é.x",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<DnsName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lifetimes() {
        assert_eq!("90".parse::<Lifetime>().unwrap().get(), 90);
        assert_eq!("30d".parse::<Lifetime>().unwrap().get(), 30);
        assert_eq!("2y".parse::<Lifetime>().unwrap().get(), 730);
        for bad in ["0", "", "y", "-1", "1.5", "36501", "999999999999y"] {
            assert!(bad.parse::<Lifetime>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn common_names() {
        assert!(check_common_name("OrbitLab Root CA").is_ok());
        assert!(check_common_name("").is_err());
        assert!(check_common_name("a\nb").is_err());
    }
}

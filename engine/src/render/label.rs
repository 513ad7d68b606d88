//! `DnsLabel`: the one name type that may reach a rendered file.
//!
//! Sector names, host names, gateway host names and ingress rule names all
//! end up inside configuration files (nftables comments, `frr.conf`,
//! dnsmasq records) and inside DNS names such as
//! `<host>.<sector>.orbitlab.internal`. A DNS label (RFC 1123 host name
//! label, lowercase only) is safe in all of those places: no space, quote,
//! newline, slash, dot or other byte that could change the meaning of the
//! surrounding file. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use super::RenderError;

/// Longest allowed label, in bytes (the DNS limit).
pub const MAX_LABEL_LEN: usize = 63;

/// A validated lowercase DNS label: 1–63 bytes of `[a-z0-9-]`, neither
/// starting nor ending with `-`.
///
/// Construct it with [`str::parse`]; a bad name is refused with
/// [`RenderError::InvalidName`] saying which byte is wrong.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsLabel(String);

impl DnsLabel {
    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DnsLabel {
    type Err = RenderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| RenderError::InvalidName {
            value: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if s.len() > MAX_LABEL_LEN {
            return Err(invalid(format!(
                "it is {} bytes long, at most {MAX_LABEL_LEN} are allowed",
                s.len()
            )));
        }
        if let Some((pos, c)) = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(invalid(format!(
                "{c:?} at byte {pos} is not allowed (only lowercase letters, digits and '-')"
            )));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(invalid("it must not start or end with '-'".into()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for DnsLabel {
    type Error = RenderError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl AsRef<str> for DnsLabel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["web", "a", "web-1", "0day", &"x".repeat(63)] {
            assert_eq!(ok.parse::<DnsLabel>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_that_could_escape_a_config_file() {
        for bad in [
            "",
            "Web",
            "we b",
            "web\n",
            "we\"b",
            "we'b",
            "web;",
            "a.b",
            "a/b",
            "..",
            "-web",
            "web-",
            "wéb",
            "web#x",
            "web}",
            &"x".repeat(64),
        ] {
            let err = bad.parse::<DnsLabel>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("invalid name"), "{bad:?}: {msg}");
            assert!(!msg.contains('\n'), "error must stay on one line: {msg:?}");
        }
    }
}

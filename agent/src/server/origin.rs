//! Browser origins the API answers CORS requests for, written exactly as
//! browsers send them in the `Origin` header (the WHATWG URL serialisation
//! of an origin): `https://` and a host — a DNS name in lower case (an
//! internationalised name in its `xn--` form) or an IP address, IPv6 in
//! brackets and compressed (`[2001:db8::1]`) — and `:PORT` unless it is
//! 443. Nothing else: no user, path, query or fragment, no wildcard, no
//! plain `http`.
//!
//! [`UiOrigin`] checks and normalises such an origin; [`UiOrigin::of_host`]
//! and [`UiOrigin::of_ip`] build one for a host and port (the web UI's
//! [`UI_PORT`]). Pure.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use url::{Host, Url};

/// The Proxmox VE web UI's port (pveproxy).
pub const UI_PORT: u16 = 8006;

/// A browser origin allowed to call the API with credentials (CORS), as
/// browsers send it (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UiOrigin(String);

/// Why a text is not a usable origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a web UI origin: {reason}; write it as https://HOST[:PORT] (such as https://pve1.example.com:8006): the scheme, host and port of the address the web UI is opened at, nothing after them"
)]
pub struct OriginError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl UiOrigin {
    /// The origin as browsers send it, e.g. `https://pve1:8006`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https://HOST:PORT` for `host`, a DNS name or an IP address (IPv6
    /// with or without brackets).
    pub fn of_host(host: &str, port: u16) -> Result<UiOrigin, OriginError> {
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(UiOrigin::of_ip(ip, port)),
            Err(_) => format!("https://{host}:{port}").parse(),
        }
    }

    /// `https://IP:PORT` (IPv6 in brackets).
    pub fn of_ip(ip: IpAddr, port: u16) -> UiOrigin {
        let text = match ip {
            IpAddr::V4(v4) => format!("https://{v4}:{port}"),
            IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
        };
        text.parse()
            .expect("an IP address and a port make an origin")
    }
}

/// Compares with an origin as written (tests, and `Origin` headers).
impl PartialEq<&str> for UiOrigin {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for UiOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UiOrigin {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<UiOrigin> for String {
    fn from(origin: UiOrigin) -> String {
        origin.0
    }
}

/// Whether `label` may be part of a host name: letters, digits, `-` and
/// `_` (browsers accept it, some internal names carry it), 1 to 63
/// characters, not starting or ending with `-`.
fn valid_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl FromStr for UiOrigin {
    type Err = OriginError;

    /// Checks `text` and writes it as browsers send it: `HTTPS://PVE1:443/`
    /// is `https://pve1`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: &str| OriginError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(refuse("it is empty"));
        }
        if trimmed.contains('*') {
            return Err(refuse(
                "wildcards are not allowed; list each origin the web UI is reached at",
            ));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(refuse("it has no scheme (https://)"));
        };
        if !scheme.eq_ignore_ascii_case("https") {
            return Err(refuse(
                "only https origins are allowed (the Proxmox web UI is served over HTTPS)",
            ));
        }
        // What follows the host and port: nothing, or a lone `/`.
        let tail = rest
            .find(['/', '?', '#', '\\'])
            .map_or("", |at| &rest[at..]);
        if !(tail.is_empty() || tail == "/") {
            return Err(refuse(
                "an origin has no path, query or fragment (the part from the first / on)",
            ));
        }
        let url = Url::parse(trimmed).map_err(|e| refuse(&format!("it is not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("an origin has no user name or password"));
        }
        match url.host() {
            None => return Err(refuse("it has no host")),
            Some(Host::Domain(domain)) => {
                if domain.len() > 253 || !domain.split('.').all(valid_label) {
                    return Err(refuse(
                        "the host is neither a DNS name (letters, digits and -, dot-separated, without a final dot) nor an IP address",
                    ));
                }
            }
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {}
        }
        if url.port() == Some(0) {
            return Err(refuse("port 0 cannot be connected to"));
        }
        Ok(UiOrigin(url.origin().ascii_serialization()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> String {
        text.parse::<UiOrigin>()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    }

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        assert_eq!(origin("https://pve1:8006"), "https://pve1:8006");
        assert_eq!(
            origin(" HTTPS://PVE1.Example.COM:8006/ "),
            "https://pve1.example.com:8006"
        );
        // The default port is left out, as browsers leave it out.
        assert_eq!(
            origin("https://pve.example.com:443"),
            "https://pve.example.com"
        );
        assert_eq!(origin("https://pve.example.com"), "https://pve.example.com");
        assert_eq!(origin("https://192.0.2.10:8006"), "https://192.0.2.10:8006");
        assert_eq!(
            origin("https://[2001:DB8:0:0:0:0:0:1]:8006"),
            "https://[2001:db8::1]:8006"
        );
        assert_eq!(
            origin("https://bücher.example:8006"),
            "https://xn--bcher-kva.example:8006"
        );
        assert_eq!(origin("https://pve_1.lan:8006"), "https://pve_1.lan:8006");
    }

    #[test]
    fn hosts_and_addresses_make_origins() {
        let of_host = |h: &str| UiOrigin::of_host(h, UI_PORT).unwrap().to_string();
        assert_eq!(of_host("pve1"), "https://pve1:8006");
        assert_eq!(of_host("PVE1.example.com"), "https://pve1.example.com:8006");
        assert_eq!(of_host("192.168.1.11"), "https://192.168.1.11:8006");
        assert_eq!(of_host("fd00::11"), "https://[fd00::11]:8006");
        assert_eq!(of_host("[fd00::11]"), "https://[fd00::11]:8006");
        assert!(UiOrigin::of_host("*.example.com", UI_PORT).is_err());
        assert!(UiOrigin::of_host("pve 1", UI_PORT).is_err());
        // An IPv4-mapped IPv6 address as the URL standard writes it (not
        // Rust's dotted form).
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            UiOrigin::of_ip(mapped, UI_PORT).as_str(),
            "https://[::ffff:c000:201]:8006"
        );
        assert_eq!(
            UiOrigin::of_ip("2001:db8:0:1:0:0:0:1".parse().unwrap(), 443).as_str(),
            "https://[2001:db8:0:1::1]"
        );
    }

    #[test]
    fn anything_but_an_origin_is_refused_clearly() {
        for (text, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("*", "wildcards"),
            ("https://*.example.com:8006", "wildcards"),
            ("pve1:8006", "no scheme"),
            ("http://pve1:8006", "only https"),
            ("null", "no scheme"),
            ("https://pve1:8006/pve2/", "no path"),
            ("https://pve1:8006/#v1", "no path"),
            ("https://pve1:8006?x=1", "no path"),
            ("https://root@pve1:8006", "no user name"),
            ("https://pve1:99999", "not a URL"),
            ("https://pve1:0", "port 0"),
            ("https://:8006", "not a URL"),
            ("https://pve1.example.com.:8006", "DNS name"),
            ("https://-pve1:8006", "DNS name"),
            ("https://pve!1:8006", "DNS name"),
            ("https://[fe80::1%25eth0]:8006", "not a URL"),
        ] {
            let err = text.parse::<UiOrigin>().expect_err(text);
            let shown = err.to_string();
            assert!(shown.contains(needle), "{text:?}: {shown}");
            assert!(shown.contains("https://HOST[:PORT]"), "{shown}");
        }
    }
}

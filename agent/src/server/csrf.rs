//! CSRF prevention tokens, checked on the node exactly as Proxmox checks
//! them, so that no daemon's answer is taken as proof (pvedaemon, running
//! as root, checks no CSRF token at all).
//!
//! Proxmox's rule (pve-common `PVE/Ticket.pm`, pve-access-control
//! `PVE/AccessControl.pm`):
//! - the key is the whole content of `/etc/pve/pve-www.key` (an RSA key in
//!   PEM made at cluster creation; root:www-data, 0640 on pmxcfs); the
//!   HMAC secret is `base64(HMAC-SHA256(key = file content, data = ""))`
//!   (Perl's `hmac_sha256_base64($input)`: a single argument is the key),
//!   standard alphabet without `=` padding (43 characters);
//! - a token is `TIMESTAMP:SIGNATURE`: `TIMESTAMP` the issue time as 8
//!   upper-case hex digits (`%08X` of the Unix time), `SIGNATURE` =
//!   `base64(HMAC-SHA256(key = secret, data = "TIMESTAMP:USER"))`, again
//!   unpadded, `USER` the ticket's `user@realm`;
//! - accepted while `-300 < now - TIMESTAMP < 7200` (seconds; the 5-minute
//!   clock-skew grace and the 2-hour ticket lifetime, both bounds
//!   exclusive).
//!
//! The user is read from the ticket itself (`PVE:USER:TIMESTAMP::SIG`):
//! the cookie is percent-decoded once, as pveproxy reads it, and the user
//! part once more, as pve-common's `verify_rsa_ticket` does; this is only
//! sound after Proxmox accepted that ticket: its RSA signature covers the
//! user. The signature comparison is constant-time.
//!
//! Side effects: [`verify`] reads the key file on every call (no copy of
//! the key is kept); nothing is written.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key file's name under the pmxcfs root (`/etc/pve/pve-www.key`).
pub const WWW_KEY_FILE: &str = "pve-www.key";
/// A token dated this many seconds in the future or more is refused.
const FUTURE_GRACE_S: i64 = 300;
/// A token this many seconds old or more is refused.
const LIFETIME_S: i64 = 7200;
/// Larger key files are refused unread (pmxcfs files stay under 1 MiB;
/// Proxmox's key is about 1.7 KiB).
const MAX_KEY_BYTES: u64 = 1 << 20;

/// Why a CSRF prevention token was not accepted. The text never holds the
/// token, the key or the secret.
#[derive(Debug, thiserror::Error)]
pub enum CsrfError {
    /// Not `TIMESTAMP:SIGNATURE` as Proxmox makes it.
    #[error("the CSRF prevention token is malformed")]
    Malformed,
    /// The signature is not the one for this user and time.
    #[error("the CSRF prevention token does not belong to this ticket's user")]
    Mismatch,
    /// Genuine, but older than the ticket lifetime.
    #[error("the CSRF prevention token has expired")]
    Expired,
    /// Genuine, but dated too far in the future (clock skew).
    #[error("the CSRF prevention token is dated in the future; check the clocks")]
    Future,
    /// The node's key could not be read: nothing can be checked.
    #[error(
        "cannot read the node's CSRF key {path}: {reason}; it is made by Proxmox when the cluster is created (pvecm updatecerts), check that /etc/pve is mounted"
    )]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why (an I/O error, or what is wrong with the file).
        reason: String,
    },
}

impl CsrfError {
    /// Whether the token itself was refused (rather than the check being
    /// impossible).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, CsrfError::Key { .. })
    }
}

/// Reads the key at `key_file` and checks `token` for `user` at `now`
/// (Unix seconds); see the module doc.
pub fn verify(key_file: &Path, user: &str, token: &str, now: i64) -> Result<(), CsrfError> {
    let key = read_key(key_file)?;
    verify_with_key(&key, user, token, now)
}

fn read_key(path: &Path) -> Result<Vec<u8>, CsrfError> {
    let error = |reason: String| CsrfError::Key {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if !meta.is_file() {
        return Err(error("not a regular file".into()));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(error(format!("larger than {MAX_KEY_BYTES} bytes")));
    }
    let key = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    if key.is_empty() {
        return Err(error("the file is empty".into()));
    }
    Ok(key)
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// The HMAC secret Proxmox derives from the key file's content.
fn secret(key: &[u8]) -> String {
    STANDARD_NO_PAD.encode(mac(key).finalize().into_bytes())
}

/// Checks `token` for `user` at `now` with the key file's content `key`.
pub fn verify_with_key(key: &[u8], user: &str, token: &str, now: i64) -> Result<(), CsrfError> {
    let (stamp, signature) = token.split_once(':').ok_or(CsrfError::Malformed)?;
    if stamp.len() != 8
        || !stamp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return Err(CsrfError::Malformed);
    }
    // Unpadded standard base64 without stray bits: exactly the strings
    // Proxmox compares with `eq`.
    let signature = STANDARD_NO_PAD
        .decode(signature)
        .map_err(|_| CsrfError::Malformed)?;
    let mut m = mac(secret(key).as_bytes());
    m.update(stamp.as_bytes());
    m.update(b":");
    m.update(user.as_bytes());
    m.verify_slice(&signature)
        .map_err(|_| CsrfError::Mismatch)?;
    let issued = i64::from_str_radix(stamp, 16).map_err(|_| CsrfError::Malformed)?;
    let age = now.saturating_sub(issued);
    if age >= LIFETIME_S {
        Err(CsrfError::Expired)
    } else if age <= -FUTURE_GRACE_S {
        Err(CsrfError::Future)
    } else {
        Ok(())
    }
}

/// The user a full Proxmox ticket (`PVE:USER:TIMESTAMP::SIGNATURE`, as
/// sent, possibly percent-encoded) names, read as Proxmox reads it; `None`
/// for anything else, including the partial tickets of a second-factor
/// login (`tfa!`, `u2f!`, `!tfa!`), which Proxmox accepts for nothing but
/// `POST /access/tfa`.
pub fn ticket_user(ticket: &str) -> Option<String> {
    let ticket = uri_unescape(ticket)?;
    let (plain, signature) = ticket.rsplit_once("::")?;
    if signature.is_empty() || signature.contains(':') || signature.contains(char::is_whitespace) {
        return None;
    }
    let rest = plain.strip_prefix("PVE:")?;
    if rest.contains(char::is_whitespace) {
        return None;
    }
    let (data, stamp) = rest.rsplit_once(':')?;
    if data.is_empty()
        || stamp.len() != 8
        || !stamp
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return None;
    }
    let user = uri_unescape(data)?;
    let partial = user.starts_with("tfa!") || user.starts_with("u2f!") || user.starts_with("!tfa!");
    (!partial && !user.is_empty()).then_some(user)
}

/// `%XX` escapes decoded (two hex digits; anything else is kept), as
/// Perl's `URI::Escape::uri_unescape`; `None` if the result is not UTF-8.
fn uri_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).ok()?);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content of a key file, and tokens Perl's `Digest::SHA` made
    /// from it exactly as Proxmox does (reproduce with
    /// `perl -MDigest::SHA=hmac_sha256_base64`: secret =
    /// `hmac_sha256_base64($content)` (the content is the key), token =
    /// `"$ts:" . hmac_sha256_base64("$ts:$user", $secret)`).
    const KEY: &[u8] = b"not a real RSA key, just the bytes of pve-www.key\n";
    const ROOT_TOKEN: &str = "6650A1B2:W3iYGRMceLflwgB4rZxC7RWeXKqqPSHvHYKn3LYo1VY";
    const ALICE_TOKEN: &str = "6650A1B2:RgL3/GqaS/h0lzAnL8dmi0feGhCSydcA+Q7nfEPZ9uQ";
    const ISSUED: i64 = 0x6650_A1B2;

    #[test]
    fn derives_the_secret_and_tokens_as_proxmox_does() {
        assert_eq!(secret(KEY), "hy5M0kTtrR7PEhNV5PEUhgRfjd7H2cb1mzAZL1nks8A");
        verify_with_key(KEY, "root@pam", ROOT_TOKEN, ISSUED).unwrap();
        verify_with_key(KEY, "alice@pve", ALICE_TOKEN, ISSUED + 60).unwrap();
    }

    #[test]
    fn refuses_other_users_keys_and_altered_tokens() {
        let mismatch = |key: &[u8], user, token| {
            matches!(
                verify_with_key(key, user, token, ISSUED),
                Err(CsrfError::Mismatch)
            )
        };
        assert!(mismatch(KEY, "alice@pve", ROOT_TOKEN));
        assert!(mismatch(KEY, "root@pam", ALICE_TOKEN));
        assert!(mismatch(b"another key\n", "root@pam", ROOT_TOKEN));
        // The same signature with another time.
        let moved = ROOT_TOKEN.replacen("6650A1B2", "6650A1B3", 1);
        assert!(mismatch(KEY, "root@pam", &moved));
        for bad in [
            "",
            "6650A1B2",
            "6650a1b2:W3iYGRMceLflwgB4rZxC7RWeXKqqPSHvHYKn3LYo1VY",
            "6650A1B:W3iYGRMceLflwgB4rZxC7RWeXKqqPSHvHYKn3LYo1VY",
            // Padded, or with stray bits in the last character: not the
            // string Proxmox compares against.
            "6650A1B2:W3iYGRMceLflwgB4rZxC7RWeXKqqPSHvHYKn3LYo1VY=",
            "6650A1B2:W3iYGRMceLflwgB4rZxC7RWeXKqqPSHvHYKn3LYo1VZ",
        ] {
            assert!(
                matches!(
                    verify_with_key(KEY, "root@pam", bad, ISSUED),
                    Err(CsrfError::Malformed)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn accepts_only_inside_the_age_window() {
        let at = |now| verify_with_key(KEY, "root@pam", ROOT_TOKEN, now);
        at(ISSUED + 7199).unwrap();
        at(ISSUED - 299).unwrap();
        assert!(matches!(at(ISSUED + 7200), Err(CsrfError::Expired)));
        assert!(matches!(at(ISSUED - 300), Err(CsrfError::Future)));
    }

    #[test]
    fn a_missing_or_empty_key_is_a_failure_to_check_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WWW_KEY_FILE);
        let missing = verify(&path, "root@pam", ROOT_TOKEN, ISSUED).unwrap_err();
        assert!(!missing.is_refusal());
        assert!(missing.to_string().contains(&*path.to_string_lossy()));
        std::fs::write(&path, "").unwrap();
        assert!(
            !verify(&path, "root@pam", ROOT_TOKEN, ISSUED)
                .unwrap_err()
                .is_refusal()
        );
        std::fs::write(&path, KEY).unwrap();
        verify(&path, "root@pam", ROOT_TOKEN, ISSUED).unwrap();
        let wrong = verify(&path, "root@pam", "6650A1B2:AAAA", ISSUED).unwrap_err();
        assert!(wrong.is_refusal());
        assert!(!wrong.to_string().contains("AAAA"));
    }

    #[test]
    fn reads_the_user_of_full_tickets_only() {
        let user = |t: &str| ticket_user(t);
        assert_eq!(
            user("PVE:alice@pve:6650A1B2::c2ln+/=").as_deref(),
            Some("alice@pve")
        );
        // As browsers keep the cookie.
        assert_eq!(
            user("PVE%3Aalice%40pve%3A6650A1B2%3A%3Ac2ln%2B%3D").as_deref(),
            Some("alice@pve")
        );
        for bad in [
            "PVE:6650A1B2::sig",
            "PVE:alice@pve:6650A1B2::",
            "PVE:alice@pve:6650A1B2::si:g",
            "PVE:alice@pve:6650A1B::sig",
            "PVE:tfa!alice@pve:6650A1B2::sig",
            "PVE:u2f!alice@pve!challenge:6650A1B2::sig",
            "PVE:!tfa!%7B%7D:6650A1B2::sig",
            "PMG:alice@pmg:6650A1B2::sig",
            "PVE:al ice@pve:6650A1B2::sig",
        ] {
            assert_eq!(user(bad), None, "{bad}");
        }
    }
}

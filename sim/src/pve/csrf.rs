//! CSRF prevention tokens made and checked as Proxmox makes and checks
//! them (pve-common `PVE/Ticket.pm`, pve-access-control
//! `PVE/AccessControl.pm`), with the simulator's own `pve-www.key`:
//! secret = unpadded base64 of HMAC-SHA256 keyed by the key file's bytes
//! over nothing; token = `%08X` of the issue time, `:`, unpadded base64 of
//! HMAC-SHA256 (key = secret) over `TIME:USER`; accepted while
//! `-300 < now - TIME < 7200`.
//!
//! A real key file holds an RSA key in PEM; only its bytes matter, so the
//! simulator writes random text. The key is a simulator secret: `Debug`
//! hides it.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key file's name under the pmxcfs root (`/etc/pve/pve-www.key`).
pub const WWW_KEY_FILE: &str = "pve-www.key";

/// The content of a `pve-www.key`.
#[derive(Clone)]
pub struct WwwKey(Vec<u8>);

impl fmt::Debug for WwwKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WwwKey(hidden)")
    }
}

fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

impl WwwKey {
    /// A key with this content.
    pub fn from_bytes(content: impl Into<Vec<u8>>) -> Self {
        WwwKey(content.into())
    }

    /// A fresh random key (text, like the PEM file Proxmox makes).
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        WwwKey(
            format!(
                "-----BEGIN ORBITLAB SIMULATOR KEY-----\n{}\n-----END ORBITLAB SIMULATOR KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
            .into_bytes(),
        )
    }

    /// The key in `path`; when there is none, a fresh one written there
    /// (mode 0640, through a temporary file renamed into place, as on
    /// pmxcfs).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(content) if !content.is_empty() => return Ok(WwwKey(content)),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is empty", path.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = Self::generate();
        let tmp = path.with_file_name(format!("{WWW_KEY_FILE}.tmp.{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&tmp)?;
        file.write_all(&key.0)?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        Ok(key)
    }

    fn secret(&self) -> String {
        hmac_base64(&self.0, &[])
    }

    /// The token Proxmox would issue to `user` at `unix_time`.
    pub fn token(&self, user: &str, unix_time: u64) -> String {
        let stamp = format!("{unix_time:08X}");
        let signature = hmac_base64(
            self.secret().as_bytes(),
            &[stamp.as_bytes(), b":", user.as_bytes()],
        );
        format!("{stamp}:{signature}")
    }

    /// Whether Proxmox would accept `token` for `user` at `now`.
    pub fn accepts(&self, user: &str, token: &str, now: u64) -> bool {
        let Some((stamp, _)) = token.split_once(':') else {
            return false;
        };
        if stamp.len() != 8
            || !stamp
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            return false;
        }
        let Ok(issued) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        let expected = format!(
            "{stamp}:{}",
            hmac_base64(
                self.secret().as_bytes(),
                &[stamp.as_bytes(), b":", user.as_bytes()]
            )
        );
        let age = i128::from(now) - i128::from(issued);
        super::endpoints::access::same(&expected, token) && age > -300 && age < 7200
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_perl_digest_sha_and_the_age_window() {
        // Made with Perl's Digest::SHA the way Proxmox makes them.
        let key = WwwKey::from_bytes(&b"not a real RSA key, just the bytes of pve-www.key\n"[..]);
        assert_eq!(
            key.token("alice@pve", 0x6650_A1B2),
            "6650A1B2:RgL3/GqaS/h0lzAnL8dmi0feGhCSydcA+Q7nfEPZ9uQ"
        );
        let token = key.token("root@pam", 0x6650_A1B2);
        assert_eq!(
            token,
            "6650A1B2:W3iYGRMceLflwgB4rZxC7RWeXKqqPSHvHYKn3LYo1VY"
        );
        assert!(key.accepts("root@pam", &token, 0x6650_A1B2 + 7199));
        assert!(!key.accepts("root@pam", &token, 0x6650_A1B2 + 7200));
        assert!(key.accepts("root@pam", &token, 0x6650_A1B2 - 299));
        assert!(!key.accepts("root@pam", &token, 0x6650_A1B2 - 300));
        assert!(!key.accepts("alice@pve", &token, 0x6650_A1B2));
        assert!(!WwwKey::generate().accepts("root@pam", &token, 0x6650_A1B2));
        assert!(!format!("{key:?}").contains("RSA"));
    }

    #[test]
    fn a_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WWW_KEY_FILE);
        let first = WwwKey::load_or_create(&path).unwrap();
        let again = WwwKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        assert_eq!(std::fs::read(&path).unwrap(), first.0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o137, 0, "{mode:o}: more than 0640");
    }
}

//! The protocol between the agent and the helper inside OrbitLab's
//! appliances (`/usr/sbin/orbitlab-appliance`, `appliances/README.md`): a
//! whole configuration goes in as one bundle, is checked by the real tools
//! inside the container, and is switched to atomically, or refused with
//! nothing changed.
//!
//! Through [`super::ContainerHost`]:
//! 1. `orbitlab-appliance prepare ID` makes the staging directory
//!    `/var/lib/orbitlab/staging/ID/`;
//! 2. every file is pushed under its absolute path inside it
//!    ([`staged_path`]), then, last, `MANIFEST` ([`manifest`]: one line per
//!    file, `MODE SHA256 PATH`), so that an incomplete push is detected;
//! 3. `orbitlab-appliance apply ID` validates, switches, reloads the
//!    services, and keeps the last good bundle.
//!
//! Bundle ids are never reused: the configuration's digest and the time
//! ([`BundleId::new`]). [`push`] runs the three steps through a
//! [`super::ContainerHost`]; everything else here is pure.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The helper, as installed in every appliance template.
pub const HELPER: &str = "/usr/sbin/orbitlab-appliance";

/// Where bundles are staged inside the container.
pub const STAGING_DIR: &str = "/var/lib/orbitlab/staging";

/// The manifest's name inside a staged bundle.
pub const MANIFEST: &str = "MANIFEST";

/// A bundle's id: letters, digits, `.`, `_` and `-`, at most 64
/// characters (the helper's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleId(String);

impl BundleId {
    /// The id of configuration `digest` (hex) pushed at `at`: its first 16
    /// hex digits and the time in milliseconds, so a configuration pushed
    /// again (a lost record) still gets a new id.
    pub fn new(digest: &str, at: SystemTime) -> BundleId {
        let head: String = digest
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(16)
            .collect();
        let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        BundleId(format!("{head}-{ms}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file of a bundle: where it belongs in the container, its mode, and
/// its content.
pub trait BundleFile {
    fn path(&self) -> &str;
    fn mode(&self) -> u32;
    fn content(&self) -> &[u8];
}

impl BundleFile for crate::render::RenderedFile {
    fn path(&self) -> &str {
        self.path
    }
    fn mode(&self) -> u32 {
        self.mode
    }
    fn content(&self) -> &[u8] {
        self.content.as_bytes()
    }
}

/// `orbitlab-appliance prepare ID`.
pub fn prepare(id: &BundleId) -> Vec<String> {
    vec![HELPER.to_owned(), "prepare".to_owned(), id.0.clone()]
}

/// `orbitlab-appliance apply ID`.
pub fn apply(id: &BundleId) -> Vec<String> {
    vec![HELPER.to_owned(), "apply".to_owned(), id.0.clone()]
}

/// Where file `path` (absolute) of bundle `id` is pushed.
pub fn staged_path(id: &BundleId, path: &str) -> String {
    format!("{STAGING_DIR}/{id}{path}")
}

/// Where the manifest of bundle `id` is pushed.
pub fn manifest_path(id: &BundleId) -> String {
    format!("{STAGING_DIR}/{id}/{MANIFEST}")
}

/// The manifest of `files`: `MODE SHA256 PATH` per line, the mode as four
/// octal digits.
pub fn manifest<F: BundleFile>(files: &[F]) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "{:04o} {} {}\n",
                f.mode(),
                hex::encode(Sha256::digest(f.content())),
                f.path()
            )
        })
        .collect()
}

/// Pushes `files` into container `vmid` on `node` as bundle `id` and has
/// the helper apply it: prepare, every file, the manifest last, apply. The
/// agent's one way of configuring an appliance. An `Err` from `apply`
/// means the helper refused the bundle (or rolled back) and the appliance
/// still runs its previous configuration.
pub fn push<F: BundleFile>(
    host: &dyn super::ContainerHost,
    node: &str,
    vmid: u32,
    id: &BundleId,
    files: &[F],
) -> Result<(), super::HostError> {
    host.exec(node, vmid, &prepare(id))?;
    for file in files {
        host.push(
            node,
            vmid,
            &staged_path(id, file.path()),
            file.mode(),
            file.content(),
        )?;
    }
    // Last: the helper refuses a bundle whose files do not match it.
    host.push(
        node,
        vmid,
        &manifest_path(id),
        0o644,
        manifest(files).as_bytes(),
    )?;
    host.exec(node, vmid, &apply(id))
}

/// What applying bundle `id` puts in place, read back from what was
/// staged (`staged(path)` gives the content pushed at `path`): each file of
/// its manifest with its mode and content, checked against the manifest's
/// sha256. For stand-ins of the helper (the tests' container hosts); the
/// helper itself also runs the real tools.
pub fn unpack(
    id: &BundleId,
    staged: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<(String, u32, Vec<u8>)>, String> {
    let manifest = staged(&manifest_path(id)).ok_or("no MANIFEST was pushed")?;
    let manifest = String::from_utf8(manifest).map_err(|_| "the MANIFEST is not text")?;
    manifest
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let (Some(mode), Some(sha), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("bad MANIFEST line {line:?}"));
            };
            let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode in {line:?}"))?;
            let content =
                staged(&staged_path(id, path)).ok_or_else(|| format!("{path} was not pushed"))?;
            if hex::encode(Sha256::digest(&content)) != sha {
                return Err(format!("{path} does not match the MANIFEST"));
            }
            Ok((path.to_owned(), mode, content))
        })
        .collect()
}

/// The bundle id an `apply` command names, if `argv` is one.
pub fn applied(argv: &[String]) -> Option<BundleId> {
    match argv {
        [helper, verb, id] if helper == HELPER && verb == "apply" => Some(BundleId(id.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct F(&'static str, u32, &'static str);

    impl BundleFile for F {
        fn path(&self) -> &str {
            self.0
        }
        fn mode(&self) -> u32 {
            self.1
        }
        fn content(&self) -> &[u8] {
            self.2.as_bytes()
        }
    }

    #[test]
    fn ids_paths_and_manifest_follow_the_helpers_rules() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let id = BundleId::new(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            at,
        );
        assert_eq!(id.as_str(), "9f86d081884c7d65-1700000000123");
        assert!(id.as_str().len() <= 64);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        assert_eq!(
            staged_path(&id, "/etc/nftables.conf"),
            "/var/lib/orbitlab/staging/9f86d081884c7d65-1700000000123/etc/nftables.conf"
        );
        assert_eq!(
            manifest(&[F("/etc/nftables.conf", 0o755, "test")]),
            "0755 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 /etc/nftables.conf\n"
        );
        assert_eq!(applied(&apply(&id)), Some(id.clone()));
        assert_eq!(applied(&prepare(&id)), None);

        let files = [F("/etc/a", 0o644, "one"), F("/etc/b", 0o755, "two")];
        let mut pushed = std::collections::BTreeMap::new();
        for f in &files {
            pushed.insert(staged_path(&id, f.0), f.2.as_bytes().to_vec());
        }
        let read =
            |pushed: &std::collections::BTreeMap<String, Vec<u8>>, p: &str| pushed.get(p).cloned();
        assert_eq!(
            unpack(&id, |p| read(&pushed, p)).unwrap_err(),
            "no MANIFEST was pushed"
        );
        pushed.insert(manifest_path(&id), manifest(&files).into_bytes());
        let out = unpack(&id, |p| read(&pushed, p)).unwrap();
        assert_eq!(out[1], ("/etc/b".to_owned(), 0o755, b"two".to_vec()));
        pushed.insert(staged_path(&id, "/etc/a"), b"changed".to_vec());
        assert!(
            unpack(&id, |p| read(&pushed, p))
                .unwrap_err()
                .contains("/etc/a does not match")
        );
    }
}

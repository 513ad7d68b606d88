//! What an instance declares it receives: secret files
//! (`spec.secrets`), certificate files (`spec.certificates`), and the
//! validated path, owner, mode and command types they are made of.
//!
//! Rules: every path is absolute, without `.`/`..` segments and of plain
//! characters; a file that holds a secret (a secret's value, a
//! certificate's private key) goes to a tmpfs (`/run/...` or
//! `/dev/shm/...`) unless `on_disk: true` says the container's disk is
//! wanted; no mode is world-writable or set-id. Whether the file really
//! lands on a tmpfs is checked again inside the container when it is
//! delivered. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::names::{InvalidValue, Name, shown, validated_string};

/// Directories whose files live in memory (tmpfs) in OrbitLab's and
/// Debian's containers.
pub const TMPFS_DIRS: &[&str] = &["/run/", "/dev/shm/"];

validated_string!(
    /// An absolute path inside a container, such as `/run/secrets/db`:
    /// segments of letters, digits, `.`, `_`, `-`, `+`, `@`; no `.` or
    /// `..` segment, no empty one, not a directory (`/` at the end); at
    /// most 255 bytes.
    FilePath,
    check_file_path
);

const PATH_HINT: &str = "a file path is absolute, such as /run/secrets/db-password, made of letters, digits, '.', '_', '-', '+', '@' and '/'";

impl FilePath {
    /// The directory holding the file.
    pub fn parent(&self) -> &str {
        match self.0.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &self.0[..i],
        }
    }

    /// True when the path lies in one of [`TMPFS_DIRS`].
    pub fn in_tmpfs_dir(&self) -> bool {
        TMPFS_DIRS.iter().any(|d| self.0.starts_with(d))
    }
}

fn check_file_path(value: &str) -> Result<(), InvalidValue> {
    let fail = |why: &str| Err(InvalidValue(format!("{} {why}; {PATH_HINT}", shown(value))));
    if !value.starts_with('/') {
        return fail("is not absolute");
    }
    if value.len() > 255 {
        return fail("is longer than 255 bytes");
    }
    if value.ends_with('/') {
        return fail("ends with '/' (it names a directory)");
    }
    for segment in value[1..].split('/') {
        if segment.is_empty() {
            return fail("has an empty segment ('//')");
        }
        if segment == "." || segment == ".." {
            return fail("has a '.' or '..' segment");
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@')))
        {
            return fail(&format!("contains {c:?}"));
        }
    }
    Ok(())
}

/// Permission bits written in octal, such as `"0400"`: no set-id or sticky
/// bits, never writable by others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileMode(u32);

impl FileMode {
    /// The bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Read by the owner only (`0400`), the default for secrets and keys.
    pub const OWNER_READ: FileMode = FileMode(0o400);
    /// Read by everyone (`0444`), the default for certificates and chains.
    pub const ALL_READ: FileMode = FileMode(0o444);
    /// Read and written by the owner (`0600`): `authorized_keys`.
    pub const OWNER_RW: FileMode = FileMode(0o600);
}

impl std::str::FromStr for FileMode {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        let fail = |why: &str| {
            Err(InvalidValue(format!(
                "{} {why}; a mode is three or four octal digits such as \"0400\" or \"0640\"",
                shown(value)
            )))
        };
        if !(3..=4).contains(&value.len()) || !value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return fail("is not octal");
        }
        let bits = u32::from_str_radix(value, 8).expect("checked octal");
        if bits > 0o777 {
            return fail("sets set-id or sticky bits");
        }
        if bits & 0o002 != 0 {
            return fail("lets every user write the file");
        }
        Ok(FileMode(bits))
    }
}

impl TryFrom<String> for FileMode {
    type Error = InvalidValue;
    fn try_from(v: String) -> Result<Self, InvalidValue> {
        v.parse()
    }
}

impl From<FileMode> for String {
    fn from(m: FileMode) -> String {
        format!("{:04o}", m.0)
    }
}

validated_string!(
    /// `user` or `user:group`, each a name (`www-data`) or a number
    /// (`1000`), resolved inside the container.
    FileOwner,
    check_owner
);

impl FileOwner {
    /// `root:root`.
    pub fn root() -> FileOwner {
        FileOwner("root:root".into())
    }
}

fn check_owner(value: &str) -> Result<(), InvalidValue> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && (p.bytes().all(|b| b.is_ascii_digit())
                || (p.as_bytes()[0].is_ascii_lowercase() || p.as_bytes()[0] == b'_')
                    && p.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
                    }))
    };
    let ok = match value.split_once(':') {
        Some((u, g)) => part_ok(u) && part_ok(g),
        None => part_ok(value),
    };
    if ok {
        Ok(())
    } else {
        Err(InvalidValue(format!(
            "{} is not an owner; write user or user:group, each a name such as www-data or a number such as 1000",
            shown(value)
        )))
    }
}

validated_string!(
    /// One argument of a command run inside a container (no shell sees
    /// it): 1–256 printable characters, no newline or NUL.
    Arg,
    check_arg
);

fn check_arg(value: &str) -> Result<(), InvalidValue> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(InvalidValue(format!(
            "{} is not a command argument; each is 1 to 256 printable characters",
            shown(value)
        )));
    }
    Ok(())
}

/// A secret an instance receives as a file (`spec.secrets[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    /// The `Secret` (its manifest must grant this instance read access).
    pub secret: Name,
    /// Where the value goes; under `/run/` or `/dev/shm/` unless `on_disk`.
    pub path: FilePath,
    /// Permission bits; default `0400`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// Owner; default `root:root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<FileOwner>,
    /// Allow the value onto the container's disk (default false: tmpfs
    /// only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
}

/// A certificate an instance receives (`spec.certificates[]`): its
/// certificate, chain and private key files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// The `Certificate` (a server or client certificate).
    pub certificate: Name,
    /// Where the certificate goes (mode `0444`).
    pub cert: FilePath,
    /// Where its private key goes; under `/run/` or `/dev/shm/` unless
    /// `on_disk`.
    pub key: FilePath,
    /// Where the chain (the certificate, then its issuers up to the root)
    /// goes (mode `0444`), if wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<FilePath>,
    /// Permission bits of the key; default `0400`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// Owner of the three files; default `root:root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<FileOwner>,
    /// Allow the key onto the container's disk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
    /// A command run inside after new files were delivered (argv, no
    /// shell), such as `[systemctl, reload, nginx]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload: Vec<Arg>,
}

/// The problems of a secret-holding path: `field` is refused when it is
/// off tmpfs without `on_disk`.
pub(crate) fn check_tmpfs(
    p: &mut crate::error::Problems,
    field: String,
    path: &FilePath,
    on_disk: bool,
) {
    if !on_disk && !path.in_tmpfs_dir() {
        p.push(
            field,
            format!(
                "{path} is on the container's disk, and secrets go to memory only unless declared: put it under /run/ or /dev/shm/, or set on_disk: true"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p: FilePath = "/run/secrets/db".parse().unwrap();
        assert_eq!(p.parent(), "/run/secrets");
        assert!(p.in_tmpfs_dir());
        assert!(!"/etc/app/key".parse::<FilePath>().unwrap().in_tmpfs_dir());
        for (bad, why) in [
            ("run/x", "not absolute"),
            ("/run/../etc/shadow", "'..'"),
            ("/run//x", "empty segment"),
            ("/run/x/", "ends with '/'"),
            ("/run/a b", "' '"),
            ("/run/a\nb", "'\\n'"),
            ("/run/$(x)", "'$'"),
        ] {
            let err = bad.parse::<FilePath>().expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn modes_and_owners() {
        assert_eq!("0400".parse::<FileMode>().unwrap().bits(), 0o400);
        assert_eq!(String::from("640".parse::<FileMode>().unwrap()), "0640");
        assert!(
            "0666"
                .parse::<FileMode>()
                .unwrap_err()
                .to_string()
                .contains("every user write")
        );
        assert!(
            "4755"
                .parse::<FileMode>()
                .unwrap_err()
                .to_string()
                .contains("set-id")
        );
        assert!("0x00".parse::<FileMode>().is_err());
        for ok in ["root", "www-data:www-data", "1000:1000", "_apt", "app:33"] {
            assert!(ok.parse::<FileOwner>().is_ok(), "{ok}");
        }
        for bad in ["", "Root", "a:b:c", "a;b", "a b", ":g", "u:"] {
            assert!(bad.parse::<FileOwner>().is_err(), "{bad}");
        }
        assert!("a\nb".parse::<Arg>().is_err());
        assert!("nginx".parse::<Arg>().is_ok());
    }
}

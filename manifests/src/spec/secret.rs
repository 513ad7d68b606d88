//! `kind: Secret` — a secret's metadata and who may read it. The value
//! never appears in a manifest: it lives encrypted in the vault under
//! `priv/orbitlab/`, at the Secret's `path` (default: its name).
//!
//! Access is declared here, "code is the policy": `readers` lists the
//! instances (by name, or by a label [`Selector`]) that may receive the
//! value. An instance receives a secret only when it declares it
//! (`spec.secrets` of the `Lxc`) *and* a reader entry grants it; both
//! directions are checked by [`crate::ManifestSet`] before anything is
//! stored. Vault paths under `ssh/` and `pki/` hold OrbitLab's own keys
//! and cannot be named. A selector grant names at least one label an
//! instance must have (one that only excludes would grant every new
//! instance). Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::names::{InvalidValue, Name, shown, validated_string};
use crate::selector::Selector;

/// What a secret holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SecretType {
    /// A password: when the vault holds no value, the agents generate one
    /// (24 letters and digits) as version 1.
    Password,
    /// An API token.
    Token,
    /// Anything else.
    #[default]
    Opaque,
}

validated_string!(
    /// A vault path such as `app/db/password`: 1–16 segments of letters,
    /// digits, `.`, `_`, `-` separated by `/`, at most 256 bytes.
    VaultPath,
    check_vault_path
);

/// Vault areas that hold OrbitLab's own keys (SSH keys, CA and certificate
/// keys); a Secret cannot name them.
pub const RESERVED_VAULT_AREAS: &[&str] = &["ssh", "pki"];

impl VaultPath {
    /// The reserved area ([`RESERVED_VAULT_AREAS`]) the path lies in.
    pub fn reserved_area(&self) -> Option<&'static str> {
        let first = self.0.split('/').next().unwrap_or_default();
        RESERVED_VAULT_AREAS.iter().copied().find(|a| *a == first)
    }
}

fn check_vault_path(value: &str) -> Result<(), InvalidValue> {
    let fail = |why: &str| {
        Err(InvalidValue(format!(
            "{} {why}; a vault path is 1 to 16 segments of letters, digits, '.', '_' or '-' separated by '/', such as app/db/password",
            shown(value)
        )))
    };
    if value.is_empty() || value.len() > 256 {
        return fail("is empty or longer than 256 bytes");
    }
    let segments: Vec<&str> = value.split('/').collect();
    if segments.len() > 16 {
        return fail("has more than 16 segments");
    }
    for s in segments {
        if s.is_empty() || s == "." || s == ".." {
            return fail("has an empty, '.' or '..' segment");
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return fail(&format!("contains {c:?}"));
        }
    }
    Ok(())
}

/// One grant of read access (`spec.readers[]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reader {
    /// `lxc: NAME`: this instance.
    Lxc(Name),
    /// `selector: "app=web"`: every instance whose labels match.
    Selector(Selector),
}

impl std::fmt::Display for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reader::Lxc(n) => write!(f, "lxc {n}"),
            Reader::Selector(s) => write!(f, "selector {s}"),
        }
    }
}

/// The metadata of a secret (its description lives in `metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// What the secret holds.
    #[serde(default, rename = "type")]
    #[garde(skip)]
    pub secret_type: SecretType,
    /// The vault path of the value; default: the Secret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub path: Option<VaultPath>,
    /// Who may receive the value; nobody when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub readers: Vec<Reader>,
}

impl SecretSpec {
    /// The vault path of the Secret named `name`.
    pub fn vault_path(&self, name: &Name) -> VaultPath {
        self.path
            .clone()
            .unwrap_or_else(|| VaultPath(name.as_str().to_owned()))
    }

    pub(crate) fn check(&self, p: &mut Problems) {
        if let Some(path) = &self.path
            && let Some(area) = path.reserved_area()
        {
            p.push(
                "path",
                format!(
                    "{path} lies in {area}/, where OrbitLab keeps its own keys; choose a path outside ssh/ and pki/"
                ),
            );
        }
        for (i, r) in self.readers.iter().enumerate() {
            if let Reader::Selector(s) = r
                && !s.terms().iter().any(crate::selector::Term::is_positive)
            {
                p.push(
                    format!("readers[{i}].selector"),
                    format!(
                        "{s} only excludes, so it grants every instance without those labels, today's and tomorrow's; add a term that names what it grants, such as app=web"
                    ),
                );
            }
        }
        for (i, first) in super::rules::duplicates(&self.readers, |r| r) {
            p.push(
                format!("readers[{i}]"),
                format!("{} is already listed at readers[{first}]", self.readers[i]),
            );
        }
    }
}

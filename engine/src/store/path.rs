//! Relative paths inside OrbitLab's two areas of the cluster filesystem.
//!
//! - [`Area::Config`]: `<root>/orbitlab/` — manifests, status, IPAM; files
//!   0640 (pmxcfs shows them to `www-data`'s group).
//! - [`Area::Private`]: `<root>/priv/orbitlab/` — vault, keys, credentials;
//!   root-only, files 0600.
//!
//! A [`StorePath`] can only be built from components that cannot escape the
//! area (`..`, absolute paths, empty components) or clash with the store's
//! own temporary files.

use std::fmt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Suffix marker of the temporary files written before a rename.
pub(crate) const TMP_MARKER: &str = ".tmp.";

/// Which part of the cluster filesystem a path lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    /// `<root>/orbitlab/`: readable by the `www-data` group on pmxcfs.
    Config,
    /// `<root>/priv/orbitlab/`: root-only.
    Private,
}

impl Area {
    /// The area's directory relative to the store root.
    pub fn dir(self) -> &'static str {
        match self {
            Area::Config => "orbitlab",
            Area::Private => "priv/orbitlab",
        }
    }

    /// Mode for new files (pmxcfs imposes the same ones).
    pub(crate) fn file_mode(self) -> u32 {
        match self {
            Area::Config => 0o640,
            Area::Private => 0o600,
        }
    }

    /// Mode for new directories.
    pub(crate) fn dir_mode(self) -> u32 {
        match self {
            Area::Config => 0o750,
            Area::Private => 0o700,
        }
    }
}

/// A validated path relative to one [`Area`]; may name a file or directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath {
    area: Area,
    rel: String,
}

impl StorePath {
    /// A path under `<root>/orbitlab/`, e.g. `manifests/sector/web.yaml`.
    pub fn config(rel: &str) -> Result<Self, StoreError> {
        Self::new(Area::Config, rel)
    }

    /// A path under `<root>/priv/orbitlab/`, e.g. `vault/keyring.json`.
    pub fn private(rel: &str) -> Result<Self, StoreError> {
        Self::new(Area::Private, rel)
    }

    /// The area's own top directory (useful for listing).
    pub fn area_root(area: Area) -> Self {
        StorePath {
            area,
            rel: String::new(),
        }
    }

    /// Validates `rel` (components separated by `/`) inside `area`.
    pub fn new(area: Area, rel: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidPath {
            path: rel.to_owned(),
            reason,
        };
        if rel.is_empty() {
            return Err(invalid("is empty".into()));
        }
        if rel.len() > 512 {
            return Err(invalid(format!("is {} bytes long; at most 512", rel.len())));
        }
        for component in rel.split('/') {
            check_component(component).map_err(invalid)?;
        }
        Ok(StorePath {
            area,
            rel: rel.to_owned(),
        })
    }

    /// This path with one more validated component appended.
    pub fn join(&self, component: &str) -> Result<Self, StoreError> {
        check_component(component).map_err(|reason| StoreError::InvalidPath {
            path: component.to_owned(),
            reason,
        })?;
        let rel = if self.rel.is_empty() {
            component.to_owned()
        } else {
            format!("{}/{}", self.rel, component)
        };
        Ok(StorePath {
            area: self.area,
            rel,
        })
    }

    /// The area this path lives in.
    pub fn area(&self) -> Area {
        self.area
    }

    /// The path relative to its area.
    pub fn relative(&self) -> &str {
        &self.rel
    }

    /// The last component (empty for an area root).
    pub fn file_name(&self) -> &str {
        self.rel.rsplit('/').next().unwrap_or("")
    }

    /// The absolute path under `root` (the pmxcfs mount, `/etc/pve`).
    pub fn under(&self, root: &Path) -> PathBuf {
        let base = root.join(self.area.dir());
        if self.rel.is_empty() {
            base
        } else {
            base.join(&self.rel)
        }
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.area.dir(), self.rel)
    }
}

/// One path component: `[A-Za-z0-9._@+-]`, not starting with a dot, never
/// `..`, never containing the temporary-file marker.
fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("has an empty component (`//`, or a leading or trailing `/`)".into());
    }
    if component == "." || component == ".." {
        return Err(format!("has a `{component}` component"));
    }
    if component.starts_with('.') {
        return Err(format!("component {component:?} starts with a dot"));
    }
    if component.contains(TMP_MARKER) {
        return Err(format!(
            "component {component:?} contains `{TMP_MARKER}`, reserved for temporary files"
        ));
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')))
    {
        return Err(format!(
            "component {component:?} contains {bad:?}; only letters, digits and . _ - @ + are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        let p = StorePath::config("manifests/sector/web.yaml").unwrap();
        assert_eq!(p.file_name(), "web.yaml");
        assert_eq!(
            p.under(Path::new("/r")),
            PathBuf::from("/r/orbitlab/manifests/sector/web.yaml")
        );
        let q = StorePath::private("vault")
            .unwrap()
            .join("keyring.json")
            .unwrap();
        assert_eq!(
            q.under(Path::new("/r")),
            PathBuf::from("/r/priv/orbitlab/vault/keyring.json")
        );
    }

    #[test]
    fn refuses_escapes_and_odd_bytes() {
        for (bad, needle) in [
            ("../etc/passwd", "`..`"),
            ("/abs", "empty component"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("a/.hidden", "starts with a dot"),
            ("a/b\nc", "'\\n'"),
            ("a/b c", "' '"),
            ("a/b\"c", "'\"'"),
            ("a/x.tmp.12", "temporary"),
            ("", "is empty"),
        ] {
            let err = StorePath::config(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
        assert!(StorePath::config("a").unwrap().join("..").is_err());
    }
}

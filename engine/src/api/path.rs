//! The API's path tree, shared by the `orbitlab` command and the agent's
//! HTTPS server:
//!
//! ```text
//! /                         the collections below
//! /cluster                  the cluster manifest (one per cluster)
//! /settings                 agent settings (one per cluster)
//! /nodes[/{name}]           per-node settings
//! /sectors[/{name}]         Sectors
//! /lxc[/{name}]             instances
//! /appliances[/{name}]      appliance templates
//! /secrets[/{name}]         secret metadata (values: `orbitlab secret`)
//! /certificates[/{name}]    certificates
//! /ssh-keys[/{name}]        SSH key manifests
//! ```
//!
//! Beside these object collections the tree holds the vault
//! (`/vault/...`, [`super::VaultPath`]), SSH keys (`/ssh/keys/...`,
//! [`super::SshPath`]), the CA (`/pki/...`, [`super::PkiPath`]), the plan
//! (`GET /plan`), a status summary (`GET /status`) and one object's
//! reported status (`GET /status/{collection}/{name}`, e.g.
//! `/status/sectors/web`).

use std::fmt;
use std::str::FromStr;

use orbitlab_manifests::{Kind, Name};

/// A parsed API path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/`.
    Root,
    /// `/sectors`: every object of a kind (for singletons: the object).
    Collection(Kind),
    /// `/sectors/web`.
    Object(Kind, Name),
}

/// A path that is not in the tree, with what is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such path {path:?}: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

impl PathError {
    /// `path` is not in the tree, for `reason`.
    pub fn at(path: &str, reason: impl Into<String>) -> Self {
        PathError {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What follows `root` in `path` (`""` for `root` itself, else starting
/// with `/`), or `None` when `path` is neither `root` nor below it.
pub(crate) fn below<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let rest = path.trim_end_matches('/').strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The URL segment of a kind's collection.
pub fn collection_segment(kind: Kind) -> &'static str {
    match kind {
        Kind::Cluster => "cluster",
        Kind::Node => "nodes",
        Kind::Sector => "sectors",
        Kind::Lxc => "lxc",
        Kind::Appliance => "appliances",
        Kind::Secret => "secrets",
        Kind::Certificate => "certificates",
        Kind::SshKey => "ssh-keys",
        Kind::Settings => "settings",
        Kind::Pool => "pools",
    }
}

fn kind_of_segment(segment: &str) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| collection_segment(*k) == segment)
}

impl FromStr for ApiPath {
    type Err = PathError;

    fn from_str(path: &str) -> Result<Self, PathError> {
        let error = |reason: String| PathError::at(path, reason);
        let trimmed = path.trim_end_matches('/');
        let Some(rest) = trimmed
            .strip_prefix('/')
            .or((trimmed.is_empty() && path == "/").then_some(""))
        else {
            return Err(error("paths start with `/`, e.g. /sectors/web".into()));
        };
        let mut segments = rest.split('/').filter(|s| !s.is_empty());
        let Some(first) = segments.next() else {
            return Ok(ApiPath::Root);
        };
        let kind = kind_of_segment(first).ok_or_else(|| {
            error(format!(
                "unknown collection {first:?}; one of: {}",
                Kind::ALL.map(collection_segment).join(", ")
            ))
        })?;
        let Some(name) = segments.next() else {
            return Ok(ApiPath::Collection(kind));
        };
        if let Some(extra) = segments.next() {
            return Err(error(format!(
                "nothing below {first}/{name} (found {extra:?})"
            )));
        }
        let name = name
            .parse::<Name>()
            .map_err(|e| error(format!("object name: {e}")))?;
        Ok(ApiPath::Object(kind, name))
    }
}

impl fmt::Display for ApiPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiPath::Root => f.write_str("/"),
            ApiPath::Collection(kind) => write!(f, "/{}", collection_segment(*kind)),
            ApiPath::Object(kind, name) => write!(f, "/{}/{name}", collection_segment(*kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tree() {
        assert_eq!("/".parse::<ApiPath>().unwrap(), ApiPath::Root);
        assert_eq!(
            "/sectors".parse::<ApiPath>().unwrap(),
            ApiPath::Collection(Kind::Sector)
        );
        assert_eq!(
            "/ssh-keys/".parse::<ApiPath>().unwrap(),
            ApiPath::Collection(Kind::SshKey)
        );
        let web = "/sectors/web".parse::<ApiPath>().unwrap();
        assert_eq!(web, ApiPath::Object(Kind::Sector, "web".parse().unwrap()));
        assert_eq!(web.to_string(), "/sectors/web");
        for kind in Kind::ALL {
            let path = ApiPath::Collection(kind).to_string();
            assert_eq!(path.parse::<ApiPath>().unwrap(), ApiPath::Collection(kind));
        }
    }

    #[test]
    fn refuses_what_is_not_in_the_tree() {
        for (bad, needle) in [
            ("sectors", "start with `/`"),
            ("/vpcs", "unknown collection"),
            ("/sectors/web/extra", "nothing below"),
            ("/sectors/We b", "object name"),
            ("/sectors/..", "object name"),
        ] {
            let err = bad.parse::<ApiPath>().unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}

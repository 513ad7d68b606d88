//! The steps of the identity controllers ([`IdentityStep`]: SSH keys,
//! CAs, certificates, CRLs, through the ssh and pki engines) and of
//! deliveries into instances ([`DeliveryPlan`]). Plans name what to
//! deliver by version, serial or fingerprint, never by value: values are
//! read from the vault only when the step runs, on the instance's node.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use orbitlab_manifests::{Arg, FileMode, FileOwner, FilePath, Name, NodeName, SshKeyAlgorithm};

use super::ids::Marker;
use crate::pki::{CaName, CertName};
use crate::pve::Vmid;
use crate::vault::{SecretPath, Version};

/// One step of an SSH key's or a certificate's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityStep {
    /// Generates the key (its private half goes into the vault).
    CreateSshKey(SshKeyMaking),
    /// Replaces the current key; the old one stays as the previous key.
    RotateSshKey(SshKeyMaking),
    /// Forgets the previous key once its overlap is over.
    DropPreviousSshKey { name: Name },
    /// Creates a root (no parent) or intermediate CA.
    CreateCa(Box<CaMaking>),
    /// Signs a CA's certificate again (same key and subject), valid for
    /// the manifest's lifetime.
    RenewCa { ca: CaName, lifetime_secs: u64 },
    /// Issues a leaf certificate with a new key.
    IssueCertificate(Box<LeafMaking>),
    /// Issues a leaf again before it expires (new key, same names), valid
    /// for the manifest's lifetime.
    RenewCertificate {
        ca: CaName,
        name: CertName,
        lifetime_secs: u64,
    },
    /// Signs a CA's CRL again.
    PublishCrl { ca: CaName },
    /// Stores a generated password as version 1 of a `type: password`
    /// Secret that has no value (never shown anywhere).
    GeneratePassword { path: SecretPath },
}

impl IdentityStep {
    /// Order inside the identity phase: root CAs, then intermediates, then
    /// leaves (each needs its issuer), CRLs last.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            IdentityStep::CreateCa(ca) if ca.parent.is_none() => 0,
            IdentityStep::RenewCa { .. } | IdentityStep::GeneratePassword { .. } => 0,
            IdentityStep::CreateCa(_) => 1,
            IdentityStep::PublishCrl { .. } => 3,
            _ => 2,
        }
    }
}

/// How an SSH key is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyMaking {
    pub name: Name,
    pub algorithm: SshKeyAlgorithm,
    pub comment: Option<String>,
    /// The vault path of the Secret whose value encrypts the private key.
    pub passphrase: Option<SecretPath>,
}

/// How a CA is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaMaking {
    pub ca: CaName,
    pub parent: Option<CaName>,
    pub common_name: Option<String>,
    pub lifetime_secs: u64,
    pub path_len: Option<u8>,
    pub permitted_dns: Vec<String>,
}

/// How a leaf certificate is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafMaking {
    pub ca: CaName,
    pub name: CertName,
    pub client: bool,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub lifetime_secs: u64,
}

/// Where the content of a delivered file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A version of a Secret's value.
    Secret {
        name: Name,
        path: SecretPath,
        version: Version,
    },
    /// A leaf certificate (PEM) with this serial.
    Certificate {
        ca: CaName,
        name: CertName,
        serial: String,
    },
    /// The leaf and the CAs above it up to the root (PEM).
    Chain {
        ca: CaName,
        name: CertName,
        serial: String,
    },
    /// The leaf's private key (PEM, from the vault).
    CertificateKey {
        ca: CaName,
        name: CertName,
        serial: String,
    },
    /// `authorized_keys` lines of these keys (current and previous).
    AuthorizedKeys { keys: Vec<Name> },
}

impl FileSource {
    /// True when the content is secret (read from the vault).
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            FileSource::Secret { .. } | FileSource::CertificateKey { .. }
        )
    }
}

/// One file of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFile {
    pub path: FilePath,
    pub mode: FileMode,
    pub owner: FileOwner,
    /// It must land on a tmpfs.
    pub tmpfs: bool,
    pub source: FileSource,
}

/// Everything an instance declares it receives, delivered into its
/// running container on its own node, then recorded
/// ([`super::identities::record`]). Runs on the container's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPlan {
    pub marker: Marker,
    pub vmid: Vmid,
    pub node: NodeName,
    pub files: Vec<DeliveryFile>,
    /// Files delivered earlier that are no longer declared: removed.
    pub remove: Vec<FilePath>,
    /// Commands run inside afterwards (the `reload` of each certificate
    /// whose files change).
    pub reloads: Vec<Vec<Arg>>,
    /// What the container will hold (see
    /// [`super::identities::Delivered::holds`]).
    pub holds: BTreeMap<String, String>,
    /// Identifies this delivery: files, owners, modes and versions.
    pub digest: String,
    /// The container's start time as observed.
    pub booted: Option<u64>,
}

impl fmt::Display for IdentityStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityStep::CreateSshKey(k) => write!(
                f,
                "generate SSH key {} ({:?}) into the vault",
                k.name, k.algorithm
            ),
            IdentityStep::RotateSshKey(k) => write!(
                f,
                "rotate SSH key {}: a new key, the current one kept as previous",
                k.name
            ),
            IdentityStep::DropPreviousSshKey { name } => {
                write!(f, "drop the previous key of SSH key {name} (overlap over)")
            }
            IdentityStep::CreateCa(ca) => match &ca.parent {
                Some(p) => write!(f, "create intermediate CA {} signed by {p}", ca.ca),
                None => write!(f, "create root CA {}", ca.ca),
            },
            IdentityStep::RenewCa { ca, .. } => write!(f, "renew the certificate of CA {ca}"),
            IdentityStep::IssueCertificate(l) => write!(
                f,
                "issue {} certificate {} from CA {} for {}",
                if l.client { "client" } else { "server" },
                l.name,
                l.ca,
                l.dns
                    .iter()
                    .cloned()
                    .chain(l.ips.iter().map(ToString::to_string))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            IdentityStep::RenewCertificate { ca, name, .. } => {
                write!(f, "renew certificate {name} of CA {ca} before it expires")
            }
            IdentityStep::PublishCrl { ca } => write!(f, "publish a new CRL of CA {ca}"),
            IdentityStep::GeneratePassword { path } => {
                write!(f, "generate a password into the vault at {path}")
            }
        }
    }
}

impl fmt::Display for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileSource::Secret {
                name,
                path,
                version,
            } => write!(f, "secret {name} ({path}) v{version}"),
            FileSource::Certificate { name, serial, .. } => {
                write!(f, "certificate {name} {serial}")
            }
            FileSource::Chain { name, serial, .. } => write!(f, "chain of {name} {serial}"),
            FileSource::CertificateKey { name, serial, .. } => {
                write!(f, "key of {name} {serial}")
            }
            FileSource::AuthorizedKeys { keys } => write!(
                f,
                "ssh keys {}",
                keys.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl fmt::Display for DeliveryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deliver into container {} on {}: {}",
            self.vmid,
            self.node,
            self.files
                .iter()
                .map(|x| {
                    format!(
                        "{} ({}, {} {})",
                        x.path,
                        x.source,
                        String::from(x.mode),
                        x.owner.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if !self.remove.is_empty() {
            let remove: Vec<&str> = self.remove.iter().map(FilePath::as_str).collect();
            write!(f, "; remove {}", remove.join(", "))?;
        }
        if !self.reloads.is_empty() {
            write!(
                f,
                "; then run {}",
                self.reloads
                    .iter()
                    .map(|r| r.iter().map(Arg::as_str).collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("; ")
            )?;
        }
        Ok(())
    }
}

//! OrbitLab manifests: the typed, validated form of everything a person
//! declares. Pure: no file or network I/O happens in this crate.
//!
//! - [`Kind`], [`ApiVersion`]: what a manifest is and which schema it uses.
//! - [`Name`], [`NodeName`] and the other validated identifier and text
//!   types: every string that can reach a config, a shell, a Proxmox
//!   parameter or a path is checked when it is built.
//! - [`Manifest`] (`apiVersion`, `kind`, `metadata`, `spec`) and the typed
//!   specs in [`spec`]; [`Manifest::validate`] checks one object,
//!   [`validate_update`] the fields that never change.
//! - [`codec`]: [`decode`] multi-document YAML into [`Sourced`] manifests
//!   (file label + line), [`encode`] them back, stable and readable.
//! - [`ManifestSet`]: a whole set, validated together (unique names,
//!   resolved references, no loops), with a dependency order.
//!
//! Every refusal is a [`ManifestError`] naming the file, the line where
//! known, the field and the reason:
//! `sectors/web.yaml:7: spec.subnets[1].cidr: 10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16`.

pub mod cidr;
pub mod codec;
mod error;
mod kind;
mod manifest;
mod names;
pub mod period;
pub mod selector;
mod set;
mod sourced;
pub mod spec;
mod text;

pub use codec::{MAX_FILE_BYTES, decode, decode_all, encode, encode_all};
pub use error::{ManifestError, ManifestErrors};
pub use kind::{ApiVersion, Kind};
pub use manifest::{MAX_LABELS, Manifest, Metadata, validate_update};
pub use names::{
    BridgeName, DnsName, InvalidValue, LabelKey, LabelValue, Name, NodeName, StorageId, Version,
    VolumeId,
};
pub use period::Period;
pub use selector::{Selector, SelectorError, Term};
pub use set::ManifestSet;
pub use sourced::Sourced;
pub use spec::lxc::AUTHORIZED_KEYS;
pub use spec::{
    ApplianceRole, ApplianceSpec, BackplaneSpec, CertificateRole, CertificateSpec, ClusterDefaults,
    ClusterSpec, HaResourceState, HaSpec, IngressRule, LogLevel, LxcSpec, NodeSpec,
    PlacementPolicy, PowerState, Protocol, Reader, Reference, SecretSpec, SecretType, SectorSpec,
    SettingsSpec, Spec, SshKeyAlgorithm, SshKeySpec, SubnetSpec, VaultPath,
};
pub use spec::{Arg, CertificateFiles, FileMode, FileOwner, FilePath, SecretFile};
pub use spec::{
    Autoscale, HealthCheck, HttpCheck, HttpPath, PoolSpec, Probe, Spread, TcpCheck, UpdateStrategy,
};
pub use text::{Alias, Comment, CommonName, Description};

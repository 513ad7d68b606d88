//! Every file, directory and lock OrbitLab keeps in the cluster
//! filesystem: the one place their names are written down. Other modules
//! ask this one for a [`StorePath`] (or a [`Lock`]) and never build one
//! from text. The names are part of the on-disk format of existing
//! clusters: `tests::the_on_disk_layout_is_pinned` fails on any rename.
//!
//! `<root>/orbitlab/` ([`Area::Config`](super::Area::Config); directories 0750, files 0640):
//!
//! | path                                   | constructor             | content, writer |
//! |----------------------------------------|-------------------------|-----------------|
//! | `manifests/<kind>/<name>.yaml`         | [`manifest`]            | desired state, YAML; people, the command, GitOps |
//! | `status/<kind>/<name>.json`            | [`status`]              | observed state, JSON ([`crate::status::ObjectStatus`]); agents only |
//! | `status/containers/<vmid>.json`        | [`pushed`]              | configuration last pushed to a container, JSON; the agent of its node |
//! | `status/deliveries/<vmid>.json`        | [`delivered`]           | what was last delivered into an instance (digest, versions held, boot), JSON; the agent of its node |
//! | `generation`                           | [`generation`]          | change counter, one decimal number; every writer of manifests |
//! | `agents/<node>.json`                   | [`agent`]               | the node's agent heartbeat, JSON ([`crate::liveness::AgentRecord`]); that agent, every few seconds |
//! | `sdn/vnet-tags.json`                   | [`vnet_tags`]           | VNet tag → Sector, JSON; under [`Lock::Ipam`] |
//! | `sdn/uplinks.json`                     | [`uplinks`]             | each member node's last seen uplink (address, network, MTU), JSON; the cluster-scoped reconciler, under [`Lock::Reconcile`] |
//! | `upgrades/<sector>.json`               | [`upgrade`]             | a Sector's appliance upgrades (switching, done with the interruption, failed), JSON; under [`Lock::Reconcile`] |
//! | `ipam.serial`                          | [`ipam_serial`]         | IPAM change token, one decimal number; under [`Lock::Ipam`] |
//! | `ipam/<pool>/pool.json`                | [`ipam_pool`]           | pool CIDR and full blocks, JSON; under [`Lock::Ipam`] |
//! | `ipam/<pool>/addr/<a.b.c.0>-24.json`   | [`ipam_shard`]          | address → owner for one /24; under [`Lock::Ipam`] |
//! | `ipam/<pool>/owners/<xxx>.json`        | [`ipam_bucket`]         | owner → address index; under [`Lock::Ipam`] |
//! | `pki/cas/<ca>.json`                    | [`pki_ca`]              | public CA record, JSON; under [`Lock::Pki`] |
//! | `pki/certs/<ca>/<cert>.json`           | [`pki_cert`]            | public leaf record, JSON; under [`Lock::Pki`] |
//! | `ssh/<key>.json`                       | [`ssh_key()`]           | public SSH key record, JSON; under [`Lock::Ssh`] |
//! | `audit/<YYYY-MM-DD>[.<n>].jsonl`       | [`audit_shard`]         | audit records of one UTC day, one JSON line each, hash-chained ([`crate::audit`]); under [`Lock::Audit`] |
//! | `audit/head.json`                      | [`audit_head`]          | the newest audit record's seq, hash and shard; under [`Lock::Audit`] |
//!
//! `<root>/priv/orbitlab/` ([`Area::Private`](super::Area::Private); root-only, directories
//! 0700, files 0600):
//!
//! | path                                   | constructor             | content, writer |
//! |----------------------------------------|-------------------------|-----------------|
//! | `pve-api.json`                         | [`connection`]          | Proxmox API connection and token, JSON; `orbitlab init` |
//! | `vault/keyring.json`                   | [`vault_keyring`]       | vault key-encryption keys; under [`Lock::Vault`] |
//! | `vault/secrets/<xx>/<30 hex>.json`     | [`vault_secret`]        | one secret's versions, encrypted; under [`Lock::Vault`] |
//! | `vault/heads/<xx>/<30 hex>.json`       | [`vault_head`]          | one secret's head (generation, MAC); under [`Lock::Vault`] |
//! | `locks/<lock>.owner`                   | [`lock_owner`]          | last holder of a lock (`node= pid= since=`), informative |
//!
//! `<root>/priv/lock/` (pmxcfs' lock area, outside OrbitLab's areas):
//! `orbitlab-<lock>` directories, one per [`Lock`] (`lock_dir`), empty;
//! see [`Store::lock`](super::Store::lock) for the protocol.
//!
//! `<kind>` is [`Kind::dir_name`]; `status/containers` never clashes with
//! it (no kind is called `containers`). Names of objects, pools, CAs,
//! certificates and keys are validated types whose characters are all
//! valid path components, so every constructor here is infallible.
//! Outside pmxcfs, the node-local cache of decoded manifests lives in
//! `/var/cache/orbitlab` (see `decoded`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use orbitlab_manifests::{Kind, Name, NodeName};

use super::lock::LockName;
use super::path::StorePath;
use crate::audit::ShardName;
use crate::ipam::PoolId;
use crate::pki::{CaName, CertName};
use crate::ssh::KeyName;

/// Extension of manifest files (`manifests/<kind>/<name>.yaml`).
pub const MANIFEST_EXTENSION: &str = "yaml";

/// Extension of status files (`status/<kind>/<name>.json`).
pub const STATUS_EXTENSION: &str = "json";

/// Extension of every other record OrbitLab stores (JSON).
const RECORD_EXTENSION: &str = "json";

/// Every cluster lock OrbitLab takes: directory
/// `<root>/priv/lock/orbitlab-<name>`, owner note
/// `<root>/priv/orbitlab/locks/<name>.owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lock {
    /// `manifests`: every change of the stored manifests (the API).
    Manifests,
    /// `generation`: bumps of the change counter.
    Generation,
    /// `reconcile`: one reconciler pass at a time, cluster-wide.
    Reconcile,
    /// `sdn`: changes of Proxmox SDN objects.
    Sdn,
    /// `vmid`: choosing a free VMID and creating the guest.
    Vmid,
    /// `ipam`: IPAM files and the VNet tag table.
    Ipam,
    /// `vault`: every vault write.
    Vault,
    /// `pki`: every PKI change (takes [`Lock::Vault`] inside).
    Pki,
    /// `ssh`: every SSH key change (takes [`Lock::Vault`] inside).
    Ssh,
    /// `audit`: every audit append; always the innermost lock (taken
    /// inside the others, takes none).
    Audit,
}

/// The names of [`Lock::ALL`], in the same order; checked while compiling.
static LOCK_NAMES: [LockName; 10] = [
    LockName::constant("manifests"),
    LockName::constant("generation"),
    LockName::constant("reconcile"),
    LockName::constant("sdn"),
    LockName::constant("vmid"),
    LockName::constant("ipam"),
    LockName::constant("vault"),
    LockName::constant("pki"),
    LockName::constant("ssh"),
    LockName::constant("audit"),
];

impl Lock {
    /// Every lock, in declaration order.
    pub const ALL: [Lock; 10] = [
        Lock::Manifests,
        Lock::Generation,
        Lock::Reconcile,
        Lock::Sdn,
        Lock::Vmid,
        Lock::Ipam,
        Lock::Vault,
        Lock::Pki,
        Lock::Ssh,
        Lock::Audit,
    ];

    /// The lock's name, for [`Store::lock`](super::Store::lock).
    pub fn name(self) -> &'static LockName {
        &LOCK_NAMES[self as usize]
    }
}

/// `<config>/<rel>` from validated parts.
fn config(rel: &str) -> StorePath {
    StorePath::config(rel).expect("layout paths are built from valid components")
}

/// `<private>/<rel>` from validated parts.
fn private(rel: &str) -> StorePath {
    StorePath::private(rel).expect("layout paths are built from valid components")
}

// ---- manifests and status ------------------------------------------------

/// `manifests/`: one directory per kind.
pub fn manifests_root() -> StorePath {
    config("manifests")
}

/// `manifests/<kind>/`.
pub fn manifests_dir(kind: Kind) -> StorePath {
    config(&format!("manifests/{}", kind.dir_name()))
}

/// `manifests/<kind>/<name>.yaml`: the spec of `kind/name`.
pub fn manifest(kind: Kind, name: &Name) -> StorePath {
    config(&format!(
        "manifests/{}/{name}.{MANIFEST_EXTENSION}",
        kind.dir_name()
    ))
}

/// The label messages use for the stored manifest `kind/name` (`name` as
/// found, possibly invalid): its path under `<root>/orbitlab/`.
pub fn manifest_label(kind: Kind, name: &str) -> String {
    format!(
        "{}/{name}.{MANIFEST_EXTENSION}",
        manifests_dir(kind).relative()
    )
}

/// The object name of a file listed in [`manifests_dir`] (`None`: not a
/// manifest file).
pub fn manifest_file_name(file: &str) -> Option<&str> {
    file.strip_suffix(MANIFEST_EXTENSION)?.strip_suffix('.')
}

/// `status/<kind>/`.
pub fn statuses_dir(kind: Kind) -> StorePath {
    config(&format!("status/{}", kind.dir_name()))
}

/// `status/<kind>/<name>.json`: the status agents report for `kind/name`.
pub fn status(kind: Kind, name: &Name) -> StorePath {
    config(&format!(
        "status/{}/{name}.{STATUS_EXTENSION}",
        kind.dir_name()
    ))
}

/// The object name of a file listed in [`statuses_dir`] (`None`: not a
/// status file).
pub fn status_file_name(file: &str) -> Option<&str> {
    file.strip_suffix(STATUS_EXTENSION)?.strip_suffix('.')
}

/// `status/containers/`: the records of [`pushed`].
pub fn pushed_dir() -> StorePath {
    config("status/containers")
}

/// `status/containers/<vmid>.json`: the configuration last pushed to
/// container `vmid`.
pub fn pushed(vmid: u32) -> StorePath {
    config(&format!("status/containers/{vmid}.{RECORD_EXTENSION}"))
}

/// `status/deliveries/`: the records of [`delivered`].
pub fn delivered_dir() -> StorePath {
    config("status/deliveries")
}

/// `status/deliveries/<vmid>.json`: the secrets, certificates and SSH
/// keys last delivered into container `vmid` (versions, never values).
pub fn delivered(vmid: u32) -> StorePath {
    config(&format!("status/deliveries/{vmid}.{RECORD_EXTENSION}"))
}

/// The VMID of a file listed in [`pushed_dir`] or [`delivered_dir`].
pub fn pushed_file_vmid(file: &str) -> Option<u32> {
    file.strip_suffix(RECORD_EXTENSION)?
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// `generation`: the change counter.
pub fn generation() -> StorePath {
    config("generation")
}

/// `agents/`: the records of [`agent`].
pub fn agents_dir() -> StorePath {
    config("agents")
}

/// `agents/<node>.json`: the heartbeat of `node`'s agent.
pub fn agent(node: &NodeName) -> StorePath {
    config(&format!("agents/{node}.{RECORD_EXTENSION}"))
}

/// `sdn/vnet-tags.json`: VNet tag reservations.
pub fn vnet_tags() -> StorePath {
    config("sdn/vnet-tags.json")
}

/// `sdn/uplinks.json`: each member node's last seen uplink.
pub fn uplinks() -> StorePath {
    config("sdn/uplinks.json")
}

/// `upgrades/`: the records of [`upgrade`].
pub fn upgrades_dir() -> StorePath {
    config("upgrades")
}

/// `upgrades/<sector>.json`: the appliance upgrades of a Sector.
pub fn upgrade(sector: &Name) -> StorePath {
    config(&format!("upgrades/{sector}.{RECORD_EXTENSION}"))
}

/// `pools/`: the records of [`pool`] and [`pool_control`].
pub fn pools_dir() -> StorePath {
    config("pools")
}

/// `pools/<pool>.json`: a Pool's members, revisions, scaling and rollout
/// (written by the cluster-scoped reconciler only).
pub fn pool(pool: &Name) -> StorePath {
    config(&format!("pools/{pool}.{RECORD_EXTENSION}"))
}

/// `pools/<pool>.control`: what an operator asked of a Pool's rollout
/// (pause, resume), written by the API, read by the reconciler.
pub fn pool_control(pool: &Name) -> StorePath {
    config(&format!("pools/{pool}.control"))
}

/// `status/health/`: the records of [`health`].
pub fn health_dir() -> StorePath {
    config("status/health")
}

/// `status/health/<node>.json`: the health checks of Pool members that
/// `node`'s agent ran (written by that agent only).
pub fn health(node: &NodeName) -> StorePath {
    config(&format!("status/health/{node}.{RECORD_EXTENSION}"))
}

// ---- IPAM ------------------------------------------------------------------

/// `ipam/`: one directory per pool.
pub fn ipam_dir() -> StorePath {
    config("ipam")
}

/// `ipam.serial`: IPAM's change token (beside `ipam/`).
pub fn ipam_serial() -> StorePath {
    config("ipam.serial")
}

/// `ipam/<pool>/pool.json`.
pub fn ipam_pool(pool: &PoolId) -> StorePath {
    config(&format!("ipam/{pool}/pool.json"))
}

/// `ipam/<pool>/addr/<a.b.c.0>-24.json`: the shard of the /24 starting at
/// `block`.
pub fn ipam_shard(pool: &PoolId, block: Ipv4Addr) -> StorePath {
    config(&format!("ipam/{pool}/addr/{block}-24.json"))
}

/// `ipam/<pool>/owners/<xxx>.json`: owner bucket `bucket` (three hex
/// digits).
pub fn ipam_bucket(pool: &PoolId, bucket: u32) -> StorePath {
    config(&format!("ipam/{pool}/owners/{bucket:03x}.json"))
}

// ---- PKI and SSH records ---------------------------------------------------

/// `pki/cas/`.
pub fn pki_cas_dir() -> StorePath {
    config("pki/cas")
}

/// `pki/cas/<ca>.json`.
pub fn pki_ca(ca: &CaName) -> StorePath {
    config(&format!("pki/cas/{ca}.{RECORD_EXTENSION}"))
}

/// `pki/certs/<ca>/`.
pub fn pki_certs_dir(ca: &CaName) -> StorePath {
    config(&format!("pki/certs/{ca}"))
}

/// `pki/certs/<ca>/<cert>.json`.
pub fn pki_cert(ca: &CaName, cert: &CertName) -> StorePath {
    config(&format!("pki/certs/{ca}/{cert}.{RECORD_EXTENSION}"))
}

/// `ssh/`.
pub fn ssh_keys_dir() -> StorePath {
    config("ssh")
}

/// `ssh/<key>.json`.
pub fn ssh_key(key: &KeyName) -> StorePath {
    config(&format!("ssh/{key}.{RECORD_EXTENSION}"))
}

/// The name part of a `<name>.json` record listed in [`pki_cas_dir`],
/// [`pki_certs_dir`] or [`ssh_keys_dir`].
pub fn record_file_name(file: &str) -> Option<&str> {
    file.strip_suffix(RECORD_EXTENSION)?.strip_suffix('.')
}

// ---- audit log -------------------------------------------------------------

/// `audit/`: the audit log's shards and head.
pub fn audit_dir() -> StorePath {
    config("audit")
}

/// `audit/<YYYY-MM-DD>[.<n>].jsonl`: one shard of the audit log.
pub fn audit_shard(shard: &ShardName) -> StorePath {
    config(&format!("audit/{shard}"))
}

/// `audit/head.json`: the audit log's newest record.
pub fn audit_head() -> StorePath {
    config("audit/head.json")
}

// ---- private area ----------------------------------------------------------

/// `pve-api.json` (private): the stored Proxmox connection.
pub fn connection() -> StorePath {
    private("pve-api.json")
}

/// `vault/keyring.json` (private).
pub fn vault_keyring() -> StorePath {
    private("vault/keyring.json")
}

/// `vault/secrets/` (private): one directory per two-hex-digit shard.
pub fn vault_secrets_dir() -> StorePath {
    private("vault/secrets")
}

/// `vault/heads/` (private): sharded like [`vault_secrets_dir`].
pub fn vault_heads_dir() -> StorePath {
    private("vault/heads")
}

/// `<xx>/<30 hex>.json` of a vault file id (its first hex pair is the
/// shard).
fn vault_file(dir: &str, id: &[u8; 16]) -> StorePath {
    let hex = hex::encode(id);
    private(&format!("{dir}/{}/{}.json", &hex[..2], &hex[2..]))
}

/// `vault/secrets/<xx>/<30 hex>.json` (private): the record of the secret
/// whose file id (a digest of its path, computed by the vault) is `id`.
pub fn vault_secret(id: &[u8; 16]) -> StorePath {
    vault_file("vault/secrets", id)
}

/// `vault/heads/<xx>/<30 hex>.json` (private): the head of the secret
/// whose file id is `id`.
pub fn vault_head(id: &[u8; 16]) -> StorePath {
    vault_file("vault/heads", id)
}

// ---- locks -----------------------------------------------------------------

/// `locks/<lock>.owner` (private): who took `lock` last.
pub fn lock_owner(lock: &LockName) -> StorePath {
    private(&format!("locks/{lock}.owner"))
}

/// `priv/lock`, relative to the store root: pmxcfs' lock area.
pub(crate) const LOCK_AREA: &str = "priv/lock";

/// `<root>/priv/lock/orbitlab-<lock>`: the lock directory of `lock`.
pub(crate) fn lock_dir(root: &Path, lock: &LockName) -> PathBuf {
    root.join(LOCK_AREA).join(format!("orbitlab-{lock}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Area;

    fn shown(path: StorePath) -> String {
        path.to_string()
    }

    /// The on-disk names of existing clusters: a change here is a format
    /// change and needs a migration, not a test update.
    #[test]
    fn the_on_disk_layout_is_pinned() {
        let name: Name = "web".parse().unwrap();
        let pool: PoolId = "backplane".parse().unwrap();
        let ca: CaName = "root".parse().unwrap();
        let cert: CertName = "api".parse().unwrap();
        let key: KeyName = "deploy".parse().unwrap();
        let id: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        let cases = [
            (manifests_root(), "orbitlab/manifests"),
            (manifests_dir(Kind::Sector), "orbitlab/manifests/sector"),
            (
                manifest(Kind::Sector, &name),
                "orbitlab/manifests/sector/web.yaml",
            ),
            (
                manifest(Kind::SshKey, &name),
                "orbitlab/manifests/ssh_key/web.yaml",
            ),
            (statuses_dir(Kind::Lxc), "orbitlab/status/lxc"),
            (
                status(Kind::Sector, &name),
                "orbitlab/status/sector/web.json",
            ),
            (pushed_dir(), "orbitlab/status/containers"),
            (pushed(104), "orbitlab/status/containers/104.json"),
            (delivered_dir(), "orbitlab/status/deliveries"),
            (delivered(104), "orbitlab/status/deliveries/104.json"),
            (generation(), "orbitlab/generation"),
            (agents_dir(), "orbitlab/agents"),
            (agent(&"pve1".parse().unwrap()), "orbitlab/agents/pve1.json"),
            (vnet_tags(), "orbitlab/sdn/vnet-tags.json"),
            (uplinks(), "orbitlab/sdn/uplinks.json"),
            (upgrades_dir(), "orbitlab/upgrades"),
            (upgrade(&name), "orbitlab/upgrades/web.json"),
            (ipam_dir(), "orbitlab/ipam"),
            (ipam_serial(), "orbitlab/ipam.serial"),
            (ipam_pool(&pool), "orbitlab/ipam/backplane/pool.json"),
            (
                ipam_shard(&pool, Ipv4Addr::new(10, 200, 1, 0)),
                "orbitlab/ipam/backplane/addr/10.200.1.0-24.json",
            ),
            (
                ipam_bucket(&pool, 0x1f),
                "orbitlab/ipam/backplane/owners/01f.json",
            ),
            (pki_cas_dir(), "orbitlab/pki/cas"),
            (pki_ca(&ca), "orbitlab/pki/cas/root.json"),
            (pki_certs_dir(&ca), "orbitlab/pki/certs/root"),
            (pki_cert(&ca, &cert), "orbitlab/pki/certs/root/api.json"),
            (ssh_keys_dir(), "orbitlab/ssh"),
            (ssh_key(&key), "orbitlab/ssh/deploy.json"),
            (audit_dir(), "orbitlab/audit"),
            (
                audit_shard(&ShardName::parse("2026-12-06.jsonl").unwrap()),
                "orbitlab/audit/2026-12-06.jsonl",
            ),
            (
                audit_shard(&ShardName::parse("2026-12-06.2.jsonl").unwrap()),
                "orbitlab/audit/2026-12-06.2.jsonl",
            ),
            (audit_head(), "orbitlab/audit/head.json"),
            (connection(), "priv/orbitlab/pve-api.json"),
            (vault_keyring(), "priv/orbitlab/vault/keyring.json"),
            (vault_secrets_dir(), "priv/orbitlab/vault/secrets"),
            (vault_heads_dir(), "priv/orbitlab/vault/heads"),
            (
                vault_secret(&id),
                "priv/orbitlab/vault/secrets/00/112233445566778899aabbccddeeff.json",
            ),
            (
                vault_head(&id),
                "priv/orbitlab/vault/heads/00/112233445566778899aabbccddeeff.json",
            ),
            (
                lock_owner(Lock::Reconcile.name()),
                "priv/orbitlab/locks/reconcile.owner",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(shown(path), expected);
        }
        for kind in Kind::ALL {
            assert_ne!(kind.dir_name(), pushed_dir().file_name(), "{kind}");
        }
    }

    #[test]
    fn every_lock_keeps_its_name_and_is_valid() {
        let names: Vec<&str> = Lock::ALL.iter().map(|l| l.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "manifests",
                "generation",
                "reconcile",
                "sdn",
                "vmid",
                "ipam",
                "vault",
                "pki",
                "ssh",
                "audit"
            ]
        );
        for lock in Lock::ALL {
            // What the parser accepts is what the constant holds.
            let parsed: LockName = lock.name().as_str().parse().unwrap();
            assert_eq!(&parsed, lock.name(), "{lock:?}");
            assert_eq!(
                lock_dir(Path::new("/r"), lock.name()),
                PathBuf::from(format!("/r/priv/lock/orbitlab-{}", lock.name()))
            );
        }
        assert_eq!(
            lock_dir(Path::new("/r"), Lock::Sdn.name()),
            PathBuf::from("/r/priv/lock/orbitlab-sdn")
        );
    }

    #[test]
    fn listed_file_names_map_back_to_objects() {
        assert_eq!(manifest_file_name("web.yaml"), Some("web"));
        assert_eq!(manifest_file_name("web.json"), None);
        assert_eq!(manifest_file_name("webyaml"), None);
        assert_eq!(status_file_name("web.json"), Some("web"));
        assert_eq!(status_file_name("web.yaml"), None);
        assert_eq!(pushed_file_vmid("104.json"), Some(104));
        assert_eq!(pushed_file_vmid("x.json"), None);
        assert_eq!(record_file_name("root.json"), Some("root"));
        let area = |p: StorePath| p.area();
        assert_eq!(area(connection()), Area::Private);
        assert_eq!(area(generation()), Area::Config);
    }
}

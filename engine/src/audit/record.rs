//! One audit record, its hash, and the names of the shards records live
//! in. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the very first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done. Names are the on-disk format (kebab-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `orbitlab apply` / `POST orbitlab-apply`: one object created,
    /// replaced or left as it was.
    Apply,
    /// `orbitlab create` / `POST` on a collection.
    Create,
    /// `orbitlab set` / `PUT` on an object.
    Set,
    /// `orbitlab delete` / `DELETE` on an object (and each object removed
    /// with it).
    Delete,
    /// A new version of a secret.
    SecretSet,
    /// A secret's value was handed out.
    SecretRead,
    /// A secret rolled back to an older version (as a new one).
    SecretRollback,
    /// Old versions of a secret dropped.
    SecretPrune,
    /// A secret deleted with every version.
    SecretDelete,
    /// The vault's key-encryption key rotated.
    VaultRotateKey,
    /// A secret handed by the reconciler to Proxmox for a guest (an
    /// instance's root password when its container is made).
    SecretDeliver,
    /// Reserved: a secret rotated by a controller.
    SecretRotate,
    /// A new SSH key pair.
    SshKeyCreate,
    /// An SSH key pair replaced.
    SshKeyRotate,
    /// An SSH key's previous pair forgotten.
    SshKeyDropPrevious,
    /// An SSH key deleted.
    SshKeyDelete,
    /// An SSH private key handed out.
    SshKeyExport,
    /// A CA created (root or intermediate).
    PkiCaCreate,
    /// A leaf certificate issued.
    PkiCertIssue,
    /// A certificate signing request signed.
    PkiCsrSign,
    /// A certificate or CA revoked.
    PkiRevoke,
    /// Certificates due for renewal renewed.
    PkiRenew,
    /// A leaf certificate's private key handed out.
    PkiKeyExport,
    /// A CA's CRL signed again.
    PkiCrlPublish,
    /// The vault sealed with a passphrase (or its passphrase changed).
    VaultSeal,
    /// The vault unsealed in one process (an agent).
    VaultUnseal,
    /// A Pool's member count changed by auto-scaling (with the figures).
    PoolScale,
    /// A Pool member replaced (unhealthy, or its container made again),
    /// or replacing stopped.
    PoolReplace,
    /// A Pool's rollout began, paused, or was paused, resumed or undone
    /// by an operator.
    PoolRollout,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name: a unit variant always serializes as a string.
        let name = serde_json::to_value(self).ok();
        f.write_str(name.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// How far the action got when the record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Written before a change, under the change's lock where there is
    /// one: the change follows, unless a `failed` record for the same
    /// action and object follows it.
    Begun,
    /// Written after a read succeeded and before its answer was handed
    /// out.
    Done,
    /// The change recorded as `begun` failed; nothing (or not all of it)
    /// was changed.
    Failed,
}

/// How the actor reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// In-process on the node (`orbitlab` as a local user, `init`).
    Local,
    /// The agent's HTTPS API (ticket or API token, checked by Proxmox).
    Https,
}

/// Who acts: a Proxmox user (`root@pam`), or an API token id
/// (`orbitlab@pve!agent`, never its secret), and how they came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    user: String,
    via: Via,
}

impl Actor {
    /// A caller the agent's HTTPS API authenticated: `user@realm` or
    /// `user@realm!tokenid`.
    pub fn https(user: impl Into<String>) -> Self {
        Actor {
            user: user.into(),
            via: Via::Https,
        }
    }

    /// A named local caller (tests, tools acting for someone).
    pub fn local_as(user: impl Into<String>) -> Self {
        Actor {
            user: user.into(),
            via: Via::Local,
        }
    }

    /// This process's user, as Proxmox names local users: `NAME@pam`,
    /// from the real uid (`/proc/self`'s owner) and `/etc/passwd`;
    /// `uid:N@pam` when the name cannot be found.
    pub fn local() -> Self {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        let name = uid.and_then(|uid| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?.parse::<u32>().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_owned())
            })
        });
        let name = match (name, uid) {
            (Some(name), _) => name,
            (None, Some(uid)) => format!("uid:{uid}"),
            (None, None) => "unknown".to_owned(),
        };
        Actor::local_as(format!("{name}@pam"))
    }

    /// `root@pam`, `orbitlab@pve!agent`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// How the actor came in.
    pub fn via(&self) -> Via {
        self.via
    }
}

/// Non-secret facts about an action: version numbers, a manifest digest,
/// the query of an API call. Sorted, so that the hash is canonical.
pub type Detail = BTreeMap<String, String>;

/// What a hook asks to record; [`super::AuditLog::append`] adds the
/// sequence number, time, node and chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// How far it got.
    pub outcome: Outcome,
    /// On what: an API path (`/sectors/web`, `/vault/values/app/db`).
    pub object: String,
    /// Non-secret facts.
    pub detail: Detail,
}

/// One line of a shard. `hash` is the SHA-256 (hex) of the record's
/// canonical encoding without `hash` (compact JSON, fields in this order,
/// `detail` sorted), `prev` the `hash` of the record before it (or
/// [`GENESIS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// 1, 2, 3... across every shard, without gaps.
    pub seq: u64,
    /// RFC 3339, UTC, whole seconds.
    pub at: String,
    /// The node that wrote it.
    pub node: String,
    /// Who acted (user or token id).
    pub actor: String,
    /// How they came in.
    pub via: Via,
    /// What was done.
    pub action: Action,
    /// How far it got.
    pub outcome: Outcome,
    /// On what.
    pub object: String,
    /// Non-secret facts.
    pub detail: Detail,
    /// The previous record's hash.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
}

/// The hashed part of a record: every field but `hash`, in order.
#[derive(Serialize)]
struct Unsigned<'a> {
    seq: u64,
    at: &'a str,
    node: &'a str,
    actor: &'a str,
    via: Via,
    action: Action,
    outcome: Outcome,
    object: &'a str,
    detail: &'a Detail,
    prev: &'a str,
}

impl Record {
    /// Seals `entry` as record `seq` after the record hashed `prev`.
    pub(crate) fn seal(entry: &Entry, seq: u64, at: String, node: &str, prev: &str) -> Record {
        let mut record = Record {
            seq,
            at,
            node: node.to_owned(),
            actor: entry.actor.user.clone(),
            via: entry.actor.via,
            action: entry.action,
            outcome: entry.outcome,
            object: entry.object.clone(),
            detail: entry.detail.clone(),
            prev: prev.to_owned(),
            hash: String::new(),
        };
        record.hash = record.digest();
        record
    }

    /// The hash this record's content calls for.
    pub fn digest(&self) -> String {
        let unsigned = Unsigned {
            seq: self.seq,
            at: &self.at,
            node: &self.node,
            actor: &self.actor,
            via: self.via,
            action: self.action,
            outcome: self.outcome,
            object: &self.object,
            detail: &self.detail,
            prev: &self.prev,
        };
        // Plain data: serializing cannot fail.
        let bytes = serde_json::to_vec(&unsigned).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    /// The record as its shard holds it: one line of compact JSON, without
    /// the newline.
    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A UTC day, `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(String);

impl Day {
    /// The day of an RFC 3339 UTC time (its first ten characters).
    pub(crate) fn of(rfc3339: &str) -> Option<Day> {
        rfc3339.get(..10)?.parse().ok()
    }

    /// `YYYY-MM-DD`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Day {
    type Err = String;

    fn from_str(s: &str) -> Result<Day, String> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && digits(0..4)
            && digits(5..7)
            && digits(8..10)
            && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
            && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0));
        if ok {
            Ok(Day(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a date (YYYY-MM-DD, UTC)"))
        }
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shard's file name: `YYYY-MM-DD.jsonl`, then `YYYY-MM-DD.1.jsonl`,
/// `YYYY-MM-DD.2.jsonl`... once a day's shard reaches the size limit.
/// Ordered by day, then part (not by file name: `.1` sorts before `.j`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardName {
    day: Day,
    part: u32,
}

/// Extension of shard files.
const SHARD_EXTENSION: &str = ".jsonl";

impl ShardName {
    /// The first shard of `day`.
    pub(crate) fn first(day: Day) -> Self {
        ShardName { day, part: 0 }
    }

    /// The shard that continues this one on the same day.
    pub(crate) fn next(&self) -> Self {
        ShardName {
            day: self.day.clone(),
            part: self.part + 1,
        }
    }

    /// Its day.
    pub fn day(&self) -> &Day {
        &self.day
    }

    /// A listed file name, when it is a shard's.
    pub fn parse(file: &str) -> Option<ShardName> {
        let stem = file.strip_suffix(SHARD_EXTENSION)?;
        let (day, part) = match stem.split_once('.') {
            None => (stem, 0),
            Some((day, part)) => {
                // `1`, `2`...: no sign, no leading zero, so one part has
                // one name.
                if part.starts_with('0') || !part.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                (day, part.parse().ok().filter(|p| *p > 0)?)
            }
        };
        Some(ShardName {
            day: day.parse().ok()?,
            part,
        })
    }
}

impl fmt::Display for ShardName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part {
            0 => write!(f, "{}{SHARD_EXTENSION}", self.day),
            n => write!(f, "{}.{n}{SHARD_EXTENSION}", self.day),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_round_trip_and_order_by_day_then_part() {
        let names = [
            "2026-12-06.jsonl",
            "2026-12-06.1.jsonl",
            "2026-12-06.10.jsonl",
        ];
        let parsed: Vec<ShardName> = names.iter().map(|n| ShardName::parse(n).unwrap()).collect();
        for (n, p) in names.iter().zip(&parsed) {
            assert_eq!(p.to_string(), *n);
        }
        let mut sorted = parsed.clone();
        sorted.reverse();
        sorted.sort();
        assert_eq!(sorted, parsed);
        assert!(parsed[2] < ShardName::parse("2026-12-07.jsonl").unwrap());
        for bad in [
            "head.json",
            "2026-12-06.0.jsonl",
            "2026-12-06.01.jsonl",
            "2026-13-06.jsonl",
            "2026-12-06.x.jsonl",
            "2026-12-06.jsonl.tmp.1",
        ] {
            assert_eq!(ShardName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_hash_covers_every_field_but_itself() {
        let entry = Entry {
            actor: Actor::local_as("root@pam"),
            action: Action::SecretSet,
            outcome: Outcome::Begun,
            object: "/vault/values/app/db".into(),
            detail: Detail::new(),
        };
        let record = Record::seal(&entry, 1, "2026-12-06T10:00:00Z".into(), "pve1", GENESIS);
        assert_eq!(record.hash, record.digest());
        assert_eq!(record.action.to_string(), "secret-set");
        let mut edited = record.clone();
        edited.node = "pve2".into();
        assert_ne!(edited.digest(), record.hash);
        let mut relinked = record.clone();
        relinked.prev = "1".repeat(64);
        assert_ne!(relinked.digest(), record.hash);
        let back: Record = serde_json::from_str(&record.line()).unwrap();
        assert_eq!(back, record);
        let extra = record.line().replacen('{', "{\"value\":\"x\",", 1);
        assert!(serde_json::from_str::<Record>(&extra).is_err());
    }
}

//! Proxmox privileges → OrbitLab permissions: a pure decision over the
//! privileges a caller holds on `/`, as `GET /access/permissions?path=/`
//! reports them (`{"/": {"Sys.Audit": 1, ...}}`).
//!
//! | request | privileges needed on `/` |
//! | --- | --- |
//! | read (`GET`, dry-run apply) | `Sys.Audit` |
//! | change anything (`POST`, `PUT`, `DELETE`, apply) | `Sys.Modify` |
//! | ... touching `cluster` or `sectors` (networks) | also `SDN.Allocate` |
//! | ... touching `lxc` (guests) | also `VM.Allocate` |
//! | ... touching `appliances` (templates) | also `Datastore.AllocateTemplate` |
//! | vault metadata: `GET /vault`, `/vault/secrets[/{path}]` | `Sys.Audit` |
//! | vault changes: `PUT /vault/values/{path}`, `DELETE /vault/secrets/{path}`, `POST /vault/rollback/..`, `/vault/prune/..`, `/vault/rotate-key` | `Sys.Modify` |
//! | a secret value: `GET /vault/values/{path}` | `Sys.Audit`, `Sys.Modify` and `Sys.Console` |
//! | SSH keys: `GET /ssh/keys[/{name}[/public]]` | `Sys.Audit` |
//! | SSH-key changes: `POST /ssh/keys/{name}[/rotate\|/drop-previous]`, `DELETE /ssh/keys/{name}` | `Sys.Modify` |
//! | a private key: `GET /ssh/keys/{name}/private` | `Sys.Audit`, `Sys.Modify` and `Sys.Console` |
//! | the plan and status: `GET /plan`, `GET /status[/{collection}/{name}]` | `Sys.Audit` |
//! | PKI: `GET /pki/cas[/..]`, `/pki/certs[/..]`, `/pki/renewal` | `Sys.Audit` |
//! | PKI changes: `POST /pki/cas/{ca}` (create a CA; its key stays in the vault), `/pki/certs/{ca}/{name}` (issue), `/pki/certs/{ca}/{name}/csr` (sign a CSR; answers the certificate only), `/pki/cas/{ca}/revoke`, `/pki/renewal` | `Sys.Modify` |
//! | a certificate's private key: `GET /pki/certs/{ca}/{name}/key` | `Sys.Audit`, `Sys.Modify` and `Sys.Console` |
//!
//! Reading a value needs `Sys.Console` on `/` as well: that privilege
//! already opens a root shell on every node (where the vault could be read
//! anyway), so it grants nobody more than Proxmox already does, and
//! operators who only manage objects (`Sys.Modify`) can set secrets
//! without being able to read them back.
//!
//! A delete needs the privileges of every object it removes: with
//! `force`, the objects that refer to the target go too, whatever their
//! kind ([`decide_removal`]).
//!
//! Only privileges on `/` count: OrbitLab objects are cluster-wide, and the
//! agent acts on them with its own token, so a caller must hold the right
//! cluster-wide. The `Administrator` role has all of these; a narrower role
//! for operators can be made with exactly these privileges, and
//! `PVEAuditor` gives read access.

use std::collections::BTreeSet;
use std::fmt;

use orbitlab_manifests::Kind;
use serde_json::Value;

/// Read OrbitLab objects.
pub const AUDIT: &str = "Sys.Audit";
/// Change OrbitLab objects.
pub const MODIFY: &str = "Sys.Modify";
/// Additionally needed to read a secret value (a root shell on every
/// node already gives as much).
pub const CONSOLE: &str = "Sys.Console";
/// Additionally needed to change networks (cluster, Sectors).
pub const SDN_ALLOCATE: &str = "SDN.Allocate";
/// Additionally needed to change guests.
pub const VM_ALLOCATE: &str = "VM.Allocate";
/// Additionally needed to change appliance templates.
pub const TEMPLATE_ALLOCATE: &str = "Datastore.AllocateTemplate";

/// What a request does, as far as permissions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Reads (and dry runs).
    Read,
    /// Changes objects of these kinds.
    Write(BTreeSet<Kind>),
    /// Reads a secret value.
    Reveal,
}

impl Operation {
    /// A change of one kind.
    pub fn write(kind: Kind) -> Self {
        Operation::Write(BTreeSet::from([kind]))
    }

    /// Whether this changes something.
    pub fn is_write(&self) -> bool {
        matches!(self, Operation::Write(_))
    }

    /// Every privilege this operation needs on `/`.
    pub fn required(&self) -> BTreeSet<&'static str> {
        match self {
            Operation::Read => BTreeSet::from([AUDIT]),
            Operation::Reveal => BTreeSet::from([AUDIT, MODIFY, CONSOLE]),
            Operation::Write(kinds) => {
                let mut needed = BTreeSet::from([MODIFY]);
                needed.extend(kinds.iter().filter_map(|k| extra_for(*k)));
                needed
            }
        }
    }
}

fn extra_for(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Cluster | Kind::Sector => Some(SDN_ALLOCATE),
        Kind::Lxc | Kind::Pool => Some(VM_ALLOCATE),
        Kind::Appliance => Some(TEMPLATE_ALLOCATE),
        Kind::Node | Kind::Settings | Kind::Secret | Kind::Certificate | Kind::SshKey => None,
    }
}

/// The privileges a caller holds on `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privileges(BTreeSet<String>);

impl Privileges {
    /// These privileges.
    pub fn new<S: Into<String>>(privileges: impl IntoIterator<Item = S>) -> Self {
        Privileges(privileges.into_iter().map(Into::into).collect())
    }

    /// Reads the `data` of `GET /access/permissions?path=/`: the entry for
    /// `/` maps each privilege held to its propagate flag. No entry for `/`
    /// means no privilege there.
    pub fn from_permissions(data: &Value) -> Result<Self, String> {
        let Value::Object(paths) = data else {
            return Err(format!(
                "expected a map of paths to privileges, got {}",
                kind_of(data)
            ));
        };
        match paths.get("/") {
            None | Some(Value::Null) => Ok(Privileges::default()),
            Some(Value::Object(privileges)) => Ok(Privileges(privileges.keys().cloned().collect())),
            Some(other) => Err(format!(
                "expected the privileges on / as a map, got {}",
                kind_of(other)
            )),
        }
    }

    /// Whether `privilege` is held.
    pub fn has(&self, privilege: &str) -> bool {
        self.0.contains(privilege)
    }

    /// The privileges, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A refused operation: who, and which privileges on `/` are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The caller (`user@realm` or `user@realm!token`).
    pub user: String,
    /// What was attempted, e.g. `change /sectors/web`.
    pub attempted: String,
    /// Privileges on `/` the caller lacks.
    pub missing: Vec<&'static str>,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "permission denied: {} may not {}: it lacks {} on / in Proxmox; ask an administrator to grant a role with {} on / (Datacenter → Permissions)",
            self.user,
            self.attempted,
            self.missing.join(", "),
            if self.missing.len() == 1 {
                "this privilege"
            } else {
                "these privileges"
            }
        )
    }
}

/// Allows `operation` when every privilege it needs is held.
pub fn decide(
    user: &str,
    attempted: &str,
    operation: &Operation,
    held: &Privileges,
) -> Result<(), Denied> {
    let missing: Vec<&'static str> = operation
        .required()
        .into_iter()
        .filter(|p| !held.has(p))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Denied {
            user: user.to_owned(),
            attempted: attempted.to_owned(),
            missing,
        })
    }
}

/// Allows a delete that removes `objects` (kind and path of each, the
/// target first) when every privilege their kinds need is held. The
/// refusal lists every object removed, with the privilege each lacks.
pub fn decide_removal(
    user: &str,
    objects: &[(Kind, String)],
    held: &Privileges,
) -> Result<(), Denied> {
    let operation = Operation::Write(objects.iter().map(|(k, _)| *k).collect());
    let Err(mut denied) = decide(user, "", &operation, held) else {
        return Ok(());
    };
    let describe = |(kind, path): &(Kind, String)| match extra_for(*kind) {
        Some(p) if !held.has(p) => format!("{path} (needs {p})"),
        _ => path.clone(),
    };
    let mut attempted = match objects.first() {
        Some(target) => format!("delete {}", describe(target)),
        None => "delete nothing".to_owned(),
    };
    if objects.len() > 1 {
        let others: Vec<String> = objects[1..].iter().map(describe).collect();
        attempted.push_str(&format!(
            " and with it what refers to it: {}",
            others.join(", ")
        ));
    }
    denied.attempted = attempted;
    Err(denied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(answer: Value) -> Privileges {
        Privileges::from_permissions(&answer).expect("answer")
    }

    #[test]
    fn auditors_read_but_do_not_write() {
        // What PVEAuditor on / looks like.
        let auditor = held(json!({"/": {"Sys.Audit": 1, "VM.Audit": 1, "SDN.Audit": 1}}));
        assert!(decide("a@pve", "read /", &Operation::Read, &auditor).is_ok());
        let denied = decide(
            "a@pve",
            "change /sectors/web",
            &Operation::write(Kind::Sector),
            &auditor,
        )
        .expect_err("no Sys.Modify");
        assert_eq!(denied.missing, vec![SDN_ALLOCATE, MODIFY]);
        let text = denied.to_string();
        assert!(text.contains("a@pve may not change /sectors/web"), "{text}");
        assert!(text.contains("Sys.Modify"), "{text}");
    }

    #[test]
    fn writes_need_the_privilege_of_each_kind() {
        let operator = held(json!({"/": {"Sys.Audit": 1, "Sys.Modify": 1, "SDN.Allocate": 0}}));
        let op = |kinds: &[Kind]| Operation::Write(kinds.iter().copied().collect());
        assert!(decide("o", "x", &op(&[Kind::Secret, Kind::Sector]), &operator).is_ok());
        let denied = decide("o", "x", &op(&[Kind::Sector, Kind::Lxc]), &operator).unwrap_err();
        assert_eq!(denied.missing, vec![VM_ALLOCATE]);
        let denied = decide("o", "x", &op(&[Kind::Appliance]), &operator).unwrap_err();
        assert_eq!(denied.missing, vec![TEMPLATE_ALLOCATE]);
        // An empty apply still changes nothing without Sys.Modify.
        assert_eq!(op(&[]).required(), BTreeSet::from([MODIFY]));
    }

    #[test]
    fn a_removal_needs_the_privilege_of_every_object() {
        let objects = vec![
            (Kind::Secret, "/secrets/pw".to_owned()),
            (Kind::Lxc, "/lxc/app1".to_owned()),
            (Kind::Sector, "/sectors/web".to_owned()),
        ];
        let modify = Privileges::new([AUDIT, MODIFY]);
        let denied = decide_removal("m@pve", &objects, &modify).unwrap_err();
        assert_eq!(denied.missing, vec![SDN_ALLOCATE, VM_ALLOCATE]);
        let text = denied.to_string();
        assert!(
            text.contains(
                "delete /secrets/pw and with it what refers to it: /lxc/app1 (needs VM.Allocate), /sectors/web (needs SDN.Allocate)"
            ),
            "{text}"
        );
        let vm = Privileges::new([MODIFY, VM_ALLOCATE]);
        let denied = decide_removal("v@pve", &objects[1..], &vm).unwrap_err();
        assert_eq!(denied.missing, vec![SDN_ALLOCATE]);
        assert!(
            denied.attempted.starts_with("delete /lxc/app1 and"),
            "{denied}"
        );
        let all = Privileges::new([MODIFY, VM_ALLOCATE, SDN_ALLOCATE]);
        assert!(decide_removal("a@pve", &objects, &all).is_ok());
        assert!(decide_removal("a@pve", &objects[..1], &modify).is_ok());
    }

    #[test]
    fn a_secret_value_needs_the_console_privilege() {
        let operator = Privileges::new([AUDIT, MODIFY]);
        let denied = decide("o@pve", "read a value", &Operation::Reveal, &operator).unwrap_err();
        assert_eq!(denied.missing, vec![CONSOLE]);
        let console = Privileges::new([AUDIT, MODIFY, CONSOLE]);
        assert!(decide("r@pam", "read a value", &Operation::Reveal, &console).is_ok());
        // Setting a secret needs no more than changing any object.
        assert!(decide("o@pve", "set", &Operation::write(Kind::Secret), &operator).is_ok());
    }

    #[test]
    fn privileges_elsewhere_do_not_count() {
        let on_a_vm_only = held(json!({"/vms/100": {"Sys.Audit": 1, "Sys.Modify": 1}}));
        assert!(decide("u", "read /", &Operation::Read, &on_a_vm_only).is_err());
        let nothing = held(json!({}));
        assert_eq!(nothing.iter().count(), 0);
        assert!(Privileges::from_permissions(&json!(["Sys.Audit"])).is_err());
        assert!(Privileges::from_permissions(&json!({"/": ["Sys.Audit"]})).is_err());
    }
}

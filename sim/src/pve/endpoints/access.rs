//! Authentication as pveproxy does it: API tokens
//! (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`) and tickets from
//! `POST /access/ticket` (cookie `PVEAuthCookie`, plus the
//! `CSRFPreventionToken` header on every write: a token made and checked
//! with the simulator's `pve-www.key` exactly as Proxmox does, see
//! [`crate::pve::csrf`], so any genuine current token of the ticket's user
//! passes, not only the one issued with the ticket), and the caller's
//! effective privileges (`GET /access/permissions`).
//!
//! Endpoints answered here:
//!
//! | call | answer |
//! | --- | --- |
//! | `POST /access/ticket` | a ticket, CSRF token, the GUI's capabilities (`cap`) and, with `Sys.Audit`, the cluster name; the password may be a current ticket of the same user (or of `root@pam`), as the web UI renews its ticket; with `path` and `privs` only checks the credentials and privileges |
//! | `GET /access/domains` | the realms `pam` and `pve` (no authentication needed, the login window reads it) |
//! | `GET /access/permissions` | the caller's privileges, by path |
//! | `GET`/`POST /access/roles`, `GET`/`PUT /access/roles/{roleid}` | roles |
//! | `GET`/`POST /access/users` | users (a `password` makes the user able to log in, realms `pam` and `pve`) |
//! | `GET`/`PUT /access/acl` | the ACL |
//! | `POST`/`DELETE /access/users/{userid}/token/{tokenid}` | API tokens |
//!
//! The ticket cookie's value is URI-unescaped first, as pveproxy does (the
//! web UI stores it with JavaScript's `escape`). `POST /access/ticket` and
//! `GET /access/domains` need no credentials ([`is_world`]).
//!
//! Privileges: [`AuthConfig::privileges`] gives the privileges on `/` of
//! chosen users and tokens; everyone not listed holds every privilege, as
//! `root@pam` (the default login) does on a real cluster. A token without an
//! entry of its own has its user's privileges (no privilege separation).
//!
//! Users, roles, tokens and the ACL can also be made through the API
//! (`/access/roles`, `/access/users`, `/access/acl`,
//! `/access/users/{userid}/token/{tokenid}`), kept in
//! [`crate::pve::state::AccessState`]. A user made so holds exactly what
//! the ACL grants it on `/` (entries on other paths are kept and listed but
//! grant nothing here); a token made so authenticates with the secret its
//! creation answered and holds, with privilege separation, what both its
//! own ACL entries and its user hold, without it its user's privileges.
//! Every call is refused (403) when the caller lacks the privileges the
//! official schema asks for it ([`authorize`]; all taken as held on `/`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Value, json};

use super::{Ctx, list};
use crate::pve::csrf::WwwKey;
use crate::pve::error::{ApiError, Reply};
use crate::pve::formats::{is_token_name, is_userid};
use crate::pve::schema::PveVersion;
use crate::pve::state::{
    AccessState, AclEntry, AclKind, ClusterState, Session, TokenEntry, UserEntry, unix_now,
};
use crate::pve::validate::Params;

/// An API token the simulator accepts.
#[derive(Clone)]
pub struct ApiToken {
    /// `user@realm`.
    pub user: String,
    /// Token name (after `!`).
    pub name: String,
    /// The secret.
    pub secret: String,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}!{}, secret hidden)", self.user, self.name)
    }
}

/// A user who may log in with a password (ticket auth).
#[derive(Clone)]
pub struct UserLogin {
    /// `user@realm`.
    pub user: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for UserLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserLogin({}, password hidden)", self.user)
    }
}

/// Who may call the simulator.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Accepted API tokens.
    pub tokens: Vec<ApiToken>,
    /// Users who may get a ticket.
    pub users: Vec<UserLogin>,
    /// Privileges on `/` of users (`user@realm`) and tokens
    /// (`user@realm!name`) that are not administrators; see the module doc.
    pub privileges: BTreeMap<String, Vec<String>>,
}

/// Every privilege of Proxmox VE 8/9 (what an administrator holds).
pub const ALL_PRIVILEGES: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

impl AuthConfig {
    /// The privileges of a user or token id (see the module doc).
    pub fn privileges_of(&self, id: &str) -> Vec<String> {
        let user = id.split_once('!').map_or(id, |(user, _)| user);
        self.privileges
            .get(id)
            .or_else(|| self.privileges.get(user))
            .cloned()
            .unwrap_or_else(|| ALL_PRIVILEGES.iter().map(|p| (*p).to_string()).collect())
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// An API token (`user@realm!name`).
    Token(String),
    /// A ticket of this user.
    Ticket(String),
}

impl Auth {
    /// The id recorded in tasks and logs.
    pub fn id(&self) -> &str {
        match self {
            Auth::Token(s) | Auth::Ticket(s) => s,
        }
    }
}

/// Constant-time string equality.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Check a request's credentials. `write` is true for non-GET methods;
/// `www_key` checks the CSRF prevention token of a ticket.
pub fn authenticate(
    cfg: &AuthConfig,
    st: &ClusterState,
    www_key: &WwwKey,
    authorization: Option<&str>,
    cookie: Option<&str>,
    csrf: Option<&str>,
    write: bool,
) -> Result<Auth, ApiError> {
    let denied = || ApiError::status(401, "authentication failure");
    if let Some(h) = authorization {
        let rest = h
            .strip_prefix("PVEAPIToken=")
            .or_else(|| h.strip_prefix("PVEAPIToken "))
            .ok_or_else(denied)?;
        let (id, secret) = rest.split_once('=').ok_or_else(denied)?;
        let ok = cfg
            .tokens
            .iter()
            .any(|t| format!("{}!{}", t.user, t.name) == id && same(&t.secret, secret))
            || st
                .access
                .tokens
                .get(id)
                .is_some_and(|t| same(&t.secret, secret));
        return if ok {
            Ok(Auth::Token(id.to_string()))
        } else {
            Err(denied())
        };
    }
    let ticket = cookie
        .into_iter()
        .flat_map(|c| c.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("PVEAuthCookie="))
        .next()
        .filter(|t| !t.is_empty())
        .map(uri_unescape)
        .ok_or_else(|| ApiError::status(401, "No ticket"))?;
    let session = st.sessions.get(&ticket).ok_or_else(denied)?;
    if !user_enabled(cfg, st, &session.user) {
        return Err(denied());
    }
    if write && !csrf.is_some_and(|c| www_key.accepts(&session.user, c, unix_now())) {
        return Err(ApiError::status(
            401,
            "Permission denied - invalid csrf token",
        ));
    }
    Ok(Auth::Ticket(session.user.clone()))
}

/// The cookie's `%XX` escapes decoded, as pveproxy reads it.
fn uri_unescape(s: &str) -> String {
    String::from_utf8_lossy(&crate::pve::request::uri_unescape(s)).into_owned()
}

/// Calls pveproxy answers without credentials (Proxmox's `auth_handler`
/// lets these through; the simulator serves no other of them).
pub fn is_world(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("POST", "/access/ticket") | ("GET", "/access/domains")
    )
}

/// Whether `user` exists and may log in (`check_user_enabled`): a
/// configured user always, a user made through the API when enabled.
fn user_enabled(cfg: &AuthConfig, st: &ClusterState, user: &str) -> bool {
    match st.access.users.get(user) {
        Some(u) => u.enable,
        None => configured_users(cfg).contains(user),
    }
}

/// Whether `password` is the password of `user` (configured, or set when
/// the user was made through the API).
fn password_matches(cfg: &AuthConfig, st: &ClusterState, user: &str, password: &str) -> bool {
    cfg.users
        .iter()
        .any(|u| u.user == user && same(&u.password, password))
        || st
            .access
            .users
            .get(user)
            .and_then(|u| u.password.as_deref())
            .is_some_and(|pw| same(pw, password))
}

/// The privilege groups of the web UI's capabilities (`cap` of a ticket),
/// as Proxmox's `compute_api_permission` sorts them: the privileges held
/// that start with one of the prefixes.
const CAPABILITIES: &[(&str, &[&str])] = &[
    ("access", &["User.", "Group.", "Permissions.Modify"]),
    ("dc", &["Sys.Audit", "Sys.Modify", "SDN."]),
    ("mapping", &["Mapping.", "Permissions.Modify"]),
    ("nodes", &["Sys.", "Permissions.Modify"]),
    ("sdn", &["SDN.", "Permissions.Modify"]),
    ("storage", &["Datastore.", "Permissions.Modify"]),
    ("vms", &["VM.", "Permissions.Modify"]),
];

/// The `cap` of a ticket answer: what the web UI shows and enables
/// (`{"vms": {"VM.Audit": 1}, "dc": {...}, ...}`, every group present).
pub fn capabilities(cfg: &AuthConfig, st: &ClusterState, user: &str) -> Value {
    let held = effective_privileges(cfg, st, user);
    let groups: serde_json::Map<String, Value> = CAPABILITIES
        .iter()
        .map(|(group, prefixes)| {
            let privs: serde_json::Map<String, Value> = held
                .iter()
                .filter(|p| prefixes.iter().any(|prefix| p.starts_with(prefix)))
                .map(|p| (p.clone(), json!(1)))
                .collect();
            ((*group).to_string(), Value::Object(privs))
        })
        .collect();
    Value::Object(groups)
}

/// `POST /access/ticket`: check the credentials and open a session.
///
/// As Proxmox does: the realm is appended to the user name when given;
/// the password may be a current ticket of the same user (or, when a
/// ticket is created, of `root@pam`, who may create tickets for anyone);
/// every failure is `401 authentication failure`, whatever its cause;
/// `path` with `privs` only checks (the answer has no ticket) and fails
/// unless the user holds every privilege in `privs`.
pub fn issue_ticket(
    cfg: &AuthConfig,
    st: &mut ClusterState,
    www_key: &WwwKey,
    p: &Params,
) -> Result<Value, ApiError> {
    let mut user = p.str("username").unwrap_or_default().to_string();
    if let Some(realm) = p.str("realm") {
        user = format!("{user}@{realm}");
    }
    let password = p.str("password").unwrap_or_default();
    let verify_only = p.has("path") && p.has("privs");
    let denied = || ApiError::status(401, "authentication failure");
    if !user_enabled(cfg, st, &user) {
        return Err(denied());
    }
    let ticket_user = st.sessions.get(password).map(|s| s.user.as_str());
    let by_ticket = ticket_user.is_some_and(|t| t == user || (!verify_only && t == ROOT));
    if !by_ticket && !password_matches(cfg, st, &user, password) {
        return Err(denied());
    }
    let held = effective_privileges(cfg, st, &user);
    let mut answer = if verify_only {
        let wanted = split_list(p.str("privs"));
        if wanted.is_empty() || !wanted.iter().all(|w| held.contains(w)) {
            return Err(denied());
        }
        json!({ "username": user })
    } else {
        let now = unix_now();
        let ticket = format!("PVE:{user}:{now:08X}::{:032x}", rand::random::<u128>());
        let csrf = www_key.token(&user, now);
        st.sessions
            .insert(ticket.clone(), Session { user: user.clone() });
        json!({ "username": user, "ticket": ticket, "CSRFPreventionToken": csrf })
    };
    if let Some(o) = answer.as_object_mut() {
        o.insert("cap".into(), capabilities(cfg, st, &user));
        if held.contains("Sys.Audit") {
            o.insert("clustername".into(), json!(st.cluster_name));
        }
    }
    Ok(answer)
}

/// The superuser, who holds every privilege everywhere.
const ROOT: &str = "root@pam";

/// The paths `GET /access/permissions` lists without `path` (Proxmox's
/// `get_effective_permissions`), before the paths of ACL entries.
const PERMISSION_PATHS: &[&str] = &[
    "/",
    "/access",
    "/access/groups",
    "/nodes",
    "/pool",
    "/sdn",
    "/storage",
    "/vms",
];

/// `GET /access/permissions`: the privileges of the caller (or of
/// `userid`, which must be the caller or one of its tokens unless the
/// caller may audit `/access`), as `{path: {privilege: 1}}`: for `path`
/// alone when given (an empty map when none is held), else for every
/// top-level path and every path of the ACL, leaving out paths without
/// any privilege. Privileges are held on `/` and propagate, so every path
/// shows the same set.
pub fn permissions(
    cfg: &AuthConfig,
    st: &ClusterState,
    caller: &str,
    p: &Params,
) -> Result<Value, ApiError> {
    let target = p.str("userid").unwrap_or(caller);
    let caller_user = caller.split_once('!').map_or(caller, |(user, _)| user);
    let own = target == caller
        || target
            .split_once('!')
            .is_some_and(|(u, _)| u == caller_user);
    if !own && !effective_privileges(cfg, st, caller).contains("Sys.Audit") {
        return Err(ApiError::status(
            403,
            "Permission check failed (/access, Sys.Audit)",
        ));
    }
    let privileges: serde_json::Map<String, Value> = effective_privileges(cfg, st, target)
        .into_iter()
        .map(|p| (p, json!(1)))
        .collect();
    let mut answer = BTreeMap::new();
    if let Some(path) = p.str("path").filter(|p| !p.is_empty()) {
        answer.insert(path.to_string(), Value::Object(privileges));
    } else if !privileges.is_empty() {
        let acl_paths = st.access.acl.iter().map(|e| e.path.as_str());
        for path in PERMISSION_PATHS.iter().copied().chain(acl_paths) {
            answer.insert(path.to_string(), Value::Object(privileges.clone()));
        }
    }
    Ok(json!(answer))
}

/// The privileges a role may hold on this release: [`ALL_PRIVILEGES`]
/// plus those only one release has (`VM.Monitor` on 8.4; the guest agent
/// privileges and `VM.Replicate` on 9.1).
pub fn valid_privileges(version: PveVersion) -> BTreeSet<&'static str> {
    let extra: &[&str] = match version {
        PveVersion::V8_4 => &["VM.Monitor"],
        PveVersion::V9_1 => &[
            "VM.GuestAgent.Audit",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.Unrestricted",
            "VM.Replicate",
        ],
    };
    ALL_PRIVILEGES.iter().chain(extra).copied().collect()
}

/// The built-in roles the simulator knows (Proxmox has more): their
/// privileges; `None` for other ids.
fn builtin_role(id: &str, version: PveVersion) -> Option<BTreeSet<String>> {
    let privs: BTreeSet<String> = match id {
        "Administrator" => valid_privileges(version)
            .into_iter()
            .map(str::to_string)
            .collect(),
        "NoAccess" => BTreeSet::new(),
        // The `audit` privileges of every group (9.x adds the guest agent's).
        "PVEAuditor" => [
            "Datastore.Audit",
            "Mapping.Audit",
            "Pool.Audit",
            "SDN.Audit",
            "Sys.Audit",
            "VM.Audit",
        ]
        .into_iter()
        .chain((version >= PveVersion::V9_1).then_some("VM.GuestAgent.Audit"))
        .map(str::to_string)
        .collect(),
        _ => return None,
    };
    Some(privs)
}

const BUILTIN_ROLES: &[&str] = &["Administrator", "NoAccess", "PVEAuditor"];

fn role_privileges(st: &ClusterState, id: &str) -> Option<BTreeSet<String>> {
    builtin_role(id, st.version).or_else(|| st.access.roles.get(id).cloned())
}

/// What the ACL grants `ugid` on `/`.
fn acl_privileges(st: &ClusterState, kind: AclKind, ugid: &str) -> BTreeSet<String> {
    st.access
        .acl
        .iter()
        .filter(|e| e.path == "/" && e.kind == kind && e.ugid == ugid)
        .filter_map(|e| role_privileges(st, &e.roleid))
        .flatten()
        .collect()
}

fn user_privileges(cfg: &AuthConfig, st: &ClusterState, user: &str) -> BTreeSet<String> {
    if st.access.users.contains_key(user) {
        acl_privileges(st, AclKind::User, user)
    } else {
        cfg.privileges_of(user).into_iter().collect()
    }
}

/// The privileges on `/` of a user or token id (see the module doc).
pub fn effective_privileges(cfg: &AuthConfig, st: &ClusterState, id: &str) -> BTreeSet<String> {
    match id.split_once('!') {
        Some((user, _)) => match st.access.tokens.get(id) {
            Some(token) => {
                let of_user = user_privileges(cfg, st, user);
                if token.privsep {
                    let own = acl_privileges(st, AclKind::Token, id);
                    of_user.intersection(&own).cloned().collect()
                } else {
                    of_user
                }
            }
            None => cfg.privileges_of(id).into_iter().collect(),
        },
        None => user_privileges(cfg, st, id),
    }
}

/// Users of the configuration (logins, token owners, privilege entries).
fn configured_users(cfg: &AuthConfig) -> BTreeSet<String> {
    cfg.users
        .iter()
        .map(|u| u.user.clone())
        .chain(cfg.tokens.iter().map(|t| t.user.clone()))
        .chain(cfg.privileges.keys().filter(|k| !k.contains('!')).cloned())
        .collect()
}

fn user_exists(cfg: &AuthConfig, st: &ClusterState, user: &str) -> bool {
    st.access.users.contains_key(user) || configured_users(cfg).contains(user)
}

/// What the official schema asks of the caller for a call, as privileges
/// on `/`: every group must be met by one of its privileges. Checks on
/// other paths are taken as on `/` (the simulator grants only there);
/// checks that depend on the parameters (`self`) are made by the handlers.
fn required(method: &str, template: &str) -> &'static [&'static [&'static str]] {
    const AUDIT: &[&[&str]] = &[&["Sys.Audit"]];
    const CONSOLE: &[&[&str]] = &[&["Sys.Console"]];
    const SDN: &[&[&str]] = &[&["SDN.Allocate"]];
    const SDN_READ: &[&[&str]] = &[&["SDN.Audit", "SDN.Allocate"]];
    const VM_AUDIT: &[&[&str]] = &[&["VM.Audit"]];
    const POWER: &[&[&str]] = &[&["VM.PowerMgmt"]];
    const TEMPLATE: &[&[&str]] = &[&["Datastore.AllocateTemplate"]];
    const ACCESS: &[&[&str]] = &[&["Sys.Modify"]];
    match (method, template) {
        ("GET", "/cluster/status" | "/nodes/{node}/status")
        | ("GET", "/cluster/ha/resources" | "/cluster/ha/resources/{sid}") => AUDIT,
        ("POST", "/cluster/ha/resources") | ("PUT" | "DELETE", "/cluster/ha/resources/{sid}") => {
            CONSOLE
        }
        ("GET", "/cluster/sdn") => &[&["SDN.Audit"]],
        ("GET", "/cluster/sdn/controllers/{controller}" | "/cluster/sdn/zones/{zone}") => SDN,
        ("GET", "/cluster/sdn/vnets/{vnet}" | "/cluster/sdn/vnets/{vnet}/subnets/{subnet}") => {
            SDN_READ
        }
        ("PUT", "/cluster/sdn")
        | ("POST" | "DELETE", "/cluster/sdn/lock")
        | ("POST", "/cluster/sdn/rollback") => SDN,
        ("POST" | "PUT" | "DELETE", t) if t.starts_with("/cluster/sdn/") => SDN,
        // The description: VM.Allocate and Datastore.AllocateSpace; Proxmox
        // also checks SDN.Use on the bridge of every network device.
        ("POST", "/nodes/{node}/lxc") => {
            &[&["VM.Allocate"], &["Datastore.AllocateSpace"], &["SDN.Use"]]
        }
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => &[&["VM.Allocate"]],
        ("GET", "/nodes/{node}/lxc/{vmid}/config" | "/nodes/{node}/lxc/{vmid}/status/current") => {
            VM_AUDIT
        }
        ("PUT", "/nodes/{node}/lxc/{vmid}/config") => &[&[
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.Options",
        ]],
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize") => &[&["VM.Config.Disk"]],
        ("POST", t) if t.starts_with("/nodes/{node}/lxc/{vmid}/status/") => POWER,
        ("GET", "/nodes/{node}/storage/{storage}/content") => {
            &[&["Datastore.Audit", "Datastore.AllocateSpace"]]
        }
        ("POST", "/nodes/{node}/aplinfo" | "/nodes/{node}/storage/{storage}/upload") => TEMPLATE,
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => &[
            &["Datastore.AllocateTemplate"],
            &["Sys.Modify", "Sys.AccessNetwork"],
        ],
        ("POST", "/access/roles") | ("PUT" | "DELETE", "/access/roles/{roleid}") => ACCESS,
        ("POST", "/access/users") => &[&["Realm.AllocateUser"], &["User.Modify"]],
        ("PUT", "/access/acl") => &[&["Permissions.Modify"]],
        ("GET", "/nodes/{node}/ceph/status") => &[&["Sys.Audit", "Datastore.Audit"]],
        _ => &[],
    }
}

/// Refuse (403, as Proxmox words it) a call the caller lacks privileges for.
pub fn authorize(
    cfg: &AuthConfig,
    st: &ClusterState,
    caller: &str,
    method: &str,
    template: &str,
) -> Result<(), ApiError> {
    let groups = required(method, template);
    if groups.is_empty() {
        return Ok(());
    }
    let held = effective_privileges(cfg, st, caller);
    for group in groups {
        if !group.iter().any(|p| held.contains(*p)) {
            return Err(ApiError::status(
                403,
                format!("Permission check failed (/, {})", group.join("|")),
            ));
        }
    }
    Ok(())
}

/// The handlers of the `/access` endpoints (tickets and permissions are
/// answered by the server itself).
pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    match (method, template) {
        ("GET", "/access/domains") => domains(),
        ("GET", "/access/roles") => list_roles(ctx),
        ("POST", "/access/roles") => create_role(ctx),
        ("GET", "/access/roles/{roleid}") => read_role(ctx),
        ("PUT", "/access/roles/{roleid}") => update_role(ctx),
        ("GET", "/access/users") => list_users(ctx),
        ("POST", "/access/users") => create_user(ctx),
        ("GET", "/access/acl") => read_acl(ctx),
        ("PUT", "/access/acl") => update_acl(ctx),
        ("POST", "/access/users/{userid}/token/{tokenid}") => create_token(ctx),
        ("DELETE", "/access/users/{userid}/token/{tokenid}") => delete_token(ctx),
        _ => Err(ApiError::status(
            501,
            format!("Method '{method} {template}' not implemented"),
        )),
    }
}

/// `GET /access/domains`: the realms every cluster has, as a fresh
/// install lists them (`domains.cfg` adds `pam` and `pve` with these
/// comments; no `default` marker, no second factor).
fn domains() -> Reply {
    list(vec![
        json!({"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"}),
        json!({"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"}),
    ])
}

fn joined(privs: &BTreeSet<String>) -> String {
    privs.iter().cloned().collect::<Vec<_>>().join(",")
}

fn list_roles(ctx: &Ctx<'_>) -> Reply {
    let version = ctx.st.version;
    let builtin = BUILTIN_ROLES.iter().filter_map(|id| {
        builtin_role(id, version).map(|p| json!({"roleid": id, "privs": joined(&p), "special": 1}))
    });
    let made = ctx
        .st
        .access
        .roles
        .iter()
        .map(|(id, p)| json!({"roleid": id, "privs": joined(p), "special": 0}));
    list(builtin.chain(made).collect())
}

/// A `pve-priv-list` value, each privilege checked against the release.
fn privilege_list(ctx: &Ctx<'_>) -> Result<BTreeSet<String>, ApiError> {
    let valid = valid_privileges(ctx.st.version);
    let mut out = BTreeSet::new();
    for p in ctx
        .p
        .str("privs")
        .unwrap_or_default()
        .split([',', ';', ' ', '\0'])
        .filter(|p| !p.is_empty())
    {
        if !valid.contains(p) {
            return Err(ApiError::param(
                "privs",
                format!("invalid format - invalid privilege '{p}'"),
            ));
        }
        out.insert(p.to_string());
    }
    Ok(out)
}

fn create_role(ctx: &mut Ctx<'_>) -> Reply {
    let id = ctx.s("roleid")?;
    if role_privileges(ctx.st, &id).is_some() {
        return Err(ApiError::fail(format!("role '{id}' already exists")));
    }
    if id.starts_with("PVE") {
        return Err(ApiError::fail(format!(
            "cannot create role '{id}': role names starting with 'PVE' are reserved"
        )));
    }
    let privs = privilege_list(ctx)?;
    ctx.st.access.roles.insert(id, privs);
    Ok(Value::Null)
}

fn read_role(ctx: &Ctx<'_>) -> Reply {
    let id = ctx.s("roleid")?;
    let privs = role_privileges(ctx.st, &id)
        .ok_or_else(|| ApiError::fail(format!("role '{id}' does not exist")))?;
    Ok(Value::Object(
        privs.into_iter().map(|p| (p, json!(1))).collect(),
    ))
}

fn update_role(ctx: &mut Ctx<'_>) -> Reply {
    let id = ctx.s("roleid")?;
    if builtin_role(&id, ctx.st.version).is_some() {
        return Err(ApiError::fail(format!(
            "cannot modify built-in role '{id}'"
        )));
    }
    if !ctx.st.access.roles.contains_key(&id) {
        return Err(ApiError::fail(format!("role '{id}' does not exist")));
    }
    let privs = privilege_list(ctx)?;
    let append = ctx.p.flag("append", false);
    if let Some(role) = ctx.st.access.roles.get_mut(&id) {
        if !append {
            role.clear();
        }
        role.extend(privs);
    }
    Ok(Value::Null)
}

fn tokens_json(access: &AccessState, user: &str) -> Vec<Value> {
    let prefix = format!("{user}!");
    access
        .tokens
        .iter()
        .filter_map(|(id, t)| id.strip_prefix(&prefix).map(|name| (name, t)))
        .map(|(name, t)| token_info(name, t))
        .collect()
}

fn token_info(name: &str, t: &TokenEntry) -> Value {
    let mut v = json!({"tokenid": name, "privsep": u8::from(t.privsep), "expire": t.expire});
    if let (Some(c), Some(o)) = (&t.comment, v.as_object_mut()) {
        o.insert("comment".into(), json!(c));
    }
    v
}

fn list_users(ctx: &Ctx<'_>) -> Reply {
    let held = effective_privileges(ctx.auth, ctx.st, ctx.user);
    let sees_all = held.contains("User.Modify") || held.contains("Sys.Audit");
    let own = ctx.user.split_once('!').map_or(ctx.user, |(u, _)| u);
    let full = ctx.p.flag("full", false);
    let enabled = ctx.p.str("enabled").map(|_| ctx.p.flag("enabled", true));
    let configured = configured_users(ctx.auth)
        .into_iter()
        .filter(|u| !ctx.st.access.users.contains_key(u))
        .map(|u| {
            (
                u,
                UserEntry {
                    comment: None,
                    enable: true,
                    password: None,
                },
            )
        });
    let made = ctx
        .st
        .access
        .users
        .iter()
        .map(|(u, e)| (u.clone(), e.clone()));
    let mut all: Vec<(String, UserEntry)> = configured.chain(made).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let items = all
        .into_iter()
        .filter(|(u, _)| sees_all || u == own)
        .filter(|(_, e)| enabled.is_none_or(|want| want == e.enable))
        .map(|(u, e)| {
            let realm = u.split_once('@').map_or("", |(_, r)| r).to_string();
            let mut v = json!({"userid": u, "enable": u8::from(e.enable), "expire": 0, "realm-type": realm});
            if let Some(o) = v.as_object_mut() {
                if let Some(c) = &e.comment {
                    o.insert("comment".into(), json!(c));
                }
                if full {
                    o.insert("tokens".into(), json!(tokens_json(&ctx.st.access, &u)));
                }
            }
            v
        })
        .collect();
    list(items)
}

/// Realms every simulated cluster has.
const REALMS: &[&str] = &["pam", "pve"];

fn create_user(ctx: &mut Ctx<'_>) -> Reply {
    let id = ctx.s("userid")?;
    if user_exists(ctx.auth, ctx.st, &id) {
        return Err(ApiError::fail(format!(
            "create user failed: user '{id}' already exists"
        )));
    }
    let realm = id.split_once('@').map_or("", |(_, r)| r);
    if !REALMS.contains(&realm) {
        return Err(ApiError::fail(format!(
            "create user failed: domain '{realm}' does not exist"
        )));
    }
    if ctx.p.has("groups") {
        return Err(ApiError::fail(
            "create user failed: the simulator has no groups",
        ));
    }
    // Proxmox stores the password in the realm (`priv/shadow.cfg` for
    // `pve`; `usermod` for `pam`, whose Linux account is taken to exist).
    ctx.st.access.users.insert(
        id,
        UserEntry {
            comment: ctx.p.str("comment").map(str::to_string),
            enable: ctx.p.flag("enable", true),
            password: ctx.p.str("password").map(str::to_string),
        },
    );
    Ok(Value::Null)
}

fn read_acl(ctx: &Ctx<'_>) -> Reply {
    let held = effective_privileges(ctx.auth, ctx.st, ctx.user);
    if !held.contains("Permissions.Modify") {
        return list(Vec::new());
    }
    list(
        ctx.st
            .access
            .acl
            .iter()
            .map(|e| {
                json!({"path": e.path, "type": e.kind, "ugid": e.ugid,
                       "roleid": e.roleid, "propagate": u8::from(e.propagate)})
            })
            .collect(),
    )
}

fn split_list(v: Option<&str>) -> Vec<String> {
    v.unwrap_or_default()
        .split([',', ';', ' ', '\0'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An ACL path as Proxmox accepts it (`/`, `/vms/100`, `/sdn/zones/x`...).
fn acl_path(raw: &str) -> Option<String> {
    let mut path = String::from("/");
    path.push_str(
        &raw.split('/')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/"),
    );
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    let ok = path == "/" || path.split('/').skip(1).all(segment_ok);
    ok.then_some(path)
}

fn update_acl(ctx: &mut Ctx<'_>) -> Reply {
    let raw = ctx.s("path")?;
    let path = acl_path(&raw).ok_or_else(|| ApiError::fail(format!("invalid ACL path '{raw}'")))?;
    let roles = split_list(ctx.p.str("roles"));
    let users = split_list(ctx.p.str("users"));
    let tokens = split_list(ctx.p.str("tokens"));
    if !split_list(ctx.p.str("groups")).is_empty() {
        return Err(ApiError::fail("the simulator has no groups"));
    }
    if users.is_empty() && tokens.is_empty() {
        return Err(ApiError::fail(
            "either 'users', 'groups' or 'tokens' is required",
        ));
    }
    let delete = ctx.p.flag("delete", false);
    let propagate = ctx.p.flag("propagate", true);
    if !delete {
        for r in &roles {
            if role_privileges(ctx.st, r).is_none() {
                return Err(ApiError::fail(format!("role '{r}' does not exist")));
            }
        }
        for u in &users {
            if !user_exists(ctx.auth, ctx.st, u) {
                return Err(ApiError::fail(format!("user '{u}' does not exist")));
            }
        }
        for t in &tokens {
            let known = ctx.st.access.tokens.contains_key(t)
                || ctx
                    .auth
                    .tokens
                    .iter()
                    .any(|c| &format!("{}!{}", c.user, c.name) == t);
            if !known {
                return Err(ApiError::fail(format!("no such token '{t}'")));
            }
        }
    }
    let grants = users
        .iter()
        .map(|u| (AclKind::User, u))
        .chain(tokens.iter().map(|t| (AclKind::Token, t)));
    for (kind, ugid) in grants {
        for roleid in &roles {
            let acl = &mut ctx.st.access.acl;
            let same = |e: &AclEntry| {
                e.path == path && e.kind == kind && &e.ugid == ugid && &e.roleid == roleid
            };
            if delete {
                acl.retain(|e| !same(e));
            } else if let Some(e) = acl.iter_mut().find(|e| same(e)) {
                e.propagate = propagate;
            } else {
                acl.push(AclEntry {
                    path: path.clone(),
                    kind,
                    ugid: ugid.clone(),
                    roleid: roleid.clone(),
                    propagate,
                });
            }
        }
    }
    Ok(Value::Null)
}

/// Token calls: on one's own tokens (a ticket of that user), or with
/// `User.Modify`.
fn may_manage_tokens(ctx: &Ctx<'_>, user: &str) -> Result<(), ApiError> {
    if ctx.user == user || effective_privileges(ctx.auth, ctx.st, ctx.user).contains("User.Modify")
    {
        Ok(())
    } else {
        Err(ApiError::status(
            403,
            format!("Permission check failed (/access/groups, User.Modify) for {user}"),
        ))
    }
}

fn token_ids(ctx: &Ctx<'_>) -> Result<(String, String, String), ApiError> {
    let user = ctx.s("userid")?;
    let name = ctx.s("tokenid")?;
    if !is_userid(&user) || !is_token_name(&name) {
        return Err(ApiError::param("tokenid", "invalid token id"));
    }
    let full = format!("{user}!{name}");
    Ok((user, name, full))
}

fn create_token(ctx: &mut Ctx<'_>) -> Reply {
    let (user, name, full) = token_ids(ctx)?;
    may_manage_tokens(ctx, &user)?;
    if !user_exists(ctx.auth, ctx.st, &user) {
        return Err(ApiError::fail(format!("no such user ('{user}')")));
    }
    let configured = ctx
        .auth
        .tokens
        .iter()
        .any(|t| t.user == user && t.name == name);
    if configured || ctx.st.access.tokens.contains_key(&full) {
        return Err(ApiError::fail("Token already exists."));
    }
    let secret = random_uuid();
    let token = TokenEntry {
        comment: ctx.p.str("comment").map(str::to_string),
        privsep: ctx.p.flag("privsep", true),
        expire: ctx.p.int("expire").unwrap_or(0),
        secret: secret.clone(),
    };
    let mut info = token_info(&name, &token);
    if let Some(o) = info.as_object_mut() {
        o.remove("tokenid");
    }
    ctx.st.access.tokens.insert(full.clone(), token);
    Ok(json!({"full-tokenid": full, "info": info, "value": secret}))
}

fn delete_token(ctx: &mut Ctx<'_>) -> Reply {
    let (user, name, full) = token_ids(ctx)?;
    may_manage_tokens(ctx, &user)?;
    if ctx.st.access.tokens.remove(&full).is_none() {
        return Err(ApiError::fail(format!(
            "no such token '{name}' for user '{user}'"
        )));
    }
    // Proxmox drops the ACL entries of a deleted token with it.
    ctx.st
        .access
        .acl
        .retain(|e| !(e.kind == AclKind::Token && e.ugid == full));
    Ok(Value::Null)
}

/// A random version 4 UUID, as Proxmox makes token secrets.
fn random_uuid() -> String {
    const VERSION_MASK: u128 = 0xF000 << 64;
    const VERSION_4: u128 = 0x4000 << 64;
    const VARIANT_MASK: u128 = 0xC000 << 48;
    const VARIANT_RFC: u128 = 0x8000 << 48;
    let mut b: u128 = rand::random();
    b = (b & !VERSION_MASK) | VERSION_4;
    b = (b & !VARIANT_MASK) | VARIANT_RFC;
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

//! Authentication as pveproxy does it: API tokens
//! (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`) and tickets from
//! `POST /access/ticket` (cookie `PVEAuthCookie`, plus the
//! `CSRFPreventionToken` header on every write: a token made and checked
//! with the simulator's `pve-www.key` exactly as Proxmox does, see
//! [`crate::pve::csrf`], so any genuine current token of the ticket's user
//! passes, not only the one issued with the ticket), and the caller's
//! effective privileges (`GET /access/permissions`).
//!
//! Privileges: [`AuthConfig::privileges`] gives the privileges on `/` of
//! chosen users and tokens; everyone not listed holds every privilege, as
//! `root@pam` (the default login) does on a real cluster. A token without an
//! entry of its own has its user's privileges (no privilege separation).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use crate::pve::csrf::WwwKey;
use crate::pve::error::ApiError;
use crate::pve::state::{ClusterState, Session, unix_now};
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
            .any(|t| format!("{}!{}", t.user, t.name) == id && same(&t.secret, secret));
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
        .ok_or_else(|| ApiError::status(401, "No ticket"))?;
    let session = st.sessions.get(ticket).ok_or_else(denied)?;
    if write && !csrf.is_some_and(|c| www_key.accepts(&session.user, c, unix_now())) {
        return Err(ApiError::status(
            401,
            "Permission denied - invalid csrf token",
        ));
    }
    Ok(Auth::Ticket(session.user.clone()))
}

/// `POST /access/ticket`: check the password and open a session.
pub fn issue_ticket(
    cfg: &AuthConfig,
    st: &mut ClusterState,
    www_key: &WwwKey,
    p: &Params,
) -> Result<Value, ApiError> {
    let mut user = p.str("username").unwrap_or_default().to_string();
    if let Some(realm) = p.str("realm")
        && !user.contains('@')
    {
        user = format!("{user}@{realm}");
    }
    let password = p.str("password").unwrap_or_default();
    let ok = cfg
        .users
        .iter()
        .any(|u| u.user == user && same(&u.password, password));
    if !ok {
        return Err(ApiError::status(401, "authentication failure"));
    }
    let now = unix_now();
    let ticket = format!("PVE:{user}:{now:08X}::{:032x}", rand::random::<u128>());
    let csrf = www_key.token(&user, now);
    st.sessions
        .insert(ticket.clone(), Session { user: user.clone() });
    Ok(json!({
        "username": user, "ticket": ticket, "CSRFPreventionToken": csrf,
        "cap": {}, "clustername": st.cluster_name,
    }))
}

/// `GET /access/permissions`: the privileges of the caller (or of
/// `userid`, which must be the caller or one of its tokens unless the
/// caller may audit `/access`), as `{path: {privilege: 1}}`. Privileges are
/// held on `/` and propagate, so every path shows the same set.
pub fn permissions(cfg: &AuthConfig, caller: &str, p: &Params) -> Result<Value, ApiError> {
    let target = p.str("userid").unwrap_or(caller);
    let caller_user = caller.split_once('!').map_or(caller, |(user, _)| user);
    let own = target == caller
        || target
            .split_once('!')
            .is_some_and(|(u, _)| u == caller_user);
    if !own && !cfg.privileges_of(caller).iter().any(|p| p == "Sys.Audit") {
        return Err(ApiError::status(
            403,
            "Permission check failed (/access, Sys.Audit)",
        ));
    }
    let privileges: serde_json::Map<String, Value> = cfg
        .privileges_of(target)
        .into_iter()
        .map(|p| (p, json!(1)))
        .collect();
    let path = p.str("path").unwrap_or("/").to_string();
    let mut answer = BTreeMap::new();
    answer.insert(path, Value::Object(privileges));
    Ok(json!(answer))
}

//! Authentication as pveproxy does it: API tokens
//! (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`) and tickets from
//! `POST /access/ticket` (cookie `PVEAuthCookie`, plus the
//! `CSRFPreventionToken` header on every write).

use std::fmt;

use serde_json::{Value, json};

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

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Check a request's credentials. `write` is true for non-GET methods.
pub fn authenticate(
    cfg: &AuthConfig,
    st: &ClusterState,
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
    if write && !csrf.is_some_and(|c| same(c, &session.csrf)) {
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
    let csrf = format!("{now:08X}:{:022x}", rand::random::<u128>() >> 40);
    st.sessions.insert(
        ticket.clone(),
        Session {
            user: user.clone(),
            csrf: csrf.clone(),
        },
    );
    Ok(json!({
        "username": user, "ticket": ticket, "CSRFPreventionToken": csrf,
        "cap": {}, "clustername": st.cluster_name,
    }))
}

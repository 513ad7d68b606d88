//! `orbitlab init --login USER@REALM`: OrbitLab's own Proxmox identity,
//! made with an administrator's login (a ticket from `POST /access/ticket`;
//! the password is read from `ORBITLAB_LOGIN_PASSWORD` or standard input,
//! held in a [`Secret`], and never stored, printed or passed on):
//! - the role [`ORBITLAB_ROLE`] with exactly [`ORBITLAB_PRIVILEGES`];
//! - the user `orbitlab@pve` (no password: only its token is used);
//! - the API token `orbitlab@pve!agent`, with privilege separation: it
//!   holds what its own ACL entry grants *and* its user holds, so the
//!   token can later be narrowed without touching the user, and a user
//!   given more by hand does not widen the token;
//! - on `/`, the role granted to the user and to the token (propagating);
//!   other grants to them are taken back.
//!
//! A rerun checks each and corrects what differs; an existing token whose
//! secret is not stored (or no longer valid, or without privilege
//! separation) is deleted and made again. The token connection is stored
//! root-only (`<root>/priv/orbitlab/pve-api.json`, [`StoredConnection`])
//! as soon as the token exists.
//!
//! Side effects: Proxmox's `user.cfg` (cluster-wide) and the stored
//! connection.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use orbitlab_engine::pve::privileges::{ORBITLAB_PRIVILEGES, ORBITLAB_ROLE};
use orbitlab_engine::pve::{
    AclKind, ApiErrorKind, ClientConfig, ClientOptions, Credentials, Grantee, PveClient, RoleId,
    Secret, StoredConnection, StoredTrust, TokenId, UserId,
};
use orbitlab_engine::store::Store;
use serde_json::{Value, json};

/// Environment variable holding the administrator's password.
const PASSWORD_ENV: &str = "ORBITLAB_LOGIN_PASSWORD";
/// OrbitLab's user.
const USER: &str = "orbitlab@pve";
/// The agents' token.
const TOKEN: &str = "orbitlab@pve!agent";
/// The ACL path OrbitLab's privileges are granted on.
const ACL_PATH: &str = "/";

/// An administrator's login, as asked on the command line.
#[derive(Debug)]
pub struct Login {
    url: String,
    trust: StoredTrust,
    user: UserId,
    password: Secret,
}

impl Login {
    /// Parses the user id and reads the password (environment or standard
    /// input); writes nothing.
    pub fn from_args(user: &str, url: String, trust: StoredTrust) -> Result<Self> {
        let user: UserId = user.parse().context("--login")?;
        let password = match std::env::var(PASSWORD_ENV) {
            Ok(p) if !p.is_empty() => Secret::new(p),
            _ => read_password(&user)?,
        };
        Ok(Login {
            url,
            trust,
            user,
            password,
        })
    }
}

/// A line from standard input; on a terminal, a prompt with echo off.
fn read_password(user: &UserId) -> Result<Secret> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("Password of {user}: ");
        std::io::stderr().flush()?;
        set_echo(false);
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        set_echo(true);
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("no password for {user}: set {PASSWORD_ENV} or give it on standard input");
    }
    Ok(Secret::new(password))
}

/// Terminal echo on or off (`stty`, whose arguments hold no secret).
fn set_echo(on: bool) {
    let _ = Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(Stdio::inherit())
        .status();
}

/// What the first run made: the connection to store, and a report.
pub struct Setup {
    /// The token connection (already stored).
    pub connection: StoredConnection,
    /// What was checked and changed (never a secret).
    pub report: Value,
}

/// Makes or corrects OrbitLab's role, user, token and ACL, and stores the
/// token connection (see the module doc).
pub fn set_up(store: &Store, login: &Login) -> Result<Setup> {
    let role: RoleId = ORBITLAB_ROLE.parse()?;
    let user: UserId = USER.parse()?;
    let token: TokenId = TOKEN.parse()?;
    let pve = PveClient::new(ClientConfig {
        base_url: login.url.clone(),
        trust: login.trust.trust()?,
        credentials: Credentials::password(login.user.as_str(), login.password.clone())?,
        options: ClientOptions::default(),
    })?;
    let mut changes = Vec::new();
    let mut change = |what: String| changes.push(Value::from(what));

    // The role, with exactly OrbitLab's privileges.
    let wanted: BTreeSet<String> = ORBITLAB_PRIVILEGES.iter().map(|p| (*p).into()).collect();
    let existing = pve
        .roles()
        .with_context(|| format!("reading Proxmox roles as {}", login.user))?
        .into_iter()
        .find(|r| r.roleid == ORBITLAB_ROLE);
    match existing {
        None => {
            pve.create_role(&role, ORBITLAB_PRIVILEGES)?;
            change(format!("created role {role}"));
        }
        Some(r) if r.privs != wanted => {
            pve.set_role_privileges(&role, ORBITLAB_PRIVILEGES)?;
            change(format!("set the privileges of role {role}"));
        }
        Some(_) => {}
    }

    // The user.
    let users = pve.users()?;
    let tokens = match users.into_iter().find(|u| u.userid == USER) {
        Some(u) => u.tokens,
        None => {
            pve.create_user(&user, "OrbitLab agents (made by orbitlab init)")?;
            change(format!("created user {user}"));
            Vec::new()
        }
    };

    // The token: kept only if its secret is stored and still valid.
    let listed = tokens.iter().find(|t| t.tokenid == token.name.as_str());
    let kept = match listed {
        Some(t) if t.privsep != Some(false) => usable_stored(store, &login.url)?,
        _ => None,
    };
    let connection = match kept {
        Some(connection) => connection,
        None => {
            if listed.is_some() {
                pve.delete_token(&token)?;
                change(format!("deleted token {token} (its secret is not stored)"));
            }
            let made = pve.create_token(&token, true, "OrbitLab agents")?;
            if made.id != token {
                bail!("Proxmox made token {} instead of {token}", made.id);
            }
            change(format!("created token {token}"));
            let connection = StoredConnection {
                url: login.url.clone(),
                token: token.to_string(),
                secret: made.secret.expose().to_owned(),
                trust: login.trust.clone(),
            };
            // Stored at once: Proxmox shows a token's secret only once.
            connection.save(store)?;
            connection
        }
    };

    // The ACL: the role on `/` for the user and the token, nothing else.
    let acl = pve.acl()?;
    let grantees = [
        (AclKind::User, user.as_str(), Grantee::User(&user)),
        (AclKind::Token, TOKEN, Grantee::Token(&token)),
    ];
    for (kind, id, grantee) in grantees {
        let ours: Vec<_> = acl
            .iter()
            .filter(|e| e.kind == kind && e.ugid == id)
            .collect();
        let granted = ours
            .iter()
            .any(|e| e.path == ACL_PATH && e.roleid == ORBITLAB_ROLE && e.propagates());
        if !granted {
            pve.set_acl(ACL_PATH, &role, grantee, true, false)?;
            change(format!("granted role {role} on {ACL_PATH} to {id}"));
        }
        for e in ours {
            if e.path == ACL_PATH && e.roleid == ORBITLAB_ROLE {
                continue;
            }
            let other: RoleId = e.roleid.parse()?;
            pve.set_acl(&e.path, &other, grantee, true, true)?;
            change(format!("took role {other} on {} back from {id}", e.path));
        }
    }
    Ok(Setup {
        connection,
        report: json!({
            "role": ORBITLAB_ROLE,
            "privileges": ORBITLAB_PRIVILEGES,
            "user": USER,
            "token": TOKEN,
            "changes": changes,
        }),
    })
}

/// The stored connection, if it is OrbitLab's token at this URL and
/// Proxmox still accepts its secret.
fn usable_stored(store: &Store, url: &str) -> Result<Option<StoredConnection>> {
    let Ok(stored) = StoredConnection::load(store) else {
        return Ok(None);
    };
    if stored.token != TOKEN || stored.url != url {
        return Ok(None);
    }
    let client = PveClient::new(stored.client_config(store)?)?;
    match client.version() {
        Ok(_) => Ok(Some(stored)),
        Err(e) if e.kind() == Some(&ApiErrorKind::Unauthorized) => Ok(None),
        Err(e) => Err(e).context("checking the stored token"),
    }
}

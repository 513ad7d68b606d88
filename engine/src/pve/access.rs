//! Proxmox users, roles, API tokens and the ACL (`/access/...`): the calls
//! `orbitlab init` makes with an administrator's login to set up OrbitLab's
//! own user, role and token. They are inherent methods of
//! [`PveClient`] (the engine never makes them: its token could not).
//!
//! Ids are typed and checked with Proxmox's rules when parsed
//! ([`UserId`], [`RoleId`], [`TokenName`], [`TokenId`]). A new token's
//! secret comes back as a [`Secret`]: it never prints.
//!
//! Side effects: the calls change Proxmox's `user.cfg` (cluster-wide).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::Secret;
use super::client::PveClient;
use super::de;
use super::error::{PveError, Result};
use super::http::{Retry, seg};
use super::ids::InvalidId;
use super::wire::Method;

fn invalid(what: &'static str, value: &str, reason: &'static str) -> InvalidId {
    InvalidId::new(what, value, reason)
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// A Proxmox user id, `name@realm` (Proxmox: the name has no white
/// space, `:` or `/`; the realm starts with a letter, then letters, digits,
/// `.`, `-`, `_`); at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl FromStr for UserId {
    type Err = InvalidId;
    fn from_str(value: &str) -> std::result::Result<Self, InvalidId> {
        const WHAT: &str = "Proxmox user id";
        if value.len() > 64 {
            return Err(invalid(WHAT, value, "must be at most 64 bytes"));
        }
        let Some((name, realm)) = value.rsplit_once('@') else {
            return Err(invalid(WHAT, value, "must be written NAME@REALM"));
        };
        let name_ok = !name.is_empty()
            && !name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | '/' | '!'));
        if !name_ok {
            return Err(invalid(
                WHAT,
                value,
                "the name must not be empty or hold white space, ':', '/' or '!'",
            ));
        }
        let realm_ok = realm.len() >= 2
            && realm.as_bytes()[0].is_ascii_alphabetic()
            && realm.bytes().all(is_id_byte);
        if !realm_ok {
            return Err(invalid(
                WHAT,
                value,
                "the realm must start with a letter, then letters, digits, '.', '-' or '_'",
            ));
        }
        Ok(UserId(value.to_owned()))
    }
}

/// A role id (Proxmox: letters, digits, `.`, `-`, `_`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleId(String);

impl FromStr for RoleId {
    type Err = InvalidId;
    fn from_str(value: &str) -> std::result::Result<Self, InvalidId> {
        if value.is_empty() || value.len() > 64 || !value.bytes().all(is_id_byte) {
            return Err(invalid(
                "Proxmox role id",
                value,
                "use 1 to 64 letters, digits, '.', '-' or '_'",
            ));
        }
        Ok(RoleId(value.to_owned()))
    }
}

/// An API token's name, the part after `!` (Proxmox:
/// `[A-Za-z][A-Za-z0-9.\-_]+`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenName(String);

impl FromStr for TokenName {
    type Err = InvalidId;
    fn from_str(value: &str) -> std::result::Result<Self, InvalidId> {
        let ok = value.len() >= 2
            && value.len() <= 64
            && value.as_bytes()[0].is_ascii_alphabetic()
            && value.bytes().all(is_id_byte);
        if !ok {
            return Err(invalid(
                "API token name",
                value,
                "use a letter, then 1 to 63 letters, digits, '.', '-' or '_'",
            ));
        }
        Ok(TokenName(value.to_owned()))
    }
}

/// A full API token id, `user@realm!name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenId {
    /// The token's user.
    pub user: UserId,
    /// Its name.
    pub name: TokenName,
}

impl FromStr for TokenId {
    type Err = InvalidId;
    fn from_str(value: &str) -> std::result::Result<Self, InvalidId> {
        let (user, name) = value
            .split_once('!')
            .ok_or_else(|| invalid("API token id", value, "must be written USER@REALM!NAME"))?;
        Ok(TokenId {
            user: user.parse()?,
            name: name.parse()?,
        })
    }
}

macro_rules! id_text {
    ($($name:ident),*) => {$(
        impl $name {
            /// The id as Proxmox spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

id_text!(UserId, RoleId, TokenName);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}!{}", self.user, self.name)
    }
}

/// A role as `GET /access/roles` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// Its id.
    pub roleid: String,
    /// Its privileges.
    pub privs: BTreeSet<String>,
    /// A built-in role (cannot be changed).
    pub special: bool,
}

#[derive(Deserialize)]
struct RoleWire {
    roleid: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    privs: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    special: Option<bool>,
}

/// Splits a `pve-priv-list`.
fn privilege_set(list: &str) -> BTreeSet<String> {
    list.split([',', ';', ' '])
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An API token as `GET /access/users?full=1` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// Its name (after `!`).
    pub tokenid: String,
    /// Privilege separation (Proxmox's default: on).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub privsep: Option<bool>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A user as `GET /access/users?full=1` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    /// `name@realm`.
    pub userid: String,
    /// Whether the account is enabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
    /// Its API tokens.
    #[serde(default)]
    pub tokens: Vec<TokenInfo>,
}

/// Whom an ACL entry grants a role to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclKind {
    /// A user.
    User,
    /// A group.
    Group,
    /// An API token.
    Token,
}

/// One entry of `GET /access/acl`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AclEntry {
    /// The path (`/`, `/vms/100`...).
    pub path: String,
    /// User, group or token.
    #[serde(rename = "type")]
    pub kind: AclKind,
    /// The user, group or token id.
    pub ugid: String,
    /// The role granted.
    pub roleid: String,
    /// Whether the grant holds below the path too (Proxmox's default: yes).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub propagate: Option<bool>,
}

impl AclEntry {
    /// Whether the grant holds below its path.
    pub fn propagates(&self) -> bool {
        self.propagate.unwrap_or(true)
    }
}

/// Who an ACL change is about.
#[derive(Debug, Clone, Copy)]
pub enum Grantee<'a> {
    /// A user.
    User(&'a UserId),
    /// An API token.
    Token(&'a TokenId),
}

/// A token just made: its id and its secret, shown by Proxmox only once.
#[derive(Debug)]
pub struct NewToken {
    /// `user@realm!name`, as Proxmox answered it.
    pub id: TokenId,
    /// The secret (prints as `<hidden>`).
    pub secret: Secret,
}

#[derive(Deserialize)]
struct NewTokenWire {
    #[serde(rename = "full-tokenid")]
    full_tokenid: String,
    value: String,
}

type Params = Vec<(String, String)>;

fn p(k: &str, v: impl ToString) -> (String, String) {
    (k.to_owned(), v.to_string())
}

fn privs_param(privs: &[&str]) -> (String, String) {
    p("privs", privs.join(","))
}

fn token_path(id: &TokenId) -> String {
    format!(
        "/access/users/{}/token/{}",
        seg(id.user.as_str()),
        seg(id.name.as_str())
    )
}

/// The `/access` calls of `orbitlab init` (see the module doc).
impl PveClient {
    fn access_read<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> Result<T> {
        let data = self.call(Method::GET, path, params, Retry::Safe)?;
        decode(Method::GET, path, data)
    }

    /// `GET /access/roles`: every role with its privileges.
    pub fn roles(&self) -> Result<Vec<RoleInfo>> {
        let wire: Vec<RoleWire> = self.access_read("/access/roles", &[])?;
        Ok(wire
            .into_iter()
            .map(|r| RoleInfo {
                roleid: r.roleid,
                privs: r.privs.as_deref().map(privilege_set).unwrap_or_default(),
                special: r.special.unwrap_or(false),
            })
            .collect())
    }

    /// `GET /access/roles/{roleid}`: a role's privileges.
    pub fn role(&self, role: &RoleId) -> Result<BTreeSet<String>> {
        let path = format!("/access/roles/{}", seg(role.as_str()));
        let data: serde_json::Map<String, Value> = self.access_read(&path, &[])?;
        Ok(data
            .into_iter()
            .filter(|(_, v)| v.as_u64() == Some(1) || v.as_bool() == Some(true) || v == "1")
            .map(|(k, _)| k)
            .collect())
    }

    /// `POST /access/roles`: a new role holding `privs`.
    pub fn create_role(&self, role: &RoleId, privs: &[&str]) -> Result<()> {
        let params = vec![p("roleid", role), privs_param(privs)];
        self.call(Method::POST, "/access/roles", &params, Retry::Never)?;
        Ok(())
    }

    /// `PUT /access/roles/{roleid}`: the role holds exactly `privs` from
    /// now on (setting an absolute value: safe to repeat).
    pub fn set_role_privileges(&self, role: &RoleId, privs: &[&str]) -> Result<()> {
        let path = format!("/access/roles/{}", seg(role.as_str()));
        let params = vec![privs_param(privs), p("append", 0)];
        self.call(Method::PUT, &path, &params, Retry::Safe)?;
        Ok(())
    }

    /// `GET /access/users?full=1`: the users the caller may see, with
    /// their tokens.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        self.access_read("/access/users", &[p("full", 1)])
    }

    /// `POST /access/users`: a user without a password (it cannot log in;
    /// only its tokens are used).
    pub fn create_user(&self, user: &UserId, comment: &str) -> Result<()> {
        let params = vec![p("userid", user), p("comment", comment)];
        self.call(Method::POST, "/access/users", &params, Retry::Never)?;
        Ok(())
    }

    /// `GET /access/acl`: the entries the caller may change.
    pub fn acl(&self) -> Result<Vec<AclEntry>> {
        self.access_read("/access/acl", &[])
    }

    /// `PUT /access/acl`: grant `role` on `path` (`propagate`: below it
    /// too), or with `revoke` take that grant back. Safe to repeat.
    pub fn set_acl(
        &self,
        path: &str,
        role: &RoleId,
        to: Grantee<'_>,
        propagate: bool,
        revoke: bool,
    ) -> Result<()> {
        let mut params: Params = vec![p("path", path), p("roles", role)];
        params.push(match to {
            Grantee::User(u) => p("users", u),
            Grantee::Token(t) => p("tokens", t),
        });
        if revoke {
            params.push(p("delete", 1));
        } else {
            params.push(p("propagate", u8::from(propagate)));
        }
        self.call(Method::PUT, "/access/acl", &params, Retry::Safe)?;
        Ok(())
    }

    /// `POST /access/users/{userid}/token/{tokenid}`: a new token; its
    /// secret is in the answer only.
    pub fn create_token(&self, id: &TokenId, privsep: bool, comment: &str) -> Result<NewToken> {
        let path = token_path(id);
        let params = vec![p("privsep", u8::from(privsep)), p("comment", comment)];
        let data = self.call(Method::POST, &path, &params, Retry::Never)?;
        let wire: NewTokenWire = decode(Method::POST, &path, data)?;
        let made: TokenId = wire
            .full_tokenid
            .parse()
            .map_err(|e: InvalidId| PveError::Decode {
                method: "POST".into(),
                path: path.clone(),
                message: e.to_string(),
            })?;
        Ok(NewToken {
            id: made,
            secret: Secret::new(wire.value),
        })
    }

    /// `DELETE /access/users/{userid}/token/{tokenid}` (its ACL entries go
    /// with it).
    pub fn delete_token(&self, id: &TokenId) -> Result<()> {
        self.call(Method::DELETE, &token_path(id), &[], Retry::Never)?;
        Ok(())
    }
}

/// Decode an answer; the message names the field, never a value (a token
/// answer holds its secret).
fn decode<T: DeserializeOwned>(method: Method, path: &str, data: Value) -> Result<T> {
    serde_json::from_value(data).map_err(|e| PveError::Decode {
        method: method.to_string(),
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_proxmox_rules() {
        let user: UserId = "orbitlab@pve".parse().expect("user");
        assert_eq!(user.to_string(), "orbitlab@pve");
        for bad in [
            "orbitlab", "a b@pve", "x@1pve", "x/y@pve", "@pve", "a!b@pve",
        ] {
            assert!(bad.parse::<UserId>().is_err(), "{bad}");
        }
        assert!(format!("{}@pve", "x".repeat(61)).parse::<UserId>().is_err());
        let role: RoleId = "OrbitLab".parse().expect("role");
        assert_eq!(role.as_str(), "OrbitLab");
        for bad in ["", "a b", "a,b", "a\nb"] {
            assert!(bad.parse::<RoleId>().is_err(), "{bad:?}");
        }
        let token: TokenId = "orbitlab@pve!agent".parse().expect("token");
        assert_eq!(token.name.as_str(), "agent");
        assert_eq!(token.to_string(), "orbitlab@pve!agent");
        for bad in [
            "orbitlab@pve",
            "orbitlab@pve!1a",
            "orbitlab@pve!a",
            "orbitlab@pve!a=b",
        ] {
            assert!(bad.parse::<TokenId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_token_never_prints_its_secret() {
        let t = NewToken {
            id: "orbitlab@pve!agent".parse().expect("id"),
            secret: Secret::new("s3cr3t-value"),
        };
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let wire: std::result::Result<NewTokenWire, _> =
            serde_json::from_value(serde_json::json!({"full-tokenid": 1, "value": "s3cr3t-value"}));
        let err = wire.err().expect("a number is no token id").to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

//! Credentials for the Proxmox API: an API token
//! (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`) or a user and
//! password exchanged for a ticket (`POST /access/ticket`; cookie
//! `PVEAuthCookie`, and `CSRFPreventionToken` on writes). Secrets are held
//! in [`Secret`], which never prints and is wiped on drop.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use super::error::PveError;

/// A secret string (token secret, password, ticket). `Debug` and
/// `Display` print `<hidden>`; the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(Zeroizing::new(s.into()))
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

fn check_userid(user: &str) -> Result<(), PveError> {
    let ok = user
        .split_once('@')
        .is_some_and(|(u, realm)| !u.is_empty() && !realm.is_empty())
        && user.len() <= 64
        && !user
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '!' || c == '=');
    if ok {
        Ok(())
    } else {
        Err(PveError::Config(format!(
            "user '{user}' is not a Proxmox user id: write it as USER@REALM, e.g. root@pam"
        )))
    }
}

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An API token.
    Token {
        /// `user@realm`.
        user: String,
        /// Token name (after `!`).
        name: String,
        /// The token secret.
        secret: Secret,
    },
    /// A password, exchanged for a ticket.
    Password {
        /// `user@realm`.
        user: String,
        /// The password.
        password: Secret,
    },
}

impl Credentials {
    /// An API token; checks the user id and token name.
    pub fn token(user: &str, name: &str, secret: Secret) -> Result<Self, PveError> {
        check_userid(user)?;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(PveError::Config(format!(
                "token name '{name}' is not valid: use letters, digits, '-', '_' or '.'"
            )));
        }
        if secret.expose().is_empty() || secret.expose().chars().any(|c| c.is_control()) {
            return Err(PveError::Config(
                "the token secret is empty or holds control characters".into(),
            ));
        }
        Ok(Credentials::Token {
            user: user.to_string(),
            name: name.to_string(),
            secret,
        })
    }

    /// A password login.
    pub fn password(user: &str, password: Secret) -> Result<Self, PveError> {
        check_userid(user)?;
        Ok(Credentials::Password {
            user: user.to_string(),
            password,
        })
    }

    /// The user id (`root@pam`, or `root@pam!name` for tokens).
    pub fn id(&self) -> String {
        match self {
            Credentials::Token { user, name, .. } => format!("{user}!{name}"),
            Credentials::Password { user, .. } => user.clone(),
        }
    }
}

impl FromStr for Credentials {
    type Err = PveError;
    /// Parse a token as Proxmox prints it: `USER@REALM!NAME=SECRET`.
    fn from_str(s: &str) -> Result<Self, PveError> {
        let bad = || {
            PveError::Config(
                "an API token is written USER@REALM!NAME=SECRET (the secret is not shown here)"
                    .into(),
            )
        };
        let (id, secret) = s.split_once('=').ok_or_else(bad)?;
        let (user, name) = id.split_once('!').ok_or_else(bad)?;
        Credentials::token(user, name, Secret::new(secret.trim_end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c: Credentials = "root@pam!ol=s3cr3t-value".parse().expect("token");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert_eq!(c.id(), "root@pam!ol");
        let err = "root@pam!ol".parse::<Credentials>().expect_err("no secret");
        assert!(err.to_string().contains("USER@REALM!NAME=SECRET"));
        let err = "root!ol=s3cr3t"
            .parse::<Credentials>()
            .expect_err("no realm");
        assert!(!err.to_string().contains("s3cr3t"));
    }
}

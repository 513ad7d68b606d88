//! The credential a request carries, read the way pveproxy reads it: the
//! ticket cookie `PVEAuthCookie` first (also accepted as
//! `Authorization: PVEAuthCookie=...`), then an API token
//! (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`). A ticket brings
//! the `CSRFPreventionToken` header along for writes.
//!
//! Secrets live in [`Secret`] (never printed); the only derived value kept
//! is a SHA-256 digest used as the cache key.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use sha2::{Digest, Sha256};

use orbitlab_engine::pve::Secret;

/// Name of Proxmox's ticket cookie.
pub const TICKET_COOKIE: &str = "PVEAuthCookie";
/// Header carrying the CSRF prevention token with a ticket.
pub const CSRF_HEADER: &str = "CSRFPreventionToken";
const TOKEN_PREFIX: &str = "PVEAPIToken";

/// A credential to be checked with Proxmox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API token.
    Token {
        /// `user@realm!name`.
        id: String,
        /// The token secret.
        secret: Secret,
    },
    /// A ticket, as sent (possibly percent-encoded, as browsers keep it).
    Ticket {
        /// The ticket.
        ticket: Secret,
        /// The CSRF prevention token, if sent.
        csrf: Option<Secret>,
    },
}

/// A credential that is present but malformed. The text never holds the
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(String);

fn header_values(
    headers: &HeaderMap,
    name: impl axum::http::header::AsHeaderName,
) -> impl Iterator<Item = &str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

/// `NAME=value` or `NAME value` at the start of `s`.
fn strip_scheme<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let rest = s.trim().strip_prefix(name)?;
    rest.strip_prefix('=').or_else(|| rest.strip_prefix(' '))
}

fn valid_secret_text(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c == ';' || c == ' ')
}

impl Credential {
    /// The credential of a request; `None` when there is none.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, CredentialError> {
        let csrf = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(Secret::new);
        let cookie_ticket = header_values(headers, COOKIE)
            .flat_map(|c| c.split(';'))
            .find_map(|kv| kv.trim().strip_prefix(TICKET_COOKIE)?.strip_prefix('='));
        let header_ticket =
            || header_values(headers, AUTHORIZATION).find_map(|v| strip_scheme(v, TICKET_COOKIE));
        if let Some(ticket) = cookie_ticket.or_else(header_ticket) {
            if !valid_secret_text(ticket) {
                return Err(CredentialError(format!(
                    "the {TICKET_COOKIE} ticket is empty or malformed; log in to Proxmox again"
                )));
            }
            return Ok(Some(Credential::Ticket {
                ticket: Secret::new(ticket),
                csrf,
            }));
        }
        let Some(token) =
            header_values(headers, AUTHORIZATION).find_map(|v| strip_scheme(v, TOKEN_PREFIX))
        else {
            return Ok(None);
        };
        Self::token(token).map(Some)
    }

    /// `USER@REALM!ID=SECRET`.
    fn token(text: &str) -> Result<Self, CredentialError> {
        let bad = |what: &str| {
            CredentialError(format!(
                "the API token is malformed ({what}): send `Authorization: PVEAPIToken=USER@REALM!ID=SECRET`"
            ))
        };
        let (id, secret) = text.split_once('=').ok_or_else(|| bad("no `=SECRET`"))?;
        let (user, name) = id.split_once('!').ok_or_else(|| bad("no `!ID`"))?;
        let user_ok = user
            .split_once('@')
            .is_some_and(|(u, realm)| !u.is_empty() && !realm.is_empty());
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !user_ok || !name_ok || id.len() > 128 || id.chars().any(char::is_whitespace) {
            return Err(bad("the id is not USER@REALM!ID"));
        }
        if !valid_secret_text(secret) {
            return Err(bad(
                "the secret is empty or holds spaces or control characters",
            ));
        }
        Ok(Credential::Token {
            id: id.to_owned(),
            secret: Secret::new(secret),
        })
    }

    /// Who this claims to be: the token id, or the user written in the
    /// ticket (`(ticket)` when it holds none, or holds control
    /// characters). Only trustworthy once Proxmox accepted the credential:
    /// never log it before.
    pub fn claimed_user(&self) -> String {
        match self {
            Credential::Token { id, .. } => id.clone(),
            Credential::Ticket { ticket, .. } => super::csrf::ticket_user(ticket.expose())
                .filter(|u| u.contains('@') && !u.chars().any(char::is_control))
                .unwrap_or_else(|| "(ticket)".to_owned()),
        }
    }

    /// A digest naming this credential (and, for a ticket on a write, its
    /// CSRF token) for the check cache; the credential cannot be recovered
    /// from it.
    pub(crate) fn cache_key(&self, write: bool) -> [u8; 32] {
        let mut h = Sha256::new();
        match self {
            Credential::Token { id, secret } => {
                h.update(b"token\0");
                h.update(id.as_bytes());
                h.update(b"\0");
                h.update(secret.expose().as_bytes());
            }
            Credential::Ticket { ticket, csrf } => {
                h.update(if write { b"ticket-w\0" } else { b"ticket-r\0" });
                h.update(ticket.expose().as_bytes());
                h.update(b"\0");
                if write && let Some(csrf) = csrf {
                    h.update(csrf.expose().as_bytes());
                }
            }
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_tokens_and_tickets_like_pveproxy() {
        assert_eq!(Credential::from_headers(&HeaderMap::new()).unwrap(), None);
        let token = Credential::from_headers(&headers(&[(
            "authorization",
            "PVEAPIToken=ui@pve!panel=0123-abcd",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(token.claimed_user(), "ui@pve!panel");
        let dbg = format!("{token:?}");
        assert!(!dbg.contains("0123-abcd"), "{dbg}");

        // The cookie wins over the token, as in pveproxy.
        let ticket = Credential::from_headers(&headers(&[
            ("authorization", "PVEAPIToken=ui@pve!panel=0123-abcd"),
            (
                "cookie",
                "lang=en; PVEAuthCookie=PVE%3Aalice%40pve%3A6650A1B2%3A%3AsIg%2B%3D",
            ),
            ("csrfpreventiontoken", "6650A1B2:abc"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(ticket.claimed_user(), "alice@pve");
        let forged = Credential::Ticket {
            ticket: Secret::new("PVE:eve@pve%0AINFO%20fake:6650A1B2::sig"),
            csrf: None,
        };
        assert_eq!(forged.claimed_user(), "(ticket)");
        let Credential::Ticket { csrf, .. } = &ticket else {
            panic!("a ticket")
        };
        assert_eq!(csrf.as_ref().map(Secret::expose), Some("6650A1B2:abc"));
        assert!(!format!("{ticket:?}").contains("sIg"));
    }

    #[test]
    fn malformed_credentials_are_refused_without_echoing_secrets() {
        for bad in [
            "PVEAPIToken=ui@pve!panel",
            "PVEAPIToken=ui!panel=s3cret",
            "PVEAPIToken=ui@pve=s3cret",
            "PVEAPIToken=ui@pve!pa nel=s3cret",
        ] {
            let err = Credential::from_headers(&headers(&[("authorization", bad)]))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("PVEAPIToken=USER@REALM!ID=SECRET"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        // Other schemes are no credential at all.
        assert_eq!(
            Credential::from_headers(&headers(&[("authorization", "Basic dXNlcg==")])).unwrap(),
            None
        );
        assert!(Credential::from_headers(&headers(&[("cookie", "PVEAuthCookie=")])).is_err());
    }

    #[test]
    fn cache_keys_separate_reads_writes_and_csrf_tokens() {
        let t = |csrf: Option<&str>| Credential::Ticket {
            ticket: Secret::new("PVE:a@pve:1::x"),
            csrf: csrf.map(Secret::new),
        };
        assert_ne!(t(None).cache_key(false), t(None).cache_key(true));
        assert_ne!(t(Some("1")).cache_key(true), t(Some("2")).cache_key(true));
        assert_eq!(t(Some("1")).cache_key(false), t(Some("2")).cache_key(false));
    }
}

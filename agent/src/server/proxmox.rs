//! The real [`Authenticator`]: forwards the caller's own credential to the
//! local Proxmox API, so Proxmox alone decides who it is.
//!
//! - `GET /access/permissions?path=/` with the caller's ticket or token:
//!   Proxmox checks the credential (401 if it refuses it) and answers the
//!   caller's privileges on `/`;
//! - for a change made with a ticket, also `PUT /access/permissions` with
//!   the ticket and the `CSRFPreventionToken` header. pveproxy checks the
//!   ticket and the CSRF token of every non-GET request before it looks
//!   for a handler, and there is none for this method: the answer is 401
//!   for a bad token and 501 ("not implemented") for a good one. Nothing is
//!   changed either way. Any other answer is treated as a refusal to check.
//!
//! Side effects: HTTPS calls to the configured Proxmox URL (TLS verified
//! with [`Trust`]); credentials are sent as sensitive headers and never
//! logged.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::authenticator::{AuthError, Authenticator, Identity};
use super::credential::{CSRF_HEADER, Credential, TICKET_COOKIE};
use super::permissions::Privileges;
use crate::pve::{ClientConfig, Trust};

/// Where the local Proxmox API is and how to trust it.
#[derive(Debug, Clone)]
pub struct ProxmoxAuthConfig {
    /// `https://HOST:8006` (`/api2/json` is added when the path is empty).
    pub base_url: String,
    /// What to trust (on a node: `/etc/pve/pve-root-ca.pem`).
    pub trust: Trust,
    /// Timeout of each check (pveproxy delays refusals by 3 s).
    pub timeout: Duration,
}

impl ProxmoxAuthConfig {
    /// Default timeout of one check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

    /// The same Proxmox the agent's own client talks to.
    pub fn from_client(config: &ClientConfig) -> Self {
        ProxmoxAuthConfig {
            base_url: config.base_url.clone(),
            trust: config.trust.clone(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Checks credentials against Proxmox itself (see the module doc).
#[derive(Debug)]
pub struct ProxmoxAuthenticator {
    http: Client,
    base: Url,
}

/// The authenticator's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Proxmox authentication setup: {0}")]
pub struct AuthSetupError(String);

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

impl ProxmoxAuthenticator {
    /// An authenticator for this Proxmox; nothing is sent yet.
    pub fn new(config: ProxmoxAuthConfig) -> Result<Self, AuthSetupError> {
        let mut base = Url::parse(&config.base_url).map_err(|e| {
            AuthSetupError(format!(
                "{:?} is not a URL ({e}); use https://localhost:8006",
                config.base_url
            ))
        })?;
        let plain_ok = matches!(config.trust, Trust::LoopbackHttp) && is_loopback(&base);
        match base.scheme() {
            "https" if !matches!(config.trust, Trust::LoopbackHttp) => {}
            "http" if plain_ok => {}
            _ => {
                return Err(AuthSetupError(format!(
                    "{} must be https:// with a CA file or fingerprint to trust (plain http only to a loopback test server)",
                    config.base_url
                )));
            }
        }
        if base.path().is_empty() || base.path() == "/" {
            base.set_path("/api2/json");
        }
        let mut builder = Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orbitlab-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) =
            crate::pve::client_config(&config.trust).map_err(|e| AuthSetupError(e.to_string()))?
        {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder
            .build()
            .map_err(|e| AuthSetupError(format!("building the HTTP client: {e}")))?;
        Ok(ProxmoxAuthenticator { http, base })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// `request` carrying `credential` (and the CSRF token when asked).
    fn with_credential(
        request: RequestBuilder,
        credential: &Credential,
        csrf: bool,
    ) -> Result<RequestBuilder, AuthError> {
        let sensitive = |text: String| {
            let mut v = HeaderValue::from_str(&text).map_err(|_| {
                AuthError::Refused("the credential holds characters not allowed in a header".into())
            })?;
            v.set_sensitive(true);
            Ok::<_, AuthError>(v)
        };
        Ok(match credential {
            Credential::Token { id, secret } => request.header(
                AUTHORIZATION,
                sensitive(format!("PVEAPIToken={id}={}", secret.expose()))?,
            ),
            Credential::Ticket {
                ticket,
                csrf: token,
            } => {
                let mut request = request.header(
                    COOKIE,
                    sensitive(format!("{TICKET_COOKIE}={}", ticket.expose()))?,
                );
                if csrf && let Some(token) = token {
                    request = request.header(CSRF_HEADER, sensitive(token.expose().to_owned())?);
                }
                request
            }
        })
    }

    /// Sends `request`; the status, Proxmox's message and the JSON body.
    fn send(&self, what: &str, request: RequestBuilder) -> Result<Answer, AuthError> {
        let response = request.send().map_err(|e| {
            AuthError::Unavailable(format!(
                "could not ask Proxmox at {} to check the credential ({what}): {}; check that pveproxy runs",
                self.base,
                if e.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    describe(&e)
                }
            ))
        })?;
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).trim().to_owned());
        let body: Option<Value> = response
            .bytes()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let message = body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .map(|m| m.trim().to_owned())
            .or(reason)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        Ok(Answer {
            status,
            message,
            body,
        })
    }

    /// Proxmox accepts the ticket's CSRF prevention token (see the module doc).
    fn check_csrf(&self, credential: &Credential) -> Result<(), AuthError> {
        let request = self
            .http
            .put(self.url("/access/permissions"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("");
        let answer = self.send(
            "CSRF token",
            Self::with_credential(request, credential, true)?,
        )?;
        match answer.status {
            StatusCode::NOT_IMPLEMENTED => Ok(()),
            StatusCode::UNAUTHORIZED => Err(AuthError::Refused(format!(
                "Proxmox refused the ticket or its CSRF prevention token ({}); reload the web UI or log in again",
                answer.message
            ))),
            other => Err(AuthError::Unavailable(format!(
                "Proxmox gave an unexpected answer while checking the CSRF prevention token (HTTP {other}: {}); use an API token instead",
                answer.message
            ))),
        }
    }

    /// The caller's privileges on `/`.
    fn privileges(&self, credential: &Credential) -> Result<Privileges, AuthError> {
        let request = self
            .http
            .get(self.url("/access/permissions"))
            .query(&[("path", "/")]);
        let answer = self.send(
            "permissions",
            Self::with_credential(request, credential, false)?,
        )?;
        match answer.status {
            s if s.is_success() => {
                let data = answer
                    .body
                    .as_ref()
                    .and_then(|b| b.get("data"))
                    .unwrap_or(&Value::Null);
                Privileges::from_permissions(data).map_err(|e| {
                    AuthError::Unavailable(format!(
                        "unexpected answer from Proxmox to GET /access/permissions: {e}"
                    ))
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(AuthError::Refused(format!(
                "Proxmox refused the credential ({}); log in again or check the API token",
                answer.message
            ))),
            other => Err(AuthError::Unavailable(format!(
                "Proxmox could not check the credential (HTTP {other}: {}); retry later",
                answer.message
            ))),
        }
    }
}

struct Answer {
    status: StatusCode,
    message: String,
    body: Option<Value>,
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Authenticator for ProxmoxAuthenticator {
    fn authenticate(&self, credential: &Credential, write: bool) -> Result<Identity, AuthError> {
        if write && let Credential::Ticket { csrf, .. } = credential {
            if csrf.is_none() {
                return Err(AuthError::Refused(format!(
                    "a change made with a Proxmox ticket needs the {CSRF_HEADER} header (the web UI sends it); scripts should use an API token"
                )));
            }
            self.check_csrf(credential)?;
        }
        let privileges = self.privileges(credential)?;
        Ok(Identity {
            user: credential.claimed_user(),
            privileges,
        })
    }
}

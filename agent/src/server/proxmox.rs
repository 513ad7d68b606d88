//! The real [`Authenticator`]: Proxmox itself decides who the caller is,
//! and a ticket's CSRF prevention token is checked here, on the node, the
//! way Proxmox checks it.
//!
//! - `GET /access/permissions?path=/` with the caller's own ticket or
//!   token: Proxmox checks the credential (401 if it refuses it) and
//!   answers the caller's privileges on `/`;
//! - for a change made with a ticket, the `CSRFPreventionToken` header is
//!   then verified locally with the node's key
//!   ([`ProxmoxAuthConfig::www_key`], `/etc/pve/pve-www.key`) for the user
//!   named in the ticket Proxmox just accepted (see [`super::csrf`]). No
//!   daemon's answer is taken as proof: pvedaemon, running as root, skips
//!   the CSRF check altogether, so asking it would prove nothing. A key
//!   that cannot be read is a failure to check (503, logged with the
//!   path), never a pass.
//!
//! Side effects: HTTPS calls to the configured Proxmox URL (TLS verified
//! with [`Trust`], through the engine's blocking [`HttpClient`]; called
//! from the server on its blocking threads); reads the key file on each
//! ticket write; credentials are sent as headers and never logged.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use url::Url;

use super::authenticator::{AuthError, Authenticator, Identity};
use super::credential::{CSRF_HEADER, Credential, TICKET_COOKIE};
use super::csrf::{self, WWW_KEY_FILE};
use super::permissions::Privileges;
use orbitlab_engine::pve::wire::{
    HttpClient, HttpOptions, Method, Request, WireError, status_line,
};
use orbitlab_engine::pve::{ClientConfig, Trust};

/// Where the local Proxmox API is and how to trust it.
#[derive(Debug, Clone)]
pub struct ProxmoxAuthConfig {
    /// `https://HOST:8006` (`/api2/json` is added when the path is empty).
    pub base_url: String,
    /// What to trust (on a node: `/etc/pve/pve-root-ca.pem`).
    pub trust: Trust,
    /// Timeout of each check (pveproxy delays refusals by 3 s).
    pub timeout: Duration,
    /// The key CSRF prevention tokens are made with: `pve-www.key` under
    /// the pmxcfs root (`/etc/pve/pve-www.key` on a node; root:www-data
    /// 0640). Read on every write made with a ticket.
    pub www_key: PathBuf,
}

impl ProxmoxAuthConfig {
    /// Default timeout of one check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

    /// The same Proxmox the agent's own client talks to, and the CSRF key
    /// under `pve_root` (`/etc/pve`).
    pub fn from_client(config: &ClientConfig, pve_root: &Path) -> Self {
        ProxmoxAuthConfig {
            base_url: config.base_url.clone(),
            trust: config.trust.clone(),
            timeout: Self::DEFAULT_TIMEOUT,
            www_key: pve_root.join(WWW_KEY_FILE),
        }
    }
}

/// Checks credentials against Proxmox itself (see the module doc).
#[derive(Debug)]
pub struct ProxmoxAuthenticator {
    http: HttpClient,
    base: Url,
    www_key: PathBuf,
}

/// The authenticator's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Proxmox authentication setup: {0}")]
pub struct AuthSetupError(String);

impl ProxmoxAuthenticator {
    /// An authenticator for this Proxmox; nothing is sent yet.
    pub fn new(config: ProxmoxAuthConfig) -> Result<Self, AuthSetupError> {
        let mut base = Url::parse(&config.base_url).map_err(|e| {
            AuthSetupError(format!(
                "{:?} is not a URL ({e}); use https://localhost:8006",
                config.base_url
            ))
        })?;
        let plain_ok = matches!(config.trust, Trust::LoopbackHttp)
            && orbitlab_engine::pve::wire::is_loopback(&base);
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
        let http = HttpClient::new(
            &config.trust,
            HttpOptions {
                timeout: config.timeout,
                connect_timeout: Duration::from_secs(5),
                user_agent: concat!("orbitlab-agent/", env!("CARGO_PKG_VERSION")),
            },
        )
        .map_err(|e| AuthSetupError(e.to_string()))?;
        Ok(ProxmoxAuthenticator {
            http,
            base,
            www_key: config.www_key,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// `request` carrying `credential` (never the CSRF token: Proxmox is
    /// only asked to read).
    fn with_credential<'a>(request: Request<'a>, credential: &Credential) -> Request<'a> {
        match credential {
            Credential::Token { id, secret } => request.header(
                "Authorization",
                format!("PVEAPIToken={id}={}", secret.expose()),
            ),
            Credential::Ticket { ticket, .. } => {
                request.header("Cookie", format!("{TICKET_COOKIE}={}", ticket.expose()))
            }
        }
    }

    /// Sends `request`; the status, Proxmox's message and the JSON body.
    fn send(&self, what: &str, request: Request<'_>) -> Result<Answer, AuthError> {
        let response = self.http.send(request).map_err(|e| match e {
            WireError::BadHeader(_) => AuthError::Refused(
                "the credential holds characters not allowed in a header".into(),
            ),
            WireError::Timeout(_) | WireError::Transport(_) | WireError::Malformed(_) => AuthError::Unavailable(format!(
                "could not ask Proxmox at {} to check the credential ({what}): {}; check that pveproxy runs",
                self.base,
                match &e {
                    WireError::Timeout(_) => "no answer in time".to_owned(),
                    other => other.to_string(),
                }
            )),
        })?;
        let body: Option<Value> = serde_json::from_slice(&response.body).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .map(|m| m.trim().to_owned())
            .or(response.reason)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                http::StatusCode::from_u16(response.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_owned()
            });
        Ok(Answer {
            status: response.status,
            message,
            body,
        })
    }

    /// The ticket's CSRF prevention token is genuine and current for
    /// `user` (see [`super::csrf`]).
    fn check_csrf(&self, user: &str, token: &str) -> Result<(), AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        csrf::verify(&self.www_key, user, token, now).map_err(|e| {
            if e.is_refusal() {
                AuthError::Refused(format!(
                    "{e} ({CSRF_HEADER} header of {user}); reload the web UI or log in again"
                ))
            } else {
                tracing::error!(error = %e, "cannot check CSRF prevention tokens; changes made with a ticket are refused");
                AuthError::Unavailable(format!(
                    "the {CSRF_HEADER} header cannot be checked: {e}; an API token still works"
                ))
            }
        })
    }

    /// The caller's privileges on `/`.
    fn privileges(&self, credential: &Credential) -> Result<Privileges, AuthError> {
        let url = orbitlab_engine::pve::wire::with_query(
            &self.url("/access/permissions"),
            &[("path", "/")],
        );
        let request = Request::new(Method::GET, url);
        let answer = self.send("permissions", Self::with_credential(request, credential))?;
        match answer.status {
            200..=299 => {
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
            401 | 403 => Err(AuthError::Refused(format!(
                "Proxmox refused the credential ({}); log in again or check the API token",
                answer.message
            ))),
            other => Err(AuthError::Unavailable(format!(
                "Proxmox could not check the credential (HTTP {}: {}); retry later",
                status_line(other),
                answer.message
            ))),
        }
    }
}

struct Answer {
    status: u16,
    message: String,
    body: Option<Value>,
}

impl Authenticator for ProxmoxAuthenticator {
    fn authenticate(&self, credential: &Credential, write: bool) -> Result<Identity, AuthError> {
        let csrf_token = match credential {
            Credential::Ticket { csrf: None, .. } if write => {
                return Err(AuthError::Refused(format!(
                    "a change made with a Proxmox ticket needs the {CSRF_HEADER} header (the web UI sends it); scripts should use an API token"
                )));
            }
            Credential::Ticket {
                csrf: Some(token), ..
            } if write => Some(token),
            _ => None,
        };
        // Proxmox checks the ticket or token first...
        let privileges = self.privileges(credential)?;
        let user = match credential {
            Credential::Token { id, .. } => id.clone(),
            // ...so the user the accepted ticket names is the one it signed.
            Credential::Ticket { ticket, .. } => {
                csrf::ticket_user(ticket.expose()).ok_or_else(|| {
                    AuthError::Refused(
                        "the ticket is not a full Proxmox ticket (PVE:USER@REALM:TIME::SIGNATURE); log in again".into(),
                    )
                })?
            }
        };
        if let Some(token) = csrf_token {
            self.check_csrf(&user, token.expose())?;
        }
        Ok(Identity { user, privileges })
    }
}

//! The HTTP layer of the client: one blocking [`HttpClient`] (`wire.rs`)
//! with the TLS trust of `tls.rs`, authentication headers, timeouts on
//! every call,
//! retries with exponential backoff for calls that are safe to repeat, and
//! Proxmox's answers turned into `data` or a [`PveError`] that keeps the
//! message and per-parameter errors.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::auth::{Credentials, Secret};
use super::error::{ApiErrorKind, PveError, Result};
use super::gate::{Access, Gate};
use super::tls::Trust;
use super::wire::{Body, HttpClient, HttpOptions, Method, Request, WireError, encode_form};

/// When a failed call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Repeating is harmless (reads; writes the caller made idempotent).
    Safe,
    /// Send once; a failure is returned as it is.
    Never,
}

/// Backoff for safe calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub first_delay: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

/// Timeouts and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Whole-call timeout of API calls.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-call timeout of uploads.
    pub upload_timeout: Duration,
    /// Backoff for safe calls.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            upload_timeout: Duration::from_secs(1800),
            retry: RetryPolicy::default(),
        }
    }
}

struct Ticket {
    ticket: Secret,
    csrf: Secret,
}

/// A request the gate admitted; tells the gate when it is dropped.
struct Pass<'g> {
    gate: Option<&'g dyn Gate>,
    access: Access,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.gate {
            gate.finished(self.access);
        }
    }
}

/// A connection to one Proxmox API endpoint. Every call and upload passes
/// its [`Gate`], if it has one, before anything is sent.
pub(crate) struct Transport {
    http: HttpClient,
    base: Url,
    creds: Credentials,
    /// Shared by the transports made with [`Transport::with_gate`].
    ticket: Arc<Mutex<Option<Ticket>>>,
    opts: ClientOptions,
    gate: Option<Arc<dyn Gate>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("user", &self.creds.id())
            .field("opts", &self.opts)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

/// Percent-encode one path segment (ids, UPIDs).
pub fn seg(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Transport {
    pub(crate) fn new(
        base_url: &str,
        trust: &Trust,
        creds: Credentials,
        opts: ClientOptions,
    ) -> Result<Self> {
        let mut base = Url::parse(base_url).map_err(|e| {
            PveError::Config(format!(
                "'{base_url}' is not a URL: {e}; use https://HOST:8006"
            ))
        })?;
        match (base.scheme(), trust) {
            ("https", Trust::LoopbackHttp) => {
                return Err(PveError::Config(format!(
                    "{base_url} is HTTPS: give a CA file or a certificate fingerprint to trust"
                )));
            }
            ("https", _) => {}
            ("http", Trust::LoopbackHttp) if super::wire::is_loopback(&base) => {}
            ("http", _) => {
                return Err(PveError::Config(format!(
                    "{base_url}: plain HTTP is only allowed to loopback test servers; use https://HOST:8006"
                )));
            }
            (other, _) => {
                return Err(PveError::Config(format!(
                    "unsupported URL scheme '{other}': use https"
                )));
            }
        }
        if base.path() == "/" || base.path().is_empty() {
            base.set_path("/api2/json");
        }
        let http = HttpClient::new(
            trust,
            HttpOptions {
                timeout: opts.timeout,
                connect_timeout: opts.connect_timeout,
                user_agent: concat!("orbitlab/", env!("CARGO_PKG_VERSION")),
            },
        )?;
        Ok(Transport {
            http,
            base,
            creds,
            ticket: Arc::new(Mutex::new(None)),
            opts,
            gate: None,
        })
    }

    /// The same connection (HTTP client, ticket) behind `gate`.
    pub(crate) fn with_gate(&self, gate: Arc<dyn Gate>) -> Transport {
        Transport {
            http: self.http.clone(),
            base: self.base.clone(),
            creds: self.creds.clone(),
            ticket: Arc::clone(&self.ticket),
            opts: self.opts,
            gate: Some(gate),
        }
    }

    /// Asks the gate to admit a request; the pass tells the gate when the
    /// request ended (when it is dropped).
    fn admit(&self, access: Access, method: &Method, path: &str) -> Result<Pass<'_>> {
        let gate = self.gate.as_deref();
        if let Some(gate) = gate {
            gate.admit(access).map_err(|reason| PveError::Refused {
                method: method.to_string(),
                path: path.to_string(),
                reason,
            })?;
        }
        Ok(Pass { gate, access })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// `req` with the credentials: the token, or the ticket cookie (and
    /// the CSRF token on changes).
    fn authorize<'a>(&self, req: Request<'a>, method: &Method) -> Result<Request<'a>> {
        match &self.creds {
            Credentials::Token { user, name, secret } => Ok(req.header(
                "Authorization",
                format!("PVEAPIToken={user}!{name}={}", secret.expose()),
            )),
            Credentials::Password { .. } => {
                let guard = self
                    .ticket
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let t = guard
                    .as_ref()
                    .ok_or_else(|| PveError::Config("no ticket yet (login first)".into()))?;
                let mut req = req.header("Cookie", format!("PVEAuthCookie={}", t.ticket.expose()));
                if *method != Method::GET {
                    req = req.header("CSRFPreventionToken", t.csrf.expose());
                }
                Ok(req)
            }
        }
    }

    fn has_ticket(&self) -> bool {
        self.ticket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// `POST /access/ticket` with the password.
    fn login(&self) -> Result<()> {
        let Credentials::Password { user, password } = &self.creds else {
            return Ok(());
        };
        let body = Body::form(&[("username", user.as_str()), ("password", password.expose())]);
        let req = Request::new(Method::POST, self.url("/access/ticket")).body(body);
        let data = self.send(&Method::POST, "/access/ticket", req)?;
        let field = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .map(Secret::new)
                .ok_or_else(|| PveError::Decode {
                    method: "POST".into(),
                    path: "/access/ticket".into(),
                    message: format!("no '{k}' in the login answer"),
                })
        };
        let t = Ticket {
            ticket: field("ticket")?,
            csrf: field("CSRFPreventionToken")?,
        };
        *self
            .ticket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(t);
        Ok(())
    }

    /// Call an API path (after `/api2/json`) and return its `data`; the
    /// access is [`Access::of`] the method.
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        retry: Retry,
    ) -> Result<Value> {
        self.call_as(Access::of(&method), method, path, params, retry)
    }

    /// [`Transport::call`] with the access given.
    pub(crate) fn call_as(
        &self,
        access: Access,
        method: Method,
        path: &str,
        params: &[(String, String)],
        retry: Retry,
    ) -> Result<Value> {
        let _pass = self.admit(access, &method, path)?;
        if matches!(self.creds, Credentials::Password { .. }) && !self.has_ticket() {
            self.with_retry(Retry::Safe, || self.login())?;
        }
        let mut relogged = false;
        loop {
            let r = self.with_retry(retry, || self.once(&method, path, params, retry));
            match r {
                Err(e)
                    if e.status() == Some(401)
                        && !relogged
                        && matches!(self.creds, Credentials::Password { .. }) =>
                {
                    // The ticket expired (2 h): log in again, once.
                    relogged = true;
                    self.login()?;
                }
                other => return other,
            }
        }
    }

    fn with_retry<T>(&self, retry: Retry, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let policy = self.opts.retry;
        let mut delay = policy.first_delay;
        let mut attempt = 1;
        loop {
            match f() {
                Err(e)
                    if retry == Retry::Safe
                        && e.is_transient()
                        && attempt < policy.attempts.max(1) =>
                {
                    tracing::debug!("transient Proxmox error, retrying in {delay:?}: {e}");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(policy.max_delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt. GET and DELETE carry their parameters in the query
    /// (ids, flags, lock tokens: never a credential), other methods as a
    /// form body. A call that must not be repeated is sent exactly once.
    fn once(
        &self,
        method: &Method,
        path: &str,
        params: &[(String, String)],
        retry: Retry,
    ) -> Result<Value> {
        let mut req = if *method == Method::GET || *method == Method::DELETE {
            let url = if params.is_empty() {
                self.url(path)
            } else {
                format!("{}?{}", self.url(path), encode_form(params))
            };
            Request::new(method.clone(), url)
        } else {
            Request::new(method.clone(), self.url(path)).body(Body::form(params))
        };
        if retry == Retry::Never {
            req = req.once();
        }
        let req = self.authorize(req, method)?;
        self.send(method, path, req)
    }

    /// Upload a file as `multipart/form-data` (never retried; a write).
    pub(crate) fn upload(
        &self,
        path: &str,
        fields: &[(String, String)],
        file_field: &str,
        file_name: &str,
        file: &Path,
    ) -> Result<Value> {
        let _pass = self.admit(Access::Write, &Method::POST, path)?;
        if file_name.is_empty()
            || file_name
                .chars()
                .any(|c| c.is_control() || matches!(c, '"' | '/' | '\\'))
        {
            return Err(PveError::Config(format!(
                "upload file name '{file_name}' must be a plain file name (no quotes, slashes or control characters)"
            )));
        }
        if matches!(self.creds, Credentials::Password { .. }) && !self.has_ticket() {
            self.login()?;
        }
        let f = std::fs::File::open(file)
            .map_err(|e| PveError::Config(format!("opening {} for upload: {e}", file.display())))?;
        let len = f
            .metadata()
            .map_err(|e| PveError::Config(format!("reading {}: {e}", file.display())))?
            .len();
        let boundary = format!("orbitlab{:032x}", rand::random::<u128>());
        let mut head = String::new();
        for (k, v) in fields {
            head.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = format!("\r\n--{boundary}--\r\n");
        let total = head.len() as u64 + len + tail.len() as u64;
        let reader = std::io::Cursor::new(head.into_bytes())
            .chain(f)
            .chain(std::io::Cursor::new(tail.into_bytes()));
        let req = Request::new(Method::POST, self.url(path))
            .timeout(self.opts.upload_timeout)
            .once()
            .body(Body::Stream {
                content_type: format!("multipart/form-data; boundary={boundary}"),
                len: total,
                reader: Box::new(reader),
            });
        let req = self.authorize(req, &Method::POST)?;
        self.send(&Method::POST, path, req)
    }

    /// Sends `req` through the HTTP client; `data` of a 2xx answer, else
    /// the classified error.
    fn send(&self, method: &Method, path: &str, req: Request<'_>) -> Result<Value> {
        let resp = self.http.send(req).map_err(|e| match e {
            WireError::Timeout(timeout) => PveError::Timeout {
                method: method.to_string(),
                path: path.to_string(),
                timeout,
            },
            WireError::BadHeader(_) => PveError::Config(e.to_string()),
            WireError::Malformed(message) => PveError::Decode {
                method: method.to_string(),
                path: path.to_string(),
                message,
            },
            WireError::Transport(message) => PveError::Transport {
                method: method.to_string(),
                path: path.to_string(),
                message,
            },
        })?;
        let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
        if resp.is_success() {
            let body = body.ok_or_else(|| PveError::Decode {
                method: method.to_string(),
                path: path.to_string(),
                message: "the answer is not JSON".into(),
            })?;
            return Ok(body.get("data").cloned().unwrap_or(Value::Null));
        }
        Err(api_error(
            method.as_str(),
            path,
            resp.status,
            resp.reason,
            body.as_ref(),
            &resp.body,
        ))
    }
}

/// Build the error for a non-success answer: message from the body's
/// `message`, else the status line's reason, else the body text.
pub(crate) fn api_error(
    method: &str,
    path: &str,
    status: u16,
    reason: Option<String>,
    body: Option<&Value>,
    raw: &[u8],
) -> PveError {
    let errors: BTreeMap<String, String> = body
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), text.trim_end().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let message = body
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .map(|s| s.trim_end().to_string())
        .or(reason)
        .or_else(|| {
            let text = String::from_utf8_lossy(raw).trim().to_string();
            (!text.is_empty() && body.is_none()).then(|| text.chars().take(300).collect())
        })
        .unwrap_or_else(|| {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_string()
        });
    PveError::Api {
        method: method.to_string(),
        path: path.to_string(),
        status,
        kind: ApiErrorKind::classify(status, &message, errors),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_message_and_params() {
        let body = serde_json::json!({"data": null, "errors": {"zone": "invalid format - zone ID 'X' contains illegal characters\n"}});
        let e = api_error(
            "POST",
            "/cluster/sdn/zones",
            400,
            Some("Parameter verification failed.".into()),
            Some(&body),
            b"",
        );
        let text = e.to_string();
        assert!(
            text.contains("HTTP 400: Parameter verification failed."),
            "{text}"
        );
        assert!(
            text.contains("zone: invalid format - zone ID 'X' contains illegal characters"),
            "{text}"
        );
        let body = serde_json::json!({"data": null, "message": "zone 'x' exists\n"});
        let e = api_error("POST", "/p", 500, None, Some(&body), b"");
        assert!(e.to_string().ends_with("HTTP 500: zone 'x' exists"));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let creds: Credentials = "root@pam!t=secret".parse().expect("token");
        let opts = ClientOptions::default();
        assert!(
            Transport::new(
                "http://127.0.0.1:1/",
                &Trust::LoopbackHttp,
                creds.clone(),
                opts
            )
            .is_ok()
        );
        let e = Transport::new(
            "http://10.0.0.1:8006",
            &Trust::LoopbackHttp,
            creds.clone(),
            opts,
        )
        .expect_err("refused");
        assert!(e.to_string().contains("loopback"));
        assert!(Transport::new("https://pve1:8006", &Trust::LoopbackHttp, creds, opts).is_err());
        assert_eq!(
            seg("UPID:pve1:0001:x:root@pam!t:"),
            "UPID:pve1:0001:x:root@pam!t:"
        );
        assert_eq!(seg("a/b"), "a%2Fb");
        assert_eq!(seg(".."), "%2E%2E");
    }
}

//! The HTTP face of [`Api`]: routes, parameters, authentication and the
//! permission check of every request, then the API call on the blocking
//! pool. See the module doc of [`super`] for the routes.
//!
//! Every route is served in two formats ([`Format`], from the path):
//! `/api2/json/...` and `/api2/extjs/...` (for Proxmox's UI helpers) go
//! through the same steps below; only the answer's shape differs
//! ([`super::reply`]). As pveproxy does, the query parameter `_dc` (the
//! cache buster ExtJS adds to GETs unless told not to) is dropped in both.
//!
//! Order of a request: route and method; credential, checked with Proxmox;
//! the operation, from method, path and query alone, and its privileges
//! (for an apply: `Sys.Modify`, or `Sys.Audit` for a dry run) — all before
//! the body is read. Then the body is read (up to the size limit) and
//! parsed or decoded on the blocking pool, within [`PARSE_TIMEOUT`]; an
//! apply is checked again for the kinds it holds; a delete is checked for
//! every object it would remove ([`Api::removal`]) and then removes
//! exactly those ([`Api::delete_exactly`]). A body a request was answered
//! without (a refusal) is read and thrown away unparsed, within limits, so
//! the client sees the answer; then the connection closes.
//!
//! Below the tree's prefix, `/vault/...` is the vault ([`orbitlab_engine::api::VaultPath`]):
//! metadata for `Sys.Audit`, changes for `Sys.Modify`, a value only by
//! `GET /vault/values/{path}` with `Sys.Console` as well; a value is sent
//! and answered only in bodies. `/ssh/keys/...` likewise: a private key
//! only by `GET /ssh/keys/{name}/private` with `Sys.Console`; `/pki/...`
//! too: a certificate's private key only by `GET /pki/certs/{ca}/{name}/key`.
//!
//! The access log names a user only once Proxmox has vouched for it
//! (`unauthenticated` until then), and every field is escaped by
//! [`log_field`], so no request can forge a journal line.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ALLOW, CACHE_CONTROL, CONNECTION,
    CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, PRAGMA, TRANSFER_ENCODING, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Limits;
use super::authenticator::{CheckError, Checks, Identity};
use super::credential::{CSRF_HEADER, Credential};
use super::permissions::decide;
use super::reply::{Failure, Format};
use orbitlab_engine::api::{APPLY_PATH, Api, TREE_PREFIX};

/// Longest a body may take to parse or decode on the blocking pool (the
/// limits of the parsers keep it to milliseconds; this is the backstop).
pub(crate) const PARSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest spent throwing away the body of a request answered without it.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(5);
/// The access log's user until Proxmox has accepted the credential.
const UNAUTHENTICATED: &str = "unauthenticated";
/// The request headers a browser may send cross-origin (the preflight's
/// `Access-Control-Allow-Headers`): the credentials (`CSRFPreventionToken`
/// with the ticket cookie, or `Authorization` with an API token, which
/// Proxmox's widget toolkit adds to every request when it holds one), the
/// body's `Content-Type` (JSON is not a "simple" type), and what ExtJS's
/// `Ext.Ajax` sends on every request: `Accept: application/json` (set by
/// Proxmox's toolkit) and `X-Requested-With: XMLHttpRequest`
/// (`useDefaultXhrHeader`, on by default even cross-origin).
const ALLOWED_HEADERS: &str =
    "Authorization, CSRFPreventionToken, Content-Type, Accept, X-Requested-With";

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) api: Api,
    pub(crate) checks: Checks,
    pub(crate) limits: Limits,
    /// Exactly as browsers send `Origin`; replaced while serving by
    /// [`super::ServerHandle::set_allowed_origins`].
    pub(crate) allowed_origins: Arc<std::sync::RwLock<Vec<super::UiOrigin>>>,
}

/// The peer of a connection, for the access log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new().fallback(entry).with_state(app)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Tree,
    Apply,
}

fn route(path: &str) -> Option<Route> {
    if path.trim_end_matches('/') == APPLY_PATH {
        return Some(Route::Apply);
    }
    let rest = path.strip_prefix(TREE_PREFIX)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(Route::Tree)
}

fn allowed_methods(route: Route) -> &'static [Method] {
    match route {
        Route::Tree => &[Method::GET, Method::POST, Method::PUT, Method::DELETE],
        Route::Apply => &[Method::POST],
    }
}

async fn entry(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<Peer>()
        .map_or_else(|| "-".to_owned(), |p| p.0.to_string());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (format, tree_path) = Format::of_path(&path);
    let origin = allowed_origin(&app, request.headers());
    let headers = request.headers();
    let sends_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let (parts, body) = request.into_parts();
    let mut seen = Seen {
        user: UNAUTHENTICATED.to_owned(),
        body: Some(body),
    };
    let mut response = if method == Method::OPTIONS {
        preflight(origin.is_some(), route(&tree_path))
    } else {
        let handled = handle(&app, parts, &tree_path, format, &mut seen);
        match tokio::time::timeout(app.limits.request_timeout, handled).await {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => failure.respond(format),
            Err(_) => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request took longer than {:?} and was abandoned; a change may still complete: check with GET before retrying",
                    app.limits.request_timeout
                ),
            )
            .respond(format),
        }
    };
    if let Some(body) = seen.body.take()
        && sends_body
    {
        // Answered before its body was read (refused, or a method that
        // takes none): the body is read and thrown away, unparsed, so the
        // client can finish sending and see the answer; then the
        // connection is closed.
        discard(body, app.limits.max_body_bytes).await;
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let h = response.headers_mut();
    // Answers may hold secret values and private keys: never cached, by
    // browsers or anything between (as pveproxy answers its API).
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    // The CORS headers depend on the Origin: every answer says so.
    h.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    let (peer, user) = (log_field(&peer), log_field(&seen.user));
    let (method, path) = (log_field(method.as_str()), log_field(&path));
    // Changes and refusals are worth a journal line; the UI's reads are not.
    if method == "GET" && status < 400 {
        tracing::debug!(target: "orbitlab::api", %peer, %user, %method, %path, status, ms, "request");
    } else {
        tracing::info!(target: "orbitlab::api", %peer, %user, %method, %path, status, ms, "request");
    }
    response
}

/// `text` as one log field on one line: control characters, Unicode line
/// and paragraph separators and bidirectional controls are written as
/// `\n`, `\r`, `\t` or `\u{..}`, and a backslash is doubled, so what a
/// client sent can always be told from the escaping.
pub(crate) fn log_field(text: &str) -> Cow<'_, str> {
    let escaped = |c: char| {
        c == '\\'
            || c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The request's `Origin` when it is one of the allowed origins, compared
/// byte for byte (browsers send it normalised: lower-case host, IPv6 in
/// brackets, no default port).
fn allowed_origin(app: &App, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    app.allowed_origins
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .any(|o| o.as_str() == text)
        .then(|| origin.clone())
}

fn preflight(origin_allowed: bool, route: Option<Route>) -> Response {
    let Some(route) = route else {
        return Failure::new(StatusCode::NOT_FOUND, "no such path").into_response();
    };
    if !origin_allowed {
        return Failure::new(
            StatusCode::FORBIDDEN,
            "this origin may not call the OrbitLab API; add it to the agent's allowed origins",
        )
        .into_response();
    }
    let methods: Vec<&str> = allowed_methods(route).iter().map(Method::as_str).collect();
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// What [`entry`] and [`handle`] share about a request.
struct Seen {
    /// The user Proxmox accepted, or [`UNAUTHENTICATED`].
    user: String,
    /// The body, until [`handle`] reads it.
    body: Option<Body>,
}

/// Reads and drops up to `limit` bytes of an unwanted body, for at most
/// [`DISCARD_TIMEOUT`].
async fn discard(body: Body, limit: usize) {
    let _ = tokio::time::timeout(DISCARD_TIMEOUT, axum::body::to_bytes(body, limit)).await;
}

/// One request on `path` (the request's path as the `json` tree names
/// it), answered in `format`: route and method, credential (Proxmox), the
/// operation and its privileges, only then the body (parsed off the event
/// loop), an apply's per-kind privileges, then the API call.
async fn handle(
    app: &Arc<App>,
    parts: axum::http::request::Parts,
    path: &str,
    format: Format,
    seen: &mut Seen,
) -> Result<Response, Failure> {
    // Messages name the path as it was asked.
    let asked = parts.uri.path();
    let route = route(path).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such path {asked:?}; the OrbitLab API is under {TREE_PREFIX}/ (and {APPLY_PATH}), or the same under /api2/extjs/"
            ),
        )
    })?;
    let methods = allowed_methods(route);
    if !methods.contains(&parts.method) {
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        let mut response = Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not possible on {asked}; use {}",
                parts.method,
                allow.join(", ")
            ),
        )
        .respond(format);
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            response.headers_mut().insert(ALLOW, v);
        }
        return Ok(response);
    }
    let credential = Credential::from_headers(&parts.headers)
        .map_err(|e| Failure::unauthenticated(e.to_string()))?
        .ok_or_else(|| {
            Failure::unauthenticated(
                "authentication required: send a Proxmox API token (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`) or the Proxmox ticket cookie PVEAuthCookie",
            )
        })?;
    let write = parts.method != Method::GET;
    let identity = authenticate(app, credential, write).await?;
    seen.user.clone_from(&identity.user);

    // What is asked, from method, path and query alone: refused now, when
    // not permitted, before a byte of the body is read.
    let query = without_cache_buster(parts.uri.query().unwrap_or_default());
    let intent = match route {
        Route::Apply => Intent::apply(&query)?,
        Route::Tree => Intent::at(&parts.method, tree_rest(path), &query)?,
    };
    decide(
        &identity.user,
        &intent.attempted(),
        &intent.operation(),
        &identity.privileges,
    )?;
    let call = if intent.takes_body() {
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = seen.body.take().unwrap_or_default();
        let body = read_body(body, app.limits.max_body_bytes).await?;
        off_the_loop(PARSE_TIMEOUT, move || {
            intent.with_body(content_type.as_deref(), &body)
        })
        .await??
    } else {
        intent.without_body()?
    };
    // An apply's kinds are known now.
    decide(
        &identity.user,
        &call.attempted(),
        &call.operation(),
        &identity.privileges,
    )?;
    let api = app.api.clone();
    let data = off_the_loop(app.limits.request_timeout, move || {
        call.run(&api, &identity)
    })
    .await??;
    Ok(format.ok(data))
}

/// `query` without `_dc` parameters, as pveproxy drops them: ExtJS adds
/// `_dc=TIMESTAMP` to GETs to defeat caches (Proxmox's toolkit turns that
/// off, plain `Ext.Ajax` calls do not).
fn without_cache_buster(query: &str) -> Cow<'_, str> {
    let is_dc = |pair: &str| pair.split('=').next() == Some("_dc");
    if !query.split('&').any(is_dc) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(
        query
            .split('&')
            .filter(|pair| !is_dc(pair))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// Runs `work` on the blocking pool: a panic there is a 500 for this
/// request only, and past `limit` the request is answered with a 503 (the
/// work itself cannot be stopped; it finishes unobserved).
async fn off_the_loop<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request failed inside the agent ({e}); see the agent's log"),
        )),
        Err(_) => Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {limit:?} to process and was abandoned; try again, or send a smaller request"
            ),
        )),
    }
}

/// Asks the authenticator (or a cache) about `credential`. A caller
/// who is not authenticated learns only that Proxmox refused, could not
/// be asked, or that the agent is busy: internal details go to the log.
/// Every failure here keeps its HTTP status in every format.
async fn authenticate(
    app: &Arc<App>,
    credential: Credential,
    write: bool,
) -> Result<Identity, Failure> {
    if write && matches!(credential, Credential::Ticket { csrf: None, .. }) {
        return Err(Failure::unauthenticated(format!(
            "a change made with a Proxmox ticket needs the {CSRF_HEADER} header (the web UI sends it); scripts should use an API token"
        )));
    }
    app.checks
        .check(credential, write)
        .await
        .map_err(|e| match e {
            CheckError::Refused(message) => Failure::unauthenticated(message),
            CheckError::Unavailable => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Proxmox could not be asked about this credential; try again later (the agent's log has the details)",
            ),
            CheckError::Busy => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent is checking too many credentials with Proxmox at once; try again in a few seconds",
            ),
            CheckError::Failed => Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checking the credential failed inside the agent; see the agent's log",
            ),
        })
        .map_err(Failure::at_authentication)
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Failure> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over {limit} bytes or could not be read ({e}); split the change into smaller requests"
            ),
        )
    })
}

mod call;
mod pki;
mod ssh;
mod vault;

use call::Intent;

/// The path below [`TREE_PREFIX`] (`/` for the root).
fn tree_rest(path: &str) -> &str {
    let rest = path.strip_prefix(TREE_PREFIX).unwrap_or_default();
    if rest.is_empty() { "/" } else { rest }
}

#[cfg(test)]
fn tree_path(path: &str) -> Result<orbitlab_engine::api::ApiPath, Failure> {
    tree_rest(path)
        .parse::<orbitlab_engine::api::ApiPath>()
        .map_err(|e| Failure::from(orbitlab_engine::api::ApiError::Path(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_engine::api::ApiPath;

    #[test]
    fn log_fields_stay_on_one_line_and_show_what_was_sent() {
        assert!(matches!(log_field("admin@pve!ui"), Cow::Borrowed(_)));
        assert_eq!(log_field("eve@pve\nINFO fake"), "eve@pve\\nINFO fake");
        assert_eq!(log_field("a\r\tb\u{1b}[31m"), "a\\r\\tb\\u{1b}[31m");
        assert_eq!(
            log_field("x\u{2028}y\u{202e}z\u{85}"),
            "x\\u{2028}y\\u{202e}z\\u{85}"
        );
        // Every bidirectional control (Unicode's Bidi_Control), U+061C too.
        assert_eq!(log_field("a\u{61c}b"), "a\\u{61c}b");
        // A backslash is doubled: a sent `\n` (two characters) differs
        // from an escaped newline.
        assert_eq!(log_field("a\\nb"), "a\\\\nb");
        assert_ne!(log_field("a\\nb"), log_field("a\nb"));
        assert_eq!(log_field("é日本"), "é日本");
        for text in ["a\nb", "\u{0}", "x\u{2029}"] {
            assert!(
                !log_field(text)
                    .chars()
                    .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
            );
        }
    }

    #[test]
    fn the_cache_buster_is_dropped_and_nothing_else() {
        assert_eq!(without_cache_buster(""), "");
        assert!(matches!(
            without_cache_buster("ls=1"),
            Cow::Borrowed("ls=1")
        ));
        assert_eq!(without_cache_buster("_dc=1712345678901"), "");
        assert_eq!(without_cache_buster("ls=1&_dc=17&force=1"), "ls=1&force=1");
        assert_eq!(without_cache_buster("_dc&x=1"), "x=1");
        assert_eq!(without_cache_buster("_dcx=1&a_dc=2"), "_dcx=1&a_dc=2");
    }

    #[test]
    fn extjs_paths_route_as_their_json_twins() {
        for (extjs, route_of) in [
            ("/api2/extjs/orbitlab", Some(Route::Tree)),
            ("/api2/extjs/orbitlab/vault/secrets/db", Some(Route::Tree)),
            ("/api2/extjs/orbitlab-apply", Some(Route::Apply)),
            ("/api2/extjs/orbitlabx", None),
            ("/api2/extjs/nodes", None),
        ] {
            let (format, path) = Format::of_path(extjs);
            assert_eq!(format, Format::Extjs);
            assert_eq!(route(&path), route_of, "{extjs}");
        }
        let (_, path) = Format::of_path("/api2/extjs/orbitlab/sectors/web");
        assert_eq!(tree_rest(&path), "/sectors/web");
    }

    #[test]
    fn routes_and_paths() {
        assert_eq!(route("/api2/json/orbitlab"), Some(Route::Tree));
        assert_eq!(route("/api2/json/orbitlab/sectors/web"), Some(Route::Tree));
        assert_eq!(route("/api2/json/orbitlab-apply/"), Some(Route::Apply));
        assert_eq!(route("/api2/json/orbitlabx"), None);
        assert_eq!(route("/api2/json/nodes"), None);
        assert_eq!(tree_path("/api2/json/orbitlab").unwrap(), ApiPath::Root);
        let err = tree_path("/api2/json/orbitlab/vpcs").unwrap_err();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert!(
            err.message.contains("unknown collection"),
            "{}",
            err.message
        );
    }
}

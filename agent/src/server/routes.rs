//! The HTTP face of [`Api`]: routes, parameters, authentication and the
//! permission check of every request, then the API call on the blocking
//! pool. See the module doc of [`super`] for the routes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ALLOW, CONTENT_TYPE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use orbitlab_manifests::{ManifestErrors, codec};
use serde_json::Value;

use super::Limits;
use super::authenticator::{CheckError, Checks, Identity};
use super::credential::{CSRF_HEADER, Credential};
use super::params::{
    bad_request, body_params, properties, query_params, refuse_unknown, take, take_flag,
};
use super::permissions::{Operation, decide};
use super::reply::{Failure, ok};
use crate::api::{Api, ApiError, ApiPath, PropertyValue};

/// Prefix of the path tree.
pub const TREE_PREFIX: &str = "/api2/json/orbitlab";
/// Where manifests are applied.
pub const APPLY_PATH: &str = "/api2/json/orbitlab-apply";

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) api: Api,
    pub(crate) checks: Checks,
    pub(crate) limits: Limits,
    pub(crate) allowed_origins: Vec<String>,
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
    let origin = allowed_origin(&app, request.headers());
    let mut user = "-".to_owned();
    let mut response = if method == Method::OPTIONS {
        preflight(origin.is_some(), route(&path))
    } else {
        match tokio::time::timeout(app.limits.request_timeout, handle(&app, request, &mut user))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => failure.into_response(),
            Err(_) => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request took longer than {:?} and was abandoned; a change may still complete: check with GET before retrying",
                    app.limits.request_timeout
                ),
            )
            .into_response(),
        }
    };
    if let Some(origin) = origin {
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(VARY, HeaderValue::from_static("Origin"));
    }
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    // Changes and refusals are worth a journal line; the UI's reads are not.
    if method == Method::GET && status < 400 {
        tracing::debug!(target: "orbitlab::api", %peer, %user, %method, %path, status, ms, "request");
    } else {
        tracing::info!(target: "orbitlab::api", %peer, %user, %method, %path, status, ms, "request");
    }
    response
}

fn allowed_origin(app: &App, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    app.allowed_origins
        .iter()
        .any(|o| o == text)
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
        HeaderValue::from_static("Authorization, CSRFPreventionToken, Content-Type"),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// One request: route, credential, body, Proxmox's verdict, permission,
/// then the API call.
async fn handle(app: &Arc<App>, request: Request, user: &mut String) -> Result<Response, Failure> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let route = route(path).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such path {path:?}; the OrbitLab API is under {TREE_PREFIX}/ (and {APPLY_PATH})"
            ),
        )
    })?;
    let methods = allowed_methods(route);
    if !methods.contains(&parts.method) {
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        let mut response = Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not possible on {path}; use {}",
                parts.method,
                allow.join(", ")
            ),
        )
        .into_response();
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
    *user = format!("{}?", credential.claimed_user());
    let write = parts.method != Method::GET;
    let identity = authenticate(app, credential, write).await?;
    user.clone_from(&identity.user);

    let body = read_body(body, app.limits.max_body_bytes).await?;
    let query = parts.uri.query().unwrap_or_default();
    let call = match route {
        Route::Apply => Call::apply(query, &body)?,
        Route::Tree => {
            let api_path = tree_path(path)?;
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            Call::tree(&parts.method, api_path, query, content_type, &body)?
        }
    };
    decide(
        &identity.user,
        &call.attempted(),
        &call.operation(),
        &identity.privileges,
    )?;
    let api = app.api.clone();
    let data = tokio::task::spawn_blocking(move || call.run(&api))
        .await
        .map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request failed inside the agent ({e}); see the agent's log"),
            )
        })??;
    Ok(ok(data))
}

/// Asks the authenticator (or a cache) about `credential`. A caller
/// who is not authenticated learns only that Proxmox refused, could not
/// be asked, or that the agent is busy: internal details go to the log.
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

fn tree_path(path: &str) -> Result<ApiPath, Failure> {
    let rest = path.strip_prefix(TREE_PREFIX).unwrap_or_default();
    let rest = if rest.is_empty() { "/" } else { rest };
    rest.parse::<ApiPath>()
        .map_err(|e| Failure::from(ApiError::Path(e)))
}

/// A checked request, ready to run.
enum Call {
    Get {
        path: ApiPath,
        ls: bool,
    },
    Create {
        path: ApiPath,
        properties: PropertyValue,
    },
    Set {
        path: ApiPath,
        properties: PropertyValue,
        delete: Vec<String>,
    },
    Delete {
        path: ApiPath,
        force: bool,
    },
    Apply {
        documents: Vec<orbitlab_manifests::Sourced<orbitlab_manifests::Manifest>>,
        dry_run: bool,
    },
}

impl Call {
    fn tree(
        method: &Method,
        path: ApiPath,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, Failure> {
        let mut params = query_params(query);
        if *method == Method::POST || *method == Method::PUT {
            params.extend(body_params(content_type, body)?);
        }
        Ok(match *method {
            Method::GET => {
                let ls = take_flag(&mut params, "ls")?;
                refuse_unknown(&params, "only `ls`")?;
                Call::Get { path, ls }
            }
            Method::POST => Call::Create {
                path,
                properties: properties(params)?,
            },
            Method::PUT => {
                let delete = take(&mut params, "delete")?
                    .iter()
                    .flat_map(|d| d.split([',', ';', ' ', '\t', '\n']))
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect();
                Call::Set {
                    path,
                    properties: properties(params)?,
                    delete,
                }
            }
            _ => {
                let force = take_flag(&mut params, "force")?;
                refuse_unknown(&params, "only `force`")?;
                Call::Delete { path, force }
            }
        })
    }

    fn apply(query: &str, body: &[u8]) -> Result<Self, Failure> {
        let mut params = query_params(query);
        let dry_run = take_flag(&mut params, "dry-run")?;
        let source = take(&mut params, "source")?
            .pop()
            .unwrap_or_else(|| "request body".to_owned());
        refuse_unknown(&params, "`dry-run` and `source`")?;
        if source.is_empty() || source.len() > 200 || source.chars().any(char::is_control) {
            return Err(bad_request(
                "source",
                "give a short file name without control characters",
            ));
        }
        let text = std::str::from_utf8(body).map_err(|_| {
            bad_request(
                "body",
                "the manifests are not UTF-8 text; send the YAML file as it is",
            )
        })?;
        let documents = codec::decode(&source, text)
            .map_err(|e| Failure::from(ApiError::Invalid(ManifestErrors::from(e))))?;
        Ok(Call::Apply { documents, dry_run })
    }

    fn operation(&self) -> Operation {
        let kind_of = |path: &ApiPath| match path {
            ApiPath::Root => Operation::Write(BTreeSet::new()),
            ApiPath::Collection(kind) | ApiPath::Object(kind, _) => Operation::write(*kind),
        };
        match self {
            Call::Get { .. } | Call::Apply { dry_run: true, .. } => Operation::Read,
            Call::Create { path, .. } | Call::Set { path, .. } | Call::Delete { path, .. } => {
                kind_of(path)
            }
            Call::Apply { documents, .. } => {
                Operation::Write(documents.iter().map(|d| d.value.kind()).collect())
            }
        }
    }

    /// For messages: `read /sectors`, `change /sectors/web`, ...
    fn attempted(&self) -> String {
        match self {
            Call::Get { path, .. } => format!("read {path}"),
            Call::Create { path, .. } => format!("create in {path}"),
            Call::Set { path, .. } => format!("change {path}"),
            Call::Delete { path, .. } => format!("delete {path}"),
            Call::Apply { dry_run: true, .. } => "check manifests (dry run)".to_owned(),
            Call::Apply { .. } => "apply manifests".to_owned(),
        }
    }

    /// Runs the call (blocking store I/O).
    fn run(self, api: &Api) -> Result<Value, ApiError> {
        let changes = match self {
            Call::Get { path, ls: true } => return api.ls(&path),
            Call::Get { path, ls: false } => return api.get(&path),
            Call::Create { path, properties } => api.create(&path, properties)?,
            Call::Set {
                path,
                properties,
                delete,
            } => api.set(&path, properties, &delete)?,
            Call::Delete { path, force } => api.delete(&path, force)?,
            Call::Apply {
                documents,
                dry_run: true,
            } => api.validate(documents)?,
            Call::Apply { documents, .. } => api.apply(documents)?,
        };
        Ok(serde_json::to_value(changes).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn form_and_json_bodies_become_the_same_properties() {
        let path: ApiPath = "/sectors".parse().unwrap();
        let form = Call::tree(
            &Method::POST,
            path.clone(),
            "",
            Some("application/x-www-form-urlencoded"),
            b"name=web&cidr=172.16.0.0%2F24&labels.team=a",
        )
        .unwrap();
        let json = Call::tree(
            &Method::POST,
            path.clone(),
            "",
            Some("application/json; charset=utf-8"),
            br#"{"name":"web","cidr":"172.16.0.0/24","labels":{"team":"a"}}"#,
        )
        .unwrap();
        let (Call::Create { properties: a, .. }, Call::Create { properties: b, .. }) = (form, json)
        else {
            panic!("creates")
        };
        assert_eq!(a, b);
        let err = Call::tree(&Method::POST, path, "", Some("text/xml"), b"<x/>").err();
        assert_eq!(
            err.map(|f| f.status),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn reserved_parameters() {
        let web: ApiPath = "/sectors/web".parse().unwrap();
        let Ok(Call::Set { delete, .. }) = Call::tree(
            &Method::PUT,
            web.clone(),
            "delete=alias,description&_dc=123",
            None,
            b"delete=labels.team",
        ) else {
            panic!("a set")
        };
        assert_eq!(delete, ["alias", "description", "labels.team"]);
        let Ok(Call::Delete { force: true, .. }) =
            Call::tree(&Method::DELETE, web.clone(), "force=1", None, b"")
        else {
            panic!("a forced delete")
        };
        let err = Call::tree(&Method::DELETE, web.clone(), "force=maybe", None, b"")
            .err()
            .unwrap();
        assert_eq!(
            err.errors["force"],
            "\"maybe\" is not a boolean; use 1 or 0"
        );
        let err = Call::tree(&Method::GET, web, "full=1", None, b"")
            .err()
            .unwrap();
        assert!(err.errors.contains_key("full"));
    }
}

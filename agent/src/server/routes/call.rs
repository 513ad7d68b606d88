//! What a request asks and the API call it becomes: an [`Intent`] is
//! known from method, path and query alone (so its privileges are checked
//! before the body is read); with the body parsed it becomes a [`Call`],
//! which runs on the blocking pool.

use std::collections::BTreeSet;

use axum::http::Method;
use orbitlab_manifests::{ManifestErrors, codec};
use serde_json::Value;

use super::super::authenticator::Identity;
use super::super::params::{
    bad_request, body_format, body_params, properties, query_params, refuse_unknown, take,
    take_flag,
};
use super::super::permissions::{Operation, decide_removal};
use super::super::reply::Failure;
use super::pki::PkiIntent;
use super::ssh::SshIntent;
use super::vault::VaultIntent;
use orbitlab_engine::api::{
    Api, ApiError, ApiPath, PkiCall, PkiPath, PropertyValue, RolloutPath, SshCall, SshPath,
    VaultCall, VaultPath, object_path, parse_object_status_path,
};
use orbitlab_engine::audit::Actor;

/// What a request asks, known from its method, path and query alone:
/// enough to check privileges before the body is read.
#[derive(Debug)]
pub(super) enum Intent {
    Get {
        path: ApiPath,
        ls: bool,
        /// `selector=...`: only the collection's objects whose labels match.
        selector: Option<orbitlab_manifests::Selector>,
    },
    Create {
        path: ApiPath,
        query: String,
    },
    Set {
        path: ApiPath,
        query: String,
    },
    Delete {
        path: ApiPath,
        force: bool,
    },
    Apply {
        dry_run: bool,
        source: String,
    },
    Vault(VaultIntent),
    Ssh(SshIntent),
    Pki(PkiIntent),
    Plan,
    Status,
    ObjectStatus(ApiPath),
    Rollout(RolloutPath),
}

impl Intent {
    /// A request on `rest`, the path below the tree's prefix (`/` for the
    /// root): the vault's part or the objects' tree.
    pub(super) fn at(method: &Method, rest: &str, query: &str) -> Result<Self, Failure> {
        let path_error = |e| Failure::from(ApiError::Path(e));
        let report = match rest.trim_end_matches('/') {
            "/plan" => Some(Intent::Plan),
            "/status" => Some(Intent::Status),
            _ => None,
        };
        let report = match report {
            Some(intent) => Some(intent),
            None => parse_object_status_path(rest)
                .map_err(path_error)?
                .map(Intent::ObjectStatus),
        };
        if let Some(intent) = report {
            return if *method == Method::GET {
                refuse_unknown(&query_params(query)?, "no parameters")?;
                Ok(intent)
            } else {
                Err(Failure::from(ApiError::NotAllowed {
                    method: "this method",
                    path: rest.to_owned(),
                    hint: "use GET".into(),
                }))
            };
        }
        if let Some(path) = RolloutPath::parse(rest).map_err(path_error)? {
            return if *method == Method::POST {
                refuse_unknown(&query_params(query)?, "no parameters")?;
                Ok(Intent::Rollout(path))
            } else {
                Err(Failure::from(ApiError::NotAllowed {
                    method: "this method",
                    path: rest.to_owned(),
                    hint: "use POST".into(),
                }))
            };
        }
        if let Some(path) = PkiPath::parse(rest).map_err(path_error)? {
            return Ok(Intent::Pki(super::pki::parse(method, path, query)?));
        }
        if let Some(path) = SshPath::parse(rest).map_err(path_error)? {
            return Ok(Intent::Ssh(SshIntent::parse(method, path, query)?));
        }
        match VaultPath::parse(rest).map_err(path_error)? {
            Some(path) => Ok(Intent::Vault(VaultIntent::parse(method, path, query)?)),
            None => {
                let path = rest
                    .parse::<ApiPath>()
                    .map_err(|e| Failure::from(ApiError::Path(e)))?;
                Intent::tree(method, path, query)
            }
        }
    }

    pub(super) fn tree(method: &Method, path: ApiPath, query: &str) -> Result<Self, Failure> {
        Ok(match *method {
            Method::POST => Intent::Create {
                path,
                query: query.to_owned(),
            },
            Method::PUT => Intent::Set {
                path,
                query: query.to_owned(),
            },
            Method::GET => {
                let mut params = query_params(query)?;
                let ls = take_flag(&mut params, "ls")?;
                let selector = match take(&mut params, "selector")?.pop() {
                    Some(text) => Some(
                        text.parse::<orbitlab_manifests::Selector>()
                            .map_err(|e| bad_request("selector", e.to_string()))?,
                    ),
                    None => None,
                };
                refuse_unknown(&params, "only `ls` and `selector`")?;
                Intent::Get { path, ls, selector }
            }
            _ => {
                let mut params = query_params(query)?;
                let force = take_flag(&mut params, "force")?;
                refuse_unknown(&params, "only `force`")?;
                Intent::Delete { path, force }
            }
        })
    }

    pub(super) fn apply(query: &str) -> Result<Self, Failure> {
        let mut params = query_params(query)?;
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
        Ok(Intent::Apply { dry_run, source })
    }

    /// The privileges to check before the body is read: for an apply,
    /// only the base privilege (its kinds are in the body).
    pub(super) fn operation(&self) -> Operation {
        match self {
            Intent::Get { .. } | Intent::Apply { dry_run: true, .. } => Operation::Read,
            Intent::Apply { .. } => Operation::Write(BTreeSet::new()),
            Intent::Create { path, .. }
            | Intent::Set { path, .. }
            | Intent::Delete { path, .. } => write_of(path),
            Intent::Vault(intent) => intent.operation(),
            Intent::Ssh(intent) => intent.operation(),
            Intent::Pki(intent) => intent.operation(),
            Intent::Plan | Intent::Status | Intent::ObjectStatus(_) => Operation::Read,
            Intent::Rollout(_) => Operation::write(orbitlab_manifests::Kind::Pool),
        }
    }

    pub(super) fn attempted(&self) -> String {
        match self {
            Intent::Get { path, .. } => format!("read {path}"),
            Intent::Create { path, .. } => format!("create in {path}"),
            Intent::Set { path, .. } => format!("change {path}"),
            Intent::Delete { path, .. } => format!("delete {path}"),
            Intent::Apply { dry_run: true, .. } => "check manifests (dry run)".to_owned(),
            Intent::Apply { .. } => "apply manifests".to_owned(),
            Intent::Vault(intent) => intent.attempted(),
            Intent::Ssh(intent) => intent.attempted(),
            Intent::Pki(intent) => intent.attempted(),
            Intent::Plan => "read the plan".to_owned(),
            Intent::Status => "read the status".to_owned(),
            Intent::ObjectStatus(path) => format!("read the status of {path}"),
            Intent::Rollout(path) => {
                format!("{} the rollout of Pool {}", path.action.as_str(), path.pool)
            }
        }
    }

    pub(super) fn takes_body(&self) -> bool {
        match self {
            Intent::Create { .. } | Intent::Set { .. } | Intent::Apply { .. } => true,
            Intent::Vault(intent) => intent.takes_body(),
            Intent::Ssh(intent) => intent.takes_body(),
            Intent::Pki(intent) => intent.takes_body(),
            Intent::Get { .. }
            | Intent::Delete { .. }
            | Intent::Plan
            | Intent::Status
            | Intent::ObjectStatus(_)
            | Intent::Rollout(_) => false,
        }
    }

    /// The call of a request without a body (a body sent along is not
    /// read).
    pub(super) fn without_body(self) -> Result<Call, Failure> {
        Ok(match self {
            Intent::Get { path, ls, selector } => Call::Get { path, ls, selector },
            Intent::Delete { path, force } => Call::Delete { path, force },
            Intent::Create { path, .. } => Call::Create {
                path,
                properties: PropertyValue::map(),
            },
            Intent::Set { path, .. } => Call::Set {
                path,
                properties: PropertyValue::map(),
                delete: Vec::new(),
            },
            Intent::Apply { dry_run, .. } => Call::Apply {
                documents: Vec::new(),
                dry_run,
            },
            Intent::Vault(intent) => Call::Vault(intent.without_body()?),
            Intent::Ssh(intent) => Call::Ssh(intent.with_body(b"")?),
            Intent::Pki(intent) => Call::Pki(intent.with_body(None, b"")?),
            Intent::Plan => Call::Plan,
            Intent::Status => Call::Status,
            Intent::ObjectStatus(path) => Call::ObjectStatus(path),
            Intent::Rollout(path) => Call::Rollout(path),
        })
    }

    /// Parses the query and `body` (CPU work: run it off the event loop).
    pub(super) fn with_body(
        self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Call, Failure> {
        match self {
            Intent::Create { path, query } => {
                let mut params = query_params(&query)?;
                params.extend(body_params(body_format(content_type)?, body)?);
                Ok(Call::Create {
                    path,
                    properties: properties(params)?,
                })
            }
            Intent::Set { path, query } => {
                let mut params = query_params(&query)?;
                params.extend(body_params(body_format(content_type)?, body)?);
                let delete = take(&mut params, "delete")?
                    .iter()
                    .flat_map(|d| d.split([',', ';', ' ', '\t', '\n']))
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(Call::Set {
                    path,
                    properties: properties(params)?,
                    delete,
                })
            }
            Intent::Apply { dry_run, source } => {
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
            Intent::Vault(intent) => Ok(Call::Vault(intent.with_body(content_type, body)?)),
            Intent::Ssh(intent) => Ok(Call::Ssh(intent.with_body(body)?)),
            Intent::Pki(intent) => Ok(Call::Pki(intent.with_body(content_type, body)?)),
            other => other.without_body(),
        }
    }
}

fn write_of(path: &ApiPath) -> Operation {
    match path {
        ApiPath::Root => Operation::Write(BTreeSet::new()),
        ApiPath::Collection(kind) | ApiPath::Object(kind, _) => Operation::write(*kind),
    }
}

/// A parsed request, ready to run.
pub(super) enum Call {
    Get {
        path: ApiPath,
        ls: bool,
        selector: Option<orbitlab_manifests::Selector>,
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
    Vault(VaultCall),
    Ssh(SshCall),
    Pki(PkiCall),
    Plan,
    Status,
    ObjectStatus(ApiPath),
    Rollout(RolloutPath),
}

impl Call {
    /// The privileges the call needs as far as known before it runs (a
    /// delete's dependents are checked in [`Call::run`]).
    pub(super) fn operation(&self) -> Operation {
        match self {
            Call::Get { .. } | Call::Apply { dry_run: true, .. } => Operation::Read,
            Call::Create { path, .. } | Call::Set { path, .. } | Call::Delete { path, .. } => {
                write_of(path)
            }
            Call::Apply { documents, .. } => {
                Operation::Write(documents.iter().map(|d| d.value.kind()).collect())
            }
            Call::Vault(call) => super::vault::operation_of(call.access()),
            Call::Ssh(call) => super::vault::operation_of(call.access()),
            Call::Pki(call) => super::pki::operation(call),
            Call::Plan | Call::Status | Call::ObjectStatus(_) => Operation::Read,
            Call::Rollout(_) => Operation::write(orbitlab_manifests::Kind::Pool),
        }
    }

    /// For messages: `read /sectors`, `change /sectors/web`, ...
    pub(super) fn attempted(&self) -> String {
        match self {
            Call::Get { path, .. } => format!("read {path}"),
            Call::Create { path, .. } => format!("create in {path}"),
            Call::Set { path, .. } => format!("change {path}"),
            Call::Delete { path, .. } => format!("delete {path}"),
            Call::Apply { dry_run: true, .. } => "check manifests (dry run)".to_owned(),
            Call::Apply { .. } => "apply manifests".to_owned(),
            Call::Vault(call) => call.describe(),
            Call::Ssh(call) => call.describe(),
            Call::Pki(call) => call.describe(),
            Call::Plan => "read the plan".to_owned(),
            Call::Status => "read the status".to_owned(),
            Call::ObjectStatus(path) => format!("read the status of {path}"),
            Call::Rollout(path) => {
                format!("{} the rollout of Pool {}", path.action.as_str(), path.pool)
            }
        }
    }

    /// Runs the call for `who` (blocking store I/O). A delete first
    /// computes everything it would remove and needs the privileges of
    /// every kind in that set.
    pub(super) fn run(self, api: &Api, who: &Identity) -> Result<Value, Failure> {
        // The audit log names the authenticated caller.
        let api = &api.clone().acting_as(Actor::https(&who.user));
        let changes = match self {
            Call::Get { path, ls: true, .. } => return Ok(api.ls(&path)?),
            Call::Get {
                path,
                selector: Some(selector),
                ..
            } => return Ok(api.get_selected(&path, &selector)?),
            Call::Get { path, .. } => return Ok(api.get(&path)?),
            Call::Create { path, properties } => api.create(&path, properties)?,
            Call::Set {
                path,
                properties,
                delete,
            } => api.set(&path, properties, &delete)?,
            Call::Delete { path, force } => {
                let removal = api.removal(&path, force)?;
                // Editing an object (dropping its ingress rules) needs no
                // less than removing it.
                let objects: Vec<_> = removal
                    .objects()
                    .chain(removal.edited())
                    .map(|(kind, name)| (kind, object_path(kind, name)))
                    .collect();
                decide_removal(&who.user, &objects, &who.privileges)?;
                api.delete_exactly(&removal)?
            }
            Call::Apply {
                documents,
                dry_run: true,
            } => api.validate(documents)?,
            Call::Apply { documents, .. } => api.apply(documents)?,
            Call::Vault(call) => return Ok(api.vault(call)?),
            Call::Ssh(call) => return Ok(api.ssh(call)?),
            Call::Pki(call) => return Ok(api.pki(call)?),
            Call::Plan => return Ok(api.plan()?),
            Call::Rollout(path) => return Ok(api.rollout(&path)?),
            Call::Status => return Ok(api.status()?),
            Call::ObjectStatus(path) => {
                let status = api.object_status(&path)?;
                return Ok(serde_json::to_value(status).unwrap_or(Value::Null));
            }
        };
        Ok(serde_json::to_value(changes).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    impl Call {
        /// The call a request makes, parsed as `routes::handle` does.
        fn tree(
            method: &Method,
            path: ApiPath,
            query: &str,
            content_type: Option<&str>,
            body: &[u8],
        ) -> Result<Self, Failure> {
            let intent = Intent::tree(method, path, query)?;
            if intent.takes_body() {
                intent.with_body(content_type, body)
            } else {
                intent.without_body()
            }
        }
    }

    #[test]
    fn privileges_are_known_before_the_body() {
        let sectors: ApiPath = "/sectors".parse().unwrap();
        let create = Intent::tree(&Method::POST, sectors.clone(), "").unwrap();
        assert!(create.takes_body());
        assert_eq!(
            create.operation(),
            Operation::write(orbitlab_manifests::Kind::Sector)
        );
        let apply = Intent::apply("source=a.yaml").unwrap();
        assert!(apply.takes_body());
        assert_eq!(apply.operation(), Operation::Write(BTreeSet::new()));
        assert_eq!(
            Intent::apply("dry-run=1").unwrap().operation(),
            Operation::Read
        );
        let get = Intent::tree(&Method::GET, sectors, "ls=1").unwrap();
        assert!(!get.takes_body());
        assert_eq!(get.operation(), Operation::Read);
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

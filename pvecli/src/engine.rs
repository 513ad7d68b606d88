//! The commands that talk to Proxmox — `init`, `reconcile --once`. They
//! run the engine in this process, acting as this node (`$ORBITLAB_NODE`
//! or the host name), and so never run with `--host`
//! ([`crate::backend::NodeOnly`]).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

use orbitlab_engine::api::collection_segment;
use orbitlab_engine::doctor;
use orbitlab_engine::host::checks;
use orbitlab_engine::liveness::{self, Members};
use orbitlab_engine::pve::{StoredConnection, StoredTrust};
use orbitlab_engine::reconcile::{self, Report, init};
use orbitlab_engine::store::{Store, node_name};
use serde_json::{Value, json};

use crate::cli::InitArgs;

mod first_run;

use first_run::Login;

/// Environment variable holding the API token secret for `init`.
const SECRET_ENV: &str = "ORBITLAB_API_TOKEN_SECRET";

/// Where `init` gets its Proxmox connection from; choosing it writes
/// nothing.
enum Source {
    /// The connection stored by an earlier `init`.
    Stored(StoredConnection),
    /// `--api-token` and its secret.
    Token(StoredConnection),
    /// `--login`: OrbitLab's user, role and token are made with it.
    Login(Login),
}

/// `orbitlab init`, in two halves:
/// 1. reading what was asked (arguments, secrets, the stored connection):
///    no write anywhere — [`source`];
/// 2. writing: with `--login` the role, user, ACL and token in Proxmox
///    and the stored connection ([`first_run::set_up`]), then the cluster
///    manifest and the Backplane.
///
/// Between the two, every member node's prerequisites are checked
/// ([`prerequisites`]); a failed one stops `init` before anything is
/// written.
pub fn init(store: &Store, args: &InitArgs) -> Result<Value> {
    let source = source(store, args)?;
    // Before the first write: a failed check leaves Proxmox and the store
    // as they were.
    prerequisites(store)?;
    let mut made = Value::Null;
    let connection = match source {
        Source::Stored(c) | Source::Token(c) => c,
        Source::Login(login) => {
            let setup = first_run::set_up(store, &login)?;
            made = setup.report;
            setup.connection
        }
    };
    reconcile::with_local_reconciler(store, &connection, |rec| {
        let manifest = init::check(rec, args.backplane_cidr)?;
        connection.save(store)?;
        let report = init::declare(rec, &manifest)?;
        let mut answer = json!({
            "cluster": manifest.name().to_string(),
            "backplane": manifest.spec.to_json()["backplane"]["cidr"],
            "node": node_name(),
            "report": report_json(&report),
        });
        if !made.is_null() {
            answer["proxmox"] = made.clone();
        }
        Ok(answer)
    })
}

/// Environment variable naming the host whose prerequisites are this
/// node's (default `/`; the sandbox's simulated nodes have their own).
const HOST_ROOT_ENV: &str = "ORBITLAB_HOST_ROOT";

/// Every member node's prerequisites (FRR, the `interfaces.d` include,
/// Proxmox's SDN package at one version, time sync): this node's read
/// here, the others' from their agents' heartbeats (an agent checks its
/// own node; a node without one fails). Refuses with one line and a fix
/// per failed check. Reads only.
fn prerequisites(store: &Store) -> Result<()> {
    let local = node_name();
    let members = Members::read(store.root(), &local);
    let mut hosts = doctor::reported_hosts(&liveness::read_all(store).unwrap_or_default());
    let root = std::env::var_os(HOST_ROOT_ENV).map_or_else(|| "/".into(), PathBuf::from);
    hosts.insert(local, Ok(checks::inspect(&root)));
    let failed: Vec<String> = doctor::prerequisites(&members, &hosts)
        .into_iter()
        .filter(|f| !f.ok)
        .map(|f| format!("  {}: {}; fix: {}", f.label(), f.detail, f.fix))
        .collect();
    if !failed.is_empty() {
        bail!(
            "prerequisites not met; nothing was changed (`orbitlab doctor` runs every check):\n{}",
            failed.join("\n")
        );
    }
    Ok(())
}

/// What `init` connects with (reads only).
fn source(store: &Store, args: &InitArgs) -> Result<Source> {
    if let Some(user) = &args.login {
        return Ok(Source::Login(Login::from_args(
            user,
            api_url(args),
            trust(args),
        )?));
    }
    let given = args.api_url.is_some() || args.api_token.is_some();
    Ok(match StoredConnection::load(store) {
        Ok(stored) if !given => Source::Stored(stored),
        _ => Source::Token(connection_from_args(args)?),
    })
}

/// `--api-url`, or this node's pveproxy.
fn api_url(args: &InitArgs) -> String {
    args.api_url
        .clone()
        .unwrap_or_else(|| "https://localhost:8006".into())
}

/// What to trust: `--api-fingerprint`, `--api-ca`, or the cluster CA.
fn trust(args: &InitArgs) -> StoredTrust {
    // Always HTTPS with a verified certificate: plain HTTP, even on
    // loopback, could reach a daemon such as pvedaemon (127.0.0.1:85)
    // instead of pveproxy. The simulator serves HTTPS too.
    if let Some(fp) = &args.api_fingerprint {
        StoredTrust::Fingerprint(fp.clone())
    } else {
        StoredTrust::CaFile(args.api_ca.as_ref().map_or_else(
            || "/etc/pve/pve-root-ca.pem".to_owned(),
            |p| p.display().to_string(),
        ))
    }
}

fn connection_from_args(args: &InitArgs) -> Result<StoredConnection> {
    let token = args
        .api_token
        .clone()
        .context("the first `orbitlab init` needs --login root@pam (its password in ORBITLAB_LOGIN_PASSWORD or on standard input) or --api-token USER@REALM!NAME (its secret in ORBITLAB_API_TOKEN_SECRET or on standard input)")?;
    let secret = match std::env::var(SECRET_ENV) {
        Ok(secret) if !secret.is_empty() => secret,
        _ => read_secret()?,
    };
    Ok(StoredConnection {
        url: api_url(args),
        token,
        secret,
        trust: trust(args),
    })
}

fn read_secret() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("API token secret: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let secret = line.trim().to_owned();
    if secret.is_empty() {
        bail!("no API token secret: set {SECRET_ENV} or give it on standard input");
    }
    Ok(secret)
}

/// `orbitlab reconcile --once`.
pub fn reconcile_once(store: &Store) -> Result<(Value, ExitCode)> {
    let connection = StoredConnection::load(store)?;
    reconcile::with_local_reconciler(store, &connection, |rec| {
        let mut report = rec.run()?;
        // As an agent does: probe this node's appliances, publish the
        // answers, and when one changed reconcile again so statuses say so.
        let node = rec.host.local_node();
        let vmids = reconcile::local_appliances(rec.pve, rec.store, node)?;
        let probes = orbitlab_engine::host::health::probe_all(
            rec.host,
            node,
            vmids.into_iter().map(|v| v.get()),
            std::time::SystemTime::now(),
        );
        if orbitlab_engine::liveness::record_probes(rec.store, node, probes)? {
            report = rec.run()?;
        }
        let code = if report.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
        Ok((report_json(&report), code))
    })
}

fn report_json(report: &Report) -> Value {
    let path = |o: &reconcile::ObjectRef| format!("/{}/{}", collection_segment(o.kind), o.name);
    json!({
        "passes": report.passes,
        "steps": report.steps,
        "ready": report.ready.iter().map(path).collect::<Vec<_>>(),
        "progressing": report.progressing.iter().map(|(o, m)| (path(o), Value::from(m.clone()))).collect::<serde_json::Map<_, _>>(),
        "failed": report.failed.iter().map(|(o, m)| (path(o), Value::from(m.clone()))).collect::<serde_json::Map<_, _>>(),
    })
}

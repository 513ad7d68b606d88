//! The commands that talk to Proxmox — `init`, `reconcile --once`. They
//! run the engine in this process, acting as this node (`$ORBITLAB_NODE`
//! or the host name), and so never run with `--host`
//! ([`crate::backend::NodeOnly`]).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use orbitlab_engine::api::collection_segment;
use orbitlab_engine::pve::{StoredConnection, StoredTrust};
use orbitlab_engine::reconcile::{self, Report, init};
use orbitlab_engine::store::{Store, node_name};
use serde_json::{Value, json};

use crate::cli::InitArgs;

/// Environment variable holding the API token secret for `init`.
const SECRET_ENV: &str = "ORBITLAB_API_TOKEN_SECRET";

/// `orbitlab init`.
pub fn init(store: &Store, args: &InitArgs) -> Result<Value> {
    let given = args.api_url.is_some() || args.api_token.is_some();
    let connection = match StoredConnection::load(store) {
        Ok(stored) if !given => stored,
        _ => connection_from_args(args)?,
    };
    reconcile::with_local_reconciler(store, &connection, |rec| {
        let manifest = init::check(rec, args.backplane_cidr)?;
        connection.save(store)?;
        let report = init::declare(rec, &manifest)?;
        Ok(json!({
            "cluster": manifest.name().to_string(),
            "backplane": manifest.spec.to_json()["backplane"]["cidr"],
            "node": node_name(),
            "report": report_json(&report),
        }))
    })
}

fn connection_from_args(args: &InitArgs) -> Result<StoredConnection> {
    let token = args
        .api_token
        .clone()
        .context("the first `orbitlab init` needs --api-token USER@REALM!NAME (and its secret in ORBITLAB_API_TOKEN_SECRET or on standard input)")?;
    let secret = match std::env::var(SECRET_ENV) {
        Ok(secret) if !secret.is_empty() => secret,
        _ => read_secret()?,
    };
    // Always HTTPS with a verified certificate: plain HTTP, even on
    // loopback, could reach a daemon such as pvedaemon (127.0.0.1:85)
    // instead of pveproxy. The simulator serves HTTPS too.
    let trust = if let Some(fp) = &args.api_fingerprint {
        StoredTrust::Fingerprint(fp.clone())
    } else {
        StoredTrust::CaFile(args.api_ca.as_ref().map_or_else(
            || "/etc/pve/pve-root-ca.pem".to_owned(),
            |p| p.display().to_string(),
        ))
    };
    Ok(StoredConnection {
        url: args
            .api_url
            .clone()
            .unwrap_or_else(|| "https://localhost:8006".into()),
        token,
        secret,
        trust,
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
        let report = rec.run()?;
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

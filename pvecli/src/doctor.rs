//! `orbitlab doctor`: every prerequisite and health check across the
//! cluster ([`orbitlab_engine::doctor`]), one line per check, a fix on
//! every failed one; `--output-format json` for monitoring. Exit status 0
//! when every check passed, 1 otherwise. Reads only: the cluster
//! filesystem and, with the stored connection, the Proxmox API.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use orbitlab_engine::doctor::{Facts, Finding, examine};
use orbitlab_engine::pve::{Pve, PveClient, StoredConnection};
use orbitlab_engine::store::Store;
use serde_json::json;

use crate::cli::OutputFormat;

/// Runs every check and prints the findings.
pub fn run(store: &Store, format: OutputFormat) -> Result<ExitCode> {
    let client = StoredConnection::load(store)
        .map_err(|e| e.to_string())
        .and_then(|c| c.client_config(store).map_err(|e| e.to_string()))
        .and_then(|config| PveClient::new(config).map_err(|e| e.to_string()));
    let pve = client.as_ref().map(|c| c as &dyn Pve).map_err(Clone::clone);
    let findings = examine(&Facts::gather(store, pve));
    let healthy = findings.iter().all(|f| f.ok);
    let text = match format {
        OutputFormat::Text => text(&findings),
        other => {
            crate::output::render(&json!({ "healthy": healthy, "findings": findings }), other)?
        }
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `ok   label   detail`, and for failures `FAIL label: detail; fix: ...`
/// on one line, then a summary.
fn text(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.label().len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        if f.ok {
            let _ = writeln!(out, "ok    {:width$}  {}", f.label(), f.detail);
        } else {
            let _ = writeln!(
                out,
                "FAIL  {:width$}  {}; fix: {}",
                f.label(),
                f.detail,
                f.fix
            );
        }
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    let _ = match failed {
        0 => writeln!(out, "all {} checks passed", findings.len()),
        n => writeln!(out, "{n} of {} checks failed", findings.len()),
    };
    out
}

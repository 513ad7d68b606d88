//! `orbitlab audit`: the audit log ([`orbitlab_engine::audit`]) as a table
//! (seq, time, node, actor, action, outcome, object) or JSON, and
//! `orbitlab audit verify`, which checks the hash chain: exit status 0
//! with the number of records, 1 with the first broken position. Reads
//! only the cluster filesystem of the node it runs on.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use orbitlab_engine::audit::{AuditLog, Day, Record, Verification};
use orbitlab_engine::store::Store;

use crate::cli::OutputFormat;

/// Examples shown by `orbitlab audit --help`.
pub const EXAMPLES: &str = "\
Examples:
  orbitlab audit
  orbitlab audit --since 2026-12-01
  orbitlab audit --json
  orbitlab audit verify";

/// `orbitlab audit [--since DATE] [--json] [verify]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Only records written from this UTC day on (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub since: Option<Day>,
    /// One JSON list of records (as `--output-format json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash, link and number, and the head: exit
    /// status 0 with the count, 1 naming the first broken record (shard
    /// file, line, seq) and what is wrong.
    Verify,
}

/// Runs `orbitlab audit ...` on `store`.
pub fn run(store: &Store, args: AuditArgs, format: OutputFormat) -> Result<ExitCode> {
    let log = AuditLog::new(store.clone());
    let format = if args.json {
        OutputFormat::Json
    } else {
        format
    };
    let (text, code) = match args.command {
        Some(AuditCommand::Verify) => verify(&log.verify()?, format)?,
        None => {
            let records = log.records(args.since.as_ref())?;
            let text = match format {
                OutputFormat::Text => table(&records),
                other => crate::output::render(&serde_json::to_value(&records)?, other)?,
            };
            (text, ExitCode::SUCCESS)
        }
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(code)
}

fn verify(found: &Verification, format: OutputFormat) -> Result<(String, ExitCode)> {
    let code = match found {
        Verification::Intact(_) => ExitCode::SUCCESS,
        Verification::Broken(_) => ExitCode::FAILURE,
    };
    let text = match (format, found) {
        (OutputFormat::Text, Verification::Intact(s)) => {
            let mut out = format!(
                "audit log intact: {} records in {} shards",
                s.records, s.shards
            );
            if let Some(hash) = &s.head_hash {
                let _ = write!(out, "; head {hash}");
            }
            out.push('\n');
            if let Some(note) = &s.note {
                let _ = writeln!(out, "note: {note}");
            }
            out
        }
        (OutputFormat::Text, Verification::Broken(b)) => format!("audit log broken: {b}\n"),
        (other, found) => crate::output::render(&serde_json::to_value(found)?, other)?,
    };
    Ok((text, code))
}

/// `SEQ  TIME  NODE  ACTOR  ACTION  OUTCOME  OBJECT`, aligned.
fn table(records: &[Record]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                r.at.clone(),
                r.node.clone(),
                format!("{} ({})", r.actor, via(r)),
                r.action.to_string(),
                outcome(r).to_owned(),
                r.object.clone(),
            ]
        })
        .collect();
    let header = [
        "SEQ", "TIME", "NODE", "ACTOR", "ACTION", "OUTCOME", "OBJECT",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

fn via(r: &Record) -> &'static str {
    match r.via {
        orbitlab_engine::audit::Via::Local => "local",
        orbitlab_engine::audit::Via::Https => "https",
    }
}

fn outcome(r: &Record) -> &'static str {
    match r.outcome {
        orbitlab_engine::audit::Outcome::Begun => "begun",
        orbitlab_engine::audit::Outcome::Done => "done",
        orbitlab_engine::audit::Outcome::Failed => "failed",
    }
}

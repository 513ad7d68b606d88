//! `orbitlab`: the command-line edge over the engine. Parses arguments,
//! calls the API in-process, prints results; exit status 0 on success, 1
//! when the request was refused or failed, 2 for usage errors.

mod appliance;
mod audit;
mod backend;
mod cli;
mod doctor;
mod engine;
mod input;
mod output;
mod pki;
mod pools;
mod properties;
mod remote;
mod reply;
mod secrets;
mod ssh_keys;
mod wait;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use orbitlab_engine::api::{Api, ApiPath, Change, acted_on, object_path, reports_status, used_for};
use orbitlab_engine::store::{BusyLock, LockOptions, Store};
use orbitlab_manifests::{Kind, Name};
use serde_json::Value;

use backend::{Backend, NodeOnly};
use cli::{Cli, Command};
use properties::Properties;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("orbitlab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let store = Store::open(&cli.root).with_lock_options(LockOptions {
        wait: Duration::from_secs(cli.lock_wait),
        notice: Some((Duration::from_millis(500), tell_busy_lock)),
        ..LockOptions::default()
    });
    let backend = match &cli.host {
        Some(host) => Backend::Remote(remote::Remote::new(&remote::Target {
            host: host.clone(),
            token_file: cli.token_file.clone(),
            cacert: cli.cacert.clone(),
            fingerprint: cli.fingerprint.clone(),
        })?),
        None => Backend::Local(Api::new(store.clone())),
    };
    let mut format = cli.output_format;
    let mut code = ExitCode::SUCCESS;
    let result: Value = match cli.command {
        Command::Ls(arg) => backend.ls(&parse_path(&arg.path)?)?,
        Command::Get(arg) => {
            let selector = arg
                .selector
                .as_deref()
                .map(str::parse::<orbitlab_manifests::Selector>)
                .transpose()?;
            backend.get(&parse_path(&arg.path)?, selector.as_ref())?
        }
        Command::Create(args) => {
            let props = Properties::parse(&args.properties)?;
            format = props.output_format.unwrap_or(format);
            changes(&backend.create(&parse_path(&args.path)?, &props.pairs)?)
        }
        Command::Set(args) => {
            let props = Properties::parse(&args.properties)?;
            format = props.output_format.unwrap_or(format);
            changes(&backend.set(&parse_path(&args.path)?, &props.pairs, &props.delete)?)
        }
        Command::Delete(args) => changes(&backend.delete(&parse_path(&args.path)?, args.force)?),
        Command::Apply(args) => {
            let documents = input::read_manifests(&args.files.files)?;
            let applied = backend.apply(documents, false)?;
            emit(&changes(&applied), format)?;
            for (path, kind) in inert(&applied) {
                eprintln!(
                    "orbitlab: note: {path} is stored, but no agent acts on {kind} manifests yet: it has no effect{}",
                    if args.wait {
                        " and is not waited for"
                    } else {
                        ""
                    }
                );
            }
            for (path, used) in indirect(&applied) {
                eprintln!(
                    "orbitlab: note: {path} {used}{}",
                    if args.wait {
                        " (it has no status of its own and is not waited for)"
                    } else {
                        ""
                    }
                );
            }
            if args.wait {
                let applied: Vec<Change> = decoded_changes(&applied)
                    .into_iter()
                    .filter(|c| reports_status(c.kind))
                    .collect();
                wait::wait_ready(
                    &backend,
                    &applied,
                    std::time::Duration::from_secs(args.timeout),
                )?;
            }
            return Ok(code);
        }
        Command::Validate(args) => {
            changes(&backend.apply(input::read_manifests(&args.files)?, true)?)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "orbitlab",
                &mut std::io::stdout(),
            );
            return Ok(code);
        }
        Command::Init(args) => {
            backend.on_node(NodeOnly::Init)?;
            engine::init(&store, &args)?
        }
        Command::Plan { detailed_exitcode } => {
            let plan = backend.plan()?;
            if detailed_exitcode {
                code = plan_code(&plan);
            }
            plan
        }
        Command::Status => backend.status()?,
        Command::Appliance(command) => {
            backend.on_node(NodeOnly::ApplianceBuild)?;
            appliance::run(&cli.root, command)?
        }
        Command::Doctor => {
            backend.on_node(NodeOnly::Doctor)?;
            return doctor::run(&store, format);
        }
        Command::Audit(args) => {
            backend.on_node(NodeOnly::Audit)?;
            return audit::run(&store, args, format);
        }
        Command::Secret(command) => return secrets::run_secret(&backend, command)?.emit(format),
        Command::Vault(command) => return secrets::run_vault(&backend, command)?.emit(format),
        Command::Pki(command) => return pki::run(&backend, command)?.emit(format),
        Command::SshKey(command) => return ssh_keys::run(&backend, command)?.emit(format),
        Command::Pool(command) => return pools::run(&backend, command)?.emit(format),
        Command::Reconcile { .. } => {
            backend.on_node(NodeOnly::Reconcile)?;
            let (report, report_code) = engine::reconcile_once(&store)?;
            code = report_code;
            report
        }
    };
    emit(&result, format)?;
    // The process ends next: freeing a result of thousands of objects
    // piece by piece would only cost time.
    std::mem::forget(result);
    Ok(code)
}

/// Reports a usage error (exit status 2) the way clap does — except an
/// unexpected argument to `secret set`, which is most likely a secret value
/// and is not echoed back.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let usage = match error.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => usage.to_string(),
        _ => String::new(),
    };
    if error.kind() != ErrorKind::UnknownArgument || !usage.contains("orbitlab secret set") {
        error.exit();
    }
    eprintln!(
        "error: `orbitlab secret set` takes no value argument: a value on the command line ends up in shell history and process listings (the argument is not repeated here); give the value on standard input or with --file FILE\n\n{}\n\nFor more information, try '--help'.",
        usage.trim_end()
    );
    ExitCode::from(2)
}

fn parse_path(path: &str) -> Result<ApiPath> {
    Ok(path.parse()?)
}

/// The changes an API call answered (`[{kind, name, action}]`, the same
/// in-process and over HTTPS), decoded.
fn decoded_changes(answer: &Value) -> Vec<Change> {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(Change {
                kind: c["kind"].as_str()?.parse::<Kind>().ok()?,
                name: c["name"].as_str()?.parse::<Name>().ok()?,
                action: serde_json::from_value(c["action"].clone()).ok()?,
            })
        })
        .collect()
}

/// Changes as a list of `{path, action}`.
fn changes(answer: &Value) -> Value {
    Value::Array(
        decoded_changes(answer)
            .iter()
            .map(|c| serde_json::json!({ "path": c.path(), "action": c.action }))
            .collect(),
    )
}

/// `plan --detailed-exitcode`: 1 when an object is blocked, 2 when there
/// are steps, 0 when nothing is to do.
fn plan_code(plan: &Value) -> ExitCode {
    let items = plan.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.iter().any(|i| i.get("blocked").is_some()) {
        ExitCode::FAILURE
    } else if items.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// Paths and kinds of applied objects no agent acts on yet.
fn inert(answer: &Value) -> Vec<(String, Kind)> {
    decoded_changes(answer)
        .into_iter()
        .filter(|c| !acted_on(c.kind) && c.action != orbitlab_engine::api::Action::Deleted)
        .map(|c| (object_path(c.kind, &c.name), c.kind))
        .collect()
}

/// Paths of applied objects an agent uses without reporting a status for
/// them (appliances, nodes), with what it does with them.
fn indirect(answer: &Value) -> Vec<(String, &'static str)> {
    decoded_changes(answer)
        .into_iter()
        .filter(|c| {
            acted_on(c.kind)
                && !reports_status(c.kind)
                && c.action != orbitlab_engine::api::Action::Deleted
        })
        .filter_map(|c| Some((object_path(c.kind, &c.name), used_for(c.kind)?)))
        .collect()
}

/// Says on standard error which cluster lock the command waits for, once:
/// a stale lock left by a crashed command can hold it for up to 120 s.
fn tell_busy_lock(busy: &BusyLock) {
    eprintln!("orbitlab: {busy}");
}

/// Writes `value` to standard output in `format`.
fn emit(value: &Value, format: cli::OutputFormat) -> Result<()> {
    let text = output::render(value, format)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

//! `orbitlab`: the command-line edge over the engine. Parses arguments,
//! calls the API in-process, prints results; exit status 0 on success, 1
//! when the request was refused or failed, 2 for usage errors.

mod cli;
mod engine;
mod input;
mod output;
mod pki;
mod properties;
mod reply;
mod secrets;
mod ssh_keys;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use orbitlab_agent::api::{Api, ApiPath, Change};
use orbitlab_agent::store::Store;
use serde_json::Value;

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
    let store = Store::open(&cli.root);
    let api = Api::new(store.clone());
    let mut format = cli.output_format;
    let mut code = ExitCode::SUCCESS;
    let result: Value = match cli.command {
        Command::Ls(arg) => api.ls(&parse_path(&arg.path)?)?,
        Command::Get(arg) => api.get(&parse_path(&arg.path)?)?,
        Command::Create(args) => {
            let props = Properties::parse(&args.properties)?;
            format = props.output_format.unwrap_or(format);
            changes(api.create(&parse_path(&args.path)?, props.tree()?)?)
        }
        Command::Set(args) => {
            let props = Properties::parse(&args.properties)?;
            format = props.output_format.unwrap_or(format);
            changes(api.set(&parse_path(&args.path)?, props.tree()?, &props.delete)?)
        }
        Command::Delete(args) => changes(api.delete(&parse_path(&args.path)?, args.force)?),
        Command::Apply(args) => {
            let applied = api.apply(input::read_manifests(&args.files.files)?)?;
            emit(&changes(applied.clone()), format)?;
            if args.wait {
                engine::wait_ready(&api, &applied, std::time::Duration::from_secs(args.timeout))?;
            }
            return Ok(code);
        }
        Command::Validate(args) => changes(api.validate(input::read_manifests(&args.files)?)?),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "orbitlab",
                &mut std::io::stdout(),
            );
            return Ok(code);
        }
        Command::Init(args) => engine::init(&store, &args)?,
        Command::Plan { detailed_exitcode } => {
            let (plan, plan_code) = engine::plan(&store)?;
            if detailed_exitcode {
                code = plan_code;
            }
            plan
        }
        Command::Secret(command) => return secrets::run_secret(&store, command)?.emit(format),
        Command::Vault(command) => return secrets::run_vault(&store, command)?.emit(format),
        Command::Pki(command) => return pki::run(&store, command)?.emit(format),
        Command::SshKey(command) => return ssh_keys::run(&store, command)?.emit(format),
        Command::Reconcile { .. } => {
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

/// Changes as a list of `{path, kind, name, action}`.
fn changes(changes: Vec<Change>) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| serde_json::json!({ "path": c.path(), "action": c.action }))
            .collect(),
    )
}

/// Writes `value` to standard output in `format`.
fn emit(value: &Value, format: cli::OutputFormat) -> Result<()> {
    let text = output::render(value, format)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

//! `orbitlab`: the command-line edge over the engine. Parses arguments,
//! calls the API in-process, prints results; exit status 0 on success, 1
//! when the request was refused or failed, 2 for usage errors.

mod cli;
mod input;
mod output;
mod properties;

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
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orbitlab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let api = Api::new(Store::open(&cli.root));
    let mut format = cli.output_format;
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
        Command::Apply(args) => changes(api.apply(input::read_manifests(&args.files)?)?),
        Command::Validate(args) => changes(api.validate(input::read_manifests(&args.files)?)?),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "orbitlab",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
    };
    let text = output::render(&result, format)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
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

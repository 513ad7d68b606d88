//! The command line: pvesh-style verbs over the API's path tree, plus
//! `apply`, `validate` and shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  orbitlab ls /
  orbitlab get /sectors --output-format json-pretty
  orbitlab create /sectors --name web --cidr 172.16.0.0/24
  orbitlab create /sectors --name db --cidr 10.8.0.0/16 \\
      --subnets name=a,cidr=10.8.0.0/24 --subnets name=b,cidr=10.8.1.0/24
  orbitlab set /sectors/web --alias front-end
  orbitlab set /sectors/web --delete alias
  orbitlab delete /sectors/web
  orbitlab apply -f manifests/
  orbitlab validate -f sector.yaml

The store is /etc/pve (the Proxmox cluster filesystem); --root or
ORBITLAB_ROOT point it elsewhere, e.g. at a sandbox.";

/// OrbitLab: a small, deterministic cloud on a Proxmox VE cluster.
#[derive(Debug, Parser)]
#[command(name = "orbitlab", version, about, after_long_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// The directory playing /etc/pve.
    #[arg(
        long,
        global = true,
        env = "ORBITLAB_ROOT",
        default_value = "/etc/pve",
        value_name = "DIR"
    )]
    pub root: PathBuf,

    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats, as pvesh has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people.
    Text,
    /// One line of JSON.
    Json,
    /// Indented JSON.
    JsonPretty,
    /// YAML.
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the entries below a path.
    Ls(PathArg),
    /// Show an object (spec and status) or every object of a collection.
    Get(PathArg),
    /// Create an object: `create /sectors --name web --cidr 172.16.0.0/24`.
    Create(ChangeArgs),
    /// Change an object's properties: `set /sectors/web --alias front`.
    /// `--delete KEY` resets a property.
    Set(ChangeArgs),
    /// Delete an object.
    Delete(DeleteArgs),
    /// Create or update every manifest in files or directories, all or
    /// nothing.
    Apply(FilesArgs),
    /// Check manifests (alone and together with what is stored) and say
    /// what `apply` would do; changes nothing.
    Validate(FilesArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct PathArg {
    /// An API path, e.g. /sectors/web.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// An API path, e.g. /sectors (create) or /sectors/web (set).
    pub path: String,
    /// Properties as `--key value` (or `--key=value`); a key given twice
    /// makes a list; `key=value,key=value` values set nested fields.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--KEY VALUE"
    )]
    pub properties: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// An API path, e.g. /sectors/web.
    pub path: String,
    /// Also delete the objects that refer to this one.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct FilesArgs {
    /// Manifest files or directories (*.yaml, *.yml, read recursively).
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR"
    )]
    pub files: Vec<PathBuf>,
}

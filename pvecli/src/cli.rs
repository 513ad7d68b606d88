//! The command line: pvesh-style verbs over the API's path tree, plus
//! `apply`, `validate`, shell completions, and the `secret`, `vault`,
//! `pki` and `ssh-key` groups (defined in their own modules).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{appliance, audit, pki, pools, secrets, ssh_keys};

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
  orbitlab init --backplane-cidr 10.200.0.0/16 --login root@pam
  orbitlab plan --detailed-exitcode
  orbitlab reconcile --once
  printf %s 's3cr3t' | orbitlab secret set app/db/password
  orbitlab pki cert issue sectors web --dns web.orbitlab.internal
  orbitlab ssh-key create deploy
  orbitlab audit verify
  ORBITLAB_TOKEN=... orbitlab --host https://pve1:8206 --cacert ca.pem get /sectors

The store is /etc/pve (the Proxmox cluster filesystem); --root or
ORBITLAB_ROOT point it elsewhere, e.g. at a sandbox. With --host (or
ORBITLAB_HOST) ls, get, create, set, delete, apply (with --wait too),
validate, secret, vault, ssh-key, pki, plan and status go to that node's
agent over verified HTTPS instead; init, reconcile, doctor, audit and
appliance build run on a node only and refuse --host.";

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

    /// How long to wait for a busy cluster lock before giving up, in
    /// seconds. After half a second of waiting the command says which lock
    /// it waits for and when pmxcfs frees it if its holder died.
    #[arg(
        long,
        global = true,
        env = "ORBITLAB_LOCK_WAIT",
        default_value_t = 150,
        value_name = "SECONDS"
    )]
    pub lock_wait: u64,

    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,

    /// Send the request to this node's agent over HTTPS
    /// (https://NODE:PORT) instead of running it here; the API token comes
    /// from ORBITLAB_TOKEN or --token-file.
    #[arg(long, global = true, env = "ORBITLAB_HOST", value_name = "URL")]
    pub host: Option<String>,

    /// With --host: a file holding the API token USER@REALM!ID=SECRET
    /// (instead of ORBITLAB_TOKEN).
    #[arg(long, global = true, value_name = "FILE", requires = "host")]
    pub token_file: Option<PathBuf>,

    /// With --host: CA certificate(s) to verify the agent with (default
    /// /etc/pve/pve-root-ca.pem).
    #[arg(
        long,
        global = true,
        env = "ORBITLAB_CACERT",
        value_name = "FILE",
        conflicts_with = "fingerprint"
    )]
    pub cacert: Option<PathBuf>,

    /// With --host: trust exactly the agent certificate with this SHA-256
    /// fingerprint (AB:CD:...).
    #[arg(
        long,
        global = true,
        env = "ORBITLAB_FINGERPRINT",
        value_name = "FINGERPRINT"
    )]
    pub fingerprint: Option<String>,

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
    /// Show an object (spec and status) or every object of a collection;
    /// `-l app=web,env!=dev` keeps those whose labels match.
    Get(GetArgs),
    /// Create an object: `create /sectors --name web --cidr 172.16.0.0/24`.
    Create(ChangeArgs),
    /// Change an object's properties: `set /sectors/web --alias front`.
    /// `--delete KEY` resets a property.
    Set(ChangeArgs),
    /// Delete an object.
    Delete(DeleteArgs),
    /// Create or update every manifest in files or directories, all or
    /// nothing.
    Apply(ApplyArgs),
    /// Check manifests (alone and together with what is stored) and say
    /// what `apply` would do; changes nothing.
    Validate(FilesArgs),
    /// Declare the cluster and build its Backplane (once; a second run
    /// changes nothing). Stores the Proxmox connection for later commands
    /// and the agents: with --login, a token it makes itself; with
    /// --api-token, that token, its secret read from
    /// ORBITLAB_API_TOKEN_SECRET or standard input, never from arguments.
    Init(InitArgs),
    /// Show the steps that would make Proxmox match the manifests.
    Plan {
        /// Exit 0 when nothing is to do, 2 when there are steps, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Every object's phase, and whether an agent acts on its kind yet.
    Status,
    /// Check the cluster: quorum, every node's agent (alive, same version)
    /// and prerequisites (FRR, the interfaces.d include, Proxmox's SDN
    /// package, time sync), pending SDN changes, appliance templates,
    /// stale locks, the vault. One line per check, a fix for each failed
    /// one; exit status 1 if any failed.
    Doctor,
    /// Make Proxmox match the manifests now, in this process.
    Reconcile {
        /// Run until nothing is left to do, then exit (the daemon is
        /// orbitlab-agent).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Encrypted, versioned secrets: set (value from standard input or a
    /// file, never from arguments), get, list, versions, rollback, delete,
    /// prune.
    #[command(subcommand, after_long_help = secrets::SECRET_EXAMPLES)]
    Secret(secrets::SecretCommand),
    /// The vault's key-encryption keys: status, rotate-key.
    #[command(subcommand, after_long_help = secrets::VAULT_EXAMPLES)]
    Vault(secrets::VaultCommand),
    /// The internal certificate authority: CAs, certificates, revocation,
    /// CRLs, renewal.
    #[command(subcommand, after_long_help = pki::EXAMPLES)]
    Pki(pki::PkiCommand),
    /// SSH keys kept in the vault: create, show, export, rotate, delete.
    #[command(subcommand, after_long_help = ssh_keys::EXAMPLES)]
    SshKey(ssh_keys::SshKeyCommand),
    /// The audit log: every change and secret read (who, what, when,
    /// which node; never a value); `audit verify` checks its hash chain.
    #[command(after_long_help = audit::EXAMPLES)]
    Audit(audit::AuditArgs),
    /// Pools of identical instances: the rollout of a changed template
    /// (status, pause, resume, undo).
    #[command(subcommand, after_long_help = pools::EXAMPLES)]
    Pool(pools::PoolCommand),
    /// Appliance templates: build one on this node into a storage
    /// (agents copy it to the other nodes).
    #[command(subcommand, after_long_help = appliance::EXAMPLES)]
    Appliance(appliance::ApplianceCommand),
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
pub struct GetArgs {
    /// An API path, e.g. /sectors/web or /lxc.
    pub path: String,
    /// Only the objects of the collection whose labels match this
    /// selector: `key=value`, `key!=value`, `key in (a,b)`, `key notin
    /// (a,b)`, `key`, `!key`, joined by `,`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
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

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FilesArgs,
    /// Wait until every applied object is Ready (or Failed), showing
    /// progress on standard error.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The Backplane network; fixed forever once chosen.
    #[arg(long, value_name = "CIDR")]
    pub backplane_cidr: Option<ipnet::Ipv4Net>,
    /// Proxmox API URL (default on a node: https://localhost:8006).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// API token id, USER@REALM!NAME.
    #[arg(long, value_name = "TOKENID", conflicts_with = "login")]
    pub api_token: Option<String>,
    /// First run: log in as this administrator (e.g. root@pam) and make
    /// OrbitLab's role, user orbitlab@pve and its API token, stored
    /// root-only. The password is read from ORBITLAB_LOGIN_PASSWORD or
    /// standard input (a prompt on a terminal), never from arguments.
    #[arg(long, value_name = "USER@REALM")]
    pub login: Option<String>,
    /// CA certificate to verify Proxmox with (default /etc/pve/pve-root-ca.pem).
    #[arg(long, value_name = "FILE", conflicts_with = "api_fingerprint")]
    pub api_ca: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 fingerprint.
    #[arg(long, value_name = "FINGERPRINT")]
    pub api_fingerprint: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

//! `orbitlab-pve-sim`: run the Proxmox VE API simulator for the sandbox or
//! for multi-process tests. Listens on loopback by default; serves HTTPS
//! with a freshly made CA when `--tls-dir` is given (the CA goes to
//! `DIR/pve-root-ca.pem`, like a node's `/etc/pve/pve-root-ca.pem`).
//! The API token is `root@pam!orbitlab`; its secret comes from the
//! environment variable `ORBITLAB_SIM_TOKEN_SECRET` (never from
//! arguments), else the built-in test secret. One more token, as
//! `pveum user token add USER NAME --privsep 0` makes it, comes from
//! `ORBITLAB_SIM_USER_TOKEN=USER@REALM!NAME=SECRET`. With `--etc-pve DIR`
//! it writes what a node's `/etc/pve` holds for HTTPS APIs there:
//! `pve-root-ca.pem`, `local/pve-ssl.pem` and `local/pve-ssl.key` (its own
//! certificate, as pveproxy uses it) and `pve-www.key` (the key of its CSRF
//! prevention tokens). Stops on SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use orbitlab_sim::pve::{
    ApiToken, DEFAULT_PASSWORD, DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig, TestCa,
    UserLogin,
};

/// Simulated Proxmox VE API (never for production).
#[derive(Debug, Parser)]
#[command(name = "orbitlab-pve-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Node names, comma separated.
    #[arg(long, default_value = "pve1,pve2,pve3", value_delimiter = ',')]
    nodes: Vec<String>,
    /// Proxmox VE version to behave like: 8.4 or 9.1.
    #[arg(long = "pve-version", default_value = "8.4")]
    pve_version: String,
    /// Serve HTTPS; write the CA to DIR/pve-root-ca.pem.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// More names or addresses for the certificate made with --tls-dir
    /// (besides localhost and the listening address), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    tls_names: Vec<String>,
    /// Mirror .members and .vmlist into this directory.
    #[arg(long)]
    pmxcfs_root: Option<PathBuf>,
    /// Feed .members and .vmlist to an orbitlab-pmxcfs-sim through its
    /// control directory (members.json, vmlist.json).
    #[arg(long, value_name = "DIR")]
    pmxcfs_control: Option<PathBuf>,
    /// How long each task runs, in milliseconds.
    #[arg(long, default_value_t = 200)]
    task_ms: u64,
    /// MTU of every node's vmbr0.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Write pve-root-ca.pem, local/pve-ssl.{pem,key} (needs --tls-dir)
    /// and pve-www.key into this directory (the simulated /etc/pve).
    #[arg(long, value_name = "DIR")]
    etc_pve: Option<PathBuf>,
}

/// Writes `content` to `path` (mode 0640, as pmxcfs keeps files outside
/// `priv/`), replacing it through a temporary file.
fn write_0640(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(content)
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `USER@REALM!NAME=SECRET` from `ORBITLAB_SIM_USER_TOKEN`.
fn user_token() -> Result<Option<ApiToken>> {
    let Ok(text) = std::env::var("ORBITLAB_SIM_USER_TOKEN") else {
        return Ok(None);
    };
    let parsed = text.split_once('=').and_then(|(id, secret)| {
        let (user, name) = id.split_once('!')?;
        (user.contains('@') && !name.is_empty() && !secret.is_empty()).then(|| ApiToken {
            user: user.to_owned(),
            name: name.to_owned(),
            secret: secret.to_owned(),
        })
    });
    match parsed {
        Some(token) => Ok(Some(token)),
        None => bail!("ORBITLAB_SIM_USER_TOKEN is not USER@REALM!NAME=SECRET"),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let version: PveVersion = args.pve_version.parse().map_err(anyhow::Error::msg)?;
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {} (not loopback); the control API /_sim has no authentication",
            args.listen
        );
    }
    let secret = std::env::var("ORBITLAB_SIM_TOKEN_SECRET")
        .unwrap_or_else(|_| DEFAULT_TOKEN_SECRET.to_string());
    if secret.is_empty() {
        bail!(
            "ORBITLAB_SIM_TOKEN_SECRET is empty: set a secret or unset it to use the test default"
        );
    }
    if args.etc_pve.is_some() && args.tls_dir.is_none() {
        bail!("--etc-pve needs --tls-dir (the certificates are the simulator's own)");
    }
    let tls = match &args.tls_dir {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let ca = TestCa::new("OrbitLab simulator CA")?;
            let host = args.listen.ip().to_string();
            let mut names = vec!["localhost", host.as_str()];
            names.extend(args.tls_names.iter().map(String::as_str));
            let material = ca.issue_server(&names)?;
            let ca_path = dir.join("pve-root-ca.pem");
            std::fs::write(&ca_path, ca.pem())
                .with_context(|| format!("writing {}", ca_path.display()))?;
            std::fs::write(dir.join("pve-ssl.pem"), &material.cert_chain_pem)
                .with_context(|| format!("writing {}", dir.join("pve-ssl.pem").display()))?;
            println!("CA: {}", ca_path.display());
            if let Some(etc) = &args.etc_pve {
                let local = etc.join("local");
                std::fs::create_dir_all(&local)
                    .with_context(|| format!("creating {}", local.display()))?;
                write_0640(&etc.join("pve-root-ca.pem"), ca.pem().as_bytes())?;
                write_0640(
                    &local.join("pve-ssl.pem"),
                    material.cert_chain_pem.as_bytes(),
                )?;
                write_0640(&local.join("pve-ssl.key"), material.key_pem.as_bytes())?;
            }
            Some(material)
        }
    };
    let mut cfg = SimConfig {
        nodes: args.nodes,
        version,
        tls,
        task_duration: Duration::from_millis(args.task_ms),
        pmxcfs_root: args.pmxcfs_root,
        pmxcfs_control: args.pmxcfs_control,
        bridge_mtu: args.mtu,
        listen: args.listen,
        www_key: args.etc_pve.as_ref().map(|d| d.join("pve-www.key")),
        ..SimConfig::default()
    };
    cfg.auth.tokens = vec![ApiToken {
        user: "root@pam".into(),
        name: "orbitlab".into(),
        secret,
    }];
    cfg.auth.tokens.extend(user_token()?);
    cfg.auth.users = vec![UserLogin {
        user: "root@pam".into(),
        password: std::env::var("ORBITLAB_SIM_PASSWORD")
            .unwrap_or_else(|_| DEFAULT_PASSWORD.to_string()),
    }];
    let sim = PveSim::start(cfg)?;
    println!("Proxmox VE {version} simulator: {}", sim.base_url());
    println!("control API: {}/_sim/requests", sim.origin());
    println!(
        "token: root@pam!orbitlab (secret from ORBITLAB_SIM_TOKEN_SECRET or the test default)"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    sim.shutdown();
    Ok(())
}

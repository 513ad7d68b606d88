//! `orbitlab-sandbox`: OrbitLab on any Linux machine, without Proxmox.
//!
//! `cargo run --release -p orbitlab-sandbox` builds the programs it needs,
//! then starts, in a fresh work directory:
//! - the pmxcfs simulator (FUSE; root or fusermount3 needed) mounted as the
//!   sandbox's `/etc/pve` — or, without FUSE, a plain directory, with a
//!   note on what that loses;
//! - the Proxmox VE simulator (three nodes pve1..pve3, HTTPS with its own
//!   CA), feeding `.members` and `.vmlist`, and writing into the sandbox's
//!   `/etc/pve` what a node holds there for HTTPS APIs (`pve-root-ca.pem`,
//!   `local/pve-ssl.{pem,key}`, `pve-www.key`); it knows a second API
//!   token, `root@pam!sandbox`, for people to try the agents' API with;
//! - a simulated host per node (`hosts/<node>/`: a package database with
//!   FRR, Proxmox's SDN package and OrbitLab, the `interfaces.d` include,
//!   a synchronised clock) for the prerequisite checks;
//! - three `orbitlab-agent` processes, one per node, as the package starts
//!   them, with the simulated `pct`, their heartbeats, and (once
//!   initialised) the local HTTPS API on a loopback port each (certificate
//!   `local/pve-ssl.pem`, issued by the simulated cluster's CA);
//! - `orbitlab init` as node pve1 (checks every node's prerequisites,
//!   stores the connection, builds the Backplane);
//! - an example Sector with an instance in it and a Pool of three
//!   health-checked members through `orbitlab apply --wait`, then one
//!   read of
//!   every agent's API with the sandbox token, verifying TLS with the CA;
//!
//! with `--ui DIR --extjs DIR` (and `--pve-version 9.1`), also the real
//! Proxmox VE web UI with the OrbitLab panel, one page per node on
//! `127.0.0.N` ([`ui`]; the agents then listen on `127.0.0.N:8206` and
//! allow that page's origin);
//!
//! prints how to drive it with `orbitlab` and `curl` (the token's header in
//! a 0600 file, `curl -H @FILE`, so the secret is in no command line), and
//! keeps running until Ctrl-C
//! (SIGINT) or SIGTERM, when it stops the agents, the simulators, unmounts,
//! and removes the work directory (unless `--keep`). Writes only inside
//! its work directory; listens only on loopback.

/// `println!` and `eprintln!` that never panic: after SIGHUP (the
/// terminal or SSH session closed) writing to it fails, and stopping
/// everything and cleaning up matters more than saying so.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod programs;
mod service;
mod ui;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use orbitlab_sim::host::HostSetup;
use orbitlab_sim::pve::APPLIANCE_VERSION;
use rand::Rng;

use programs::Programs;
use service::Service;

/// The simulated nodes.
const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];
/// The API token the agents use.
const TOKEN: &str = "root@pam!orbitlab";
/// The API token for people trying the agents' API (as made with
/// `pveum user token add root@pam sandbox --privsep 0`).
const USER_TOKEN: &str = "root@pam!sandbox";
/// pmxcfs lock expiry in the sandbox, and the agents' renewal.
const LOCK_TIMEOUT_S: u64 = 30;
const LOCK_RENEW: &str = "5s";
/// The agents' heartbeat interval: an agent is counted dead 3 s after it
/// stops.
const HEARTBEAT: &str = "1s";
/// How long starting a program may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Run OrbitLab on simulators: a Proxmox VE simulator, a pmxcfs simulator
/// and three agents; Ctrl-C stops everything.
#[derive(Debug, Parser)]
#[command(name = "orbitlab-sandbox", version, about)]
struct Args {
    /// Work directory (created; default: a new one under /tmp).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the work directory (logs, state) on exit.
    #[arg(long)]
    keep: bool,
    /// Use a plain directory instead of the pmxcfs simulator (no FUSE).
    #[arg(long)]
    no_fuse: bool,
    /// Do not run `cargo build` for the programs first.
    #[arg(long)]
    no_build: bool,
    /// Proxmox VE version to simulate: 8.4 or 9.1.
    #[arg(long = "pve-version", default_value = "8.4")]
    pve_version: String,
    /// How long each simulated Proxmox task runs, in milliseconds.
    #[arg(long, default_value_t = 100)]
    task_ms: u64,
    /// Also serve the Proxmox VE web UI with the OrbitLab panel, from the
    /// UI's sources in DIR (`pve-manager/www` and
    /// `proxmox-widget-toolkit/src`, as in `../shared/pve-ui`); needs
    /// `--extjs`. Each node's page is on its own address (127.0.0.N) and
    /// its agent's API on port 8206 there. Use with `--pve-version 9.1`.
    #[arg(long, value_name = "DIR", requires = "extjs")]
    ui: Option<PathBuf>,
    /// The npm package `extjs-gpl` (6.2) for `--ui`: its folder (with
    /// `build/ext-all.js`), e.g. `node_modules/extjs-gpl`.
    #[arg(long, value_name = "DIR", requires = "ui")]
    extjs: Option<PathBuf>,
}

/// Everything started, for the guide and the cleanup.
#[derive(Debug)]
struct Sandbox {
    dir: PathBuf,
    root: PathBuf,
    control: Option<PathBuf>,
    origin: String,
    ca: PathBuf,
    /// The API token secret: given to the simulator and `orbitlab init`
    /// through the environment, never printed.
    secret: String,
    /// The secret of [`USER_TOKEN`]: given to the simulator through the
    /// environment and written to [`Sandbox::token_header`], never printed.
    user_secret: String,
    /// `Authorization: PVEAPIToken=...` for `curl -H @FILE` (mode 0600).
    token_header: PathBuf,
    /// `USER@REALM!ID=SECRET` for `orbitlab --host --token-file FILE`
    /// (mode 0600).
    token_file: PathBuf,
    services: Vec<Service>,
    metrics: Vec<(String, String)>,
    /// Each node's local API (`https://127.0.0.1:PORT`).
    apis: Vec<(String, String)>,
    /// The Proxmox web UI with the panel (`--ui`).
    ui: Option<ui::UiServer>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Ctrl-C and SIGTERM become a flag, checked by every wait below.
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = watch_signals(Arc::clone(&stop)) {
        complain!("orbitlab-sandbox: {e:#}");
        return ExitCode::FAILURE;
    }
    let dir = match work_dir(args.dir.clone()) {
        Ok(dir) => dir,
        Err(e) => {
            complain!("orbitlab-sandbox: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut sandbox = Sandbox {
        root: dir.join("etc-pve"),
        dir,
        control: None,
        origin: String::new(),
        ca: PathBuf::new(),
        secret: token_secret(),
        user_secret: token_secret(),
        token_header: PathBuf::new(),
        token_file: PathBuf::new(),
        services: Vec::new(),
        metrics: Vec::new(),
        apis: Vec::new(),
        ui: None,
    };
    let result = run(&args, &mut sandbox, &stop);
    if let Err(e) = &result {
        if stop.load(Ordering::SeqCst) {
            complain!("\ninterrupted");
        } else {
            complain!("\norbitlab-sandbox: {e:#}");
        }
    }
    sandbox.clean_up(args.keep || result.is_err() && !stop.load(Ordering::SeqCst));
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Ctrl-C, SIGTERM and SIGHUP set `stop`. Handlers rather than a blocked
/// mask: children would inherit the mask and ignore their own SIGTERM.
fn watch_signals(stop: Arc<AtomicBool>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let mut signals = runtime
        .block_on(async {
            [
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::hangup(),
            ]
            .into_iter()
            .map(signal)
            .collect::<std::io::Result<Vec<_>>>()
        })
        .context("cannot catch SIGINT/SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let [int, term, hup] = &mut signals[..] else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = hup.recv() => {}
                    }
                    stop.store(true, Ordering::SeqCst);
                }
            });
        })?;
    Ok(())
}

fn work_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    let dir = given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "orbitlab-sandbox-{}-{:04x}",
            std::process::id(),
            rand::thread_rng().r#gen::<u16>()
        ))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// A fresh token secret in Proxmox's format (a UUID).
fn token_secret() -> String {
    let b: [u8; 16] = rand::thread_rng().r#gen();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

fn run(args: &Args, sb: &mut Sandbox, stop: &AtomicBool) -> Result<()> {
    say!("OrbitLab sandbox in {}", sb.dir.display());
    say!("[1/7] building the programs (cargo build --bins; quick when up to date)");
    let programs = programs::locate(!args.no_build)?;
    let logs = sb.dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    std::fs::create_dir_all(&sb.root)?;

    step_store(args, sb, &programs, &logs, stop)?;
    step_pve(args, sb, &programs, &logs, stop)?;
    step_hosts(args, sb)?;
    step_ui(args, sb)?;
    step_agents(sb, &programs, &logs, stop)?;
    step_init(sb, &programs)?;
    step_agent_apis(sb, stop)?;
    step_sector(sb, &programs, stop)?;
    step_api(sb, &programs)?;
    print_guide(sb, &programs);
    serve(sb, stop);
    Ok(())
}

/// The pmxcfs simulator on `etc-pve`, or a plain directory.
fn step_store(
    args: &Args,
    sb: &mut Sandbox,
    programs: &Programs,
    logs: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    if args.no_fuse {
        say!(
            "[2/7] /etc/pve: a plain directory (--no-fuse): {}",
            sb.root.display()
        );
        plain_directory_note();
        return Ok(());
    }
    let control = sb.dir.join("pmxcfs-control");
    let mut command = Command::new(&programs.pmxcfs_sim);
    command
        .arg("--mount")
        .arg(&sb.root)
        .arg("--control")
        .arg(&control)
        .args([
            "--lock-timeout",
            &LOCK_TIMEOUT_S.to_string(),
            "--exit-with-parent",
        ]);
    let mut service = Service::start("pmxcfs simulator", command, &logs.join("pmxcfs-sim.log"))?;
    match service.wait_for_line("ready mount=", START_TIMEOUT, stop) {
        Ok(_) => {
            say!(
                "[2/7] /etc/pve: the pmxcfs simulator (FUSE) mounted on {}",
                sb.root.display()
            );
            say!(
                "      control directory {} (quorum: echo 0 > {}/quorate)",
                control.display(),
                control.display()
            );
            sb.services.push(service);
            sb.control = Some(control);
        }
        Err(_) if stop.load(Ordering::SeqCst) => bail!("interrupted"),
        Err(e) => {
            service.stop(Duration::from_secs(5));
            say!(
                "[2/7] /etc/pve: the pmxcfs simulator could not mount ({}),",
                first_line(&e.to_string())
            );
            say!(
                "      so a plain directory stands in: {}",
                sb.root.display()
            );
            plain_directory_note();
        }
    }
    Ok(())
}

fn plain_directory_note() {
    say!(
        "      Note: without FUSE (root or fusermount3, and /dev/fuse) there are no pmxcfs rules:"
    );
    say!("      locks never expire, quorum cannot be switched off, files are not size-limited.");
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

/// The Proxmox VE simulator over HTTPS.
fn step_pve(
    args: &Args,
    sb: &mut Sandbox,
    programs: &Programs,
    logs: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    let tls_dir = sb.dir.join("pve");
    let mut command = Command::new(&programs.pve_sim);
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--pve-version",
            &args.pve_version,
            "--task-ms",
            &args.task_ms.to_string(),
        ])
        .arg("--nodes")
        .arg(NODES.join(","))
        .arg("--tls-dir")
        .arg(&tls_dir)
        // Every node's address: the agents (and with --ui the pages) of
        // pve2 and pve3 serve on 127.0.0.2 and 127.0.0.3.
        .arg("--tls-names")
        .arg(
            (1..NODES.len())
                .map(|i| ui::node_address(i).to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
        .arg("--etc-pve")
        .arg(&sb.root)
        .env("ORBITLAB_SIM_TOKEN_SECRET", &sb.secret)
        .env(
            "ORBITLAB_SIM_USER_TOKEN",
            format!("{USER_TOKEN}={}", sb.user_secret),
        );
    match &sb.control {
        Some(control) => command.arg("--pmxcfs-control").arg(control),
        None => command.arg("--pmxcfs-root").arg(&sb.root),
    };
    let mut service = Service::start("Proxmox VE simulator", command, &logs.join("pve-sim.log"))?;
    let line = service.wait_for_line("simulator: ", START_TIMEOUT, stop);
    sb.services.push(service);
    let line = line?;
    let url = line.rsplit(' ').next().unwrap_or_default();
    sb.origin = url.trim_end_matches("/api2/json").to_owned();
    sb.ca = tls_dir.join("pve-root-ca.pem");
    wait_for_file(&sb.root.join(".members"), stop)?;
    wait_for_file(&sb.root.join("pve-www.key"), stop)?;
    sb.token_header = sb.dir.join("api-token.header");
    write_private(
        &sb.token_header,
        &format!(
            "Authorization: PVEAPIToken={USER_TOKEN}={}\n",
            sb.user_secret
        ),
    )?;
    sb.token_file = sb.dir.join("api-token");
    write_private(
        &sb.token_file,
        &format!("{USER_TOKEN}={}\n", sb.user_secret),
    )?;
    say!(
        "[3/7] Proxmox VE {} simulator, nodes {}: {} (CA {})",
        args.pve_version,
        NODES.join(", "),
        sb.origin,
        sb.ca.display()
    );
    say!(
        "      API token {USER_TOKEN} for you: its header is in {}, the token in {} (mode 0600)",
        sb.token_header.display(),
        sb.token_file.display()
    );
    Ok(())
}

/// Writes `content` to a new file only its owner may read (0600).
fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A loopback port free right now (the agent binds it a moment later).
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_file(path: &Path, stop: &AtomicBool) -> Result<()> {
    let started = Instant::now();
    while !path.exists() {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "{} did not appear; see the logs in the work directory",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// What each simulated node's host holds for the prerequisite checks
/// (`orbitlab doctor`, `orbitlab init`): a package database listing FRR,
/// Proxmox's SDN package, pve-manager and OrbitLab, the `interfaces.d`
/// include, and a synchronised clock. The agents and the command read it
/// instead of this machine's own (`--host-root`, `ORBITLAB_HOST_ROOT`).
fn step_hosts(args: &Args, sb: &Sandbox) -> Result<()> {
    let pve_manager = if args.pve_version.starts_with('9') {
        "9.1.1"
    } else {
        "8.4.1"
    };
    let host = HostSetup::ready(pve_manager, env!("CARGO_PKG_VERSION"));
    for node in NODES {
        let dir = host_root(sb, node);
        host.write(&dir)
            .with_context(|| format!("cannot write the simulated host {}", dir.display()))?;
    }
    Ok(())
}

/// The simulated host of `node` (see [`step_hosts`]).
fn host_root(sb: &Sandbox, node: &str) -> PathBuf {
    sb.dir.join("hosts").join(node)
}

/// The environment every OrbitLab program of the sandbox gets.
fn orbitlab_env(sb: &Sandbox, programs: &Programs, command: &mut Command, node: &str) {
    command
        .env("ORBITLAB_HOST_ROOT", host_root(sb, node))
        .env("ORBITLAB_ROOT", &sb.root)
        .env("ORBITLAB_NODE", node)
        .env("ORBITLAB_PCT", &programs.pct)
        .env("ORBITLAB_SIM_URL", &sb.origin)
        .env("ORBITLAB_SIM_CA", &sb.ca);
}

/// `orbitlab init` as node pve1.
fn step_init(sb: &Sandbox, programs: &Programs) -> Result<()> {
    say!(
        "[5/7] orbitlab init --api-url {} --api-token {TOKEN} --api-ca {}   (as node pve1)",
        sb.origin,
        sb.ca.display()
    );
    let mut command = Command::new(&programs.cli);
    command
        .arg("init")
        .args(["--api-url", &sb.origin, "--api-token", TOKEN])
        .arg("--api-ca")
        .arg(&sb.ca)
        .env("ORBITLAB_API_TOKEN_SECRET", &sb.secret)
        .stdin(Stdio::null());
    orbitlab_env(sb, programs, &mut command, NODES[0]);
    let output = command.output().context("cannot run orbitlab init")?;
    if !output.status.success() {
        bail!(
            "orbitlab init failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    print_indented(&String::from_utf8_lossy(&output.stdout));
    Ok(())
}

fn print_indented(text: &str) {
    for line in text.lines() {
        say!("      {line}");
    }
}

/// One agent per node.
fn step_agents(
    sb: &mut Sandbox,
    programs: &Programs,
    logs: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    say!(
        "[4/7] agents (orbitlab-agent), one per node, as the package starts them (they wait for `orbitlab init`):"
    );
    for (i, node) in NODES.into_iter().enumerate() {
        // A port of its own: the three agents share this machine. The
        // certificate is the sandbox's local/pve-ssl.pem (for 127.0.0.1).
        // With the web UI, each node's address and the default port, as
        // the panel on that node's page expects.
        let api = match &sb.ui {
            Some(_) => format!("{}:{}", ui::node_address(i), ui::AGENT_PORT),
            None => format!("127.0.0.1:{}", free_port()?),
        };
        let mut command = Command::new(&programs.agent);
        if let Some(ui) = &sb.ui {
            command
                .arg("--ui-origin")
                .arg(format!("https://{}:{}", ui::node_address(i), ui.port));
        }
        command.arg("--root").arg(&sb.root).args([
            "--node",
            node,
            "--poll-interval",
            "1s",
            "--metrics-listen",
            "127.0.0.1:0",
            "--api-listen",
            &api,
            "--lock-renew",
            LOCK_RENEW,
            "--heartbeat-interval",
            HEARTBEAT,
            "--exit-with-parent",
        ]);
        orbitlab_env(sb, programs, &mut command, node);
        let log = logs.join(format!("agent-{node}.log"));
        let mut service = Service::start(&format!("agent {node}"), command, &log)?;
        let started = service.wait_for_line(" started", START_TIMEOUT, stop);
        let pid = service.pid();
        sb.services.push(service);
        let metrics = started?
            .split_whitespace()
            .find_map(|field| field.strip_prefix("metrics="))
            .map(|addr| format!("http://{addr}/metrics"))
            .unwrap_or_else(|| "off".into());
        say!(
            "      {node}: pid {pid}, API https://{api} (once initialised), metrics {metrics}, log {}",
            log.display()
        );
        sb.metrics.push((node.to_owned(), metrics));
        sb.apis.push((node.to_owned(), format!("https://{api}")));
    }
    // `orbitlab init` checks every node's prerequisites in its agent's
    // heartbeat: wait for all of them.
    let heartbeats = sb.root.join("orbitlab/agents");
    for node in NODES {
        wait_for_file(&heartbeats.join(format!("{node}.json")), stop)?;
    }
    Ok(())
}

/// The agents' local APIs start once `orbitlab init` stored the Proxmox
/// connection.
fn step_agent_apis(sb: &mut Sandbox, stop: &AtomicBool) -> Result<()> {
    let agents = sb
        .services
        .iter_mut()
        .filter(|s| s.name.starts_with("agent "));
    for service in agents {
        let served = service.wait_for_line("local API ", START_TIMEOUT, stop)?;
        if !served.contains("served over HTTPS") {
            bail!("{} does not serve its local API: {served}", service.name);
        }
    }
    Ok(())
}

/// The Proxmox web UI with the panel, when asked for (`--ui`).
fn step_ui(args: &Args, sb: &mut Sandbox) -> Result<()> {
    let (Some(pve_ui), Some(extjs)) = (&args.ui, &args.extjs) else {
        return Ok(());
    };
    let panel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui");
    let sources = ui::UiSources::new(pve_ui, extjs, &panel)?;
    let local = sb.root.join("local");
    let server = ui::UiServer::start(
        sources,
        &sb.dir.join("ui"),
        &NODES,
        (&local.join("pve-ssl.pem"), &local.join("pve-ssl.key")),
        &sb.origin,
        &sb.ca,
    )?;
    say!(
        "      Proxmox VE web UI with the OrbitLab panel: {}",
        ui_urls(server.port)
    );
    sb.ui = Some(server);
    Ok(())
}

/// Each node's page.
fn ui_urls(port: u16) -> String {
    (0..NODES.len())
        .map(|i| format!("https://{}:{port}/ ({})", ui::node_address(i), NODES[i]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The example Sector and an instance in it, applied and waited for.
fn step_sector(sb: &Sandbox, programs: &Programs, stop: &AtomicBool) -> Result<()> {
    let examples = sb.dir.join("examples");
    std::fs::create_dir_all(&examples)?;
    let file = examples.join("sector-web.yaml");
    std::fs::write(&file, EXAMPLE)?;
    // The instance's secret: a value in the vault (from standard input,
    // never an argument), before the manifest that grants it.
    say!("[6/7] printf %s 'db-s3cret' | orbitlab secret set app/db-password");
    let mut command = Command::new(&programs.cli);
    command
        .args(["secret", "set", "app/db-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    orbitlab_env(sb, programs, &mut command, NODES[1]);
    let mut child = command.spawn().context("cannot run orbitlab secret set")?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, b"db-s3cret")?;
    }
    if !child.wait()?.success() {
        bail!("orbitlab secret set failed");
    }
    say!("      orbitlab apply -f {} --wait", file.display());
    let started = Instant::now();
    let mut command = Command::new(&programs.cli);
    command
        .arg("apply")
        .arg("-f")
        .arg(&file)
        .args(["--wait", "--timeout", "300"])
        .stdin(Stdio::null());
    orbitlab_env(sb, programs, &mut command, NODES[1]);
    let output = command.output().context("cannot run orbitlab apply")?;
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    print_indented(&String::from_utf8_lossy(&output.stdout));
    print_indented(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!(
            "the example Sector and instance did not become Ready; see the agents' logs in {}",
            sb.dir.join("logs").display()
        );
    }
    say!(
        "      Sector web, instance app and its secret, certificate and SSH key, and Pool web-pool are Ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    show(sb, programs, &["pool", "rollout", "status", "web-pool"])?;
    show(sb, programs, &["secret", "who-can-read", "app/db-password"])
}

/// Runs `orbitlab ARGS` as node pve2 and prints what it answered; its
/// failure ends the sandbox's start with the command's error.
fn show(sb: &Sandbox, programs: &Programs, args: &[&str]) -> Result<()> {
    let shown = format!("orbitlab {}", args.join(" "));
    let mut command = Command::new(&programs.cli);
    command.args(args).stdin(Stdio::null());
    orbitlab_env(sb, programs, &mut command, NODES[1]);
    let output = command
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    say!("      {shown}");
    print_indented(&String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// What the sandbox applies: a Sector, and an instance in it that declares
/// a secret, a certificate and an SSH key, each delivered into its
/// container by the agent of its node.
const EXAMPLE: &str = "\
# An example Sector: its own VXLAN network, a gateway and a DNS container.
# Port 8080 of its gateway's Backplane address reaches port 80 of every
# running instance and healthy Pool member labelled tier=web, in turn.
apiVersion: orbitlab.io/v1
kind: Sector
metadata:
  name: web
spec:
  cidr: 172.16.0.0/24
  ingress:
    - name: web
      protocol: tcp
      port: 8080
      to_selector: \"tier=web\"
      to_port: 80
---
# The database password. Its value is in the vault (orbitlab secret set);
# only the instances named or selected here may receive it.
apiVersion: orbitlab.io/v1
kind: Secret
metadata:
  name: db-password
spec:
  path: app/db-password
  readers:
    - lxc: app
---
# A CA of the lab, and a server certificate for the instance, renewed a
# third of its validity before it expires.
apiVersion: orbitlab.io/v1
kind: Certificate
metadata:
  name: lab-root
spec:
  role: root_ca
  common_name: OrbitLab Sandbox Root CA
---
apiVersion: orbitlab.io/v1
kind: Certificate
metadata:
  name: app-tls
spec:
  role: server
  issuer: lab-root
  dns_names: [app.web.orbitlab.internal]
  lifetime: 30d
---
# An SSH key for root on the instance, replaced every 30 days (the old one
# keeps working for a day).
apiVersion: orbitlab.io/v1
kind: SshKey
metadata:
  name: deploy
spec:
  rotate_every: 30d
---
# An instance in the Sector: a container placed by the cluster's policy,
# with an address from the Sector's IPAM and the name
# app.web.orbitlab.internal; it receives exactly what it declares: the
# password in memory (/run), the certificate with its key, the SSH key.
apiVersion: orbitlab.io/v1
kind: Lxc
metadata:
  name: app
  labels:
    tier: web
spec:
  sector: web
  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
  memory: 256
  ssh_keys: [deploy]
  secrets:
    - secret: db-password
      path: /run/secrets/db-password
      mode: \"0440\"
  certificates:
    - certificate: app-tls
      cert: /etc/ssl/certs/app.pem
      chain: /etc/ssl/certs/app-chain.pem
      key: /run/ssl/app.key
---
# A pool of three identical web servers, web-pool-1..3, spread over the
# nodes and checked over TCP from the Sector's gateway every 5 s: a member
# failing 3 checks in a row is replaced (the new one first). The name
# web-pool.web.orbitlab.internal answers with the healthy members only.
apiVersion: orbitlab.io/v1
kind: Pool
metadata:
  name: web-pool
  labels:
    tier: web
spec:
  instance:
    sector: web
    template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    memory: 256
  replicas: 3
  health:
    tcp: {port: 80}
    interval: 5s
";

/// Reads `/sectors` from every agent's API as a user would: the sandbox
/// token, TLS verified with the simulated cluster's CA; then `orbitlab
/// --host` against the first agent, as a script on a workstation would.
fn step_api(sb: &Sandbox, programs: &Programs) -> Result<()> {
    let ca = std::fs::read(&sb.ca).with_context(|| format!("cannot read {}", sb.ca.display()))?;
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .timeout(Duration::from_secs(30))
        .build()?;
    let header = format!("PVEAPIToken={USER_TOKEN}={}", sb.user_secret);
    let mut value = reqwest::header::HeaderValue::from_str(&header)?;
    value.set_sensitive(true);
    say!("[7/7] the agents' HTTPS API, read with the token {USER_TOKEN}:");
    for (node, api) in &sb.apis {
        let url = format!("{api}/api2/json/orbitlab/sectors");
        let response = client
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, value.clone())
            .send()
            .with_context(|| format!("cannot reach the API of {node} at {url}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().unwrap_or_default();
        if !status.is_success() {
            bail!("the API of {node} answered {status}: {body}");
        }
        let names: Vec<&str> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["metadata"]["name"].as_str().or(s["name"].as_str()))
            .collect();
        say!(
            "      {node}: GET {url} -> {status}, sectors: {}",
            names.join(", ")
        );
    }
    if let Some((node, api)) = sb.apis.first() {
        let output = Command::new(&programs.cli)
            .args(remote_args(sb, api))
            .args(["get", "/sectors/web", "--output-format", "json"])
            .env_remove("ORBITLAB_ROOT")
            .stdin(Stdio::null())
            .output()
            .context("cannot run orbitlab --host")?;
        if !output.status.success() {
            bail!(
                "orbitlab --host {api} get /sectors/web failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        say!("      {node}: orbitlab --host {api} get /sectors/web -> exit 0");
        // The same apply as step 6, through the agent: unchanged, so it
        // waits only for the status the agents already report.
        let manifest = sb.dir.join("examples/sector-web.yaml");
        let output = Command::new(&programs.cli)
            .args(remote_args(sb, api))
            .arg("apply")
            .arg("-f")
            .arg(&manifest)
            .args(["--wait", "--timeout", "60"])
            .env_remove("ORBITLAB_ROOT")
            .stdin(Stdio::null())
            .output()
            .context("cannot run orbitlab --host apply")?;
        if !output.status.success() {
            bail!(
                "orbitlab --host {api} apply --wait failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        say!(
            "      {node}: orbitlab --host {api} apply -f {} --wait -> exit 0",
            manifest.display()
        );
    }
    Ok(())
}

/// `--host API --cacert CA --token-file FILE`: the agent at `api`, as
/// `orbitlab` reaches it from anywhere.
fn remote_args(sb: &Sandbox, api: &str) -> Vec<String> {
    vec![
        "--host".into(),
        api.into(),
        "--cacert".into(),
        sb.ca.display().to_string(),
        "--token-file".into(),
        sb.token_file.display().to_string(),
    ]
}

fn print_guide(sb: &Sandbox, programs: &Programs) {
    let root = sb.root.display();
    let cli = programs.cli.display();
    say!();
    say!(
        "OrbitLab runs. Drive it with the orbitlab command (any node name works for ORBITLAB_NODE):"
    );
    say!("  ORBITLAB_ROOT={root} {cli} get /sectors");
    say!(
        "  ORBITLAB_ROOT={root} {cli} get /sectors/web   # its appliances: VMIDs, versions, health probes, bundles pushed"
    );
    say!(
        "  ORBITLAB_ROOT={root} {cli} get /lxc/app   # the example instance: node, VMID, address, FQDN, power"
    );
    say!("  ORBITLAB_ROOT={root} {cli} plan");
    say!(
        "  ORBITLAB_ROOT={root} {cli} get /nodes   # each node's agent: alive, version, heartbeat age, last pass, prerequisites"
    );
    say!(
        "  ORBITLAB_ROOT={root} ORBITLAB_HOST_ROOT={} {cli} doctor   # every health and prerequisite check, a fix for each failure",
        host_root(sb, NODES[0]).display()
    );
    say!("  ORBITLAB_ROOT={root} {cli} create /sectors --name shop --cidr 172.16.0.0/24");
    say!(
        "  ORBITLAB_ROOT={root} {cli} apply -f {} --wait",
        sb.dir.join("examples/sector-web.yaml").display()
    );
    say!("  ORBITLAB_ROOT={root} {cli} get /lxc -l tier=web   # by label selector");
    say!(
        "  ORBITLAB_ROOT={root} {cli} get /pools/web-pool   # members, their health and last check, replacements, scaling"
    );
    say!(
        "  ORBITLAB_ROOT={root} {cli} set /pools/web-pool --replicas 5   # more members, spread over the nodes"
    );
    say!(
        "  ORBITLAB_ROOT={root} {cli} pool rollout status web-pool   # after a template change: pause, resume, undo"
    );
    say!("  ORBITLAB_ROOT={root} {cli} delete /sectors/shop");
    say!("  ORBITLAB_ROOT={root} {cli} get /cluster");
    say!(
        "  ORBITLAB_ROOT={root} {cli} audit   # who changed or read what, from which node (never a value); audit verify checks the hash chain"
    );
    say!(
        "Use the agents' HTTPS API as the web UI panel and scripts do (token header from the 0600 file):"
    );
    let ca = sb.ca.display();
    let header = sb.token_header.display();
    if let Some((_, api)) = sb.apis.first() {
        say!("  curl -s --cacert {ca} -H @{header} {api}/api2/json/orbitlab/sectors");
        say!("  curl -s --cacert {ca} -H @{header} {api}/api2/json/orbitlab/sectors/web");
        say!(
            "  curl -s --cacert {ca} -H @{header} -X POST --data name=shop --data cidr=172.16.0.0/24 {api}/api2/json/orbitlab/sectors"
        );
    }
    for (node, api) in sb.apis.iter().skip(1) {
        say!("  {api}   # agent {node}");
    }
    say!("  cat {header}   # the token, if you need it elsewhere");
    if let Some((_, api)) = sb.apis.first() {
        let remote = remote_args(sb, api).join(" ");
        say!("Or the orbitlab command through an agent, as from a workstation or CI:");
        say!("  {cli} {remote} get /sectors");
        say!("  {cli} {remote} status");
        say!(
            "  {cli} {remote} apply -f {} --wait",
            sb.dir.join("examples/sector-web.yaml").display()
        );
        say!(
            "  printf s3cret-2 | {cli} {remote} secret set app/db-password   # delivered into app at once"
        );
        say!("  {cli} {remote} secret who-can-read app/db-password");
        say!("  {cli} {remote} get /lxc/app   # holds/...: the versions it holds");
        say!("  {cli} {remote} ssh-key create backup");
        say!("  {cli} {remote} pki ca create-root lab-ca");
        say!(
            "  {cli} {remote} pki cert sign-csr lab-ca web --csr web.csr   # only the certificate comes back"
        );
    }
    if let Some(ui) = &sb.ui {
        say!(
            "Open the Proxmox VE web UI, Datacenter -> OrbitLab (user root, realm pam, password {}):",
            orbitlab_sim::pve::DEFAULT_PASSWORD
        );
        say!("  {}", ui_urls(ui.port));
        say!(
            "  (certificates from the sandbox's CA {}: accept them for the page and for its agent, https://127.0.0.N:{})",
            sb.ca.display(),
            ui::AGENT_PORT
        );
    }
    say!("Look behind the scenes:");
    say!(
        "  curl -s --cacert {} {}/_sim/state        # what the simulated Proxmox holds",
        sb.ca.display(),
        sb.origin
    );
    say!(
        "  curl -s --cacert {} {}/_sim/pct          # what the agents pushed into containers",
        sb.ca.display(),
        sb.origin
    );
    say!(
        "  (the containers here are simulated: Sectors use the appliance templates by name, orbitlab-gateway_{v}_amd64.tar.zst and orbitlab-dns_{v}_amd64.tar.zst, and the simulated pct plays their helper; appliances/ builds the real templates, and tests/tests/appliance_datapath.rs boots them as real LXC containers carrying two Sectors in network namespaces)",
        v = APPLIANCE_VERSION
    );
    for (node, metrics) in &sb.metrics {
        say!("  curl -s {metrics}   # agent {node}");
    }
    say!("  tail -f {}/logs/agent-*.log", sb.dir.display());
    if let Some(control) = &sb.control {
        say!(
            "  echo 0 > {}/quorate   # take quorum away (agents stop changing anything); echo 1 to restore",
            control.display()
        );
    }
    say!("Press Ctrl-C to stop everything and clean up.");
}

/// Waits for Ctrl-C, reporting children that exit on their own.
fn serve(sb: &mut Sandbox, stop: &AtomicBool) {
    let mut reported = vec![false; sb.services.len()];
    while !stop.load(Ordering::SeqCst) {
        for (service, reported) in sb.services.iter_mut().zip(reported.iter_mut()) {
            if !*reported && let Some(status) = service.exited() {
                complain!(
                    "warning: {} exited ({status}); its log: {}",
                    service.name,
                    service.log.display()
                );
                *reported = true;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Sandbox {
    /// Stops agents first, then the simulators (the pmxcfs simulator
    /// unmounts), then removes the work directory unless `keep`.
    fn clean_up(&mut self, keep: bool) {
        say!("\nstopping: agents, Proxmox simulator, pmxcfs simulator");
        while let Some(mut service) = self.services.pop() {
            service.stop(Duration::from_secs(15));
        }
        if self.control.is_some() && is_mounted(&self.root) {
            complain!("  {} is still mounted: detaching it", self.root.display());
            if let Err(e) = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH) {
                complain!(
                    "  cannot unmount {} ({e}); run `fusermount3 -u -z {}`",
                    self.root.display(),
                    self.root.display()
                );
                return;
            }
        }
        if keep {
            say!("kept {} (logs in logs/)", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            complain!("  cannot remove {}: {e}", self.dir.display());
        } else {
            say!("removed {}", self.dir.display());
        }
    }
}

/// Whether `path` is a mount point now (from /proc/self/mountinfo).
fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    info.lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_ref()))
}

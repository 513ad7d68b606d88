//! `orbitlab-pmxcfs-sim`: mounts a simulated pmxcfs for the sandbox and
//! multi-process tests, serves it until SIGTERM, SIGINT or SIGHUP, then
//! unmounts cleanly.
//!
//! Once mounted it prints one line on stdout, which spawners wait for:
//! `ready mount=<DIR> control=<CONTROL>`. Quorum is switched with
//! `echo 0 > CONTROL/quorate` (and `1` back); `.members` and `.vmlist` are
//! fed through `CONTROL/members.json` and `CONTROL/vmlist.json` (see the
//! library docs). If the process is killed with SIGKILL the mount is left
//! dangling: `fusermount3 -u -z DIR` removes it. `--exit-with-parent` makes
//! it stop cleanly when whoever spawned it dies.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use orbitlab_pmxcfs_sim::{PmxcfsSim, SimOptions};

/// Mount a filesystem that behaves like Proxmox's pmxcfs (/etc/pve) for
/// OrbitLab's tests and sandbox.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory to mount on (created if missing).
    #[arg(long, value_name = "DIR")]
    mount: PathBuf,
    /// Seconds after which a lock can be taken over with utime(dir, 0, 0).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    lock_timeout: u64,
    /// Control directory (quorate, members.json, vmlist.json); a temporary
    /// one, removed on exit, if not given.
    #[arg(long, value_name = "DIR")]
    control: Option<PathBuf>,
    /// Start without quorum (every change fails with EACCES).
    #[arg(long)]
    no_quorum: bool,
    /// FUSE worker threads.
    #[arg(long, value_name = "N", default_value_t = 4)]
    threads: usize,
    /// Unmount and exit when the process (strictly: the thread) that started
    /// this one dies, so a killed test run leaves no mount behind.
    #[arg(long)]
    exit_with_parent: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    // Block the stop signals before any thread starts (threads inherit the
    // mask), then wait for one of them synchronously below.
    let mut stop = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(sig);
    }
    stop.thread_block()
        .context("cannot block SIGTERM/SIGINT/SIGHUP")?;
    if args.exit_with_parent {
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
            .context("cannot ask for SIGTERM on the parent's death")?;
    }

    std::fs::create_dir_all(&args.mount)
        .with_context(|| format!("cannot create mount point {}", args.mount.display()))?;
    let handle = PmxcfsSim::mount(
        &args.mount,
        SimOptions {
            lock_timeout: Duration::from_secs(args.lock_timeout),
            quorate: !args.no_quorum,
            control_dir: args.control,
            threads: args.threads,
        },
    )?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ready mount={} control={}",
        handle.mountpoint().display(),
        handle.control().dir().display()
    )?;
    out.flush()?;
    drop(out);

    let signal = stop.wait().context("waiting for a stop signal failed")?;
    tracing::info!(%signal, "stopping: unmounting");
    handle.unmount()?;
    Ok(())
}

//! A lab for OrbitLab's appliance templates: real containers booted from
//! the built templates with Debian's LXC tools (the ones `pct` wraps), in
//! network namespaces this lab creates and deletes, configured only through
//! the engine's own push path ([`bundle::push`] over [`Pct`], with a `pct`
//! stand-in that maps `pct exec`/`pct push` onto `lxc-attach`).
//!
//! Topology (every address exists only inside the lab's namespaces):
//!
//! ```text
//!   <p>-hv: the Proxmox node. Bridges olvn1001 (Sector blue), olvn1002
//!   (Sector green), olbp (the Backplane VNet); lxc-start runs here, so every
//!   container's host-side veth is in this namespace.
//!
//!   blue  172.16.0.0/24   gateway 101 (.1, Backplane 10.200.0.10)  dns 102 (.2)
//!                         instance web 172.16.0.10 (<p>-blue-web)
//!                         instance api 172.16.0.12 (<p>-blue-api)
//!   green 172.16.0.0/24   gateway 201 (.1, Backplane 10.200.0.11)  dns 202 (.2)
//!                         instance app 172.16.0.10 (<p>-green-app)
//!                         instance db  172.16.0.11 (<p>-green-db)
//!   <p>-bp: the Backplane gateway 10.200.0.1/16 and router to the outside
//!           (198.51.100.1/24)
//!   <p>-out: a host outside the cluster, 198.51.100.10: TCP echo of the
//!            peer's address on port 8000, and a DNS resolver (dnsmasq)
//!            answering *.outside.test with 198.51.100.80
//! ```
//!
//! The containers are privileged: systemd inside an unprivileged container
//! cannot create its cgroups on a host with the hybrid cgroup v1 layout
//! (Debian 12 in a container, as CI is), while Proxmox (cgroup v2) runs
//! OrbitLab's appliances unprivileged. Everything the lab starts is stopped
//! and every namespace deleted on drop, whether a test passed or panicked.
//!
//! Needs root, `lxc`, `iproute2`, `dnsmasq-base` and `bind9-dnsutils`
//! (`dig`); `tests/run.sh` installs them, builds the templates first
//! (`appliances/check.sh target/appliances`) and runs the tests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use orbitlab_engine::host::bundle::{self, BundleFile, BundleId};
use orbitlab_engine::host::{HostError, Pct};
use orbitlab_engine::render::{
    self, DnsConfig, DnsSpec, GatewayConfig, GatewaySpec, GatewaySubnet, Ingress, Protocol, Targets,
};

/// The node name the lab's [`Pct`] acts as.
pub const NODE: &str = "lab";
/// Both Sectors' subnet.
pub const SECTOR_CIDR: &str = "172.16.0.0/24";
/// The Backplane gateway (in `<p>-bp`).
pub const BACKPLANE_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The outside host.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The outside host's TCP port that answers with the caller's address.
pub const OUTSIDE_ECHO_PORT: u16 = 8000;
/// The address the outside resolver gives every `*.outside.test` name.
pub const OUTSIDE_NAME_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 80);
/// The port every instance listens on (it answers with its own name).
pub const INSTANCE_PORT: u16 = 80;
/// The port of each Sector's declared ingress rule (→ its first instance).
pub const INGRESS_PORT: u16 = 8080;

/// Where the templates are: `$ORBITLAB_APPLIANCE_TEMPLATES`, else the
/// workspace's `target/appliances` (where `tests/run.sh` builds them).
pub fn templates_dir() -> PathBuf {
    std::env::var_os("ORBITLAB_APPLIANCE_TEMPLATES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/appliances")
                .canonicalize()
                .unwrap_or_else(|_| PathBuf::from("target/appliances"))
        })
}

/// The template of `role` (`gateway` or `dns`) at `version`, which must
/// exist: the lab never falls back to anything else.
pub fn template(role: &str, version: &str) -> PathBuf {
    let path = templates_dir().join(format!("orbitlab-{role}_{version}_amd64.tar.zst"));
    assert!(
        path.is_file(),
        "{} is missing: build the templates first (bash appliances/check.sh target/appliances, as tests/run.sh does), or point ORBITLAB_APPLIANCE_TEMPLATES at them",
        path.display()
    );
    path
}

/// The version the templates carry: the engine's (kept equal to
/// `appliances/VERSION` by `engine/tests/appliance_version.rs`).
pub fn appliance_version() -> String {
    orbitlab_engine::reconcile::plan::APPLIANCE_VERSION.to_owned()
}

/// One of the lab's two Sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sector {
    Blue,
    Green,
}

impl Sector {
    pub const ALL: [Sector; 2] = [Sector::Blue, Sector::Green];

    pub fn name(self) -> &'static str {
        match self {
            Sector::Blue => "blue",
            Sector::Green => "green",
        }
    }
    /// The Sector's VNet bridge on the node.
    pub fn bridge(self) -> &'static str {
        match self {
            Sector::Blue => "olvn1001",
            Sector::Green => "olvn1002",
        }
    }
    /// The gateway's Backplane address.
    pub fn backplane_address(self) -> Ipv4Addr {
        match self {
            Sector::Blue => Ipv4Addr::new(10, 200, 0, 10),
            Sector::Green => Ipv4Addr::new(10, 200, 0, 11),
        }
    }
    pub fn gateway_vmid(self) -> u32 {
        match self {
            Sector::Blue => 101,
            Sector::Green => 201,
        }
    }
    pub fn dns_vmid(self) -> u32 {
        self.gateway_vmid() + 1
    }
    /// The Sector's instances: name and address; the first is the ingress
    /// rule's target.
    pub fn instances(self) -> &'static [(&'static str, Ipv4Addr)] {
        const BLUE: [(&str, Ipv4Addr); 2] = [
            ("web", Ipv4Addr::new(172, 16, 0, 10)),
            ("api", Ipv4Addr::new(172, 16, 0, 12)),
        ];
        const GREEN: [(&str, Ipv4Addr); 2] = [
            ("app", Ipv4Addr::new(172, 16, 0, 10)),
            ("db", Ipv4Addr::new(172, 16, 0, 11)),
        ];
        match self {
            Sector::Blue => &BLUE,
            Sector::Green => &GREEN,
        }
    }
    /// The Sector's DNS domain.
    pub fn domain(self) -> String {
        format!("{}.{}", self.name(), render::DNS_PARENT_DOMAIN)
    }
}

const BACKPLANE_BRIDGE: &str = "olbp";
const ROUTER: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const DNS: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

/// The Sector Gateway's configuration, rendered by the engine's renderer:
/// one subnet, the Backplane address, one ingress rule `http` (tcp 8080 →
/// the first instance's port 80).
pub fn gateway_config(sector: Sector) -> GatewayConfig {
    let (_, target) = sector.instances()[0];
    GatewayConfig::new(GatewaySpec {
        sector: sector.name().parse().unwrap(),
        hostname: format!("olvn{}-router", 1000 + sector.gateway_vmid() / 100)
            .parse()
            .unwrap(),
        subnets: vec![GatewaySubnet {
            cidr: SECTOR_CIDR.parse().unwrap(),
            gateway: ROUTER,
        }],
        backplane_address: format!("{}/16", sector.backplane_address())
            .parse()
            .unwrap(),
        backplane_gateway: BACKPLANE_GATEWAY,
        ingress: vec![Ingress {
            name: "http".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: INGRESS_PORT,
            to: Targets::one(target),
            to_port: INSTANCE_PORT,
        }],
    })
    .expect("the lab's gateway configuration is valid")
}

/// The Sector DNS's configuration: `router`, `dns` and every instance, a
/// Pool named `pool` whose healthy members are every instance, and the
/// outside resolver as the upstream.
pub fn dns_config(sector: Sector) -> DnsConfig {
    let mut records = BTreeMap::new();
    records.insert("router".parse().unwrap(), ROUTER);
    records.insert("dns".parse().unwrap(), DNS);
    for (name, addr) in sector.instances() {
        records.insert(name.parse().unwrap(), *addr);
    }
    let mut groups = BTreeMap::new();
    groups.insert(
        "pool".parse().unwrap(),
        sector.instances().iter().map(|(_, addr)| *addr).collect(),
    );
    DnsConfig::new(DnsSpec {
        sector: sector.name().parse().unwrap(),
        listen: DNS,
        upstreams: vec![OUTSIDE],
        records,
        groups,
    })
    .expect("the lab's DNS configuration is valid")
}

/// A new bundle id for `files` (never reused, as the agent's are).
pub fn bundle_id<F: BundleFile>(files: &[F]) -> BundleId {
    let digest = bundle::manifest(files);
    let digest = format!("{:016x}", fnv(digest.as_bytes()));
    BundleId::new(&digest, std::time::SystemTime::now())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A network interface of a container, as `pct` would write it into
/// `/etc/network/interfaces`.
#[derive(Debug, Clone)]
pub struct Nic {
    pub bridge: &'static str,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The MAC address (Proxmox's `hwaddr`); `None`: one made from the
    /// container's VMID and the interface's index.
    pub hwaddr: Option<String>,
}

impl Nic {
    /// The MAC address interface `index` of container `vmid` gets, under
    /// Proxmox's own prefix `BC:24:11`.
    pub fn default_hwaddr(vmid: u32, index: usize) -> String {
        format!(
            "bc:24:11:{:02x}:{:02x}:{index:02x}",
            (vmid >> 8) & 0xff,
            vmid & 0xff
        )
    }
}

/// A container [`ApplianceLab::bring_up`] started and configured.
#[derive(Debug, Clone)]
pub struct BroughtUp {
    pub vmid: u32,
    /// The bundle it runs.
    pub bundle: BundleId,
    /// From `lxc-start` to systemd `running`.
    pub booted: Duration,
    /// From `lxc-start` to configured and healthy (the probe says so).
    pub healthy: Duration,
}

/// A container of the lab.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub vmid: u32,
    pub hostname: String,
    pub template: PathBuf,
    pub nics: Vec<Nic>,
}

/// A process that answers every TCP connection with one line, inside a
/// namespace: a thread of this process that entered it. Stopped on drop.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter_netns(ns);
                f()
            })
            .join()
            .expect("a thread inside a namespace panicked")
    })
}

fn enter_netns(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("network namespace {ns}: {e}"));
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("cannot enter network namespace {ns}: {e}"));
}

/// Opens a TCP connection from namespace `ns` to `to` and returns the line
/// the other side sends, or why it failed (refused, timed out).
pub fn tcp_ask(ns: &str, to: SocketAddr, timeout: Duration) -> Result<String, String> {
    in_netns(ns, || {
        let mut stream = TcpStream::connect_timeout(&to, timeout).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        Ok(text.trim().to_owned())
    })
}

/// The lab: namespaces, containers, listeners and the resolver.
pub struct ApplianceLab {
    prefix: String,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    containers: Vec<u32>,
    children: Vec<Child>,
    listeners: Vec<Listener>,
    pct: Pct,
    pct_program: PathBuf,
    /// When each container was started, for [`Self::wait_booted`].
    pub started: BTreeMap<u32, Instant>,
}

impl std::fmt::Debug for ApplianceLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplianceLab")
            .field("prefix", &self.prefix)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Runs a command; panics only when it cannot start at all.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"))
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl ApplianceLab {
    /// The namespaces, bridges, instances, the Backplane gateway and the
    /// outside host with its listeners and resolver; no container yet.
    pub fn new() -> Self {
        let prefix = format!("oal{}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("orbitlab-appliance-lab-")
            .tempdir()
            .expect("temporary directory");
        let pct_program = dir.path().join("pct");
        let mut lab = ApplianceLab {
            pct: Pct::with_program(pct_program.display().to_string(), NODE),
            pct_program,
            prefix,
            dir,
            namespaces: Vec::new(),
            containers: Vec::new(),
            children: Vec::new(),
            listeners: Vec::new(),
            started: BTreeMap::new(),
        };
        lab.write_pct();
        let hv = lab.add_netns("hv");
        for bridge in [
            Sector::Blue.bridge(),
            Sector::Green.bridge(),
            BACKPLANE_BRIDGE,
        ] {
            lab.must(&hv, &format!("ip link add {bridge} type bridge"));
            lab.must(&hv, &format!("ip link set {bridge} up"));
        }

        // The Backplane gateway, routing to the outside host.
        let bp = lab.add_netns("bp");
        lab.plug(
            &bp,
            BACKPLANE_BRIDGE,
            "bp0",
            &format!("{BACKPLANE_GATEWAY}/16"),
        );
        let out = lab.add_netns("out");
        lab.must(
            &out,
            &format!("ip link add eth0 type veth peer name out0 netns {bp}"),
        );
        lab.must(&out, &format!("ip addr add {OUTSIDE}/24 dev eth0"));
        lab.must(&out, "ip link set eth0 up");
        lab.must(&out, "ip route add 10.200.0.0/16 via 198.51.100.1");
        lab.must(&bp, "ip addr add 198.51.100.1/24 dev out0");
        lab.must(&bp, "ip link set out0 up");
        lab.must(&bp, "sysctl -qw net.ipv4.ip_forward=1");

        // The outside host: who is calling, and a resolver.
        lab.listen(&out, OUTSIDE, OUTSIDE_ECHO_PORT, "outside");
        lab.start_resolver(&out);

        // The instances: plain namespaces on their Sector's bridge.
        for sector in Sector::ALL {
            for (name, addr) in sector.instances() {
                let ns = lab.add_netns(&format!("{}-{name}", sector.name()));
                lab.plug(
                    &ns,
                    sector.bridge(),
                    &format!("{}{name}", &sector.name()[..1]),
                    &format!("{addr}/24"),
                );
                lab.must(&ns, &format!("ip route add default via {ROUTER}"));
                lab.listen(
                    &ns,
                    *addr,
                    INSTANCE_PORT,
                    &format!("{}-{name}", sector.name()),
                );
            }
        }
        lab
    }

    /// The full name of the lab's namespace `short` (`hv`, `bp`, `out`,
    /// `blue-web`, ...).
    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The namespace of `sector`'s instance `name`.
    pub fn instance_ns(&self, sector: Sector, name: &str) -> String {
        self.ns(&format!("{}-{name}", sector.name()))
    }

    /// The [`Pct`] the agent would use, over the lab's `pct` stand-in.
    pub fn pct(&self) -> &Pct {
        &self.pct
    }

    fn add_netns(&mut self, short: &str) -> String {
        let name = self.ns(short);
        let out = run("ip", &["netns", "add", &name]);
        assert!(out.status.success(), "ip netns add {name}: {}", text(&out));
        self.namespaces.push(name.clone());
        self.must(&name, "ip link set lo up");
        name
    }

    /// Runs `cmd` (split on spaces) inside namespace `ns`; asserts success.
    pub fn must(&self, ns: &str, cmd: &str) {
        let out = self.in_ns(ns, cmd);
        assert!(out.status.success(), "in {ns}: {cmd}\n{}", text(&out));
    }

    /// Runs `cmd` (split on spaces) inside namespace `ns`.
    pub fn in_ns(&self, ns: &str, cmd: &str) -> Output {
        let mut args = vec!["netns", "exec", ns];
        args.extend(cmd.split_whitespace());
        run("ip", &args)
    }

    /// A veth from namespace `ns` (as `eth0` with `address`) to `bridge`
    /// on the node; `port` names the node's end.
    fn plug(&self, ns: &str, bridge: &str, port: &str, address: &str) {
        let hv = self.ns("hv");
        self.must(
            &hv,
            &format!("ip link add {port} type veth peer name eth0 netns {ns}"),
        );
        self.must(&hv, &format!("ip link set {port} master {bridge} up"));
        self.must(ns, &format!("ip addr add {address} dev eth0"));
        self.must(ns, "ip link set eth0 up");
    }

    fn listen(&mut self, ns: &str, addr: Ipv4Addr, port: u16, name: &str) {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, name, flag) = (ns.to_owned(), name.to_owned(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            let listener = TcpListener::bind((addr, port))
                .unwrap_or_else(|e| panic!("listen on {addr}:{port} in {ns}: {e}"));
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let _ = writeln!(stream, "{name} {}", peer.ip());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("listener started");
        self.listeners.push(Listener {
            stop,
            thread: Some(thread),
        });
    }

    /// The outside host's resolver: every `*.outside.test` name is
    /// [`OUTSIDE_NAME_ADDRESS`]; every query is logged with who asked.
    fn start_resolver(&mut self, ns: &str) {
        let log = File::create(self.resolver_log()).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .arg(format!("--listen-address={OUTSIDE}"))
            .arg(format!("--address=/outside.test/{OUTSIDE_NAME_ADDRESS}"))
            .args([
                "--log-queries",
                "--log-facility=-",
                "--user=root",
                "--pid-file=",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dnsmasq (dnsmasq-base) is installed");
        self.children.push(child);
    }

    /// The outside resolver's query log.
    pub fn resolver_log(&self) -> PathBuf {
        self.dir.path().join("upstream-resolver.log")
    }

    /// The `pct` stand-in: `pct exec VMID -- ARGV...` and `pct push VMID
    /// SRC DST [--perms MODE]`, over `lxc-attach` in the node's namespace
    /// (LXC's command socket lives there), with a clean environment as
    /// Proxmox's `pct` gives.
    fn write_pct(&self) {
        let script = format!(
            r#"#!/bin/sh
# pct stand-in of the appliance lab: exec and push over LXC's own tools.
set -eu
lxcpath='{lxcpath}'
ns='{hv}'
path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
verb=$1
vmid=$2
shift 2
attach() {{ ip netns exec "$ns" lxc-attach -n "$vmid" -P "$lxcpath" --clear-env --set-var "$path" -- "$@"; }}
case "$verb" in
exec)
	[ "${{1:-}}" = -- ] && shift
	attach "$@"
	;;
push)
	src=$1
	dst=$2
	perms=644
	[ "${{3:-}}" = --perms ] && perms=$4
	attach sh -c 'cat >"$1" && chmod "$2" "$1"' sh "$dst" "$perms" <"$src"
	;;
*)
	echo "pct stand-in: unsupported command $verb" >&2
	exit 2
	;;
esac
"#,
            lxcpath = self.lxcpath().display(),
            hv = self.ns("hv"),
        );
        std::fs::write(&self.pct_program, script).unwrap();
        std::fs::set_permissions(&self.pct_program, std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }

    fn lxcpath(&self) -> PathBuf {
        self.dir.path().join("lxc")
    }

    /// Runs LXC's `tool` on container `vmid` with `args`, in the node's
    /// namespace (where its command socket lives).
    fn lxc(&self, tool: &str, vmid: u32, args: &[&str]) -> Output {
        let (hv, vmid, lxcpath) = (
            self.ns("hv"),
            vmid.to_string(),
            self.lxcpath().display().to_string(),
        );
        let mut argv = vec!["netns", "exec", &hv, tool, "-n", &vmid, "-P", &lxcpath];
        argv.extend(args);
        run("ip", &argv)
    }

    /// Creates container `spec` as `pct create` would from its template:
    /// the root filesystem unpacked, then the files Proxmox writes
    /// (`/etc/hostname`, `/etc/network/interfaces`), and an LXC config.
    pub fn create(&mut self, spec: &ContainerSpec) {
        let dir = self.lxcpath().join(spec.vmid.to_string());
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let out = run(
            "tar",
            &[
                "--zstd",
                "-xpf",
                spec.template.to_str().unwrap(),
                "-C",
                rootfs.to_str().unwrap(),
                "--numeric-owner",
            ],
        );
        assert!(
            out.status.success(),
            "unpack {}: {}",
            spec.template.display(),
            text(&out)
        );
        std::fs::write(rootfs.join("etc/hostname"), format!("{}\n", spec.hostname)).unwrap();
        let mut interfaces = String::from("auto lo\niface lo inet loopback\n");
        let mut config = format!(
            "lxc.uts.name = {host}\n\
             lxc.rootfs.path = dir:{rootfs}\n\
             lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed\n\
             lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio\n\
             lxc.apparmor.profile = unconfined\n\
             lxc.autodev = 1\n\
             lxc.tty.max = 0\n\
             lxc.pty.max = 16\n\
             lxc.console.path = none\n",
            host = spec.hostname,
            rootfs = rootfs.display(),
        );
        for (i, nic) in spec.nics.iter().enumerate() {
            config.push_str(&format!(
                "lxc.net.{i}.type = veth\n\
                 lxc.net.{i}.link = {bridge}\n\
                 lxc.net.{i}.name = eth{i}\n\
                 lxc.net.{i}.flags = up\n\
                 lxc.net.{i}.veth.pair = veth{vmid}i{i}\n\
                 lxc.net.{i}.hwaddr = {hwaddr}\n",
                bridge = nic.bridge,
                vmid = spec.vmid,
                hwaddr = nic
                    .hwaddr
                    .clone()
                    .unwrap_or_else(|| Nic::default_hwaddr(spec.vmid, i)),
            ));
            interfaces.push_str(&format!(
                "\nauto eth{i}\niface eth{i} inet static\n\taddress {}/{}\n",
                nic.address, nic.prefix
            ));
            if let Some(gw) = nic.gateway {
                interfaces.push_str(&format!("\tgateway {gw}\n"));
            }
        }
        std::fs::write(rootfs.join("etc/network/interfaces"), interfaces).unwrap();
        std::fs::write(dir.join("config"), config).unwrap();
    }

    /// `lxc-start` in the node's namespace (as `pct start` does).
    pub fn start(&mut self, vmid: u32) {
        let dir = self.lxcpath().join(vmid.to_string());
        let (config, log) = (
            dir.join("config").display().to_string(),
            dir.join("lxc.log").display().to_string(),
        );
        self.started.insert(vmid, Instant::now());
        let out = self.lxc(
            "lxc-start",
            vmid,
            &["-f", &config, "-d", "-o", &log, "-l", "WARN"],
        );
        assert!(
            out.status.success(),
            "lxc-start {vmid}: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if !self.containers.contains(&vmid) {
            self.containers.push(vmid);
        }
    }

    /// `lxc-stop --kill` (a hard stop, as `pct stop` does).
    pub fn stop(&mut self, vmid: u32) {
        let out = self.lxc("lxc-stop", vmid, &["-k"]);
        assert!(out.status.success(), "lxc-stop {vmid}: {}", text(&out));
        self.containers.retain(|v| *v != vmid);
    }

    /// Removes a stopped container's files.
    pub fn destroy(&mut self, vmid: u32) {
        let dir = self.lxcpath().join(vmid.to_string());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Runs `argv` in container `vmid` through the `pct` stand-in and
    /// returns its output (whatever the exit status).
    pub fn exec(&self, vmid: u32, argv: &[&str]) -> Output {
        let mut args = vec!["exec".to_owned(), vmid.to_string(), "--".to_owned()];
        args.extend(argv.iter().map(|s| (*s).to_owned()));
        Command::new(&self.pct_program)
            .args(&args)
            .output()
            .expect("the pct stand-in runs")
    }

    /// Waits until systemd in `vmid` has finished booting (`running`; any
    /// other settled state fails, naming the failed units). Returns the
    /// time since [`Self::start`].
    pub fn wait_booted(&self, vmid: u32) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.exec(vmid, &["systemctl", "is-system-running"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            match state.as_str() {
                "running" => return self.started[&vmid].elapsed(),
                "degraded" | "maintenance" | "stopping" => {
                    let failed = self.exec(vmid, &["systemctl", "--failed", "--no-legend"]);
                    panic!("container {vmid} booted {state}: {}", text(&failed));
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "container {vmid} did not boot in 60 s: {state}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The helper's health probe in `vmid`: (healthy, its JSON).
    pub fn health(&self, vmid: u32) -> (bool, String) {
        let out = self.exec(vmid, &["/usr/sbin/orbitlab-appliance", "health"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    }

    /// Pushes `files` into `vmid` as a new bundle through the agent's push
    /// path; returns the bundle's id.
    pub fn push<F: BundleFile>(&self, vmid: u32, files: &[F]) -> Result<BundleId, HostError> {
        let id = bundle_id(files);
        bundle::push(&self.pct, NODE, vmid, &id, files)?;
        Ok(id)
    }

    /// Creates, starts and boots `sector`'s gateway (and DNS server when
    /// `with_dns`) from the templates at `version`, then configures them
    /// through the push path. Returns what each container took and runs.
    pub fn bring_up(&mut self, sector: Sector, version: &str) -> Vec<BroughtUp> {
        let gateway = self.gateway_spec(sector, sector.gateway_vmid(), version);
        let dns = ContainerSpec {
            vmid: sector.dns_vmid(),
            hostname: format!("olvn{}-dns", 1000 + sector.gateway_vmid() / 100),
            template: template("dns", version),
            nics: vec![Nic {
                bridge: sector.bridge(),
                address: DNS,
                prefix: 24,
                gateway: Some(ROUTER),
                hwaddr: None,
            }],
        };
        for spec in [&gateway, &dns] {
            self.create(spec);
            self.start(spec.vmid);
        }
        let mut brought = Vec::new();
        for (vmid, files) in [
            (gateway.vmid, render::gateway_files(&gateway_config(sector))),
            (dns.vmid, render::dns_files(&dns_config(sector))),
        ] {
            let booted = self.wait_booted(vmid);
            let bundle = self
                .push(vmid, &files)
                .unwrap_or_else(|e| panic!("configure container {vmid}: {e}"));
            let (healthy, report) = self.health(vmid);
            assert!(
                healthy,
                "container {vmid} is not healthy after its configuration: {report}"
            );
            brought.push(BroughtUp {
                vmid,
                bundle,
                booted,
                healthy: self.started[&vmid].elapsed(),
            });
        }
        brought
    }

    /// The gateway container of `sector` as VMID `vmid`, from the
    /// template at `version`: eth0 on the Sector's VNet, eth1 on the
    /// Backplane with the default route, as the engine plans it.
    pub fn gateway_spec(&self, sector: Sector, vmid: u32, version: &str) -> ContainerSpec {
        ContainerSpec {
            vmid,
            hostname: format!("olvn{}-router", 1000 + sector.gateway_vmid() / 100),
            template: template("gateway", version),
            nics: vec![
                Nic {
                    bridge: sector.bridge(),
                    address: ROUTER,
                    prefix: 24,
                    gateway: None,
                    hwaddr: None,
                },
                Nic {
                    bridge: BACKPLANE_BRIDGE,
                    address: sector.backplane_address(),
                    prefix: 16,
                    gateway: Some(BACKPLANE_GATEWAY),
                    hwaddr: None,
                },
            ],
        }
    }

    /// Asks the Sector DNS from `ns` for the A records of `name` with
    /// `dig`; the addresses, in order.
    pub fn resolve(&self, ns: &str, name: &str) -> Vec<Ipv4Addr> {
        let out = self.in_ns(ns, &format!("dig +short +time=2 +tries=2 @{DNS} {name} A"));
        assert!(out.status.success(), "dig {name} in {ns}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The processes of container `vmid` (its init's PID namespace).
    pub fn processes(&self, vmid: u32) -> Vec<u32> {
        let out = self.lxc("lxc-info", vmid, &["-pH"]);
        let init: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("lxc-info {vmid}: {}", text(&out)));
        let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
            })
            .collect()
    }

    /// Resident memory of container `vmid`: the sum of its processes'
    /// RSS and of their proportional share (PSS), in KiB.
    pub fn memory_kib(&self, vmid: u32) -> (u64, u64) {
        let field = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.processes(vmid).iter().fold((0, 0), |(rss, pss), pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rollup =
                std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
            (rss + field(&status, "VmRSS:"), pss + field(&rollup, "Pss:"))
        })
    }
}

impl Default for ApplianceLab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ApplianceLab {
    fn drop(&mut self) {
        self.listeners.clear();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for vmid in std::mem::take(&mut self.containers) {
            self.lxc("lxc-stop", vmid, &["-k"]);
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

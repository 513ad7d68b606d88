//! The rendered gateway files doing their job on real traffic, in network
//! namespaces this test creates (needs root, `iproute2`, `frr`, `nftables`
//! and `socat`; CI is root and installs them):
//! - FRR (zebra + staticd, loaded with `vtysh -b` as on the appliance)
//!   configures the gateway from the rendered `frr.conf`: both subnet
//!   addresses on eth0, the Backplane address on eth1, IPv4 forwarding and
//!   the static default route;
//! - the rendered nftables ruleset enforces the design's isolation rules.
//!
//! Topology (all addresses exist only inside the namespaces):
//!
//! ```text
//!  sector host                 gateway                     backplane side
//!  eth0 172.16.0.10/24 ── eth0 172.16.0.1/24        eth0 ── eth0 10.200.0.1/16  (Backplane gateway)
//!  default via .1              172.16.1.1/24                     10.200.0.20/16 (another Sector's gateway)
//!                              eth1 10.200.0.10/16 ─────┘        lo 198.51.100.10 (a host beyond the Backplane)
//!                              default via 10.200.0.1            route 172.16.0.0/16 via 10.200.0.10
//! ```
//!
//! The backplane side deliberately has a route into the Sector: isolation
//! must come from the gateway's ruleset, not from a missing route. Each
//! check is first run without the ruleset (it must succeed, proving the
//! path works) and then with it. Every process the test starts (FRR
//! daemons, listeners) is its child and is killed on drop, before the
//! namespaces are deleted.

mod render_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use orbitlab_engine::render;
use render_support::{gateway, run, text, write};

#[derive(Clone, Copy, Debug)]
enum Ns {
    Sector,
    Gateway,
    Backplane,
}

/// The namespaces and child processes of one test; removed on drop,
/// whether the test passed or panicked.
struct Lab {
    prefix: String,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Self {
        let lab = Self {
            prefix: format!("olt{}", std::process::id()),
            children: Vec::new(),
        };
        for ns in [Ns::Sector, Ns::Gateway, Ns::Backplane] {
            let out = run("ip", &["netns", "add", &lab.name(ns)]);
            assert!(out.status.success(), "ip netns add: {}", text(&out));
        }
        lab
    }

    fn name(&self, ns: Ns) -> String {
        let role = match ns {
            Ns::Sector => "sector",
            Ns::Gateway => "gw",
            Ns::Backplane => "bp",
        };
        format!("{}-{role}", self.prefix)
    }

    /// Runs `cmd` inside `ns` and asserts it succeeds.
    fn must(&self, ns: Ns, cmd: &str) {
        let name = self.name(ns);
        let mut args = vec!["netns", "exec", &name];
        args.extend(cmd.split_whitespace());
        let out = run("ip", &args);
        assert!(out.status.success(), "in {name}: {cmd}\n{}", text(&out));
    }

    /// Starts `args` inside `ns` as a child of this test.
    fn spawn(&mut self, ns: Ns, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name(ns)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", args[0]));
        self.children.push(child);
    }

    /// A TCP listener on `bind:port` in `ns` that answers every connection
    /// with `peer=<source address it sees>` and closes it.
    fn listen(&mut self, ns: Ns, bind: &str, port: u16) {
        let listen = format!("TCP-LISTEN:{port},bind={bind},reuseaddr,fork");
        self.spawn(ns, &["socat", &listen, "SYSTEM:echo peer=$SOCAT_PEERADDR"]);
    }

    /// Output of `cmd` run inside `ns` (which must succeed).
    fn output(&self, ns: Ns, cmd: &str) -> String {
        let name = self.name(ns);
        let mut args = vec!["netns", "exec", &name];
        args.extend(cmd.split_whitespace());
        let out = run("ip", &args);
        assert!(out.status.success(), "in {name}: {cmd}\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Opens a TCP connection from `ns` to `addr:port`; returns what the
    /// listener answered, or the client's error output.
    fn connect(&self, ns: Ns, addr: &str, port: u16) -> Result<String, String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name(ns),
                "socat",
                "-t",
                "2",
                "-T",
                "4",
                "-",
            ])
            .arg(format!("TCP:{addr}:{port},connect-timeout=1"))
            .stdin(Stdio::null())
            .output()
            .expect("cannot start socat (install the socat package)");
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !answer.is_empty() {
            Ok(answer)
        } else {
            Err(text(&out))
        }
    }

    /// Like `connect`, retried for a few seconds (listeners start
    /// asynchronously); used only where the connection must succeed.
    fn connect_ok(&self, ns: Ns, addr: &str, port: u16) -> String {
        let mut last = String::new();
        for _ in 0..20 {
            match self.connect(ns, addr, port) {
                Ok(answer) => return answer,
                Err(e) => last = e,
            }
            sleep(Duration::from_millis(250));
        }
        panic!("{ns:?} could not reach {addr}:{port}:\n{last}");
    }

    fn connect_blocked(&self, ns: Ns, addr: &str, port: u16, why: &str) {
        if let Ok(answer) = self.connect(ns, addr, port) {
            panic!("{why}: {ns:?} reached {addr}:{port} and got {answer:?}");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [Ns::Sector, Ns::Gateway, Ns::Backplane] {
            let _ = run("ip", &["netns", "del", &self.name(ns)]);
        }
    }
}

fn build_topology(lab: &Lab) {
    let (s, b) = (lab.name(Ns::Sector), lab.name(Ns::Backplane));
    // The gateway's interfaces carry the appliance's names, eth0 and eth1.
    lab.must(
        Ns::Gateway,
        &format!("ip link add eth0 type veth peer name eth0 netns {s}"),
    );
    lab.must(
        Ns::Gateway,
        &format!("ip link add eth1 type veth peer name eth0 netns {b}"),
    );
    for cmd in [
        "ip link set lo up",
        "ip link set eth0 up",
        "ip addr add 172.16.0.10/24 dev eth0",
        "ip route add default via 172.16.0.1",
    ] {
        lab.must(Ns::Sector, cmd);
    }
    // The gateway gets only its links; addresses, forwarding and the
    // default route come from the rendered frr.conf.
    for cmd in [
        "ip link set lo up",
        "ip link set eth0 up",
        "ip link set eth1 up",
    ] {
        lab.must(Ns::Gateway, cmd);
    }
    let gw = lab.name(Ns::Gateway);
    let script = "echo 0 > /proc/sys/net/ipv4/ip_forward";
    let out = run("ip", &["netns", "exec", &gw, "sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out));
    for cmd in [
        "ip link set lo up",
        "ip link set eth0 up",
        "ip addr add 10.200.0.1/16 dev eth0",
        "ip addr add 10.200.0.20/16 dev eth0",
        "ip addr add 198.51.100.10/32 dev lo",
        "ip route add 172.16.0.0/16 via 10.200.0.10",
    ] {
        lab.must(Ns::Backplane, cmd);
    }
}

/// Runs zebra and staticd in the gateway namespace (run and config
/// directories under `dir`) and loads the rendered `frr.conf` into them
/// with `vtysh -b`, as FRR's init script does on the appliance.
fn start_frr(lab: &mut Lab, dir: &Path) {
    // The daemons drop privileges to the `frr` user.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_dir = dir.join("run");
    let cfg_dir = dir.join("etc");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::create_dir(&cfg_dir).unwrap();
    let out = run("chown", &["frr:frr", run_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    write(&cfg_dir, "frr.conf", &render::frr_conf(&gateway()));
    write(&cfg_dir, "vtysh.conf", "");
    let empty = write(dir, "empty.conf", "");
    let run_dir = run_dir.to_str().unwrap().to_owned();
    let zserv = format!("{run_dir}/zserv.api");
    for daemon in ["zebra", "staticd"] {
        let program = format!("/usr/lib/frr/{daemon}");
        let pid = format!("{run_dir}/{daemon}.pid");
        let log = format!("file:{run_dir}/{daemon}.log");
        lab.spawn(
            Ns::Gateway,
            &[
                &program,
                "-f",
                &empty,
                "-i",
                &pid,
                "-z",
                &zserv,
                "--vty_socket",
                &run_dir,
                "-A",
                "127.0.0.1",
                "-P",
                "0",
                "--log",
                &log,
            ],
        );
        let socket = Path::new(&run_dir).join(format!("{daemon}.vty"));
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            sleep(Duration::from_millis(100));
        }
        assert!(socket.exists(), "{daemon} did not start (see {log})");
    }
    let cfg = cfg_dir.to_str().unwrap();
    let vtysh = format!("vtysh --vty_socket {run_dir} --config_dir {cfg} -b");
    lab.output(Ns::Gateway, &vtysh);
}

#[test]
fn gateway_files_configure_and_isolate_the_sector_in_real_namespaces() {
    // Declared first so it is removed after the lab has stopped FRR.
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    build_topology(&lab);
    start_frr(&mut lab, dir.path());

    // FRR applied frr.conf: addresses, forwarding and the static default route.
    let mut route = String::new();
    for _ in 0..50 {
        route = lab.output(Ns::Gateway, "ip -4 route show default");
        if !route.is_empty() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    assert!(
        route.contains("via 10.200.0.1 dev eth1 proto static"),
        "{route:?}"
    );
    let addrs = lab.output(Ns::Gateway, "ip -4 -o addr show");
    for expected in [
        "eth0    inet 172.16.0.1/24",
        "eth0    inet 172.16.1.1/24",
        "eth1    inet 10.200.0.10/16",
    ] {
        assert!(addrs.contains(expected), "{expected:?} missing:\n{addrs}");
    }
    let forwarding = lab.output(Ns::Gateway, "cat /proc/sys/net/ipv4/ip_forward");
    assert_eq!(
        forwarding.trim(),
        "1",
        "frr.conf's `ip forwarding` was not applied"
    );

    lab.listen(Ns::Backplane, "198.51.100.10", 7000); // beyond the Backplane
    lab.listen(Ns::Backplane, "0.0.0.0", 7002); // Backplane hosts .1 and .20
    lab.listen(Ns::Sector, "0.0.0.0", 7001); // a Sector service nobody exposed
    lab.listen(Ns::Sector, "0.0.0.0", 80); // the target of ingress "http"
    lab.listen(Ns::Gateway, "10.200.0.10", 7003); // a service on the gateway

    // Without the ruleset every path works: the checks below can fail.
    assert_eq!(
        lab.connect_ok(Ns::Sector, "198.51.100.10", 7000),
        "peer=172.16.0.10"
    );
    assert_eq!(
        lab.connect_ok(Ns::Backplane, "172.16.0.10", 7001),
        "peer=10.200.0.1"
    );
    assert_eq!(
        lab.connect_ok(Ns::Sector, "10.200.0.20", 7002),
        "peer=172.16.0.10"
    );
    assert_eq!(
        lab.connect_ok(Ns::Backplane, "10.200.0.10", 7003),
        "peer=10.200.0.1"
    );
    lab.connect_blocked(
        Ns::Backplane,
        "10.200.0.10",
        8080,
        "no DNAT before the ruleset",
    );

    let ruleset = write(dir.path(), "nftables.conf", &render::nftables(&gateway()));
    lab.must(Ns::Gateway, &format!("nft -f {ruleset}"));

    // The Sector reaches hosts beyond the Backplane, masqueraded as eth1.
    assert_eq!(
        lab.connect_ok(Ns::Sector, "198.51.100.10", 7000),
        "peer=10.200.0.10"
    );
    // The declared ingress works, and the instance sees the real client.
    assert_eq!(
        lab.connect_ok(Ns::Backplane, "10.200.0.10", 8080),
        "peer=10.200.0.1"
    );
    // Nothing else enters the Sector from the Backplane, even with a route.
    lab.connect_blocked(
        Ns::Backplane,
        "172.16.0.10",
        7001,
        "new connection into the Sector",
    );
    lab.connect_blocked(
        Ns::Backplane,
        "172.16.0.10",
        80,
        "ingress target reached directly",
    );
    // The gateway itself offers nothing to the Backplane.
    lab.connect_blocked(Ns::Backplane, "10.200.0.10", 7003, "service on the gateway");
    // The Sector does not reach the Backplane network itself.
    lab.connect_blocked(
        Ns::Sector,
        "10.200.0.20",
        7002,
        "Sector to another Backplane host",
    );
    lab.connect_blocked(
        Ns::Sector,
        "10.200.0.1",
        7002,
        "Sector to the Backplane gateway host",
    );
    // And the allowed path still works after all those attempts.
    assert_eq!(
        lab.connect_ok(Ns::Sector, "198.51.100.10", 7000),
        "peer=10.200.0.10"
    );
}

//! The in-container helper `appliances/helper/orbitlab-appliance`, run from
//! the repository against a temporary root (`ORBITLAB_APPLIANCE_ROOT`), with
//! bundles rendered by the engine's own renderers.
//!
//! Validation uses the real tools (`nft -c`, `vtysh --dryrun`, `dnsmasq
//! --test`: Debian's `nftables`, `frr` and `dnsmasq-base`, which
//! `tests/run.sh` installs). Services are a stand-in `systemctl`, first on
//! `PATH`, that records its calls and can be told to fail one. `nft -f`
//! loads rulesets for real, so every helper run happens inside a fresh
//! network namespace (`unshare -n`): the host's ruleset is never read or
//! changed. Needs root (CI runs as root).

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orbitlab_engine::render::{
    self, DnsConfig, DnsSpec, GatewayConfig, GatewaySpec, GatewaySubnet, Ingress, Protocol,
    RenderedFile, Targets,
};
use serde_json::Value;

/// The stand-in `systemctl`: appends its arguments to `calls`; fails (once)
/// a call listed in `fail`; `is-active` without `--quiet` prints `active`.
const SYSTEMCTL: &str = r#"#!/bin/sh
dir=$(dirname "$0")
printf '%s\n' "$*" >>"$dir/calls"
if [ -f "$dir/fail" ] && grep -qxF -- "$*" "$dir/fail"; then
	grep -vxF -- "$*" "$dir/fail" >"$dir/fail.tmp" || true
	mv "$dir/fail.tmp" "$dir/fail"
	exit 1
fi
if [ "$1" = is-active ] && [ "$2" != --quiet ]; then echo active; fi
exit 0
"#;

#[derive(Clone, Copy)]
enum Role {
    Gateway,
    Dns,
}

/// A temporary appliance root initialised by the helper's `init`, as the
/// template build does, plus the stand-in `systemctl`.
struct Appliance {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../appliances/helper/orbitlab-appliance")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// Sector `web`: 172.16.0.0/24, gateway eth1 at 10.200.0.10/16, one ingress.
fn gateway_config() -> GatewayConfig {
    GatewayConfig::new(GatewaySpec {
        sector: "web".parse().unwrap(),
        hostname: "olvn1001-router".parse().unwrap(),
        subnets: vec![GatewaySubnet {
            cidr: "172.16.0.0/24".parse().unwrap(),
            gateway: "172.16.0.1".parse().unwrap(),
        }],
        backplane_address: "10.200.0.10/16".parse().unwrap(),
        backplane_gateway: "10.200.0.1".parse().unwrap(),
        ingress: vec![Ingress {
            name: "http".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 8080,
            to: Targets::one("172.16.0.10".parse().unwrap()),
            to_port: 80,
        }],
    })
    .unwrap()
}

/// The DNS server of Sector `web` at 172.16.0.2 with the given records.
fn dns_config(records: &[(&str, &str)]) -> DnsConfig {
    let records = records
        .iter()
        .map(|(h, a)| (h.parse().unwrap(), a.parse::<Ipv4Addr>().unwrap()))
        .collect::<BTreeMap<_, _>>();
    DnsConfig::new(DnsSpec {
        sector: "web".parse().unwrap(),
        listen: "172.16.0.2".parse().unwrap(),
        upstreams: vec!["192.0.2.53".parse().unwrap()],
        records,
        groups: Default::default(),
    })
    .unwrap()
}

fn dns_files() -> Vec<RenderedFile> {
    render::dns_files(&dns_config(&[
        ("router", "172.16.0.1"),
        ("web1", "172.16.0.10"),
    ]))
}

fn replace(files: &[RenderedFile], path: &str, from: &str, to: &str) -> Vec<RenderedFile> {
    let mut files = files.to_vec();
    let file = files.iter_mut().find(|f| f.path == path).unwrap();
    let changed = file.content.replace(from, to);
    assert_ne!(changed, file.content, "{from:?} is not in {path}");
    file.content = changed;
    files
}

impl Appliance {
    fn new(role: Role) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let bin = dir.path().join("bin");
        let (name, factory): (&str, &[(&str, &str)]) = match role {
            Role::Gateway => (
                "gateway",
                &[
                    ("etc/frr/daemons", "bgpd=no\n"),
                    ("etc/frr/frr.conf", "frr defaults traditional\n"),
                    ("etc/nftables.conf", "flush ruleset\n"),
                ],
            ),
            Role::Dns => (
                "dns",
                &[
                    ("etc/dnsmasq.d/orbitlab.conf", "no-resolv\n"),
                    ("etc/orbitlab/dns.hosts", "# none yet\n"),
                ],
            ),
        };
        write(&root.join("etc/orbitlab/role"), &format!("{name}\n"));
        write(&root.join("etc/orbitlab/version"), "1.0.0\n");
        for (path, content) in factory {
            write(&root.join(path), content);
        }
        write(&bin.join("systemctl"), SYSTEMCTL);
        fs::set_permissions(bin.join("systemctl"), fs::Permissions::from_mode(0o755)).unwrap();
        let appliance = Self {
            _dir: dir,
            root,
            bin,
        };
        let out = appliance.helper(&["init"]);
        assert!(out.status.success(), "init: {}", text(&out));
        appliance
    }

    /// Runs `script` with `sh` in a fresh network namespace; `$H` is the
    /// helper, the root and the stand-in `systemctl` are set up.
    fn sh(&self, script: &str) -> Output {
        Command::new("unshare")
            .args(["-n", "sh", "-c", script])
            .env("H", helper())
            .env("ORBITLAB_APPLIANCE_ROOT", &self.root)
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display()),
            )
            .output()
            .unwrap()
    }

    fn helper(&self, args: &[&str]) -> Output {
        self.sh(&format!("exec \"$H\" {}", args.join(" ")))
    }

    /// `prepare ID`, then the files and their MANIFEST, as the agent pushes them.
    fn stage(&self, id: &str, files: &[RenderedFile]) {
        let out = self.helper(&["prepare", id]);
        assert!(out.status.success(), "prepare: {}", text(&out));
        let staging = String::from_utf8(out.stdout).unwrap();
        let staging = self.path(staging.trim());
        let mut manifest = String::new();
        for f in files {
            let path = staging.join(f.path.trim_start_matches('/'));
            write(&path, &f.content);
            manifest.push_str(&format!("{:04o} {} {}\n", f.mode, sha256(&path), f.path));
        }
        write(&staging.join("MANIFEST"), &manifest);
    }

    /// A path inside the appliance.
    fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// The bundle a link of /var/lib/orbitlab points to.
    fn link(&self, name: &str) -> String {
        let target = fs::read_link(self.path("/var/lib/orbitlab").join(name)).unwrap();
        target.to_str().unwrap().to_owned()
    }

    /// The stand-in's calls so far, one a line.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.bin.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn fail_once(&self, call: &str) {
        write(&self.bin.join("fail"), &format!("{call}\n"));
    }

    fn bundle_exists(&self, id: &str) -> bool {
        self.path("/var/lib/orbitlab/bundles").join(id).exists()
    }
}

fn assert_refused(out: &Output, reasons: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for reason in reasons {
        assert!(stderr.contains(reason), "{reason:?} missing: {}", text(out));
    }
}

#[test]
fn init_links_every_managed_file_into_the_factory_bundle() {
    let gw = Appliance::new(Role::Gateway);
    assert_eq!(gw.link("current"), "bundles/factory");
    for path in [
        render::NFTABLES_PATH,
        render::FRR_CONF_PATH,
        render::FRR_DAEMONS_PATH,
    ] {
        let link = fs::read_link(gw.path(path)).unwrap();
        assert!(link.is_relative(), "{path} -> {}", link.display());
        assert!(
            link.to_str()
                .unwrap()
                .ends_with(&format!("var/lib/orbitlab/current{path}")),
            "{path} -> {}",
            link.display()
        );
    }
    // The link resolves under the temporary root, to the factory content.
    assert_eq!(
        fs::read_to_string(gw.path(render::NFTABLES_PATH)).unwrap(),
        "flush ruleset\n"
    );
    let out = gw.helper(&["init"]);
    assert_refused(&out, &["already initialised"]);
}

#[test]
fn a_good_gateway_bundle_is_switched_to_loaded_and_frr_restarted() {
    let gw = Appliance::new(Role::Gateway);
    let files = render::gateway_files(&gateway_config());
    gw.stage("a1", &files);
    // Apply, then list what the kernel of this namespace holds: the ruleset
    // was really loaded by `nft -f`.
    let out = gw.sh("\"$H\" apply a1 && nft list tables");
    assert!(out.status.success(), "{}", text(&out));
    let tables = String::from_utf8_lossy(&out.stdout);
    assert!(
        tables.contains("table inet orbitlab_filter") && tables.contains("table ip orbitlab_nat"),
        "{}",
        text(&out)
    );
    assert_eq!(
        gw.calls(),
        ["restart frr.service", "is-active --quiet frr.service"]
    );
    assert_eq!(gw.link("current"), "bundles/a1");
    assert_eq!(gw.link("previous"), "bundles/factory");
    for f in &files {
        let live = gw.path(f.path);
        assert_eq!(fs::read_to_string(&live).unwrap(), f.content, "{}", f.path);
        let mode = fs::metadata(&live).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, f.mode, "{}", f.path);
    }
    assert!(
        !gw.path("/var/lib/orbitlab/staging/a1").exists(),
        "the staged bundle was moved in"
    );
}

#[test]
fn a_broken_ruleset_is_refused_with_nfts_reason_and_changes_nothing() {
    let gw = Appliance::new(Role::Gateway);
    let good = render::gateway_files(&gateway_config());
    gw.stage("a1", &good);
    let out = gw.helper(&["apply", "a1"]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = gw.calls();

    let broken = replace(&good, render::NFTABLES_PATH, "masquerade", "masqerade");
    gw.stage("a2", &broken);
    let out = gw.helper(&["apply", "a2"]);
    // nft's own diagnosis reaches the caller.
    assert_refused(&out, &["bundle a2 refused: nft -c", "Error:", "masqerade"]);
    assert_eq!(gw.calls(), calls, "nothing was reloaded");
    assert_eq!(gw.link("current"), "bundles/a1");
    assert_eq!(gw.link("previous"), "bundles/factory");
    assert!(!gw.bundle_exists("a2"));
    let live = fs::read_to_string(gw.path(render::NFTABLES_PATH)).unwrap();
    assert!(live.contains("masquerade") && !live.contains("masqerade"));
}

#[test]
fn a_broken_frr_conf_is_refused_by_vtysh() {
    let gw = Appliance::new(Role::Gateway);
    let broken = replace(
        &render::gateway_files(&gateway_config()),
        render::FRR_CONF_PATH,
        "ip route 0.0.0.0/0",
        "ip route 0.0.0.0/33",
    );
    gw.stage("a1", &broken);
    let out = gw.helper(&["apply", "a1"]);
    assert_refused(&out, &["bundle a1 refused: FRR (vtysh --dryrun)"]);
    assert_eq!(gw.calls(), Vec::<String>::new());
    assert_eq!(gw.link("current"), "bundles/factory");
}

#[test]
fn a_broken_dnsmasq_config_is_refused_and_the_previous_bundle_kept() {
    let dns = Appliance::new(Role::Dns);
    let good = dns_files();
    dns.stage("d1", &good);
    let out = dns.helper(&["apply", "d1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        dns.calls(),
        [
            "restart dnsmasq.service",
            "is-active --quiet dnsmasq.service"
        ]
    );

    let broken = replace(
        &good,
        render::DNSMASQ_CONF_PATH,
        "listen-address=",
        "listen-adress=",
    );
    dns.stage("d2", &broken);
    let out = dns.helper(&["apply", "d2"]);
    assert_refused(
        &out,
        &["bundle d2 refused: dnsmasq --test", "bad option at line"],
    );
    assert_eq!(dns.calls().len(), 2, "nothing was reloaded");
    assert_eq!(dns.link("current"), "bundles/d1");
    assert_eq!(dns.link("previous"), "bundles/factory");
    assert!(!dns.bundle_exists("d2"));
}

#[test]
fn a_records_change_reloads_dnsmasq_and_keeps_one_previous_bundle() {
    let dns = Appliance::new(Role::Dns);
    dns.stage("d1", &dns_files());
    assert!(dns.helper(&["apply", "d1"]).status.success());
    let more = render::dns_files(&dns_config(&[
        ("router", "172.16.0.1"),
        ("web1", "172.16.0.10"),
        ("web2", "172.16.0.11"),
    ]));
    dns.stage("d2", &more);
    let out = dns.helper(&["apply", "d2"]);
    assert!(out.status.success(), "{}", text(&out));
    // Only the records changed: a SIGHUP (systemctl reload) re-reads them.
    assert_eq!(
        dns.calls()[2..],
        [
            "reload dnsmasq.service",
            "is-active --quiet dnsmasq.service"
        ]
    );
    assert_eq!(dns.link("current"), "bundles/d2");
    assert_eq!(dns.link("previous"), "bundles/d1");
    assert!(!dns.bundle_exists("factory"), "older bundles are removed");
    let hosts = fs::read_to_string(dns.path(render::DNS_HOSTS_PATH)).unwrap();
    assert!(hosts.contains("172.16.0.11 web2.web.orbitlab.internal"));
}

#[test]
fn a_failed_restart_rolls_back_to_the_previous_bundle() {
    let dns = Appliance::new(Role::Dns);
    dns.stage("d1", &dns_files());
    assert!(dns.helper(&["apply", "d1"]).status.success());
    let changed = replace(
        &dns_files(),
        render::DNSMASQ_CONF_PATH,
        "local-ttl=30",
        "local-ttl=60",
    );
    dns.stage("d2", &changed);
    dns.fail_once("restart dnsmasq.service");
    let out = dns.helper(&["apply", "d2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to load at 'systemctl restart dnsmasq.service'")
            && stderr.contains("rolling back to bundle d1")
            && stderr.contains("bundle d1 is active again"),
        "{}",
        text(&out)
    );
    assert_eq!(
        dns.calls()[2..],
        [
            "restart dnsmasq.service",
            "restart dnsmasq.service",
            "is-active --quiet dnsmasq.service"
        ]
    );
    assert_eq!(dns.link("current"), "bundles/d1");
    assert_eq!(dns.link("previous"), "bundles/factory");
    assert!(!dns.bundle_exists("d2"));
    let conf = fs::read_to_string(dns.path(render::DNSMASQ_CONF_PATH)).unwrap();
    assert!(conf.contains("local-ttl=30"), "{conf}");
}

#[test]
fn incomplete_or_foreign_bundles_are_refused() {
    let gw = Appliance::new(Role::Gateway);
    let files = render::gateway_files(&gateway_config());
    let staging = gw.path("/var/lib/orbitlab/staging");

    // A file changed after its MANIFEST line was written (a torn push).
    gw.stage("t1", &files);
    write(&staging.join("t1/etc/nftables.conf"), "flush ruleset\n");
    assert_refused(
        &gw.helper(&["apply", "t1"]),
        &["/etc/nftables.conf does not match its MANIFEST sha256"],
    );
    // No MANIFEST yet.
    gw.stage("t2", &files);
    fs::remove_file(staging.join("t2/MANIFEST")).unwrap();
    assert_refused(&gw.helper(&["apply", "t2"]), &["has no MANIFEST"]);
    // A file the gateway does not take.
    let mut foreign = files.clone();
    foreign.push(RenderedFile {
        path: "/etc/passwd",
        mode: 0o644,
        content: "root::0:0::/root:/bin/sh\n".into(),
    });
    gw.stage("t3", &foreign);
    assert_refused(
        &gw.helper(&["apply", "t3"]),
        &["MANIFEST names /etc/passwd, which a gateway appliance does not take"],
    );
    // Part of the configuration only.
    gw.stage("t4", &files[..2]);
    assert_refused(
        &gw.helper(&["apply", "t4"]),
        &["bundle t4 lacks /etc/nftables.conf"],
    );
    // Ids are names, never paths.
    assert_refused(&gw.helper(&["apply", "../x"]), &["invalid bundle id"]);

    assert_eq!(gw.calls(), Vec::<String>::new());
    assert_eq!(gw.link("current"), "bundles/factory");
}

#[test]
fn health_reports_tables_routes_and_service_as_json() {
    let gw = Appliance::new(Role::Gateway);
    gw.stage("a1", &render::gateway_files(&gateway_config()));
    // One namespace: apply, probe (no Backplane route yet), add the
    // Backplane link and the default route FRR would install, probe again.
    let out = gw.sh("set -e
         \"$H\" apply a1 2>/dev/null
         if \"$H\" health; then echo UNEXPECTED-HEALTHY; fi
         ip link add eth1 type veth peer name bp0
         ip link set eth1 up
         ip link set bp0 up
         ip addr add 10.200.0.10/16 dev eth1
         ip route add default via 10.200.0.1
         \"$H\" health");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let probes: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(probes.len(), 2, "{}", text(&out));
    let (before, after) = (&probes[0], &probes[1]);
    assert_eq!(before["healthy"], false);
    assert_eq!(before["default_route"], false);
    assert_eq!(before["routes"]["0.0.0.0/0"], false);
    assert!(
        before["problems"]
            .as_array()
            .unwrap()
            .contains(&Value::from("no default route")),
        "{before}"
    );
    assert_eq!(after["healthy"], true, "{after}");
    assert_eq!(after["role"], "gateway");
    assert_eq!(after["version"], "1.0.0");
    assert_eq!(after["bundle"], "a1");
    assert_eq!(after["services"]["frr.service"], "active");
    assert_eq!(after["tables"]["inet orbitlab_filter"], true);
    assert_eq!(after["tables"]["ip orbitlab_nat"], true);
    assert_eq!(after["routes"]["0.0.0.0/0"], true);
    assert_eq!(after["problems"], Value::Array(Vec::new()));
}

#[test]
fn health_of_a_dns_appliance_needs_its_listen_address() {
    let dns = Appliance::new(Role::Dns);
    dns.stage("d1", &dns_files());
    assert!(dns.helper(&["apply", "d1"]).status.success());
    let out = dns.sh("set -e
         ip link add eth0 type veth peer name s0
         ip link set eth0 up
         ip addr add 172.16.0.2/24 dev eth0
         ip route add default via 172.16.0.1
         \"$H\" health");
    assert!(out.status.success(), "{}", text(&out));
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(probe["healthy"], true, "{probe}");
    assert_eq!(probe["listen"]["172.16.0.2"], true);
    // Without the address, unhealthy, and the exit status says so.
    let out = dns.helper(&["health"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(probe["healthy"], false);
    assert_eq!(probe["listen"]["172.16.0.2"], false);
}

/// A one-shot HTTP server for `socat ... EXEC:`: reads the request line,
/// answers with the status given as its argument.
const HTTP_SERVER: &str = "#!/bin/sh\nread -r line\nprintf 'HTTP/1.0 %s X\\r\\n\\r\\n' \"$1\"\n";

#[test]
fn probe_checks_every_target_at_once_and_answers_in_order() {
    let gateway = Appliance::new(Role::Gateway);
    write(&gateway.bin.join("http-server"), HTTP_SERVER);
    fs::set_permissions(
        gateway.bin.join("http-server"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // In the test's own network namespace: loopback servers answering 200,
    // 503, and one that accepts but never answers.
    let out = gateway.sh(r#"ip link set lo up
socat TCP-LISTEN:8080,bind=127.0.0.1,reuseaddr,fork EXEC:"http-server 200" >/dev/null 2>&1 &
a=$!
socat TCP-LISTEN:8081,bind=127.0.0.1,reuseaddr,fork EXEC:"http-server 503" >/dev/null 2>&1 &
b=$!
socat TCP-LISTEN:8082,bind=127.0.0.1,reuseaddr,fork EXEC:"sleep 5" >/dev/null 2>&1 &
c=$!
sleep 0.5
"$H" probe 1 tcp:127.0.0.1:8080 http:127.0.0.1:8080:200:/healthz http:127.0.0.1:8081:200:/ \
  tcp:127.0.0.1:8099 http:127.0.0.1:8082:200:/ tcp:10.9.9.9:80 'tcp:127.0.0.1;reboot:1' \
  'http:127.0.0.1:8080:200:$(reboot)'
status=$?
kill "$a" "$b" "$c"
exit $status"#);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "ok tcp:127.0.0.1:8080",
            "ok http:127.0.0.1:8080:200:/healthz",
            "fail http:127.0.0.1:8081:200:/ HTTP 503 (expected 200)",
            "fail tcp:127.0.0.1:8099 Connection refused",
            "fail http:127.0.0.1:8082:200:/ no answer within 1s",
            "fail tcp:10.9.9.9:80 Network is unreachable",
            "fail tcp:127.0.0.1;reboot:1 not an IPv4 address",
            "fail http:127.0.0.1:8080:200:$(reboot) not an HTTP path",
        ]
    );
}

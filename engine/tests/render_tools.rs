//! The rendered files checked by the real tools (`nft`, FRR's `vtysh`,
//! `dnsmasq`), each with a negative control proving the check can fail.
//!
//! Needs root and the Debian packages `nftables`, `frr`, `dnsmasq-base`
//! (CI installs them). `nft` runs inside a fresh network namespace
//! (`unshare -n`), so the host's ruleset is never read or changed.

mod render_support;

use orbitlab_engine::render;
use render_support::{dns, gateway, run, text, write};

/// `nft -c -f FILE` in a private network namespace.
fn nft_check(path: &str) -> std::process::Output {
    run("unshare", &["-n", "nft", "-c", "-f", path])
}

#[test]
fn nftables_ruleset_passes_nft_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nftables.conf", &render::nftables(&gateway()));
    let out = nft_check(&path);
    assert!(
        out.status.success(),
        "nft -c rejected the ruleset:\n{}",
        text(&out)
    );
}

#[test]
fn nftables_ruleset_loads_and_lists_back_in_a_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nftables.conf", &render::nftables(&gateway()));
    let script = format!("nft -f {path} && nft list ruleset");
    let out = run("unshare", &["-n", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "table inet orbitlab_filter",
        "table ip orbitlab_nat",
        "policy drop",
        "dnat to 172.16.0.10:80",
        "masquerade",
        "comment \"ingress dns-public\"",
    ] {
        assert!(
            listed.contains(expected),
            "{expected:?} missing from:\n{listed}"
        );
    }
}

#[test]
fn nft_check_rejects_a_broken_ruleset() {
    let dir = tempfile::tempdir().unwrap();
    let broken = render::nftables(&gateway()).replace("masquerade", "masqerade");
    let path = write(dir.path(), "broken.conf", &broken);
    let out = nft_check(&path);
    assert!(
        !out.status.success(),
        "nft -c accepted a broken ruleset:\n{}",
        text(&out)
    );
}

/// FRR's own check: `vtysh --dryrun -f FILE` parses every line with the
/// command tree of all daemons and exits non-zero on a line it rejects.
fn frr_check(path: &str) -> std::process::Output {
    run("vtysh", &["--dryrun", "-f", path])
}

#[test]
fn frr_conf_passes_vtysh_dryrun() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "frr.conf", &render::frr_conf(&gateway()));
    let out = frr_check(&path);
    assert!(
        out.status.success(),
        "vtysh rejected frr.conf:\n{}",
        text(&out)
    );
    assert!(
        !text(&out).contains('%'),
        "vtysh complained:\n{}",
        text(&out)
    );
}

#[test]
fn vtysh_dryrun_rejects_broken_frr_confs() {
    let good = render::frr_conf(&gateway());
    let dir = tempfile::tempdir().unwrap();
    for (what, broken) in [
        (
            "bad prefix",
            good.replace("ip route 0.0.0.0/0", "ip route 0.0.0.0/33"),
        ),
        (
            "name with a space",
            good.replace("hostname olvn1001-router", "hostname olvn1001 router"),
        ),
        (
            "unknown command",
            good.replace("ip forwarding", "ip forwarding-everything"),
        ),
    ] {
        assert_ne!(broken, good, "{what}: the edit must change the file");
        let path = write(dir.path(), "broken.conf", &broken);
        let out = frr_check(&path);
        assert!(
            !out.status.success(),
            "{what}: vtysh accepted it:\n{}",
            text(&out)
        );
    }
}

#[test]
fn frr_daemons_file_enables_no_dynamic_routing_daemon() {
    let daemons = render::frr_daemons();
    // FRR's init script sources the file as shell: it must parse as such.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "daemons", &daemons);
    let script = format!(". {path} && echo \"$bgpd $ospfd $staticd_options\"");
    let out = run("sh", &["-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no no -A 127.0.0.1"
    );
    for line in daemons
        .lines()
        .filter(|l| l.ends_with("d=yes") || l.ends_with("d=no"))
    {
        assert!(line.ends_with("=no"), "{line}");
    }
}

/// `dnsmasq --test --conf-file=FILE`.
fn dnsmasq_check(path: &str) -> std::process::Output {
    run("dnsmasq", &["--test", &format!("--conf-file={path}")])
}

#[test]
fn dnsmasq_conf_passes_dnsmasq_test() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "orbitlab.conf", &render::dnsmasq_conf(&dns()));
    let out = dnsmasq_check(&path);
    assert!(
        out.status.success(),
        "dnsmasq rejected the config:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("syntax check OK"), "{}", text(&out));
}

#[test]
fn dnsmasq_test_rejects_a_broken_conf() {
    let dir = tempfile::tempdir().unwrap();
    let broken = render::dnsmasq_conf(&dns()).replace("listen-address=", "listen-adress=");
    let path = write(dir.path(), "broken.conf", &broken);
    let out = dnsmasq_check(&path);
    assert!(
        !out.status.success(),
        "dnsmasq accepted a broken config:\n{}",
        text(&out)
    );
}

/// The real server answers `<host>.web.orbitlab.internal` from the rendered
/// records file. Runs in private network and mount namespaces: dnsmasq
/// listens on 172.16.0.2 on that namespace's loopback, and `getent` resolves
/// through a resolv.conf bind-mounted only inside the mount namespace.
#[test]
fn dnsmasq_answers_sector_names_from_the_rendered_records() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = write(d, "orbitlab.conf", &render::dnsmasq_conf(&dns()));
    let hosts = write(d, "dns.hosts", &render::dns_hosts(&dns()));
    let resolv = write(
        d,
        "resolv.conf",
        "nameserver 172.16.0.2\noptions timeout:1 attempts:2\n",
    );
    let pid = d.join("dnsmasq.pid");
    let pid = pid.to_str().unwrap();
    // The rendered config points addn-hosts at the appliance's path; here
    // the records are passed from the temporary directory instead (both are
    // read; the appliance path does not exist on the test machine).
    let script = format!(
        "set -e
         ip link set lo up
         ip addr add 172.16.0.2/32 dev lo
         dnsmasq --conf-file={conf} --addn-hosts={hosts} --pid-file={pid} --user=root --group=root
         trap 'kill $(cat {pid})' EXIT
         mount --bind {resolv} /etc/resolv.conf
         for host in web1 db1 gateway; do getent ahostsv4 $host.web.orbitlab.internal | head -n1; done
         if getent ahostsv4 nosuch.web.orbitlab.internal; then echo UNEXPECTED; fi"
    );
    let out = run("unshare", &["-n", "-m", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        answers,
        ["172.16.0.10", "172.16.1.20", "172.16.0.1"],
        "{}",
        text(&out)
    );
}

/// The real server forwards names outside the Sector to the rendered
/// upstreams, and nothing else: a name under `orbitlab.internal` (of this
/// Sector or another) is never asked upstream, and `/etc/resolv.conf` is
/// not read. Runs in private network and mount namespaces: a stand-in
/// upstream (another dnsmasq on 192.0.2.53 and 198.51.100.53, the rendered
/// upstreams) answers `www.example.com` and would answer any
/// `orbitlab.internal` name with 203.0.113.66; a trap resolver on
/// 192.0.2.99, named in the `/etc/resolv.conf` the Sector DNS starts
/// with, answers everything with 203.0.113.99. Both log every query.
#[test]
fn dnsmasq_forwards_only_outside_names_and_only_to_its_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = write(d, "orbitlab.conf", &render::dnsmasq_conf(&dns()));
    let hosts = write(d, "dns.hosts", &render::dns_hosts(&dns()));
    let trap_resolv = write(d, "trap-resolv.conf", "nameserver 192.0.2.99\n");
    let client_resolv = write(
        d,
        "resolv.conf",
        "nameserver 172.16.0.2\noptions timeout:1 attempts:2\n",
    );
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
    let (up_log, trap_log) = (p("upstream.log"), p("trap.log"));
    let pids = [p("sector.pid"), p("upstream.pid"), p("trap.pid")];
    let [sector_pid, up_pid, trap_pid] = &pids;
    let script = format!(
        "set -e
         ip link set lo up
         for a in 172.16.0.2 192.0.2.53 198.51.100.53 192.0.2.99; do ip addr add $a/32 dev lo; done
         trap 'for f in {sector_pid} {up_pid} {trap_pid}; do [ -f $f ] && kill $(cat $f); done' EXIT
         dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
           --listen-address=192.0.2.53 --listen-address=198.51.100.53 \
           --address=/example.com/203.0.113.7 --address=/orbitlab.internal/203.0.113.66 \
           --log-queries --log-facility={up_log} --pid-file={up_pid} --user=root --group=root
         dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
           --listen-address=192.0.2.99 --address=/#/203.0.113.99 \
           --log-queries --log-facility={trap_log} --pid-file={trap_pid} --user=root --group=root
         mount --bind {trap_resolv} /etc/resolv.conf
         dnsmasq --conf-file={conf} --addn-hosts={hosts} --pid-file={sector_pid} --user=root --group=root
         mount --bind {client_resolv} /etc/resolv.conf
         for name in www.example.com web1.web.orbitlab.internal nosuch.web.orbitlab.internal app.other.orbitlab.internal; do
           echo \"$name $(getent ahostsv4 $name | head -n1 | cut -d' ' -f1)\"
         done"
    );
    let out = run("unshare", &["-n", "-m", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    assert_eq!(
        answers,
        [
            "www.example.com 203.0.113.7",
            "web1.web.orbitlab.internal 172.16.0.10",
            "nosuch.web.orbitlab.internal",
            "app.other.orbitlab.internal",
        ],
        "{}",
        text(&out)
    );
    let upstream = std::fs::read_to_string(&up_log).unwrap();
    assert!(upstream.contains("www.example.com"), "{upstream}");
    assert!(!upstream.contains("orbitlab.internal"), "{upstream}");
    let trap = std::fs::read_to_string(&trap_log).unwrap_or_default();
    assert!(!trap.contains("query["), "{trap}");
}

#[test]
fn an_ingress_to_several_targets_spreads_connections_and_loads() {
    let mut spec = render_support::gateway_spec();
    spec.ingress[0].to = orbitlab_engine::render::Targets::new(
        ["172.16.0.12", "172.16.0.10", "172.16.0.11"].map(|a| a.parse().unwrap()),
    )
    .unwrap();
    let config = orbitlab_engine::render::GatewayConfig::new(spec).expect("valid");
    let text = render::nftables(&config);
    assert!(
        text.contains(
            "dnat to numgen inc mod 3 map { 0 : 172.16.0.10, 1 : 172.16.0.11, 2 : 172.16.0.12 }:80"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ct status dnat ip daddr { 172.16.0.10, 172.16.0.11, 172.16.0.12 } tcp dport 80 accept"
        ),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nftables.conf", &text);
    let script = format!("nft -f {path} && nft list ruleset");
    let out = run("unshare", &["-n", "sh", "-c", &script]);
    assert!(
        out.status.success(),
        "nft refused the ruleset:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("numgen inc mod 3"), "{listed}");
}

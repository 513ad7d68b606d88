//! Every API call the client can make and every parameter it can send,
//! so that a conformance test can hold them against the official schema
//! (see `sim/tests/pve_schema_conformance.rs`). A unit test below keeps
//! this list in step with the typed request structs.

/// One call the client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCall {
    /// HTTP method.
    pub method: &'static str,
    /// Path template as the schema writes it.
    pub path: &'static str,
    /// Parameters sent on every supported version (`net[n]` for families).
    pub params: &'static [&'static str],
    /// Parameters sent only on 9.x.
    pub params_9: &'static [&'static str],
    /// Parameters sent only on 8.x (such as an HA resource's `group`,
    /// which 9.x refuses once groups became HA rules).
    pub params_8: &'static [&'static str],
    /// The call exists only on 9.x.
    pub only_9: bool,
}

const fn c(method: &'static str, path: &'static str, params: &'static [&'static str]) -> KnownCall {
    KnownCall {
        method,
        path,
        params,
        params_9: &[],
        params_8: &[],
        only_9: false,
    }
}

const fn sdn(
    method: &'static str,
    path: &'static str,
    params: &'static [&'static str],
) -> KnownCall {
    KnownCall {
        method,
        path,
        params,
        params_9: &["lock-token"],
        params_8: &[],
        only_9: false,
    }
}

const fn v9(
    method: &'static str,
    path: &'static str,
    params: &'static [&'static str],
) -> KnownCall {
    KnownCall {
        method,
        path,
        params,
        params_9: &[],
        params_8: &[],
        only_9: true,
    }
}

const CONTROLLER: &[&str] = &["asn", "peers", "ebgp", "ebgp-multihop", "loopback", "node"];
const ZONE: &[&str] = &[
    "peers",
    "mtu",
    "controller",
    "vrf-vxlan",
    "exitnodes",
    "exitnodes-primary",
    "exitnodes-local-routing",
    "advertise-subnets",
    "disable-arp-nd-suppression",
    "rt-import",
    "mac",
    "nodes",
    "ipam",
    "bridge",
    "tag",
    "vxlan-port",
];
const VNET: &[&str] = &["zone", "tag", "alias", "vlanaware", "isolate-ports"];
const SUBNET: &[&str] = &["gateway", "snat", "dnszoneprefix", "dhcp-dns-server"];

macro_rules! with {
    ($base:expr; $($extra:literal),*) => {{
        const N: usize = $base.len() + [$($extra),*].len();
        const OUT: [&str; N] = {
            let mut out = [""; N];
            let mut i = 0;
            while i < $base.len() {
                out[i] = $base[i];
                i += 1;
            }
            let extra: &[&str] = &[$($extra),*];
            let mut j = 0;
            while j < extra.len() {
                out[i + j] = extra[j];
                j += 1;
            }
            out
        };
        &OUT
    }};
}

/// The list.
pub const KNOWN_CALLS: &[KnownCall] = &[
    c("POST", "/access/ticket", &["username", "password"]),
    // `orbitlab init` with an administrator's login (see `setup_only`).
    c("GET", "/access/roles", &[]),
    c("GET", "/access/roles/{roleid}", &[]),
    c("POST", "/access/roles", &["roleid", "privs"]),
    c("PUT", "/access/roles/{roleid}", &["privs", "append"]),
    c("GET", "/access/users", &["full"]),
    c("POST", "/access/users", &["userid", "comment"]),
    c("GET", "/access/acl", &[]),
    c(
        "PUT",
        "/access/acl",
        &["path", "roles", "users", "tokens", "propagate", "delete"],
    ),
    c(
        "POST",
        "/access/users/{userid}/token/{tokenid}",
        &["privsep", "comment"],
    ),
    c("DELETE", "/access/users/{userid}/token/{tokenid}", &[]),
    c("GET", "/version", &[]),
    c("GET", "/cluster/status", &[]),
    c("GET", "/nodes", &[]),
    c("GET", "/nodes/{node}/status", &[]),
    c("GET", "/nodes/{node}/network", &[]),
    // The Sector DNS's upstream resolvers when the Cluster manifest has none.
    c("GET", "/nodes/{node}/dns", &[]),
    c("GET", "/cluster/nextid", &["vmid"]),
    c("GET", "/cluster/sdn/controllers", &["pending", "running"]),
    c("GET", "/cluster/sdn/zones", &["pending", "running"]),
    c("GET", "/cluster/sdn/vnets", &["pending", "running"]),
    c(
        "GET",
        "/cluster/sdn/vnets/{vnet}/subnets",
        &["pending", "running"],
    ),
    sdn(
        "POST",
        "/cluster/sdn/controllers",
        with!(CONTROLLER; "controller", "type"),
    ),
    sdn(
        "PUT",
        "/cluster/sdn/controllers/{controller}",
        with!(CONTROLLER; "delete"),
    ),
    sdn("DELETE", "/cluster/sdn/controllers/{controller}", &[]),
    sdn("POST", "/cluster/sdn/zones", with!(ZONE; "zone", "type")),
    sdn("PUT", "/cluster/sdn/zones/{zone}", with!(ZONE; "delete")),
    sdn("DELETE", "/cluster/sdn/zones/{zone}", &[]),
    sdn("POST", "/cluster/sdn/vnets", with!(VNET; "vnet", "type")),
    sdn("PUT", "/cluster/sdn/vnets/{vnet}", with!(VNET; "delete")),
    sdn("DELETE", "/cluster/sdn/vnets/{vnet}", &[]),
    sdn(
        "POST",
        "/cluster/sdn/vnets/{vnet}/subnets",
        with!(SUBNET; "subnet", "type"),
    ),
    sdn(
        "PUT",
        "/cluster/sdn/vnets/{vnet}/subnets/{subnet}",
        with!(SUBNET; "delete"),
    ),
    sdn("DELETE", "/cluster/sdn/vnets/{vnet}/subnets/{subnet}", &[]),
    KnownCall {
        method: "PUT",
        path: "/cluster/sdn",
        params: &[],
        params_9: &["lock-token", "release-lock"],
        params_8: &[],
        only_9: false,
    },
    v9("POST", "/cluster/sdn/lock", &["allow-pending"]),
    v9("DELETE", "/cluster/sdn/lock", &["lock-token", "force"]),
    v9("POST", "/cluster/sdn/rollback", &["lock-token"]),
    c("GET", "/nodes/{node}/lxc", &[]),
    c(
        "POST",
        "/nodes/{node}/lxc",
        &[
            "vmid",
            "ostemplate",
            "hostname",
            "memory",
            "swap",
            "cores",
            "rootfs",
            "storage",
            "tags",
            "description",
            "unprivileged",
            "features",
            "nameserver",
            "searchdomain",
            "onboot",
            "start",
            "ssh-public-keys",
            "password",
            "net[n]",
        ],
    ),
    c("GET", "/nodes/{node}/lxc/{vmid}/config", &[]),
    // Any config key may be set: the keys are checked by the simulator's rules.
    c(
        "PUT",
        "/nodes/{node}/lxc/{vmid}/config",
        &["delete", "digest"],
    ),
    c("PUT", "/nodes/{node}/lxc/{vmid}/resize", &["disk", "size"]),
    c("GET", "/nodes/{node}/lxc/{vmid}/status/current", &[]),
    c("POST", "/nodes/{node}/lxc/{vmid}/status/start", &[]),
    c("POST", "/nodes/{node}/lxc/{vmid}/status/stop", &[]),
    c(
        "POST",
        "/nodes/{node}/lxc/{vmid}/status/shutdown",
        &["timeout", "forceStop"],
    ),
    c("DELETE", "/nodes/{node}/lxc/{vmid}", &["purge"]),
    c("GET", "/nodes/{node}/tasks/{upid}/status", &[]),
    c("GET", "/cluster/ha/resources", &[]),
    KnownCall {
        method: "POST",
        path: "/cluster/ha/resources",
        params: &["sid", "state", "comment"],
        params_9: &[],
        params_8: &["group"],
        only_9: false,
    },
    c(
        "PUT",
        "/cluster/ha/resources/{sid}",
        &["state", "comment", "max_restart", "max_relocate"],
    ),
    c("DELETE", "/cluster/ha/resources/{sid}", &[]),
    c(
        "GET",
        "/nodes/{node}/storage/{storage}/content",
        &["content"],
    ),
    c("GET", "/nodes/{node}/aplinfo", &[]),
    c("POST", "/nodes/{node}/aplinfo", &["storage", "template"]),
    c(
        "POST",
        "/nodes/{node}/storage/{storage}/download-url",
        &[
            "url",
            "filename",
            "content",
            "checksum",
            "checksum-algorithm",
        ],
    ),
    c(
        "POST",
        "/nodes/{node}/storage/{storage}/upload",
        &["content", "filename", "checksum", "checksum-algorithm"],
    ),
    // Appliance templates onto every node's storage.
    c("GET", "/nodes/{node}/storage", &[]),
    c(
        "GET",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        &[],
    ),
];

impl KnownCall {
    /// Made only by `orbitlab init`, with an administrator's login, to set
    /// up OrbitLab's user, role and token (`/access/...` except the
    /// login itself); never with OrbitLab's own token, so its privileges
    /// are not in [`super::privileges::ORBITLAB_PRIVILEGES`].
    pub fn setup_only(&self) -> bool {
        self.path.starts_with("/access/") && self.path != "/access/ticket"
    }
}

/// The entry for a method and path template.
pub fn find(method: &str, path: &str) -> Option<&'static KnownCall> {
    KNOWN_CALLS
        .iter()
        .find(|k| k.method == method && k.path == path)
}

#[cfg(test)]
mod tests {
    use super::super::{
        ControllerConfig, DownloadUrl, HaResourceAdd, HaResourceSpec, HaState, LxcCreate, Secret,
        SubnetConfig, VnetConfig, ZoneConfig,
    };
    use super::*;
    use serde::Serialize;

    fn keys<T: Serialize>(v: &T) -> Vec<String> {
        match serde_json::to_value(v).expect("serialize") {
            serde_json::Value::Object(m) => m
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn assert_listed(method: &str, path: &str, sent: &[String]) {
        let call = find(method, path).expect("listed call");
        for k in sent {
            let listed = [call.params, call.params_9, call.params_8]
                .iter()
                .any(|l| l.contains(&k.as_str()));
            assert!(
                listed,
                "{method} {path}: '{k}' is sent but not listed in KNOWN_CALLS"
            );
        }
    }

    #[test]
    fn typed_requests_send_only_listed_parameters() {
        let s = || Some("x".to_string());
        let zone = ZoneConfig {
            kind: s(),
            peers: s(),
            mtu: Some(1),
            controller: s(),
            vrf_vxlan: Some(1),
            exitnodes: s(),
            exitnodes_primary: s(),
            exitnodes_local_routing: Some(true),
            advertise_subnets: Some(true),
            disable_arp_nd_suppression: Some(true),
            rt_import: s(),
            mac: s(),
            nodes: s(),
            ipam: s(),
            bridge: s(),
            tag: Some(1),
            vxlan_port: Some(1),
        };
        let mut k = keys(&zone);
        k.push("zone".into());
        assert_listed("POST", "/cluster/sdn/zones", &k);
        let ctl = ControllerConfig {
            kind: s(),
            asn: Some(1),
            peers: s(),
            ebgp: Some(true),
            ebgp_multihop: Some(1),
            loopback: s(),
            node: s(),
        };
        assert_listed("POST", "/cluster/sdn/controllers", &keys(&ctl));
        let vnet = VnetConfig {
            kind: s(),
            zone: s(),
            tag: Some(1),
            alias: s(),
            vlanaware: Some(true),
            isolate_ports: Some(true),
        };
        assert_listed("POST", "/cluster/sdn/vnets", &keys(&vnet));
        let subnet = SubnetConfig {
            kind: s(),
            vnet: None,
            gateway: s(),
            snat: Some(true),
            dnszoneprefix: s(),
            dhcp_dns_server: s(),
            cidr: None,
            zone: None,
        };
        assert_listed("POST", "/cluster/sdn/vnets/{vnet}/subnets", &keys(&subnet));
        let create = LxcCreate {
            vmid: 100,
            ostemplate: "t".into(),
            hostname: s(),
            memory: Some(1),
            swap: Some(1),
            cores: Some(1),
            rootfs: s(),
            storage: s(),
            nets: [(0, "name=eth0".to_string())].into(),
            tags: s(),
            description: s(),
            unprivileged: Some(true),
            features: s(),
            nameserver: s(),
            searchdomain: s(),
            onboot: Some(true),
            start: Some(true),
            ssh_public_keys: s(),
            password: Some(Secret::new("pw")),
        };
        let sent: Vec<String> = create
            .params()
            .into_iter()
            .map(|(k, _)| {
                if k.starts_with("net") {
                    "net[n]".to_string()
                } else {
                    k
                }
            })
            .collect();
        assert_listed("POST", "/nodes/{node}/lxc", &sent);
        let ha = HaResourceSpec {
            state: Some(HaState::Started),
            comment: s(),
            max_restart: Some(1),
            max_relocate: Some(1),
        };
        assert_listed("PUT", "/cluster/ha/resources/{sid}", &keys(&ha));
        let add = HaResourceAdd {
            vmid: 100,
            state: HaState::Started,
            group: s(),
            comment: s(),
        };
        let sent: Vec<String> = add.params().into_iter().map(|(k, _)| k).collect();
        assert_eq!(sent.len(), 4, "{sent:?}");
        assert_listed("POST", "/cluster/ha/resources", &sent);
        let dl = DownloadUrl {
            url: "u".into(),
            filename: "f".into(),
            content: "vztmpl".into(),
            checksum: s(),
            checksum_algorithm: s(),
        };
        assert_listed(
            "POST",
            "/nodes/{node}/storage/{storage}/download-url",
            &keys(&dl),
        );
    }
}

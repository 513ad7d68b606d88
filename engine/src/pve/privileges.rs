//! Exactly the Proxmox privileges OrbitLab's own API token needs: what the
//! official schema (PVE 8.4 and 9.1) asks for every call the client makes
//! ([`super::known_calls::KNOWN_CALLS`]), except the `/access` calls only
//! `orbitlab init` makes with an administrator's login
//! ([`super::known_calls::KnownCall::setup_only`]). `orbitlab init` gives
//! them to the role [`ORBITLAB_ROLE`], granted on `/`.
//!
//! How the schema's `permissions` are read (the unit test below recomputes
//! the list from the schema files and fails when it differs):
//! - `check: [perm, PATH, PRIVS]` needs every privilege listed; with `any`
//!   every one is counted too, since OrbitLab uses each facet (a config
//!   update sets CPU, memory, network, options and disk keys, and Proxmox
//!   then checks each key's own privilege);
//! - `and`: all of its parts; `or`: the part needing the fewest privileges;
//! - `user: all` or `world` with a description: the privileges the
//!   description names, less those for uses OrbitLab never makes
//!   ([`NOT_USED`]); plus what Proxmox checks beyond the schema's text
//!   ([`BEYOND_SCHEMA`]).
//!
//! No call of the list needs `root@pam` itself.

/// The role `orbitlab init` makes for OrbitLab's user and token.
pub const ORBITLAB_ROLE: &str = "OrbitLab";

/// `POST /nodes/{node}/lxc` (the root disk on the target storage) and
/// `GET /nodes/{node}/storage/{storage}/content` (templates).
pub const DATASTORE_ALLOCATE_SPACE: &str = "Datastore.AllocateSpace";
/// `POST /nodes/{node}/aplinfo`, `.../storage/{storage}/download-url` and
/// `.../upload`: putting a container template on a storage.
pub const DATASTORE_ALLOCATE_TEMPLATE: &str = "Datastore.AllocateTemplate";
/// `GET /nodes/{node}/storage/{storage}/content` (templates).
pub const DATASTORE_AUDIT: &str = "Datastore.Audit";
/// Every SDN write (controllers, zones, VNets, subnets), `PUT /cluster/sdn`
/// (apply), the 9.x SDN lock and rollback; SDN listings.
pub const SDN_ALLOCATE: &str = "SDN.Allocate";
/// SDN listings (`GET /cluster/sdn/{controllers,zones,vnets}`, subnets).
pub const SDN_AUDIT: &str = "SDN.Audit";
/// `POST /nodes/{node}/lxc` and `PUT .../config` with `net[n]`: attaching a
/// container to a bridge or VNet (checked by Proxmox, not in the schema).
pub const SDN_USE: &str = "SDN.Use";
/// `POST /nodes/{node}/storage/{storage}/download-url` (a template from a
/// URL; the node's network).
pub const SYS_ACCESS_NETWORK: &str = "Sys.AccessNetwork";
/// `GET /cluster/status`, `GET /nodes/{node}/status`,
/// `GET /nodes/{node}/dns`, `GET /cluster/ha/resources`, task status of
/// others' tasks.
pub const SYS_AUDIT: &str = "Sys.Audit";
/// `POST`, `PUT`, `DELETE /cluster/ha/resources`: handing containers to
/// Proxmox HA.
pub const SYS_CONSOLE: &str = "Sys.Console";
/// `POST /nodes/{node}/lxc` and `DELETE /nodes/{node}/lxc/{vmid}`.
pub const VM_ALLOCATE: &str = "VM.Allocate";
/// `GET /nodes/{node}/lxc`, a container's config and status.
pub const VM_AUDIT: &str = "VM.Audit";
/// `PUT /nodes/{node}/lxc/{vmid}/config` (`cores`).
pub const VM_CONFIG_CPU: &str = "VM.Config.CPU";
/// `PUT /nodes/{node}/lxc/{vmid}/resize` and `rootfs` in the config.
pub const VM_CONFIG_DISK: &str = "VM.Config.Disk";
/// `PUT /nodes/{node}/lxc/{vmid}/config` (`memory`, `swap`).
pub const VM_CONFIG_MEMORY: &str = "VM.Config.Memory";
/// `PUT /nodes/{node}/lxc/{vmid}/config` (`net0`).
pub const VM_CONFIG_NETWORK: &str = "VM.Config.Network";
/// `PUT /nodes/{node}/lxc/{vmid}/config` (`hostname`, `nameserver`,
/// `searchdomain`, `onboot`...).
pub const VM_CONFIG_OPTIONS: &str = "VM.Config.Options";
/// `POST /nodes/{node}/lxc/{vmid}/status/{start,stop,shutdown}`.
pub const VM_POWER_MGMT: &str = "VM.PowerMgmt";

/// Every privilege OrbitLab's token needs, sorted.
pub const ORBITLAB_PRIVILEGES: &[&str] = &[
    DATASTORE_ALLOCATE_SPACE,
    DATASTORE_ALLOCATE_TEMPLATE,
    DATASTORE_AUDIT,
    SDN_ALLOCATE,
    SDN_AUDIT,
    SDN_USE,
    SYS_ACCESS_NETWORK,
    SYS_AUDIT,
    SYS_CONSOLE,
    VM_ALLOCATE,
    VM_AUDIT,
    VM_CONFIG_CPU,
    VM_CONFIG_DISK,
    VM_CONFIG_MEMORY,
    VM_CONFIG_NETWORK,
    VM_CONFIG_OPTIONS,
    VM_POWER_MGMT,
];

/// A privilege a call's schema names that OrbitLab's use of the call does
/// not need: (method, path, privilege, why).
pub const NOT_USED: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/nodes/{node}/lxc",
        "VM.Backup",
        "only for a restore; OrbitLab creates containers from templates",
    ),
    (
        "POST",
        "/nodes/{node}/lxc",
        "Sys.Modify",
        "only for privileged containers (9.x text); OrbitLab's are unprivileged",
    ),
];

/// A privilege Proxmox checks for a call beyond what its schema says:
/// (method, path, privilege, why).
pub const BEYOND_SCHEMA: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/nodes/{node}/lxc",
        "SDN.Use",
        "Proxmox 8+ checks SDN.Use on the bridge or VNet of every network device",
    ),
    (
        "PUT",
        "/nodes/{node}/lxc/{vmid}/config",
        "SDN.Use",
        "Proxmox 8+ checks SDN.Use on the bridge or VNet of a changed network device",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::super::known_calls::KNOWN_CALLS;
    use super::*;

    fn schema_dir() -> Option<PathBuf> {
        orbitlab_sim::pve::schema::official_schema_dir("the privileges")
    }

    /// (method, path) -> info, of one release.
    fn load(dir: &Path, release: &str) -> BTreeMap<(String, String), Value> {
        let file = dir.join(format!("pve-api-schema-full-pve{release}.json"));
        let text = std::fs::read_to_string(&file).expect("schema file");
        let tree: Value = serde_json::from_str(&text).expect("schema JSON");
        fn walk(n: &Value, out: &mut BTreeMap<(String, String), Value>) {
            if let (Some(path), Some(info)) = (n["path"].as_str(), n["info"].as_object()) {
                for (m, i) in info {
                    out.insert((m.clone(), path.to_owned()), i.clone());
                }
            }
            for c in n["children"].as_array().into_iter().flatten() {
                walk(c, out);
            }
        }
        let mut out = BTreeMap::new();
        for n in tree.as_array().expect("an array") {
            walk(n, &mut out);
        }
        out
    }

    /// The privileges a role may hold on a release (the keys of
    /// `GET /access/roles/{roleid}`).
    fn valid(schema: &BTreeMap<(String, String), Value>) -> BTreeSet<String> {
        schema[&("GET".to_owned(), "/access/roles/{roleid}".to_owned())]["returns"]["properties"]
            .as_object()
            .expect("role properties")
            .keys()
            .cloned()
            .collect()
    }

    /// A `check` expression (see the module doc).
    fn check(expr: &Value) -> BTreeSet<String> {
        let parts = expr.as_array().expect("a check is a list");
        match parts[0].as_str() {
            Some("perm") => parts[2]
                .as_array()
                .expect("privileges")
                .iter()
                .map(|p| p.as_str().expect("a privilege").to_owned())
                .collect(),
            Some("and") => parts[1..].iter().flat_map(check).collect(),
            Some("or") => parts[1..]
                .iter()
                .map(check)
                .min_by_key(BTreeSet::len)
                .expect("alternatives"),
            other => panic!("check {other:?} is not read here: {expr}"),
        }
    }

    /// Privilege names in a description.
    fn named(text: &str, valid: &BTreeSet<String>) -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .map(|w| w.trim_end_matches('.'))
            .filter(|w| valid.contains(*w))
            .map(str::to_owned)
            .collect()
    }

    /// privilege -> the calls needing it, from the schema.
    fn computed(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for release in ["8.4", "9.1"] {
            let schema = load(dir, release);
            let valid = valid(&schema);
            for call in KNOWN_CALLS.iter().filter(|c| !c.setup_only()) {
                let key = (call.method.to_owned(), call.path.to_owned());
                let Some(info) = schema.get(&key) else {
                    assert!(call.only_9 && release == "8.4", "{key:?} not in {release}");
                    continue;
                };
                let perms = &info["permissions"];
                let mut privs = if perms["check"].is_null() {
                    assert!(
                        matches!(perms["user"].as_str(), Some("all" | "world")),
                        "{key:?}: permissions not read here: {perms}"
                    );
                    named(perms["description"].as_str().unwrap_or(""), &valid)
                } else {
                    check(&perms["check"])
                };
                for (m, p, privilege, _) in NOT_USED {
                    if (*m, *p) == (call.method, call.path) {
                        privs.remove(*privilege);
                    }
                }
                for (m, p, privilege, _) in BEYOND_SCHEMA {
                    if (*m, *p) == (call.method, call.path) {
                        privs.insert((*privilege).to_owned());
                    }
                }
                for privilege in privs {
                    assert!(
                        valid.contains(&privilege),
                        "{privilege} unknown on {release}"
                    );
                    out.entry(privilege)
                        .or_default()
                        .insert(format!("{} {}", call.method, call.path));
                }
            }
        }
        out
    }

    #[test]
    fn the_list_is_what_the_schema_asks_for_the_calls_made() {
        let Some(dir) = schema_dir() else { return };
        let computed = computed(&dir);
        let listed: BTreeSet<&str> = ORBITLAB_PRIVILEGES.iter().copied().collect();
        let found: BTreeSet<&str> = computed.keys().map(String::as_str).collect();
        assert_eq!(
            listed, found,
            "ORBITLAB_PRIVILEGES differs from the schema; needed by: {computed:#?}"
        );
        let mut sorted = ORBITLAB_PRIVILEGES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, ORBITLAB_PRIVILEGES, "sorted, each once");
        // Both releases know every privilege (a role naming an unknown one
        // is refused).
        for release in ["8.4", "9.1"] {
            let valid = valid(&load(&dir, release));
            for p in ORBITLAB_PRIVILEGES {
                assert!(valid.contains(*p), "{p} unknown on {release}");
            }
        }
    }

    #[test]
    fn every_exception_names_what_the_schema_says() {
        let Some(dir) = schema_dir() else { return };
        for release in ["8.4", "9.1"] {
            let schema = load(&dir, release);
            for (m, p, privilege, _) in NOT_USED {
                let info = &schema[&((*m).to_owned(), (*p).to_owned())];
                let text = info["permissions"].to_string();
                // Sys.Modify for privileged containers is 9.x text only.
                if release == "9.1" || *privilege != "Sys.Modify" {
                    assert!(
                        text.contains(privilege),
                        "{m} {p}: {privilege} not in {text}"
                    );
                }
            }
            for (m, p, privilege, _) in BEYOND_SCHEMA {
                let info = &schema[&((*m).to_owned(), (*p).to_owned())];
                let text = info["permissions"].to_string();
                assert!(
                    !text.contains(privilege),
                    "{m} {p} names {privilege}: not beyond"
                );
            }
        }
    }

    #[test]
    fn the_readme_lists_exactly_these() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let section = readme
            .split("\n## Privileges\n")
            .nth(1)
            .expect("a section ## Privileges")
            .split("\n## ")
            .next()
            .unwrap_or_default();
        let listed: BTreeSet<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("- `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let ours: BTreeSet<&str> = ORBITLAB_PRIVILEGES.iter().copied().collect();
        assert_eq!(listed, ours);
    }
}

//! The cluster-wide and per-node endpoints:
//!
//! | call | answer |
//! | --- | --- |
//! | `GET /version` | `version`, `release`, `repoid` of the simulated pve-manager |
//! | `GET /cluster/status` | the cluster and its nodes (quorum, online, `level` `""`: no subscription) |
//! | `GET /cluster/resources` | guests, nodes, storages and SDN zones as pvestatd last reported them, `type` filter, only what the caller may audit (see [`resources`]) |
//! | `GET /cluster/tasks` | every node's recent tasks (running ones, then the newest finished up to 25), all with `Sys.Audit`, else the caller's own |
//! | `GET /cluster/options` | `datacenter.cfg` of a fresh install (with `Sys.Audit`) and `allowed-tags` |
//! | `GET /cluster/nextid` | the next free VMID, or whether `vmid` is free |
//! | `GET /nodes` | the nodes with their load |
//! | `GET /nodes/{node}/status` | a node's status (memory: a base plus its running containers; CPUs as set through `/_sim`) |
//! | `GET /nodes/{node}/subscription` | no subscription (`notfound`, as a community install answers; the server ID only with `Sys.Audit`) |
//! | `GET /nodes/{node}/ceph/status` | the error Proxmox answers when Ceph is not installed (500) |
//! | `GET /nodes/{node}/network[/{iface}]` | `vmbr0` and `eno1` |
//! | `GET /nodes/{node}/dns` | the DNS settings (as set through `/_sim`) |
//! | `GET /nodes/{node}/tasks/{upid}/status` | a task's status |
//!
//! `localhost` names the node answering (see [`Ctx::node`]).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::access::effective_privileges;
use super::storage::{STORAGE_TOTAL, STORAGE_USED};
use super::{Ctx, list};
use crate::pve::error::{ApiError, Reply};
use crate::pve::schema::PveVersion;
use crate::pve::state::{ClusterState, Guest, NodeState, Task};

pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    match (method, template) {
        ("GET", "/version") => Ok(json!({
            "version": ctx.st.version.full(),
            "release": ctx.st.version.release(),
            "repoid": repoid(ctx.st.version),
        })),
        ("GET", "/cluster/status") => cluster_status(ctx),
        ("GET", "/cluster/resources") => resources(ctx),
        ("GET", "/cluster/tasks") => tasks(ctx),
        ("GET", "/cluster/options") => options(ctx),
        ("GET", "/nodes/{node}/subscription") => subscription(ctx),
        ("GET", "/nodes/{node}/ceph/status") => {
            ctx.node()?;
            // `check_ceph_inited` of a node without the Ceph packages.
            Err(ApiError::fail("binary not installed: /usr/bin/ceph-mon"))
        }
        ("GET", "/nodes") => list(
            ctx.st
                .nodes
                .iter()
                .map(|(name, n)| {
                    json!({
                        "node": name, "id": format!("node/{name}"), "type": "node",
                        "status": if n.online { "online" } else { "offline" },
                        "maxcpu": n.cpus, "maxmem": n.memory_total,
                        "mem": ctx.st.node_memory_used(name), "cpu": CPU_LOAD,
                        "uptime": NODE_UPTIME, "ssl_fingerprint": "00:11",
                    })
                })
                .collect(),
        ),
        ("GET", "/nodes/{node}/status") => node_status(ctx),
        ("GET", "/nodes/{node}/network") => {
            let node = ctx.node()?;
            let filter = ctx.p.str("type").map(str::to_string);
            let all = interfaces(ctx, &node);
            list(
                all.into_iter()
                    .filter(|i| match filter.as_deref() {
                        None => true,
                        Some("any_bridge" | "any_local_bridge") => i["type"] == "bridge",
                        Some(t) => i["type"] == t,
                    })
                    .collect(),
            )
        }
        ("GET", "/nodes/{node}/network/{iface}") => {
            let node = ctx.node()?;
            let want = ctx.s("iface")?;
            interfaces(ctx, &node)
                .into_iter()
                .find(|i| i["iface"] == want.as_str())
                .ok_or_else(|| ApiError::fail(format!("interface does not exist: {want}")))
        }
        ("GET", "/nodes/{node}/dns") => node_dns(ctx),
        ("GET", "/cluster/nextid") => next_id(ctx),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => task_status(ctx),
        _ => Err(ApiError::status(
            501,
            format!("Method '{method} {template}' not implemented"),
        )),
    }
}

/// Every node's CPU load.
const CPU_LOAD: f64 = 0.03;
/// Every node's uptime (seconds).
const NODE_UPTIME: u64 = 3600;
/// Size of every node's root file system (bytes).
const ROOTFS_TOTAL: u64 = 100 << 30;
/// What every node's root file system has in use (bytes).
const ROOTFS_USED: u64 = 8 << 30;

/// The git revision the simulated pve-manager was built from (`repoid` of
/// `/version`, also in `pveversion` of a node's status).
fn repoid(version: PveVersion) -> &'static str {
    match version {
        PveVersion::V8_4 => "2a5fa54a8503f96d",
        PveVersion::V9_1 => "9d436f37a0ac4172",
    }
}

/// `GET /nodes/{node}/status`: every key the schema lists (9.x adds
/// `memory.available`), plus `uptime`, `swap`, `ksm` and `kversion` that
/// Proxmox also sends.
fn node_status(ctx: &Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let n = &ctx.st.nodes[&node];
    let used = ctx.st.node_memory_used(&node);
    let free = n.memory_total - used;
    let mut memory = json!({ "total": n.memory_total, "used": used, "free": free });
    if ctx.st.version >= PveVersion::V9_1
        && let Some(m) = memory.as_object_mut()
    {
        m.insert("available".into(), Value::from(free));
    }
    let kernel = match ctx.st.version {
        PveVersion::V8_4 => "6.8.12-9-pve",
        PveVersion::V9_1 => "6.17.2-1-pve",
    };
    let version = ctx.st.version;
    let pve = format!("pve-manager/{}/{}", version.full(), repoid(version));
    let disk_total = ROOTFS_TOTAL;
    let disk_used = ROOTFS_USED;
    Ok(json!({
        "memory": memory,
        "swap": { "total": 8_u64 << 30, "used": 0, "free": 8_u64 << 30 },
        "cpu": CPU_LOAD,
        "cpuinfo": {
            "cpus": n.cpus, "cores": n.cpus.div_ceil(2), "sockets": 1,
            "model": "Simulated CPU", "mhz": "2400.000", "hvm": "1",
            "flags": "fpu vme de pse tsc msr pae", "user_hz": 100,
        },
        "loadavg": ["0.12", "0.08", "0.05"],
        "uptime": NODE_UPTIME,
        "idle": 0,
        "wait": 0.0,
        "ksm": { "shared": 0 },
        "rootfs": {
            "total": disk_total, "used": disk_used,
            "free": disk_total - disk_used, "avail": disk_total - disk_used,
        },
        "kversion": format!("Linux {kernel} #1 SMP PREEMPT_DYNAMIC PMX"),
        "current-kernel": {
            "sysname": "Linux", "release": kernel, "machine": "x86_64",
            "version": "#1 SMP PREEMPT_DYNAMIC PMX",
        },
        "boot-info": { "mode": "efi", "secureboot": 0 },
        "pveversion": pve,
    }))
}

/// `GET /nodes/{node}/dns`: `dns1`..`dns3` for the name servers the node
/// has and `search` if it has one, each key only when set (Proxmox reads
/// them from the node's `/etc/resolv.conf` and leaves out what is not
/// there).
fn node_dns(ctx: &Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let dns = &ctx.st.nodes[&node].dns;
    let mut out = serde_json::Map::new();
    for (i, server) in dns.servers.iter().enumerate() {
        out.insert(format!("dns{}", i + 1), Value::from(server.clone()));
    }
    if let Some(search) = &dns.search {
        out.insert("search".into(), Value::from(search.clone()));
    }
    Ok(Value::Object(out))
}

fn cluster_status(ctx: &Ctx<'_>) -> Reply {
    let st = &ctx.st;
    let mut out = vec![json!({
        "type": "cluster", "id": "cluster", "name": st.cluster_name,
        "nodes": st.nodes.len(), "quorate": u8::from(st.quorate()), "version": st.members_version,
    })];
    for (i, (name, n)) in st.nodes.iter().enumerate() {
        out.push(json!({
            "type": "node", "id": format!("node/{name}"), "name": name, "nodeid": n.nodeid,
            "ip": n.ip.to_string(), "online": u8::from(n.online), "local": u8::from(i == 0),
            "level": "",
        }));
    }
    list(out)
}

fn interfaces(ctx: &Ctx<'_>, node: &str) -> Vec<Value> {
    let Some(n) = ctx.st.nodes.get(node) else {
        return Vec::new();
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(n.prefix)).unwrap_or(0);
    let netmask = std::net::Ipv4Addr::from(mask);
    let gw = std::net::Ipv4Addr::from((u32::from(n.ip) & mask) | 1);
    vec![
        json!({
            "iface": "vmbr0", "type": "bridge", "method": "static", "method6": "manual",
            "address": n.ip.to_string(), "netmask": netmask.to_string(),
            "cidr": format!("{}/{}", n.ip, n.prefix), "gateway": gw.to_string(),
            // pveproxy passes values from /etc/network/interfaces through as text.
            "mtu": n.mtu.to_string(),
            "bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0",
            "active": 1, "autostart": 1, "priority": 4, "families": ["inet"],
        }),
        json!({
            "iface": "eno1", "type": "eth", "method": "manual", "method6": "manual",
            "active": 1, "exists": 1, "priority": 3, "families": ["inet"],
            "mtu": n.mtu.to_string(),
        }),
    ]
}

fn next_id(ctx: &Ctx<'_>) -> Reply {
    if let Some(want) = ctx.p.int("vmid") {
        let taken = u32::try_from(want).map_or(true, |v| ctx.st.guests.contains_key(&v));
        return if taken {
            Err(ApiError::param("vmid", format!("VM {want} already exists")))
        } else {
            Ok(Value::from(want.to_string()))
        };
    }
    let mut id = 100_u32;
    while ctx.st.guests.contains_key(&id) {
        id += 1;
    }
    Ok(Value::from(id.to_string()))
}

fn task_status(ctx: &Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let upid = ctx.s("upid")?;
    let task = ctx
        .st
        .tasks
        .get(&upid)
        .ok_or_else(|| ApiError::fail(format!("no such task '{upid}'")))?;
    if task.node != node {
        return Err(ApiError::fail(format!(
            "no such task '{upid}' on node '{node}'"
        )));
    }
    let mut v = json!({
        "upid": task.upid, "node": task.node, "type": task.kind, "id": task.id,
        "user": task.user, "starttime": task.starttime, "pid": 0, "pstart": 0,
        "status": if task.exitstatus.is_some() { "stopped" } else { "running" },
    });
    if let (Some(e), Some(obj)) = (&task.exitstatus, v.as_object_mut()) {
        obj.insert("exitstatus".into(), Value::from(e.clone()));
    }
    Ok(v)
}

/// `GET /cluster/resources`, as Proxmox builds it from what the nodes'
/// pvestatd last reported (the RRD data) and the cluster configuration:
/// guests (VMID in text order; `VM.Audit`), nodes (their load only with
/// `Sys.Audit`), storages (one entry per node that has it;
/// `Datastore.Audit`), then SDN zones (`SDN.Audit`): every node's default
/// `localnetwork` zone and the applied zones; 8.4 lists them as type
/// `sdn`, 9.1 as type `network` (`network-type` `zone`), which only an
/// answer without `type` filter holds (the filter's enum has no
/// `network`). An offline node reports nothing: its guests' and
/// storages' status is `unknown`, without figures.
pub fn resources(ctx: &Ctx<'_>) -> Reply {
    let st: &ClusterState = ctx.st;
    let held = effective_privileges(ctx.auth, st, ctx.user);
    let may = |p: &str| held.contains(p);
    let filter = ctx.p.str("type");
    let wants = |t: &str| filter.is_none_or(|f| f == t);
    let online = |node: &str| st.nodes.get(node).is_some_and(|n| n.online);
    let mut out = Vec::new();
    if wants("vm") && may("VM.Audit") {
        let mut vmids: Vec<u32> = st.guests.keys().copied().collect();
        vmids.sort_by_key(u32::to_string);
        for vmid in vmids {
            if let Some(g) = st.guests.get(&vmid) {
                out.push(guest_resource(st, vmid, g, online(&g.node)));
            }
        }
    }
    if wants("node") {
        for (name, n) in &st.nodes {
            out.push(node_resource(st, name, n, may("Sys.Audit")));
        }
    }
    if wants("storage") && may("Datastore.Audit") {
        let ids: BTreeSet<&String> = st.storage.values().flat_map(|s| s.keys()).collect();
        for id in ids {
            for (node, storages) in &st.storage {
                let Some(s) = storages.get(id) else { continue };
                let content: BTreeSet<&String> = s.content.iter().collect();
                let mut e = json!({
                    "id": format!("storage/{node}/{id}"), "storage": id, "node": node,
                    "type": "storage", "plugintype": s.kind, "status": "unknown",
                    "shared": 0,
                    "content": content.into_iter().cloned().collect::<Vec<_>>().join(","),
                });
                if online(node) {
                    e["status"] = json!("available");
                    e["maxdisk"] = json!(STORAGE_TOTAL);
                    e["disk"] = json!(STORAGE_USED);
                }
                out.push(e);
            }
        }
    }
    let nine = st.version >= PveVersion::V9_1;
    if may("SDN.Audit") && (if nine { filter.is_none() } else { wants("sdn") }) {
        out.extend(zone_resources(st, nine));
    }
    list(out)
}

/// A container's entry of `/cluster/resources`: its figures (as
/// `GET /nodes/{node}/lxc` has them, pvestatd's source) while its node is
/// online; its tags and lock from the config, its HA state from the HA
/// resources.
fn guest_resource(st: &ClusterState, vmid: u32, g: &Guest, node_online: bool) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(format!("lxc/{vmid}")));
    e.insert("vmid".into(), json!(vmid));
    e.insert("node".into(), json!(g.node));
    e.insert("type".into(), json!("lxc"));
    e.insert("status".into(), json!("unknown"));
    if node_online {
        let s = super::lxc::summary(vmid, g, st.cpu_of(g));
        let template = g.config.get("template").is_some_and(|t| t == "1");
        for (key, from) in [
            ("uptime", "uptime"),
            ("name", "name"),
            ("status", "status"),
            ("maxcpu", "cpus"),
            ("cpu", "cpu"),
            ("maxmem", "maxmem"),
            ("mem", "mem"),
            ("maxdisk", "maxdisk"),
            ("disk", "disk"),
        ] {
            e.insert(key.into(), s[from].clone());
        }
        e.insert("template".into(), json!(u8::from(template)));
        for key in ["netin", "netout", "diskread", "diskwrite"] {
            e.insert(key.into(), json!(0));
        }
        if st.version >= PveVersion::V9_1 {
            // 9.x's RRD format has the host's view of memory, which
            // pvestatd leaves empty for containers.
            e.insert("memhost".into(), json!(0));
        }
    }
    if let Some(tags) = g.config.get("tags") {
        e.insert("tags".into(), json!(tags));
    }
    if let Some(lock) = &g.lock {
        e.insert("lock".into(), json!(lock));
    }
    if let Some(ha) = st.ha.get(&format!("ct:{vmid}")) {
        let state = ha.get("state").and_then(Value::as_str).unwrap_or("started");
        e.insert("hastate".into(), json!(state));
    }
    Value::Object(e)
}

/// A node's entry of `/cluster/resources`: `level` `""` (no
/// subscription) and cgroup v2; its load only for a caller with
/// `Sys.Audit`; nothing but `offline` for an offline node.
fn node_resource(st: &ClusterState, name: &str, n: &NodeState, audit: bool) -> Value {
    let mut e = json!({
        "id": format!("node/{name}"), "node": name, "type": "node", "status": "unknown",
        "cgroup-mode": 2,
    });
    if n.online {
        e["status"] = json!("online");
        e["level"] = json!("");
        if audit {
            e["uptime"] = json!(NODE_UPTIME);
            e["cpu"] = json!(CPU_LOAD);
            e["mem"] = json!(st.node_memory_used(name));
            e["disk"] = json!(ROOTFS_USED);
            e["maxcpu"] = json!(n.cpus);
            e["maxmem"] = json!(n.memory_total);
            e["maxdisk"] = json!(ROOTFS_TOTAL);
        }
    } else {
        e["status"] = json!("offline");
    }
    e
}

/// The SDN zones of `/cluster/resources`: every node's `localnetwork`,
/// then each applied zone on each online node it spans (its `nodes`, or
/// all), as the node's pvestatd reports it (`available`).
fn zone_resources(st: &ClusterState, nine: bool) -> Vec<Value> {
    let entry = |node: &str, zone: &str, status: &str, kind: Option<&str>| {
        if nine {
            let mut e = json!({
                "id": format!("network/{node}/zone/{zone}"), "type": "network",
                "network-type": "zone", "network": zone, "node": node, "status": status,
            });
            if let Some(k) = kind {
                e["zone-type"] = json!(k);
            }
            e
        } else {
            json!({
                "id": format!("sdn/{node}/{zone}"), "sdn": zone, "node": node,
                "type": "sdn", "status": status,
            })
        }
    };
    let mut out: Vec<Value> = st
        .nodes
        .keys()
        .map(|node| entry(node, "localnetwork", "ok", None))
        .collect();
    for (node, n) in &st.nodes {
        if !n.online {
            continue;
        }
        for (zone, z) in &st.sdn.running.zones {
            let spans = z
                .get("nodes")
                .and_then(Value::as_str)
                .is_none_or(|list| list.split([',', ';', ' ']).any(|x| x == node));
            if spans {
                let kind = z.get("type").and_then(Value::as_str);
                out.push(entry(node, zone, "available", kind));
            }
        }
    }
    out
}

/// Most finished tasks a node keeps in its task list (`active_workers`),
/// counting its running ones.
const MAX_LISTED_TASKS: usize = 25;

/// `GET /cluster/tasks`: each node's task list as pmxcfs has it
/// (`active_workers`: the running tasks, then the newest finished ones,
/// at most 25 in all), with a token's tasks split into `user` and
/// `tokenid`; all of them with `Sys.Audit` on `/`, else only those whose
/// `user` is the caller.
fn tasks(ctx: &Ctx<'_>) -> Reply {
    let st: &ClusterState = ctx.st;
    let all = effective_privileges(ctx.auth, st, ctx.user).contains("Sys.Audit");
    let mut out = Vec::new();
    for node in st.nodes.keys() {
        let mut mine: Vec<&Task> = st.tasks.values().filter(|t| &t.node == node).collect();
        mine.sort_by(|a, b| b.starttime.cmp(&a.starttime).then(b.upid.cmp(&a.upid)));
        let (running, done): (Vec<&Task>, Vec<&Task>) =
            mine.into_iter().partition(|t| t.exitstatus.is_none());
        let room = MAX_LISTED_TASKS.saturating_sub(running.len());
        for t in running.iter().chain(done.iter().take(room)) {
            let e = task_entry(t);
            if all || e["user"] == ctx.user {
                out.push(e);
            }
        }
    }
    list(out)
}

/// One task as a node's task list holds it: a running task with its
/// `pid`, a finished one with `endtime` and `status` (`OK` or the error)
/// instead; `saved` as the list's file has it (text).
fn task_entry(t: &Task) -> Value {
    let (user, token) = match t.user.split_once('!') {
        Some((u, tok)) => (u, Some(tok)),
        None => (t.user.as_str(), None),
    };
    let mut e = json!({
        "upid": t.upid, "node": t.node, "starttime": t.starttime, "type": t.kind,
        "id": t.id, "user": user,
    });
    if let Some(tok) = token {
        e["tokenid"] = json!(tok);
    }
    match &t.exitstatus {
        None => {
            let pid = t
                .upid
                .split(':')
                .nth(2)
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .unwrap_or(0);
            e["pid"] = json!(pid);
            e["saved"] = json!("0");
        }
        Some(status) => {
            e["endtime"] = json!(t.endtime.unwrap_or(t.starttime));
            e["status"] = json!(status);
            e["saved"] = json!("1");
        }
    }
    e
}

/// `GET /cluster/options`: `datacenter.cfg` as a fresh install has it
/// (the installer's `keyboard`, the default MAC prefix Proxmox fills in,
/// the empty description) for a caller with `Sys.Audit`, else only the
/// keys everyone may read (`console`, `tag-style`: not set); always
/// `allowed-tags`: the tags of the guests the caller may audit (every
/// guest with `Sys.Modify`), as the default `user-tag-access` (`free`)
/// allows.
fn options(ctx: &Ctx<'_>) -> Reply {
    let held = effective_privileges(ctx.auth, ctx.st, ctx.user);
    let mut out = Map::new();
    if held.contains("Sys.Audit") {
        out.insert("description".into(), json!(""));
        out.insert("keyboard".into(), json!("en-us"));
        out.insert("mac_prefix".into(), json!("BC:24:11"));
    }
    let mut tags = BTreeSet::new();
    if held.contains("Sys.Modify") || held.contains("VM.Audit") {
        for g in ctx.st.guests.values() {
            let list = g.config.get("tags").map(String::as_str).unwrap_or_default();
            tags.extend(
                list.split([';', ',', ' '])
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
    }
    out.insert("allowed-tags".into(), json!(tags));
    Ok(Value::Object(out))
}

/// `GET /nodes/{node}/subscription` of a node without subscription key,
/// as a community install answers; the server ID (from the node's SSH
/// host key on a real node) only for a caller with `Sys.Audit`.
fn subscription(ctx: &Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let mut out = json!({
        "status": "notfound",
        "message": "There is no subscription key",
        "url": "https://www.proxmox.com/en/proxmox-virtual-environment/pricing",
    });
    if effective_privileges(ctx.auth, ctx.st, ctx.user).contains("Sys.Audit") {
        let digest = Sha256::digest(format!("ssh_host_rsa_key.pub of {node}").as_bytes());
        out["serverid"] = json!(hex::encode_upper(&digest[..16]));
    }
    Ok(out)
}

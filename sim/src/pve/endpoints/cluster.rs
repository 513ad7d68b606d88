//! `/version`, `/cluster/status`, `/nodes`, a node's status (memory: a
//! base plus its running containers; CPUs as set through `/_sim`),
//! network interfaces and DNS settings (as set through `/_sim`),
//! `/cluster/nextid` and task status.

use serde_json::{Value, json};

use super::{Ctx, list};
use crate::pve::error::{ApiError, Reply};
use crate::pve::schema::PveVersion;

pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    match (method, template) {
        ("GET", "/version") => Ok(json!({
            "version": ctx.st.version.full(),
            "release": ctx.st.version.release(),
            "repoid": "0rb17l4b",
        })),
        ("GET", "/cluster/status") => cluster_status(ctx),
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
                        "uptime": 3600, "ssl_fingerprint": "00:11",
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
    let (kernel, pve) = match ctx.st.version {
        PveVersion::V8_4 => ("6.8.12-9-pve", "pve-manager/8.4.1/2a5fa54a8503f96d"),
        PveVersion::V9_1 => ("6.17.2-1-pve", "pve-manager/9.1.2/9d436f37a0ac4172"),
    };
    let disk_total: u64 = 100 << 30;
    let disk_used: u64 = 8 << 30;
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
        "uptime": 3600,
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

//! Containers under `/nodes/{node}/lxc`: list, create (a `vzcreate` task),
//! config read/update, disk resize (a `resize` task; shrinking and the
//! same size are refused before it starts, as in Proxmox), status,
//! start/stop/shutdown, destroy. VMIDs are unique across the cluster;
//! config reads back as Proxmox stores it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, list};
use crate::pve::error::{ApiError, Reply};
use crate::pve::schema::{Kind, rules};
use crate::pve::state::{Effect, Guest, PowerState, Volume, format_size, parse_size};

/// Create-only parameters that are not stored in the config.
const NOT_STORED: &[&str] = &[
    "node",
    "vmid",
    "ostemplate",
    "password",
    "ssh-public-keys",
    "storage",
    "start",
    "restore",
    "force",
    "unique",
    "ignore-unpack-errors",
    "bwlimit",
    "pool",
    "ha-managed",
    "debug",
    "delete",
    "digest",
    "revert",
];

pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    let tail = template
        .strip_prefix("/nodes/{node}/lxc")
        .unwrap_or_default();
    match (method, tail) {
        ("GET", "") => list_guests(ctx),
        ("POST", "") => create(ctx),
        ("DELETE", "/{vmid}") => destroy(ctx),
        ("GET", "/{vmid}/config") => get_config(ctx),
        ("PUT", "/{vmid}/config") => put_config(ctx),
        ("PUT", "/{vmid}/resize") => resize(ctx),
        ("GET", "/{vmid}/status/current") => status(ctx),
        ("POST", "/{vmid}/status/start") => power(ctx, "vzstart", PowerState::Running),
        ("POST", "/{vmid}/status/stop") => power(ctx, "vzstop", PowerState::Stopped),
        ("POST", "/{vmid}/status/shutdown") => power(ctx, "vzshutdown", PowerState::Stopped),
        _ => Err(ApiError::status(
            501,
            format!("Method '{method} {template}' not implemented"),
        )),
    }
}

fn guest<'a>(ctx: &'a Ctx<'_>, node: &str, vmid: u32) -> Result<&'a Guest, ApiError> {
    ctx.st
        .guests
        .get(&vmid)
        .filter(|g| g.node == node)
        .ok_or_else(|| {
            ApiError::fail(format!(
                "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
            ))
        })
}

fn not_locked(g: &Guest, vmid: u32) -> Result<(), ApiError> {
    match &g.lock {
        Some(l) => Err(ApiError::fail(format!("CT {vmid} is locked ({l})"))),
        None => Ok(()),
    }
}

fn list_guests(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    list(
        ctx.st
            .guests
            .iter()
            .filter(|(_, g)| g.node == node)
            .map(|(vmid, g)| summary(*vmid, g, ctx.st.cpu_of(g)))
            .collect(),
    )
}

fn mem_bytes(g: &Guest, key: &str, default: u64) -> u64 {
    g.config
        .get(key)
        .and_then(|m| m.parse().ok())
        .unwrap_or(default)
        * 1024
        * 1024
}

/// A container's entry in `GET /nodes/{node}/lxc` and its
/// `status/current`; `cpu`: its simulated CPU use (a fraction of its
/// cores), reported while it runs, with memory at a tenth of its limit.
pub(super) fn summary(vmid: u32, g: &Guest, cpu: f64) -> Value {
    let running = matches!(g.status, crate::pve::state::PowerState::Running);
    let mut v = json!({
        "vmid": vmid, "type": "lxc", "status": g.status,
        "name": g.config.get("hostname").cloned().unwrap_or_else(|| format!("CT{vmid}")),
        "maxmem": mem_bytes(g, "memory", 512), "maxswap": mem_bytes(g, "swap", 512),
        "cpus": g.config.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
        "uptime": g.uptime(),
        "maxdisk": 4_294_967_296_u64, "disk": 0, "swap": 0,
        "mem": if running { mem_bytes(g, "memory", 512) / 10 } else { 0 },
        "cpu": if running { cpu } else { 0.0 },
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(t) = g.config.get("tags") {
            obj.insert("tags".into(), Value::from(t.clone()));
        }
        if let Some(l) = &g.lock {
            obj.insert("lock".into(), Value::from(l.clone()));
        }
    }
    v
}

/// Proxmox's canonical form of a `net[n]` value: `name` first, the other
/// keys sorted, a MAC address and `type=veth` added when missing.
fn normalize_net(value: &str) -> String {
    let mut kv: BTreeMap<String, String> = value
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    kv.entry("hwaddr".into()).or_insert_with(|| {
        let r: [u8; 3] = rand::random();
        format!("BC:24:11:{:02X}:{:02X}:{:02X}", r[0], r[1], r[2])
    });
    kv.entry("type".into()).or_insert_with(|| "veth".into());
    let name = kv.remove("name").unwrap_or_default();
    std::iter::once(format!("name={name}"))
        .chain(kv.into_iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

fn normalize_tags(value: &str) -> String {
    let mut tags: Vec<&str> = value
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags.join(";")
}

/// Store one parameter the way Proxmox writes it into the config.
fn store(config: &mut BTreeMap<String, String>, key: &str, value: String) {
    let value = if key.starts_with("net") {
        normalize_net(&value)
    } else if key == "tags" {
        normalize_tags(&value)
    } else {
        value
    };
    config.insert(key.to_string(), value);
}

/// `STORAGE:SIZE` allocates a new volume; anything else is kept.
fn allocate_rootfs(value: &str, vmid: u32, disk: usize) -> Result<String, ApiError> {
    let (vol, opts) = value.split_once(',').map_or((value, ""), |(a, b)| (a, b));
    let vol = match vol.strip_prefix("volume=").unwrap_or(vol).split_once(':') {
        Some((storage, size)) if size.parse::<f64>().is_ok() => {
            format!("{storage}:vm-{vmid}-disk-{disk},size={size}G")
        }
        _ => vol.to_string(),
    };
    Ok(if opts.is_empty() {
        vol
    } else {
        format!("{vol},{opts}")
    })
}

fn create(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    if let Some(other) = ctx.st.guest_node(vmid) {
        return Err(ApiError::fail(format!(
            "unable to create CT {vmid} - CT {vmid} already exists on node '{other}'"
        )));
    }
    let template = ctx.s("ostemplate")?;
    let have = ctx
        .st
        .storage
        .get(&node)
        .into_iter()
        .flat_map(|s| s.values())
        .flat_map(|s| s.volumes.iter())
        .any(|v: &Volume| v.volid == template);
    if !have && !ctx.p.flag("restore", false) {
        return Err(ApiError::fail(format!(
            "volume '{template}' does not exist"
        )));
    }
    let storage = ctx.p.str("storage").unwrap_or("local").to_string();
    let mut config = BTreeMap::new();
    for (k, v) in &ctx.p.0 {
        if !NOT_STORED.contains(&k.as_str()) {
            store(&mut config, k, v.to_config_string());
        }
    }
    let rootfs = config
        .get("rootfs")
        .cloned()
        .unwrap_or_else(|| format!("{storage}:4"));
    let rootfs_storage = rootfs.split(':').next().unwrap_or_default().to_string();
    let ok_storage = ctx
        .st
        .storage
        .get(&node)
        .and_then(|s| s.get(&rootfs_storage))
        .is_some_and(|s| s.content.iter().any(|c| c == "rootdir"));
    if !ok_storage {
        return Err(ApiError::fail(format!(
            "storage '{rootfs_storage}' does not support container directories"
        )));
    }
    config.insert("rootfs".into(), allocate_rootfs(&rootfs, vmid, 0)?);
    config
        .entry("arch".into())
        .or_insert_with(|| "amd64".into());
    config
        .entry("hostname".into())
        .or_insert_with(|| format!("CT{vmid}"));
    config
        .entry("memory".into())
        .or_insert_with(|| "512".into());
    config.entry("swap".into()).or_insert_with(|| "512".into());
    let os = template.rsplit('/').next().unwrap_or_default();
    let ostype = [
        "debian",
        "ubuntu",
        "alpine",
        "centos",
        "fedora",
        "archlinux",
    ]
    .into_iter()
    .find(|o| os.starts_with(o))
    .unwrap_or("unmanaged");
    config
        .entry("ostype".into())
        .or_insert_with(|| ostype.into());
    let start = ctx.p.flag("start", false);
    let version = ctx.st.next_config_version();
    ctx.st.guests.insert(
        vmid,
        Guest {
            node: node.clone(),
            status: PowerState::Stopped,
            config,
            lock: Some("create".into()),
            version,
            started: None,
            created: version,
        },
    );
    ctx.st.vmlist_version += 1;
    let upid = ctx.st.start_task(
        &node,
        "vzcreate",
        &vmid.to_string(),
        ctx.user,
        Effect::Create { vmid, start },
    );
    Ok(Value::from(upid))
}

fn config_digest(config: &BTreeMap<String, String>) -> String {
    let text: String = config.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    hex::encode(Sha256::digest(text.as_bytes()))[..40].to_string()
}

fn get_config(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    let g = guest(ctx, &node, vmid)?;
    let ep = rules(ctx.st.version).endpoint("PUT", "/nodes/{node}/lxc/{vmid}/config");
    let mut out = Map::new();
    for (k, v) in &g.config {
        let kind = ep.and_then(|e| e.param(k)).map(|r| r.kind);
        let val = match kind {
            Some(Kind::Int | Kind::Bool) => v
                .parse::<i64>()
                .map_or_else(|_| Value::from(v.clone()), Value::from),
            Some(Kind::Num) => v
                .parse::<f64>()
                .map_or_else(|_| Value::from(v.clone()), Value::from),
            _ => Value::from(v.clone()),
        };
        out.insert(k.clone(), val);
    }
    out.insert("digest".into(), Value::from(config_digest(&g.config)));
    if let Some(l) = &g.lock {
        out.insert("lock".into(), Value::from(l.clone()));
    }
    Ok(Value::Object(out))
}

fn put_config(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    let g = guest(ctx, &node, vmid)?;
    not_locked(g, vmid)?;
    check_digest(ctx, g)?;
    let mut config = g.config.clone();
    for key in ctx.p.delete_list() {
        if ctx.p.has(&key) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{key}' and -delete {key}' at the same time"),
            ));
        }
        match key.as_str() {
            "memory" | "rootfs" | "ostype" => {
                return Err(ApiError::fail(format!(
                    "unable to delete required option '{key}'"
                )));
            }
            "unprivileged" => {
                return Err(ApiError::fail(format!(
                    "unable to delete read-only option: '{key}'"
                )));
            }
            _ => {}
        }
        config.remove(&key);
    }
    for (k, v) in &ctx.p.0 {
        if NOT_STORED.contains(&k.as_str()) {
            continue;
        }
        if k == "rootfs" || k.starts_with("mp") {
            let disk = config.keys().filter(|k| k.starts_with("mp")).count() + 1;
            config.insert(
                k.clone(),
                allocate_rootfs(&v.to_config_string(), vmid, disk)?,
            );
        } else {
            store(&mut config, k, v.to_config_string());
        }
    }
    let version = ctx.st.next_config_version();
    if let Some(g) = ctx.st.guests.get_mut(&vmid) {
        g.config = config;
        g.version = version;
    }
    ctx.st.vmlist_version += 1;
    Ok(Value::Null)
}

/// Refuse a write whose `digest` is not the config's.
fn check_digest(ctx: &Ctx<'_>, g: &Guest) -> Result<(), ApiError> {
    match ctx.p.str("digest") {
        Some(d) if d != config_digest(&g.config) => Err(ApiError::fail(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

/// `PUT .../resize`: `+SIZE` grows by, `SIZE` grows to (`K`/`M`/`G`/`T`,
/// bytes without a unit). The checks run before the task starts; the new
/// size is written when it ends.
fn resize(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    let disk = ctx.s("disk")?;
    let size = ctx.s("size")?;
    let g = guest(ctx, &node, vmid)?;
    not_locked(g, vmid)?;
    check_digest(ctx, g)?;
    let value = g
        .config
        .get(&disk)
        .ok_or_else(|| ApiError::fail(format!("unable to parse volume ID '{disk}'")))?;
    let current = value
        .split(',')
        .find_map(|o| o.strip_prefix("size="))
        .and_then(parse_size)
        .ok_or_else(|| {
            let volume = value.split(',').next().unwrap_or_default();
            ApiError::fail(format!(
                "Could not determine current size of volume '{volume}'"
            ))
        })?;
    let (relative, amount) = match size.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, size.as_str()),
    };
    let amount = parse_size(amount).ok_or_else(|| ApiError::fail("invalid size string"))?;
    let wanted = if relative {
        current.saturating_add(amount)
    } else {
        amount
    };
    if wanted < current {
        return Err(ApiError::fail("unable to shrink disk size"));
    }
    if wanted == current {
        return Err(ApiError::fail("disk is already at specified size"));
    }
    let upid = ctx.st.start_task(
        &node,
        "resize",
        &vmid.to_string(),
        ctx.user,
        Effect::Resize {
            vmid,
            disk,
            size: format_size(wanted),
        },
    );
    Ok(Value::from(upid))
}

fn status(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    let g = guest(ctx, &node, vmid)?;
    let mut v = summary(vmid, g, ctx.st.cpu_of(g));
    let managed = ctx.st.ha.contains_key(&format!("ct:{vmid}"));
    if let Some(o) = v.as_object_mut() {
        o.insert("ha".into(), json!({ "managed": u8::from(managed) }));
    }
    Ok(v)
}

fn power(ctx: &mut Ctx<'_>, kind: &str, to: PowerState) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    let g = guest(ctx, &node, vmid)?;
    if kind != "vzstop" || !ctx.p.flag("skiplock", false) {
        not_locked(g, vmid)?;
    }
    match (kind, g.status) {
        ("vzstart", PowerState::Running) => {
            return Err(ApiError::fail(format!("CT {vmid} already running")));
        }
        ("vzstop" | "vzshutdown", PowerState::Stopped) => {
            return Err(ApiError::fail(format!("CT {vmid} not running")));
        }
        _ => {}
    }
    let upid = ctx.st.start_task(
        &node,
        kind,
        &vmid.to_string(),
        ctx.user,
        Effect::Power(vmid, to),
    );
    Ok(Value::from(upid))
}

fn destroy(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let vmid = ctx.vmid()?;
    let g = guest(ctx, &node, vmid)?;
    not_locked(g, vmid)?;
    if g.status == PowerState::Running && !ctx.p.flag("force", false) {
        return Err(ApiError::fail(format!(
            "CT {vmid} is running - destroy failed"
        )));
    }
    if ctx.st.ha.contains_key(&format!("ct:{vmid}")) && !ctx.p.flag("purge", false) {
        return Err(ApiError::fail(format!(
            "unable to remove CT {vmid} - used in HA resources and purge parameter not set."
        )));
    }
    if let Some(g) = ctx.st.guests.get_mut(&vmid) {
        g.lock = Some("destroyed".into());
    }
    let upid = ctx.st.start_task(
        &node,
        "vzdestroy",
        &vmid.to_string(),
        ctx.user,
        Effect::Destroy(vmid),
    );
    Ok(Value::from(upid))
}

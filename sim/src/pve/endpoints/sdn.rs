//! SDN under `/cluster/sdn`: controllers, zones, vnets, subnets (edits stay
//! pending until `PUT /cluster/sdn` applies them), apply, and on 9.x the
//! global SDN lock and rollback.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, list};
use crate::pve::error::{ApiError, Reply};
use crate::pve::schema::PveVersion;
use crate::pve::state::{Effect, Obj, SdnConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Controller,
    Zone,
    Vnet,
    Subnet,
}

impl K {
    fn idkey(self) -> &'static str {
        match self {
            K::Controller => "controller",
            K::Zone => "zone",
            K::Vnet => "vnet",
            K::Subnet => "subnet",
        }
    }
    fn map(self, c: &SdnConfig) -> &BTreeMap<String, Obj> {
        match self {
            K::Controller => &c.controllers,
            K::Zone => &c.zones,
            K::Vnet => &c.vnets,
            K::Subnet => &c.subnets,
        }
    }
    fn map_mut(self, c: &mut SdnConfig) -> &mut BTreeMap<String, Obj> {
        match self {
            K::Controller => &mut c.controllers,
            K::Zone => &mut c.zones,
            K::Vnet => &mut c.vnets,
            K::Subnet => &mut c.subnets,
        }
    }
}

/// Parameters that steer a call rather than being stored.
const CONTROL: &[&str] = &["lock-token", "digest", "delete", "pending", "running"];

pub fn dispatch(method: &str, rest: &str, ctx: &mut Ctx<'_>) -> Reply {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let kind = |s: &str| match s {
        "controllers" => Some(K::Controller),
        "zones" => Some(K::Zone),
        "vnets" => Some(K::Vnet),
        _ => None,
    };
    match (method, parts.as_slice()) {
        ("GET", []) => list(
            ["vnets", "zones", "controllers"]
                .iter()
                .map(|i| json!({ "id": i }))
                .collect(),
        ),
        ("PUT", []) => apply(ctx),
        ("POST", ["lock"]) => lock(ctx),
        ("DELETE", ["lock"]) => unlock(ctx),
        ("POST", ["rollback"]) => rollback(ctx),
        ("GET", ["vnets", "{vnet}", "subnets"]) => read_list(ctx, K::Subnet),
        ("POST", ["vnets", "{vnet}", "subnets"]) => create(ctx, K::Subnet),
        (m, ["vnets", "{vnet}", "subnets", "{subnet}"]) => item(m, ctx, K::Subnet),
        ("GET", [k]) if kind(k).is_some() => read_list(ctx, kind(k).unwrap_or(K::Zone)),
        ("POST", [k]) if kind(k).is_some() => create(ctx, kind(k).unwrap_or(K::Zone)),
        (m, [k, _]) if kind(k).is_some() => item(m, ctx, kind(k).unwrap_or(K::Zone)),
        _ => Err(ApiError::status(
            501,
            format!("Method '{method} /cluster/sdn{rest}' not implemented"),
        )),
    }
}

fn item(method: &str, ctx: &mut Ctx<'_>, k: K) -> Reply {
    match method {
        "GET" => read_one(ctx, k),
        "PUT" => update(ctx, k),
        "DELETE" => delete(ctx, k),
        _ => Err(ApiError::status(501, "Method not implemented")),
    }
}

fn digest(m: &BTreeMap<String, Obj>) -> String {
    let text = serde_json::to_string(m).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))[..40].to_string()
}

fn check_lock(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    if ctx.st.version < PveVersion::V9_1 {
        return Ok(());
    }
    match (&ctx.st.sdn.lock_token, ctx.p.str("lock-token")) {
        (None, _) => Ok(()),
        (Some(t), Some(given)) if t == given => Ok(()),
        (Some(_), _) => Err(ApiError::fail(
            "could not lock SDN config - the SDN configuration is locked, lock-token does not match",
        )),
    }
}

/// The id of the object a call addresses (subnets: `<zone>-<ip>-<mask>`).
fn object_id(ctx: &Ctx<'_>, k: K) -> Result<String, ApiError> {
    let raw = ctx.s(k.idkey())?;
    if k != K::Subnet || !raw.contains('/') {
        return Ok(raw);
    }
    let vnet = ctx.s("vnet")?;
    let zone = ctx
        .st
        .sdn
        .current
        .vnets
        .get(&vnet)
        .and_then(|v| v.get("zone"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::fail(format!("vnet '{vnet}' does not exist")))?;
    let (ip, mask) = raw.split_once('/').unwrap_or((&raw, ""));
    Ok(format!("{zone}-{ip}-{mask}"))
}

fn create(ctx: &mut Ctx<'_>, k: K) -> Reply {
    check_lock(ctx)?;
    let id = object_id(ctx, k)?;
    if k.map(&ctx.st.sdn.current).contains_key(&id) {
        return Err(ApiError::fail(format!(
            "sdn {} object ID '{id}' already defined",
            k.idkey()
        )));
    }
    let mut obj = Map::new();
    for (name, v) in &ctx.p.0 {
        if name != k.idkey() && !CONTROL.contains(&name.as_str()) {
            obj.insert(name.clone(), v.to_json());
        }
    }
    if k == K::Subnet {
        obj.insert("type".into(), Value::from("subnet"));
    }
    if k == K::Vnet {
        obj.insert("type".into(), Value::from("vnet"));
    }
    check_object(ctx, k, &id, &obj)?;
    k.map_mut(&mut ctx.st.sdn.current).insert(id, obj);
    Ok(Value::Null)
}

fn update(ctx: &mut Ctx<'_>, k: K) -> Reply {
    check_lock(ctx)?;
    let id = object_id(ctx, k)?;
    let cur = k.map(&ctx.st.sdn.current);
    let mut obj = cur
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::fail(format!("sdn {} '{id}' does not exist", k.idkey())))?;
    if let Some(d) = ctx.p.str("digest")
        && d != digest(cur)
    {
        return Err(ApiError::fail(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    for key in ctx.p.delete_list() {
        obj.remove(&key);
    }
    for (name, v) in &ctx.p.0 {
        if name != k.idkey()
            && !CONTROL.contains(&name.as_str())
            && !(k == K::Subnet && name == "vnet")
        {
            obj.insert(name.clone(), v.to_json());
        }
    }
    check_object(ctx, k, &id, &obj)?;
    k.map_mut(&mut ctx.st.sdn.current).insert(id, obj);
    Ok(Value::Null)
}

fn delete(ctx: &mut Ctx<'_>, k: K) -> Reply {
    check_lock(ctx)?;
    let id = object_id(ctx, k)?;
    let cfg = &ctx.st.sdn.current;
    if !k.map(cfg).contains_key(&id) {
        return Err(ApiError::fail(format!(
            "sdn {} '{id}' does not exist",
            k.idkey()
        )));
    }
    let user_of = |m: &BTreeMap<String, Obj>, key: &str| {
        m.iter()
            .find(|(_, o)| o.get(key).and_then(Value::as_str) == Some(id.as_str()))
            .map(|(u, _)| u.clone())
    };
    let used = match k {
        K::Controller => user_of(&cfg.zones, "controller").map(|z| format!("zone '{z}'")),
        K::Zone => user_of(&cfg.vnets, "zone").map(|v| format!("vnet '{v}'")),
        K::Vnet => user_of(&cfg.subnets, "vnet").map(|s| format!("subnet '{s}'")),
        K::Subnet => None,
    };
    if let Some(u) = used {
        return Err(ApiError::fail(format!(
            "cannot delete {} '{id}': it is used by {u}",
            k.idkey()
        )));
    }
    k.map_mut(&mut ctx.st.sdn.current).remove(&id);
    Ok(Value::Null)
}

fn int(o: &Obj, key: &str) -> Option<i64> {
    o.get(key).and_then(Value::as_i64)
}
fn text<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

fn missing(name: &str) -> ApiError {
    ApiError::param(name, "property is missing and it is not optional")
}

/// Rules that span fields and objects (what the SDN plugins check).
fn check_object(ctx: &Ctx<'_>, k: K, id: &str, o: &Obj) -> Result<(), ApiError> {
    let cfg = &ctx.st.sdn.current;
    let mut vnis = ctx.st.vnis_in_use();
    vnis.retain(|_, owner| *owner != format!("{} {id}", k.idkey()));
    match k {
        K::Controller => {
            if text(o, "type") == Some("evpn") {
                for req in ["asn", "peers"] {
                    if !o.contains_key(req) {
                        return Err(missing(req));
                    }
                }
                if let Some(other) = cfg
                    .controllers
                    .iter()
                    .find(|(cid, c)| *cid != id && text(c, "type") == Some("evpn"))
                {
                    return Err(ApiError::fail(format!(
                        "only 1 evpn controller can be defined (found '{}')",
                        other.0
                    )));
                }
            }
        }
        K::Zone => {
            let needs: &[&str] = match text(o, "type") {
                Some("vxlan") => &["peers"],
                Some("evpn") => &["controller", "vrf-vxlan"],
                Some("vlan" | "qinq") => &["bridge"],
                _ => &[],
            };
            for req in needs {
                if !o.contains_key(*req) {
                    return Err(missing(req));
                }
            }
            if let Some(c) = text(o, "controller") {
                match cfg.controllers.get(c) {
                    Some(ctl) if text(ctl, "type") == Some("evpn") => {}
                    Some(_) => {
                        return Err(ApiError::param(
                            "controller",
                            format!("controller '{c}' is not an evpn controller"),
                        ));
                    }
                    None => {
                        return Err(ApiError::param(
                            "controller",
                            format!("controller '{c}' does not exist"),
                        ));
                    }
                }
            }
            if let Some(n) = int(o, "vrf-vxlan")
                && let Some(owner) = vnis.get(&n)
            {
                return Err(ApiError::param(
                    "vrf-vxlan",
                    format!("vxlan id {n} is already used by {owner}"),
                ));
            }
        }
        K::Vnet => {
            let zname = text(o, "zone").unwrap_or_default();
            let zone = cfg
                .zones
                .get(zname)
                .ok_or_else(|| ApiError::param("zone", format!("zone '{zname}' does not exist")))?;
            let ztype = text(zone, "type").unwrap_or_default();
            let tag = int(o, "tag");
            match (ztype, tag) {
                ("vxlan" | "evpn", None) => {
                    return Err(ApiError::param("tag", "missing vxlan tag"));
                }
                ("vlan" | "qinq", None) => return Err(ApiError::param("tag", "missing vlan tag")),
                ("vlan" | "qinq", Some(t)) if t > 4094 => {
                    return Err(ApiError::param("tag", "vlan tag max value is 4094"));
                }
                ("simple", Some(_)) => {
                    return Err(ApiError::param(
                        "tag",
                        "tag is not allowed in a simple zone",
                    ));
                }
                _ => {}
            }
            if let Some(t) = tag
                && let Some(owner) = vnis.get(&t)
            {
                return Err(ApiError::param(
                    "tag",
                    format!("tag {t} already exists in {owner}"),
                ));
            }
        }
        K::Subnet => {
            let vnet = text(o, "vnet").unwrap_or_default();
            if !cfg.vnets.contains_key(vnet) {
                return Err(ApiError::fail(format!("vnet '{vnet}' does not exist")));
            }
            let (net, mask) = subnet_parts(id);
            if let (Some(gw), Ok(net), Ok(mask)) = (
                text(o, "gateway"),
                net.parse::<IpAddr>(),
                mask.parse::<u8>(),
            ) && !in_subnet(gw, net, mask)
            {
                return Err(ApiError::param(
                    "gateway",
                    format!("gateway {gw} is not in subnet {net}/{mask}"),
                ));
            }
        }
    }
    Ok(())
}

fn subnet_parts(id: &str) -> (&str, &str) {
    let mut it = id.splitn(3, '-');
    let _zone = it.next();
    (it.next().unwrap_or(""), it.next().unwrap_or(""))
}

fn in_subnet(ip: &str, net: IpAddr, mask: u8) -> bool {
    match (ip.parse::<IpAddr>(), net) {
        (Ok(IpAddr::V4(a)), IpAddr::V4(n)) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(mask.min(32)))
                .unwrap_or(0);
            u32::from(a) & m == u32::from(n) & m
        }
        (Ok(IpAddr::V6(a)), IpAddr::V6(n)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(mask.min(128)))
                .unwrap_or(0);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// How an object reads back: the id key, stored keys, derived keys.
fn present(k: K, id: &str, o: &Obj) -> Map<String, Value> {
    let mut m = o.clone();
    m.insert(k.idkey().into(), Value::from(id));
    if k == K::Subnet {
        let (net, mask) = subnet_parts(id);
        m.insert("cidr".into(), Value::from(format!("{net}/{mask}")));
        m.insert("network".into(), Value::from(net));
        m.insert("mask".into(), Value::from(mask));
        m.insert(
            "zone".into(),
            Value::from(id.split('-').next().unwrap_or("")),
        );
    }
    m
}

/// The pending view of one object (what `pending=1` returns).
fn pending_view(k: K, id: &str, running: Option<&Obj>, current: Option<&Obj>) -> Value {
    let mut out = Map::new();
    let mut pending = Map::new();
    let mut state: Option<&str> = None;
    if let Some(r) = running {
        out = present(k, id, r);
        match current {
            None => state = Some("deleted"),
            Some(c) => {
                for (key, rv) in r {
                    match c.get(key) {
                        None => {
                            pending.insert(key.clone(), Value::from("deleted"));
                            state = Some("changed");
                        }
                        Some(cv) if cv != rv => {
                            pending.insert(key.clone(), cv.clone());
                            state = Some("changed");
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    } else {
        out.insert(k.idkey().into(), Value::from(id));
        state = Some("new");
    }
    if let Some(c) = current {
        for (key, cv) in c {
            if key == "type" || key == "vnet" {
                out.insert(key.clone(), cv.clone());
            } else if running.is_none_or(|r| !r.contains_key(key)) {
                pending.insert(key.clone(), cv.clone());
                if running.is_some() {
                    state = Some("changed");
                }
            }
        }
    }
    if let Some(s) = state {
        out.insert("state".into(), Value::from(s));
        out.insert("pending".into(), Value::Object(pending));
    }
    Value::Object(out)
}

fn belongs(ctx: &Ctx<'_>, k: K, o: Option<&Obj>) -> bool {
    k != K::Subnet || o.and_then(|o| text(o, "vnet")) == ctx.p.str("vnet")
}

fn read_list(ctx: &mut Ctx<'_>, k: K) -> Reply {
    let sdn = &ctx.st.sdn;
    let (run, cur) = (k.map(&sdn.running), k.map(&sdn.current));
    let type_filter = ctx.p.str("type");
    let mut out = Vec::new();
    if ctx.p.flag("pending", false) {
        let ids: std::collections::BTreeSet<&String> = run.keys().chain(cur.keys()).collect();
        for id in ids {
            let (r, c) = (run.get(id), cur.get(id));
            if belongs(ctx, k, c.or(r)) {
                out.push(pending_view(k, id, r, c));
            }
        }
    } else {
        let src = if ctx.p.flag("running", false) {
            run
        } else {
            cur
        };
        let d = digest(src);
        for (id, o) in src {
            if belongs(ctx, k, Some(o)) {
                let mut m = present(k, id, o);
                m.insert("digest".into(), Value::from(d.clone()));
                out.push(Value::Object(m));
            }
        }
    }
    if let Some(t) = type_filter {
        out.retain(|o| o.get("type").and_then(Value::as_str) == Some(t));
    }
    list(out)
}

fn read_one(ctx: &mut Ctx<'_>, k: K) -> Reply {
    let id = object_id(ctx, k)?;
    let sdn = &ctx.st.sdn;
    let (r, c) = (k.map(&sdn.running).get(&id), k.map(&sdn.current).get(&id));
    let missing = || ApiError::fail(format!("sdn {} '{id}' does not exist", k.idkey()));
    if !belongs(ctx, k, c.or(r)) {
        return Err(missing());
    }
    if ctx.p.flag("pending", false) {
        if r.is_none() && c.is_none() {
            return Err(missing());
        }
        return Ok(pending_view(k, &id, r, c));
    }
    let (src, o) = if ctx.p.flag("running", false) {
        (k.map(&sdn.running), r)
    } else {
        (k.map(&sdn.current), c)
    };
    let mut m = present(k, &id, o.ok_or_else(missing)?);
    m.insert("digest".into(), Value::from(digest(src)));
    Ok(Value::Object(m))
}

fn first_node(ctx: &Ctx<'_>) -> String {
    ctx.st
        .nodes
        .iter()
        .find(|(_, n)| n.online)
        .or_else(|| ctx.st.nodes.iter().next())
        .map(|(n, _)| n.clone())
        .unwrap_or_default()
}

fn release_after(ctx: &mut Ctx<'_>) {
    if ctx.p.has("lock-token") && ctx.p.flag("release-lock", true) {
        ctx.st.sdn.lock_token = None;
    }
}

fn apply(ctx: &mut Ctx<'_>) -> Reply {
    check_lock(ctx)?;
    ctx.st.sdn.running = ctx.st.sdn.current.clone();
    release_after(ctx);
    let node = first_node(ctx);
    let upid = ctx
        .st
        .start_task(&node, "reloadnetworkall", "", ctx.user, Effect::None);
    Ok(Value::from(upid))
}

fn lock(ctx: &mut Ctx<'_>) -> Reply {
    if ctx.st.sdn.lock_token.is_some() {
        return Err(ApiError::fail(
            "could not lock SDN config - SDN is already locked",
        ));
    }
    let sdn = &ctx.st.sdn;
    if !ctx.p.flag("allow-pending", false) && sdn.running != sdn.current {
        return Err(ApiError::fail(
            "there are pending changes, use the allow-pending parameter to lock anyway",
        ));
    }
    let token = format!("{:032x}", rand::random::<u128>());
    ctx.st.sdn.lock_token = Some(token.clone());
    Ok(Value::from(token))
}

fn unlock(ctx: &mut Ctx<'_>) -> Reply {
    let force = ctx.p.flag("force", false);
    match (&ctx.st.sdn.lock_token, ctx.p.str("lock-token")) {
        (None, _) => Ok(Value::Null),
        (Some(t), Some(given)) if t == given => {
            ctx.st.sdn.lock_token = None;
            Ok(Value::Null)
        }
        _ if force => {
            ctx.st.sdn.lock_token = None;
            Ok(Value::Null)
        }
        _ => Err(ApiError::fail("lock-token does not match the SDN lock")),
    }
}

fn rollback(ctx: &mut Ctx<'_>) -> Reply {
    check_lock(ctx)?;
    ctx.st.sdn.current = ctx.st.sdn.running.clone();
    release_after(ctx);
    Ok(Value::Null)
}

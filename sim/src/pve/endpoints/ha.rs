//! HA resources under `/cluster/ha/resources`: add, list, read, update,
//! remove. A bare VMID is resolved to `ct:`/`vm:` like Proxmox does. The
//! simulator has no HA groups: on 9.x, where groups became HA rules, a
//! `group` on add or update is refused as Proxmox refuses it once the
//! groups are migrated; 8.x takes any group name.

use serde_json::{Map, Value};

use super::{Ctx, list};
use crate::pve::error::{ApiError, Reply};
use crate::pve::schema::PveVersion;

const CONTROL: &[&str] = &["sid", "digest", "delete", "purge"];

pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    match (method, template) {
        ("GET", "/cluster/ha/resources") => {
            let filter = ctx.p.str("type");
            list(
                ctx.st
                    .ha
                    .iter()
                    .filter(|(_, o)| {
                        filter.is_none_or(|t| o.get("type").and_then(Value::as_str) == Some(t))
                    })
                    .map(|(sid, o)| present(sid, o))
                    .collect(),
            )
        }
        ("POST", "/cluster/ha/resources") => create(ctx),
        ("GET", "/cluster/ha/resources/{sid}") => {
            let sid = canonical(ctx)?;
            let o = ctx.st.ha.get(&sid).ok_or_else(|| no_such(&sid))?;
            Ok(present(&sid, o))
        }
        ("PUT", "/cluster/ha/resources/{sid}") => update(ctx),
        ("DELETE", "/cluster/ha/resources/{sid}") => {
            let sid = canonical(ctx)?;
            ctx.st.ha.remove(&sid).ok_or_else(|| {
                ApiError::fail(format!("cannot delete service '{sid}', not HA managed!"))
            })?;
            Ok(Value::Null)
        }
        _ => Err(ApiError::status(
            501,
            format!("Method '{method} {template}' not implemented"),
        )),
    }
}

/// 9.x: groups are HA rules now.
fn no_groups(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    if ctx.st.version >= PveVersion::V9_1 && ctx.p.has("group") {
        return Err(ApiError::fail(
            "invalid parameter 'group': ha groups have been migrated to rules",
        ));
    }
    Ok(())
}

fn no_such(sid: &str) -> ApiError {
    ApiError::fail(format!("no such resource '{sid}'"))
}

fn present(sid: &str, o: &Map<String, Value>) -> Value {
    let mut m = o.clone();
    m.insert("sid".into(), Value::from(sid));
    m.insert("digest".into(), Value::from("0"));
    Value::Object(m)
}

/// `ct:100`, `vm:100`, or `100` resolved through the guest list.
fn canonical(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let raw = ctx.s("sid")?;
    if raw.contains(':') {
        return Ok(raw);
    }
    let vmid: u32 = raw
        .parse()
        .map_err(|_| ApiError::param("sid", "unable to parse service id"))?;
    match ctx.st.guests.get(&vmid) {
        Some(_) => Ok(format!("ct:{vmid}")),
        None => Err(ApiError::fail(format!(
            "unable to find VM or CT with ID {vmid}"
        ))),
    }
}

fn create(ctx: &mut Ctx<'_>) -> Reply {
    let sid = canonical(ctx)?;
    let (kind, id) = sid.split_once(':').unwrap_or(("ct", &sid));
    if let Some(t) = ctx.p.str("type")
        && t != kind
    {
        return Err(ApiError::param(
            "type",
            format!("type mismatch - '{t}' does not match '{sid}'"),
        ));
    }
    no_groups(ctx)?;
    if kind == "ct"
        && !id
            .parse::<u32>()
            .is_ok_and(|v| ctx.st.guests.contains_key(&v))
    {
        return Err(ApiError::fail(format!(
            "resource '{sid}' does not exist in cluster"
        )));
    }
    if ctx.st.ha.contains_key(&sid) {
        return Err(ApiError::fail(format!(
            "resource ID '{sid}' already defined"
        )));
    }
    let mut o = Map::new();
    o.insert("type".into(), Value::from(kind));
    o.insert("state".into(), Value::from("started"));
    for (k, v) in &ctx.p.0 {
        if !CONTROL.contains(&k.as_str()) {
            o.insert(k.clone(), v.to_json());
        }
    }
    ctx.st.ha.insert(sid, o);
    Ok(Value::Null)
}

fn update(ctx: &mut Ctx<'_>) -> Reply {
    let sid = canonical(ctx)?;
    no_groups(ctx)?;
    let mut o = ctx.st.ha.get(&sid).cloned().ok_or_else(|| no_such(&sid))?;
    for k in ctx.p.delete_list() {
        o.remove(&k);
    }
    for (k, v) in &ctx.p.0 {
        if !CONTROL.contains(&k.as_str()) {
            o.insert(k.clone(), v.to_json());
        }
    }
    ctx.st.ha.insert(sid, o);
    Ok(Value::Null)
}

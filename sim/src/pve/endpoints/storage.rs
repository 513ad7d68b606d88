//! Storage under `/nodes/{node}/storage` and `/nodes/{node}/aplinfo`:
//! storage list, content list, a volume's attributes (its path), appliance
//! template list and download, URL download and upload (each a task that
//! adds a volume when it ends; an upload's bytes are kept in a file when
//! the simulator keeps them, see `SimConfig::volume_files`).

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Ctx, list};
use crate::pve::error::{ApiError, Reply};
use crate::pve::state::{Effect, Storage, Volume};

/// Templates the simulated appliance index offers.
pub const APPLIANCES: &[(&str, &str)] = &[
    ("debian-12-standard_12.7-1_amd64.tar.zst", "debian-12"),
    ("debian-13-standard_13.1-1_amd64.tar.zst", "debian-13"),
    ("alpine-3.22-default_20250617_amd64.tar.xz", "alpine-3.22"),
];

/// Size of every simulated storage (bytes).
pub(super) const STORAGE_TOTAL: u64 = 100_000_000_000;
/// What every simulated storage has in use (bytes).
pub(super) const STORAGE_USED: u64 = 10_000_000_000;

pub fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Reply {
    match (method, template) {
        ("GET", "/nodes/{node}/storage") => storages(ctx),
        ("GET", "/nodes/{node}/storage/{storage}/content") => content(ctx),
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}") => remove_volume(ctx),
        ("GET", "/nodes/{node}/storage/{storage}/content/{volume}") => volume_attributes(ctx),
        ("GET", "/nodes/{node}/aplinfo") => {
            ctx.node()?;
            list(
                APPLIANCES
                    .iter()
                    .map(|(t, os)| {
                        json!({
                            "template": t, "os": os, "type": "lxc", "section": "system",
                            "package": t.split('_').next().unwrap_or(t),
                            "version": t.split('_').nth(1).unwrap_or(""),
                            "headline": format!("{os} template"),
                        })
                    })
                    .collect(),
            )
        }
        ("POST", "/nodes/{node}/aplinfo") => {
            let t = ctx.s("template")?;
            if !APPLIANCES.iter().any(|(a, _)| *a == t) {
                return Err(ApiError::fail(format!("no such template '{t}'")));
            }
            add_volume(ctx, "download", "vztmpl", &t, 126_000_000, None)
        }
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => {
            let content = ctx.s("content")?;
            let name = ctx.s("filename")?;
            add_volume(ctx, "download", &content, &name, 100_000_000, None)
        }
        ("POST", "/nodes/{node}/storage/{storage}/upload") => {
            let content = ctx.s("content")?;
            let name = ctx.s("filename")?;
            let file = ctx
                .upload
                .ok_or_else(|| ApiError::param("filename", "no file uploaded"))?;
            if let (Some(alg), Some(want)) =
                (ctx.p.str("checksum-algorithm"), ctx.p.str("checksum"))
            {
                let got = match alg {
                    "sha256" => Some(&file.sha256),
                    "sha512" => Some(&file.sha512),
                    _ => None,
                };
                if got.is_some_and(|g| !g.eq_ignore_ascii_case(want)) {
                    return Err(ApiError::fail(format!(
                        "checksum mismatch: got '{}' != expected '{want}'",
                        got.map(String::as_str).unwrap_or_default()
                    )));
                }
            }
            let (size, data) = (file.size, file.data.clone());
            let kept = keep_file(ctx, &content, &name, &data)?;
            add_volume(ctx, "imgcopy", &content, &name, size, kept)
        }
        _ => Err(ApiError::status(
            501,
            format!("Method '{method} {template}' not implemented"),
        )),
    }
}

fn storage_of<'a>(ctx: &'a Ctx<'_>, node: &str) -> Result<(String, &'a Storage), ApiError> {
    let id = ctx.s("storage")?;
    let st = ctx
        .st
        .storage
        .get(node)
        .and_then(|s| s.get(&id))
        .ok_or_else(|| ApiError::fail(format!("storage '{id}' does not exist")))?;
    Ok((id, st))
}

fn storages(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let want = ctx.p.str("content");
    let only = ctx.p.str("storage");
    list(
        ctx.st
            .storage
            .get(&node)
            .into_iter()
            .flatten()
            .filter(|(id, s)| {
                only.is_none_or(|o| o == *id)
                    && want.is_none_or(|w| w.split(',').any(|c| s.content.iter().any(|x| x == c)))
            })
            .map(|(id, s)| {
                json!({
                    "storage": id, "type": s.kind, "content": s.content.join(","),
                    "active": 1, "enabled": 1, "shared": 0,
                    "total": STORAGE_TOTAL, "used": STORAGE_USED,
                    "avail": STORAGE_TOTAL - STORAGE_USED,
                })
            })
            .collect(),
    )
}

fn content(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let (_, st) = storage_of(ctx, &node)?;
    let want = ctx.p.str("content");
    list(
        st.volumes
            .iter()
            .filter(|v| want.is_none_or(|w| v.content == w))
            .map(|v| json!({ "volid": v.volid, "content": v.content, "size": v.size, "format": v.format, "ctime": 1_700_000_000 }))
            .collect(),
    )
}

/// `pvesm path` through the API: a volume's attributes, its path on the
/// node among them (the kept file of an uploaded volume, else where
/// Proxmox keeps a `dir` storage's volumes under `/var/lib/vz`).
fn volume_attributes(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let (storage, st) = storage_of(ctx, &node)?;
    let volid = volid_of(ctx, &storage)?;
    let v = st
        .volumes
        .iter()
        .find(|v| v.volid == volid)
        .ok_or_else(|| ApiError::fail(format!("volume '{volid}' does not exist")))?;
    let path = match &v.file {
        Some(file) => file.display().to_string(),
        None => {
            let (_, rest) = volid.split_once(':').unwrap_or_default();
            let rest = rest.replacen("vztmpl/", "template/cache/", 1);
            format!("/var/lib/vz/{rest}")
        }
    };
    Ok(json!({ "path": path, "size": v.size, "used": v.size, "format": v.format }))
}

/// Keeps an uploaded volume's bytes in a file when the simulator keeps
/// them (`<dir>/<node>/<storage>/<content>/<name>`); the file, if kept.
fn keep_file(
    ctx: &Ctx<'_>,
    content: &str,
    name: &str,
    data: &[u8],
) -> Result<Option<PathBuf>, ApiError> {
    let Some(dir) = &ctx.st.volume_files else {
        return Ok(None);
    };
    if name.contains('/') || name.starts_with('.') {
        return Err(ApiError::param(
            "filename",
            format!("invalid filename '{name}'"),
        ));
    }
    let file = dir
        .join(ctx.node()?)
        .join(ctx.s("storage")?)
        .join(content)
        .join(name);
    file.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&file, data))
        .map_err(|e| ApiError::fail(format!("cannot keep {}: {e}", file.display())))?;
    Ok(Some(file))
}

/// The volume id the `{volume}` of the path names: as given when it has
/// its storage (`local:vztmpl/x`), else on `storage`.
fn volid_of(ctx: &Ctx<'_>, storage: &str) -> Result<String, ApiError> {
    let volume = ctx.s("volume")?;
    Ok(if volume.contains(':') {
        volume
    } else {
        format!("{storage}:{volume}")
    })
}

/// `pvesm free` through the API: a task (`imgdel`) that removes the
/// volume when it ends. With `delay`, Proxmox waits for the task and
/// answers null when it ended in time; the simulator's tasks end on their
/// own clock, so it answers with the task as without.
fn remove_volume(ctx: &mut Ctx<'_>) -> Reply {
    let node = ctx.node()?;
    let (storage, st) = storage_of(ctx, &node)?;
    let volid = volid_of(ctx, &storage)?;
    if !st.volumes.iter().any(|v| v.volid == volid) {
        return Err(ApiError::fail(format!("volume '{volid}' does not exist")));
    }
    let upid = ctx.st.start_task(
        &node,
        "imgdel",
        &volid,
        ctx.user,
        Effect::RemoveVolume {
            node: node.clone(),
            storage,
            volid: volid.clone(),
        },
    );
    Ok(Value::from(upid))
}

fn add_volume(
    ctx: &mut Ctx<'_>,
    task: &str,
    content: &str,
    name: &str,
    size: u64,
    file: Option<PathBuf>,
) -> Reply {
    let node = ctx.node()?;
    let (storage, st) = storage_of(ctx, &node)?;
    if !st.content.iter().any(|c| c == content) {
        return Err(ApiError::fail(format!(
            "storage '{storage}' does not support '{content}' content"
        )));
    }
    if name.contains('/') || name.starts_with('.') {
        return Err(ApiError::param(
            "filename",
            format!("invalid filename '{name}'"),
        ));
    }
    let dir = match content {
        "vztmpl" => "vztmpl",
        "iso" => "iso",
        _ => "import",
    };
    let format = name.rsplit('.').next().unwrap_or("raw").to_string();
    let volume = Volume {
        volid: format!("{storage}:{dir}/{name}"),
        content: content.to_string(),
        size,
        format,
        file,
    };
    let task_id = storage.clone();
    let upid = ctx.st.start_task(
        &node,
        task,
        &task_id,
        ctx.user,
        Effect::AddVolume {
            node: node.clone(),
            storage,
            volume,
        },
    );
    Ok(Value::from(upid))
}

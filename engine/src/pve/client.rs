//! [`PveClient`]: the [`Pve`] trait over HTTP(S). Reads are retried on
//! transient errors; so are updates that set absolute values (repeating
//! them changes nothing). Creates, deletes, starts, stops, applies and
//! locks are sent once.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::Pve;
use super::auth::Credentials;
use super::error::{PveError, Result};
use super::gate::{Access, Gate};
use super::http::{ClientOptions, Retry, Transport, seg};
use super::lxc::{LxcConfig, LxcCreate, LxcStatus, LxcUpdate};
use super::sdn::{
    SdnCollection, SdnKind, SdnLock, SdnLockToken, SdnSpec, SubnetConfig, VnetConfig,
};
use super::tls::Trust;
use super::types::{
    ApplianceTemplate, ClusterStatusEntry, DownloadUrl, HaResource, HaResourceAdd, HaResourceSpec,
    NetworkInterface, NodeDns, NodeStatus, NodeStatusWire, NodeStorage, NodeSummary, Release,
    StorageUpload, StorageVolume, TaskStatus, Upid, VersionInfo, VolumeAttributes,
};
use super::wire::Method;

/// Where and how to reach Proxmox.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://HOST:8006` (the `/api2/json` suffix is added if missing).
    pub base_url: String,
    /// What to trust.
    pub trust: Trust,
    /// Token or password.
    pub credentials: Credentials,
    /// Timeouts and retries.
    pub options: ClientOptions,
}

/// The Proxmox API client.
#[derive(Debug)]
pub struct PveClient {
    t: Transport,
    release: OnceLock<Release>,
}

type Params = Vec<(String, String)>;

fn p(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// A typed value as form parameters (booleans as 0/1, arrays repeated).
fn to_params<T: Serialize>(v: &T) -> Result<Params> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(map_params(m)),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(PveError::Config(format!("encoding parameters: {e}"))),
    }
}

/// JSON fields as form parameters (booleans as 0/1, arrays repeated).
fn map_params(m: serde_json::Map<String, Value>) -> Params {
    let mut out = Vec::new();
    {
        for (k, v) in m {
            match v {
                Value::Null => {}
                Value::Bool(b) => out.push((k, u8::from(b).to_string())),
                Value::String(s) => out.push((k, s)),
                Value::Array(items) => {
                    for i in items {
                        out.push((
                            k.clone(),
                            i.as_str().map_or_else(|| i.to_string(), str::to_string),
                        ));
                    }
                }
                other => out.push((k, other.to_string())),
            }
        }
    }
    out
}

fn lock_param(params: &mut Params, lock: Option<&SdnLockToken>) {
    if let Some(l) = lock {
        params.push(p("lock-token", &l.0));
    }
}

fn collection_path(at: SdnCollection<'_>) -> String {
    match at {
        SdnCollection::Subnets(vnet) => format!("/cluster/sdn/vnets/{}/subnets", seg(vnet)),
        other => format!("/cluster/sdn/{}s", other.kind()),
    }
}

/// Subnet keys that are read back but never sent.
const SUBNET_READ_ONLY: &[&str] = &["cidr", "zone", "network", "mask"];

/// Whether a key read back from Proxmox must not be sent back.
fn read_only(kind: SdnKind, key: &str) -> bool {
    key == "digest" || (kind == SdnKind::Subnet && SUBNET_READ_ONLY.contains(&key))
}

impl PveClient {
    /// A client; no request is made yet.
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        Ok(PveClient {
            t: Transport::new(&cfg.base_url, &cfg.trust, cfg.credentials, cfg.options)?,
            release: OnceLock::new(),
        })
    }

    /// The same connection (HTTP client, login ticket, known release),
    /// with every request passing `gate` first (see [`Gate`]). Cheap: the
    /// connection is shared, not rebuilt.
    pub fn with_gate(&self, gate: Arc<dyn Gate>) -> PveClient {
        let release = OnceLock::new();
        if let Some(r) = self.release.get() {
            let _ = release.set(*r);
        }
        PveClient {
            t: self.t.with_gate(gate),
            release,
        }
    }

    /// Call any API path (after `/api2/json`) and return its `data`. Use
    /// `Retry::Safe` only for reads and for writes that are idempotent.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        retry: Retry,
    ) -> Result<Value> {
        self.t.call(method, path, params, retry)
    }

    fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        retry: Retry,
    ) -> Result<T> {
        let data = self.t.call(method.clone(), path, params, retry)?;
        serde_json::from_value(data).map_err(|e| PveError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str, params: &[(String, String)]) -> Result<T> {
        self.typed(Method::GET, path, params, Retry::Safe)
    }

    fn upid(&self, method: Method, path: &str, params: &[(String, String)]) -> Result<Upid> {
        self.typed(method, path, params, Retry::Never)
    }

    /// Update an SDN object: set what `spec` holds, remove `delete`.
    fn sdn_set(
        &self,
        id: &str,
        spec: SdnSpec<'_>,
        delete: &[&str],
        lock: Option<&SdnLockToken>,
    ) -> Result<()> {
        let kind = spec.kind();
        let mut params = map_params(spec.to_map()?);
        params.retain(|(k, _)| {
            !read_only(kind, k)
                && k != "type"
                && k != kind.id_key()
                && !(kind == SdnKind::Subnet && k == "vnet")
        });
        if !delete.is_empty() {
            params.push(p("delete", delete.join(",")));
        }
        lock_param(&mut params, lock);
        let path = format!("{}/{}", collection_path(spec.collection()), seg(id));
        self.t.call(Method::PUT, &path, &params, Retry::Safe)?;
        Ok(())
    }

    fn needs_9(&self, what: &str) -> Result<()> {
        let r = self.release()?;
        if r.has_sdn_lock() {
            Ok(())
        } else {
            Err(PveError::Unsupported {
                what: what.into(),
                needs: "9.0".into(),
                found: r.to_string(),
            })
        }
    }
}

fn lxc_path(node: &str, vmid: u32, tail: &str) -> String {
    format!("/nodes/{}/lxc/{vmid}{tail}", seg(node))
}

impl Pve for PveClient {
    fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageVolume>> {
        let params: Params = content.map(|c| p("content", c)).into_iter().collect();
        self.get(
            &format!("/nodes/{}/storage/{}/content", seg(node), seg(storage)),
            &params,
        )
    }

    fn node_storages(&self, node: &str) -> Result<Vec<NodeStorage>> {
        self.get(&format!("/nodes/{}/storage", seg(node)), &[])
    }

    fn storage_volume(&self, node: &str, storage: &str, volume: &str) -> Result<VolumeAttributes> {
        self.get(
            &format!(
                "/nodes/{}/storage/{}/content/{}",
                seg(node),
                seg(storage),
                seg(volume)
            ),
            &[],
        )
    }

    fn storage_upload(
        &self,
        node: &str,
        storage: &str,
        upload: &StorageUpload<'_>,
    ) -> Result<Upid> {
        let fields = [
            p("content", upload.content),
            p("checksum-algorithm", "sha256"),
            p("checksum", upload.sha256),
        ];
        self.upload_fields(node, storage, &fields, upload.file, upload.file_name)
    }

    fn release(&self) -> Result<Release> {
        if let Some(r) = self.release.get() {
            return Ok(*r);
        }
        let r = self.version()?.parse_release()?;
        Ok(*self.release.get_or_init(|| r))
    }

    fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>> {
        self.get("/cluster/status", &[])
    }

    fn nodes(&self) -> Result<Vec<NodeSummary>> {
        self.get("/nodes", &[])
    }

    fn node_status(&self, node: &str) -> Result<NodeStatus> {
        self.get::<NodeStatusWire>(&format!("/nodes/{}/status", seg(node)), &[])
            .map(NodeStatus::from)
    }

    fn node_network(&self, node: &str) -> Result<Vec<NetworkInterface>> {
        self.get(&format!("/nodes/{}/network", seg(node)), &[])
    }

    fn node_dns(&self, node: &str) -> Result<NodeDns> {
        self.get(&format!("/nodes/{}/dns", seg(node)), &[])
    }

    fn next_vmid(&self, wanted: Option<u32>) -> Result<u32> {
        let params: Params = wanted.map(|w| p("vmid", w)).into_iter().collect();
        let v: Value = self.get("/cluster/nextid", &params)?;
        let n = match &v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        n.ok_or_else(|| PveError::Decode {
            method: "GET".into(),
            path: "/cluster/nextid".into(),
            message: format!("not a VMID: {v}"),
        })
    }

    fn sdn_list(&self, at: SdnCollection<'_>) -> Result<Vec<Value>> {
        self.get(&collection_path(at), &[p("pending", 1), p("running", 1)])
    }

    fn sdn_create(&self, id: &str, spec: SdnSpec<'_>, lock: Option<&SdnLockToken>) -> Result<()> {
        let kind = spec.kind();
        let mut params = map_params(spec.to_map()?);
        params.retain(|(k, _)| !read_only(kind, k) && k != kind.id_key());
        match kind {
            SdnKind::Subnet => {
                params.retain(|(k, _)| k != "type" && k != "vnet");
                params.push(p("type", "subnet"));
            }
            SdnKind::Zone | SdnKind::Controller if !params.iter().any(|(k, _)| k == "type") => {
                return Err(PveError::Config(format!("SDN {kind} '{id}' needs a type")));
            }
            _ => {}
        }
        params.push(p(kind.id_key(), id));
        lock_param(&mut params, lock);
        let path = collection_path(spec.collection());
        self.t.call(Method::POST, &path, &params, Retry::Never)?;
        Ok(())
    }

    fn sdn_update(&self, id: &str, spec: SdnSpec<'_>, lock: SdnLock<'_>) -> Result<()> {
        self.sdn_set(id, spec, &[], lock)
    }
    fn sdn_delete(&self, at: SdnCollection<'_>, id: &str, lock: SdnLock<'_>) -> Result<()> {
        let mut params = Vec::new();
        lock_param(&mut params, lock);
        let path = format!("{}/{}", collection_path(at), seg(id));
        self.t.call(Method::DELETE, &path, &params, Retry::Never)?;
        Ok(())
    }

    fn sdn_lock(&self, allow_pending: bool) -> Result<Option<SdnLockToken>> {
        if !self.release()?.has_sdn_lock() {
            return Ok(None);
        }
        let params = if allow_pending {
            vec![p("allow-pending", 1)]
        } else {
            Vec::new()
        };
        let token: String = self.typed(Method::POST, "/cluster/sdn/lock", &params, Retry::Never)?;
        Ok(Some(SdnLockToken(token)))
    }

    fn sdn_unlock(&self, lock: &SdnLockToken, force: bool) -> Result<()> {
        self.needs_9("the SDN lock")?;
        let mut params = vec![p("lock-token", &lock.0)];
        if force {
            params.push(p("force", 1));
        }
        // Releasing our own lock must still run while the agent stops.
        self.t.call_as(
            Access::Cleanup,
            Method::DELETE,
            "/cluster/sdn/lock",
            &params,
            Retry::Never,
        )?;
        Ok(())
    }

    fn sdn_apply(&self, lock: Option<&SdnLockToken>, release_lock: bool) -> Result<Upid> {
        let mut params = Vec::new();
        if lock.is_some() {
            self.needs_9("applying SDN under a lock")?;
            lock_param(&mut params, lock);
            if !release_lock {
                params.push(p("release-lock", 0));
            }
        }
        self.upid(Method::PUT, "/cluster/sdn", &params)
    }

    fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>> {
        self.get(&format!("/nodes/{}/lxc", seg(node)), &[])
    }

    fn lxc_create(&self, node: &str, req: &LxcCreate) -> Result<Upid> {
        self.upid(
            Method::POST,
            &format!("/nodes/{}/lxc", seg(node)),
            &req.params(),
        )
    }

    fn lxc_config(&self, node: &str, vmid: u32) -> Result<LxcConfig> {
        self.get(&lxc_path(node, vmid, "/config"), &[])
            .map(LxcConfig)
    }

    fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(Method::POST, &lxc_path(node, vmid, "/status/start"), &[])
    }

    fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(Method::POST, &lxc_path(node, vmid, "/status/stop"), &[])
    }

    fn lxc_delete(&self, node: &str, vmid: u32, purge: bool) -> Result<Upid> {
        let params = if purge {
            vec![p("purge", 1)]
        } else {
            Vec::new()
        };
        self.upid(Method::DELETE, &lxc_path(node, vmid, ""), &params)
    }

    fn lxc_update(&self, node: &str, vmid: u32, update: &LxcUpdate) -> Result<()> {
        // Setting absolute values: repeating the call changes nothing.
        self.t.call(
            Method::PUT,
            &lxc_path(node, vmid, "/config"),
            &update.params(),
            Retry::Safe,
        )?;
        Ok(())
    }

    fn lxc_resize(&self, node: &str, vmid: u32, disk: &str, size_gib: u32) -> Result<Upid> {
        self.upid(
            Method::PUT,
            &lxc_path(node, vmid, "/resize"),
            &[p("disk", disk), p("size", format!("{size_gib}G"))],
        )
    }

    fn ha_resources(&self) -> Result<Vec<HaResource>> {
        self.get("/cluster/ha/resources", &[])
    }

    fn ha_add(&self, resource: &HaResourceAdd) -> Result<()> {
        resource.check_release(self.release()?)?;
        self.t.call(
            Method::POST,
            "/cluster/ha/resources",
            &resource.params(),
            Retry::Never,
        )?;
        Ok(())
    }

    fn ha_remove(&self, sid: &str) -> Result<()> {
        self.t.call(
            Method::DELETE,
            &format!("/cluster/ha/resources/{}", seg(sid)),
            &[],
            Retry::Never,
        )?;
        Ok(())
    }

    fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        self.get(
            &format!(
                "/nodes/{}/tasks/{}/status",
                seg(upid.node()),
                seg(upid.as_str())
            ),
            &[],
        )
    }
}

/// Calls the engine does not make, kept for `orbitlab` commands to come and
/// for tests of the client itself. They pass the gate like every call.
impl PveClient {
    /// `GET /version`.
    pub fn version(&self) -> Result<VersionInfo> {
        self.get("/version", &[])
    }

    /// Update a vnet.
    pub fn sdn_update_vnet(
        &self,
        id: &str,
        cfg: &VnetConfig,
        delete: &[&str],
        lock: Option<&SdnLockToken>,
    ) -> Result<()> {
        self.sdn_set(id, SdnSpec::Vnet(cfg), delete, lock)
    }

    /// Update a subnet (`id` is `<zone>-<ip>-<prefix>`).
    pub fn sdn_update_subnet(
        &self,
        vnet: &str,
        id: &str,
        cfg: &SubnetConfig,
        delete: &[&str],
        lock: Option<&SdnLockToken>,
    ) -> Result<()> {
        let spec = SdnSpec::Subnet { vnet, config: cfg };
        self.sdn_set(id, spec, delete, lock)
    }

    /// 9.x: drop everything pending.
    pub fn sdn_rollback(&self, lock: Option<&SdnLockToken>) -> Result<()> {
        self.needs_9("SDN rollback")?;
        let mut params = Vec::new();
        lock_param(&mut params, lock);
        self.t
            .call(Method::POST, "/cluster/sdn/rollback", &params, Retry::Never)?;
        Ok(())
    }

    /// A container's status.
    pub fn lxc_status(&self, node: &str, vmid: u32) -> Result<LxcStatus> {
        self.get(&lxc_path(node, vmid, "/status/current"), &[])
    }

    /// Shut a container down cleanly, waiting up to `timeout` before
    /// stopping it hard when `force_stop`.
    pub fn lxc_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<Duration>,
        force_stop: bool,
    ) -> Result<Upid> {
        let mut params = Vec::new();
        if let Some(t) = timeout {
            params.push(p("timeout", t.as_secs()));
        }
        if force_stop {
            params.push(p("forceStop", 1));
        }
        self.upid(
            Method::POST,
            &lxc_path(node, vmid, "/status/shutdown"),
            &params,
        )
    }

    /// Change an HA resource.
    pub fn ha_update(&self, sid: &str, spec: &HaResourceSpec) -> Result<()> {
        let params = to_params(spec)?;
        self.t.call(
            Method::PUT,
            &format!("/cluster/ha/resources/{}", seg(sid)),
            &params,
            Retry::Safe,
        )?;
        Ok(())
    }

    /// The appliance template index.
    pub fn appliance_index(&self, node: &str) -> Result<Vec<ApplianceTemplate>> {
        self.get(&format!("/nodes/{}/aplinfo", seg(node)), &[])
    }

    /// Download an appliance template to a storage.
    pub fn appliance_download(&self, node: &str, storage: &str, template: &str) -> Result<Upid> {
        self.upid(
            Method::POST,
            &format!("/nodes/{}/aplinfo", seg(node)),
            &[p("storage", storage), p("template", template)],
        )
    }

    /// Download a file from a URL to a storage.
    pub fn download_url(&self, node: &str, storage: &str, req: &DownloadUrl) -> Result<Upid> {
        self.upid(
            Method::POST,
            &format!("/nodes/{}/storage/{}/download-url", seg(node), seg(storage)),
            &to_params(req)?,
        )
    }

    /// Upload a local file to a storage as `file_name`.
    pub fn upload(
        &self,
        node: &str,
        storage: &str,
        content: &str,
        file: &Path,
        file_name: &str,
    ) -> Result<Upid> {
        self.upload_fields(node, storage, &[p("content", content)], file, file_name)
    }

    /// `POST .../upload` with these form fields before the file.
    fn upload_fields(
        &self,
        node: &str,
        storage: &str,
        fields: &[(String, String)],
        file: &Path,
        file_name: &str,
    ) -> Result<Upid> {
        let path = format!("/nodes/{}/storage/{}/upload", seg(node), seg(storage));
        let data = self.t.upload(&path, fields, "filename", file_name, file)?;
        serde_json::from_value(data).map_err(|e| PveError::Decode {
            method: "POST".into(),
            path,
            message: e.to_string(),
        })
    }
}

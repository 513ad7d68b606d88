//! What the simulator serves for LXC instances, over plain HTTP as any
//! client sees it, on both Proxmox VE versions: a node's status (memory
//! counting running containers, resources set through `/_sim`), disk
//! resize (a `resize` task; shrinking and the same size refused before a
//! task starts), and HA resources (add, list, remove; groups only on 8.x).

use std::time::{Duration, Instant};

use orbitlab_sim::pve::{
    DEFAULT_TEMPLATE, DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig, SimHandle,
};
use reqwest::blocking::Client;
use serde_json::Value;

const GIB: u64 = 1 << 30;

struct Api {
    sim: SimHandle,
    http: Client,
}

impl Api {
    fn start(version: PveVersion) -> Api {
        let sim = PveSim::start(SimConfig {
            version,
            task_duration: Duration::from_millis(20),
            ..SimConfig::default()
        })
        .expect("simulator starts");
        Api {
            sim,
            http: Client::new(),
        }
    }

    /// One API call; the status and the JSON answer (with the status
    /// line's message as `message`, if Proxmox gave one).
    fn call(&self, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}{path}", self.sim.base_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let auth = format!("PVEAPIToken=root@pam!orbitlab={DEFAULT_TOKEN_SECRET}");
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("Authorization", auth);
        req = if method == reqwest::Method::GET {
            req.query(form)
        } else {
            req.form(form)
        };
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        // Proxmox puts a handler's message into the status line.
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let text = resp.text().expect("body");
        let mut body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if let (Some(r), Some(o)) = (reason, body.as_object_mut()) {
            o.insert("message".into(), Value::from(r));
        }
        (status, body)
    }

    /// A call that must succeed; its `data`.
    fn ok(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(method, path, form);
        assert_eq!(status, 200, "{method} {path}: {body}");
        body["data"].clone()
    }

    /// Wait for a task to stop; its exit status.
    fn wait(&self, node: &str, upid: &Value) -> String {
        let upid = upid.as_str().expect("a UPID");
        let start = Instant::now();
        loop {
            let st = self.ok("GET", &format!("/nodes/{node}/tasks/{upid}/status"), &[]);
            if st["status"] == "stopped" {
                return st["exitstatus"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "task never ended"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn create(&self, node: &str, vmid: u32, memory_mib: u32, start: bool) {
        let vmid = vmid.to_string();
        let memory = memory_mib.to_string();
        let upid = self.ok(
            "POST",
            &format!("/nodes/{node}/lxc"),
            &[
                ("vmid", vmid.as_str()),
                ("ostemplate", DEFAULT_TEMPLATE),
                ("rootfs", "local-lvm:8"),
                ("memory", memory.as_str()),
                ("start", if start { "1" } else { "0" }),
            ],
        );
        assert_eq!(self.wait(node, &upid), "OK");
    }

    fn rootfs(&self, node: &str, vmid: u32) -> String {
        let cfg = self.ok("GET", &format!("/nodes/{node}/lxc/{vmid}/config"), &[]);
        cfg["rootfs"].as_str().expect("rootfs").to_string()
    }
}

#[test]
fn node_status_counts_running_containers_and_follows_the_control_api() {
    for version in PveVersion::ALL {
        let api = Api::start(version);
        let st = api.ok("GET", "/nodes/pve1/status", &[]);
        assert_eq!(st["memory"]["total"], 64 * GIB, "[{version}]");
        assert_eq!(st["memory"]["used"], 2 * GIB, "[{version}]");
        assert_eq!(st["memory"]["free"], 62 * GIB, "[{version}]");
        assert_eq!(st["cpuinfo"]["cpus"], 16, "[{version}]");
        assert!(st["cpu"].is_f64(), "[{version}] {st}");
        assert!(st["uptime"].is_u64(), "[{version}] {st}");
        assert_eq!(
            st["memory"].get("available").is_some(),
            version == PveVersion::V9_1,
            "[{version}] memory.available is 9.x only"
        );
        api.create("pve1", 100, 1024, true);
        api.create("pve1", 101, 4096, false);
        api.create("pve2", 102, 2048, true);
        let st = api.ok("GET", "/nodes/pve1/status", &[]);
        assert_eq!(
            st["memory"]["used"],
            3 * GIB,
            "[{version}] only running CTs"
        );
        assert_eq!(st["memory"]["free"], 61 * GIB, "[{version}]");
        // The control API sets total memory and CPUs; used memory stays.
        assert!(api.sim.set_node_resources("pve1", 8 * GIB, 4));
        let st = api.ok("GET", "/nodes/pve1/status", &[]);
        assert_eq!(
            (
                &st["memory"]["total"],
                &st["memory"]["free"],
                &st["cpuinfo"]["cpus"]
            ),
            (
                &Value::from(8 * GIB),
                &Value::from(5 * GIB),
                &Value::from(4)
            ),
            "[{version}]"
        );
        let nodes = api.ok("GET", "/nodes", &[]);
        let pve1 = nodes
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node"] == "pve1"))
            .expect("pve1");
        assert_eq!(
            (&pve1["maxmem"], &pve1["maxcpu"]),
            (&Value::from(8 * GIB), &Value::from(4))
        );
        // Over HTTP too.
        let origin = api.sim.origin();
        let resp = api
            .http
            .post(format!("{origin}/_sim/nodes/pve2/resources"))
            .json(&serde_json::json!({ "cpus": 2 }))
            .send()
            .expect("control");
        assert_eq!(resp.status().as_u16(), 200);
        let st = api.ok("GET", "/nodes/pve2/status", &[]);
        assert_eq!(st["cpuinfo"]["cpus"], 2, "[{version}]");
        assert_eq!(
            st["memory"]["total"],
            64 * GIB,
            "[{version}] memory left as it was"
        );
        let resp = api
            .http
            .post(format!("{origin}/_sim/nodes/nope/resources"))
            .json(&serde_json::json!({ "cpus": 2 }))
            .send()
            .expect("control");
        assert_eq!(resp.status().as_u16(), 404);
        // An unknown node fails the way Proxmox does; the schema is enforced.
        let (status, _) = api.call("GET", "/nodes/pve9/status", &[]);
        assert_eq!(status, 500, "[{version}]");
        let (status, body) = api.call("GET", "/nodes/pve1/status", &[("full", "1")]);
        assert_eq!(status, 400, "[{version}] {body}");
    }
}

#[test]
fn resize_grows_by_and_to_and_refuses_a_shrink() {
    for version in PveVersion::ALL {
        let api = Api::start(version);
        api.create("pve1", 100, 512, false);
        assert_eq!(api.rootfs("pve1", 100), "local-lvm:vm-100-disk-0,size=8G");
        let path = "/nodes/pve1/lxc/100/resize";
        // Absolute.
        let upid = api.ok("PUT", path, &[("disk", "rootfs"), ("size", "10G")]);
        assert!(
            upid.as_str().is_some_and(|u| u.contains(":resize:100:")),
            "{upid}"
        );
        assert_eq!(api.wait("pve1", &upid), "OK");
        assert_eq!(api.rootfs("pve1", 100), "local-lvm:vm-100-disk-0,size=10G");
        // Relative, and in another unit.
        let upid = api.ok("PUT", path, &[("disk", "rootfs"), ("size", "+512M")]);
        assert_eq!(api.wait("pve1", &upid), "OK");
        assert_eq!(
            api.rootfs("pve1", 100),
            "local-lvm:vm-100-disk-0,size=10752M",
            "[{version}] Proxmox prints the largest exact unit"
        );
        // Shrinking and the same size are refused before any task.
        for (size, message) in [
            ("10G", "unable to shrink disk size"),
            ("10752M", "disk is already at specified size"),
            ("+0", "disk is already at specified size"),
        ] {
            let (status, body) = api.call("PUT", path, &[("disk", "rootfs"), ("size", size)]);
            assert_eq!(status, 500, "[{version}] {size}: {body}");
            let text = body.to_string();
            assert!(text.contains(message), "[{version}] {size}: {text}");
        }
        assert_eq!(
            api.rootfs("pve1", 100),
            "local-lvm:vm-100-disk-0,size=10752M"
        );
        // The schema: a disk name from the list, a size with a unit pattern.
        for form in [
            [("disk", "rootfs"), ("size", "-1G")],
            [("disk", "mp256"), ("size", "20G")],
            [("disk", "root"), ("size", "20G")],
        ] {
            let (status, body) = api.call("PUT", path, &form);
            assert_eq!(status, 400, "[{version}] {form:?}: {body}");
        }
        // A stale digest and a missing mount point.
        let (status, body) = api.call(
            "PUT",
            path,
            &[("disk", "rootfs"), ("size", "20G"), ("digest", "0123")],
        );
        assert_eq!(status, 500, "[{version}] {body}");
        assert!(body.to_string().contains("file changed by other user"));
        let (status, _) = api.call("PUT", path, &[("disk", "mp0"), ("size", "20G")]);
        assert_eq!(status, 500, "[{version}]");
        let (status, _) = api.call(
            "PUT",
            "/nodes/pve2/lxc/100/resize",
            &[("disk", "rootfs"), ("size", "20G")],
        );
        assert_eq!(status, 500, "[{version}] the CT lives on pve1");
    }
}

#[test]
fn ha_resources_add_list_remove() {
    for version in PveVersion::ALL {
        let api = Api::start(version);
        api.create("pve2", 120, 512, false);
        let add = [
            ("sid", "ct:120"),
            ("state", "started"),
            ("comment", "orbitlab"),
        ];
        api.ok("POST", "/cluster/ha/resources", &add);
        let (status, body) = api.call("POST", "/cluster/ha/resources", &add);
        assert_eq!(status, 500, "[{version}]");
        assert!(body.to_string().contains("already defined"), "{body}");
        let (status, body) = api.call("POST", "/cluster/ha/resources", &[("sid", "ct:999")]);
        assert_eq!(status, 500, "[{version}]");
        assert!(
            body.to_string()
                .contains("resource 'ct:999' does not exist in cluster"),
            "{body}"
        );
        let (status, _) = api.call(
            "POST",
            "/cluster/ha/resources",
            &[("sid", "ct:120"), ("state", "running")],
        );
        assert_eq!(status, 400, "[{version}] not a state of the schema");
        let list = api.ok("GET", "/cluster/ha/resources", &[]);
        assert_eq!(list.as_array().map(Vec::len), Some(1), "[{version}]");
        assert_eq!(
            (&list[0]["sid"], &list[0]["state"], &list[0]["comment"]),
            (
                &Value::from("ct:120"),
                &Value::from("started"),
                &Value::from("orbitlab")
            )
        );
        let status = api.ok("GET", "/nodes/pve2/lxc/120/status/current", &[]);
        assert_eq!(status["ha"]["managed"], 1, "[{version}]");
        // Groups: 8.x takes them; 9.x refuses them, groups being HA rules.
        api.create("pve1", 121, 512, false);
        let grouped = [("sid", "ct:121"), ("group", "olgroup")];
        let (status, body) = api.call("POST", "/cluster/ha/resources", &grouped);
        match version {
            PveVersion::V8_4 => assert_eq!(status, 200, "{body}"),
            PveVersion::V9_1 => {
                assert_eq!(status, 500, "{body}");
                assert!(body.to_string().contains("migrated to rules"), "{body}");
            }
        }
        api.ok("DELETE", "/cluster/ha/resources/ct:120", &[]);
        let (status, body) = api.call("DELETE", "/cluster/ha/resources/ct:120", &[]);
        assert_eq!(status, 500, "[{version}]");
        assert!(body.to_string().contains("not HA managed"), "{body}");
        let left: Vec<Value> = api
            .ok("GET", "/cluster/ha/resources", &[])
            .as_array()
            .cloned()
            .unwrap_or_default();
        let expected = usize::from(version == PveVersion::V8_4);
        assert_eq!(left.len(), expected, "[{version}] {left:?}");
    }
}

//! The API's path tree over a temporary store: every change is validated as
//! a whole before the first write, and leaves nothing half-written.

use orbitlab_engine::api::{Action, Api, ApiError, ApiPath, PropertyValue};
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_engine::store::Store;
use orbitlab_manifests::{Kind, codec};

fn api() -> (tempfile::TempDir, Api) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(Store::open(dir.path()));
    (dir, api)
}

fn path(p: &str) -> ApiPath {
    p.parse().unwrap()
}

fn props(pairs: &[(&str, &str)]) -> PropertyValue {
    PropertyValue::from_pairs(pairs.iter().copied()).unwrap()
}

fn docs(label: &str, yaml: &str) -> Vec<orbitlab_manifests::Sourced<orbitlab_manifests::Manifest>> {
    codec::decode(label, yaml).unwrap()
}

const SECTOR_WEB: &str = "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n";

#[test]
fn create_get_set_delete_round_trip_with_status() {
    let (_dir, api) = api();
    let changes = api
        .create(
            &path("/sectors"),
            props(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
        )
        .unwrap();
    assert_eq!(changes[0].action, Action::Created);
    assert_eq!(changes[0].path(), "/sectors/web");
    let generation = api.store().generation().unwrap();
    assert_eq!(generation.0, 1);

    let got = api.get(&path("/sectors/web")).unwrap();
    assert_eq!(got["spec"]["cidr"], "172.16.0.0/24");
    assert!(got["status"].is_null());

    let mut status = ObjectStatus::default();
    status.set_condition(ConditionType::Ready, true, "Applied", "ok");
    api.store()
        .write_status(Kind::Sector, &"web".parse().unwrap(), &status)
        .unwrap();
    let listed = api.get(&path("/sectors")).unwrap();
    assert_eq!(listed[0]["status"]["conditions"][0]["type"], "Ready");

    api.set(
        &path("/sectors/web"),
        props(&[("alias", "2024"), ("description", "front")]),
        &[],
    )
    .unwrap();
    let got = api.get(&path("/sectors/web")).unwrap();
    assert_eq!(got["spec"]["alias"], "2024");
    assert_eq!(got["metadata"]["description"], "front");
    api.set(
        &path("/sectors/web"),
        PropertyValue::map(),
        &["alias".into()],
    )
    .unwrap();
    assert!(
        api.get(&path("/sectors/web")).unwrap()["spec"]
            .get("alias")
            .is_none()
    );

    let ls = api.ls(&path("/sectors")).unwrap();
    assert_eq!(ls[0]["name"], "web");
    api.delete(&path("/sectors/web"), false).unwrap();
    assert!(matches!(
        api.get(&path("/sectors/web")),
        Err(ApiError::NotFound { .. })
    ));
    assert_eq!(api.store().generation().unwrap().0, 4);
}

#[test]
fn refusals_name_the_field_and_change_nothing() {
    let (_dir, api) = api();
    api.create(
        &path("/sectors"),
        props(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    )
    .unwrap();
    let before = api.store().generation().unwrap();
    let cases: Vec<(Result<_, ApiError>, &str)> = vec![
        (
            api.create(
                &path("/sectors"),
                props(&[("name", "web"), ("cidr", "10.0.0.0/24")]),
            ),
            "already exists",
        ),
        (
            api.create(&path("/sectors"), props(&[("cidr", "10.0.0.0/24")])),
            "--name is required",
        ),
        (
            api.create(
                &path("/sectors"),
                props(&[("name", "x"), ("cidr", "10.0.0.0/24"), ("colour", "red")]),
            ),
            "colour",
        ),
        (
            api.create(
                &path("/sectors"),
                props(&[("name", "x"), ("cidr", "10.0.0.0/33")]),
            ),
            "cidr",
        ),
        (
            api.create(
                &path("/sectors"),
                props(&[
                    ("name", "x"),
                    ("cidr", "10.0.0.0/24"),
                    ("subnets", "name=a,cidr=10.1.0.0/24"),
                ]),
            ),
            "spec.subnets[0].cidr",
        ),
        (
            api.set(
                &path("/sectors/web"),
                props(&[("cidr", "10.0.0.0/24")]),
                &[],
            ),
            "spec.cidr: cannot change",
        ),
        (
            api.set(&path("/sectors/web"), props(&[("name", "other")]), &[]),
            "metadata.name cannot change",
        ),
        (
            api.set(
                &path("/sectors/web"),
                PropertyValue::map(),
                &["nothing".into()],
            ),
            "--delete nothing",
        ),
        (
            api.set(&path("/sectors/nope"), PropertyValue::map(), &[]),
            "/sectors/nope does not exist",
        ),
        (
            api.delete(&path("/sectors"), false),
            "delete works on one object",
        ),
        (
            api.create(&path("/sectors/web"), PropertyValue::map()),
            "create on the collection",
        ),
    ];
    for (result, needle) in cases {
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains(needle),
            "expected {needle:?} in: {message}"
        );
    }
    assert_eq!(
        api.store().generation().unwrap(),
        before,
        "a refused change bumped the counter"
    );
    assert_eq!(
        api.ls(&path("/sectors")).unwrap().as_array().unwrap().len(),
        1
    );
}

#[test]
fn apply_is_all_or_nothing_and_reports_unchanged() {
    let (_dir, api) = api();
    let good = docs("good.yaml", SECTOR_WEB);
    let changes = api.apply(good.clone()).unwrap();
    assert_eq!(changes[0].action, Action::Created);
    assert_eq!(api.apply(good).unwrap()[0].action, Action::Unchanged);
    assert_eq!(
        api.store().generation().unwrap().0,
        1,
        "an unchanged apply bumped the counter"
    );

    // A valid Sector and an instance that refers to a Sector that does not
    // exist: neither is written.
    let mixed = docs(
        "mixed.yaml",
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: db\nspec:\n  cidr: 10.8.0.0/24\n---\n\
         apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app1\nspec:\n  sector: nowhere\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n",
    );
    let message = api.apply(mixed).unwrap_err().to_string();
    assert!(
        message.contains("mixed.yaml") && message.contains("spec.sector"),
        "{message}"
    );
    assert!(matches!(
        api.get(&path("/sectors/db")),
        Err(ApiError::NotFound { .. })
    ));

    // Two documents for one object in one request.
    let twice = [docs("a.yaml", SECTOR_WEB), docs("b.yaml", SECTOR_WEB)].concat();
    let message = api.apply(twice).unwrap_err().to_string();
    assert!(
        message.contains("declared twice") && message.contains("a.yaml"),
        "{message}"
    );
}

#[test]
fn validate_reports_without_writing() {
    let (dir, api) = api();
    let changes = api.validate(docs("web.yaml", SECTOR_WEB)).unwrap();
    assert_eq!(changes[0].action, Action::Created);
    assert!(!dir.path().join("orbitlab/manifests").exists());
}

#[test]
fn delete_refuses_dependents_unless_forced() {
    let (_dir, api) = api();
    api.apply(docs(
        "all.yaml",
        &format!(
            "{SECTOR_WEB}---\napiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app1\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
        ),
    ))
    .unwrap();
    let message = api
        .delete(&path("/sectors/web"), false)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/lxc/app1") && message.contains("--force"),
        "{message}"
    );
    let changes = api.delete(&path("/sectors/web"), true).unwrap();
    let deleted: Vec<String> = changes.iter().map(|c| c.path()).collect();
    assert_eq!(deleted, ["/sectors/web", "/lxc/app1"]);
    assert!(
        api.ls(&path("/lxc"))
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn deleting_an_ingress_target_is_refused_and_forced_drops_only_its_rules() {
    let (_dir, api) = api();
    let lxc = |name: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: {name}\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
        )
    };
    api.apply(docs(
        "all.yaml",
        &format!(
            "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n  ingress:\n    - name: https\n      protocol: tcp\n      port: 443\n      to_instance: shop\n    - name: ssh\n      protocol: tcp\n      port: 2222\n      to_instance: admin\n      to_port: 22\n---\n{}---\n{}",
            lxc("shop"),
            lxc("admin")
        ),
    ))
    .unwrap();
    let message = api
        .delete(&path("/lxc/shop"), false)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/sectors/web (ingress rules)") && message.contains("--force"),
        "{message}"
    );
    let removal = api.removal(&path("/lxc/shop"), true).unwrap();
    assert_eq!(removal.paths(), ["/lxc/shop"], "the Sector is not deleted");
    let changes = api.delete(&path("/lxc/shop"), true).unwrap();
    let mut changed: Vec<String> = changes.iter().map(|c| c.path()).collect();
    changed.sort();
    assert_eq!(changed, ["/lxc/shop", "/sectors/web"]);
    let web = api.get(&path("/sectors/web")).unwrap();
    let rules: Vec<&str> = web["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["ssh"],
        "only the rule to the deleted instance is dropped"
    );
    assert_eq!(api.ls(&path("/lxc")).unwrap().as_array().unwrap().len(), 1);
}

#[test]
fn a_delete_removes_exactly_what_its_removal_names() {
    let (_dir, api) = api();
    api.apply(docs(
        "all.yaml",
        &format!(
            "{SECTOR_WEB}---\napiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app1\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
        ),
    ))
    .unwrap();
    // Without force: the users are named, nothing is planned.
    let err = api.removal(&path("/sectors/web"), false).unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err}");
    let removal = api.removal(&path("/sectors/web"), true).unwrap();
    assert_eq!(removal.target(), path("/sectors/web"));
    assert_eq!(removal.paths(), ["/sectors/web", "/lxc/app1"]);
    assert_eq!(
        removal.kinds().into_iter().collect::<Vec<_>>(),
        [Kind::Sector, Kind::Lxc]
    );
    let alone = api.removal(&path("/lxc/app1"), false).unwrap();
    assert!(!alone.has_dependents());

    // Another instance joins the Sector after the check: the checked
    // removal no longer matches, and nothing is deleted.
    api.apply(docs(
        "late.yaml",
        "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app2\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n",
    ))
    .unwrap();
    let err = api.delete_exactly(&removal).unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("/lxc/app2"), "{err}");
    assert_eq!(api.ls(&path("/lxc")).unwrap().as_array().unwrap().len(), 2);

    // Checked again, it goes through and removes exactly that set.
    let removal = api.removal(&path("/sectors/web"), true).unwrap();
    let changes = api.delete_exactly(&removal).unwrap();
    let mut deleted: Vec<String> = changes.iter().map(|c| c.path()).collect();
    let mut expected = removal.paths();
    deleted.sort();
    expected.sort();
    assert_eq!(deleted, expected);
    assert!(changes.iter().all(|c| c.action == Action::Deleted));
    assert!(
        api.ls(&path("/lxc"))
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Makes a directory immutable (even root cannot create files in it) for
/// the guard's lifetime.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(dir: std::path::PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "chattr +i failed: this test needs root on a filesystem with attributes (ext4, xfs)"
        );
        Immutable(dir)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_failed_write_restores_what_was_already_written() {
    let (dir, api) = api();
    api.apply(docs("web.yaml", SECTOR_WEB)).unwrap();
    let web = dir.path().join("orbitlab/manifests/sector/web.yaml");
    let before = std::fs::read(&web).unwrap();
    // Sectors are written before SSH keys; the SSH key directory refuses.
    let _guard = Immutable::new(dir.path().join("orbitlab/manifests/ssh_key"));
    let change = docs(
        "change.yaml",
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n  alias: renamed\n---\n\
         apiVersion: orbitlab.io/v1\nkind: SshKey\nmetadata:\n  name: admin\nspec: {}\n",
    );
    let message = api.apply(change).unwrap_err().to_string();
    assert!(message.contains("ssh_key"), "{message}");
    assert_eq!(
        std::fs::read(&web).unwrap(),
        before,
        "the Sector change was not undone"
    );
    assert_eq!(api.store().generation().unwrap().0, 1);
}

#[test]
fn listing_uses_the_decoded_cache_but_never_a_stale_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let api = Api::new(Store::open(dir.path()).with_cache_dir(Some(cache.path().to_owned())));
    api.apply(docs("web.yaml", SECTOR_WEB)).unwrap();
    let first = api.get(&path("/sectors")).unwrap();
    assert!(
        cache.path().join("manifests-sector.json").exists(),
        "no cache written"
    );
    // Edit the file behind the API's back, keeping its length: the cache is
    // keyed by content, so the edit shows.
    let file = dir.path().join("orbitlab/manifests/sector/web.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("172.16.0.0/24", "172.17.0.0/24");
    std::fs::write(&file, text).unwrap();
    let second = api.get(&path("/sectors")).unwrap();
    assert_eq!(first[0]["spec"]["cidr"], "172.16.0.0/24");
    assert_eq!(second[0]["spec"]["cidr"], "172.17.0.0/24");
    // A corrupt cache only costs speed.
    std::fs::write(cache.path().join("manifests-sector.json"), b"garbage").unwrap();
    assert_eq!(api.get(&path("/sectors")).unwrap(), second);
}

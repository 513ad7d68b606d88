//! Holds every endpoint, method and parameter the simulator knows (its own
//! rule tables) and every call the client makes against the official
//! Proxmox VE API schema of 8.4 and 9.1 in `<repo>/../shared/pve-api/`:
//! same names, types, ranges, lengths, enums, formats, patterns and
//! required flags; 9.x-only endpoints only on 9.1.
//!
//! Without the schema folder the test has nothing to compare and passes
//! with a notice — except in CI (`CI` set), where a missing folder fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use orbitlab_engine::pve::known_calls::KNOWN_CALLS;
use orbitlab_sim::pve::formats::KNOWN as KNOWN_FORMATS;
use orbitlab_sim::pve::schema::{Kind, ParamRule, PveVersion, Rules, official_endpoints, rules};
use serde_json::Value;

fn schema_dir() -> Option<PathBuf> {
    orbitlab_sim::pve::schema::official_schema_dir("the simulator")
}

type Official = BTreeMap<String, BTreeMap<String, Value>>;

/// path -> method -> info.
fn load(dir: &std::path::Path, v: PveVersion) -> Official {
    official_endpoints(dir, v).unwrap_or_else(|e| panic!("{e}"))
}

fn props(info: &Value) -> BTreeMap<String, Value> {
    info["parameters"]["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn flag(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_u64() == Some(1) || v.as_str() == Some("1")
}

fn diff(errs: &mut Vec<String>, at: &str, name: &str, what: &str, ours: String, theirs: String) {
    if ours != theirs {
        errs.push(format!(
            "{at} {name}: {what}: ours {ours}, official {theirs}"
        ));
    }
}

/// Compare one rule with the official definition; push differences.
fn compare(rules: &Rules, at: &str, rule: &ParamRule, off: &Value, errs: &mut Vec<String>) {
    diff(
        errs,
        at,
        &rule.name,
        "type",
        rule.kind.schema_name().into(),
        off["type"].as_str().unwrap_or("").into(),
    );
    diff(
        errs,
        at,
        &rule.name,
        "optional",
        rule.optional.to_string(),
        flag(&off["optional"]).to_string(),
    );
    diff(
        errs,
        at,
        &rule.name,
        "minimum",
        format!("{:?}", rule.min),
        format!("{:?}", num(&off["minimum"])),
    );
    diff(
        errs,
        at,
        &rule.name,
        "maximum",
        format!("{:?}", rule.max),
        format!("{:?}", num(&off["maximum"])),
    );
    diff(
        errs,
        at,
        &rule.name,
        "minLength",
        format!("{:?}", rule.min_len),
        format!("{:?}", off["minLength"].as_u64()),
    );
    diff(
        errs,
        at,
        &rule.name,
        "maxLength",
        format!("{:?}", rule.max_len),
        format!("{:?}", off["maxLength"].as_u64()),
    );
    let theirs_enum: Vec<String> = off["enum"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    diff(
        errs,
        at,
        &rule.name,
        "enum",
        format!("{:?}", rule.enumeration),
        format!("{theirs_enum:?}"),
    );
    diff(
        errs,
        at,
        &rule.name,
        "requires",
        format!("{:?}", rule.requires),
        format!("{:?}", off["requires"].as_str()),
    );
    diff(
        errs,
        at,
        &rule.name,
        "pattern",
        format!("{:?}", rule.pattern),
        format!("{:?}", off["pattern"].as_str()),
    );
    diff(
        errs,
        at,
        &rule.name,
        "default_key",
        rule.default_key.to_string(),
        flag(&off["default_key"]).to_string(),
    );
    let named = if rule.kind == Kind::Array {
        &off["items"]["format"]
    } else {
        &off["format"]
    };
    match (named, &rule.prop) {
        (Value::Object(keys), Some(prop)) => {
            let Some(ours) = rules.formats.get(prop) else {
                errs.push(format!(
                    "{at} {}: property format {prop} missing",
                    rule.name
                ));
                return;
            };
            let ours_names: BTreeSet<&str> = ours.iter().map(|k| k.name.as_str()).collect();
            let theirs_names: BTreeSet<&str> = keys.keys().map(String::as_str).collect();
            if ours_names != theirs_names {
                errs.push(format!(
                    "{at} {}: property keys differ: ours {ours_names:?}, official {theirs_names:?}",
                    rule.name
                ));
            }
            for k in ours {
                if let Some(o) = keys.get(&k.name) {
                    compare(rules, &format!("{at} {}.", rule.name), k, o, errs);
                }
            }
        }
        (Value::Object(_), None) => errs.push(format!(
            "{at} {}: official has a property format, ours not",
            rule.name
        )),
        (other, prop) => {
            if prop.is_some() {
                errs.push(format!(
                    "{at} {}: ours has a property format, official not",
                    rule.name
                ));
            }
            diff(
                errs,
                at,
                &rule.name,
                "format",
                format!("{:?}", rule.format),
                format!("{:?}", other.as_str()),
            );
        }
    }
}

#[test]
fn simulator_rules_match_the_official_schema() {
    let Some(dir) = schema_dir() else { return };
    let mut errs = Vec::new();
    let mut checked = 0usize;
    for v in PveVersion::ALL {
        let official = load(&dir, v);
        let rules = rules(v);
        for ep in &rules.endpoints {
            let at = format!("[{v}] {} {}", ep.method, ep.path);
            let Some(info) = official.get(&ep.path).and_then(|m| m.get(&ep.method)) else {
                errs.push(format!("{at}: not in the official schema"));
                continue;
            };
            let theirs = props(info);
            let ours: BTreeSet<&str> = ep.params.iter().map(|p| p.name.as_str()).collect();
            let theirs_names: BTreeSet<&str> = theirs.keys().map(String::as_str).collect();
            for missing in theirs_names.difference(&ours) {
                errs.push(format!(
                    "{at}: official parameter '{missing}' unknown to the simulator"
                ));
            }
            for p in &ep.params {
                match theirs.get(&p.name) {
                    None => errs.push(format!(
                        "{at}: parameter '{}' not in the official schema",
                        p.name
                    )),
                    Some(off) => {
                        compare(rules, &at, p, off, &mut errs);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(
        errs.is_empty(),
        "{} differences:\n{}",
        errs.len(),
        errs.join("\n")
    );
    assert!(checked > 400, "only {checked} parameters checked");
}

#[test]
fn nine_only_endpoints_exist_only_on_nine() {
    let Some(dir) = schema_dir() else { return };
    let v8 = load(&dir, PveVersion::V8_4);
    let r8 = rules(PveVersion::V8_4);
    let r9 = rules(PveVersion::V9_1);
    let mut nine_only = 0;
    for ep in &r9.endpoints {
        if r8.endpoint(&ep.method, &ep.path).is_none() {
            nine_only += 1;
            assert!(
                v8.get(&ep.path).and_then(|m| m.get(&ep.method)).is_none(),
                "{} {} is marked 9-only but 8.4 has it",
                ep.method,
                ep.path
            );
        }
    }
    assert!(
        nine_only >= 3,
        "the SDN lock and rollback endpoints are 9-only"
    );
}

#[test]
fn every_client_call_is_official_and_simulated() {
    let Some(dir) = schema_dir() else { return };
    let mut errs = Vec::new();
    for v in PveVersion::ALL {
        let official = load(&dir, v);
        let rules = rules(v);
        for call in KNOWN_CALLS {
            let at = format!("[{v}] client {} {}", call.method, call.path);
            let info = official.get(call.path).and_then(|m| m.get(call.method));
            if call.only_9 && v < PveVersion::V9_1 {
                if info.is_some() {
                    errs.push(format!("{at}: marked 9-only but 8.4 has it"));
                }
                continue;
            }
            let Some(info) = info else {
                errs.push(format!("{at}: not in the official schema"));
                continue;
            };
            if rules.endpoint(call.method, call.path).is_none() {
                errs.push(format!("{at}: the simulator does not serve it"));
            }
            let theirs = props(info);
            let sent = call.params.iter().chain(if v >= PveVersion::V9_1 {
                call.params_9
            } else {
                call.params_8
            });
            for p in sent {
                if !theirs.contains_key(*p) {
                    errs.push(format!(
                        "{at}: sends '{p}', which the official schema does not define"
                    ));
                }
            }
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn every_named_format_in_the_rules_has_a_check() {
    for v in PveVersion::ALL {
        let r = rules(v);
        let all = r
            .endpoints
            .iter()
            .flat_map(|e| e.params.iter())
            .chain(r.formats.values().flatten());
        for p in all {
            if let Some(f) = &p.format {
                assert!(
                    KNOWN_FORMATS.contains(&f.as_str()),
                    "[{v}] {}: format {f} has no check",
                    p.name
                );
            }
        }
    }
}

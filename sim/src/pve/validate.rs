//! Checks one request's parameters against an endpoint's rules the way
//! Proxmox's JSON-schema code does, and turns them into typed values.
//! Errors are per parameter, with Proxmox's wording, ready for a
//! `400 {"errors": {...}}` answer. Pure: no I/O.

use std::collections::BTreeMap;

use serde_json::Value;

use super::formats;
use super::schema::{EndpointRule, Kind, ParamRule, Rules};

/// A validated parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A boolean (sent as 0/1).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// A list of strings.
    List(Vec<String>),
}

impl Val {
    /// The value as Proxmox would store it in a config file.
    pub fn to_config_string(&self) -> String {
        match self {
            Val::Bool(b) => u8::from(*b).to_string(),
            Val::Int(i) => i.to_string(),
            Val::Num(n) => n.to_string(),
            Val::Str(s) => s.clone(),
            Val::List(l) => l.join(","),
        }
    }

    /// The value as JSON (what Proxmox returns when reading it back).
    pub fn to_json(&self) -> Value {
        match self {
            Val::Bool(b) => Value::from(u8::from(*b)),
            Val::Int(i) => Value::from(*i),
            Val::Num(n) => Value::from(*n),
            Val::Str(s) => Value::from(s.clone()),
            Val::List(l) => Value::from(l.clone()),
        }
    }
}

/// Validated parameters of one request (path parameters included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub BTreeMap<String, Val>);

impl Params {
    /// A string parameter.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        }
    }
    /// An integer parameter.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.0.get(name) {
            Some(Val::Int(i)) => Some(*i),
            _ => None,
        }
    }
    /// A boolean parameter, with its default.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.0.get(name) {
            Some(Val::Bool(b)) => *b,
            _ => default,
        }
    }
    /// Whether a parameter was given.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    /// The `delete` list of an update call.
    pub fn delete_list(&self) -> Vec<String> {
        self.str("delete")
            .map(|s| {
                s.split([',', ';', ' '])
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Per-parameter errors, as Proxmox returns them.
pub type ParamErrors = BTreeMap<String, String>;

const NOT_DEFINED: &str =
    "property is not defined in schema and the schema does not allow additional properties";
const MISSING: &str = "property is missing and it is not optional";

/// Validate raw parameters (name, value; repeated names for arrays).
pub fn validate(
    rules: &Rules,
    ep: &EndpointRule,
    raw: &[(String, String)],
) -> Result<Params, ParamErrors> {
    let mut errors = ParamErrors::new();
    let mut out = BTreeMap::new();
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in raw {
        grouped.entry(k.as_str()).or_default().push(v.as_str());
    }
    for (name, values) in &grouped {
        let Some(rule) = ep.param(name) else {
            errors.insert((*name).to_string(), NOT_DEFINED.to_string());
            continue;
        };
        let result = if rule.kind == Kind::Array {
            values
                .iter()
                .try_for_each(|v| check_string(rules, rule, name, v))
                .map(|()| Val::List(values.iter().map(|v| (*v).to_string()).collect()))
        } else if values.len() > 1 {
            Err("duplicate parameter (only arrays may repeat)".to_string())
        } else {
            check_value(rules, rule, name, values[0])
        };
        match result {
            Ok(v) => {
                out.insert((*name).to_string(), v);
            }
            Err(e) => {
                errors.insert((*name).to_string(), e);
            }
        }
    }
    for rule in &ep.params {
        if !rule.optional && rule.family().is_none() && !grouped.contains_key(rule.name.as_str()) {
            errors.insert(rule.name.clone(), MISSING.to_string());
        }
        if let Some(other) = &rule.requires
            && grouped.contains_key(rule.name.as_str())
            && !grouped.contains_key(other.as_str())
        {
            errors.insert(
                other.clone(),
                format!("missing property - '{}' requires this property", rule.name),
            );
        }
    }
    if errors.is_empty() {
        Ok(Params(out))
    } else {
        Err(errors)
    }
}

/// Parse a boolean the way Proxmox does.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn type_err(kind: Kind, v: &str) -> String {
    format!("type check ('{}') failed - got '{v}'", kind.schema_name())
}

fn check_range(rule: &ParamRule, n: f64) -> Result<(), String> {
    let show = |x: f64| {
        if x.fract() == 0.0 {
            format!("{x:.0}")
        } else {
            x.to_string()
        }
    };
    if let Some(min) = rule.min.filter(|m| n < *m) {
        return Err(format!("value must have a minimum value of {}", show(min)));
    }
    if let Some(max) = rule.max.filter(|m| n > *m) {
        return Err(format!("value must have a maximum value of {}", show(max)));
    }
    Ok(())
}

/// Check one value against its rule and convert it.
pub fn check_value(rules: &Rules, rule: &ParamRule, name: &str, v: &str) -> Result<Val, String> {
    match rule.kind {
        Kind::Bool => parse_bool(v)
            .map(Val::Bool)
            .ok_or_else(|| type_err(Kind::Bool, v)),
        Kind::Int => {
            let ok_syntax = v.strip_prefix(['-', '+']).unwrap_or(v);
            if ok_syntax.is_empty() || !ok_syntax.bytes().all(|b| b.is_ascii_digit()) {
                return Err(type_err(Kind::Int, v));
            }
            let n: i64 = v.parse().map_err(|_| type_err(Kind::Int, v))?;
            #[allow(clippy::cast_precision_loss)]
            check_range(rule, n as f64)?;
            if let Some(fmt) = &rule.format {
                formats::check(fmt, v).map_err(|e| format!("invalid format - {e}"))?;
            }
            Ok(Val::Int(n))
        }
        Kind::Num => {
            let n: f64 = v
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && !v.contains(['i', 'I', 'n', 'N']))
                .ok_or_else(|| type_err(Kind::Num, v))?;
            check_range(rule, n)?;
            Ok(Val::Num(n))
        }
        Kind::Str | Kind::Array => {
            check_string(rules, rule, name, v)?;
            Ok(Val::Str(v.to_string()))
        }
    }
}

fn check_string(rules: &Rules, rule: &ParamRule, name: &str, v: &str) -> Result<(), String> {
    let len = v.chars().count();
    if let Some(min) = rule.min_len.filter(|m| len < *m) {
        return Err(format!("value must be at least {min} characters long"));
    }
    if let Some(max) = rule.max_len.filter(|m| len > *m) {
        return Err(format!("value may only be {max} characters long"));
    }
    if !rule.enumeration.is_empty() && !rule.enumeration.iter().any(|e| e == v) {
        return Err(format!(
            "value '{v}' does not have a value in the enumeration '{}'",
            rule.enumeration.join(", ")
        ));
    }
    if let Some(re) = &rule.regex
        && !re.is_match(v)
    {
        return Err("value does not match the regex pattern".to_string());
    }
    if let Some(fmt) = &rule.format {
        formats::check(fmt, v).map_err(|e| format!("invalid format - {e}"))?;
    }
    if let Some(prop) = &rule.prop {
        let keys = rules
            .formats
            .get(prop)
            .ok_or_else(|| format!("internal: unknown property format {prop}"))?;
        check_property_string(rules, keys, name, v)
            .map_err(|e| format!("invalid format - format error\n{e}"))?;
    }
    Ok(())
}

/// Split a property string into keys and values; a bare first value goes
/// to the format's default key.
pub fn parse_property_string(
    keys: &[ParamRule],
    v: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in v.split(',') {
        if part.is_empty() {
            continue;
        }
        let (k, val) = match part.split_once('=') {
            Some((k, val)) => (k.to_string(), val.to_string()),
            None => {
                let dk = keys.iter().find(|k| k.default_key).ok_or_else(|| {
                    "value without key, but schema does not define a default key".to_string()
                })?;
                (dk.name.clone(), part.to_string())
            }
        };
        if out.insert(k.clone(), val).is_some() {
            return Err(format!(
                "duplicate key in comma-separated list property: {k}"
            ));
        }
    }
    Ok(out)
}

fn check_property_string(
    rules: &Rules,
    keys: &[ParamRule],
    name: &str,
    v: &str,
) -> Result<(), String> {
    let map = parse_property_string(keys, v).map_err(|e| format!("{name}: {e}"))?;
    let mut errs = Vec::new();
    for (k, val) in &map {
        match keys.iter().find(|r| r.name == *k) {
            None => errs.push(format!("{name}.{k}: {NOT_DEFINED}")),
            Some(rule) => {
                if let Err(e) = check_value(rules, rule, k, val) {
                    errs.push(format!("{name}.{k}: {e}"));
                }
            }
        }
    }
    for rule in keys {
        if !rule.optional && !map.contains_key(&rule.name) {
            errs.push(format!("{name}.{}: {MISSING}", rule.name));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::schema::{PveVersion, rules};

    fn run(method: &str, tpl: &str, raw: &[(&str, &str)]) -> Result<Params, ParamErrors> {
        let r = rules(PveVersion::V9_1);
        let ep = r.endpoint(method, tpl).expect("endpoint");
        let raw: Vec<(String, String)> = raw
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
            .collect();
        validate(r, ep, &raw)
    }

    #[test]
    fn each_error_class_is_named() {
        let e = run(
            "POST",
            "/cluster/sdn/zones",
            &[
                ("zone", "BAD!"),
                ("type", "nope"),
                ("mtu", "x"),
                ("bogus", "1"),
            ],
        )
        .expect_err("refused");
        assert!(e["zone"].starts_with("invalid format - zone ID"), "{e:?}");
        assert!(e["type"].contains("enumeration"), "{e:?}");
        assert!(e["mtu"].starts_with("type check ('integer')"), "{e:?}");
        assert_eq!(e["bogus"], NOT_DEFINED);
        let e = run("POST", "/cluster/sdn/zones", &[]).expect_err("refused");
        assert_eq!(e["zone"], MISSING);
        let e = run(
            "POST",
            "/cluster/sdn/zones",
            &[("zone", "z1"), ("type", "evpn"), ("vrf-vxlan", "0")],
        )
        .expect_err("refused");
        assert_eq!(e["vrf-vxlan"], "value must have a minimum value of 1");
    }

    #[test]
    fn property_strings_are_checked_key_by_key() {
        let ok = run(
            "POST",
            "/nodes/{node}/lxc",
            &[
                ("node", "pve1"),
                ("vmid", "100"),
                ("ostemplate", "local:vztmpl/x.tar.zst"),
                ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.2/24"),
                ("rootfs", "local-lvm:8"),
            ],
        );
        assert!(ok.is_ok(), "{ok:?}");
        let e = run(
            "POST",
            "/nodes/{node}/lxc",
            &[
                ("node", "pve1"),
                ("vmid", "100"),
                ("ostemplate", "t"),
                ("net0", "bridge=vmbr0,colour=blue"),
            ],
        )
        .expect_err("refused");
        assert!(
            e["net0"].contains("net0.colour: property is not defined"),
            "{e:?}"
        );
        assert!(
            e["net0"].contains("net0.name: property is missing"),
            "{e:?}"
        );
    }
}

//! Typed parameter rules of the Proxmox VE API, parsed from the compact
//! tables in `rules/` (the project's own transcription of the official
//! schema; never loaded from JSON at run time).
//!
//! Line syntax of the tables:
//!
//! ```text
//! METHOD /path/{param} [@8|@9]          an endpoint (optionally one version only)
//!   name[?] KIND [MIN..MAX] [len=A..B] [fmt=NAME] [prop=NAME] [enum=a|b]
//!               [requires=OTHER] [default_key] [@8|@9] [pat=REGEX...]
//! FORMAT name                            a property-string format; key lines follow
//! ```
//!
//! `?` marks an optional parameter, KIND is one of `bool int num str array`,
//! `pat=` takes the rest of the line (a Perl regex as Proxmox writes it).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;

/// The official Proxmox API schema files (`../shared/pve-api/` beside the
/// repository), for tests that check against them. `None` when they are
/// not there, after a notice on standard error; in CI (`$CI` set) their
/// absence fails the test (`checking` says what would not be checked).
pub fn official_schema_dir(checking: &str) -> Option<std::path::PathBuf> {
    let dir =
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pve-api"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must check {checking} against the official schema, but {} is missing",
        dir.display()
    );
    eprintln!(
        "NOTICE: {} not found; {checking} not checked",
        dir.display()
    );
    None
}

use super::rules;

/// A supported Proxmox VE release line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum PveVersion {
    /// Proxmox VE 8.4 (Debian 12).
    #[serde(rename = "8.4")]
    V8_4,
    /// Proxmox VE 9.1 (Debian 13).
    #[serde(rename = "9.1")]
    V9_1,
}

impl PveVersion {
    /// Both versions, oldest first.
    pub const ALL: [PveVersion; 2] = [PveVersion::V8_4, PveVersion::V9_1];

    /// The release string (`8.4`, `9.1`).
    pub fn release(self) -> &'static str {
        match self {
            PveVersion::V8_4 => "8.4",
            PveVersion::V9_1 => "9.1",
        }
    }

    /// The full version string `/version` reports.
    pub fn full(self) -> &'static str {
        match self {
            PveVersion::V8_4 => "8.4.1",
            PveVersion::V9_1 => "9.1.2",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            PveVersion::V8_4 => "@8",
            PveVersion::V9_1 => "@9",
        }
    }
}

impl fmt::Display for PveVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.release())
    }
}

impl FromStr for PveVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "8" | "8.4" => Ok(PveVersion::V8_4),
            "9" | "9.1" => Ok(PveVersion::V9_1),
            other => Err(format!(
                "unsupported Proxmox VE version '{other}': use 8.4 or 9.1"
            )),
        }
    }
}

/// The JSON-schema type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `boolean`: travels as 0/1.
    Bool,
    /// `integer`.
    Int,
    /// `number` (float).
    Num,
    /// `string`.
    Str,
    /// `array` of strings (repeated parameter).
    Array,
}

impl Kind {
    /// The schema's name for the type.
    pub fn schema_name(self) -> &'static str {
        match self {
            Kind::Bool => "boolean",
            Kind::Int => "integer",
            Kind::Num => "number",
            Kind::Str => "string",
            Kind::Array => "array",
        }
    }
}

/// The rule for one parameter (or one key of a property string).
#[derive(Debug, Clone)]
pub struct ParamRule {
    /// Name as the schema writes it (`net[n]` for numbered families).
    pub name: String,
    /// Type.
    pub kind: Kind,
    /// Whether the parameter may be left out.
    pub optional: bool,
    /// Inclusive lower bound (numbers).
    pub min: Option<f64>,
    /// Inclusive upper bound (numbers).
    pub max: Option<f64>,
    /// Minimum string length.
    pub min_len: Option<usize>,
    /// Maximum string length.
    pub max_len: Option<usize>,
    /// Named format (`pve-node`, `pve-sdn-zone-id`...).
    pub format: Option<String>,
    /// Property-string format name (see `FORMAT` blocks).
    pub prop: Option<String>,
    /// Allowed values, if an enumeration.
    pub enumeration: Vec<String>,
    /// Another parameter that must be present with this one.
    pub requires: Option<String>,
    /// For property-string keys: the key may be written without `key=`.
    pub default_key: bool,
    /// The pattern as Proxmox writes it.
    pub pattern: Option<String>,
    /// The pattern, anchored and compiled.
    pub regex: Option<Regex>,
}

impl ParamRule {
    /// For `net[n]`-style families: the prefix (`net`).
    pub fn family(&self) -> Option<&str> {
        self.name.strip_suffix("[n]")
    }

    /// Whether a concrete parameter name (`net3`) belongs to this rule.
    pub fn matches_name(&self, name: &str) -> bool {
        match self.family() {
            None => self.name == name,
            Some(prefix) => name
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<u32>().ok().map(|i| (i, n)))
                .is_some_and(|(i, digits)| {
                    !digits.starts_with('+')
                        && (digits == "0" || !digits.starts_with('0'))
                        && i < family_size(prefix)
                }),
        }
    }
}

/// How many members a numbered family has (`net0`..`net31`), as in Proxmox.
pub fn family_size(prefix: &str) -> u32 {
    match prefix {
        "net" => 32,
        _ => 256,
    }
}

/// The rules of one endpoint (method + path).
#[derive(Debug, Clone)]
pub struct EndpointRule {
    /// HTTP method.
    pub method: String,
    /// Path template with `{param}` segments.
    pub path: String,
    /// Parameter rules, sorted by name.
    pub params: Vec<ParamRule>,
}

impl EndpointRule {
    /// The rule for a concrete parameter name.
    pub fn param(&self, name: &str) -> Option<&ParamRule> {
        self.params.iter().find(|p| p.matches_name(name))
    }

    /// Match a concrete path against the template; returns the path
    /// parameters on success.
    pub fn match_path(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut tpl = self.path.split('/');
        let mut act = path.split('/');
        loop {
            match (tpl.next(), act.next()) {
                (None, None) => return Some(out),
                (Some(t), Some(a)) => {
                    if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                        if a.is_empty() {
                            return None;
                        }
                        out.insert(name.to_string(), percent_decoded(a));
                    } else if t != a {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }
}

/// A path segment as pveproxy hands it on: `%XX` escapes decoded.
fn percent_decoded(segment: &str) -> String {
    String::from_utf8(super::request::uri_unescape(segment)).unwrap_or_else(|_| segment.to_owned())
}

/// The official schema file of `version` in `dir` (see
/// [`official_schema_dir`]) as path → method → its `info` (parameters,
/// returns, permissions), for tests that compare with it.
pub fn official_endpoints(
    dir: &std::path::Path,
    version: PveVersion,
) -> Result<BTreeMap<String, BTreeMap<String, serde_json::Value>>, String> {
    use serde_json::Value;
    fn walk(n: &Value, out: &mut BTreeMap<String, BTreeMap<String, Value>>) {
        if let (Some(path), Some(info)) = (n["path"].as_str(), n["info"].as_object()) {
            let methods = out.entry(path.to_owned()).or_default();
            for (method, i) in info {
                methods.insert(method.clone(), i.clone());
            }
        }
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    let file = dir.join(format!("pve-api-schema-full-pve{}.json", version.release()));
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let tree: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
    let roots = tree
        .as_array()
        .ok_or_else(|| format!("{}: not a list of paths", file.display()))?;
    let mut out = BTreeMap::new();
    for n in roots {
        walk(n, &mut out);
    }
    Ok(out)
}

/// All rules for one version.
#[derive(Debug)]
pub struct Rules {
    /// Endpoint rules in table order.
    pub endpoints: Vec<EndpointRule>,
    /// Property-string formats by name.
    pub formats: BTreeMap<String, Vec<ParamRule>>,
}

impl Rules {
    /// The endpoint with this method and concrete path, with its path
    /// parameters; `Err(true)` if the path exists with other methods.
    pub fn lookup(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(&EndpointRule, BTreeMap<String, String>), bool> {
        let mut path_known = false;
        for ep in &self.endpoints {
            if let Some(vars) = ep.match_path(path) {
                if ep.method == method {
                    return Ok((ep, vars));
                }
                path_known = true;
            }
        }
        Err(path_known)
    }

    /// The endpoint rule for a method and path template.
    pub fn endpoint(&self, method: &str, template: &str) -> Option<&EndpointRule> {
        self.endpoints
            .iter()
            .find(|e| e.method == method && e.path == template)
    }
}

/// The rules for a version (parsed once).
pub fn rules(version: PveVersion) -> &'static Rules {
    static V8: OnceLock<Rules> = OnceLock::new();
    static V9: OnceLock<Rules> = OnceLock::new();
    let cell = match version {
        PveVersion::V8_4 => &V8,
        PveVersion::V9_1 => &V9,
    };
    cell.get_or_init(|| {
        parse_tables(
            rules::endpoints::ENDPOINTS,
            rules::formats::FORMATS,
            version,
        )
        .unwrap_or_else(|e| panic!("built-in PVE rule table is malformed: {e}"))
    })
}

/// Parse the rule tables for one version.
pub fn parse_tables(endpoints: &str, formats: &str, version: PveVersion) -> Result<Rules, String> {
    let mut rules = Rules {
        endpoints: Vec::new(),
        formats: BTreeMap::new(),
    };
    for (lineno, raw) in endpoints.lines().enumerate() {
        let err = |m: String| format!("endpoints line {}: {m}", lineno + 1);
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        if !raw.starts_with(' ') {
            let mut it = raw.split_whitespace();
            let method = it.next().ok_or_else(|| err("empty".into()))?;
            let path = it.next().ok_or_else(|| err("no path".into()))?;
            let only = it.next();
            let skip = only.is_some_and(|t| t != version.tag());
            rules.endpoints.push(EndpointRule {
                method: method.to_string(),
                path: path.to_string(),
                params: Vec::new(),
            });
            if skip {
                // Mark for removal after its parameter lines.
                if let Some(e) = rules.endpoints.last_mut() {
                    e.method.insert(0, '!')
                }
            }
            continue;
        }
        let ep = rules
            .endpoints
            .last_mut()
            .ok_or_else(|| err("parameter before endpoint".into()))?;
        if let Some(p) = parse_param(raw.trim(), version).map_err(err)? {
            ep.params.push(p);
        }
    }
    rules.endpoints.retain(|e| !e.method.starts_with('!'));
    let mut current: Option<String> = None;
    for (lineno, raw) in formats.lines().enumerate() {
        let err = |m: String| format!("formats line {}: {m}", lineno + 1);
        if raw.trim().is_empty() {
            continue;
        }
        if let Some(name) = raw.strip_prefix("FORMAT ") {
            current = Some(name.trim().to_string());
            rules.formats.insert(name.trim().to_string(), Vec::new());
            continue;
        }
        let name = current
            .as_ref()
            .ok_or_else(|| err("key before FORMAT".into()))?;
        if let Some(p) = parse_param(raw.trim(), version).map_err(err)?
            && let Some(v) = rules.formats.get_mut(name)
        {
            v.push(p)
        }
    }
    Ok(rules)
}

fn parse_range<T: FromStr>(s: &str) -> Result<(Option<T>, Option<T>), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("bad range '{s}'"))?;
    let p = |x: &str| -> Result<Option<T>, String> {
        if x.is_empty() {
            Ok(None)
        } else {
            x.parse().map(Some).map_err(|_| format!("bad bound '{x}'"))
        }
    };
    Ok((p(a)?, p(b)?))
}

/// Parse one parameter line; `None` if it does not apply to `version`.
fn parse_param(line: &str, version: PveVersion) -> Result<Option<ParamRule>, String> {
    let (head, pattern) = match line.split_once(" pat=") {
        Some((h, p)) => (h, Some(p.to_string())),
        None => (line, None),
    };
    let mut toks = head.split_whitespace();
    let name = toks.next().ok_or("empty parameter line")?;
    let (name, optional) = match name.strip_suffix('?') {
        Some(n) => (n, true),
        None => (name, false),
    };
    let kind = match toks.next().ok_or("no type")? {
        "bool" => Kind::Bool,
        "int" => Kind::Int,
        "num" => Kind::Num,
        "str" => Kind::Str,
        "array" => Kind::Array,
        other => return Err(format!("unknown type '{other}'")),
    };
    let mut rule = ParamRule {
        name: name.to_string(),
        kind,
        optional,
        min: None,
        max: None,
        min_len: None,
        max_len: None,
        format: None,
        prop: None,
        enumeration: Vec::new(),
        requires: None,
        default_key: false,
        regex: None,
        pattern: None,
    };
    for tok in toks {
        if tok == "@8" || tok == "@9" {
            if tok != version.tag() {
                return Ok(None);
            }
        } else if tok == "default_key" {
            rule.default_key = true;
        } else if let Some(v) = tok.strip_prefix("len=") {
            (rule.min_len, rule.max_len) = parse_range(v)?;
        } else if let Some(v) = tok.strip_prefix("fmt=") {
            rule.format = Some(v.to_string());
        } else if let Some(v) = tok.strip_prefix("prop=") {
            rule.prop = Some(v.to_string());
        } else if let Some(v) = tok.strip_prefix("enum=") {
            rule.enumeration = v.split('|').map(str::to_string).collect();
        } else if let Some(v) = tok.strip_prefix("requires=") {
            rule.requires = Some(v.to_string());
        } else if tok.contains("..") {
            (rule.min, rule.max) = parse_range(tok)?;
        } else {
            return Err(format!("unknown attribute '{tok}'"));
        }
    }
    if let Some(p) = pattern {
        rule.regex = Some(compile_perl_pattern(&p)?);
        rule.pattern = Some(p);
    }
    Ok(Some(rule))
}

/// Compile a Perl pattern as Proxmox uses it: anchored at both ends, with
/// Perl's `(?^flags:` groups translated.
pub fn compile_perl_pattern(p: &str) -> Result<Regex, String> {
    // Perl matches `\w`, `\d`, `\s` on ASCII here (byte strings); so do we.
    let mut translated = String::with_capacity(p.len() + 16);
    let mut in_class = false;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    translated.push(c);
                    break;
                };
                let class = match n {
                    'w' => Some("[:word:]"),
                    'd' => Some("[:digit:]"),
                    's' => Some("[:space:]"),
                    _ => None,
                };
                match (class, in_class) {
                    (Some(cl), true) => translated.push_str(cl),
                    (Some(cl), false) => {
                        translated.push('[');
                        translated.push_str(cl);
                        translated.push(']');
                    }
                    (None, _) if n == '0' => translated.push_str("\\x00"),
                    (None, _) => {
                        translated.push(c);
                        translated.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                translated.push(c);
            }
            ']' if in_class => {
                in_class = false;
                translated.push(c);
            }
            _ => translated.push(c),
        }
    }
    let translated = translated.replace("(?^:", "(?:").replace("(?^i:", "(?i:");
    Regex::new(&format!("^(?:{translated})$")).map_err(|e| format!("bad pattern '{p}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_for_both_versions() {
        for v in PveVersion::ALL {
            let r = rules(v);
            assert!(r.endpoints.len() > 40, "{v}: {}", r.endpoints.len());
            assert!(r.formats.contains_key("lxc-net"));
        }
        assert!(
            rules(PveVersion::V9_1)
                .endpoint("POST", "/cluster/sdn/lock")
                .is_some()
        );
        assert!(
            rules(PveVersion::V8_4)
                .endpoint("POST", "/cluster/sdn/lock")
                .is_none()
        );
    }

    #[test]
    fn families_match_numbered_names_only() {
        let r = rules(PveVersion::V8_4);
        let ep = r.endpoint("POST", "/nodes/{node}/lxc").expect("lxc create");
        assert_eq!(ep.param("net0").map(|p| p.name.as_str()), Some("net[n]"));
        assert_eq!(ep.param("net31").map(|p| p.name.as_str()), Some("net[n]"));
        assert!(ep.param("net32").is_none());
        assert!(ep.param("net01").is_none());
        assert!(ep.param("netx").is_none());
    }

    #[test]
    fn path_templates_match() {
        let r = rules(PveVersion::V9_1);
        let (ep, vars) = r
            .lookup("GET", "/cluster/sdn/vnets/v1/subnets/z-10.0.0.0-24")
            .expect("found");
        assert_eq!(ep.path, "/cluster/sdn/vnets/{vnet}/subnets/{subnet}");
        assert_eq!(vars["subnet"], "z-10.0.0.0-24");
        assert_eq!(r.lookup("PATCH", "/cluster/sdn").err(), Some(true));
        assert_eq!(r.lookup("GET", "/nope").err(), Some(false));
    }
}

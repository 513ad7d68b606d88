//! pvesh-style properties: `--key value` pairs from the command line (or a
//! form) turned into typed specs.
//!
//! Values stay strings until the target type asks for something else, so
//! `--alias 2024` is the string `"2024"` and `--memory 512` the number 512
//! without guessing. A value shaped like a Proxmox property string
//! (`name=a,cidr=10.0.0.0/25`) becomes a map; a key given several times
//! becomes a list, and a single value is accepted where a list is expected.
//! Dotted keys (`--backplane.cidr`) address nested fields; `-` in keys is
//! read as `_`.
//!
//! Limits, so that no input drives the parser (or the deserializer, or the
//! drop of the tree) deep: a key has at most [`MAX_KEY_BYTES`] bytes, and a
//! property — the parts of its key plus the nesting of its value — is at
//! most [`MAX_DEPTH`] levels deep. Keys are walked with a loop, never by
//! recursion. Refusals name the key (cut to [`SHOWN_KEY_CHARS`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// A tree of string-valued properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// One value, typed when deserialized.
    Scalar(String),
    /// Several values for one key.
    List(Vec<PropertyValue>),
    /// Named fields.
    Map(BTreeMap<String, PropertyValue>),
}

/// Deepest property: parts of the key plus levels of the value (a map or a
/// list is one level).
pub const MAX_DEPTH: usize = 16;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// How much of a key a refusal shows.
pub const SHOWN_KEY_CHARS: usize = 64;

/// A refusal while reading properties, naming the key when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", key.as_deref().map(|k| format!("option --{k}: ")).unwrap_or_default())]
pub struct PropertyError {
    key: Option<String>,
    reason: String,
}

impl PropertyError {
    fn new(reason: impl Into<String>) -> Self {
        PropertyError {
            key: None,
            reason: reason.into(),
        }
    }

    fn for_key(key: &str, reason: impl Into<String>) -> Self {
        PropertyError {
            key: Some(shown_key(key)),
            reason: reason.into(),
        }
    }

    /// The key refused (cut to [`SHOWN_KEY_CHARS`] characters), if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Why, without the key.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// `key`, cut to [`SHOWN_KEY_CHARS`] characters (then ending in `...`).
pub fn shown_key(key: &str) -> String {
    match key.char_indices().nth(SHOWN_KEY_CHARS) {
        None => key.to_owned(),
        Some((cut, _)) => format!("{}...", &key[..cut]),
    }
}

impl de::Error for PropertyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PropertyError::new(msg.to_string())
    }
}

impl PropertyValue {
    /// An empty map.
    pub fn map() -> Self {
        PropertyValue::Map(BTreeMap::new())
    }

    /// Builds a map from `(key, value)` pairs as the command line gives
    /// them; see the module documentation for the rules.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PropertyError> {
        let mut root = PropertyValue::map();
        for (key, value) in pairs {
            root.insert(key, parse_value(value))?;
        }
        Ok(root)
    }

    /// Converts a JSON value (a spec serialized to merge `set` into it).
    /// `null` fields are dropped.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        use serde_json::Value;
        Some(match value {
            Value::Null => return None,
            Value::Bool(b) => PropertyValue::Scalar(b.to_string()),
            Value::Number(n) => PropertyValue::Scalar(n.to_string()),
            Value::String(s) => PropertyValue::Scalar(s.clone()),
            Value::Array(items) => {
                PropertyValue::List(items.iter().filter_map(Self::from_json).collect())
            }
            Value::Object(fields) => PropertyValue::Map(
                fields
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), Self::from_json(v)?)))
                    .collect(),
            ),
        })
    }

    /// Sets `key` (dotted for nested fields); a repeated key becomes a list.
    pub fn insert(&mut self, key: &str, value: PropertyValue) -> Result<(), PropertyError> {
        self.insert_at(key, key, value, Merge::Append)
    }

    /// Sets `key` (dotted), replacing what was there (for `set`).
    pub fn replace(&mut self, key: &str, value: PropertyValue) -> Result<(), PropertyError> {
        self.insert_at(key, key, value, Merge::Replace)
    }

    /// Removes `key` (dotted); `false` when it was not set.
    pub fn remove(&mut self, key: &str) -> bool {
        let key = normalize(key);
        let mut node = self;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let PropertyValue::Map(fields) = node else {
                return false;
            };
            if parts.peek().is_none() {
                return fields.remove(part).is_some();
            }
            match fields.get_mut(part) {
                Some(child) => node = child,
                None => return false,
            }
        }
        false
    }

    /// How deep this value nests: 0 for a scalar, 1 for a map or list of
    /// scalars, and so on. Walks the tree with an explicit stack.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 0usize)];
        while let Some((node, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match node {
                PropertyValue::Scalar(_) => {}
                PropertyValue::List(items) => {
                    deepest = deepest.max(depth + 1);
                    stack.extend(items.iter().map(|i| (i, depth + 1)));
                }
                PropertyValue::Map(fields) => {
                    deepest = deepest.max(depth + 1);
                    stack.extend(fields.values().map(|v| (v, depth + 1)));
                }
            }
        }
        deepest
    }

    fn insert_at(
        &mut self,
        full_key: &str,
        key: &str,
        value: PropertyValue,
        merge: Merge,
    ) -> Result<(), PropertyError> {
        // Counted on the text as given, before anything is copied.
        let parts = key.bytes().filter(|b| *b == b'.').count() + 1;
        if parts > MAX_DEPTH {
            return Err(PropertyError::for_key(
                full_key,
                format!("nested {parts} levels deep; properties nest at most {MAX_DEPTH} levels"),
            ));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(PropertyError::for_key(
                full_key,
                format!(
                    "the key is {} bytes long; keys have at most {MAX_KEY_BYTES}",
                    key.len()
                ),
            ));
        }
        let key = normalize(key);
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PropertyError::for_key(full_key, "empty key"));
        }
        let depth = parts.len() + value.depth();
        if depth > MAX_DEPTH {
            return Err(PropertyError::for_key(
                full_key,
                format!("nested {depth} levels deep; properties nest at most {MAX_DEPTH} levels"),
            ));
        }
        let Some((last, path)) = parts.split_last() else {
            return Err(PropertyError::for_key(full_key, "empty key"));
        };
        let plain = || {
            PropertyError::for_key(
                full_key,
                "a plain value is already given for a part of this key",
            )
        };
        let mut node = self;
        for part in path {
            let PropertyValue::Map(fields) = node else {
                return Err(plain());
            };
            node = fields
                .entry((*part).to_owned())
                .or_insert_with(PropertyValue::map);
        }
        let PropertyValue::Map(fields) = node else {
            return Err(plain());
        };
        let last = (*last).to_owned();
        // A repeated key gathers its values in a list, one level more:
        // every value that lands in one must still fit.
        let in_list = |v: &PropertyValue| {
            let depth = parts.len() + 1 + v.depth();
            (depth > MAX_DEPTH).then(|| {
                PropertyError::for_key(
                    full_key,
                    format!(
                        "given more than once, nested {depth} levels deep; properties nest at most {MAX_DEPTH} levels"
                    ),
                )
            })
        };
        if matches!(merge, Merge::Append) && fields.contains_key(&last) {
            let previous = fields
                .get(&last)
                .filter(|p| !matches!(p, PropertyValue::List(_)));
            if let Some(e) = in_list(&value).or_else(|| previous.and_then(in_list)) {
                return Err(e);
            }
        }
        match (fields.remove(&last), merge) {
            (Some(PropertyValue::List(mut items)), Merge::Append) => {
                items.push(value);
                fields.insert(last, PropertyValue::List(items));
            }
            (Some(previous), Merge::Append) => {
                fields.insert(last, PropertyValue::List(vec![previous, value]));
            }
            (_, _) => {
                fields.insert(last, value);
            }
        }
        Ok(())
    }

    fn describe(&self) -> &'static str {
        match self {
            PropertyValue::Scalar(_) => "a single value",
            PropertyValue::List(_) => "a list",
            PropertyValue::Map(_) => "a property string (key=value,...)",
        }
    }
}

#[derive(Clone, Copy)]
enum Merge {
    Append,
    Replace,
}

fn normalize(key: &str) -> String {
    key.trim_start_matches('-').replace('-', "_")
}

/// `a=1,b=2` → map; anything else → scalar. A value whose first `=` comes
/// after a character that cannot be in a field name (`/`, `:`, space) stays
/// a scalar, so `--template local:vztmpl/x.tar.zst` is not split.
pub(crate) fn parse_value(value: &str) -> PropertyValue {
    let looks_like_fields = value.split(',').all(|part| {
        part.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    });
    if !looks_like_fields {
        return PropertyValue::Scalar(value.to_owned());
    }
    PropertyValue::Map(
        value
            .split(',')
            .filter_map(|part| part.split_once('='))
            .map(|(k, v)| (normalize(k), PropertyValue::Scalar(v.to_owned())))
            .collect(),
    )
}

macro_rules! parse_scalar {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropertyError> {
            match self {
                PropertyValue::Scalar(s) => match s.trim().parse::<$ty>() {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(PropertyError::new(format!(
                        "{s:?} is not a valid {}", stringify!($ty)
                    ))),
                },
                other => Err(PropertyError::new(format!(
                    "expected a single {} value, got {}", stringify!($ty), other.describe()
                ))),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for PropertyValue {
    type Error = PropertyError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropertyError> {
        match self {
            PropertyValue::Scalar(s) => visitor.visit_string(s),
            PropertyValue::List(items) => visitor.visit_seq(Items(items.into_iter())),
            PropertyValue::Map(fields) => visitor.visit_map(Fields {
                iter: fields.into_iter(),
                pending: None,
            }),
        }
    }

    parse_scalar! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropertyError> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PropertyError> {
        match self {
            PropertyValue::List(items) => visitor.visit_seq(Items(items.into_iter())),
            single => visitor.visit_seq(Items(vec![single].into_iter())),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PropertyError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PropertyError> {
        match self {
            PropertyValue::Scalar(s) => {
                visitor.visit_enum(IntoDeserializer::<PropertyError>::into_deserializer(s))
            }
            other => Err(PropertyError::new(format!(
                "expected one of the allowed names, got {}",
                other.describe()
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple tuple_struct map struct
        identifier ignored_any i128 u128
    }
}

struct Items(std::vec::IntoIter<PropertyValue>);

impl<'de> SeqAccess<'de> for Items {
    type Error = PropertyError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PropertyError> {
        self.0.next().map(|item| seed.deserialize(item)).transpose()
    }
}

struct Fields {
    iter: std::collections::btree_map::IntoIter<String, PropertyValue>,
    pending: Option<(String, PropertyValue)>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = PropertyError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PropertyError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        let parsed = seed.deserialize(IntoDeserializer::<PropertyError>::into_deserializer(
            key.clone(),
        ))?;
        self.pending = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, PropertyError> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| PropertyError::new("value requested before its key"))?;
        seed.deserialize(value)
            .map_err(|e| PropertyError::new(format!("{key}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Subnet {
        name: String,
        cidr: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Safe,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        alias: Option<String>,
        memory: u32,
        enabled: bool,
        mode: Mode,
        #[serde(default)]
        subnets: Vec<Subnet>,
        #[serde(default)]
        ssh_keys: Vec<String>,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Nested {
        port: u16,
    }

    fn decode(pairs: &[(&str, &str)]) -> Result<Spec, PropertyError> {
        Spec::deserialize(PropertyValue::from_pairs(pairs.iter().copied())?)
    }

    #[test]
    fn strings_stay_strings_and_numbers_parse_on_demand() {
        let spec = decode(&[
            ("alias", "2024"),
            ("memory", "512"),
            ("enabled", "true"),
            ("mode", "safe"),
            ("ssh-keys", "admin"),
            ("subnets", "name=a,cidr=10.0.0.0/25"),
            ("subnets", "name=b,cidr=10.0.0.128/25"),
            ("nested.port", "8080"),
        ])
        .unwrap();
        assert_eq!(spec.alias.as_deref(), Some("2024"));
        assert_eq!(spec.memory, 512);
        assert!(spec.enabled);
        assert_eq!(spec.mode, Mode::Safe);
        assert_eq!(spec.ssh_keys, ["admin"]);
        assert_eq!(spec.subnets.len(), 2);
        assert_eq!(spec.subnets[1].cidr, "10.0.0.128/25");
        assert_eq!(spec.nested, Some(Nested { port: 8080 }));
    }

    #[test]
    fn values_with_slashes_or_colons_are_not_split() {
        let value = parse_value("local:vztmpl/debian-12.tar.zst");
        assert_eq!(
            value,
            PropertyValue::Scalar("local:vztmpl/debian-12.tar.zst".into())
        );
        assert_eq!(
            parse_value("a=b=c"),
            PropertyValue::Map([("a".to_owned(), PropertyValue::Scalar("b=c".into()))].into())
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let base = [("enabled", "true"), ("mode", "fast")];
        let err = decode(&[base[0], base[1], ("memory", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("memory") && err.contains("\"lots\""), "{err}");
        let err = decode(&[base[0], base[1], ("memory", "1"), ("colour", "red")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        let err = decode(&[base[0], ("mode", "turbo"), ("memory", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode") && err.contains("turbo"), "{err}");
    }

    #[test]
    fn keys_are_walked_without_recursion_and_capped() {
        let mut value = PropertyValue::map();
        let deepest = vec!["a"; MAX_DEPTH].join(".");
        value
            .insert(&deepest, PropertyValue::Scalar("1".into()))
            .unwrap();
        assert_eq!(value.depth(), MAX_DEPTH);
        let err = value
            .insert(
                &vec!["b"; 40_000].join("."),
                PropertyValue::Scalar("1".into()),
            )
            .unwrap_err();
        assert!(err.to_string().contains("nested 40000 levels"), "{err}");
        assert_eq!(err.key().map(str::len), Some(SHOWN_KEY_CHARS + 3));
        // The value's own nesting counts too.
        let map = parse_value("x=1");
        let err = value
            .insert(&vec!["c"; MAX_DEPTH].join("."), map)
            .unwrap_err();
        assert!(err.reason().contains("nested 17 levels"), "{err}");
        value
            .insert("s", PropertyValue::Scalar("1".into()))
            .unwrap();
        let err = value
            .insert("s.t", PropertyValue::Scalar("1".into()))
            .unwrap_err();
        assert!(err.reason().contains("plain value"), "{err}");
        assert!(value.remove(&deepest));

        // A repeated key adds a list level, which counts too (the review's
        // `a.b.….(16 parts)=1&a.b.….(15 parts)=2`).
        let mut value = PropertyValue::map();
        let sixteen = vec!["d"; MAX_DEPTH].join(".");
        value
            .insert(&sixteen, PropertyValue::Scalar("1".into()))
            .unwrap();
        let err = value
            .insert(&sixteen, PropertyValue::Scalar("2".into()))
            .unwrap_err();
        assert!(err.reason().contains("given more than once"), "{err}");
        let fifteen = vec!["d"; MAX_DEPTH - 1].join(".");
        let err = value
            .insert(&fifteen, PropertyValue::Scalar("2".into()))
            .unwrap_err();
        assert!(err.reason().contains("nested 17 levels"), "{err}");
        assert!(value.depth() <= MAX_DEPTH);
        let mut value = PropertyValue::map();
        value
            .insert("e", PropertyValue::Scalar("1".into()))
            .unwrap();
        value
            .insert("e", PropertyValue::Scalar("2".into()))
            .unwrap();
        value
            .insert("e", PropertyValue::Scalar("3".into()))
            .unwrap();
        assert_eq!(value.depth(), 2);
    }

    #[test]
    fn json_round_trip_replace_and_remove() {
        let json = serde_json::json!({"memory": 256, "enabled": false, "mode": "fast",
            "alias": null, "subnets": [{"name": "a", "cidr": "10.0.0.0/24"}]});
        let mut value = PropertyValue::from_json(&json).unwrap();
        value
            .replace("memory", PropertyValue::Scalar("1024".into()))
            .unwrap();
        value
            .replace("alias", PropertyValue::Scalar("front".into()))
            .unwrap();
        assert!(value.remove("subnets"));
        assert!(!value.remove("nested.port"));
        let spec = Spec::deserialize(value).unwrap();
        assert_eq!(spec.memory, 1024);
        assert_eq!(spec.alias.as_deref(), Some("front"));
        assert!(spec.subnets.is_empty());
    }
}

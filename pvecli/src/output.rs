//! Printing API results as text tables, JSON or YAML, the way pvesh does.

use serde_json::Value;

use crate::cli::OutputFormat;

/// Renders `value` in `format` (with a trailing newline).
pub fn render(value: &Value, format: OutputFormat) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string(value)?),
        OutputFormat::JsonPretty => format!("{}\n", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => serde_saphyr::to_string(value)?,
        OutputFormat::Text => text(value),
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::Array(items) if items.is_empty() => String::new(),
        Value::Array(items) => {
            let rows: Vec<Vec<(String, String)>> = items.iter().map(summary_row).collect();
            table(&rows)
        }
        Value::Object(_) => {
            let mut pairs = Vec::new();
            flatten("", value, &mut pairs);
            let rows: Vec<Vec<(String, String)>> = pairs
                .into_iter()
                .map(|(k, v)| vec![("key".to_owned(), k), ("value".to_owned(), v)])
                .collect();
            table(&rows)
        }
        other => format!("{}\n", scalar(other)),
    }
}

/// One table row for a list item: for objects (`metadata`/`spec`/`status`)
/// the name, the spec's simple fields and the status phase; otherwise the
/// item's own simple fields.
fn summary_row(item: &Value) -> Vec<(String, String)> {
    let mut row = Vec::new();
    let Value::Object(fields) = item else {
        return vec![("value".into(), scalar(item))];
    };
    let (Some(metadata), Some(Value::Object(spec))) = (fields.get("metadata"), fields.get("spec"))
    else {
        for (k, v) in fields {
            if let Some(s) = simple(v) {
                row.push((k.clone(), s));
            }
        }
        return row;
    };
    row.push((
        "name".into(),
        metadata.get("name").map(scalar).unwrap_or_default(),
    ));
    for (k, v) in spec {
        if let Some(s) = simple(v) {
            row.push((k.clone(), s));
        }
    }
    row.push(("status".into(), phase(fields.get("status"))));
    row
}

fn phase(status: Option<&Value>) -> String {
    let holds = |kind: &str| {
        status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_bool) == Some(true)
            })
    };
    ["Failed", "Ready", "Progressing"]
        .into_iter()
        .find(|k| holds(k))
        .unwrap_or("Pending")
        .to_owned()
}

/// A scalar, or a list of scalars / of objects with a `name`, as one cell.
fn simple(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) | Value::Null => None,
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(o) => o.get("name").map(scalar),
                Value::Array(_) => None,
                other => Some(scalar(other)),
            })
            .collect::<Option<Vec<_>>>()
            .map(|cells| cells.join(",")),
        other => Some(scalar(other)),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (k, v) in fields {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

/// A pvesh-like box table; columns in order of first appearance.
fn table(rows: &[Vec<(String, String)>]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        for (k, _) in row {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let cell = |row: &Vec<(String, String)>, col: &str| {
        row.iter()
            .find(|(k, _)| k == col)
            .map(|(_, v)| v.replace('\n', " "))
            .unwrap_or_default()
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = |left: &str, mid: &str, right: &str, fill: &str| {
        let parts: Vec<String> = widths.iter().map(|w| fill.repeat(w + 2)).collect();
        format!("{left}{}{right}\n", parts.join(mid))
    };
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count())))
            .collect();
        format!("│{}│\n", parts.join("│"))
    };
    let mut out = rule("┌", "┬", "┐", "─");
    out += &line(columns.clone());
    out += &rule("╞", "╪", "╡", "═");
    for row in rows {
        out += &line(columns.iter().map(|c| cell(row, c)).collect());
    }
    out += &rule("└", "┴", "┘", "─");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_lists_become_summary_tables() {
        let value = json!([
            {"metadata": {"name": "web"}, "spec": {"cidr": "172.16.0.0/24",
              "subnets": [{"name": "main", "cidr": "172.16.0.0/24"}]},
             "status": {"conditions": [{"type": "Ready", "status": true}]}},
            {"metadata": {"name": "db"}, "spec": {"cidr": "10.8.0.0/16"}, "status": null}
        ]);
        let out = render(&value, OutputFormat::Text).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "│ name │ cidr          │ subnets │ status  │");
        assert_eq!(lines[3], "│ web  │ 172.16.0.0/24 │ main    │ Ready   │");
        assert_eq!(lines[4], "│ db   │ 10.8.0.0/16   │         │ Pending │");
    }

    #[test]
    fn single_objects_become_key_value_tables() {
        let out = render(
            &json!({"spec": {"cidr": "10.0.0.0/8", "subnets": [{"name": "a"}]}}),
            OutputFormat::Text,
        )
        .unwrap();
        assert!(
            out.contains("│ spec.cidr            │ 10.0.0.0/8 │"),
            "{out}"
        );
        assert!(
            out.contains("│ spec.subnets[0].name │ a          │"),
            "{out}"
        );
    }

    #[test]
    fn machine_formats_round_trip() {
        let value = json!({"a": [1, 2], "b": {"c": "d"}});
        for format in [OutputFormat::Json, OutputFormat::JsonPretty] {
            let back: Value = serde_json::from_str(&render(&value, format).unwrap()).unwrap();
            assert_eq!(back, value);
        }
        let yaml = render(&value, OutputFormat::Yaml).unwrap();
        assert!(yaml.contains("c: d"), "{yaml}");
    }
}

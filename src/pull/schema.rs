//! The day-file schema of each resource type, typed as
//! `../shared/docs/record-format.md` says (timestamps, integer counters,
//! numeric prices, booleans), and written as JSON Schema or as a table of
//! PostgreSQL, DuckDB or BigQuery.

use serde_json::{json, Value};

use crate::domain::record::fields;
use crate::domain::ResourceType;

/// The type of a day-file field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Timestamp,
    Integer,
    Numeric,
    Boolean,
}

/// A field's type by its name (the same name has the same type in every resource).
pub fn field_type(name: &str) -> FieldType {
    match name {
        "date_created" | "date_updated" | "date_sent" | "start_time" | "end_time" => {
            FieldType::Timestamp
        }
        "num_segments" | "num_media" | "duration" | "queue_time" | "error_code" => {
            FieldType::Integer
        }
        "price" => FieldType::Numeric,
        "coaching" | "end_conference_on_exit" | "muted" | "hold" | "start_conference_on_enter" => {
            FieldType::Boolean
        }
        _ => FieldType::Text,
    }
}

/// The table a resource type loads into.
pub fn table(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::Messages => "messages",
        ResourceType::Calls => "calls",
        ResourceType::Conferences => "conferences",
        ResourceType::Participants => "participants",
    }
}

/// The columns that identify a record.
pub fn key(rt: ResourceType) -> &'static [&'static str] {
    match rt {
        ResourceType::Participants => &["conference_sid", "call_sid"],
        _ => &["sid"],
    }
}

fn required(rt: ResourceType, name: &str) -> bool {
    key(rt).contains(&name) || matches!(name, "account_sid" | "date_created")
}

pub fn postgres_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Text => "text",
        FieldType::Timestamp => "timestamptz",
        FieldType::Integer => "bigint",
        FieldType::Numeric => "numeric",
        FieldType::Boolean => "boolean",
    }
}

/// `CREATE TABLE IF NOT EXISTS` of the resource type in `schema`.
pub fn postgres_table(rt: ResourceType, schema: &str) -> String {
    let columns: Vec<String> = fields(rt)
        .iter()
        .map(|f| {
            let null = if required(rt, f) { " NOT NULL" } else { "" };
            format!("    \"{f}\" {}{null}", postgres_type(field_type(f)))
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\".{} (\n{},\n    PRIMARY KEY ({})\n);\n",
        table(rt),
        columns.join(",\n"),
        key(rt).join(", ")
    )
}

/// A DuckDB view over the pulled files under `dir`, typed.
pub fn duckdb_view(rt: ResourceType, dir: &str) -> String {
    let columns: Vec<String> = fields(rt)
        .iter()
        .map(|f| {
            let t = match field_type(f) {
                FieldType::Text => "VARCHAR",
                FieldType::Timestamp => "TIMESTAMPTZ",
                FieldType::Integer => "BIGINT",
                FieldType::Numeric => "DECIMAL(18,6)",
                FieldType::Boolean => "BOOLEAN",
            };
            format!("'{f}': '{t}'")
        })
        .collect();
    let glob = format!("{}/*/{}/*.json.gz", dir.trim_end_matches('/'), rt.as_str());
    format!(
        "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_json('{}', format = 'newline_delimited', columns = {{{}}});\n",
        table(rt),
        glob.replace('\'', "''"),
        columns.join(", ")
    )
}

/// A BigQuery table schema (the JSON `bq mk --schema` reads).
pub fn bigquery(rt: ResourceType) -> Value {
    Value::Array(
        fields(rt)
            .iter()
            .map(|f| {
                let t = match field_type(f) {
                    FieldType::Text => "STRING",
                    FieldType::Timestamp => "TIMESTAMP",
                    FieldType::Integer => "INT64",
                    FieldType::Numeric => "NUMERIC",
                    FieldType::Boolean => "BOOL",
                };
                let mode = if required(rt, f) {
                    "REQUIRED"
                } else {
                    "NULLABLE"
                };
                json!({"name": f, "type": t, "mode": mode})
            })
            .collect(),
    )
}

/// The JSON Schema of one line of the resource type's day files.
pub fn json_schema(rt: ResourceType) -> Value {
    let mut properties = serde_json::Map::new();
    for f in fields(rt) {
        let (t, extra) = match field_type(f) {
            FieldType::Text => ("string", None),
            FieldType::Timestamp => ("string", Some(("format", "date-time"))),
            FieldType::Integer => ("integer", None),
            FieldType::Numeric => ("string", Some(("pattern", "^-?[0-9]+(\\.[0-9]+)?$"))),
            FieldType::Boolean => ("boolean", None),
        };
        let mut p = if required(rt, f) {
            json!({"type": t})
        } else {
            json!({"type": [t, "null"]})
        };
        if let Some((k, v)) = extra {
            p[k] = v.into();
        }
        properties.insert((*f).to_string(), p);
    }
    let required: Vec<&str> = fields(rt)
        .iter()
        .copied()
        .filter(|f| required(rt, f))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{} day-file record", rt.as_str()),
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_keyed_and_typed_as_the_record_format_says() {
        let sql = postgres_table(ResourceType::Participants, "public");
        assert!(
            sql.contains("PRIMARY KEY (conference_sid, call_sid)"),
            "{sql}"
        );
        assert!(sql.contains("\"muted\" boolean"), "{sql}");
        let sql = postgres_table(ResourceType::Messages, "exports");
        assert!(sql.contains("\"exports\".messages"), "{sql}");
        assert!(
            sql.contains("\"date_created\" timestamptz NOT NULL"),
            "{sql}"
        );
        assert!(sql.contains("\"num_segments\" bigint"), "{sql}");
        assert!(sql.contains("\"price\" numeric"), "{sql}");
        let view = duckdb_view(ResourceType::Calls, "out/");
        assert!(view.contains("read_json('out/*/Calls/*.json.gz'"), "{view}");
        assert!(view.contains("'duration': 'BIGINT'"), "{view}");
        assert_eq!(
            json_schema(ResourceType::Calls)["properties"]["start_time"]["format"],
            "date-time"
        );
        assert_eq!(bigquery(ResourceType::Messages)[0]["name"], "body");
    }
}

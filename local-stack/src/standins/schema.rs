//! The smallest instance of a JSON schema: what the chat-completions stand-in answers for a
//! strict `json_schema` response format.

use super::*;

/// Bounds the schema walk, so a recursive `$ref` cannot recurse forever.
pub(super) const MAX_SCHEMA_DEPTH: usize = 32;
/// Bounds `minItems` / `minLength`, so a hostile schema cannot exhaust memory.
pub(super) const MAX_GENERATED_LENGTH: u64 = 1024;

/// The smallest value valid against a JSON Schema, as far as OpenAI's structured outputs use
/// schemas: `const`, first `enum` value, `$ref` into the root, first `anyOf`/`oneOf` branch,
/// merged `allOf`, objects with their required properties, arrays of `minItems` items, strings
/// of `minLength` (or a fixed value for a `format`), numbers within their bounds. `pattern` is not
/// honoured.
pub(super) fn minimal_instance(schema: &Value, root: &Value, depth: usize) -> Value {
    let Some(schema) = schema.as_object().filter(|_| depth <= MAX_SCHEMA_DEPTH) else {
        return Value::Null;
    };
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema.get("enum").and_then(first_item) {
        return first.clone();
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let resolved = match target {
            "#" => Some(root),
            _ => target
                .strip_prefix('#')
                .and_then(|pointer| root.pointer(pointer)),
        };
        return resolved.map_or(Value::Null, |s| minimal_instance(s, root, depth + 1));
    }
    if let Some(branch) = ["anyOf", "oneOf"]
        .iter()
        .find_map(|key| schema.get(*key).and_then(first_item))
    {
        return minimal_instance(branch, root, depth + 1);
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            match minimal_instance(part, root, depth + 1) {
                Value::Object(fields) => merged.extend(fields),
                other => return other,
            }
        }
        return Value::Object(merged);
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str),
        _ if schema.contains_key("properties") => Some("object"),
        _ => None,
    };
    let length = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(MAX_GENERATED_LENGTH)
    };
    match kind {
        Some("object") => {
            let properties = schema.get("properties");
            let required = schema.get("required").and_then(Value::as_array);
            let fields = required
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|name| {
                    let property = properties
                        .and_then(|p| p.get(name))
                        .unwrap_or(&Value::Bool(true));
                    (name.to_owned(), minimal_instance(property, root, depth + 1))
                })
                .collect();
            Value::Object(fields)
        }
        Some("array") => {
            let item = schema.get("items").unwrap_or(&Value::Bool(true));
            let item = minimal_instance(item, root, depth + 1);
            Value::Array(vec![item; length("minItems") as usize])
        }
        Some("string") => match schema
            .get("format")
            .and_then(Value::as_str)
            .and_then(format_example)
        {
            Some(example) => Value::from(example),
            None => Value::from("a".repeat(length("minLength") as usize)),
        },
        Some("integer") => Value::from(bounded(schema, true) as i64),
        Some("number") => Value::from(bounded(schema, false)),
        Some("boolean") => Value::Bool(false),
        _ => Value::Null,
    }
}

pub(super) fn first_item(value: &Value) -> Option<&Value> {
    value.as_array().and_then(|items| items.first())
}

pub(super) fn format_example(format: &str) -> Option<&'static str> {
    Some(match format {
        "date-time" => "1970-01-01T00:00:00Z",
        "date" => "1970-01-01",
        "time" => "00:00:00Z",
        "duration" => "P0D",
        "email" => "stand-in@localhost",
        "hostname" => "localhost",
        "ipv4" => "127.0.0.1",
        "ipv6" => "::1",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "uri" => "http://localhost/",
        _ => return None,
    })
}

/// How far inside an exclusive bound a generated number is put.
pub(super) const NUMBER_STEP: f64 = 1e-6;

/// Zero, moved into `[minimum, maximum]` (exclusive bounds honoured; whole for integers).
pub(super) fn bounded(schema: &Map<String, Value>, integer: bool) -> f64 {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let step = if integer { 1.0 } else { NUMBER_STEP };
    let lowest = match (bound("minimum"), bound("exclusiveMinimum")) {
        (Some(min), _) if integer => Some(min.ceil()),
        (Some(min), _) => Some(min),
        (None, Some(min)) if integer => Some(min.floor() + 1.0),
        (None, Some(min)) => Some(min + step),
        (None, None) => None,
    };
    let highest = match (bound("maximum"), bound("exclusiveMaximum")) {
        (Some(max), _) if integer => Some(max.floor()),
        (Some(max), _) => Some(max),
        (None, Some(max)) if integer => Some(max.ceil() - 1.0),
        (None, Some(max)) => Some(max - step),
        (None, None) => None,
    };
    match (lowest, highest) {
        (Some(low), _) if low > 0.0 => low,
        (_, Some(high)) if high < 0.0 => high,
        _ => 0.0,
    }
}

//! Typed reads of a delivery's payload. A missing field (absent or `null`) is
//! [`EdgeError::MissingField`] and a malformed one [`EdgeError::InvalidField`], both named by the
//! field's path (`items[1].title`), so that every function answers bad input with the same 400.

use serde_json::{Map, Value};

use crate::error::EdgeError;

/// A payload object's fields, read by name.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self(object)
    }

    /// A field that must be present.
    pub fn value(&self, name: &str) -> Result<&'a Value, EdgeError> {
        self.optional(name)
            .ok_or_else(|| EdgeError::MissingField(name.to_owned()))
    }

    fn optional(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|value| !value.is_null())
    }

    pub fn text(&self, name: &str) -> Result<String, EdgeError> {
        text_at(self.value(name)?, name)
    }

    pub fn optional_text(&self, name: &str) -> Result<Option<String>, EdgeError> {
        self.optional(name)
            .map(|value| text_at(value, name))
            .transpose()
    }

    /// A row's id: a positive integer.
    pub fn id(&self, name: &str) -> Result<i64, EdgeError> {
        id_at(self.value(name)?)
            .ok_or_else(|| EdgeError::invalid_field(name, "expected a positive integer id"))
    }

    /// A user's or a session's id, lower-cased.
    pub fn uuid(&self, name: &str) -> Result<String, EdgeError> {
        let text = self.text(name)?;
        if is_uuid(&text) {
            Ok(text.to_ascii_lowercase())
        } else {
            Err(EdgeError::invalid_field(name, "expected a UUID"))
        }
    }

    /// The ids a field lists, if it lists any: an array of positive integers.
    pub fn optional_ids(&self, name: &str) -> Result<Option<Vec<i64>>, EdgeError> {
        let Some(value) = self.optional(name) else {
            return Ok(None);
        };
        let Value::Array(ids) = value else {
            return Err(EdgeError::invalid_field(name, "expected an array of ids"));
        };
        ids.iter()
            .map(|id| {
                id_at(id)
                    .ok_or_else(|| EdgeError::invalid_field(name, "expected positive integer ids"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Each object of an array field, read by `read`; an error inside names the element's path.
    pub fn each<T>(
        &self,
        name: &str,
        read: impl Fn(Fields<'a>) -> Result<T, EdgeError>,
    ) -> Result<Vec<T>, EdgeError> {
        let Value::Array(elements) = self.value(name)? else {
            return Err(EdgeError::invalid_field(name, "expected an array"));
        };
        elements
            .iter()
            .enumerate()
            .map(|(index, element)| {
                let path = format!("{name}[{index}]");
                let Value::Object(element) = element else {
                    return Err(EdgeError::invalid_field(&path, "expected an object"));
                };
                read(Fields(element)).map_err(|error| prefixed(error, &path))
            })
            .collect()
    }
}

/// Whether a payload's id is a UUID: `8-4-4-4-12` hexadecimal digits.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

fn text_at(value: &Value, name: &str) -> Result<String, EdgeError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| EdgeError::invalid_field(name, "expected a string"))
}

fn id_at(value: &Value) -> Option<i64> {
    value.as_i64().filter(|id| *id > 0)
}

/// An error about a field of `path`'s element, renamed to the field's whole path.
fn prefixed(error: EdgeError, path: &str) -> EdgeError {
    match error {
        EdgeError::MissingField(field) => EdgeError::MissingField(format!("{path}.{field}")),
        EdgeError::InvalidField { field, reason } => EdgeError::InvalidField {
            field: format!("{path}.{field}"),
            reason,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T>(payload: Value, read: impl FnOnce(Fields<'_>) -> T) -> T {
        read(Fields::new(payload.as_object().unwrap()))
    }

    fn failure(error: EdgeError) -> (u16, String) {
        (error.status(), error.to_string())
    }

    #[test]
    fn present_fields_are_read_as_their_types() {
        let payload = json!({
            "name": "Rome", "id": 7, "user": "0B9A7C1E-5D7B-4F4E-9A51-0D1C2B3A4F50",
            "ids": [1, 2], "note": null,
        });
        read(payload, |fields| {
            assert_eq!(fields.text("name").unwrap(), "Rome");
            assert_eq!(fields.id("id").unwrap(), 7);
            assert_eq!(
                fields.uuid("user").unwrap(),
                "0b9a7c1e-5d7b-4f4e-9a51-0d1c2b3a4f50"
            );
            assert_eq!(fields.optional_ids("ids").unwrap(), Some(vec![1, 2]));
            assert_eq!(fields.optional_ids("none").unwrap(), None);
            assert_eq!(fields.optional_text("note").unwrap(), None);
        });
    }

    #[test]
    fn missing_and_malformed_fields_are_named_with_the_reason() {
        let payload = json!({
            "null": null, "number": 5, "negative": -1, "text": "x", "ids": [1, 0],
            "not_ids": {"a": 1},
        });
        read(payload, |fields| {
            let cases = [
                (
                    fields.text("absent").unwrap_err(),
                    "required field `absent` is missing",
                ),
                (
                    fields.id("null").unwrap_err(),
                    "required field `null` is missing",
                ),
                (
                    fields.text("number").unwrap_err(),
                    "field `number` is invalid: expected a string",
                ),
                (
                    fields.id("negative").unwrap_err(),
                    "field `negative` is invalid: expected a positive integer id",
                ),
                (
                    fields.uuid("text").unwrap_err(),
                    "field `text` is invalid: expected a UUID",
                ),
                (
                    fields.optional_ids("ids").unwrap_err(),
                    "field `ids` is invalid: expected positive integer ids",
                ),
                (
                    fields.optional_ids("not_ids").unwrap_err(),
                    "field `not_ids` is invalid: expected an array of ids",
                ),
            ];
            for (error, message) in cases {
                assert_eq!(failure(error), (400, message.to_owned()));
            }
        });
    }

    #[test]
    fn an_array_of_objects_names_the_element_that_is_wrong() {
        let title = |fields: Fields<'_>| fields.text("title");
        let payload = json!({"items": [{"title": "a"}, {"title": 5}], "one": {"title": "a"}});
        read(payload, |fields| {
            assert_eq!(
                failure(fields.each("items", title).unwrap_err()),
                (
                    400,
                    "field `items[1].title` is invalid: expected a string".to_owned()
                )
            );
            assert_eq!(
                failure(fields.each("one", title).unwrap_err()),
                (400, "field `one` is invalid: expected an array".to_owned())
            );
        });
        let payload = json!({"items": [{"title": "a"}, 3], "empty": [{}]});
        read(payload, |fields| {
            assert_eq!(
                failure(fields.each("items", title).unwrap_err()),
                (
                    400,
                    "field `items[1]` is invalid: expected an object".to_owned()
                )
            );
            assert_eq!(
                failure(fields.each("empty", title).unwrap_err()),
                (400, "required field `empty[0].title` is missing".to_owned())
            );
        });
        let payload = json!({"items": [{"title": "a"}, {"title": "b"}]});
        read(payload, |fields| {
            assert_eq!(fields.each("items", title).unwrap(), ["a", "b"]);
        });
    }
}

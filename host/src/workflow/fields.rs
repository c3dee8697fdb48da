//! Typed reads of optional JSON fields that record a problem when the type is wrong.

use serde_json::{Map, Value};

use super::error::{Problems, child, quoted_list};

/// The object's field view used while validating one node or connection.
pub(super) struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    pub path: &'a str,
    pub node: Option<&'a str>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, path: &'a str, node: Option<&'a str>) -> Self {
        Fields { map, path, node }
    }

    pub fn path_of(&self, key: &str) -> String {
        child(self.path, key)
    }

    /// Reports every key outside `allowed`, listing the allowed ones.
    pub fn reject_unknown(&self, allowed: &[&str], what: &str, problems: &mut Problems) {
        for key in self.map.keys() {
            if !allowed.contains(&key.as_str()) {
                problems.push(
                    self.path_of(key),
                    self.node,
                    format!(
                        "unknown key \"{key}\" in {what}; allowed keys: {}",
                        quoted_list(allowed)
                    ),
                );
            }
        }
    }

    /// The value at `key`; null counts as absent, like an unset field.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    pub fn string(&self, key: &str, problems: &mut Problems) -> Option<&'a str> {
        match self.get(key)? {
            Value::String(text) => Some(text),
            other => {
                self.wrong_type(key, "a string", other, problems);
                None
            }
        }
    }

    pub fn required_string(&self, key: &str, problems: &mut Problems) -> Option<&'a str> {
        if self.get(key).is_none() {
            problems.push(
                self.path_of(key),
                self.node,
                format!("\"{key}\" is required"),
            );
            return None;
        }
        self.string(key, problems)
    }

    pub fn bool(&self, key: &str, problems: &mut Problems) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(flag) => Some(*flag),
            other => {
                self.wrong_type(key, "true or false", other, problems);
                None
            }
        }
    }

    pub fn object(&self, key: &str, problems: &mut Problems) -> Option<&'a Map<String, Value>> {
        match self.get(key)? {
            Value::Object(map) => Some(map),
            other => {
                self.wrong_type(key, "an object", other, problems);
                None
            }
        }
    }

    pub fn array(&self, key: &str, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        match self.get(key)? {
            Value::Array(items) => Some(items),
            other => {
                self.wrong_type(key, "an array", other, problems);
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub fn integer(&self, key: &str, min: u64, max: u64, problems: &mut Problems) -> Option<u64> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(number) if (min..=max).contains(&number) => Some(number),
            _ => {
                let expected = format!("a whole number from {min} to {max}");
                self.wrong_type(key, &expected, value, problems);
                None
            }
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value, problems: &mut Problems) {
        problems.push(
            self.path_of(key),
            self.node,
            format!("\"{key}\" must be {expected}, not {}", describe(found)),
        );
    }
}

/// A short description of a JSON value for messages (never its full content).
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) if text.chars().count() <= 40 => format!("the string \"{text}\""),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

//! The trigger's payload from `--inputs`, checked against a SELF_SERVE_TRIGGER's `userInputs`.

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value};

/// Parses `--inputs`: inline JSON, or `@FILE`. No inputs means `{}`.
pub(crate) fn parse(arg: Option<&str>) -> anyhow::Result<Value> {
    let Some(arg) = arg else {
        return Ok(Value::Object(Map::new()));
    };
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --inputs file {path}"))?,
            path.to_string(),
        ),
        None => (arg.to_string(), "--inputs".to_string()),
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{origin}: not valid JSON"))?;
    if !value.is_object() {
        bail!("{origin}: inputs must be a JSON object");
    }
    Ok(value)
}

/// Applies `default`s and checks `required` and each property's `type`, as Port's self-service
/// form would before a run starts.
pub(crate) fn check_user_inputs(
    trigger: &str,
    user_inputs: &Value,
    inputs: &mut Value,
) -> anyhow::Result<()> {
    let Value::Object(given) = inputs else {
        bail!("inputs must be a JSON object")
    };
    let properties = user_inputs.get("properties").and_then(Value::as_object);
    if let Some(properties) = properties {
        for (name, spec) in properties {
            if !given.contains_key(name)
                && let Some(default) = spec.get("default")
            {
                given.insert(name.clone(), default.clone());
            }
        }
    }
    let mut problems = Vec::new();
    for name in user_inputs
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name.as_str()
            && given.get(name).is_none_or(Value::is_null)
        {
            problems.push(format!(
                "input \"{name}\" is required by trigger \"{trigger}\""
            ));
        }
    }
    for (name, value) in given.iter() {
        let Some(spec) = properties.and_then(|p| p.get(name)) else {
            continue;
        };
        let Some(expected) = spec.get("type").and_then(Value::as_str) else {
            continue;
        };
        if !value.is_null() && !has_type(value, expected) {
            problems.push(format!(
                "input \"{name}\" must be of type {expected}, got {value}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(problems.join("\n")))
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_and_non_object_inputs() {
        assert_eq!(parse(Some(r#"{"a":1}"#)).unwrap(), json!({"a": 1}));
        assert_eq!(parse(None).unwrap(), json!({}));
        assert!(
            parse(Some("[1]"))
                .unwrap_err()
                .to_string()
                .contains("must be a JSON object")
        );
        assert!(parse(Some("{")).is_err());
    }

    #[test]
    fn defaults_required_and_types() {
        let spec = json!({
            "properties": {"service": {"type": "string"}, "replicas": {"type": "number", "default": 2}},
            "required": ["service"]
        });
        let mut inputs = json!({"service": "api"});
        check_user_inputs("trigger", &spec, &mut inputs).unwrap();
        assert_eq!(inputs["replicas"], 2);

        let mut missing = json!({});
        let err = check_user_inputs("trigger", &spec, &mut missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"service\" is required"), "{err}");

        let mut wrong = json!({"service": 3});
        let err = check_user_inputs("trigger", &spec, &mut wrong)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be of type string"), "{err}");
    }
}

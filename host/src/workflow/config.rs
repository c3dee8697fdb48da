//! Checks a node's `config` by type and compiles its templates and expressions.

use serde_json::{Map, Value};

use super::error::{Problems, child, index};
use super::fields::{Fields, describe};
use super::model::{Callback, NodeKind, OnFailure, Outlet};
use super::{identifier, webhook};
use crate::template::{Expr, Template};

/// Config keys the host consumes itself; they are never passed to the node component.
pub const HOST_KEYS: &[&str] = &["type", "onFailure", "onTimeout"];

/// A `.outputs.X` reference found at `path`, checked against the graph later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    pub path: String,
    pub output: String,
}

/// What the config check produced; `None` parts failed and were reported.
pub(super) struct CheckedConfig {
    pub template: Option<Template>,
    pub on_failure: Option<OnFailure>,
    pub outlets: Option<Vec<Outlet>>,
    /// Set for an asynchronous WEBHOOK.
    pub callback: Option<Callback>,
    pub references: Vec<Reference>,
}

pub(super) fn check(
    kind: &NodeKind,
    config: &Fields<'_>,
    problems: &mut Problems,
) -> CheckedConfig {
    let on_failure = on_failure(config, problems);
    let mut references = Vec::new();
    let mut outlets = Some(Vec::new());
    let mut callback = None;
    match kind {
        NodeKind::Webhook => callback = webhook::check(config, problems),
        NodeKind::Condition => outlets = condition_outlets(config, &mut references, problems),
        NodeKind::SelfServeTrigger => user_inputs(config, problems),
        NodeKind::EventTrigger => {
            config.object("event", problems);
            config.object("condition", problems);
        }
        // A custom node's config is whatever its component understands.
        NodeKind::Custom(_) => {}
    }
    let template = if kind.is_action() {
        action_template(config, &mut references, problems)
    } else {
        Template::compile(&Value::Object(Map::new()), config.path)
            .map_err(|error| problems.template(config.node, error))
            .ok()
    };
    CheckedConfig {
        template,
        on_failure,
        outlets,
        callback,
        references,
    }
}

fn on_failure(config: &Fields<'_>, problems: &mut Problems) -> Option<OnFailure> {
    let Some(value) = config.get("onFailure") else {
        return Some(OnFailure::Terminate);
    };
    match value.as_str() {
        Some("terminate") => Some(OnFailure::Terminate),
        Some("continue") => Some(OnFailure::Continue),
        _ => {
            problems.push(
                config.path_of("onFailure"),
                config.node,
                format!(
                    "\"onFailure\" must be \"terminate\" or \"continue\", not {}",
                    describe(value)
                ),
            );
            None
        }
    }
}

/// Compiles every string of the config on its own first, so each broken template is reported at
/// its exact path and each `.outputs` reference is located; then compiles the whole config.
fn action_template(
    config: &Fields<'_>,
    references: &mut Vec<Reference>,
    problems: &mut Problems,
) -> Option<Template> {
    let mut passed: Map<String, Value> = Map::new();
    let mut all_compiled = true;
    for (key, value) in config.map {
        if HOST_KEYS.contains(&key.as_str()) {
            continue;
        }
        all_compiled &= compile_strings(
            value,
            &child(config.path, key),
            config.node,
            references,
            problems,
        );
        passed.insert(key.clone(), value.clone());
    }
    if !all_compiled {
        return None;
    }
    Template::compile(&Value::Object(passed), config.path)
        .map_err(|error| problems.template(config.node, error))
        .ok()
}

fn compile_strings(
    value: &Value,
    path: &str,
    node: Option<&str>,
    references: &mut Vec<Reference>,
    problems: &mut Problems,
) -> bool {
    match value {
        Value::String(_) => match Template::compile(value, path) {
            Ok(template) => {
                references.extend(template.referenced_outputs().into_iter().map(|output| {
                    Reference {
                        path: path.to_owned(),
                        output,
                    }
                }));
                true
            }
            Err(error) => {
                problems.template(node, error);
                false
            }
        },
        Value::Array(items) => items.iter().enumerate().fold(true, |ok, (i, item)| {
            compile_strings(item, &index(path, i), node, references, problems) && ok
        }),
        Value::Object(map) => map.iter().fold(true, |ok, (key, item)| {
            compile_strings(item, &child(path, key), node, references, problems) && ok
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

const OUTLET_KEYS: &[&str] = &["identifier", "title", "description", "expression"];

fn condition_outlets(
    config: &Fields<'_>,
    references: &mut Vec<Reference>,
    problems: &mut Problems,
) -> Option<Vec<Outlet>> {
    let path = config.path_of("outlets");
    let Some(items) = config.array("outlets", problems) else {
        if config.get("outlets").is_none() {
            problems.push(path, config.node, "a CONDITION needs \"outlets\"");
        }
        return None;
    };
    if items.is_empty() {
        problems.push(path, config.node, "a CONDITION needs at least one outlet");
        return None;
    }
    let mut outlets: Vec<Outlet> = Vec::with_capacity(items.len());
    let mut complete = true;
    for (i, item) in items.iter().enumerate() {
        let outlet_path = index(&path, i);
        let Value::Object(map) = item else {
            problems.push(outlet_path, config.node, "an outlet must be an object");
            complete = false;
            continue;
        };
        let fields = Fields::new(map, &outlet_path, config.node);
        match outlet(&fields, &outlets, references, problems) {
            Some(outlet) => outlets.push(outlet),
            None => complete = false,
        }
    }
    complete.then_some(outlets)
}

/// One outlet; `before` are the outlets already read, whose identifiers it may not repeat.
fn outlet(
    fields: &Fields<'_>,
    before: &[Outlet],
    references: &mut Vec<Reference>,
    problems: &mut Problems,
) -> Option<Outlet> {
    fields.reject_unknown(OUTLET_KEYS, "an outlet", problems);
    let id = fields.required_string("identifier", problems);
    if let Some(id) = id {
        identifier::check(
            id,
            &fields.path_of("identifier"),
            fields.node,
            "outlet identifier",
            problems,
        );
        if before.iter().any(|outlet| outlet.identifier == id) {
            problems.push(
                fields.path_of("identifier"),
                fields.node,
                format!("duplicate outlet identifier \"{id}\""),
            );
        }
    }
    let title = fields.string("title", problems);
    fields.string("description", problems);
    let expression = outlet_expression(fields, references, problems);
    Some(Outlet {
        identifier: id?.to_owned(),
        title: title.map(str::to_owned),
        expression: expression?,
    })
}

/// An outlet's `expression`, compiled, with the outputs it reads added to `references`.
fn outlet_expression(
    fields: &Fields<'_>,
    references: &mut Vec<Reference>,
    problems: &mut Problems,
) -> Option<Expr> {
    let path = fields.path_of("expression");
    let Some(value) = fields.get("expression") else {
        problems.push(&path, fields.node, "\"expression\" is required");
        return None;
    };
    let expression = match Expr::compile_field(value, &path) {
        Ok(expression) => expression,
        Err(error) => {
            problems.template(fields.node, error);
            return None;
        }
    };
    references.extend(
        expression
            .referenced_outputs()
            .into_iter()
            .map(|output| Reference {
                path: path.clone(),
                output,
            }),
    );
    Some(expression)
}

/// `userInputs` is kept as written; the shape the engine relies on (properties and the names
/// `required` lists) is checked here so a typo fails at load, not at run.
fn user_inputs(config: &Fields<'_>, problems: &mut Problems) {
    let Some(inputs) = config.object("userInputs", problems) else {
        return;
    };
    let path = config.path_of("userInputs");
    let inputs = Fields::new(inputs, &path, config.node);
    let properties = inputs.object("properties", problems);
    if let Some(properties) = properties {
        for (name, schema) in properties {
            if !schema.is_object() {
                problems.push(
                    child(&inputs.path_of("properties"), name),
                    config.node,
                    format!("user input \"{name}\" must be described by an object"),
                );
            }
        }
    }
    let Some(required) = inputs.array("required", problems) else {
        return;
    };
    for (i, name) in required.iter().enumerate() {
        let at = index(&inputs.path_of("required"), i);
        match name.as_str() {
            None => problems.push(at, config.node, "required inputs are named by strings"),
            Some(name) if !properties.is_some_and(|props| props.contains_key(name)) => problems
                .push(
                    at,
                    config.node,
                    format!("required input \"{name}\" is not declared in \"properties\""),
                ),
            Some(_) => {}
        }
    }
}

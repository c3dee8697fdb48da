//! Validates one entry of `nodes[]`.

use serde_json::{Map, Value};

use super::config::{self, Reference};
use super::error::{Problems, child, quoted_list};
use super::fields::Fields;
use super::identifier;
use super::model::{Node, NodeKind};
use crate::template::Expr;

const NODE_KEYS: &[&str] = &[
    "identifier",
    "title",
    "icon",
    "description",
    "config",
    "variables",
    "links",
    "verbose",
];

/// Port types Airlock recognises but does not run.
const UNSUPPORTED_TYPES: &[&str] = &[
    "SCHEDULE_TRIGGER",
    "UPSERT_ENTITY",
    "KAFKA",
    "INTEGRATION_ACTION",
    "AI_AGENT",
    "AI",
    "CURSOR_AGENT",
    "INPUT",
];

/// The name `.outputs.trigger` aliases to the trigger that fired.
pub const TRIGGER_ALIAS: &str = "trigger";

/// What validation learned about one node, even a broken one, for the graph checks.
pub(super) struct NodeDraft {
    pub path: String,
    /// Set when the identifier is valid.
    pub id: Option<String>,
    /// Set when the type is known.
    pub kind: Option<NodeKind>,
    pub outlets: Vec<String>,
    pub references: Vec<Reference>,
    /// Set when the node itself has no problem.
    pub node: Option<Node>,
}

pub(super) fn parse(
    i: usize,
    value: &Value,
    custom_types: &[String],
    problems: &mut Problems,
) -> NodeDraft {
    let path = format!("$.nodes[{i}]");
    let mut draft = NodeDraft {
        path: path.clone(),
        id: None,
        kind: None,
        outlets: Vec::new(),
        references: Vec::new(),
        node: None,
    };
    let Value::Object(map) = value else {
        problems.push(path, None, "a node must be an object");
        return draft;
    };
    // Name the node in every problem when the identifier is at least a string.
    let name = map.get("identifier").and_then(Value::as_str);
    let fields = Fields::new(map, &path, name);
    fields.reject_unknown(NODE_KEYS, "a node", problems);
    let id = identifier_of(&fields, name, problems);
    let title = fields.string("title", problems);
    // Port's fields that Airlock has no use for: only their types are checked.
    fields.string("icon", problems);
    fields.string("description", problems);
    fields.bool("verbose", problems);
    fields.array("links", problems);

    let config_path = fields.path_of("config");
    let config =
        config_object(&fields, problems).map(|config| Fields::new(config, &config_path, name));
    let kind = config
        .as_ref()
        .and_then(|config| kind(config, custom_types, problems));
    if let (Some(id), Some(kind)) = (id, &kind) {
        check_trigger_alias(&fields, id, kind, problems);
    }
    let variables = variables(&fields, &mut draft.references, problems);
    draft.id = id.map(str::to_owned);
    let (Some(config), Some(kind)) = (config, kind) else {
        return draft;
    };
    let checked = config::check(&kind, &config, problems);
    draft.references.extend(checked.references);
    draft.outlets = checked
        .outlets
        .iter()
        .flatten()
        .map(|outlet| outlet.identifier.clone())
        .collect();
    draft.kind = Some(kind.clone());
    // Built only when every part checked out; the graph checks still run either way.
    draft.node = (|| {
        Some(Node {
            identifier: id?.to_owned(),
            title: title.map(str::to_owned),
            kind,
            config: Value::Object(config.map.clone()),
            config_template: checked.template?,
            variables: variables?,
            on_failure: checked.on_failure?,
            callback: checked.callback,
            outlets: checked.outlets?,
        })
    })();
    draft
}

/// The node's `identifier`, when it is a valid one.
fn identifier_of<'a>(
    fields: &Fields<'a>,
    name: Option<&str>,
    problems: &mut Problems,
) -> Option<&'a str> {
    fields.required_string("identifier", problems).filter(|id| {
        identifier::check(
            id,
            &fields.path_of("identifier"),
            name,
            "node identifier",
            problems,
        )
    })
}

/// `trigger` names the trigger that fired in templates, so only a trigger may be called so.
fn check_trigger_alias(fields: &Fields<'_>, id: &str, kind: &NodeKind, problems: &mut Problems) {
    if id == TRIGGER_ALIAS && !kind.is_trigger() {
        problems.push(
            fields.path_of("identifier"),
            Some(id),
            "\"trigger\" is reserved for triggers: .outputs.trigger is the trigger that fired",
        );
    }
}

/// The node's `config`, which must be an object.
fn config_object<'a>(
    fields: &Fields<'a>,
    problems: &mut Problems,
) -> Option<&'a Map<String, Value>> {
    let problem = match fields.get("config") {
        Some(Value::Object(config)) => return Some(config),
        Some(_) => "\"config\" must be an object",
        None => "\"config\" is required",
    };
    problems.push(fields.path_of("config"), fields.node, problem);
    None
}

fn kind(config: &Fields<'_>, custom_types: &[String], problems: &mut Problems) -> Option<NodeKind> {
    let name = config.required_string("type", problems)?;
    if let Some(kind) = NodeKind::builtin(name) {
        return Some(kind);
    }
    if custom_types.iter().any(|custom| custom == name) {
        return Some(NodeKind::Custom(name.to_owned()));
    }
    let message = if UNSUPPORTED_TYPES.contains(&name) {
        format!("node type \"{name}\" is not supported by Airlock yet")
    } else {
        let mut known: Vec<&str> = vec![
            NodeKind::SELF_SERVE_TRIGGER,
            NodeKind::EVENT_TRIGGER,
            NodeKind::WEBHOOK,
            NodeKind::CONDITION,
        ];
        known.extend(custom_types.iter().map(String::as_str));
        format!(
            "unknown node type \"{name}\"; known types: {}",
            quoted_list(&known)
        )
    };
    problems.push(config.path_of("type"), config.node, message);
    None
}

/// `Some(None)` when the node has no variables; `None` when they are broken.
fn variables(
    fields: &Fields<'_>,
    references: &mut Vec<Reference>,
    problems: &mut Problems,
) -> Option<Option<Vec<(String, Expr)>>> {
    if fields.get("variables").is_none() {
        return Some(None);
    }
    let map = fields.object("variables", problems)?;
    let path = fields.path_of("variables");
    let mut compiled = Vec::with_capacity(map.len());
    let mut complete = true;
    for (name, value) in map {
        let at = child(&path, name);
        match Expr::compile_field(value, &at) {
            Ok(expression) => {
                references.extend(expression.referenced_outputs().into_iter().map(|output| {
                    Reference {
                        path: at.clone(),
                        output,
                    }
                }));
                compiled.push((name.clone(), expression));
            }
            Err(error) => {
                problems.template(fields.node, error);
                complete = false;
            }
        }
    }
    complete.then_some(Some(compiled))
}

//! Templates: JSON values whose strings hold `{{ jq }}` segments, rendered against the run
//! context (`.outputs`, `.secrets`, `.workflow`, `.workflowRun`, `.workflowNodeRun`).
//!
//! Everything is compiled once, at workflow load, so syntax errors and undefined functions
//! surface at validation time; rendering only runs the compiled filters. A string that is exactly
//! one template keeps its result's JSON type; text around templates makes a string. Port's
//! Go-template form `date "2006-01-02"` is accepted and rewritten to jq's `strftime`.

mod field;
mod golayout;
mod jq;
mod refs;
mod split;

use jaq_json::Val;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

use jq::JqFilter;
use split::Segment;

/// A template that failed to compile or render: where it is, what it says, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: template \"{expr}\": {message}")]
pub struct TemplateError {
    /// JSON path of the field, e.g. `$.nodes[1].config.body.name`.
    pub path: String,
    /// The template as written, e.g. `{{ .outputs.x | foo }}`.
    pub expr: String,
    pub message: String,
}

/// jq truthiness: everything except `false` and `null`.
pub fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

/// One compiled jq expression and the source it came from.
#[derive(Clone)]
struct Compiled {
    /// As written, for errors (`{{ .x }}`, or a bare expression).
    raw: String,
    /// The jq code, for the static reference scan.
    code: String,
    filter: Arc<JqFilter>,
}

impl Compiled {
    fn new(raw: &str, code: &str, path: &str) -> Result<Self, TemplateError> {
        let filter = jq::compile(&golayout::rewrite_date_calls(code))
            .map_err(|message| error(path, raw, message))?;
        Ok(Compiled {
            raw: raw.to_owned(),
            code: code.to_owned(),
            filter: Arc::new(filter),
        })
    }

    /// First output, `None` when there is none. Errors may quote the input (secret handles
    /// included): the engine scrubs them before they leave the node run.
    fn run(&self, input: &Val, path: &str) -> Result<Option<Value>, TemplateError> {
        jq::first_output(&self.filter, input.clone())
            .map_err(|message| error(path, &self.raw, message))
    }
}

fn error(path: &str, expr: &str, message: String) -> TemplateError {
    TemplateError {
        path: path.to_owned(),
        expr: expr.to_owned(),
        message,
    }
}

#[derive(Clone)]
enum Part {
    Text(String),
    Expr(Compiled),
}

#[derive(Clone)]
enum Node {
    /// A subtree without templates, returned as is.
    Static(Value),
    /// A string that is exactly one template: the result keeps its JSON type.
    Whole {
        path: String,
        expr: Compiled,
    },
    /// Text and templates making a string.
    Text {
        path: String,
        parts: Vec<Part>,
    },
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A JSON value whose strings may hold templates, compiled once (at workflow load) and rendered
/// many times, from any thread.
#[derive(Clone)]
pub struct Template {
    root: Node,
    /// A template-free value's compact JSON, serialised once.
    static_text: Option<String>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut exprs = Vec::new();
        self.root.exprs(&mut |c| exprs.push(c.raw.clone()));
        f.debug_struct("Template")
            .field("templates", &exprs)
            .finish()
    }
}

impl Template {
    /// Compiles every template in `value`. `path` is the JSON path of `value` used in errors,
    /// e.g. `$.nodes[1].config`.
    pub fn compile(value: &Value, path: &str) -> Result<Template, TemplateError> {
        let root = Node::compile(value, path)?;
        let static_text = match &root {
            Node::Static(value) => Some(value.to_string()),
            _ => None,
        };
        Ok(Template { root, static_text })
    }

    /// The compact JSON of a value without templates (what rendering it would give).
    pub fn static_text(&self) -> Option<&str> {
        self.static_text.as_deref()
    }

    /// Renders against `ctx`. Errors name the field path and the template.
    pub fn render(&self, ctx: &Value) -> Result<Value, TemplateError> {
        if let Node::Static(v) = &self.root {
            return Ok(v.clone());
        }
        // Converted once per render and shared (cheaply, by reference count) by every template.
        let input = Val::from(ctx.clone());
        self.root.render(&input)
    }

    /// Node identifiers this value's templates read through `.outputs.X`, `.outputs["X"]` or
    /// `.outputs."X"`, in order of first appearance. `trigger` is left out: `.outputs.trigger`
    /// aliases the trigger's payload, not a node. Best effort: dynamic keys are not seen.
    pub fn referenced_outputs(&self) -> Vec<String> {
        let mut found = Vec::new();
        self.root.exprs(&mut |c| refs::outputs(&c.code, &mut found));
        found
    }

    /// Secret names read through `.secrets.X`, `.secrets["X"]` or `.secrets."X"`.
    pub fn referenced_secrets(&self) -> Vec<String> {
        let mut found = Vec::new();
        self.root.exprs(&mut |c| refs::secrets(&c.code, &mut found));
        found
    }

    /// True when no string holds a template (lets callers skip rendering).
    pub fn is_static(&self) -> bool {
        matches!(self.root, Node::Static(_))
    }
}

impl Node {
    fn compile(value: &Value, path: &str) -> Result<Node, TemplateError> {
        let node = match value {
            Value::String(s) if s.contains("{{") => Node::compile_string(s, path)?,
            Value::Array(items) => {
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Node::compile(item, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Static(_))) {
                    Node::Static(value.clone())
                } else {
                    Node::Array(nodes)
                }
            }
            Value::Object(map) => {
                let entries = map
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Node::compile(v, &child_path(path, k))?)))
                    .collect::<Result<Vec<_>, TemplateError>>()?;
                if entries.iter().all(|(_, n)| matches!(n, Node::Static(_))) {
                    Node::Static(value.clone())
                } else {
                    Node::Object(entries)
                }
            }
            other => Node::Static(other.clone()),
        };
        Ok(node)
    }

    fn compile_string(s: &str, path: &str) -> Result<Node, TemplateError> {
        let segments = split::split(s).map_err(|unclosed| {
            error(
                path,
                unclosed.0,
                "syntax error: \"{{\" without a closing \"}}\"".into(),
            )
        })?;
        if let Some(Segment::Expr { raw, code }) = split::whole(&segments) {
            return Ok(Node::Whole {
                path: path.to_owned(),
                expr: Compiled::new(raw, code, path)?,
            });
        }
        let parts = segments
            .iter()
            .map(|seg| match seg {
                Segment::Text(t) => Ok(Part::Text((*t).to_owned())),
                Segment::Expr { raw, code } => Compiled::new(raw, code, path).map(Part::Expr),
            })
            .collect::<Result<_, _>>()?;
        Ok(Node::Text {
            path: path.to_owned(),
            parts,
        })
    }

    fn render(&self, input: &Val) -> Result<Value, TemplateError> {
        Ok(match self {
            Node::Static(v) => v.clone(),
            Node::Whole { path, expr } => expr.run(input, path)?.unwrap_or(Value::Null),
            Node::Text { path, parts } => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(expr) => match expr.run(input, path)? {
                            Some(Value::String(s)) => out.push_str(&s),
                            None | Some(Value::Null) => {}
                            Some(other) => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
            Node::Array(items) => items
                .iter()
                .map(|n| n.render(input))
                .collect::<Result<_, _>>()?,
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, n)| Ok((k.clone(), n.render(input)?)))
                    .collect::<Result<Map<_, _>, TemplateError>>()?,
            ),
        })
    }

    /// Visits every compiled expression, in document order.
    fn exprs(&self, visit: &mut impl FnMut(&Compiled)) {
        match self {
            Node::Static(_) => {}
            Node::Whole { expr, .. } => visit(expr),
            Node::Text { parts, .. } => parts.iter().for_each(|p| {
                if let Part::Expr(e) = p {
                    visit(e)
                }
            }),
            Node::Array(items) => items.iter().for_each(|n| n.exprs(visit)),
            Node::Object(entries) => entries.iter().for_each(|(_, n)| n.exprs(visit)),
        }
    }
}

/// `$.a.b` for identifier keys, `$.a["content-type"]` otherwise.
fn child_path(path: &str, key: &str) -> String {
    let mut chars = key.chars();
    let is_ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_ident {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

/// A bare jq expression (CONDITION outlet expressions, node `variables` values), accepted with
/// or without surrounding `{{ }}`.
#[derive(Clone)]
pub struct Expr {
    path: String,
    expr: Compiled,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.expr.raw).finish()
    }
}

impl Expr {
    pub fn compile(expr: &str, path: &str) -> Result<Expr, TemplateError> {
        let code = match split::split(expr) {
            Ok(segments) => match split::whole(&segments) {
                Some(Segment::Expr { code, .. }) => *code,
                _ => expr,
            },
            Err(_) => expr,
        };
        Ok(Expr {
            path: path.to_owned(),
            expr: Compiled::new(expr, code, path)?,
        })
    }

    /// Compiles a variable or outlet value: bare jq, a `{{ }}` template, text around templates
    /// (a string, as a template would render it), or a JSON literal (which evaluates to itself).
    pub fn compile_field(value: &Value, path: &str) -> Result<Expr, TemplateError> {
        match value {
            Value::String(text) => {
                let interpolated =
                    field::interpolation(text).map_err(|message| error(path, text, message))?;
                Expr::compile(interpolated.as_deref().unwrap_or(text), path)
            }
            other => Expr::compile(&other.to_string(), path),
        }
    }

    /// First output of the expression (null if none).
    pub fn eval(&self, input: &Value) -> Result<Value, TemplateError> {
        let val = Val::from(input.clone());
        Ok(self.expr.run(&val, &self.path)?.unwrap_or(Value::Null))
    }

    /// Node identifiers read through `.outputs` (see [`Template::referenced_outputs`]).
    pub fn referenced_outputs(&self) -> Vec<String> {
        let mut found = Vec::new();
        refs::outputs(&self.expr.code, &mut found);
        found
    }
}

#[cfg(test)]
mod tests;

//! Load errors, and the collector that validation reports every problem into.

use std::fmt;

use crate::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{origin}: cannot read the workflow file: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: invalid JSON: {message}")]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// One validation finding, located by JSON path (`$.nodes[2].config.url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{} (node \"{node}\"): {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

fn render_problems(origin: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("{origin}: {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Accumulates problems so a single load reports all of them, not just the first.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(
        &mut self,
        path: impl Into<String>,
        node: Option<&str>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            path: path.into(),
            node: node.map(str::to_owned),
            message: message.into(),
        });
    }

    /// A template error already carries its field path; keep it, and add the node.
    pub fn template(&mut self, node: Option<&str>, error: TemplateError) {
        let message = format!("template \"{}\": {}", error.expr, error.message);
        self.push(error.path, node, message);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// `path` extended by an object key, bracket-quoting keys that are not plain identifiers.
pub(super) fn child(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", serde_json::Value::from(key))
    }
}

pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Renders a list of names for messages: `"A", "B", "C"`.
pub(super) fn quoted_list<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|name| format!("\"{}\"", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(child("$", "nodes"), "$.nodes");
        assert_eq!(child("$.h", "X-Custom-Header"), r#"$.h["X-Custom-Header"]"#);
        assert_eq!(child("$.h", "a\"b"), r#"$.h["a\"b"]"#);
        assert_eq!(child("$.h", "9a"), r#"$.h["9a"]"#);
        assert_eq!(index("$.nodes", 3), "$.nodes[3]");
    }

    #[test]
    fn invalid_lists_every_problem_on_its_own_line() {
        let error = WorkflowError::Invalid {
            origin: "wf.json".into(),
            problems: vec![
                Problem {
                    path: "$.identifier".into(),
                    node: None,
                    message: "is required".into(),
                },
                Problem {
                    path: "$.nodes[1].config.url".into(),
                    node: Some("send".into()),
                    message: "is required".into(),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "wf.json: $.identifier: is required\nwf.json: $.nodes[1].config.url (node \"send\"): is required"
        );
    }
}

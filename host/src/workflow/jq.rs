//! Compiling the bare-jq fields (variables, outlet expressions) that Port writes either as plain
//! jq or wrapped in `{{ }}`; both forms are accepted so files copied from Port's docs load.

use serde_json::Value;

use crate::template::{Expr, TemplateError};

/// Compiles a variable or outlet value: a jq string, a `{{ }}` template string, or a JSON literal.
pub(super) fn compile(value: &Value, path: &str) -> Result<Expr, TemplateError> {
    match value {
        Value::String(text) => {
            let interpolated = interpolation(text).map_err(|message| TemplateError {
                path: path.to_owned(),
                expr: text.clone(),
                message,
            })?;
            // `Expr` takes bare jq or a lone `{{ }}` itself, and then quotes it as written.
            Expr::compile(interpolated.as_deref().unwrap_or(text), path)
        }
        // JSON literals are valid jq that evaluate to themselves.
        other => Expr::compile(&other.to_string(), path),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Jq(&'a str),
}

/// Rewrites text with templates around it as one jq string interpolation, as a template would
/// render it; `None` for bare jq and for a lone `{{ e }}`, which keep their JSON type.
fn interpolation(text: &str) -> Result<Option<String>, String> {
    if !text.contains("{{") {
        return Ok(None);
    }
    let pieces = split(text)?;
    let expressions = pieces
        .iter()
        .filter(|piece| matches!(piece, Piece::Jq(_)))
        .count();
    let only_whitespace_around = pieces.iter().all(|piece| match piece {
        Piece::Text(text) => text.trim().is_empty(),
        Piece::Jq(_) => true,
    });
    if expressions == 1 && only_whitespace_around {
        return Ok(None);
    }
    let mut program = String::from("\"");
    for piece in pieces {
        match piece {
            Piece::Text(text) => {
                // A JSON string literal is a jq string literal; escaping `\` also keeps a literal
                // `\(` in the text from turning into interpolation.
                let quoted = Value::from(text).to_string();
                program.push_str(&quoted[1..quoted.len() - 1]);
            }
            Piece::Jq(expr) => {
                program.push_str("\\(");
                program.push_str(expr);
                program.push(')');
            }
        }
    }
    program.push('"');
    Ok(Some(program))
}

fn split(mut text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    while let Some(open) = text.find("{{") {
        pieces.push(Piece::Text(&text[..open]));
        let rest = &text[open + 2..];
        let close = rest.find("}}").ok_or("\"{{\" is never closed by \"}}\"")?;
        pieces.push(Piece::Jq(&rest[..close]));
        text = &rest[close + 2..];
    }
    pieces.push(Piece::Text(text));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_jq_and_lone_templates_are_left_to_expr() {
        assert_eq!(interpolation(".result.id"), Ok(None));
        assert_eq!(interpolation("  {{ .result.id }} "), Ok(None));
    }

    #[test]
    fn text_around_templates_becomes_interpolation() {
        assert_eq!(
            interpolation(r#"id "{{ .a }}" \( {{.b}}"#),
            Ok(Some(r#""id \"\( .a )\" \\( \(.b)""#.to_owned()))
        );
    }

    #[test]
    fn unclosed_template_is_an_error() {
        assert!(interpolation("{{ .a ").is_err());
        let error = compile(&Value::from("x {{ .a"), "$.v").err();
        assert_eq!(error.map(|e| e.path), Some("$.v".to_owned()));
    }
}

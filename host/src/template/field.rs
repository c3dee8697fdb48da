//! Variables and outlet expressions: bare jq that Port also writes wrapped in `{{ }}`, or with
//! text around templates. All forms load, so files copied from Port's docs work. The `{{ }}`
//! are found by the same jq-aware splitter templates use.

use serde_json::Value;

use super::split::{self, Segment};

/// Rewrites text with templates around it as one jq string interpolation, as a template would
/// render it; `None` for bare jq and for a lone `{{ e }}`, which keep their JSON type.
pub(super) fn interpolation(text: &str) -> Result<Option<String>, String> {
    if !text.contains("{{") {
        return Ok(None);
    }
    let segments =
        split::split(text).map_err(|_| "\"{{\" is never closed by \"}}\"".to_string())?;
    if split::whole(&segments).is_some() {
        return Ok(None);
    }
    let mut program = String::from("\"");
    for segment in segments {
        match segment {
            Segment::Text(text) => {
                // A JSON string literal is a jq string literal; escaping `\` also keeps a literal
                // `\(` in the text from turning into interpolation.
                let quoted = Value::from(text).to_string();
                program.push_str(&quoted[1..quoted.len() - 1]);
            }
            Segment::Expr { code, .. } => {
                program.push_str("\\(");
                program.push_str(code);
                program.push(')');
            }
        }
    }
    program.push('"');
    Ok(Some(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_jq_and_lone_templates_are_left_to_expr() {
        assert_eq!(interpolation(".result.id"), Ok(None));
        assert_eq!(interpolation("  {{ .result.id }} "), Ok(None));
        // The closing braces of an object inside the template do not end it.
        assert_eq!(interpolation("{{ {a: {b: 1}} }}"), Ok(None));
    }

    #[test]
    fn text_around_templates_becomes_interpolation() {
        assert_eq!(
            interpolation(r#"id "{{ .a }}" \( {{.b}}"#),
            Ok(Some(r#""id \"\( .a )\" \\( \(.b)""#.to_owned()))
        );
        assert_eq!(
            interpolation("n={{ {a: {b: 1}} | .a.b }}!"),
            Ok(Some(r#""n=\( {a: {b: 1}} | .a.b )!""#.to_owned()))
        );
    }

    #[test]
    fn unclosed_template_is_an_error() {
        assert!(interpolation("{{ .a ").is_err());
        assert!(interpolation("{{ \"}}\" ").is_err());
    }
}

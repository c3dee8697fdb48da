//! Splits a JSON string into literal text and `{{ expr }}` segments.

/// One piece of a templated string.
#[derive(Debug, PartialEq)]
pub(super) enum Segment<'s> {
    Text(&'s str),
    /// `raw` is the template as written (`{{ .x }}`), `code` the jq between the braces.
    Expr {
        raw: &'s str,
        code: &'s str,
    },
}

/// An unterminated `{{`, with the text from it to the end of the string.
#[derive(Debug, PartialEq)]
pub(super) struct Unclosed<'s>(pub &'s str);

/// Splits `s` into segments. The closing `}}` is found jq-aware — outside string literals and
/// at brace depth zero — so `{{ {a: {b: 1}} }}` and `{{ "}}" }}` close where they should.
pub(super) fn split(s: &str) -> Result<Vec<Segment<'_>>, Unclosed<'_>> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segments.push(Segment::Text(&rest[..open]));
        }
        let body = &rest[open + 2..];
        let close = find_close(body).ok_or(Unclosed(&rest[open..]))?;
        segments.push(Segment::Expr {
            raw: &rest[open..open + 2 + close + 2],
            code: &body[..close],
        });
        rest = &body[close + 2..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    Ok(segments)
}

/// Byte offset of the `}}` closing a template body.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'{') => depth += 1,
            (false, b'}') if depth == 0 && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            (false, b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The single template of a string that is exactly one `{{ }}`, surrounding whitespace allowed.
pub(super) fn whole<'a, 's>(segments: &'a [Segment<'s>]) -> Option<&'a Segment<'s>> {
    let blank = |seg: &Segment| matches!(seg, Segment::Text(t) if t.trim().is_empty());
    let mut exprs = segments.iter().filter(|seg| !blank(seg));
    match (exprs.next(), exprs.next()) {
        (Some(seg @ Segment::Expr { .. }), None) => Some(seg),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::{Expr, Text};

    #[test]
    fn splits_text_and_templates() {
        assert_eq!(
            split("a {{ .x }}b{{.y}}").unwrap(),
            vec![
                Text("a "),
                Expr {
                    raw: "{{ .x }}",
                    code: " .x "
                },
                Text("b"),
                Expr {
                    raw: "{{.y}}",
                    code: ".y"
                },
            ]
        );
        assert_eq!(split("plain").unwrap(), vec![Text("plain")]);
    }

    #[test]
    fn closing_braces_inside_objects_and_strings_do_not_close() {
        assert_eq!(
            split(r#"{{ {a: {b: 1}} }}"#).unwrap(),
            vec![Expr {
                raw: r#"{{ {a: {b: 1}} }}"#,
                code: r#" {a: {b: 1}} "#
            }]
        );
        assert_eq!(
            split(r#"{{ "}}\"}}" }}!"#).unwrap(),
            vec![
                Expr {
                    raw: r#"{{ "}}\"}}" }}"#,
                    code: r#" "}}\"}}" "#
                },
                Text("!")
            ]
        );
    }

    #[test]
    fn unclosed_template_is_an_error() {
        assert_eq!(split("x {{ .a "), Err(Unclosed("{{ .a ")));
        assert_eq!(split("{{ \"}}"), Err(Unclosed("{{ \"}}")));
    }

    #[test]
    fn whole_allows_surrounding_whitespace_only() {
        let segs = split("  {{ .x }}\n").unwrap();
        assert!(whole(&segs).is_some());
        let segs = split("{{ .x }}{{ .y }}").unwrap();
        assert!(whole(&segs).is_none());
        let segs = split("a{{ .x }}").unwrap();
        assert!(whole(&segs).is_none());
    }
}

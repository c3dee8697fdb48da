//! Best-effort static scan of jq code for the node outputs and secrets it reads.
//!
//! It recognises the path forms workflows use — `.outputs.X`, `.outputs["X"]`, `.outputs."X"` —
//! and misses dynamic ones (`.outputs[$k]`, `.outputs | .[...]`); callers use it for validation
//! and ordering hints, never as a security boundary.

use regex::Regex;
use std::sync::LazyLock;

/// `.<root>` followed by `.ident`, `["key"]` or `."key"`.
fn pattern(root: &str) -> Regex {
    let re = format!(
        r#"\.{root}\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*("(?:[^"\\]|\\.)*")\s*\]|\.\s*("(?:[^"\\]|\\.)*"))"#
    );
    Regex::new(&re).expect("static reference pattern is valid")
}

static OUTPUTS: LazyLock<Regex> = LazyLock::new(|| pattern("outputs"));
static SECRETS: LazyLock<Regex> = LazyLock::new(|| pattern("secrets"));

/// Node identifiers read through `.outputs`, excluding `trigger` (an alias of the trigger's
/// payload rather than a node), in order of first appearance, without duplicates.
pub(super) fn outputs(code: &str, found: &mut Vec<String>) {
    scan(&OUTPUTS, code, found, |name| name != "trigger");
}

/// Secret names read through `.secrets`.
pub(super) fn secrets(code: &str, found: &mut Vec<String>) {
    scan(&SECRETS, code, found, |_| true);
}

fn scan(re: &Regex, code: &str, found: &mut Vec<String>, keep: impl Fn(&str) -> bool) {
    for caps in re.captures_iter(code) {
        let name = if let Some(ident) = caps.get(1) {
            Some(ident.as_str().to_owned())
        } else {
            // Quoted keys share JSON's escapes; interpolated keys (`"\(...)"`) don't decode and
            // are skipped, as they are dynamic.
            caps.get(2)
                .or(caps.get(3))
                .and_then(|quoted| serde_json::from_str::<String>(quoted.as_str()).ok())
        };
        if let Some(name) = name.filter(|n| keep(n) && !found.contains(n)) {
            found.push(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outs(code: &str) -> Vec<String> {
        let mut found = Vec::new();
        outputs(code, &mut found);
        found
    }

    #[test]
    fn finds_every_static_form() {
        assert_eq!(
            outs(r#".outputs.a.id + .outputs["b-c"].x + .outputs."d" + .outputs [ "a" ]"#),
            ["a", "b-c", "d"]
        );
    }

    #[test]
    fn skips_trigger_and_dynamic_keys() {
        assert!(outs(r#".outputs.trigger.x, .outputs[$k], .outputs["\(.k)"]"#).is_empty());
    }

    #[test]
    fn finds_secrets() {
        let mut found = Vec::new();
        secrets(
            r#""Bearer " + .secrets["api-token"] + .secrets.other"#,
            &mut found,
        );
        assert_eq!(found, ["api-token", "other"]);
    }
}

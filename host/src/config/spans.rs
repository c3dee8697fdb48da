//! From a byte offset in a TOML file to what a person looks for: the line and the dotted key.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The innermost key whose name or value covers `offset`, e.g. `limits.nodes.x.memory` or
/// `egress.allow[1]`; `None` outside any key (or in a file that does not parse).
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let table = DeTable::parse(text).ok()?;
    let mut best = None;
    find_in_table(table.get_ref(), offset, "", &mut best);
    best
}

/// Table spans do not always cover their dotted or `[header]` children, so every entry is
/// visited; the longest matching path is the innermost.
fn find_in_table(table: &DeTable<'_>, offset: usize, prefix: &str, best: &mut Option<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if key.span().contains(&offset) || covers(value, offset) {
            keep_longest(best, &path);
        }
        find_in_value(value, offset, &path, best);
    }
}

fn find_in_value(
    value: &Spanned<DeValue<'_>>,
    offset: usize,
    path: &str,
    best: &mut Option<String>,
) {
    match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, offset, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                if covers(item, offset) {
                    keep_longest(best, &path);
                }
                find_in_value(item, offset, &path, best);
            }
        }
        _ => {}
    }
}

/// Scalars and arrays only: a table's span says little about where its entries are.
fn covers(value: &Spanned<DeValue<'_>>, offset: usize) -> bool {
    !matches!(value.get_ref(), DeValue::Table(_)) && value.span().contains(&offset)
}

fn keep_longest(best: &mut Option<String>, path: &str) {
    if best.as_ref().is_none_or(|b| b.len() < path.len()) {
        *best = Some(path.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(text: &str, needle: &str) -> Option<String> {
        key_at(text, text.find(needle).expect("needle in text"))
    }

    #[test]
    fn finds_keys_values_headers_and_array_items() {
        let text = "[egress]\nallow = [\"a\", \"bb\"]\n\n[limits.nodes.fetch]\nmemory = \"x\"\n";
        assert_eq!(key_of(text, "\"bb\"").as_deref(), Some("egress.allow[1]"));
        assert_eq!(
            key_of(text, "\"x\"").as_deref(),
            Some("limits.nodes.fetch.memory")
        );
        assert_eq!(
            key_of(text, "memory").as_deref(),
            Some("limits.nodes.fetch.memory")
        );
        assert_eq!(line_of(text, text.find("\"x\"").unwrap()), 5);
    }

    #[test]
    fn dotted_keys_and_inline_tables() {
        let text = "limits.memory = 3\nsecrets = { t = { hosts = [\"h\"] } }\n";
        assert_eq!(key_of(text, "3").as_deref(), Some("limits.memory"));
        assert_eq!(key_of(text, "\"h\"").as_deref(), Some("secrets.t.hosts[0]"));
    }
}

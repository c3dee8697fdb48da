//! The human-readable table `airlock audit` prints.

use super::{AuditRecord, Decision};

/// (header, widest a column may grow). The last column is never padded or cut.
const COLUMNS: [(&str, usize); 7] = [
    ("TIME", 24),
    ("NODE", 24),
    ("DECISION", 8),
    ("METHOD", 7),
    ("URL", 60),
    ("STATUS", 6),
    ("RULE / ERROR", usize::MAX),
];

/// A fixed-width table: time, node, decision, method, url, status, and the rule that decided
/// (or the error, when there was one). Long cells are cut with '…'.
pub fn format_table(records: &[AuditRecord]) -> String {
    let rows: Vec<[String; 7]> = records.iter().map(cells).collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (header, max))| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
                .min(*max)
        })
        .collect();

    let mut out = String::new();
    let headers = COLUMNS.map(|(header, _)| header.to_owned());
    for row in std::iter::once(&headers).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| fit(cell, width))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn cells(record: &AuditRecord) -> [String; 7] {
    let decision = match record.decision {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
    };
    let outcome = match (&record.error, &record.rule) {
        (Some(error), _) => format!("error: {error}"),
        (None, Some(rule)) => rule.clone(),
        (None, None) => "-".to_owned(),
    };
    [
        record.time.clone(),
        record.node.clone(),
        decision.to_owned(),
        record.method.clone(),
        record.url.clone(),
        record
            .status
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        outcome,
    ]
    // A newline would break the table's rows; a bidi override or separator would make a
    // cell read as something it is not.
    .map(|cell| escape_invisible(&cell))
}

/// `text` with every character that would not show as itself (control, format such as bidi
/// overrides, line and paragraph separators) written as `\u{XXXX}`, and `\` as `\\`.
pub fn escape_invisible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters Rust's debug escaping would not print as themselves: control, format
/// (`U+202E`, `U+200B`, `U+FEFF`...), separators other than space (`U+2028`, `U+2029`),
/// unassigned and private-use, and combining marks that would attach to what precedes them.
fn is_invisible(c: char) -> bool {
    !matches!(c, ' ' | '"' | '\'') && c.escape_debug().next() == Some('\\')
}

/// `cell` cut to `width` characters (ending in '…' when cut) and padded to it.
fn fit(cell: &str, width: usize) -> String {
    let len = cell.chars().count();
    if len > width {
        let cut: String = cell.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        format!("{cell}{}", " ".repeat(width - len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_invisible("a\u{2028}b\u{2029}c\u{200b}d\u{feff}e\ty\\ \"é\" 日本\u{202e}"),
            "a\\u{2028}b\\u{2029}c\\u{200b}d\\u{feff}e\\u{9}y\\\\ \"é\" 日本\\u{202e}"
        );
    }
}

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
    .map(|cell| printable(&cell))
}

/// Control characters (a newline in an error message) would break the table's rows.
fn printable(cell: &str) -> String {
    cell.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
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

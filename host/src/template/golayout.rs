//! The Go-template compatibility form `date "LAYOUT"`: Port's examples format times with Go's
//! reference-time layouts, which jq cannot call (`f "arg"` is not jq syntax). Before compiling,
//! such calls are rewritten to jaq's `strftime("...")` with the layout translated.

/// Rewrites every `date "LAYOUT"` call outside string literals to `strftime("FORMAT")`.
/// Anything else is left untouched, so ordinary jq passes through unchanged.
pub(super) fn rewrite_date_calls(code: &str) -> String {
    let bytes = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i),
            b'd' if is_date_ident(bytes, i) => {
                let after = i + "date".len();
                let lit_start = after + count_whitespace(&bytes[after..]);
                if let Some((layout, lit_end)) = plain_string_literal(code, lit_start) {
                    out.push_str(&code[copied..i]);
                    let format = go_layout_to_strftime(&layout);
                    // A JSON string literal is also a valid jq string literal.
                    let quoted = serde_json::Value::String(format).to_string();
                    out.push_str(&format!("strftime({quoted})"));
                    copied = lit_end;
                    i = lit_end;
                } else {
                    i = after;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&code[copied..]);
    out
}

/// Index just past the string literal opening at `start` (or the end of input if unclosed).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `date` as a standalone identifier: not `.date`, `$date`, `todate`, `dates`...
fn is_date_ident(bytes: &[u8], i: usize) -> bool {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    bytes[i..].starts_with(b"date")
        && (i == 0 || !(ident(bytes[i - 1]) || matches!(bytes[i - 1], b'.' | b'$' | b':')))
        && bytes.get(i + 4).is_none_or(|&b| !ident(b))
}

fn count_whitespace(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

/// Decodes a string literal without interpolation starting at `start`, returning its value and
/// the index just past it.
fn plain_string_literal(code: &str, start: usize) -> Option<(String, usize)> {
    if code.as_bytes().get(start) != Some(&b'"') {
        return None;
    }
    let end = string_end(code.as_bytes(), start);
    let literal = code.get(start..end)?;
    // jq and JSON share their escapes, except jq's `\(...)` interpolation, which JSON rejects.
    let value: String = serde_json::from_str(literal).ok()?;
    Some((value, end))
}

/// Translates a Go reference-time layout ("2006-01-02T15:04:05Z07:00") to a chrono strftime
/// format. jaq's `strftime` always formats in UTC, so zone tokens become their UTC spelling.
pub(super) fn go_layout_to_strftime(layout: &str) -> String {
    // Longest tokens first, where one is a prefix of another (Go matches the same way).
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Jan", "%b"),
        ("Monday", "%A"),
        ("Mon", "%a"),
        ("MST", "UTC"),
        ("2006", "%Y"),
        ("002", "%j"),
        ("01", "%m"),
        ("02", "%d"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("__2", "%j"),
        ("_2", "%e"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("-07:00:00", "%:z:00"),
        ("-070000", "%z00"),
        ("-07:00", "%:z"),
        ("-0700", "%z"),
        ("-07", "+00"),
        ("Z07:00:00", "Z"),
        ("Z070000", "Z"),
        ("Z07:00", "Z"),
        ("Z0700", "Z"),
        ("Z07", "Z"),
    ];
    let mut out = String::with_capacity(layout.len() * 2);
    let mut rest = layout;
    'scan: while let Some(c) = rest.chars().next() {
        if let Some((format, len)) = fractional_seconds(rest) {
            out.push_str(format);
            rest = &rest[len..];
            continue;
        }
        for (token, format) in TOKENS {
            if rest.starts_with(token) {
                out.push_str(format);
                rest = &rest[token.len()..];
                continue 'scan;
            }
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Go's fractional seconds: `.000` (fixed digits) or `.999` (trailing zeros trimmed), not
/// followed by another digit.
fn fractional_seconds(s: &str) -> Option<(&'static str, usize)> {
    let bytes = s.as_bytes();
    if !matches!(bytes.first(), Some(b'.' | b',')) {
        return None;
    }
    let digit = *bytes.get(1).filter(|b| matches!(b, b'0' | b'9'))?;
    let run = bytes[1..].iter().take_while(|&&b| b == digit).count();
    if bytes.get(1 + run).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let format = match (digit, run) {
        (b'9', _) => "%.f",
        (_, 1..=3) => "%.3f",
        (_, 4..=6) => "%.6f",
        _ => "%.9f",
    };
    Some((format, 1 + run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_common_layouts() {
        assert_eq!(
            go_layout_to_strftime("2006-01-02T15:04:05Z"),
            "%Y-%m-%dT%H:%M:%SZ"
        );
        assert_eq!(
            go_layout_to_strftime("2006-01-02T15:04:05.000Z07:00"),
            "%Y-%m-%dT%H:%M:%S%.3fZ"
        );
        assert_eq!(
            go_layout_to_strftime("Mon, 02 Jan 2006 15:04:05 MST"),
            "%a, %d %b %Y %H:%M:%S UTC"
        );
        assert_eq!(
            go_layout_to_strftime("Monday January _2 3:4:5 PM -0700"),
            "%A %B %e %-I:%-M:%-S %p %z"
        );
        assert_eq!(go_layout_to_strftime("06/1/2 100%"), "%y/%-m/%-d %-m00%%");
    }

    #[test]
    fn rewrites_only_date_calls_outside_strings() {
        assert_eq!(
            rewrite_date_calls(r#"now | date "2006-01-02""#),
            r#"now | strftime("%Y-%m-%d")"#
        );
        let untouched = [
            r#""date \"2006\"" | .date"#,
            r#".x.date"#,
            r#"todate"#,
            r#"date"#,
            r#"$date"#,
        ];
        for code in untouched {
            assert_eq!(rewrite_date_calls(code), code);
        }
        assert_eq!(
            rewrite_date_calls(r#"[now|date  "15:04", "date"]"#),
            r#"[now|strftime("%H:%M"), "date"]"#
        );
    }
}

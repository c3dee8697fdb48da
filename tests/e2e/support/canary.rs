//! Every encoding in which a secret value could leak, for sweeping what a test leaves behind.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The forms the gate promises to recognise: plain; percent-encoded (every character, or all but
/// the unreserved ones; `+` for spaces); base64 standard and URL-safe, padded or not; JSON-escaped
/// as serde/JavaScript, Python (ASCII only), PHP (`\/`), Go (`\u0026`-style) and .NET (also `+`
/// and `'`) write it; every character as `\uXXXX` or `\xXX`. Compare case-insensitively: hex
/// escapes come in either case.
pub fn leak_forms(value: &str) -> Vec<String> {
    let mut forms = vec![
        value.to_string(),
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(value, COMPONENT).to_string(),
        utf8_percent_encode(value, COMPONENT)
            .to_string()
            .replace("%20", "+"),
        STANDARD.encode(value),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE.encode(value),
        URL_SAFE_NO_PAD.encode(value),
        every_char(value, |unit| format!("\\u{unit:04x}")),
        every_char(value, |unit| format!("\\x{unit:02x}")),
    ];
    let minimal = serde_json::to_string(value).unwrap();
    forms.push(minimal[1..minimal.len() - 1].to_string());
    for escaped in [&['<', '>', '&'][..], &['<', '>', '&', '+', '\'', '`'][..]] {
        forms.push(json_escaping(value, escaped));
    }
    forms.push(json_escaping(value, &['/']).replace("\\u002f", "\\/"));
    forms.sort();
    forms.dedup();
    forms
}

fn every_char(value: &str, write: impl Fn(u32) -> String) -> String {
    value
        .encode_utf16()
        .map(|unit| write(u32::from(unit)))
        .collect()
}

/// JSON-escaped, with `escaped` and every non-ASCII character as `\uXXXX`.
fn json_escaping(value: &str, escaped: &[char]) -> String {
    let minimal = serde_json::to_string(value).unwrap();
    let mut out = String::new();
    for c in minimal[1..minimal.len() - 1].chars() {
        if escaped.contains(&c) || !c.is_ascii() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where in `text` (compared case-insensitively) any form of `value` occurs, if anywhere.
pub fn find_leak(text: &str, value: &str) -> Option<String> {
    let text = text.to_lowercase();
    leak_forms(value)
        .into_iter()
        .find(|form| text.contains(&form.to_lowercase()))
}

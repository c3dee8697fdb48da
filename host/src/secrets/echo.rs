//! The forms in which a secret value can come back ("echo") in a response or a message, computed
//! once at load so that redaction is a single scan, and the encoders `reveal` shares with them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

/// Echo forms shorter than this are not redacted. A 1-3 byte value ("1", "yes", "dev") occurs
/// all over ordinary text, so replacing it would shred every response while protecting little:
/// a value that short is guessable anyway. The same holds for the short base64 cores below.
pub(super) const MIN_ECHO_LEN: usize = 4;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a JSON encoder escapes a string: serde_json/JavaScript escape the minimum, Python escapes
/// non-ASCII, PHP also escapes '/'.
#[derive(Clone, Copy)]
pub(super) struct JsonStyle {
    ascii_only: bool,
    escape_slash: bool,
}

impl JsonStyle {
    pub(super) const MINIMAL: JsonStyle = JsonStyle {
        ascii_only: false,
        escape_slash: false,
    };
    const ALL: [JsonStyle; 3] = [
        JsonStyle::MINIMAL,
        JsonStyle {
            ascii_only: true,
            escape_slash: false,
        },
        JsonStyle {
            ascii_only: true,
            escape_slash: true,
        },
    ];
}

pub(super) fn url_component_into(value: &str, out: &mut Vec<u8>) {
    for chunk in utf8_percent_encode(value, COMPONENT) {
        out.extend_from_slice(chunk.as_bytes());
    }
}

pub(super) fn json_escape_into(value: &str, style: JsonStyle, out: &mut Vec<u8>) {
    let mut utf16 = [0u16; 2];
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '/' if style.escape_slash => out.extend_from_slice(b"\\/"),
            c if (c as u32) < 0x20 || (style.ascii_only && !c.is_ascii()) => {
                for unit in c.encode_utf16(&mut utf16) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

pub(super) struct Match {
    /// Index of the secret in the store.
    pub(super) secret: usize,
    pub(super) len: usize,
}

struct Echo {
    form: Zeroizing<Vec<u8>>,
    secret: usize,
}

/// All echo forms of all secrets, indexed by first byte, longest first within each bucket.
pub(super) struct Echoes {
    forms: Vec<Echo>,
    by_first_byte: Vec<Vec<usize>>,
}

impl Echoes {
    pub(super) fn new<'v>(values: impl Iterator<Item = &'v str>) -> Echoes {
        let mut forms: Vec<Echo> = Vec::new();
        for (secret, value) in values.enumerate() {
            for form in echo_forms(value) {
                let duplicate = forms.iter().any(|e| e.form == form);
                if form.len() >= MIN_ECHO_LEN && !duplicate {
                    forms.push(Echo { form, secret });
                }
            }
        }
        let mut by_first_byte = vec![Vec::new(); 256];
        for (index, echo) in forms.iter().enumerate() {
            by_first_byte[usize::from(echo.form[0])].push(index);
        }
        // Longest first, so that a value's longer encodings win over forms they contain (for
        // example padded base64 over its unpadded prefix).
        for bucket in &mut by_first_byte {
            bucket.sort_by_key(|&i| std::cmp::Reverse(forms[i].form.len()));
        }
        Echoes {
            forms,
            by_first_byte,
        }
    }

    /// The first (leftmost, then longest) echo at or after `from`.
    pub(super) fn find_from(&self, bytes: &[u8], from: usize) -> Option<(usize, Match)> {
        if self.forms.is_empty() {
            return None;
        }
        (from..bytes.len()).find_map(|pos| {
            self.by_first_byte[usize::from(bytes[pos])]
                .iter()
                .map(|&i| &self.forms[i])
                .find(|e| bytes[pos..].starts_with(&e.form))
                .map(|e| {
                    (
                        pos,
                        Match {
                            secret: e.secret,
                            len: e.form.len(),
                        },
                    )
                })
        })
    }
}

/// Every form of `value` to redact. Buffers are zeroizing and reserved up front so that no
/// unwiped copy is left behind by a reallocation.
fn echo_forms(value: &str) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = vec![Zeroizing::new(value.as_bytes().to_vec())];

    let mut percent = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    url_component_into(value, &mut percent);
    let mut plus = Zeroizing::new(Vec::with_capacity(percent.len()));
    let mut rest: &[u8] = &percent;
    while !rest.is_empty() {
        if rest.starts_with(b"%20") {
            plus.push(b'+');
            rest = &rest[3..];
        } else {
            plus.push(rest[0]);
            rest = &rest[1..];
        }
    }
    forms.push(percent);
    forms.push(plus);

    for style in JsonStyle::ALL {
        let mut json = Zeroizing::new(Vec::with_capacity(value.len() * 6));
        json_escape_into(value, style, &mut json);
        forms.push(json);
    }

    for engine in [STANDARD, URL_SAFE] {
        forms.push(base64_form(&engine, value.as_bytes()));
    }
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        forms.push(base64_form(&engine, value.as_bytes()));
        for offset in 0..3 {
            forms.push(base64_core(&engine, value.as_bytes(), offset));
        }
    }
    forms
}

fn base64_form(engine: &impl Engine, input: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(String::with_capacity(input.len().div_ceil(3) * 4));
    engine.encode_string(input, &mut out);
    Zeroizing::new(out.as_bytes().to_vec())
}

/// The part of the base64 encoding that stays the same when `value` sits `offset` bytes (mod 3)
/// into a longer encoded blob, such as the password of `Basic base64(user:password)`: the
/// characters that mix in bits of the surrounding bytes are dropped.
fn base64_core(engine: &impl Engine, value: &[u8], offset: usize) -> Zeroizing<Vec<u8>> {
    let mut shifted = Zeroizing::new(Vec::with_capacity(offset + value.len()));
    shifted.resize(offset, 0);
    shifted.extend_from_slice(value);
    let encoded = base64_form(engine, &shifted);
    // Leading characters holding bits of the `offset` bytes before the value: ceil(8*offset/6).
    let skip = (8 * offset).div_ceil(6);
    // A trailing character holding fewer than 6 value bits also holds bits of what follows.
    let whole = 8 * shifted.len() / 6;
    Zeroizing::new(encoded.get(skip..whole).unwrap_or_default().to_vec())
}

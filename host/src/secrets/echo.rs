//! Recognising a secret value in the forms a server, a client library or a node may write it
//! (an "echo"), and the encoders `reveal` shares with them.
//!
//! A value is matched character by character, each character in any of the ways common encoders
//! write it: as is, percent-escaped (any hex case, `+` for a space), JSON-escaped in every style
//! seen in the wild (serde/JavaScript minimal, Python ASCII-only, PHP `\/`, Go's `\u0026`-style
//! HTML escapes, .NET's upper-case `\u002B`), `\xNN`, and HTML character references. Because
//! each character may take any of its forms independently, one pattern covers every mix of
//! styles instead of a list of whole-value variants that a new style would slip past. Base64
//! (standard and URL-safe, padded or not, and the stable core of the value inside a longer blob)
//! is matched as literals, in either case. All of it is one `regex::bytes` pattern, one scan of a
//! text for every secret: a literal multi-pattern matcher (aho-corasick) cannot express a choice
//! per character, and the regex engine already uses aho-corasick to find the literal parts fast.
//! Base64 text that is itself escaped or wrapped is found by a second scan, `tokens::EncodedForms`
//! (as a per-character pattern with line breaks, it made this one ten times slower to compile).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use regex::bytes::{Regex, RegexBuilder};
use zeroize::Zeroizing;

/// Values (and base64 forms) shorter than this are not matched. A 1-3 byte value ("1", "yes",
/// "dev") occurs all over ordinary text, so replacing it would shred every response while
/// protecting little: a value that short is guessable anyway.
pub(super) const MIN_ECHO_LEN: usize = 4;

/// Room for long values (certificates, private keys): each character becomes a small
/// alternation, and the pattern is compiled once per process.
const PATTERN_SIZE_LIMIT: usize = 1 << 28;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn url_component_into(value: &str, out: &mut Vec<u8>) {
    for chunk in utf8_percent_encode(value, COMPONENT) {
        out.extend_from_slice(chunk.as_bytes());
    }
}

/// Escapes `value` as inside a JSON string (without the quotes), as serde_json does.
pub(super) fn json_escape_into(value: &str, out: &mut Vec<u8>) {
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// One echo found: where, and whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Match {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Index of the secret in the store.
    pub(super) secret: usize,
}

/// Every recognisable form of every secret, as one pattern: one capture group per secret,
/// longer values first so that a value containing another is matched whole.
pub(super) struct Echoes {
    pattern: Option<Regex>,
    /// Capture group i + 1 belongs to secret `group_secret[i]`.
    group_secret: Vec<usize>,
}

impl Echoes {
    pub(super) fn new<'v>(values: impl Iterator<Item = &'v str>) -> Echoes {
        let mut values: Vec<(usize, &str)> = values.enumerate().collect();
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut source = Zeroizing::new(String::new());
        let mut group_secret = Vec::new();
        for (secret, value) in values {
            let alternatives = value_alternatives(value);
            if alternatives.is_empty() {
                continue;
            }
            if !group_secret.is_empty() {
                source.push('|');
            }
            source.push('(');
            for (i, alternative) in alternatives.iter().enumerate() {
                if i > 0 {
                    source.push('|');
                }
                source.push_str(alternative);
            }
            source.push(')');
            group_secret.push(secret);
        }
        let pattern = (!group_secret.is_empty()).then(|| {
            RegexBuilder::new(&source)
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .expect("echo patterns are built from escaped literals")
        });
        Echoes {
            pattern,
            group_secret,
        }
    }

    /// Every echo in `bytes`, in the order they start: at each place where echoes start, the
    /// longest value's. Echoes may overlap: the search goes on from just after each one's
    /// start, so a value whose echo begins inside another's is found too, not hidden by it
    /// (two values sharing a middle part would otherwise leave the second one's tail in clear).
    pub(super) fn find_iter<'a>(&'a self, bytes: &'a [u8]) -> impl Iterator<Item = Match> + 'a {
        let mut from = 0;
        std::iter::from_fn(move || {
            let captures = self.pattern.as_ref()?.captures_at(bytes, from)?;
            let whole = captures.get(0)?;
            from = whole.start() + 1;
            let group = (1..captures.len()).find(|&g| captures.get(g).is_some())?;
            Some(Match {
                start: whole.start(),
                end: whole.end(),
                secret: self.group_secret[group - 1],
            })
        })
    }

    pub(super) fn is_match(&self, bytes: &[u8]) -> bool {
        self.pattern.as_ref().is_some_and(|p| p.is_match(bytes))
    }
}

/// Longest value matched character by character; a longer one (a certificate, a key bundle) is
/// matched in its literal forms only, so that the pattern stays small enough to compile.
const MAX_CHARWISE_LEN: usize = 4096;

/// The regex alternatives for one value: character-wise (for the value and for each way a
/// receiver may have decoded it), then literal forms longest first.
/// The pattern text is wiped after compiling; the compiled automaton cannot be.
fn value_alternatives(value: &str) -> Vec<Zeroizing<String>> {
    let mut alternatives = Vec::new();
    let mut literals = base64_forms(value.as_bytes());
    // Form-decoding turns a base64 `+` into a space.
    let spaced: Vec<_> = literals
        .iter()
        .filter(|form| form.contains('+'))
        .map(|form| {
            let mut spaced = Zeroizing::new(String::with_capacity(form.len()));
            spaced.extend(form.chars().map(|c| if c == '+' { ' ' } else { c }));
            spaced
        })
        .collect();
    literals.extend(spaced);
    for variant in received_variants(value) {
        if variant.len() < MIN_ECHO_LEN {
            continue;
        }
        if variant.len() <= MAX_CHARWISE_LEN {
            let mut charwise = Zeroizing::new(String::with_capacity(variant.len() * 64));
            for c in variant.chars() {
                push_char_forms(c, &mut charwise);
            }
            alternatives.push(charwise);
        } else {
            literals.extend(literal_forms(&variant));
        }
    }
    literals.retain(|form| form.len() >= MIN_ECHO_LEN);
    literals.sort_by_key(|form| std::cmp::Reverse(form.len()));
    literals.dedup();
    // In either case, as the character-wise forms and `tokens::EncodedForms` match: a host name
    // is lowercased wherever it is parsed.
    alternatives.extend(
        literals
            .iter()
            .map(|form| case_insensitive(&Zeroizing::new(regex::escape(form)))),
    );
    alternatives
}

/// `(?i:pattern)`, built in place (no copy of the pattern is left unwiped).
fn case_insensitive(pattern: &str) -> Zeroizing<String> {
    let mut wrapped = Zeroizing::new(String::with_capacity(pattern.len() + 5));
    wrapped.push_str("(?i:");
    wrapped.push_str(pattern);
    wrapped.push(')');
    wrapped
}

/// The value, and what a receiver may make of it when the value was sent as is and the receiver
/// decoded it anyway (form-decoding turns `+` into a space, JSON or HTML unescaping, trimming):
/// an echo of the decoded text is the value to anyone who re-encodes it.
fn received_variants(value: &str) -> Vec<Zeroizing<String>> {
    let mut variants = vec![Zeroizing::new(value.to_owned())];
    let form_decoded = Zeroizing::new(
        percent_encoding::percent_decode_str(&value.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned(),
    );
    let percent_decoded = Zeroizing::new(
        percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned(),
    );
    let json_decoded = serde_json::from_str::<String>(&format!("\"{value}\""))
        .map(Zeroizing::new)
        .ok();
    let html_decoded = Zeroizing::new(
        value
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    );
    let trimmed = Zeroizing::new(value.trim().to_owned());
    let candidates = [Some(form_decoded), Some(percent_decoded), json_decoded]
        .into_iter()
        .flatten()
        .chain([html_decoded, trimmed]);
    for candidate in candidates {
        if !variants.contains(&candidate) {
            variants.push(candidate);
        }
    }
    variants
}

/// The base64 forms of the ways a value is written (whole, or inside a longer blob), at least
/// `MIN_ECHO_LEN` long. Longest first, so that a whole form is replaced before a part of it
/// could be; each once.
pub(super) fn base64_value_forms(values: &[&[u8]]) -> Vec<Zeroizing<String>> {
    let mut forms: Vec<_> = values
        .iter()
        .flat_map(|value| base64_forms(value))
        .collect();
    forms.retain(|form| form.len() >= MIN_ECHO_LEN);
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms
}

/// Whole-value forms of a value too long to match character by character.
fn literal_forms(value: &str) -> Vec<Zeroizing<String>> {
    let mut percent = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    url_component_into(value, &mut percent);
    let mut json = Zeroizing::new(Vec::with_capacity(value.len() * 6));
    json_escape_into(value, &mut json);
    [value.as_bytes(), &percent, &json]
        .into_iter()
        .map(|bytes| Zeroizing::new(String::from_utf8_lossy(bytes).into_owned()))
        .collect()
}

/// `(?:…)` matching `c` in any of the ways encoders write it. The character itself, in either
/// case, comes last: the first alternative that matches wins, and `&`, `%` and `\\` begin
/// their own escapes, so a value ending in one, echoed escaped, would otherwise be matched short
/// of its end and leave the rest of the escape (`amp;`, `25`) in clear, telling its last
/// character.
fn push_char_forms(c: char, out: &mut String) {
    let code = c as u32;
    out.push_str("(?:");
    // Percent-encoding of each UTF-8 byte.
    for byte in c.encode_utf8(&mut [0; 4]).bytes() {
        out.push('%');
        push_hex(u32::from(byte), 2, out);
    }
    // JSON / JavaScript \uXXXX, one escape per UTF-16 unit.
    out.push('|');
    for unit in c.encode_utf16(&mut [0; 2]) {
        out.push_str(r"\\u");
        push_hex(u32::from(*unit), 4, out);
    }
    // HTML/XML numeric character references, hex and decimal, leading zeros and ';' optional.
    out.push_str("|&#[xX]0*");
    push_hex_minimal(code, out);
    out.push_str(";?|&#0*");
    out.push_str(&code.to_string());
    out.push_str(";?");
    // \xNN of each UTF-8 byte (C, Python bytes reprs).
    out.push('|');
    for byte in c.encode_utf8(&mut [0; 4]).bytes() {
        out.push_str(r"\\x");
        push_hex(u32::from(byte), 2, out);
    }
    for extra in extra_forms(c) {
        out.push('|');
        out.push_str(extra);
    }
    // In either case: a host name, for one, is lowercased wherever it is parsed.
    out.push_str("|(?i:");
    out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
    out.push_str("))");
}

/// Named escapes of single characters, as regex text.
fn extra_forms(c: char) -> &'static [&'static str] {
    match c {
        ' ' => &[r"\+"],
        '"' => &[r#"\\""#, "&quot;"],
        '\'' => &[r"\\'", "&apos;"],
        '\\' => &[r"\\\\"],
        '/' => &[r"\\/"],
        '&' => &["&amp;"],
        '<' => &["&lt;"],
        '>' => &["&gt;"],
        '\n' => &[r"\\n"],
        '\r' => &[r"\\r"],
        '\t' => &[r"\\t"],
        '\u{8}' => &[r"\\b"],
        '\u{c}' => &[r"\\f"],
        _ => &[],
    }
}

/// `digits` hex digits of `value`, each letter in either case.
fn push_hex(value: u32, digits: u32, out: &mut String) {
    for shift in (0..digits).rev() {
        push_hex_digit((value >> (4 * shift)) & 0xf, out);
    }
}

fn push_hex_minimal(value: u32, out: &mut String) {
    for digit in format!("{value:x}").chars() {
        push_hex_digit(digit.to_digit(16).unwrap_or_default(), out);
    }
}

fn push_hex_digit(digit: u32, out: &mut String) {
    match char::from_digit(digit, 16) {
        Some(d) if d.is_ascii_alphabetic() => {
            out.push('[');
            out.push(d);
            out.push(d.to_ascii_uppercase());
            out.push(']');
        }
        Some(d) => out.push(d),
        None => {}
    }
}

/// Base64 encodings of `value`, and the parts of its encoding that stay the same when it sits
/// inside a longer encoded blob.
fn base64_forms(value: &[u8]) -> Vec<Zeroizing<String>> {
    let mut forms = Vec::new();
    for engine in [STANDARD, URL_SAFE] {
        forms.push(base64_form(&engine, value));
    }
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        forms.push(base64_form(&engine, value));
        for offset in 0..3 {
            forms.push(base64_core(&engine, value, offset));
        }
    }
    forms
}

fn base64_form(engine: &impl Engine, input: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(input.len().div_ceil(3) * 4 + 4));
    engine.encode_string(input, &mut out);
    out
}

/// The part of the base64 encoding that stays the same when `value` sits `offset` bytes (mod 3)
/// into a longer encoded blob, such as the password of `Basic base64(user:password)`: the
/// characters that mix in bits of the surrounding bytes are dropped.
fn base64_core(engine: &impl Engine, value: &[u8], offset: usize) -> Zeroizing<String> {
    let mut shifted = Zeroizing::new(Vec::with_capacity(offset + value.len()));
    shifted.resize(offset, 0);
    shifted.extend_from_slice(value);
    let encoded = base64_form(engine, &shifted);
    // Leading characters holding bits of the `offset` bytes before the value: ceil(8*offset/6).
    let skip = (8 * offset).div_ceil(6);
    // A trailing character holding fewer than 6 value bits also holds bits of what follows.
    let whole = 8 * shifted.len() / 6;
    Zeroizing::new(encoded.get(skip..whole).unwrap_or_default().to_owned())
}

/// Whether `text` ends inside an escape sequence that the next characters would complete:
/// `%` or `%X`; an unescaped `\` with nothing, `u` and up to 3 hex digits, `u{` and hex digits,
/// `x` and up to 1, `U` and up to 7, or 1-2 octal digits after it; `&#` and digits, `&#x` and
/// hex digits. Text placed after it would be read together with it.
pub(super) fn ends_in_unfinished_escape(text: &[u8]) -> bool {
    static UNFINISHED: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(
            r"(?-u)(?:%[0-9A-Fa-f]?|(\\+)(?:u[0-9A-Fa-f]{0,3}|u\{[0-9A-Fa-f]*|x[0-9A-Fa-f]?|U[0-9A-Fa-f]{0,7}|[0-7]{0,2})|&#(?:[0-9]*|[xX][0-9A-Fa-f]*))\z",
        )
        .expect("a fixed pattern")
    });
    let Some(captures) = UNFINISHED.captures(text) else {
        return false;
    };
    match captures.get(1) {
        // An even run of backslashes is escaped backslashes: nothing is left open.
        Some(backslashes) => backslashes.len() % 2 == 1,
        None => true,
    }
}

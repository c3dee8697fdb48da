//! Echoes of the values made for one node run (an async webhook's callback token, the run
//! token's MAC): 64 random hex digits. A receiver may echo one with each digit written its own
//! way, in any mix: as is in either letter case, percent-escaped, `\u00XX`, `\xXX`, or an HTML
//! character reference (the forms `echo` matches a loaded secret's characters in). Decoding digit
//! by digit wherever a digit may start finds every mix in one scan, with no pattern to compile
//! per node run: that matters because `airlock serve` binds a run token's MAC in every node run.
//! The base64 forms of those values, and of loaded secrets, are read the same way, character by
//! character, with a line break allowed between two characters (see [`EncodedForms`]).

use std::ops::Range;

use zeroize::Zeroizing;

/// Length of a token made here (32 random bytes, or an HMAC-SHA256, in hex).
const TOKEN_LEN: usize = 64;

/// Whether `value` has the shape of a token made here.
pub(super) fn is_token(value: &str) -> bool {
    value.len() == TOKEN_LEN && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One echo of a token: where, and which of the tokens searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TokenEcho {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) token: usize,
}

/// Every echo in `text` of one of `tokens` (lowercase hex), in the order they start. Echoes may
/// overlap (one token ending in the digits another begins with): the search goes on from just
/// after each one's start, so the second is found too.
pub(super) fn find<'t>(
    text: &[u8],
    tokens: impl Iterator<Item = &'t [u8]> + Clone,
) -> Vec<TokenEcho> {
    let mut found = Vec::new();
    if tokens.clone().next().is_none() {
        return found;
    }
    for start in 0..text.len() {
        // Most bytes start no digit; a digit is read once, whatever the number of tokens.
        let Some((lead, len)) = digit_at(&text[start..]) else {
            continue;
        };
        let echo = tokens.clone().enumerate().find_map(|(token, digits)| {
            let (&first, rest) = digits.split_first()?;
            let end = (first == lead).then(|| echo_end(text, start + len, rest))??;
            Some(TokenEcho { start, end, token })
        });
        found.extend(echo);
    }
    found
}

/// Where an echo of `token` that starts at `start` ends.
fn echo_end(text: &[u8], start: usize, token: &[u8]) -> Option<usize> {
    let mut at = start;
    for &expected in token {
        let (digit, len) = digit_at(&text[at..])?;
        if digit != expected {
            return None;
        }
        at += len;
    }
    Some(at)
}

/// Values' base64 forms (see `echo::base64_value_forms`), found as echoes of a token are: each
/// character in any form [`char_at`] reads, in either letter case (`+` also as a space), and
/// between two characters at most one line break and its indentation (see [`after_break`]), as
/// MIME (76 columns) and PEM (64) wrap base64.
/// Indexed by their first two characters: a text is read once, and at each place only the forms
/// beginning with what is written there are tried, whatever the number of forms.
pub(super) struct EncodedForms {
    /// Each form with the index of the value it stands for, by first two characters (see
    /// [`key`]), then longest first: at one place a whole form is taken before a part of it.
    forms: Vec<(Zeroizing<Vec<u8>>, usize)>,
    /// Each pair of first characters with the range of `forms` that begin with it, in order.
    by_pair: Vec<([u8; 2], Range<usize>)>,
    /// The bytes a form's echo can begin with (its first character in either case, or an escape):
    /// most bytes of a text begin none, and are passed over on one look.
    leads: [u64; 4],
}

impl EncodedForms {
    pub(super) fn new(forms: impl IntoIterator<Item = (Zeroizing<String>, usize)>) -> Self {
        let mut forms: Vec<_> = forms
            .into_iter()
            .filter(|(form, _)| form.len() >= 2 && form.is_ascii())
            .map(|(form, value)| (Zeroizing::new(form.as_bytes().to_vec()), value))
            .collect();
        let pair = |form: &[u8]| [key(form[0]), key(form[1])];
        forms.sort_by(|(a, _), (b, _)| pair(a).cmp(&pair(b)).then(b.len().cmp(&a.len())));
        let mut by_pair: Vec<([u8; 2], Range<usize>)> = Vec::new();
        for (i, (form, _)) in forms.iter().enumerate() {
            // Sorted by their first two characters: each pair's forms are contiguous.
            match by_pair.last_mut() {
                Some((first, range)) if *first == pair(form) => range.end = i + 1,
                _ => by_pair.push((pair(form), i..i + 1)),
            }
        }
        // Each form's first character in either case (a `+` also as a space), and the bytes
        // that begin an escape.
        let firsts = forms.iter().map(|(form, _)| form[0]);
        let escapes = [b'%', b'\\', b'&'].iter().filter(|_| !forms.is_empty());
        let mut leads = [0; 4];
        let written = |b: u8| [b.to_ascii_lowercase(), b.to_ascii_uppercase(), b' '];
        for byte in firsts
            .flat_map(|b| written(b).into_iter().filter(move |w| key(*w) == key(b)))
            .chain(escapes.copied())
        {
            leads[usize::from(byte / 64)] |= 1 << (byte % 64);
        }
        EncodedForms {
            forms,
            by_pair,
            leads,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    fn may_lead(&self, byte: u8) -> bool {
        self.leads[usize::from(byte / 64)] & (1 << (byte % 64)) != 0
    }

    /// Every echo in `text`, in the order they start (`token`: the value's index); at each start,
    /// the longest form that matches.
    pub(super) fn find(&self, text: &[u8]) -> Vec<TokenEcho> {
        let mut found = Vec::new();
        if self.forms.is_empty() {
            return found;
        }
        for start in 0..text.len() {
            if !self.may_lead(text[start]) {
                continue;
            }
            let Some((first, len)) = char_at(&text[start..]) else {
                continue;
            };
            let second_at = after_break(text, start + len);
            let Some((second, second_len)) = char_at(&text[second_at..]) else {
                continue;
            };
            let pair = [key(first), key(second)];
            let Ok(i) = self.by_pair.binary_search_by_key(&pair, |(pair, _)| *pair) else {
                continue;
            };
            let candidates = &self.forms[self.by_pair[i].1.clone()];
            let rest = second_at + second_len;
            let echo = candidates.iter().find_map(|(form, value)| {
                let end = encoded_end(text, rest, &form[2..])?;
                Some(TokenEcho {
                    start,
                    end,
                    token: *value,
                })
            });
            found.extend(echo);
        }
        found
    }
}

/// What a base64 character, or what is written for one, is indexed by: lowercase, and `+` for
/// the space form-decoding makes of it.
fn key(c: u8) -> u8 {
    if c == b' ' {
        b'+'
    } else {
        c.to_ascii_lowercase()
    }
}

/// Whether `text` holds a byte that begins an escape (`%`, `\`, `&`) or a line break: without
/// one, a value's base64 form can only be written as is.
pub(super) fn may_hold_escapes_or_breaks(text: &[u8]) -> bool {
    memchr::memchr3(b'%', b'\\', b'&', text).is_some()
        || memchr::memchr2(b'\r', b'\n', text).is_some()
}

/// Where an echo of `form`'s characters, the first of which ended at `start`, ends.
fn encoded_end(text: &[u8], start: usize, form: &[u8]) -> Option<usize> {
    let mut at = start;
    for expected in form {
        // Most places hold the character as is, or something that starts no escape nor break:
        // decided on one byte.
        match text.get(at) {
            Some(byte) if key(*byte) == key(*expected) => {
                at += 1;
                continue;
            }
            Some(b'\r' | b'\n' | b'\\' | b'%' | b'&') => {}
            _ => return None,
        }
        at = after_break(text, at);
        let (c, len) = char_at(&text[at..])?;
        if key(c) != key(*expected) {
            return None;
        }
        at += len;
    }
    Some(at)
}

/// `at`, past the line break that starts there and the indentation after it (base64 in an
/// indented XML or YAML block), if one does. A break is CRs then an LF, or a CR or an LF alone,
/// each written in any form [`char_at`] reads (`%0D%0A` in a URL, `&#13;` in XML) or escaped,
/// once or more (`\n` in JSON, `\\n` in JSON inside a JSON string). None is a base64 character.
fn after_break(text: &[u8], at: usize) -> usize {
    let mut end = at;
    while let Some(len) = control_at(&text[end..], b'\r') {
        end += len;
    }
    if let Some(len) = control_at(&text[end..], b'\n') {
        end += len;
    }
    if end == at {
        return at;
    }
    end + text[end..]
        .iter()
        .take_while(|byte| matches!(byte, b' ' | b'\t'))
        .count()
}

/// The length of `control` (CR or LF) written at the start of `text`: as is, in a form
/// [`char_at`] reads, or as a run of backslashes and `r` or `n`.
fn control_at(text: &[u8], control: u8) -> Option<usize> {
    let letter = if control == b'\r' { b'r' } else { b'n' };
    let backslashes = text.iter().take_while(|byte| **byte == b'\\').count();
    if backslashes > 0 && text.get(backslashes) == Some(&letter) {
        return Some(backslashes + 1);
    }
    char_at(text).and_then(|(c, len)| (c == control).then_some(len))
}

/// The hex digit (lowercase) written at the start of `text`, and how many bytes it takes.
fn digit_at(text: &[u8]) -> Option<(u8, usize)> {
    let (c, len) = char_at(text)?;
    c.is_ascii_hexdigit().then(|| (c.to_ascii_lowercase(), len))
}

/// The ASCII character written at the start of `text`, and how many bytes it takes: as is,
/// `%XX`, `\u00XX`, `\xXX`, an HTML character reference, or `\/` (JSON's optional escape of
/// `/`, which PHP writes).
fn char_at(text: &[u8]) -> Option<(u8, usize)> {
    let first = *text.first()?;
    let (code, len) = match (first, text.get(1)) {
        (b'%', _) => (hex_code(text.get(1..3)?)?, 3),
        (b'\\', Some(b'u')) if text.get(2..4)? == b"00" => (hex_code(text.get(4..6)?)?, 6),
        (b'\\', Some(b'x')) => (hex_code(text.get(2..4)?)?, 4),
        (b'\\', Some(b'/')) => (u32::from(b'/'), 2),
        (b'&', Some(b'#')) => reference(text)?,
        _ => (u32::from(first), 1),
    };
    let c = u8::try_from(code).ok().filter(u8::is_ascii)?;
    Some((c, len))
}

/// A character code written as two hex digits (`%41`, `\x41`, `\u0041`).
fn hex_code(digits: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// `&#x41;`, `&#65;`, with any leading zeros and without the `;`: the code and the length.
/// A character's code here is one or two hex digits, or two or three decimal ones (100–127).
fn reference(text: &[u8]) -> Option<(u32, usize)> {
    let (radix, mut at) = match text.get(2) {
        Some(b'x' | b'X') => (16, 3),
        _ => (10, 2),
    };
    while text.get(at) == Some(&b'0') {
        at += 1;
    }
    let digits = if radix == 16 {
        // One or two hex digits (`&#xA;` is LF).
        text.iter()
            .skip(at)
            .take(2)
            .take_while(|byte| byte.is_ascii_hexdigit())
            .count()
            .max(1)
    } else {
        // Three decimal digits only when a third follows (`&#13;` is CR, `&#100` is `d`).
        let third = text.get(at + 2).is_some_and(u8::is_ascii_digit);
        if text.get(at) == Some(&b'1') && third {
            3
        } else {
            2
        }
    };
    let code = std::str::from_utf8(text.get(at..at + digits)?).ok()?;
    let code = u32::from_str_radix(code, radix).ok()?;
    at += digits;
    if text.get(at) == Some(&b';') {
        at += 1;
    }
    Some((code, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// `TOKEN` with digit i written by `form(i, digit)`.
    fn written(form: impl Fn(usize, char) -> String) -> String {
        TOKEN.chars().enumerate().map(|(i, c)| form(i, c)).collect()
    }

    fn spans(text: &str) -> Vec<(usize, usize)> {
        find(text.as_bytes(), [TOKEN.as_bytes()].into_iter())
            .iter()
            .map(|echo| (echo.start, echo.end))
            .collect()
    }

    #[test]
    fn a_token_is_found_in_every_digit_form_and_any_mix() {
        let forms: Vec<Box<dyn Fn(usize, char) -> String>> = vec![
            Box::new(|_, c| c.to_string()),
            Box::new(|_, c| c.to_ascii_uppercase().to_string()),
            Box::new(|_, c| format!("%{:02X}", c as u32)),
            Box::new(|_, c| format!("%{:02x}", c.to_ascii_uppercase() as u32)),
            Box::new(|_, c| format!("\\u{:04x}", c as u32)),
            Box::new(|_, c| format!("\\x{:02x}", c as u32)),
            Box::new(|_, c| format!("&#x{:x};", c as u32)),
            Box::new(|_, c| format!("&#X00{:X}", c as u32)),
            Box::new(|_, c| format!("&#{};", c as u32)),
            Box::new(|_, c| format!("&#000{}", c as u32)),
            Box::new(|i, c| match i % 5 {
                0 => format!("%{:02x}", c as u32),
                1 => format!("&#{};", c as u32),
                2 => c.to_ascii_uppercase().to_string(),
                3 => format!("\\u{:04X}", c as u32),
                _ => c.to_string(),
            }),
        ];
        for form in forms {
            let echo = written(form);
            let text = format!("before {echo} after");
            // Another reading may start inside it (`%30%31…` read from its `0`): within it.
            let found = spans(&text);
            assert_eq!(found[0], (7, 7 + echo.len()), "{text}");
            assert!(
                found.iter().all(|&(_, end)| end <= 7 + echo.len()),
                "{text}"
            );
        }
    }

    #[test]
    fn a_token_is_found_wherever_it_starts_and_however_the_text_before_it_reads() {
        // `&#6` before the token's `5…` could be read as `&#65` (`A`): the search starts again
        // at every byte, so the reading that finds the token is tried too.
        for before in ["&#", "%4", "\\u00", "abc", "&#x", "%%"] {
            let token = format!("{}{}", &TOKEN[5..], &TOKEN[..5]);
            let text = format!("{before}{token}");
            let found = find(text.as_bytes(), [token.as_bytes()].into_iter());
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].end, text.len());
        }
    }

    #[test]
    fn overlapping_tokens_are_both_found() {
        // `a` ends in the digit `b` begins with: `b` starts inside `a`'s echo.
        let a = format!("{}7", &TOKEN[..63]);
        let b = format!("7{}", &TOKEN[..63]);
        let text = format!("{a}{}", &b[1..]);
        let found = find(text.as_bytes(), [a.as_bytes(), b.as_bytes()].into_iter());
        let spans: Vec<_> = found.iter().map(|e| (e.start, e.end, e.token)).collect();
        assert_eq!(spans, vec![(0, 64, 0), (63, 127, 1)]);
    }

    #[test]
    fn nothing_else_is_taken_for_a_token() {
        let mut one_off = TOKEN.to_owned();
        one_off.replace_range(63..64, "e");
        for text in [
            one_off.as_str(),
            &TOKEN[..63],
            &written(|_, c| format!("%{:02x}", c as u32 + 0x100)),
            &written(|_, c| format!("&#{}", c as u32 + 1)),
        ] {
            assert!(spans(text).is_empty(), "{text}");
        }
        assert!(is_token(TOKEN));
        assert!(!is_token(&TOKEN[1..]));
        assert!(!is_token(&TOKEN.replace('a', "g")));
    }
}

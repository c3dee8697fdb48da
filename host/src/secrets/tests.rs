use super::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::io::Write;

const VALUE: &str = "s3cr3t va/lue+?é\"x";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn store(pairs: &[(&str, &str)]) -> Arc<SecretStore> {
    let vars: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            (
                format!("AIRLOCK_SECRET_{}", k.to_uppercase().replace('-', "_")),
                (*v).to_owned(),
            )
        })
        .collect();
    Arc::new(SecretStore::load(None, vars).expect("load"))
}

fn secrets_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

#[test]
fn loads_file_and_maps_env_names() {
    let file = secrets_file(r#"{"db-password": "hunter22", "api-token": "from-file"}"#);
    let store = SecretStore::load(
        Some(file.path()),
        env(&[
            ("AIRLOCK_SECRET_API_TOKEN", "from-env"),
            ("AIRLOCK_SECRET_GITHUB_TOKEN", "ghp_abcdef"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .expect("load");
    assert_eq!(store.names(), ["api-token", "db-password", "github-token"]);
    assert!(store.contains("api-token"));
    assert!(!store.contains("path"));
    // The variable overrides the file's value.
    let bindings = Bindings::new(Arc::new(store));
    let handle = bindings.context_object()["api-token"]
        .as_str()
        .expect("handle")
        .to_owned();
    assert_eq!(
        &bindings.reveal(handle.as_bytes(), Encoding::Raw).unwrap()[..],
        b"from-env"
    );
}

#[test]
fn errors_name_the_file_and_secret_but_not_the_value() {
    let cases = [
        (r#"{"token": 123456789}"#, "token"),
        (r#"{"token": ["hunter2-value"]}"#, "token"),
        (r#"{"token": ""}"#, "token"),
        (r#"{"token": "hunter2-value", }"#, ""),
        (r#"["hunter2-value"]"#, ""),
    ];
    for (text, name) in cases {
        let file = secrets_file(text);
        let err = SecretStore::load(Some(file.path()), env(&[]))
            .expect_err(text)
            .to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains(name), "{err}");
        assert!(
            !err.contains("hunter2") && !err.contains("123456789"),
            "{err}"
        );
    }
    let missing = SecretStore::load(Some(Path::new("/nonexistent/secrets.json")), env(&[]))
        .expect_err("missing file")
        .to_string();
    assert!(missing.contains("/nonexistent/secrets.json"), "{missing}");

    let err = SecretStore::load(None, env(&[("AIRLOCK_SECRET_", "hunter2-value")]))
        .expect_err("empty name")
        .to_string();
    assert!(
        err.contains("AIRLOCK_SECRET_") && !err.contains("hunter2"),
        "{err}"
    );
    let err = SecretStore::load(None, env(&[("AIRLOCK_SECRET_X", "")]))
        .expect_err("empty value")
        .to_string();
    assert!(err.contains("AIRLOCK_SECRET_X"), "{err}");
}

#[test]
fn debug_never_shows_values() {
    let store = store(&[("api-token", "hunter2-value")]);
    let bindings = Bindings::new(store.clone());
    for shown in [format!("{store:?}"), format!("{bindings:?}")] {
        assert!(shown.contains("api-token"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn handles_are_unique_and_well_formed() {
    let store = store(&[("a", "value-aaaa"), ("b", "value-bbbb")]);
    let first = Bindings::new(store.clone()).context_object();
    let second = Bindings::new(store).context_object();
    let handles: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|o| o.as_object().expect("object").values())
        .map(|v| v.as_str().expect("string"))
        .collect();
    assert_eq!(handles.len(), 4);
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.len(), HANDLE_LEN);
        let hex = h
            .strip_prefix("__airlock_secret_")
            .and_then(|r| r.strip_suffix("__"))
            .expect("format");
        assert!(
            hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{h}"
        );
        assert!(!handles[i + 1..].contains(h), "duplicate handle {h}");
    }
}

#[test]
fn retain_used_and_used_in() {
    let mut bindings = Bindings::new(store(&[("a", "value-aaaa"), ("b", "value-bbbb")]));
    let ctx = bindings.context_object();
    let a = ctx["a"].as_str().expect("a").to_owned();
    let b = ctx["b"].as_str().expect("b").to_owned();
    let text = format!("x {b} y {b}");
    assert_eq!(bindings.used_in(text.as_bytes()), ["b"]);
    bindings.retain_used(&format!("Authorization: Bearer {a}"));
    assert_eq!(bindings.context_object(), serde_json::json!({ "a": a }));
    // `b` is no longer bound: its handle stays as it is.
    assert_eq!(
        &bindings.reveal(b.as_bytes(), Encoding::Raw).unwrap()[..],
        b.as_bytes()
    );
    assert!(bindings.used_in(text.as_bytes()).is_empty());
    // …but a leaked handle of `b` is still shown by name, never as a live-looking handle.
    assert_eq!(bindings.mask(&text), "x [secret:b] y [secret:b]");
}

#[test]
fn reveal_encodes_per_position() {
    let bindings = Bindings::new(store(&[("t", "a b/ü\"~\n")]));
    let h = bindings.context_object()["t"]
        .as_str()
        .expect("handle")
        .to_owned();
    let text = format!("<{h}|{h}>");
    let reveal =
        |e| String::from_utf8(bindings.reveal(text.as_bytes(), e).unwrap().to_vec()).expect("utf8");
    assert_eq!(reveal(Encoding::Raw), "<a b/ü\"~\n|a b/ü\"~\n>");
    assert_eq!(
        reveal(Encoding::UrlComponent),
        "<a%20b%2F%C3%BC%22~%0A|a%20b%2F%C3%BC%22~%0A>"
    );
    assert_eq!(
        reveal(Encoding::JsonString),
        "<a b/ü\\\"~\\n|a b/ü\\\"~\\n>"
    );
    // The JSON form is what serde_json writes inside the quotes.
    let via_serde = serde_json::to_string("a b/ü\"~\n").expect("json");
    assert_eq!(
        reveal(Encoding::JsonString),
        format!("<{0}|{0}>", &via_serde[1..via_serde.len() - 1])
    );
}

#[test]
fn mask_replaces_handles_with_names() {
    let bindings = Bindings::new(store(&[("api-token", "value-aaaa")]));
    let h = bindings.context_object()["api-token"]
        .as_str()
        .expect("handle")
        .to_owned();
    assert_eq!(
        bindings.mask(&format!("https://x/?k={h}&h=__airlock_secret_zz__")),
        "https://x/?k=[secret:api-token]&h=__airlock_secret_zz__"
    );
}

#[test]
fn redacts_every_echo_form() {
    let store = store(&[("tok", VALUE)]);
    let bytes = VALUE.as_bytes();
    let json = serde_json::to_string(VALUE).expect("json");
    let forms = [
        VALUE.to_owned(),
        "s3cr3t%20va%2Flue%2B%3F%C3%A9%22x".to_owned(),
        "s3cr3t+va%2Flue%2B%3F%C3%A9%22x".to_owned(),
        json[1..json.len() - 1].to_owned(),
        r#"s3cr3t va\/lue+?\u00e9\"x"#.to_owned(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ];
    for form in forms {
        let text = format!("before {form} after");
        assert_eq!(
            store.redact_str(&text),
            "before [secret:tok] after",
            "form {form}"
        );
        assert_eq!(
            &store.redact(text.as_bytes())[..],
            b"before [secret:tok] after"
        );
    }
}

#[test]
fn redacts_value_inside_a_longer_base64_blob() {
    let store = store(&[("pw", "correct-horse-battery")]);
    for user in ["u", "us", "use"] {
        let header = format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:correct-horse-battery"))
        );
        let redacted = store.redact_str(&header);
        assert!(redacted.contains("[secret:pw]"), "{user}: {redacted}");
        // What is left around the label is at most the user part and a few mixed characters.
        assert!(
            redacted.len() <= "Basic ".len() + 9 + "[secret:pw]".len(),
            "{redacted}"
        );
    }
}

#[test]
fn redact_prefers_longest_and_skips_short_values() {
    let store = store(&[("short", "abc"), ("long", "abcdef-ghij"), ("mid", "abcdef")]);
    assert_eq!(
        store.redact_str("abcdef-ghij abcdef abc"),
        "[secret:long] [secret:mid] abc"
    );
    let clean = "nothing to see";
    assert!(matches!(store.redact_str(clean), Cow::Borrowed(_)));
    assert!(matches!(
        SecretStore::empty().redact(clean.as_bytes()),
        Cow::Borrowed(_)
    ));
}

#[test]
fn a_value_ending_in_the_start_of_an_escape_is_redacted_to_the_escapes_end() {
    let store = store(&[("amp", "token&"), ("pct", "tok2%"), ("bs", "tok3\\")]);
    for (echo, label) in [
        ("token&amp;", "[secret:amp]"),
        ("token&#38;", "[secret:amp]"),
        ("token\\u0026", "[secret:amp]"),
        ("tok2%25", "[secret:pct]"),
        ("tok3\\\\", "[secret:bs]"),
        ("tok3\\x5c", "[secret:bs]"),
    ] {
        assert_eq!(store.redact_str(&format!("<{echo}>")), format!("<{label}>"));
    }
}

#[test]
fn a_value_echoed_in_another_letter_case_is_redacted_and_found() {
    let store = store(&[("tok", "s3cr3t-VALUE-é")]);
    for echo in ["s3cr3t-value-é", "S3CR3T-VALUE-É", "s3CR3t-vaLUE-%C3%A9"] {
        assert_eq!(store.redact_str(&format!("<{echo}>")), "<[secret:tok]>");
        assert_eq!(store.values_in(echo.as_bytes()), ["tok"], "{echo}");
    }
}

#[test]
fn overlapping_values_are_both_redacted_and_both_found() {
    let pair = store(&[("first", "abcdefgh"), ("second", "efghijkl")]);
    let text = "x abcdefghijkl y";
    let redacted = pair.redact_str(text);
    assert_eq!(redacted, "x [secret:first][secret:second] y");
    for tail in ["ijkl", "efgh"] {
        assert!(
            !redacted.contains(tail),
            "{tail} of a value is left: {redacted}"
        );
    }
    assert_eq!(pair.values_in(text.as_bytes()), ["first", "second"]);
    // A value inside another's echo is covered by it; the request still carries it.
    let nested = store(&[("outer", "abcdefgh"), ("inner", "cdef")]);
    assert_eq!(nested.redact_str("abcdefgh"), "[secret:outer]");
    assert_eq!(nested.values_in(b"abcdefgh"), ["inner", "outer"]);
    // Echoes side by side get a label each; a value overlapping itself, one.
    assert_eq!(
        pair.redact_str("x abcdefghabcdefgh"),
        "x [secret:first][secret:first]"
    );
    let repeating = store(&[("a", "aaaa")]);
    assert_eq!(repeating.redact_str("<aaaaaaa>"), "<[secret:a]>");
    // Echoes one after another, and one overlapping two.
    assert_eq!(
        pair.redact_str("abcdefgh efghijkl abcdefghijklabcdefgh"),
        "[secret:first] [secret:second] [secret:first][secret:second][secret:first]"
    );
}

fn handle_of(bindings: &Bindings, name: &str) -> String {
    bindings.context_object()[name]
        .as_str()
        .expect("handle")
        .to_owned()
}

#[test]
fn redacts_go_and_dotnet_json_escapes_and_any_hex_case() {
    let value = "a&b<c>d+e'f g";
    let store = store(&[("tok", value)]);
    let forms = [
        // Go's json.Marshal: & < > as \u0026 \u003c \u003e.
        r"a\u0026b\u003cc\u003ed+e'f g",
        // .NET System.Text.Json: also + and ', upper-case hex.
        r"a\u0026b\u003Cc\u003Ed\u002Be\u0027f g",
        // Every character escaped, mixed case.
        r"\u0061\u0026\u0062\u003c\u0063\u003E\u0064\u002b\u0065\u0027\u0066\u0020\u0067",
        // Percent-encoding in lower and upper case, + for the space.
        "a%26b%3cc%3Ed%2be%27f+g",
        "%61%26%62%3C%63%3E%64%2B%65%27%66%20%67",
        // \xNN and HTML character references.
        r"a\x26b\x3cc\x3ed\x2be\x27f\x20g",
        "a&amp;b&lt;c&gt;d&#43;e&#x27;f&#32;g",
    ];
    for form in forms {
        let text = format!("<{form}>");
        assert_eq!(store.redact_str(&text), "<[secret:tok]>", "form {form}");
        assert_eq!(store.values_in(text.as_bytes()), ["tok"], "form {form}");
    }
    assert!(store.values_in(b"a&b<c>d+e'f").is_empty());
}

#[test]
fn redact_json_covers_strings_keys_and_numbers() {
    let store = store(&[("pin", "12345678"), ("tok", "tok-value")]);
    let value = serde_json::json!({
        "a": 1,
        "tok-value": ["x tok-value y", 12345678, 7, {"n": "dG9rLXZhbHVl"}, 12345678.5, -0.25],
        "z": {"b": true, "a": null},
    });
    let redacted = store.redact_json(value);
    assert_eq!(
        redacted,
        serde_json::json!({
            "a": 1,
            "[secret:tok]": ["x [secret:tok] y", "[secret:pin]", 7, {"n": "[secret:tok]"},
                             "[secret:pin].5", -0.25],
            "z": {"b": true, "a": null},
        })
    );
    // A changed key keeps its place among the others.
    assert_eq!(
        redacted.to_string(),
        r#"{"a":1,"[secret:tok]":["x [secret:tok] y","[secret:pin]",7,{"n":"[secret:tok]"},"[secret:pin].5",-0.25],"z":{"b":true,"a":null}}"#
    );
}

#[test]
fn scrub_masks_handles_and_values() {
    let bindings = Bindings::new(store(&[("a", "value-aaaa"), ("b", "value-bbbb")]));
    let a = handle_of(&bindings, "a");
    assert_eq!(
        bindings.scrub(&format!("{a} value-bbbb dmFsdWUtYmJiYg==")),
        "[secret:a] [secret:b] [secret:b]"
    );
    assert_eq!(
        bindings.scrub_json(serde_json::json!({ "k": a, "v": "value%2Dbbbb" })),
        serde_json::json!({ "k": "[secret:a]", "v": "[secret:b]" })
    );
}

#[test]
fn reveal_refuses_a_handle_that_does_not_follow_a_separator() {
    let bindings = Bindings::new(store(&[("t", "2d41-token")]));
    let h = handle_of(&bindings, "t");
    let long_zeros = format!("&#x{}", "0".repeat(40));
    let many_backslashes = "\\".repeat(34);
    let refused = [
        "%",
        "%2",
        "%25",
        "%253",
        "\\",
        "\\u00",
        "\\x",
        "&#",
        "&#x",
        "=4",
        "x",
        "A",
        "%u00",
        "&amp;#x",
        &long_zeros,
        &many_backslashes,
    ];
    for before in refused {
        for encoding in [Encoding::Raw, Encoding::UrlComponent, Encoding::JsonString] {
            let text = format!("q{before}{h}");
            let err = bindings.reveal(text.as_bytes(), encoding).expect_err(&text);
            assert_eq!(
                err,
                RevealError::JoinedBefore { name: "t".into() },
                "{text}"
            );
            assert!(!err.to_string().contains("2d41"), "{err}");
        }
    }
    for before in [
        "", "=", "/", " ", "\"", ":", "Bearer ", "key_", "a-", "{", "[",
    ] {
        let text = format!("{before}{h}");
        let revealed = bindings
            .reveal(text.as_bytes(), Encoding::Raw)
            .expect(&text);
        assert_eq!(&revealed[..], format!("{before}2d41-token").as_bytes());
    }
}

#[test]
fn echoes_of_what_a_receiver_decoded_are_redacted() {
    // Sent as is, then form-decoded (+ became a space), trimmed, or JSON-unescaped.
    let store = store(&[
        ("aws", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("nl", "token-with-newline\n"),
        ("json", "a\\u0041bcd"),
    ]);
    for (text, label) in [
        (
            "x wJalrXUtnFEMI/K7MDENG bPxRfiCYEXAMPLEKEY y",
            "[secret:aws]",
        ),
        ("x token-with-newline y", "[secret:nl]"),
        ("x aAbcd y", "[secret:json]"),
    ] {
        assert_eq!(store.redact_str(text), format!("x {label} y"), "{text}");
    }
}

#[test]
fn non_ascii_values_are_recognised_as_utf8_byte_escapes() {
    let store = store(&[("t", "café-token")]);
    assert_eq!(store.redact_str(r"caf\xc3\xa9-token"), "[secret:t]");
}

#[test]
fn a_very_long_value_is_matched_literally() {
    let value: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let store = store(&[("bundle", &value)]);
    assert_eq!(store.redact_str(&format!("<{value}>")), "<[secret:bundle]>");
}

#[test]
fn reveal_refuses_a_value_ending_in_an_escape_when_text_follows() {
    let bindings = Bindings::new(store(&[("t", "token-ends-%4")]));
    let h = handle_of(&bindings, "t");
    let err = bindings
        .reveal(format!("{h}1").as_bytes(), Encoding::Raw)
        .expect_err("joined");
    assert_eq!(err, RevealError::JoinedAfter { name: "t".into() });
    // At the end of the text, or percent-encoded in a URL, nothing can join it.
    assert!(bindings.reveal(h.as_bytes(), Encoding::Raw).is_ok());
    let url = bindings
        .reveal(format!("{h}1").as_bytes(), Encoding::UrlComponent)
        .expect("encoded");
    assert_eq!(&url[..], b"token-ends-%2541");
}

#[test]
fn long_values_compile_and_match() {
    let value: String = (0..4096)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let store = store(&[("key", &value)]);
    let text = format!("x{}y", value.replace('a', "%61"));
    assert_eq!(store.redact_str(&text), "x[secret:key]y");
}

#[test]
fn a_bound_token_is_revealed_only_at_its_handle_and_scrubbed_like_a_secret() {
    let mut bindings = Bindings::new(store(&[("api-token", "tok-value-1")]));
    let token = bindings.bind_token("airlock-callback-token");
    let revealed = bindings
        .reveal(format!("Bearer {}", token.handle).as_bytes(), Encoding::Raw)
        .expect("reveal");
    let value = std::str::from_utf8(&revealed[7..]).unwrap().to_owned();
    assert_eq!(value.len(), 64, "256 random bits in hex");
    assert_eq!(token_sha256(&value), token.sha256);
    assert_eq!(
        bindings.used_in(token.handle.as_bytes()),
        ["airlock-callback-token"]
    );
    let echoed = format!(
        "{value} {} {} tok-value-1",
        value.to_uppercase(),
        token.handle
    );
    assert_eq!(
        bindings.scrub(&echoed),
        "[secret:airlock-callback-token] [secret:airlock-callback-token] \
         [secret:airlock-callback-token] [secret:api-token]"
    );
    let other = Bindings::new(store(&[]));
    assert!(
        other.scrub(&token.handle).contains("__airlock_secret_"),
        "another node run knows nothing of it"
    );
}

/// Binds a callback token in `bindings` and reveals its value.
fn bound_callback_token(bindings: &mut Bindings) -> String {
    let token = bindings.bind_token("airlock-callback-token");
    let revealed = bindings
        .reveal(token.handle.as_bytes(), Encoding::Raw)
        .expect("reveal");
    String::from_utf8(revealed.to_vec()).unwrap()
}

#[test]
fn a_bound_token_echoed_in_base64_or_escaped_is_redacted() {
    let mut bindings = Bindings::new(store(&[]));
    let value = bound_callback_token(&mut bindings);
    let label = "[secret:airlock-callback-token]";
    for echo in [
        STANDARD.encode(&value),
        STANDARD.encode(value.to_uppercase()),
        URL_SAFE_NO_PAD.encode(&value),
        format!("Basic {}", STANDARD.encode(format!("us:{value}"))),
        format!(
            "{{\"echo\": \"{}\"}}",
            URL_SAFE.encode(format!("{value}\n"))
        ),
    ] {
        let redacted = bindings.redact_str(&echo);
        assert!(redacted.contains(label), "{echo} -> {redacted}");
        // Around the label, at most the other part of a blob and a few mixed characters.
        assert!(
            redacted.len() <= "Basic ".len() + 9 + label.len(),
            "{redacted}"
        );
    }
}

#[test]
fn a_bound_token_echoed_digit_by_digit_in_mixed_forms_is_redacted_and_recognised() {
    let mut bindings = Bindings::new(store(&[]));
    let value = bound_callback_token(&mut bindings);
    // Each digit its own way, as a receiver mixing encoders (or a hostile one) may write it.
    let mixed: String = value
        .chars()
        .enumerate()
        .map(|(i, c)| match i % 6 {
            0 => format!("\\u{:04x}", c as u32),
            1 => format!("%{:02X}", c as u32),
            2 => format!("&#{};", c as u32),
            3 => format!("&#x{:x}", c as u32),
            4 => format!("\\x{:02x}", c as u32),
            _ => c.to_ascii_uppercase().to_string(),
        })
        .collect();
    let echo = format!("{{\"seen\": \"{mixed}\"}}");
    assert_eq!(
        bindings.redact_str(&echo),
        r#"{"seen": "[secret:airlock-callback-token]"}"#
    );
    assert_eq!(
        bindings.own_values_in(echo.as_bytes()),
        ["airlock-callback-token"]
    );
    let mut near = value.clone();
    near.replace_range(..1, if value.starts_with('0') { "1" } else { "0" });
    assert!(bindings.own_values_in(near.as_bytes()).is_empty());
    assert_eq!(bindings.redact_str(&near), near);
}

#[test]
fn a_presented_token_is_masked_in_every_string_key_and_number_of_what_its_caller_posts() {
    let made = "c0ffee".repeat(10) + "0123";
    let token = PresentedToken::new("airlock-callback-token", &made.to_uppercase()).expect("made");
    let escaped: String = made
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let body: serde_json::Value = serde_json::from_str(&format!(
        r#"{{"log": "got {escaped}", "{made}": 1, "n": ["{}"]}}"#,
        STANDARD.encode(&made)
    ))
    .unwrap();
    let label = "[secret:airlock-callback-token]";
    assert_eq!(
        token.redact_json(body),
        serde_json::json!({"log": format!("got {label}"), label: 1, "n": [label]})
    );
    // An operator's admin token has no set shape to recognise it by, and is kept as a hash only.
    assert!(PresentedToken::new("airlock-api-token", "Operator's token!").is_none());
}

#[test]
fn a_loaded_value_inside_a_bound_token_does_not_cut_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, _) = PlatformKey::load_or_create(dir.path()).expect("created");
    let mac = key.run_mac("wfr_a").to_string();
    // A loaded secret that happens to be four characters of the run token's MAC.
    let pin = mac[10..14].to_owned();
    let mut bindings = Bindings::new(store(&[("pin", &pin)]));
    bindings.bind_run_token(&key, "wfr_a");
    let echo = format!("<{mac}>");
    assert_eq!(
        bindings.redact_str(&echo),
        "<[secret:airlock-platform-token]>"
    );
}

#[test]
fn a_run_token_is_derived_from_the_kept_key_verified_and_masked() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, source) = PlatformKey::load_or_create(dir.path()).expect("created");
    assert!(matches!(source, KeySource::Generated(_)));
    let mode = std::fs::metadata(dir.path().join("platform-key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (restarted, source) = PlatformKey::load_or_create(dir.path()).expect("loaded");
    assert!(matches!(source, KeySource::File(_)));

    let mut bindings = Bindings::new(store(&[("api-token", "tok-value-1")]));
    assert!(bindings.platform_authorization().is_none());
    bindings.bind_run_token(&key, "wfr_a");
    let header = bindings.platform_authorization().expect("bound");
    let token = std::str::from_utf8(&header)
        .unwrap()
        .strip_prefix("Bearer ")
        .expect("a bearer header")
        .to_owned();
    assert_eq!(
        restarted.run_of(&token),
        Some("wfr_a"),
        "the same after a restart"
    );
    let (run, mac) = token.rsplit_once('.').expect("run.mac");
    assert_eq!((run, mac.len()), ("wfr_a", 64));
    for forged in [
        format!("wfr_b.{mac}"),
        "wfr_a".into(),
        "wfr_a.zz".into(),
        format!("wfr_a.{}", &mac[2..]),
    ] {
        assert_eq!(key.run_of(&forged), None, "{forged}");
    }
    let other_dir = tempfile::tempdir().expect("temp dir");
    let (other, _) = PlatformKey::load_or_create(other_dir.path()).expect("created");
    assert_eq!(other.run_of(&token), None, "another server's key");

    assert_eq!(
        bindings.context_object(),
        serde_json::json!({"api-token": bindings.context_object()["api-token"]}),
        "no template can name the run token"
    );
    bindings.retain_used(&token);
    assert!(bindings.used_in(token.as_bytes()).is_empty());
    let echoed = format!("{token} {} tok-value-1", mac.to_uppercase());
    let masked =
        "wfr_a.[secret:airlock-platform-token] [secret:airlock-platform-token] [secret:api-token]";
    assert_eq!(bindings.scrub(&echoed), masked);
    assert_eq!(
        bindings.redact(echoed.as_bytes()).as_ref(),
        masked.as_bytes()
    );
}

#[test]
fn a_damaged_key_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("platform-key"), "not hex\n").expect("write");
    let err = PlatformKey::load_or_create(dir.path()).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("platform-key") && text.contains("32 bytes in hex"),
        "{text}"
    );
}

/// `base64` as servers and encoders write it: escaped (PHP's JSON `\/`, a URL's percent-escapes,
/// an HTML character reference each), wrapped as MIME (CR LF every 76 characters) and PEM (LF
/// every 64), wrapped inside a JSON string (the breaks JSON-escaped), indented, its breaks
/// written as URLs, XML and nested JSON write them, form-decoded (`+` as a space) and in another
/// letter case.
fn base64_as_written(base64: &str) -> Vec<(&'static str, String)> {
    let wrapped = |width: usize, line_break: &str| {
        let chars: Vec<char> = base64.chars().collect();
        chars
            .chunks(width)
            .map(|line| line.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(line_break)
    };
    let each_escaped = |escape: fn(char) -> String| base64.chars().map(escape).collect::<String>();
    vec![
        ("json slashes", base64.replace('/', "\\/")),
        (
            "percent",
            base64
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D"),
        ),
        ("references", each_escaped(|c| format!("&#{};", c as u32))),
        ("mime", wrapped(76, "\r\n")),
        ("pem", wrapped(64, "\n")),
        ("pem in json", wrapped(64, "\\n").replace('/', "\\/")),
        ("short lines", wrapped(5, "\r\n")),
        ("indented", wrapped(64, "\n      ")),
        ("url-encoded pem", wrapped(64, "%0D%0A")),
        ("xml references", wrapped(76, "&#13;\n")),
        ("xml hex references", wrapped(76, "&#xD;&#xA;")),
        ("json \\u000a", wrapped(64, "\\u000a")),
        ("json in json", wrapped(64, "\\\\n")),
        ("crlf converted twice", wrapped(76, "\r\r\n")),
        ("form-decoded", base64.replace('+', " ")),
        ("lower case", base64.to_lowercase()),
    ]
}

#[test]
fn a_secret_echoed_in_base64_escaped_or_wrapped_is_redacted_and_recognised() {
    // Long enough that its base64 wraps, with `+` or `-`, `/` or `_`, and padding in it.
    let value = "a-long-secret-value-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ??>>";
    let store = store(&[("key", value)]);
    for base64 in [STANDARD.encode(value), URL_SAFE.encode(value)] {
        assert!(base64.contains(['/', '_']) && base64.len() > 76, "{base64}");
        for (how, echo) in base64_as_written(&base64) {
            let text = format!("before {echo} after");
            assert_eq!(
                store.redact_str(&text),
                "before [secret:key] after",
                "{how}: {text}"
            );
            assert_eq!(store.values_in(text.as_bytes()), ["key"], "{how}: {text}");
        }
    }
    // Inside a longer blob (`Basic base64(user:value)`), wrapped: at most the user part and a
    // few mixed characters are left around the label (10 characters, as 6-byte references).
    for user in ["u", "us", "use"] {
        let blob = STANDARD.encode(format!("{user}:{value}"));
        for (how, echo) in base64_as_written(&blob) {
            let redacted = store.redact_str(&echo);
            assert!(redacted.contains("[secret:key]"), "{how}: {redacted}");
            assert!(
                redacted.len() <= 10 * 6 + "[secret:key]".len(),
                "{how}: {redacted}"
            );
        }
    }
}

#[test]
fn a_bound_token_echoed_in_base64_escaped_or_wrapped_is_redacted_and_recognised() {
    let mut bindings = Bindings::new(store(&[]));
    let value = bound_callback_token(&mut bindings);
    let label = "[secret:airlock-callback-token]";
    // 64 hex digits: 88 base64 characters, more than a MIME or PEM line.
    for base64 in [
        STANDARD.encode(&value),
        URL_SAFE.encode(value.to_uppercase()),
    ] {
        for (how, echo) in base64_as_written(&base64) {
            let text = format!("before {echo} after");
            assert_eq!(
                bindings.redact_str(&text),
                format!("before {label} after"),
                "{how}: {text}"
            );
            assert_eq!(
                bindings.own_values_in(text.as_bytes()),
                ["airlock-callback-token"],
                "{how}: {text}"
            );
        }
    }
}

#[test]
fn text_that_only_resembles_a_wrapped_echo_is_left_alone() {
    let mut bindings = Bindings::new(store(&[]));
    let value = bound_callback_token(&mut bindings);
    let base64 = STANDARD.encode(&value);
    // Two breaks in a row, or another character between two lines, end a wrapped echo: what is
    // left are pieces of its base64 that are no form of the token.
    for text in [
        format!("{}\n\n{}", &base64[..40], &base64[40..]),
        format!("{} {}", &base64[..40], &base64[40..]),
        format!("{}\n{}", &base64[..40], &base64[41..]),
    ] {
        assert_eq!(bindings.redact_str(&text), text);
        assert!(bindings.own_values_in(text.as_bytes()).is_empty(), "{text}");
    }
}

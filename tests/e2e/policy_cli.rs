//! `airlock policy check` and `airlock policy test`: a reviewer can read a policy and ask what it
//! decides for a URL, and a malformed policy is refused with its file, line and reason.

use crate::support::Scene;

const POLICY: &str = r#"[egress]
default = "public"
allow = ["http://127.0.0.1:8080", "https://*.example.com"]
deny = ["https://evil.example.com", "*://203.0.113.0/24:*"]

[secrets.api-token]
hosts = ["api.example.com"]
"#;

fn policy_test(scene: &Scene, url: &str) -> (i32, String) {
    let file = scene.path("airlock.toml");
    let out = scene.airlock(&["policy", "test", file.to_str().unwrap(), url]);
    (out.code(), out.stdout())
}

#[test]
fn check_explains_every_rule() {
    let scene = Scene::new();
    let file = scene.write("airlock.toml", POLICY);
    let out = scene.airlock(&["policy", "check", file.to_str().unwrap()]);
    out.expect_code(0);
    let text = out.stdout();
    for expected in [
        "valid policy",
        "default: public",
        "deny[0] https://evil.example.com",
        "deny[1] *://203.0.113.0/24:*",
        "allow[0] http://127.0.0.1:8080",
        "allow[1] https://*.example.com",
        "api-token: api.example.com",
        "non-public addresses",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Deny rules are listed first: they are checked first.
    assert!(text.find("deny[0]") < text.find("allow[0]"), "{text}");
}

#[test]
fn a_malformed_policy_names_file_line_and_reason() {
    let cases = [
        (
            "[egress]\nallow = [\n  \"https://ok.example.com\",\n  \"ftp://files.example.com\",\n]\n",
            4,
            "unsupported scheme",
        ),
        (
            "[egress]\ndefault = \"maybe\"\n",
            2,
            "must be \"public\" or \"deny\"",
        ),
        (
            "[egress]\n\ndeny = [\"https://x.example.com/path\"]\n",
            3,
            "path",
        ),
        (
            "[egress]\nallow = [\"https://x.example.com\"]\nbogus = 1\n",
            3,
            "bogus",
        ),
        (
            "[secrets.t]\nhosts = [\"https://x.example.com:99999\"]\n",
            2,
            "invalid port",
        ),
    ];
    for (text, line, reason) in cases {
        let scene = Scene::new();
        let file = scene.write("bad.toml", text);
        let out = scene.airlock(&["policy", "check", file.to_str().unwrap()]);
        out.expect_code(2);
        let stderr = out.stderr();
        let location = format!("{}, line {line}: ", file.display());
        assert!(stderr.contains(&location), "{text}\n{stderr}");
        assert!(stderr.contains(reason), "{text}\n{stderr}");
        // `run` refuses the same policy before anything runs.
        let wf = scene.write(
            "wf.json",
            r#"{"identifier": "w", "nodes": [{"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}}], "connections": []}"#,
        );
        let run = scene.airlock(&[
            "run",
            wf.to_str().unwrap(),
            "--policy",
            file.to_str().unwrap(),
        ]);
        run.expect_code(2);
        assert!(run.stderr().contains(&location), "{}", run.stderr());
    }
}

#[test]
fn test_allows_a_url_an_allow_rule_names() {
    let scene = Scene::new();
    scene.write("airlock.toml", POLICY);
    let (code, out) = policy_test(&scene, "http://127.0.0.1:8080/hook");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("allow: allow[0] http://127.0.0.1:8080 (resolves to 127.0.0.1)"),
        "{out}"
    );
}

#[test]
fn test_allows_a_public_address_by_default() {
    let scene = Scene::new();
    scene.write("airlock.toml", POLICY);
    let (code, out) = policy_test(&scene, "https://93.184.216.34/");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("allow: default public"), "{out}");
}

#[test]
fn test_names_the_deny_rule_that_beats_an_allow_rule() {
    let scene = Scene::new();
    scene.write("airlock.toml", POLICY);
    // `https://*.example.com` allows it too, but deny rules come first.
    let (code, out) = policy_test(&scene, "https://evil.example.com/x");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("deny: deny[0] https://evil.example.com"),
        "{out}"
    );
    let (code, out) = policy_test(&scene, "http://203.0.113.9:8080/");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("deny: deny[1] *://203.0.113.0/24:*"), "{out}");
}

#[test]
fn test_refuses_private_addresses_the_policy_does_not_name() {
    let scene = Scene::new();
    scene.write("airlock.toml", POLICY);
    for (url, reason) in [
        (
            "http://127.0.0.1:8081/",
            "private address 127.0.0.1: loopback",
        ),
        (
            "http://169.254.169.254/",
            "private address 169.254.169.254: link-local",
        ),
        (
            "http://[::ffff:10.0.0.1]/",
            "private address ::ffff:10.0.0.1: private (10.0.0.0/8) via IPv4-mapped",
        ),
    ] {
        let (code, out) = policy_test(&scene, url);
        assert_eq!(code, 1, "{url}: {out}");
        assert!(out.contains(&format!("deny: {reason}")), "{url}: {out}");
    }
}

#[test]
fn test_treats_a_numeric_form_as_the_address_it_spells() {
    let scene = Scene::new();
    scene.write("airlock.toml", POLICY);
    // 2130706433 is 127.0.0.1: on port 8080 the rule naming it applies, elsewhere nothing does.
    let (code, out) = policy_test(&scene, "http://2130706433:8080/");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("allow: allow[0] http://127.0.0.1:8080"),
        "{out}"
    );
    let (code, out) = policy_test(&scene, "http://0x7f.1:9090/");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("deny: private address 127.0.0.1: loopback"),
        "{out}"
    );
}

#[test]
fn test_with_default_deny_names_the_default() {
    let scene = Scene::new();
    scene.write(
        "airlock.toml",
        "[egress]\ndefault = \"deny\"\nallow = [\"https://*.example.com\"]\n",
    );
    let (code, out) = policy_test(&scene, "https://example.com/");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("deny: default deny"), "{out}");
}

//! The README's first command: `airlock demo` runs the bundled example end to end.

use crate::support::{Scene, repo_root};

#[test]
fn demo_runs_the_bundled_example_and_shows_the_denied_request() {
    let scene = Scene::new();
    let examples = repo_root().join("examples");
    let out = scene.airlock(&["demo", "--examples", examples.to_str().unwrap()]);
    out.expect_code(0);
    let stdout = out.stdout();
    for expected in [
        "secret injected by the gate: valid token",
        "create_resource",
        "HTTP 201",
        "read_cloud_metadata",
        "deny",
        "169.254.169.254",
        "audit chain intact: 4 records",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    let secrets = std::fs::read_to_string(examples.join("secrets.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&secrets).unwrap();
    let token = value["receiver-token"].as_str().unwrap();
    scene.assert_nowhere(&out, &[token]);
}

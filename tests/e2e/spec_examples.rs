//! Every JSON example of spec/webhook-node.md runs verbatim (URL pointed at a local server),
//! and the server receives exactly what the example describes.

use serde_json::{Value, json};

use crate::support::{FIXTURE_SERVER, Received, Receiver, Reply, Scene, node_run, repo_root};

const SECRETS: &str = r#"{"api-token": "canary-api-token-5b1e", "webhook-token": "canary-webhook-9d2f",
  "api-key": "canary-api-key-3c7a", "github-token": "canary-github-8e4b"}"#;

/// Runs a fixture against a fresh receiver and returns what it received and the `--json` run.
fn run_fixture(name: &str, inputs: Value, receiver: Receiver) -> (Vec<Received>, Value, Scene) {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/spec").join(name)).unwrap();
    let scene = Scene::new();
    let workflow = scene.write(
        "workflow.json",
        &text.replace(FIXTURE_SERVER, &receiver.url()),
    );
    let policy = scene.allow_policy(&receiver);
    let secrets = scene.write("secrets.json", SECRETS);
    let run = scene.airlock(&[
        "run",
        workflow.to_str().unwrap(),
        "--inputs",
        &inputs.to_string(),
        "--secrets",
        secrets.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--json",
    ]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["status"], "COMPLETED");
    assert_eq!(json["result"], "SUCCESS");
    (receiver.requests(), json, scene)
}

fn only(requests: &[Received]) -> &Received {
    assert_eq!(requests.len(), 1, "{requests:#?}");
    &requests[0]
}

#[test]
fn basic_example_posts_the_trigger_fields_as_json() {
    let inputs = json!({"service": "checkout", "version": "1.2.3", "environment": "prod"});
    let (requests, run, _) = run_fixture("basic.json", inputs, Receiver::start());
    let request = only(&requests);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/deploy");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"service": "checkout", "version": "1.2.3", "environment": "prod"})
    );
    let node = node_run(&run, "send-webhook");
    assert_eq!(node["result"], "SUCCESS");
    assert_eq!(node["output"]["response"]["status"], 200);
    assert_eq!(node["output"]["ok"], true);
}

#[test]
fn custom_headers_example_sends_headers_and_the_injected_secret() {
    let (requests, run, scene) = run_fixture(
        "custom-headers.json",
        json!({"data": "payload-1"}),
        Receiver::start(),
    );
    let request = only(&requests);
    assert_eq!(request.path, "/webhook");
    assert_eq!(request.header("x-custom-header"), Some("custom-value"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer canary-api-token-5b1e")
    );
    assert_eq!(request.json(), json!({"data": "payload-1"}));
    // The value went to the server and nowhere else.
    assert!(!run.to_string().contains("canary-api-token-5b1e"));
    assert!(!String::from_utf8_lossy(&scene.state_bytes()).contains("canary-api-token-5b1e"));
}

#[test]
fn using_secrets_example_puts_secrets_in_query_and_header() {
    let (requests, run, scene) = run_fixture("using-secrets.json", json!({}), Receiver::start());
    let request = only(&requests);
    assert_eq!(request.path, "/webhook");
    assert_eq!(request.query.as_deref(), Some("token=canary-webhook-9d2f"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer canary-api-key-3c7a")
    );
    assert_eq!(request.json(), json!({"message": "Hello from Port"}));
    let audit = scene.audit_records();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0]["url"],
        format!(
            "{}/webhook?token=[secret:webhook-token]",
            requests_base(&audit)
        )
    );
    let mut names: Vec<String> = audit[0]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["api-key", "webhook-token"]);
    for canary in ["canary-webhook-9d2f", "canary-api-key-3c7a"] {
        assert!(!run.to_string().contains(canary));
        assert!(!String::from_utf8_lossy(&scene.state_bytes()).contains(canary));
    }
}

/// `http://127.0.0.1:PORT` of the audited URL.
fn requests_base(audit: &[Value]) -> String {
    let url = audit[0]["url"].as_str().unwrap();
    url[..url.find("/webhook").unwrap()].to_string()
}

#[test]
fn synchronous_example_returns_the_response_to_later_nodes() {
    let receiver = Receiver::with_routes(|r| {
        Reply::json(201, json!({"id": "res_42", "name": r.json()["name"]}))
    });
    let (requests, run, _) = run_fixture("synchronous.json", json!({"name": "db"}), receiver);
    assert_eq!(only(&requests).json(), json!({"name": "db"}));
    let output = &node_run(&run, "create_resource")["output"];
    assert_eq!(output["id"], "res_42");
    assert_eq!(output["response"]["status"], 201);
    assert_eq!(output["response"]["data"]["id"], "res_42");
    assert_eq!(run["outputs"]["create_resource"]["id"], "res_42");
}

#[test]
fn reference_example_flows_outputs_into_the_next_node_keeping_types() {
    let receiver = Receiver::with_routes(|r| match r.path.as_str() {
        "/resources" => Reply::json(201, json!({"id": 4711, "name": "db"})),
        _ => Reply::json(200, json!({"used": true})),
    });
    let (requests, _, _) = run_fixture("reference-response.json", json!({"name": "db"}), receiver);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/resources/use");
    // A whole-template string keeps the JSON type: the number stays a number.
    assert_eq!(requests[1].json(), json!({"resourceId": 4711}));
}

#[test]
fn slack_example_renders_templates_inside_nested_arrays() {
    let inputs = json!({"service": "api", "environment": "staging"});
    let (requests, _, _) = run_fixture("slack-notification.json", inputs, Receiver::start());
    let body = only(&requests).json();
    assert_eq!(only(&requests).path, "/services/xxx/yyy/zzz");
    assert_eq!(body["text"], "Deployment started");
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "*api* is being deployed to *staging*"
    );
    assert_eq!(body["blocks"][0]["type"], "section");
}

#[test]
fn github_example_templates_the_url_path() {
    let inputs = json!({"repo": "acme/shop", "environment": "prod", "version": "9.9.9"});
    let (requests, _, _) = run_fixture("github-workflow.json", inputs, Receiver::start());
    let request = only(&requests);
    assert_eq!(
        request.path,
        "/repos/acme/shop/actions/workflows/deploy.yml/dispatches"
    );
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.github.v3+json")
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer canary-github-8e4b")
    );
    assert_eq!(
        request.json(),
        json!({"ref": "main", "inputs": {"environment": "prod", "version": "9.9.9"}})
    );
}

#[test]
fn port_api_example_renders_the_go_style_date() {
    let inputs = json!({"service": "api", "environment": "prod", "version": "3.0.0"});
    let (requests, _, _) = run_fixture("port-api.json", inputs, Receiver::start());
    let body = only(&requests).json();
    assert_eq!(only(&requests).path, "/v1/blueprints/deployment/entities");
    assert_eq!(body["identifier"], "api_prod");
    assert_eq!(body["title"], "api (prod)");
    assert_eq!(body["relations"]["service"], "api");
    let deployed_at = body["properties"]["deployedAt"].as_str().unwrap();
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(re.is_match(deployed_at), "{deployed_at}");
    assert!(deployed_at.starts_with(&chrono::Utc::now().format("%Y-").to_string()));
}

//! `kill -9` of `airlock serve` with 50 runs under way (20 waiting for callbacks, 30 with a
//! request in flight to a slow receiver), then a restart on the same state dir: every run ends
//! as the rules say, nothing is lost or sent twice beyond the idempotent re-sends, and the audit
//! log verifies.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::server::{Server, http};
use crate::support::{Received, Receiver, Reply, Scene, chain_workflow, node_run};

const WAITING: usize = 20;
const IDEMPOTENT: usize = 15;
const NOT_IDEMPOTENT: usize = 15;

/// A receiver that holds every request until released (one thread per connection), and
/// counts what it got by method and path.
struct SlowReceiver {
    address: String,
    seen: Arc<Mutex<HashMap<(String, String), usize>>>,
    released: Arc<AtomicBool>,
}

impl SlowReceiver {
    fn start() -> SlowReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let released = Arc::new(AtomicBool::new(false));
        let (counts, gate) = (seen.clone(), released.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counts, gate) = (counts.clone(), gate.clone());
                std::thread::spawn(move || serve_slowly(stream, &counts, &gate));
            }
        });
        SlowReceiver {
            address,
            seen,
            released,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn count(&self, method: &str, path: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.get(&(method.to_string(), path.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }
}

fn serve_slowly(
    stream: TcpStream,
    seen: &Mutex<HashMap<(String, String), usize>>,
    released: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *seen.lock().unwrap().entry((method, path)).or_default() += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !released.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let body = r#"{"ok": true}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if (&stream).write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn webhook(id: &str, url: String, method: &str, body: Option<Value>) -> Value {
    let mut config = json!({"type": "WEBHOOK", "url": url, "method": method});
    if let Some(body) = body {
        config["body"] = body;
    }
    json!({"identifier": id, "config": config})
}

fn start_runs(server: &Server, workflow: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            let body = json!({"inputs": {"n": n}}).to_string();
            let answer = server.admin(
                "POST",
                &format!("/v1/workflows/{workflow}/runs"),
                Some(&body),
            );
            assert_eq!(answer.status, 201, "{answer:?}");
            answer.body["workflowRun"]["identifier"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn run_of(server: &Server, wfr: &str) -> Value {
    let answer = server.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["workflowRun"].clone()
}

fn all_completed(server: &Server, runs: &[String]) -> bool {
    runs.iter()
        .all(|wfr| run_of(server, wfr)["status"] == "COMPLETED")
}

/// No node appears twice in a run, and no node run identifier twice anywhere.
fn assert_no_duplicates(runs: &[Value]) {
    let mut identifiers = HashSet::new();
    for run in runs {
        let mut nodes = HashSet::new();
        for node_run in run["nodeRuns"].as_array().unwrap() {
            assert!(
                nodes.insert(node_run["node"].as_str().unwrap().to_string()),
                "{run:#}"
            );
            assert!(identifiers.insert(node_run["identifier"].as_str().unwrap().to_string()));
        }
    }
}

#[test]
fn kill_9_loses_and_duplicates_nothing_and_callbacks_complete_after_the_restart() {
    let scene = Scene::new();
    let service = Receiver::with_routes(|r| match r.path.as_str() {
        "/build" => Reply::json(202, json!({"accepted": true})),
        _ => Reply::json(200, json!({"ok": true})),
    });
    let slow = SlowReceiver::start();
    let policy = scene.write(
        "airlock.toml",
        &format!(
            "[egress]\nallow = [\"{}\", \"{}\"]\n",
            service.url(),
            slow.url()
        ),
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["--policy", policy.to_str().unwrap(), "--listen", &listen];
    let mut server = Server::start(&scene, &args);

    let workflows = [
        chain_workflow(
            "waits",
            vec![
                json!({"identifier": "build", "config": {"type": "WEBHOOK",
                    "url": format!("{}/build", service.url()), "synchronized": false,
                    "body": {"n": "{{ .outputs.trigger.n }}"}}}),
                webhook(
                    "notify",
                    format!("{}/notify", service.url()),
                    "POST",
                    Some(json!({"artifact": "{{ .outputs.build.artifact }}"})),
                ),
            ],
        ),
        chain_workflow(
            "reads",
            vec![
                webhook(
                    "fetch",
                    format!("{}/get/{{{{ .outputs.trigger.n }}}}", slow.url()),
                    "GET",
                    None,
                ),
                webhook(
                    "after",
                    format!("{}/after-get", service.url()),
                    "POST",
                    None,
                ),
            ],
        ),
        chain_workflow(
            "writes",
            vec![
                webhook(
                    "send",
                    format!("{}/post/{{{{ .outputs.trigger.n }}}}", slow.url()),
                    "POST",
                    Some(json!({"n": "{{ .outputs.trigger.n }}"})),
                ),
                webhook(
                    "after",
                    format!("{}/after-post", service.url()),
                    "POST",
                    None,
                ),
            ],
        ),
    ];
    for workflow in &workflows {
        assert_eq!(
            server.admin("POST", "/v1/workflows", Some(workflow)).status,
            201
        );
    }
    let waits = start_runs(&server, "waits", WAITING);
    let reads = start_runs(&server, "reads", IDEMPOTENT);
    let writes = start_runs(&server, "writes", NOT_IDEMPOTENT);
    let builds = || -> Vec<Received> {
        service
            .requests()
            .into_iter()
            .filter(|r| r.path == "/build")
            .collect()
    };
    wait_until("every request is out", || {
        builds().len() == WAITING && slow.total() == IDEMPOTENT + NOT_IDEMPOTENT
    });
    // The 202s have been answered and committed as waiting by now.
    std::thread::sleep(Duration::from_millis(500));

    server.kill9();
    slow.released.store(true, Ordering::SeqCst);
    let server = Server::start(&scene, &args);

    // Cut off mid-request: GET is sent again (one more attempt) and goes on; POST is not.
    let cut: Vec<String> = reads.iter().chain(&writes).cloned().collect();
    wait_until("the interrupted runs end", || all_completed(&server, &cut));
    for (n, wfr) in reads.iter().enumerate() {
        let run = run_of(&server, wfr);
        assert_eq!(run["result"], "SUCCESS", "{run:#}");
        assert_eq!(node_run(&run, "fetch")["attempts"], 2, "{run:#}");
        assert_eq!(slow.count("GET", &format!("/get/{n}")), 2);
    }
    for (n, wfr) in writes.iter().enumerate() {
        let run = run_of(&server, wfr);
        assert_eq!(run["result"], "FAILED", "{run:#}");
        let send = node_run(&run, "send");
        let error = send["error"].as_str().unwrap();
        assert!(
            error.contains("interrupted") && error.contains("POST is not idempotent"),
            "{error}"
        );
        assert_eq!(send["attempts"], 1);
        assert_eq!(slow.count("POST", &format!("/post/{n}")), 1);
    }
    let after = |path: &str| service.requests().iter().filter(|r| r.path == path).count();
    assert_eq!(after("/after-get"), IDEMPOTENT);
    assert_eq!(after("/after-post"), 0);

    // Still waiting; the callbacks sent now (with the tokens sent before the crash) complete them.
    for wfr in &waits {
        assert_eq!(run_of(&server, wfr)["status"], "IN_PROGRESS");
    }
    let address = server.base.trim_start_matches("http://").to_string();
    for request in builds() {
        let url = request.header("Airlock-Callback-Url").unwrap();
        let path = &url[url.find("/v1/").unwrap()..];
        assert!(url.starts_with(&format!("http://{listen}/")), "{url}");
        let token = request.header("Airlock-Callback-Token").unwrap();
        let n = request.json()["n"].clone();
        let body = json!({"status": "COMPLETED", "result": "SUCCESS",
                          "output": {"artifact": format!("img-{n}")}});
        let answer = http(
            &address,
            "PATCH",
            path,
            Some(token),
            Some(&body.to_string()),
        );
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    wait_until("the waiting runs end", || all_completed(&server, &waits));
    for wfr in &waits {
        let run = run_of(&server, wfr);
        assert_eq!(run["result"], "SUCCESS", "{run:#}");
        let artifact = node_run(&run, "build")["output"]["artifact"].clone();
        assert!(artifact.as_str().unwrap().starts_with("img-"), "{run:#}");
    }
    let notified: HashSet<String> = service
        .requests()
        .iter()
        .filter(|r| r.path == "/notify")
        .map(|r| r.json()["artifact"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(notified.len(), WAITING, "one notify per run: {notified:?}");
    assert_eq!(builds().len(), WAITING, "no build was sent twice");

    let listing = server.admin("GET", "/v1/workflows/runs?limit=1000", None);
    let runs = listing.body["workflowRuns"].as_array().unwrap().clone();
    assert_eq!(runs.len(), WAITING + IDEMPOTENT + NOT_IDEMPOTENT);
    assert_no_duplicates(&runs);
    scene.airlock(&["audit", "verify"]).expect_code(0);
}

//! The real `airlock serve` in a child process, and a small HTTP/1.1 client to talk to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Scene;

pub const ADMIN_TOKEN: &str = "test-admin-token-5d1f";

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

/// A response: status and body (JSON when it parses, else the text as a JSON string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Server {
    /// Starts `airlock serve --listen 127.0.0.1:0 EXTRA…` (EXTRA may name its own `--listen`) on
    /// the scene's state dir with the admin token [`ADMIN_TOKEN`]; returns once it has printed
    /// its address.
    pub fn start(scene: &Scene, extra: &[&str]) -> Server {
        Server::start_with_env(scene, extra, &[("AIRLOCK_API_TOKEN", ADMIN_TOKEN)])
    }

    pub fn start_with_env(scene: &Scene, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(scene.path("serve.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command.arg("serve");
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(extra)
            .env("AIRLOCK_STATE_DIR", scene.state_dir())
            .env_remove("AIRLOCK_API_TOKEN")
            .current_dir(scene.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let base = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(scene.path("serve.log")).unwrap_or_default();
                panic!("serve did not print its address: {line:?}\n{log}")
            })
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stdout.read_to_string(&mut sink);
        });
        Server { child, base }
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.request(method, path, Some(ADMIN_TOKEN), body)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let address = self.base.trim_start_matches("http://");
        http(address, method, path, token, body)
    }

    /// Polls `GET /v1/workflows/runs/{wfr}` until `done` holds for the run (10 s at most).
    pub fn wait_for_run(&self, wfr: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.admin("GET", &format!("/v1/workflows/runs/{wfr}"), None);
            assert_eq!(answer.status, 200, "{answer:?}");
            let run = answer.body["workflowRun"].clone();
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {wfr} never got there: {run:#}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Answer {
        status,
        body: json,
        text,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

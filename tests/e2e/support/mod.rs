//! Running the real `airlock` binary in a scratch directory.

pub mod canary;
pub mod receiver;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use receiver::{Received, Receiver, Reply};

/// The fixtures' placeholder server address, replaced by a test receiver's real one.
pub const FIXTURE_SERVER: &str = "http://127.0.0.1:18080";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A scratch directory holding a workflow, policy, secrets and the state dir of one test.
pub struct Scene {
    pub dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Scene {
    pub fn new() -> Scene {
        Scene {
            dir: tempfile::tempdir().unwrap(),
            envs: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A policy allowing exactly this receiver (loopback must be named explicitly).
    pub fn allow_policy(&self, receiver: &Receiver) -> PathBuf {
        self.write_allow_policy(&[receiver])
    }

    /// A policy allowing exactly these receivers; its path as a command-line argument.
    pub fn policy_allowing(&self, receivers: &[&Receiver]) -> String {
        let path = self.write_allow_policy(receivers);
        path.to_str().expect("a UTF-8 temp path").to_string()
    }

    fn write_allow_policy(&self, receivers: &[&Receiver]) -> PathBuf {
        let allow: Vec<String> = receivers
            .iter()
            .map(|r| format!("\"{}\"", r.url()))
            .collect();
        self.write(
            "airlock.toml",
            &format!("[egress]\nallow = [{}]\n", allow.join(", ")),
        )
    }

    pub fn env(&mut self, name: &str, value: &str) {
        self.envs.push((name.into(), value.into()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command
            .args(args)
            .env("AIRLOCK_STATE_DIR", self.state_dir())
            .current_dir(self.dir.path());
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        command
    }

    /// Runs `airlock ARGS` with this scene's state dir.
    pub fn airlock(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// Starts `airlock ARGS` with this scene's state dir, its output captured, without waiting.
    pub fn airlock_child(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// [`Scene::airlock`], also returning the process's peak resident memory in bytes, as last
    /// seen (`VmHWM`, sampled every 10 ms while it runs).
    pub fn airlock_peak_rss(&self, args: &[&str]) -> (Run, u64) {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = PathBuf::from(format!("/proc/{}/status", child.id()));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut peak = 0;
                while !done.load(Ordering::SeqCst) {
                    if let Some(kib) = std::fs::read_to_string(&status)
                        .ok()
                        .and_then(|text| vm_hwm_kib(&text))
                    {
                        peak = peak.max(kib);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                peak * 1024
            })
        };
        let output = child.wait_with_output().unwrap();
        done.store(true, Ordering::SeqCst);
        (Run(output), sampler.join().unwrap())
    }

    /// Everything under the state dir, as bytes (to search for leaked secrets).
    pub fn state_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        collect_files(&self.state_dir(), &mut all);
        all
    }

    /// `airlock run WORKFLOW [--policy P] EXTRA… --json`, writing the workflow (and the policy
    /// text, when given) into the scene first.
    pub fn run_json(&self, workflow: &str, policy: Option<&str>, extra: &[&str]) -> Run {
        let wf = self.write("wf.json", workflow);
        let mut args = vec!["run".to_string(), wf.to_str().unwrap().to_string()];
        if let Some(policy) = policy {
            let path = self.write("airlock.toml", policy);
            args.extend(["--policy".to_string(), path.to_str().unwrap().to_string()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push("--json".to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.airlock(&args)
    }

    /// The canary sweep (`assert_no_leak`) for each of `forms` (a secret, or a form of it).
    pub fn assert_nowhere(&self, out: &Run, forms: &[&str]) {
        for form in forms {
            self.assert_no_leak(out, form);
        }
    }

    /// The canary sweep: `value` appears in none of the encodings of `canary::leak_forms` in the
    /// run's stdout or stderr or in any file under the state dir (audit log, run store, cache).
    pub fn assert_no_leak(&self, out: &Run, value: &str) {
        let state = String::from_utf8_lossy(&self.state_bytes()).into_owned();
        for (place, text) in [
            ("stdout", out.stdout()),
            ("stderr", out.stderr()),
            ("the state dir", state),
        ] {
            if let Some(form) = canary::find_leak(&text, value) {
                panic!("the secret leaked into {place} as {form:?}");
            }
        }
    }

    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.state_dir().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn collect_files(dir: &Path, into: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, into);
        } else if let Ok(bytes) = std::fs::read(&path) {
            into.extend_from_slice(&bytes);
        }
    }
}

/// The finished process.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// The `--json` run object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// A workflow `identifier`: a SELF_SERVE_TRIGGER `start` followed by `nodes`, each connected
/// to the next.
pub fn chain_workflow(identifier: &str, nodes: Vec<serde_json::Value>) -> String {
    let mut all =
        vec![serde_json::json!({"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}})];
    all.extend(nodes);
    let connections: Vec<serde_json::Value> = all
        .windows(2)
        .map(|pair| {
            let (from, to) = (&pair[0]["identifier"], &pair[1]["identifier"]);
            serde_json::json!({"sourceIdentifier": from, "targetIdentifier": to})
        })
        .collect();
    serde_json::json!({"identifier": identifier, "nodes": all, "connections": connections})
        .to_string()
}

/// The node run of `node` in a `--json` run.
pub fn node_run<'a>(run: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    run["nodeRuns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node run for {node} in {run:#}"))
}

//! Test node: a hostile or broken node, one behaviour per `config.mode`. The host must stop
//! each one within its limits, failing only this node run with a message naming the cause.
//! `escape` instead reports what WASI let it see (it must see nothing), so tests can assert it.

use std::hint::black_box;
use std::time::Duration;

use airlock_guest::{Context, Node, Request, config_str, export_node};
use serde_json::{Value, json};

struct Hostile;

impl Node for Hostile {
    fn run(_ctx: Context, config: Value) -> Result<Value, String> {
        match config_str(&config, "mode")? {
            "loop" => spin(),
            "memory" => hoard(),
            "recursion" => Ok(json!(recurse(u64::MAX))),
            "panic" => panic!("hostile node panics on purpose"),
            "output" => Ok(json!("x".repeat(100 << 20))),
            "logs" => flood_logs(),
            "requests" => send_many(&config),
            "long-urls" => send_long_urls(&config),
            "huge-error" => Err("e".repeat(count(&config, "bytes", 6 << 20))),
            "sleep" => {
                // Waits in the host (wasi clocks), using no CPU: only the wall-time limit stops it.
                std::thread::sleep(Duration::from_secs(3600));
                Ok(json!("woke"))
            }
            "escape" => Ok(escape(&config)),
            "remember" => Ok(remember(&config)),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

/// Reports what an earlier node run left in this instance's memory (a fresh instance must show
/// nothing), then leaves `config.marker` behind: in a static (the memory image's pages) and in
/// freshly grown heap pages, which the allocator trusts to be zero without clearing them.
fn remember(config: &Value) -> Value {
    static LEFT: std::sync::Mutex<[u8; 64]> = std::sync::Mutex::new([0; 64]);
    const GROWN: usize = 8 << 20;
    let marker = config["marker"].as_str().unwrap_or("marker").as_bytes();
    let mut left = LEFT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let in_static = String::from_utf8_lossy(&left[..])
        .trim_end_matches('\0')
        .to_string();
    let len = marker.len().min(left.len());
    left[..len].copy_from_slice(&marker[..len]);
    let mut heap = vec![0u8; GROWN];
    let nonzero_in_heap = heap.iter().filter(|b| **b != 0).count();
    heap.fill(0xAB);
    std::mem::forget(black_box(heap));
    json!({"inStatic": in_static, "nonzeroInHeap": nonzero_in_heap})
}

fn spin() -> Result<Value, String> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn hoard() -> Result<Value, String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Filled, so the pages are really used.
        hoard.push(black_box(vec![1u8; 1 << 20]));
    }
}

/// Small frames, kept in wasm locals: the wasm stack overflows, not the shadow stack in
/// linear memory.
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    black_box(recurse(black_box(depth - 1))) + 1
}

fn flood_logs() -> Result<Value, String> {
    let line = "flood ".repeat(10_000);
    loop {
        airlock_guest::info(&line);
    }
}

/// Sends config.count (default 10,000) requests to config.url, ignoring every answer.
fn send_many(config: &Value) -> Result<Value, String> {
    let url = config_str(config, "url")?;
    let count = config
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(10_000);
    let mut answered = 0;
    for _ in 0..count {
        if Request::get(url).send().is_ok() {
            answered += 1;
        }
    }
    Ok(json!({ "answered": answered }))
}

fn count(config: &Value, field: &str, default: usize) -> usize {
    config
        .get(field)
        .and_then(Value::as_u64)
        .map_or(default, |n| n as usize)
}

/// Sends config.count (default 100) requests to config.url with config.bytes (default 1 MB) of
/// query appended; reports the first refusal.
fn send_long_urls(config: &Value) -> Result<Value, String> {
    let url = format!(
        "{}?q={}",
        config_str(config, "url")?,
        "x".repeat(count(config, "bytes", 1 << 20))
    );
    let mut first_error = None;
    for _ in 0..count(config, "count", 100) {
        if let Err(err) = Request::get(url.clone()).send() {
            first_error.get_or_insert_with(|| err.to_string());
        }
    }
    Ok(json!({ "firstError": first_error }))
}

/// Tries to reach files, the environment and sockets through WASI and reports what happened.
fn escape(config: &Value) -> Value {
    let outcome = |result: std::io::Result<String>| match result {
        Ok(seen) => json!({ "ok": seen }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let passwd = outcome(std::fs::read_to_string("/etc/passwd"));
    let root = outcome(std::fs::read_dir("/").map(|dir| format!("{} entries", dir.count())));
    let cwd = outcome(std::fs::read_dir(".").map(|dir| format!("{} entries", dir.count())));
    let written = outcome(std::fs::write("/tmp/airlock-escape", b"x").map(|()| "written".into()));
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let socket = match config.get("addr").and_then(Value::as_str) {
        Some(addr) => outcome(
            std::net::TcpStream::connect(addr).map(|s| format!("connected to {:?}", s.peer_addr())),
        ),
        None => json!({ "error": "config.addr not given" }),
    };
    json!({
        "passwd": passwd,
        "rootDir": root,
        "cwd": cwd,
        "write": written,
        "env": env,
        "args": args,
        "socket": socket,
    })
}

export_node!(Hostile);

//! Nodes in Rust, Python, JavaScript and C: what one node run costs in the sandbox with a fresh
//! instance, and what the first compile of each component costs against a cached load.
//!
//! Each language's node is the smallest useful one (it returns its config), scaffolded by
//! `airlock node new` and built by `airlock node build` with the language's real toolchain, so
//! the figures are those of the component an author gets. A node run's sandbox time is the p50
//! of a workflow run with the node minus the p50 of the same workflow without it, measured in
//! alternating batches (the engine's own per-run work cancels out).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::authoring::{self, Language};
use airlock::config::{NodeManifest, PolicyFile};
use airlock::engine::{MANIFEST_FILE, Runtime, StateDir};
use airlock::sandbox::{Sandbox, Slots};
use airlock::secrets::SecretStore;
use airlock::workflow::Workflow;
use anyhow::Context as _;
use serde_json::json;

use crate::sides::runtime_op;

const NODE_TYPE: &str = "BENCH_ECHO";

/// What one language's node costs.
pub struct LanguageCost {
    pub size: usize,
    /// Workflow runs with the node, and the same workflow without it.
    pub with_node: Vec<Duration>,
    pub without_node: Vec<Duration>,
    pub first_compile: Vec<Duration>,
    pub cached_load: Vec<Duration>,
}

/// The node each language's scaffold is rewritten to: it returns its config.
fn echo_source(language: Language) -> (&'static str, &'static str) {
    match language {
        Language::Rust => (
            "src/lib.rs",
            "use airlock_guest::{Context, Node, export_node};\n\
             use serde_json::Value;\n\
             struct Echo;\n\
             impl Node for Echo {\n    \
                 fn run(_ctx: Context, config: Value) -> Result<Value, String> { Ok(config) }\n\
             }\n\
             export_node!(Echo);\n",
        ),
        Language::Python => (
            "app.py",
            "import airlock_node as airlock\n\
             from airlock_node import WitWorld  # noqa: F401\n\n\n\
             @airlock.node\n\
             def run(ctx, config):\n    return config\n",
        ),
        Language::JavaScript => (
            "app.js",
            "import { node } from \"./airlock.js\";\n\
             export const run = node((ctx, config) => config);\n",
        ),
        Language::C => (
            "node.c",
            "#include \"airlock.h\"\n\
             char *node_run(const airlock_context *ctx, airlock_json config, airlock_error *error) {\n  \
               (void)ctx; (void)error;\n  \
               airlock_buf out = {0};\n  \
               airlock_buf_append(&out, config.text, config.len);\n  \
               return out.data;\n\
             }\n",
        ),
    }
}

/// Scaffolds and builds the echo node for `language` under `root`; returns its directory.
pub fn build_echo(root: &Path, language: Language) -> anyhow::Result<PathBuf> {
    let dir = root.join(format!("{}-echo", language.to_string().to_lowercase()));
    authoring::new_project(&dir, language, Some(NODE_TYPE))?;
    let (file, source) = echo_source(language);
    std::fs::write(dir.join(file), source)?;
    authoring::build(&dir).with_context(|| format!("building the {language} echo node"))?;
    Ok(dir)
}

/// Measures one language's node (built in `dir`).
pub async fn measure(
    dir: &Path,
    latency_samples: usize,
    latency_batch: usize,
    compile_rounds: usize,
) -> anyhow::Result<LanguageCost> {
    let manifest = NodeManifest::load(&dir.join(MANIFEST_FILE))?;
    let bytes = std::fs::read(&manifest.component)?;
    let (first_compile, cached_load) = compile_vs_cached(&bytes, compile_rounds)?;

    let state = tempfile::tempdir()?;
    let mut runtime = Runtime::open(
        &StateDir::new(state.path()),
        PolicyFile::parse("", "policy")?,
        SecretStore::empty(),
        Slots::SERVER,
    )?;
    runtime.add_custom_nodes(vec![manifest])?;
    let runtime = Arc::new(runtime);
    let with_node = runtime_op(&runtime, &workflow(true)?);
    let without_node = runtime_op(&runtime, &workflow(false)?);
    let (with_node, without_node) =
        crate::measure::latency(&with_node, &without_node, latency_samples, latency_batch).await?;
    Ok(LanguageCost {
        size: bytes.len(),
        with_node,
        without_node,
        first_compile,
        cached_load,
    })
}

/// A trigger, followed (`with_node`) by one echo node.
fn workflow(with_node: bool) -> anyhow::Result<Arc<Workflow>> {
    let mut nodes = vec![json!({"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER"}})];
    let mut connections = Vec::new();
    if with_node {
        nodes.push(json!({"identifier": "echo", "config": {"type": NODE_TYPE, "n": 1}}));
        connections.push(json!({"sourceIdentifier": "start", "targetIdentifier": "echo"}));
    }
    let text = json!({"identifier": "bench", "nodes": nodes, "connections": connections});
    Ok(Arc::new(Workflow::from_json(
        &text.to_string(),
        "bench workflow",
        &[NODE_TYPE.to_string()],
    )?))
}

/// Durations of `rounds` first compiles (empty cache) and cached loads of `bytes`, each in a
/// fresh sandbox whose own setup is not counted.
fn compile_vs_cached(
    bytes: &[u8],
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let warm = tempfile::tempdir()?;
    load(warm.path(), bytes)?;
    let (mut cold_times, mut warm_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let cold = tempfile::tempdir()?;
        cold_times.push(load(cold.path(), bytes)?);
        warm_times.push(load(warm.path(), bytes)?);
    }
    Ok((cold_times, warm_times))
}

fn load(cache: &Path, bytes: &[u8]) -> anyhow::Result<Duration> {
    let sandbox = Sandbox::new(cache, Slots::new(1))?;
    let started = Instant::now();
    sandbox.load("bench node", bytes)?;
    Ok(started.elapsed())
}

/// A language's goal for the sandbox time of one node run.
pub fn goal(language: Language) -> Duration {
    match language {
        Language::Python => Duration::from_micros(1_200),
        Language::JavaScript => Duration::from_micros(800),
        Language::Rust | Language::C => Duration::from_micros(100),
    }
}

//! Command-line arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "Run workflow files whose nodes are sandboxed WebAssembly components, behind an egress gate"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a workflow file once and print its node results.
    Run(RunArgs),
    /// Check a workflow file (and a policy) without running anything.
    Validate(ValidateArgs),
    /// Show the egress audit log, or verify its hash chain.
    Audit(AuditArgs),
    /// List stored runs, or show one.
    Runs(RunsArgs),
    /// Explain a policy file, or test a URL against it.
    Policy(PolicyArgs),
    /// Write, build and inspect node components (Rust, Python, JavaScript, C).
    Node(NodeArgs),
    /// Run the bundled example against a local receiver this command starts, then show the audit.
    Demo(DemoArgs),
    /// Serve Port's workflow API: stored workflows, durable runs, async callbacks.
    Serve(ServeArgs),
}

/// What `run` and `validate` both take: the workflow and what it runs against.
#[derive(Args)]
pub struct WorkflowArgs {
    /// The workflow file (Port's Workflows JSON).
    pub workflow: PathBuf,
    /// The egress policy (TOML). Without it, any public address is allowed and nothing private.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Custom nodes: a directory with a node.toml, or whose sub-directories each hold one.
    #[arg(long = "nodes", value_name = "DIR")]
    pub nodes: Vec<PathBuf>,
    /// Where audit log, run store and compile cache live.
    #[arg(long, env = "AIRLOCK_STATE_DIR", default_value = ".airlock")]
    pub state_dir: PathBuf,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: WorkflowArgs,
    /// The trigger's payload: inline JSON, or @FILE.
    #[arg(long)]
    pub inputs: Option<String>,
    /// Which trigger fires, when the workflow has several.
    #[arg(long)]
    pub trigger: Option<String>,
    /// Secrets: a JSON object of name -> value (AIRLOCK_SECRET_<NAME> variables also count).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Print the run as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Where asynchronous webhooks' callbacks are taken (their Airlock-Callback-Url), when the
    /// workflow has any; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

/// Checks the workflow (and policy, and custom node components) without running anything.
#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub target: WorkflowArgs,
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    #[arg(long)]
    pub run: Option<String>,
    #[arg(long)]
    pub node: Option<String>,
    /// allow or deny
    #[arg(long)]
    pub decision: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(
        long,
        env = "AIRLOCK_STATE_DIR",
        default_value = ".airlock",
        global = true
    )]
    pub state_dir: PathBuf,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check the hash chain: exit 0 if intact, 1 naming the first broken record.
    Verify,
}

#[derive(Args)]
pub struct RunsArgs {
    /// Show this run in full (JSON).
    pub run: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, env = "AIRLOCK_STATE_DIR", default_value = ".airlock")]
    pub state_dir: PathBuf,
}

#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Subcommand)]
pub enum PolicyAction {
    /// Check a policy file and explain what it allows.
    Check { file: PathBuf },
    /// Say whether a URL would be allowed, and which rule decides.
    Test { file: PathBuf, url: String },
}

#[derive(Args)]
pub struct DemoArgs {
    /// The examples folder (workflow, policy, inputs, secrets).
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    #[arg(long, env = "AIRLOCK_STATE_DIR", default_value = ".airlock")]
    pub state_dir: PathBuf,
}

#[derive(Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub action: NodeAction,
}

#[derive(Subcommand)]
pub enum NodeAction {
    /// Create a node project: the sample node, its language's helper, the WIT and node.toml.
    New {
        /// A new (or empty) directory; its name gives the default node type (my-node → MY_NODE).
        dir: PathBuf,
        /// rust, python, js or c
        #[arg(long)]
        lang: crate::authoring::Language,
        /// The config type the node serves (UPPER_SNAKE).
        #[arg(long = "type", value_name = "TYPE")]
        node_type: Option<String>,
    },
    /// Build a node project with its language's toolchain, then compile and cache the component.
    Build {
        dir: PathBuf,
        #[arg(long, env = "AIRLOCK_STATE_DIR", default_value = ".airlock")]
        state_dir: PathBuf,
    },
    /// Show a component's world, imports, exports, size and digest, and whether it can run here.
    Inspect {
        file: PathBuf,
        #[arg(long, env = "AIRLOCK_STATE_DIR", default_value = ".airlock")]
        state_dir: PathBuf,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The base URL others reach this server at (for callback URLs); default http://LISTEN.
    #[arg(long)]
    pub public_url: Option<url::Url>,
    /// The egress policy (TOML). Without it, any public address is allowed and nothing private.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Secrets: a JSON object of name -> value (AIRLOCK_SECRET_<NAME> variables also count).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Custom nodes: a directory with a node.toml, or whose sub-directories each hold one.
    #[arg(long = "nodes", value_name = "DIR")]
    pub nodes: Vec<PathBuf>,
    /// Where the store, audit log, compile cache and generated admin token live.
    #[arg(long, env = "AIRLOCK_STATE_DIR", default_value = ".airlock")]
    pub state_dir: PathBuf,
}

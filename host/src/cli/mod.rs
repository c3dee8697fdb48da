//! The `airlock` command line. Exit codes: 0 the run succeeded (or the check passed), 1 the run
//! failed (or the check found a problem), 2 the input was invalid and nothing was sent.

mod args;
mod audit_cmd;
mod demo;
pub(crate) mod inputs;
mod node_cmd;
mod policy_cmd;
mod print;
mod run_cmd;
mod serve_cmd;
mod setup;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// An error that ends the command, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Bad workflow, policy, secrets, inputs or arguments: nothing was sent.
    Invalid(anyhow::Error),
    /// Something went wrong while running (store, engine setup, audit).
    Failed(anyhow::Error),
}

impl Exit {
    fn code(&self) -> u8 {
        match self {
            Exit::Invalid(_) => 2,
            Exit::Failed(_) => 1,
        }
    }
}

pub(crate) fn invalid(e: impl Into<anyhow::Error>) -> Exit {
    Exit::Invalid(e.into())
}

pub(crate) fn failed(e: impl Into<anyhow::Error>) -> Exit {
    Exit::Failed(e.into())
}

/// The error and its causes on one line. Our error types already print their source in their
/// own message, so a cause whose text is already shown is not repeated.
fn message(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_cmd::run(args).await,
            Command::Validate(args) => run_cmd::validate(args),
            Command::Audit(args) => audit_cmd::audit(args),
            Command::Runs(args) => run_cmd::runs(args),
            Command::Policy(args) => policy_cmd::policy(args).await,
            Command::Demo(args) => demo::demo(args).await,
            Command::Node(args) => node_cmd::node(args),
            Command::Serve(args) => serve_cmd::serve(args).await,
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(exit) => {
            let (Exit::Invalid(e) | Exit::Failed(e)) = &exit;
            eprintln!("error: {}", message(e));
            ExitCode::from(exit.code())
        }
    }
}

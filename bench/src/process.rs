//! `airlock run` as a process (compile cache warm) vs `curl` sending the same request.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::sides::{policy_text, workflow_json};

/// Wall times of `runs` `airlock run` and `runs` curl processes, alternating.
pub fn wall_times(
    airlock: &Path,
    url: &str,
    port: u16,
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let dir = tempfile::tempdir()?;
    let workflow = dir.path().join("workflow.json");
    let policy = dir.path().join("airlock.toml");
    std::fs::write(&workflow, workflow_json(url, 1))?;
    std::fs::write(&policy, policy_text(port))?;
    let mut airlock_run = Command::new(airlock);
    airlock_run
        .arg("run")
        .arg(&workflow)
        .arg("--policy")
        .arg(&policy)
        .env("AIRLOCK_STATE_DIR", dir.path().join("state"));
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "-o", "/dev/null", "-X", "POST"])
        .args([
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"n":1}"#,
        ])
        .arg(url);
    // The first run fills the compile cache; the measurement is of warm runs.
    time(&mut airlock_run).context("the warm-up `airlock run`")?;
    time(&mut curl).context("the warm-up curl")?;
    let (mut airlock_times, mut curl_times) = (Vec::new(), Vec::new());
    for round in 0..runs {
        if round % 2 == 0 {
            airlock_times.push(time(&mut airlock_run)?);
            curl_times.push(time(&mut curl)?);
        } else {
            curl_times.push(time(&mut curl)?);
            airlock_times.push(time(&mut airlock_run)?);
        }
    }
    Ok((airlock_times, curl_times))
}

fn time(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let elapsed = started.elapsed();
    ensure!(
        output.status.success(),
        "{:?} failed ({}): {}",
        command.get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(elapsed)
}

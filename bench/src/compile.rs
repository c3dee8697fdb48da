//! First compile vs cached load of the built-in WEBHOOK node: `Sandbox::load` (through the
//! registry) on an empty compile cache vs a warm one, each with a fresh engine.

use std::time::{Duration, Instant};

use airlock::engine::NodeRegistry;
use airlock::sandbox::{Sandbox, Slots};

/// Durations of `rounds` first compiles and `rounds` cached loads, alternating.
pub fn compile_vs_cached(rounds: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let warm = tempfile::tempdir()?;
    load_builtins(warm.path())?;
    let (mut cold_times, mut warm_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let cold = tempfile::tempdir()?;
        cold_times.push(load_builtins(cold.path())?);
        warm_times.push(load_builtins(warm.path())?);
    }
    Ok((cold_times, warm_times))
}

/// Time to load the built-ins into a new sandbox whose cache is `dir`; the engine's own setup
/// is not counted.
fn load_builtins(dir: &std::path::Path) -> anyhow::Result<Duration> {
    let sandbox = Sandbox::new(dir, Slots::new(1))?;
    let started = Instant::now();
    NodeRegistry::with_builtins(&sandbox)?;
    Ok(started.elapsed())
}

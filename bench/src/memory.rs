//! Resident memory with many requests in flight. Each side runs in a fresh child process (this
//! binary with `--memory-probe`), so that neither inherits the other's heap or the earlier
//! measurements' allocations.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::task::JoinSet;

use crate::server::{FAST_PATH, SLOW_PATH};
use crate::sides::{Engine, Op, plain_client, plain_op, workflow};

pub const IN_FLIGHT: usize = 1000;
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The process's resident set (VmRSS) and proportional set (Pss, which counts a page mapped N
/// times once, not N times) before and at their peaks, in KiB.
#[derive(Clone, Copy, Default)]
pub struct Probe {
    pub idle_kib: u64,
    pub peak_kib: u64,
    pub idle_pss_kib: u64,
    pub peak_pss_kib: u64,
}

impl Probe {
    pub fn growth_mib(&self) -> f64 {
        self.peak_kib.saturating_sub(self.idle_kib) as f64 / 1024.0
    }

    pub fn pss_growth_mib(&self) -> f64 {
        self.peak_pss_kib.saturating_sub(self.idle_pss_kib) as f64 / 1024.0
    }
}

/// Which side a probe measures.
#[derive(Clone, Copy)]
pub enum Side {
    Airlock,
    Reqwest,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Airlock => "airlock",
            Side::Reqwest => "reqwest",
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Side> {
        match name {
            "airlock" => Ok(Side::Airlock),
            "reqwest" => Ok(Side::Reqwest),
            other => bail!("unknown side {other:?} (airlock or reqwest)"),
        }
    }
}

/// Runs a probe child for `side` against the server on `port` and reads its answer.
pub fn probe(exe: &Path, side: Side, port: u16) -> anyhow::Result<Probe> {
    let output = Command::new(exe)
        .args(["--memory-probe", side.name(), &port.to_string()])
        .output()
        .context("starting the memory probe")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the {} memory probe failed: {}",
            side.name(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let numbers: Result<Vec<u64>, _> = text.split_whitespace().map(str::parse).collect();
    match numbers.as_deref() {
        Ok(&[idle_kib, peak_kib, idle_pss_kib, peak_pss_kib]) => Ok(Probe {
            idle_kib,
            peak_kib,
            idle_pss_kib,
            peak_pss_kib,
        }),
        _ => bail!("the memory probe printed {text:?}"),
    }
}

/// The child's side: one warm-up run, the idle RSS, then `IN_FLIGHT` runs against the slow
/// path at once while sampling RSS and PSS. Prints "idle_kib peak_kib idle_pss_kib peak_pss_kib".
pub fn probe_child(side: Side, port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let (fast, slow, engine) = match side {
        Side::Airlock => {
            let engine = Engine::new(port, None)?;
            let fast = engine.op(&workflow(&format!("{base}{FAST_PATH}"), 1)?);
            let slow = engine.op(&workflow(&format!("{base}{SLOW_PATH}"), 1)?);
            (fast, slow, Some(engine))
        }
        Side::Reqwest => {
            let client = plain_client()?;
            let fast = plain_op(&client, &format!("{base}{FAST_PATH}"), 1);
            let slow = plain_op(&client, &format!("{base}{SLOW_PATH}"), 1);
            (fast, slow, None)
        }
    };
    let probe = runtime.block_on(in_flight(fast, slow))?;
    drop(engine);
    println!(
        "{} {} {} {}",
        probe.idle_kib, probe.peak_kib, probe.idle_pss_kib, probe.peak_pss_kib
    );
    Ok(())
}

async fn in_flight(fast: Op, slow: Op) -> anyhow::Result<Probe> {
    fast().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_kib = vm_rss_kib()?;
    let idle_pss_kib = pss_kib()?;
    let peak = Arc::new(AtomicU64::new(idle_kib));
    let peak_pss = Arc::new(AtomicU64::new(idle_pss_kib));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, peak_pss, stop) = (Arc::clone(&peak), Arc::clone(&peak_pss), Arc::clone(&stop));
        // A plain thread, so that sampling goes on even when every worker is busy.
        std::thread::spawn(move || -> anyhow::Result<()> {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(vm_rss_kib()?, Ordering::SeqCst);
                peak_pss.fetch_max(pss_kib()?, Ordering::SeqCst);
                std::thread::sleep(SAMPLE_EVERY);
            }
            Ok(())
        })
    };
    let mut runs = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        runs.spawn(slow());
    }
    let mut result = Ok(());
    while let Some(done) = runs.join_next().await {
        if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
            result = Err(e);
        }
    }
    stop.store(true, Ordering::SeqCst);
    match sampler.join() {
        Ok(sampled) => sampled?,
        Err(_) => bail!("the RSS sampler panicked"),
    }
    result?;
    Ok(Probe {
        idle_kib,
        peak_kib: peak.load(Ordering::SeqCst),
        idle_pss_kib,
        peak_pss_kib: peak_pss.load(Ordering::SeqCst),
    })
}

/// VmRSS from /proc/self/status, in KiB.
fn vm_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_vm_rss(&status).context("no VmRSS line in /proc/self/status")
}

/// Pss from /proc/self/smaps_rollup, in KiB.
fn pss_kib() -> anyhow::Result<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup")?;
    kib_field(&rollup, "Pss:").context("no Pss line in /proc/self/smaps_rollup")
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    kib_field(status, "VmRSS:")
}

/// The value of a `Name:   1234 kB` line.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_kib() {
        let status = "Name:\tbench\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(4321));
        assert_eq!(parse_vm_rss("Name:\tbench\n"), None);
        // Pss_Anon must not be taken for Pss.
        let rollup = "Rss:  900 kB\nPss_Anon:  5 kB\nPss:  700 kB\n";
        assert_eq!(kib_field(rollup, "Pss:"), Some(700));
    }

    #[test]
    fn growth_is_peak_minus_idle() {
        let probe = Probe {
            idle_kib: 10 * 1024,
            peak_kib: 42 * 1024,
            idle_pss_kib: 8 * 1024,
            peak_pss_kib: 9 * 1024,
        };
        assert_eq!(probe.growth_mib(), 32.0);
        assert_eq!(probe.pss_growth_mib(), 1.0);
    }
}

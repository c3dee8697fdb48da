//! Latency and throughput of two ops, measured in alternating batches so that machine noise
//! (other builds, the fsync queue, CPU frequency) hits both sides alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::cpu::CpuTimes;
use crate::sides::Op;

const WARMUP: usize = 50;

/// Per-op durations of `a` and `b`, `samples` each, run one at a time.
pub async fn latency(
    a: &Op,
    b: &Op,
    samples: usize,
    batch: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    for _ in 0..WARMUP {
        a().await?;
        b().await?;
    }
    let (mut times_a, mut times_b) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for round in 0..samples.div_ceil(batch) {
        if round % 2 == 0 {
            timed(a, batch, &mut times_a).await?;
            timed(b, batch, &mut times_b).await?;
        } else {
            timed(b, batch, &mut times_b).await?;
            timed(a, batch, &mut times_a).await?;
        }
    }
    Ok((times_a, times_b))
}

async fn timed(op: &Op, count: usize, into: &mut Vec<Duration>) -> anyhow::Result<()> {
    for _ in 0..count {
        let started = Instant::now();
        op().await?;
        into.push(started.elapsed());
    }
    Ok(())
}

/// What one side of a throughput comparison did: ops per second and CPU per op.
pub struct SideThroughput {
    pub per_second: f64,
    /// The process's CPU over this side's batches, without the server's share, per op.
    pub cpu_per_op: Duration,
    /// The server's CPU over this side's batches, per op (the same server for both sides).
    pub server_cpu_per_op: Duration,
}

/// Throughput and CPU of `a` and `b`, each run `runs` times per round by `concurrency` tasks.
pub async fn throughput(
    a: &Op,
    b: &Op,
    concurrency: usize,
    runs: usize,
    rounds: usize,
) -> anyhow::Result<(SideThroughput, SideThroughput)> {
    burst(a, concurrency, runs / 4).await?;
    burst(b, concurrency, runs / 4).await?;
    let (mut spent_a, mut spent_b) = (Spent::default(), Spent::default());
    for round in 0..rounds {
        if round % 2 == 0 {
            spent_a += measured_burst(a, concurrency, runs).await?;
            spent_b += measured_burst(b, concurrency, runs).await?;
        } else {
            spent_b += measured_burst(b, concurrency, runs).await?;
            spent_a += measured_burst(a, concurrency, runs).await?;
        }
    }
    let total = runs * rounds;
    Ok((spent_a.per_op(total), spent_b.per_op(total)))
}

/// Wall and CPU time spent on one side's batches.
#[derive(Default)]
struct Spent {
    wall: Duration,
    cpu: CpuTimes,
}

impl std::ops::AddAssign for Spent {
    fn add_assign(&mut self, other: Spent) {
        self.wall += other.wall;
        self.cpu += other.cpu;
    }
}

impl Spent {
    fn per_op(&self, ops: usize) -> SideThroughput {
        let ops_u32 = u32::try_from(ops).unwrap_or(u32::MAX);
        SideThroughput {
            per_second: ops as f64 / self.wall.as_secs_f64(),
            cpu_per_op: self.cpu.client() / ops_u32,
            server_cpu_per_op: self.cpu.server / ops_u32,
        }
    }
}

async fn measured_burst(op: &Op, concurrency: usize, runs: usize) -> anyhow::Result<Spent> {
    let before = CpuTimes::now()?;
    let wall = burst(op, concurrency, runs).await?;
    Ok(Spent {
        wall,
        cpu: CpuTimes::now()? - before,
    })
}

/// `concurrency` tasks take ops from a shared count of `runs` until it is used up.
async fn burst(op: &Op, concurrency: usize, runs: usize) -> anyhow::Result<Duration> {
    let remaining = Arc::new(AtomicUsize::new(runs));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let op = Arc::clone(op);
        let remaining = Arc::clone(&remaining);
        tasks.spawn(async move {
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                op().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

//! Latency and throughput of two ops, measured in alternating batches so that machine noise
//! (other builds, the fsync queue, CPU frequency) hits both sides alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

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

/// Ops per second of `a` and `b`, each run `runs` times per round by `concurrency` tasks.
pub async fn throughput(
    a: &Op,
    b: &Op,
    concurrency: usize,
    runs: usize,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    burst(a, concurrency, runs / 4).await?;
    burst(b, concurrency, runs / 4).await?;
    let (mut time_a, mut time_b) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        if round % 2 == 0 {
            time_a += burst(a, concurrency, runs).await?;
            time_b += burst(b, concurrency, runs).await?;
        } else {
            time_b += burst(b, concurrency, runs).await?;
            time_a += burst(a, concurrency, runs).await?;
        }
    }
    let total = (runs * rounds) as f64;
    Ok((total / time_a.as_secs_f64(), total / time_b.as_secs_f64()))
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

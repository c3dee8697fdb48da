//! A node run's CPU time: the CPU its thread spends inside polls of the node run's future, that
//! is wasm running and the synchronous part of host calls. Whenever the guest runs, it runs
//! inside such a poll, so every moment it executes counts, whether or not requests are pending.
//! Only time it is blocked (awaiting the gate, a wasi:http response or a wasi clock: the future
//! returned `Pending`) is outside every poll. The thread's CPU clock rather than the wall clock
//! measures a poll, so a busy machine descheduling the thread does not make a node look slow.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// Shared between the polling wrapper and the epoch callback, which runs inside a poll.
pub(super) struct CpuClock {
    /// Nanoseconds of CPU spent in finished polls.
    spent: AtomicU64,
    /// The polling thread's CPU clock when the current poll began, plus one; 0 between polls.
    poll_began: AtomicU64,
}

/// CPU time the calling thread has used, in nanoseconds.
fn thread_cpu_nanos() -> u64 {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    let secs = u64::try_from(now.tv_sec).unwrap_or_default();
    let nanos = u64::try_from(now.tv_nsec).unwrap_or_default();
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

impl CpuClock {
    pub(super) fn new() -> CpuClock {
        CpuClock {
            spent: AtomicU64::new(0),
            poll_began: AtomicU64::new(0),
        }
    }

    /// CPU time so far, including the poll in progress. Called from inside a poll (the epoch
    /// callback), so the calling thread is the one whose clock measures that poll.
    pub(super) fn used(&self) -> Duration {
        let mut nanos = self.spent.load(Ordering::Relaxed);
        let began = self.poll_began.load(Ordering::Relaxed);
        if began != 0 {
            nanos = nanos.saturating_add(thread_cpu_nanos().saturating_sub(began - 1));
        }
        Duration::from_nanos(nanos)
    }

    /// Drives `future`, counting the CPU spent inside its polls. A poll runs on one thread from
    /// start to end, so that thread's clock measures it.
    pub(super) async fn meter<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let began = thread_cpu_nanos();
            self.poll_began.store(began + 1, Ordering::Relaxed);
            let result = future.as_mut().poll(cx);
            self.poll_began.store(0, Ordering::Relaxed);
            self.spent
                .fetch_add(thread_cpu_nanos().saturating_sub(began), Ordering::Relaxed);
            result
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the thread busy until it has used `time` of CPU.
    fn burn(time: Duration) {
        let start = thread_cpu_nanos();
        while Duration::from_nanos(thread_cpu_nanos() - start) < time {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test]
    async fn counts_running_but_not_waiting() {
        let clock = CpuClock::new();
        clock
            .meter(async {
                burn(Duration::from_millis(30));
                tokio::time::sleep(Duration::from_millis(200)).await;
                burn(Duration::from_millis(30));
            })
            .await;
        let used = clock.used();
        assert!(used >= Duration::from_millis(60), "{used:?}");
        assert!(used < Duration::from_millis(150), "{used:?}");
    }

    #[tokio::test]
    async fn a_blocked_thread_uses_no_cpu() {
        let clock = CpuClock::new();
        clock
            .meter(async { std::thread::sleep(Duration::from_millis(100)) })
            .await;
        let used = clock.used();
        assert!(used < Duration::from_millis(50), "{used:?}");
    }

    #[tokio::test]
    async fn includes_the_poll_in_progress() {
        let clock = CpuClock::new();
        let inside = clock
            .meter(async {
                burn(Duration::from_millis(20));
                clock.used()
            })
            .await;
        assert!(inside >= Duration::from_millis(20), "{inside:?}");
    }
}

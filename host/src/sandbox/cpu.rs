//! A node run's CPU time: the CPU its thread spends inside polls of the node run's future, that
//! is wasm running and the synchronous part of host calls. Whenever the guest runs, it runs
//! inside such a poll, so every moment it executes counts, whether or not requests are pending.
//! Only time it is blocked (awaiting the gate, a wasi:http response or a wasi clock: the future
//! returned `Pending`) is outside every poll.
//!
//! Reading the thread's CPU clock is a system call (~0.9 µs here), and most node runs are short,
//! so until a node run has been charged [`WALL_CHARGED`] its polls are measured by the wall clock
//! (a vDSO read), each up to the first time the limit is asked about within it (the epoch
//! callback, after at most one epoch tick of wasm); from then on, by the thread's CPU clock, and
//! once the node run is past [`WALL_CHARGED`], every poll from its start. Wall time is never less
//! than the thread's CPU time over the same span, so a node is never undercharged. A busy machine
//! descheduling the thread can overcharge it only within polls that begin before it has been
//! charged [`WALL_CHARGED`], each up to its first check, so a long-running guest is charged its
//! CPU.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};

/// How much a node run is charged by the wall clock before every poll is measured by the
/// thread's CPU clock from its start.
const WALL_CHARGED: Duration = Duration::from_millis(1);

/// Shared between the polling wrapper and the epoch callback, which runs inside a poll on the
/// polling thread.
pub(super) struct CpuClock {
    /// What the wall-clock readings count from.
    origin: Instant,
    /// Nanoseconds charged for finished polls.
    spent: AtomicU64,
    /// Wall-clock nanoseconds (since `origin`) when the current poll began, plus one; 0 between
    /// polls.
    poll_began: AtomicU64,
    /// The thread's CPU clock at the first question within the current poll, plus one; 0 until
    /// then.
    cpu_from: AtomicU64,
    /// The wall-clock time charged for the current poll up to that first question.
    wall_before_cpu: AtomicU64,
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
            origin: Instant::now(),
            spent: AtomicU64::new(0),
            poll_began: AtomicU64::new(0),
            cpu_from: AtomicU64::new(0),
            wall_before_cpu: AtomicU64::new(0),
        }
    }

    fn wall_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// CPU time so far, including the poll in progress. Called from inside a poll (the epoch
    /// callback), so the calling thread is the one whose clock measures that poll; from this
    /// question on, it does.
    pub(super) fn used(&self) -> Duration {
        let mut nanos = self.spent.load(Ordering::Relaxed);
        let began = self.poll_began.load(Ordering::Relaxed);
        if began != 0 {
            if self.cpu_from.load(Ordering::Relaxed) == 0 {
                self.time_by_cpu(self.wall_nanos().saturating_sub(began - 1));
            }
            nanos = nanos.saturating_add(self.in_poll(began));
        }
        Duration::from_nanos(nanos)
    }

    /// From now on the poll in progress is timed by the thread's CPU clock, after `wall` nanoseconds
    /// charged by the wall clock.
    fn time_by_cpu(&self, wall: u64) {
        self.wall_before_cpu.store(wall, Ordering::Relaxed);
        self.cpu_from
            .store(thread_cpu_nanos() + 1, Ordering::Relaxed);
    }

    /// What the poll in progress has used so far: its wall time, or, once the limit has been
    /// asked about within it, its wall time up to the question plus the thread's CPU since.
    fn in_poll(&self, began: u64) -> u64 {
        match self.cpu_from.load(Ordering::Relaxed) {
            0 => self.wall_nanos().saturating_sub(began - 1),
            from => self
                .wall_before_cpu
                .load(Ordering::Relaxed)
                .saturating_add(thread_cpu_nanos().saturating_sub(from - 1)),
        }
    }

    /// Drives `future`, counting the CPU spent inside its polls. A poll runs on one thread from
    /// start to end, so that thread's clock measures it. The future comes pinned where its caller
    /// holds it: an async fn keeps a by-value argument twice in its own future (as the argument,
    /// and where it is pinned), and this one is a node run's whole instance call (measured:
    /// `Sandbox::run`'s future 4,128 → 2,768 bytes).
    pub(super) async fn meter<F: Future>(&self, mut future: Pin<&mut F>) -> F::Output {
        std::future::poll_fn(|cx| {
            let began = self.wall_nanos() + 1;
            self.poll_began.store(began, Ordering::Relaxed);
            if Duration::from_nanos(self.spent.load(Ordering::Relaxed)) >= WALL_CHARGED {
                self.time_by_cpu(0);
            }
            let result = future.as_mut().poll(cx);
            let used = self.in_poll(began);
            self.poll_began.store(0, Ordering::Relaxed);
            self.cpu_from.store(0, Ordering::Relaxed);
            self.spent.fetch_add(used, Ordering::Relaxed);
            result
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;

    /// What a node run whose future is `body` is charged in all.
    async fn charged(body: impl AsyncFnOnce(&CpuClock)) -> Duration {
        let clock = CpuClock::new();
        clock.meter(pin!(body(&clock))).await;
        clock.used()
    }

    /// Keeps the thread busy until it has used `time` of CPU.
    fn burn(time: Duration) {
        let start = thread_cpu_nanos();
        while Duration::from_nanos(thread_cpu_nanos() - start) < time {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test]
    async fn counts_running_but_not_waiting() {
        let used = charged(async |_| {
            burn(Duration::from_millis(30));
            tokio::time::sleep(Duration::from_millis(200)).await;
            burn(Duration::from_millis(30));
        })
        .await;
        assert!(used >= Duration::from_millis(60), "{used:?}");
        assert!(used < Duration::from_millis(150), "{used:?}");
    }

    #[tokio::test]
    async fn once_asked_a_blocked_thread_uses_no_cpu() {
        let used = charged(async |clock| {
            clock.used();
            std::thread::sleep(Duration::from_millis(100));
        })
        .await;
        assert!(used < Duration::from_millis(50), "{used:?}");
    }

    #[tokio::test]
    async fn before_the_first_question_a_poll_is_charged_its_wall_time() {
        let used = charged(async |clock| {
            std::thread::sleep(Duration::from_millis(60));
            clock.used();
            std::thread::sleep(Duration::from_millis(60));
        })
        .await;
        assert!(used >= Duration::from_millis(60), "{used:?}");
        assert!(used < Duration::from_millis(110), "{used:?}");
    }

    /// A guest that yields at every epoch tick asks about the limit only at the end of each
    /// poll: past the first millisecond, its polls are still measured by the CPU clock.
    #[tokio::test]
    async fn a_long_node_run_is_charged_cpu_not_wall_time() {
        let used = charged(async |clock| {
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(20));
                clock.used();
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(used >= Duration::from_millis(20), "{used:?}");
        assert!(used < Duration::from_millis(50), "{used:?}");
    }

    #[tokio::test]
    async fn includes_the_poll_in_progress() {
        let clock = CpuClock::new();
        let inside = clock
            .meter(pin!(async {
                burn(Duration::from_millis(20));
                let first = clock.used();
                burn(Duration::from_millis(20));
                (first, clock.used())
            }))
            .await;
        // Measured by the wall clock up to the first question, by the CPU clock after it.
        assert!(inside.0 >= Duration::from_millis(20), "{inside:?}");
        assert!(inside.1 >= Duration::from_millis(40), "{inside:?}");
    }
}

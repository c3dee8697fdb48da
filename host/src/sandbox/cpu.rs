//! A node run's CPU time: the time its future spends being polled. That is wasm (and the
//! synchronous part of host calls) running; time awaiting the egress gate, or waiting for a
//! tokio worker while other runs execute, is not counted, so a busy process does not make a
//! well-behaved node look slow.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared between the polling wrapper and the epoch callback, which runs inside a poll.
pub(super) struct CpuClock {
    origin: Instant,
    /// Nanoseconds spent in finished polls.
    spent: AtomicU64,
    /// When the current poll began (nanoseconds after `origin`, plus one); 0 between polls.
    poll_began: AtomicU64,
}

impl CpuClock {
    pub(super) fn new() -> CpuClock {
        CpuClock {
            origin: Instant::now(),
            spent: AtomicU64::new(0),
            poll_began: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// CPU time so far, including the poll in progress.
    pub(super) fn used(&self) -> Duration {
        let mut nanos = self.spent.load(Ordering::Relaxed);
        let began = self.poll_began.load(Ordering::Relaxed);
        if began != 0 {
            nanos = nanos.saturating_add(self.now().saturating_sub(began - 1));
        }
        Duration::from_nanos(nanos)
    }

    /// Drives `future`, counting the time spent inside its polls.
    pub(super) async fn meter<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let began = self.now();
            self.poll_began.store(began + 1, Ordering::Relaxed);
            let result = future.as_mut().poll(cx);
            self.poll_began.store(0, Ordering::Relaxed);
            self.spent
                .fetch_add(self.now().saturating_sub(began), Ordering::Relaxed);
            result
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_polling_but_not_waiting() {
        let clock = CpuClock::new();
        clock
            .meter(async {
                std::thread::sleep(Duration::from_millis(30));
                tokio::time::sleep(Duration::from_millis(200)).await;
                std::thread::sleep(Duration::from_millis(30));
            })
            .await;
        let used = clock.used();
        assert!(used >= Duration::from_millis(60), "{used:?}");
        assert!(used < Duration::from_millis(200), "{used:?}");
    }

    #[tokio::test]
    async fn includes_the_poll_in_progress() {
        let clock = CpuClock::new();
        let inside = clock
            .meter(async {
                std::thread::sleep(Duration::from_millis(20));
                clock.used()
            })
            .await;
        assert!(inside >= Duration::from_millis(20), "{inside:?}");
    }
}

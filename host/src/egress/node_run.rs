//! What the gate keeps per node run besides its identity: the budget for the bodies the host
//! buffers for it, and its requests still in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// One budget per node run for every request and response body the host buffers for it, in
/// flight or unread, as large as the node's memory limit: a node cannot make the host hold more
/// than its own memory limit by opening many requests. Bytes are reserved before they are
/// buffered and come back when their [`Reservation`] is dropped.
#[derive(Debug)]
pub struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

/// Reserving more would pass the node run's body budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "request and response bodies buffered for this node run would exceed its memory limit of {limit} bytes"
)]
pub struct OverBudget {
    pub limit: usize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// An empty reservation against this budget, to grow as bytes arrive.
    pub fn reservation(self: &Arc<BodyBudget>) -> Reservation {
        Reservation {
            budget: Some(Arc::clone(self)),
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> Result<(), OverBudget> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .map(drop)
            .map_err(|_| OverBudget { limit: self.limit })
    }
}

/// Bytes held against a [`BodyBudget`]; given back on drop. The default holds nothing.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<BodyBudget>>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `bytes` more, before they are buffered.
    pub fn grow(&mut self, bytes: usize) -> Result<(), OverBudget> {
        if let Some(budget) = &self.budget {
            budget.take(bytes)?;
            self.bytes += bytes;
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
        }
    }
}

/// The node run's requests still in flight in the gate, and whether the node run has ended. A
/// request outlives a node stopped at a limit (the gate runs it on its own task so that it is
/// audited); once the node run ends, its requests are cut short and recorded as such.
#[derive(Debug)]
pub struct Flights {
    state: watch::Sender<FlightState>,
}

#[derive(Debug, Default)]
struct FlightState {
    in_flight: usize,
    ended: bool,
}

/// One request in flight; it lands when dropped.
pub(super) struct Boarding(Arc<Flights>);

impl Default for Flights {
    fn default() -> Flights {
        Flights {
            state: watch::Sender::new(FlightState::default()),
        }
    }
}

impl Flights {
    pub(super) fn board(self: &Arc<Flights>) -> Boarding {
        self.state.send_modify(|state| state.in_flight += 1);
        Boarding(Arc::clone(self))
    }

    /// Resolves once the node run has ended.
    pub(super) async fn ended(&self) {
        let mut state = self.state.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = state.wait_for(|state| state.ended).await;
    }

    /// Ends the node run: its requests still in flight are cancelled, and none starts after.
    pub fn end(&self) {
        self.state.send_modify(|state| state.ended = true);
    }

    pub fn has_ended(&self) -> bool {
        self.state.borrow().ended
    }

    /// Resolves once every request in flight has been recorded in the audit log.
    pub async fn landed(&self) {
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|state| state.in_flight == 0).await;
    }
}

impl Drop for Boarding {
    fn drop(&mut self) {
        self.0.state.send_modify(|state| state.in_flight -= 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reservations_share_one_budget_and_give_back_on_drop() {
        let budget = BodyBudget::new(100);
        let mut first = budget.reservation();
        first.grow(60).unwrap();
        let mut second = budget.reservation();
        assert_eq!(second.grow(50), Err(OverBudget { limit: 100 }));
        second.grow(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(first);
        assert_eq!(budget.used(), 40);
        second.grow(60).unwrap();
        drop(second);
        assert_eq!(budget.used(), 0);
        assert!(
            OverBudget { limit: 100 }
                .to_string()
                .contains("memory limit of 100 bytes")
        );
    }

    #[test]
    fn a_default_reservation_holds_nothing() {
        let mut none = Reservation::default();
        none.grow(usize::MAX).unwrap();
    }

    #[tokio::test]
    async fn landing_cancels_and_waits_for_requests_in_flight() {
        let flights = Arc::new(Flights::default());
        let recorded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let boarding = flights.board();
        {
            let flights = Arc::clone(&flights);
            let recorded = Arc::clone(&recorded);
            tokio::spawn(async move {
                flights.ended().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                recorded.store(true, Ordering::SeqCst);
                drop(boarding);
            });
        }
        assert!(!flights.has_ended());
        flights.end();
        assert!(flights.has_ended());
        tokio::time::timeout(Duration::from_secs(5), flights.landed())
            .await
            .expect("lands once the request has finished");
        assert!(recorded.load(Ordering::SeqCst));
    }
}

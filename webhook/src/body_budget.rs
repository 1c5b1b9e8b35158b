//! The server-wide budget of request body bytes held in memory at once
//! (`--max-buffered-bytes`).
//!
//! `--max-body-bytes` bounds one body and `--max-connections` the connections, but their
//! product (6 MiB × 1 024) is far above the pod's memory limit: twenty connections each
//! declaring a 6 MiB body and sending it slowly once held 112 MiB. Before its body is read a
//! request reserves room for it here, in KiB (rounded up): its `Content-Length`, or
//! `--max-body-bytes` when it declares none (chunked, or HTTP/2 without the header), since
//! that is the most it may hold. The reservation is taken whole, in one fair (first come,
//! first served) wait, so two requests never each hold part of the room the other waits for.
//! It is given back when the review is done with the body: answered, refused, or, for a
//! judgement still running past its deadline, when the judging thread lets go of it.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The budget, shared by every request.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
    /// The whole budget, in KiB.
    total_kib: u32,
    metrics: Arc<Metrics>,
}

/// Room held for one body; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    metrics: Arc<Metrics>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.metrics.body_bytes_released(self.bytes);
    }
}

/// `bytes` in KiB, rounded up.
fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

impl BodyBudget {
    /// A budget of `max_bytes` (rounded up to whole KiB; at least one KiB).
    pub(crate) fn new(max_bytes: usize, metrics: Arc<Metrics>) -> Self {
        let total = kib(u64::try_from(max_bytes).unwrap_or(u64::MAX))
            .clamp(1, u64::from(u32::MAX))
            .min(u64::try_from(Semaphore::MAX_PERMITS).unwrap_or(u64::MAX));
        let total_kib = u32::try_from(total).unwrap_or(u32::MAX);
        BodyBudget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            metrics,
        }
    }

    /// Waits until `bytes` fit, in turn, and holds them. Cancel it (a timeout) to stop
    /// waiting; room it was being given goes back to the budget. `None` only if the budget
    /// was closed, which it never is.
    pub(crate) async fn reserve(&self, bytes: u64) -> Option<Reservation> {
        // More than the whole budget would never fit; the configuration check keeps every
        // allowed body within it.
        let units = u32::try_from(kib(bytes)).map_or(self.total_kib, |k| k.min(self.total_kib));
        let permit = self.permits.clone().acquire_many_owned(units).await.ok()?;
        let bytes = u64::from(units) * 1024;
        self.metrics.body_bytes_reserved(bytes);
        Some(Reservation {
            _permit: permit,
            bytes,
            metrics: self.metrics.clone(),
        })
    }

    /// Holds `bytes` if they fit now, without waiting: for HTTP/2, where a stream waiting for
    /// room would leave its data unread in the connection's flow-control window, which the
    /// connection's other streams share — they could then never finish their bodies and give
    /// room back.
    pub(crate) fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let units = u32::try_from(kib(bytes)).map_or(self.total_kib, |k| k.min(self.total_kib));
        let permit = self.permits.clone().try_acquire_many_owned(units).ok()?;
        let bytes = u64::from(units) * 1024;
        self.metrics.body_bytes_reserved(bytes);
        Some(Reservation {
            _permit: permit,
            bytes,
            metrics: self.metrics.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_in_turn_and_give_it_back() {
        let metrics = Arc::new(Metrics::new());
        let budget = BodyBudget::new(10 * 1024, metrics.clone());
        let a = budget.reserve(6 * 1024).await.expect("a");
        let b = budget
            .reserve(3 * 1024 + 1)
            .await
            .expect("b (rounded up to 4 KiB)");
        assert_eq!(metrics.buffered_body_bytes(), 10 * 1024);
        // Nothing left: a third waits.
        let waited = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1)).await;
        assert!(waited.is_err(), "the budget is spent");
        drop(b);
        let c = tokio::time::timeout(Duration::from_secs(5), budget.reserve(4 * 1024))
            .await
            .expect("room came back")
            .expect("c");
        assert_eq!(metrics.buffered_body_bytes(), 10 * 1024);
        drop((a, c));
        assert_eq!(metrics.buffered_body_bytes(), 0);
        // An empty body takes no room; more than the budget is capped at the budget.
        let empty = budget.reserve(0).await.expect("empty");
        let all = budget.reserve(u64::MAX).await.expect("capped");
        assert_eq!(metrics.buffered_body_bytes(), 10 * 1024);
        drop((empty, all));
        // Without waiting: now or never.
        let a = budget.try_reserve(8 * 1024).expect("fits");
        assert!(budget.try_reserve(4 * 1024).is_none(), "does not fit now");
        drop(a);
        assert!(
            budget.try_reserve(4 * 1024).is_some(),
            "fits once room is back"
        );
    }

    #[test]
    fn odd_budgets_do_not_overflow() {
        let metrics = Arc::new(Metrics::new());
        assert_eq!(BodyBudget::new(0, metrics.clone()).total_kib, 1);
        assert_eq!(BodyBudget::new(1025, metrics.clone()).total_kib, 2);
        assert!(BodyBudget::new(usize::MAX, metrics).total_kib > 0);
    }
}

//! The server-wide budget of request body bytes held in memory at once
//! (`--max-buffered-bytes`).
//!
//! `--max-body-bytes` bounds one body and `--max-connections` the connections, but their
//! product (6 MiB × 1 024) is far above the pod's memory limit: twenty connections each
//! declaring a 6 MiB body and sending it slowly once held 112 MiB. So every body's bytes are
//! counted here as they arrive, and a part that does not fit waits (or, over HTTP/2, is
//! refused; see `body.rs`).
//!
//! Room is taken for what has arrived, not for what a request declares: when a request had
//! to take room for its whole declared length before a byte came, one HTTP/2 connection of
//! header-only streams and one silent HTTP/1.1 request held the whole budget without sending
//! anything and made ordinary reviews wait 8.4 s. Now a client holds room only for bytes it
//! has sent.
//!
//! Taking room piece by piece could deadlock: bodies each holding part of the budget, each
//! waiting for room another holds. The budget prevents it the way the banker's algorithm
//! does. Each body opens with a claim, the most it may still need (its `Content-Length`, or
//! `--max-body-bytes` without one), and a piece is granted only if, afterwards, the bodies
//! could all still finish one after another, each taking the rest of its claim from the
//! room the earlier ones give back. Since a body that holds nothing cannot stand in the way
//! of that order, a claim alone never delays anyone; only bytes actually received can.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// The budget, shared by every request. Cloning it gives another handle to the same budget.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    ledger: Mutex<Ledger>,
    /// Woken whenever held room is given back.
    room_given_back: Notify,
    /// The whole budget, in bytes.
    total: u64,
    /// The largest claim a body may open with. While at least this much room stays free,
    /// every body can finish whatever the others do, and no fuller check is needed.
    largest_claim: u64,
    metrics: Arc<Metrics>,
}

/// Who holds what.
#[derive(Debug)]
struct Ledger {
    free: u64,
    /// The open bodies, by id.
    bodies: HashMap<u64, Claim>,
    next_id: u64,
}

/// One body's part of the ledger.
#[derive(Debug, Clone, Copy)]
struct Claim {
    /// Bytes received and counted.
    held: u64,
    /// The most it may still need.
    need: u64,
}

/// Why a piece of a body was not given room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// Not now: the room is held by other bodies. Waiting may get it.
    Taken,
    /// Never: the piece goes past the body's claim.
    PastClaim,
}

/// One body's room in the budget: what it holds, given back when dropped.
#[derive(Debug)]
pub(crate) struct BodyRoom {
    shared: Arc<Shared>,
    id: u64,
}

impl BodyBudget {
    /// A budget of `total_bytes`, for bodies of at most `max_body_bytes` (the configuration
    /// keeps that within the budget; a larger value is taken as the budget).
    pub(crate) fn new(total_bytes: usize, max_body_bytes: usize, metrics: Arc<Metrics>) -> Self {
        let total = u64::try_from(total_bytes).unwrap_or(u64::MAX);
        let largest_claim = u64::try_from(max_body_bytes).unwrap_or(u64::MAX).min(total);
        BodyBudget {
            shared: Arc::new(Shared {
                ledger: Mutex::new(Ledger {
                    free: total,
                    bodies: HashMap::new(),
                    next_id: 0,
                }),
                room_given_back: Notify::new(),
                total,
                largest_claim,
                metrics,
            }),
        }
    }

    /// Opens a body that may need up to `claim` bytes (capped at the largest claim allowed).
    /// It holds nothing yet, and never waits: a claim alone cannot stop any body finishing.
    pub(crate) fn open(&self, claim: u64) -> BodyRoom {
        let mut ledger = self.shared.lock();
        let id = ledger.next_id;
        ledger.next_id = ledger.next_id.wrapping_add(1);
        ledger.bodies.insert(
            id,
            Claim {
                held: 0,
                need: claim.min(self.shared.largest_claim),
            },
        );
        BodyRoom {
            shared: self.shared.clone(),
            id,
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // The ledger is never left half-updated: every change is made after the checks that
        // could fail, so a panic elsewhere cannot leave it wrong.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BodyRoom {
    /// Takes room for `bytes` more if that is safe now (see the module's comment), without
    /// waiting.
    pub(crate) fn try_take(&mut self, bytes: u64) -> Result<(), NoRoom> {
        let shared = &*self.shared;
        let mut ledger = shared.lock();
        let Some(mine) = ledger.bodies.get(&self.id).copied() else {
            return Err(NoRoom::PastClaim);
        };
        if bytes > mine.need {
            return Err(NoRoom::PastClaim);
        }
        if bytes > ledger.free {
            return Err(NoRoom::Taken);
        }
        let free = ledger.free - bytes;
        let after = Claim {
            held: mine.held + bytes,
            need: mine.need - bytes,
        };
        if free < shared.largest_claim && !all_can_finish(free, &ledger.bodies, self.id, after) {
            return Err(NoRoom::Taken);
        }
        ledger.free = free;
        ledger.bodies.insert(self.id, after);
        drop(ledger);
        shared.metrics.body_bytes_reserved(bytes);
        Ok(())
    }

    /// Takes room for `bytes` more, waiting until it is safe. Cancel it (a timeout) to stop
    /// waiting; nothing is taken then.
    pub(crate) async fn take(&mut self, bytes: u64) -> Result<(), NoRoom> {
        let shared = self.shared.clone();
        loop {
            // Listening before looking, so room given back in between is not missed.
            let given_back = shared.room_given_back.notified();
            tokio::pin!(given_back);
            given_back.as_mut().enable();
            match self.try_take(bytes) {
                Err(NoRoom::Taken) => given_back.await,
                done => return done,
            }
        }
    }

    /// Marks the body complete: it needs nothing more. Bodies waiting for room are told,
    /// since a smaller need can make their piece safe to grant.
    pub(crate) fn complete(&mut self) {
        let mut ledger = self.shared.lock();
        let Some(claim) = ledger.bodies.get_mut(&self.id) else {
            return;
        };
        let relieved = claim.need > 0 && claim.held > 0;
        claim.need = 0;
        drop(ledger);
        if relieved {
            self.shared.room_given_back.notify_waiters();
        }
    }

    /// The bytes this body holds.
    #[cfg(test)]
    fn held(&self) -> u64 {
        self.shared
            .lock()
            .bodies
            .get(&self.id)
            .map_or(0, |claim| claim.held)
    }
}

impl Drop for BodyRoom {
    fn drop(&mut self) {
        let mut ledger = self.shared.lock();
        let held = ledger.bodies.remove(&self.id).map_or(0, |claim| claim.held);
        ledger.free = (ledger.free + held).min(self.shared.total);
        drop(ledger);
        if held > 0 {
            self.shared.metrics.body_bytes_released(held);
            self.shared.room_given_back.notify_waiters();
        }
    }
}

/// Whether, with `free` bytes free and body `id` changed to `changed`, the bodies can all
/// finish in some order: each in turn taking the rest of its claim from what is free, then
/// giving back all it holds. With one kind of room, smallest need first is such an order if
/// any is. Bodies holding nothing are left out: one that could not finish in its turn would
/// find every later body, needing at least as much, stuck too, and when only such bodies
/// are left the whole budget is free for them.
fn all_can_finish(free: u64, bodies: &HashMap<u64, Claim>, id: u64, changed: Claim) -> bool {
    let mut holding: Vec<Claim> = bodies
        .iter()
        .map(|(&other, &claim)| if other == id { changed } else { claim })
        .filter(|claim| claim.held > 0)
        .collect();
    holding.sort_unstable_by_key(|claim| claim.need);
    let mut free = free;
    for claim in holding {
        if claim.need > free {
            return false;
        }
        free += claim.held;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KIB: u64 = 1024;

    fn budget(total: u64, max_body: u64) -> (BodyBudget, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let budget = BodyBudget::new(total as usize, max_body as usize, metrics.clone());
        (budget, metrics)
    }

    #[test]
    fn claims_alone_hold_nothing_and_stop_nobody() {
        let (budget, metrics) = budget(10 * KIB, 10 * KIB);
        // Many bodies declaring the largest size and sending nothing.
        let silent: Vec<BodyRoom> = (0..100).map(|_| budget.open(10 * KIB)).collect();
        assert_eq!(metrics.buffered_body_bytes(), 0);
        // A body that sends gets the whole budget, piece by piece.
        let mut sender = budget.open(10 * KIB);
        for _ in 0..10 {
            sender.try_take(KIB).expect("room for what arrived");
        }
        assert_eq!(metrics.buffered_body_bytes(), 10 * KIB);
        assert_eq!(sender.held(), 10 * KIB);
        drop(sender);
        assert_eq!(metrics.buffered_body_bytes(), 0);
        drop(silent);
    }

    #[test]
    fn a_body_cannot_take_past_its_claim() {
        let (budget, _) = budget(10 * KIB, 4 * KIB);
        let mut room = budget.open(2 * KIB);
        room.try_take(2 * KIB).expect("its claim");
        assert_eq!(room.try_take(1), Err(NoRoom::PastClaim));
        // A claim over the largest allowed is cut to it.
        let mut big = budget.open(u64::MAX);
        assert_eq!(big.try_take(4 * KIB + 1), Err(NoRoom::PastClaim));
        big.try_take(4 * KIB).expect("the largest claim");
    }

    #[test]
    fn no_piece_is_granted_that_could_leave_bodies_waiting_on_each_other() {
        // Two bodies of 6 KiB in a budget of 10: each may take its first 5 KiB only if the
        // other could then still finish.
        let (budget, metrics) = budget(10 * KIB, 6 * KIB);
        let mut a = budget.open(6 * KIB);
        let mut b = budget.open(6 * KIB);
        a.try_take(5 * KIB).expect("a: b can still finish after a");
        // b taking 5 KiB would leave 0 free with a needing 1 and b needing 1: stuck.
        assert_eq!(b.try_take(5 * KIB), Err(NoRoom::Taken));
        // 4 KiB leaves 1 free: a finishes with it, then gives back 6 for b.
        b.try_take(4 * KIB).expect("safe");
        assert_eq!(b.try_take(KIB), Err(NoRoom::Taken), "a needs the last KiB");
        // Unless a turns out shorter than it claimed.
        a.complete();
        b.try_take(KIB).expect("a needs nothing more");
        drop(b);
        let mut b = budget.open(6 * KIB);
        b.try_take(KIB).expect("a's 5 KiB stay held");
        assert_eq!(metrics.buffered_body_bytes(), 6 * KIB);
        drop(a);
        b.try_take(5 * KIB).expect("b finishes with a's room");
        assert_eq!(metrics.buffered_body_bytes(), 6 * KIB);
    }

    #[test]
    fn a_small_body_gets_room_beside_large_claims_that_have_sent_little() {
        // The attack the design is for: silent large claims plus a few bodies that sent part.
        let (budget, _) = budget(64 * KIB, 6 * KIB);
        let _silent: Vec<BodyRoom> = (0..50).map(|_| budget.open(6 * KIB)).collect();
        let mut partial: Vec<BodyRoom> = (0..10).map(|_| budget.open(6 * KIB)).collect();
        for room in &mut partial {
            room.try_take(3 * KIB).expect("half of each");
        }
        let mut review = budget.open(2 * KIB);
        review
            .try_take(2 * KIB)
            .expect("an ordinary review is read at once");
    }

    #[tokio::test]
    async fn a_waiting_piece_gets_room_when_some_is_given_back() {
        let (budget, metrics) = budget(8 * KIB, 8 * KIB);
        let mut a = budget.open(8 * KIB);
        a.try_take(8 * KIB).expect("all of it");
        let mut b = budget.open(4 * KIB);
        let waited = tokio::time::timeout(Duration::from_millis(50), b.take(KIB)).await;
        assert!(waited.is_err(), "the budget is spent");
        assert_eq!(b.held(), 0, "a cancelled wait takes nothing");
        let waiter = tokio::spawn(async move {
            b.take(4 * KIB).await.expect("room");
            b
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        let b = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken when room came back")
            .expect("task");
        assert_eq!(b.held(), 4 * KIB);
        assert_eq!(metrics.buffered_body_bytes(), 4 * KIB);
        drop(b);
        assert_eq!(metrics.buffered_body_bytes(), 0);
    }

    /// Many bodies taking random pieces, waiting when told to and sometimes giving up:
    /// every one that keeps going finishes, and the budget is never overdrawn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bodies_taking_pieces_at_random_all_finish() {
        let (budget, metrics) = budget(64 * KIB, 24 * KIB);
        let mut tasks = Vec::new();
        for i in 0u64..40 {
            let budget = budget.clone();
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move |n: u64| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % n
                };
                let claim = 1 + next(24 * KIB);
                let mut room = budget.open(claim);
                let mut got = 0;
                while got < claim {
                    let piece = (1 + next(4 * KIB)).min(claim - got);
                    room.take(piece).await.expect("within the claim");
                    assert!(metrics.buffered_body_bytes() <= 64 * KIB);
                    got += piece;
                    tokio::task::yield_now().await;
                }
                got
            }));
        }
        for task in tasks {
            let got = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("no body waits for ever")
                .expect("task");
            assert!(got > 0);
        }
        assert_eq!(metrics.buffered_body_bytes(), 0);
    }

    #[test]
    fn odd_budgets_do_not_overflow() {
        let (budget, _) = budget(0, 0);
        let mut room = budget.open(10);
        assert_eq!(room.try_take(1), Err(NoRoom::PastClaim));
        room.try_take(0).expect("nothing fits in nothing");
        let metrics = Arc::new(Metrics::new());
        let budget = BodyBudget::new(usize::MAX, usize::MAX, metrics);
        let mut room = budget.open(u64::MAX);
        room.try_take(u64::MAX / 2).expect("huge");
    }
}

//! When a connection last had a request in flight, so that an idle one can be closed.
//!
//! HTTP/1.1 has hyper's header-read timer for that; HTTP/2 has nothing of the kind: a peer
//! that answers the server's pings keeps an idle connection, and its connection slot, for
//! ever. A few such peers could hold every slot (`--max-connections`) and lock the API
//! server out. [`Tracked`] counts the requests of one connection; [`Activity::idle_for`]
//! completes once none has been in flight for the idle limit, and the connection is then
//! closed gracefully (an HTTP/2 GOAWAY, which clients answer by opening a new connection for
//! their next request).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::Service;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The requests of one connection: how many are in flight, and when the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the connection opened; the other times are counted from it.
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the last request (0 before any).
    last_end_ms: AtomicU64,
    /// Signalled when the last request in flight ends.
    quiet: Notify,
}

impl Activity {
    /// A connection that opened now, with nothing in flight.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            quiet: Notify::new(),
        })
    }

    /// When the connection went idle: the end of its last request, or its opening if none
    /// came; `None` while a request is in flight.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
        Some(self.opened + last)
    }

    /// A request in flight until the returned guard is dropped (for tests elsewhere).
    #[cfg(test)]
    pub(crate) fn start_request(self: &Arc<Self>) -> impl Drop {
        InFlight::start(self)
    }

    /// Completes once no request has been in flight for `idle`: from the end of the last
    /// request, or from the opening if none came.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            // Registered before the count is read, so an end between the two is not missed.
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            quiet.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                quiet.await;
                continue;
            }
            let last = Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
            // The limit is at most a day (`ServerConfig::validate`): no overflow.
            let deadline = self.opened + last + idle;
            if deadline <= Instant::now() {
                return;
            }
            // A request that comes meanwhile is seen when this wakes: in flight, or a later end.
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request counted in flight until it is answered or dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The end is written before the count drops, so an idle check that sees nothing in
        // flight also sees this request's end.
        a.last_end_ms.fetch_max(ms, Ordering::AcqRel);
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.quiet.notify_waiters();
        }
    }
}

/// A connection's service that counts its requests in an [`Activity`].
#[derive(Debug, Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// `inner`, counting its requests in `activity`.
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S, R> Service<R> for Tracked<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, request: R) -> Self::Future {
        let in_flight = InFlight::start(&self.activity);
        TrackedFuture {
            inner: self.inner.call(request),
            _in_flight: in_flight,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, counted in flight until it is ready or dropped.
    pub(crate) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        _in_flight: InFlight,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Answer;

    impl Service<()> for Answer {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<(), std::convert::Infallible>>;

        fn call(&self, (): ()) -> Self::Future {
            std::future::ready(Ok(()))
        }
    }

    const IDLE: Duration = Duration::from_millis(300);

    /// Real time, short limits: lower bounds are exact, upper ones allow for a slow machine.
    #[tokio::test]
    async fn idle_counts_from_the_last_answer_and_never_while_one_is_in_flight() {
        let activity = Activity::new();
        let service = Tracked::new(Answer, activity.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        service.call(()).await.expect("answer");
        let start = Instant::now();
        activity.idle_for(IDLE).await;
        let waited = start.elapsed();
        assert!(waited >= IDLE - Duration::from_millis(2), "{waited:?}");
        assert!(waited < IDLE * 3, "{waited:?}");

        // A request held in flight for three idle periods keeps the connection busy.
        let held = service.call(());
        let idle = activity.idle_for(IDLE);
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(IDLE * 3, &mut idle).await.is_err(),
            "idle while a request was in flight"
        );
        drop(held);
        let start = Instant::now();
        idle.await;
        let waited = start.elapsed();
        assert!(waited >= IDLE - Duration::from_millis(2), "{waited:?}");
        assert!(waited < IDLE * 3, "{waited:?}");
    }

    #[tokio::test]
    async fn a_connection_that_never_asks_is_idle_from_its_opening() {
        // Half the limit gone before the wait: not idle yet, so the wait ends at the limit
        // counted from the opening, never before.
        let activity = Activity::new();
        tokio::time::sleep(IDLE / 2).await;
        let start = Instant::now();
        activity.idle_for(IDLE).await;
        let waited = start.elapsed();
        assert!(activity.opened.elapsed() >= IDLE, "{waited:?}");

        // The whole limit gone before the wait: idle already, at the first look. (Counted from
        // the call instead, it would wait the whole limit again.) No clock is read here.
        let activity = Activity::new();
        tokio::time::sleep(IDLE).await;
        let idle = std::pin::pin!(activity.idle_for(IDLE));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(
            idle.poll(&mut cx).is_ready(),
            "a connection silent since it opened {:?} ago is not idle for {IDLE:?}",
            activity.opened.elapsed()
        );
    }
}

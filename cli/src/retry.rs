//! Sending a request again when, and only when, kubectl (client-go) would: the API server
//! answered 429 Too Many Requests or a 5xx *with* a `Retry-After` header — it says the request
//! was not carried out, and when to come back (API Priority and Fairness, an overloaded
//! server) — after that many seconds, at most [`MAX_RETRIES`] times, whatever the method.
//!
//! kube-rs's own retry (on by default) also re-sends after a 503 or 504 without one, POSTs and
//! PATCHes included: a 504 Timeout says the request may still be carried out, so a re-sent
//! `POST` of a debug copy came back as "it already exists" — the copy kspy had just created.
//! It is turned off for this ([`crate::cluster::Cluster::connect`]). The whole, retries
//! included, stays within `--request-timeout` ([`crate::request_timeout`] wraps this layer):
//! a wait that would end past it is not begun — the answer that asked for it is final, as
//! client-go's rate limiter refuses a wait beyond the request's deadline — so that a server
//! that did answer, asking to come back later, is reported as such and not as one that never
//! answered.
//!
//! A `GET` is also sent again, at once, when the connection was closed or reset before any
//! answer came (client-go's `IsConnectionReset`/`IsProbableEOF` for GETs): a pooled connection
//! that a load balancer or a restarting API server closed while kspy waited (a watch, an
//! attach session) fails the next read with "connection closed before message completed",
//! where kubectl simply reads again. A write is never sent again so: it may have been carried
//! out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many times one request is sent again, as client-go's default.
pub const MAX_RETRIES: u32 = 10;

/// The wait an answer asks for before the same request is sent again: its `Retry-After`
/// seconds, on a 429 or a 5xx; `None` for any other answer, which is final.
pub fn retry_after(status: StatusCode, headers: &http::HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    let seconds: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The layer that sends a request again as [`retry_after`] says.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerRetry {
    /// `--request-timeout` (`None`: no limit). A wait that would end after it, counted from
    /// when the request was first sent, is not begun: the answer that asked for it is returned.
    pub limit: Option<Duration>,
}

impl<S> tower::Layer<S> for ServerRetry {
    type Service = ServerRetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerRetryService {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            limit: self.limit,
        }
    }
}

/// [`ServerRetry`] around a service, shared by the requests in flight: each is sent through
/// it as often as it is retried.
#[derive(Debug)]
pub struct ServerRetryService<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    limit: Option<Duration>,
}

impl<S> Clone for ServerRetryService<S> {
    fn clone(&self) -> Self {
        ServerRetryService {
            inner: self.inner.clone(),
            limit: self.limit,
        }
    }
}

/// Whether `err`'s chain says the connection was closed or reset before the answer came, as
/// client-go's `IsConnectionReset` and `IsProbableEOF` read it: hyper's "connection closed
/// before message completed", or an I/O error that is a reset, an abort or an unexpected end.
pub fn connection_dropped(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, UnexpectedEof};
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | UnexpectedEof
            ) {
                return true;
            }
        }
        // hyper's `IncompleteMessage` has no source to downcast; its text is stable.
        if e.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether a wait of `wait`, begun `elapsed` after the request was first sent, ends within
/// `limit` (always, without one).
pub fn wait_fits(elapsed: Duration, wait: Duration, limit: Option<Duration>) -> bool {
    limit.is_none_or(|limit| elapsed.saturating_add(wait) < limit)
}

/// A copy of `req` to send again; `None` when its body cannot be copied (a stream).
fn copy(req: &Request<Body>) -> Option<Request<Body>> {
    let mut again = Request::new(req.body().try_clone()?);
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    *again.extensions_mut() = req.extensions().clone();
    Some(again)
}

impl<S, B> tower::Service<Request<Body>> for ServerRetryService<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service's readiness is awaited for each attempt, in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let limit = self.limit;
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let mut req = req;
            let mut retries = 0;
            let read = req.method() == http::Method::GET;
            loop {
                let again = (retries < MAX_RETRIES).then(|| copy(&req)).flatten();
                let answer = {
                    let mut service = inner.lock().await;
                    tower::ServiceExt::ready(&mut *service)
                        .await
                        .map_err(Into::into)?
                        .call(req)
                };
                let response = match (answer.await.map_err(Into::into), again) {
                    (Ok(response), again) => (response, again),
                    (Err(e), Some(next))
                        if read
                            && connection_dropped(e.as_ref())
                            && wait_fits(started.elapsed(), Duration::ZERO, limit) =>
                    {
                        req = next;
                        retries += 1;
                        continue;
                    }
                    (Err(e), _) => return Err(e),
                };
                let (response, again) = response;
                match (retry_after(response.status(), response.headers()), again) {
                    (Some(wait), Some(next)) if wait_fits(started.elapsed(), wait, limit) => {
                        tokio::time::sleep(wait).await;
                        req = next;
                        retries += 1;
                    }
                    _ => return Ok(response),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_naming_when_to_come_back_is_retried() {
        let with = |seconds: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(seconds).expect("value"),
            );
            h
        };
        let none = http::HeaderMap::new();
        let s = |code| StatusCode::from_u16(code).expect("status");
        assert_eq!(
            retry_after(s(429), &with("1")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after(s(503), &with("2")),
            Some(Duration::from_secs(2))
        );
        // A 504 without Retry-After may have been carried out; a 429 without one is final too,
        // as in client-go.
        assert_eq!(retry_after(s(504), &none), None);
        assert_eq!(retry_after(s(429), &none), None);
        assert_eq!(retry_after(s(409), &with("1")), None);
        assert_eq!(retry_after(s(200), &with("1")), None);
        // An HTTP date is not read: client-go reads seconds only.
        assert_eq!(
            retry_after(s(429), &with("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }

    /// A wait that would end at or past --request-timeout is not begun.
    #[test]
    fn a_wait_past_the_request_timeout_is_not_begun() {
        let s = Duration::from_secs;
        assert!(wait_fits(s(0), s(1), Some(s(60))));
        assert!(wait_fits(s(50), s(5), Some(s(60))));
        assert!(!wait_fits(s(0), s(5), Some(s(3))));
        assert!(!wait_fits(s(58), s(2), Some(s(60))));
        assert!(wait_fits(s(1000), s(3600), None));
        assert!(!wait_fits(Duration::MAX, s(1), Some(s(60))));
    }

    /// What client-go reads as a reset or an early end; nothing else.
    #[test]
    fn dropped_connections_are_told_from_other_failures() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (SendRequest)")]
        struct Outer(#[source] Box<dyn std::error::Error + Send + Sync>);
        let io = |kind| Outer(Box::new(std::io::Error::from(kind)));
        assert!(connection_dropped(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(connection_dropped(&io(std::io::ErrorKind::UnexpectedEof)));
        assert!(!connection_dropped(&io(
            std::io::ErrorKind::ConnectionRefused
        )));
        assert!(!connection_dropped(&io(std::io::ErrorKind::TimedOut)));
        let hyper = Outer(Box::new(std::io::Error::other(
            "connection closed before message completed",
        )));
        assert!(connection_dropped(&hyper));
    }
}

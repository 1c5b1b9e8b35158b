//! `--request-timeout`: how long kspy waits for the API server to answer one request, and
//! what it says when no answer comes — told apart from a server that cannot be reached.
//!
//! kube-rs bounds only the connection (TCP and TLS, 30 s); a server that accepts it and then
//! says nothing was waited for without end over plain HTTP, and over HTTPS, where the TLS
//! handshake hangs instead, reported after 30 s as "cannot reach". The limit here covers each
//! request until the answer's head arrives: watches and attach sessions answer at once and then
//! stream, so they are never cut. When a limit passes (this one, or kube-rs's on connecting),
//! kspy tries a bare TCP connection to the first hop — the proxy, else the API server — to say
//! which it is: the address takes connections but nothing answers (a hung or overloaded API
//! server, proxy or load balancer), or nothing takes them at all.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::wait::format_duration;

/// `--request-timeout`'s default. The API server gives up on a request itself after 60 s
/// (kube-apiserver's own `--request-timeout`) and answers 504, so a live server always
/// answers within it, however slow its admission webhooks (up to 30 s each); only a server,
/// proxy or load balancer that has stopped answering is caught.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "60s";

/// How long the TCP probe after a timeout may take: a reachable address on any network
/// accepts a connection far sooner.
const PROBE_LIMIT: Duration = Duration::from_secs(3);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request that got no answer within `after`.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {}", format_duration(*after))]
pub struct NoAnswer {
    /// The limit that passed: `--request-timeout`, or the limit on connecting.
    pub after: Duration,
    /// Whether it was the limit on connecting (TCP, TLS, a proxy's tunnel), which
    /// `--request-timeout` can shorten but not lengthen.
    pub connecting: bool,
    /// Whether the first hop (`host:port`) took a TCP connection when probed afterwards:
    /// true, it is up but not answering; false, nothing is there to answer.
    pub connected: bool,
    /// The `host:port` probed: the proxy's, else the API server's.
    pub hop: String,
}

/// The layer that puts [`NoAnswer`] on every request of a kube client.
#[derive(Debug, Clone)]
pub struct AnswerTimeout {
    /// `--request-timeout`; `None` for no limit.
    pub limit: Option<Duration>,
    /// kube-rs's limit on connecting, whose expiry is reported as a [`NoAnswer`] too.
    pub connect_limit: Option<Duration>,
    /// `host:port` of the first hop, for the probe.
    pub hop: String,
}

impl<S> tower::Layer<S> for AnswerTimeout {
    type Service = AnswerTimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnswerTimeoutService {
            inner,
            settings: self.clone(),
        }
    }
}

/// [`AnswerTimeout`] around a service.
#[derive(Debug, Clone)]
pub struct AnswerTimeoutService<S> {
    inner: S,
    settings: AnswerTimeout,
}

impl<S, Req> tower::Service<Req> for AnswerTimeoutService<S>
where
    S: tower::Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let answer = self.inner.call(req);
        let settings = self.settings.clone();
        Box::pin(async move {
            // The inner error becomes a BoxError at once: it need not be Send across an await.
            let result: Result<Result<S::Response, BoxError>, Duration> = match settings.limit {
                Some(limit) => tokio::time::timeout(limit, answer)
                    .await
                    .map(|r| r.map_err(Into::into))
                    .map_err(|_| limit),
                None => Ok(answer.await.map_err(Into::into)),
            };
            let result = match result {
                Ok(result) => result,
                Err(limit) => return Err(no_answer(limit, false, &settings.hop).await),
            };
            match (result, settings.connect_limit) {
                (Err(e), Some(limit)) if timed_out(e.as_ref()) => {
                    Err(no_answer(limit, true, &settings.hop).await)
                }
                (other, _) => other,
            }
        })
    }
}

/// Whether `err`'s chain holds a timed-out I/O error: kube-rs's limit on connecting (or the
/// system's own on a TCP connection) passed.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The [`NoAnswer`] for a limit `after` that passed (on `connecting`), with the probe of
/// `hop` done.
async fn no_answer(after: Duration, connecting: bool, hop: &str) -> BoxError {
    let connected = matches!(
        tokio::time::timeout(PROBE_LIMIT, tokio::net::TcpStream::connect(hop)).await,
        Ok(Ok(_))
    );
    Box::new(NoAnswer {
        after,
        connecting,
        connected,
        hop: hop.to_string(),
    })
}

/// `host:port` of `url`, the port from the scheme when it has none (`[::1]:443` for IPv6).
pub fn host_port(url: &http::Uri) -> String {
    let host = url.host().unwrap_or("localhost");
    let port = url.port_u16().unwrap_or(match url.scheme_str() {
        Some("http") => 80,
        Some("socks5" | "socks5h") => 1080,
        _ => 443,
    });
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hops() {
        let hop = |u: &str| host_port(&u.parse().expect("uri"));
        assert_eq!(hop("https://10.0.0.1:6443"), "10.0.0.1:6443");
        assert_eq!(hop("https://api.example.com"), "api.example.com:443");
        assert_eq!(hop("http://proxy:3128"), "proxy:3128");
        assert_eq!(hop("http://proxy"), "proxy:80");
        assert_eq!(hop("socks5://proxy"), "proxy:1080");
        assert_eq!(hop("https://[::1]:6443"), "[::1]:6443");
    }

    #[test]
    fn connect_timeouts_are_recognized_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline has elapsed",
        ));
        assert!(timed_out(&e));
        let e = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!timed_out(&e));
    }
}

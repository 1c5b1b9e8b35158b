//! The accept loop shared by the webhook port, the admin port and the floor server: TCP
//! accept (at most so many connections open), the rustls handshake (with a deadline) where the
//! port speaks TLS, HTTP/1.1 or HTTP/2 by what the client speaks, deadlines on what each
//! connection reads and writes, graceful shutdown that lets in-flight requests finish.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::eviction::Registry;
use crate::idle_close::{Activity, Tracked};
use crate::io_deadlines::{IoDeadlines, LimitPassed};
use crate::metrics::{ConnectionClosed, Metrics};

/// How often a client waiting for a slot, with every connection busy, looks again for one
/// gone idle to close for it (eviction.rs).
const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// The HTTP/2 flow-control window of a stream and of a connection: the most a client can have
/// sent that kspy has not read yet (RFC 9113's initial value).
pub(crate) const HTTP2_WINDOW: u32 = 65_535;

/// The largest request head (request line and header fields) a client may send, on either
/// protocol: HTTP/2's header list limit, and HTTP/1.1's read buffer (a head that does not end
/// within it gets 431). What the API server sends is well under 1 KiB (a bearer token
/// included, a few KiB). hyper's HTTP/1.1 default (about 400 KiB) let each connection hold
/// that much of an unfinished head: 200 connections sending 390 KiB heads took the RSS up by
/// 82 MiB, and `--max-connections` of them would have taken 400 MiB.
pub(crate) const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The most requests an HTTP/2 client may have open on one connection at once. A stream holds
/// its answer until the client's flow-control window lets it out, and a client that opens no
/// window (or a window of a byte) never lets it out: with hyper's default of 200, such a
/// connection held 316 KiB more than an idle one, and `--max-connections` of them would have
/// held 320 MiB. At 16 a connection holds about 20 KiB that way; HTTP/2 clients open another
/// connection when they want more at once (Go's does; `kspy-load --http2` shares one
/// connection between 16 workers).
pub(crate) const HTTP2_MAX_STREAMS: u32 = 16;

/// At most one warning per this long about refused client certificates (`--client-ca`); the
/// next one says how many were not logged. Every refusal is counted all the same
/// (`kspy_connections_closed_total{reason="client-cert-refused"}`): a pod flooding the port
/// with handshakes cannot fill the log.
pub(crate) const CLIENT_CERT_LOG_EVERY: Duration = Duration::from_secs(5);

/// How many connections may be open, how long a connection may take over each step, and how
/// idle HTTP/2 connections are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once (default 1 024). With every slot taken, the connection
    /// idle the longest is closed for the next client (eviction.rs); while all have a request
    /// in flight, new connections wait, their TLS handshake (and its time limit) not yet
    /// started. Each open connection holds buffers
    /// (about 35 KiB once it has served a review), so without a bound a client opening
    /// connections and keeping them could exhaust the pod's memory; 1 024 fit within the
    /// Deployment's 128 Mi limit.
    pub max_connections: usize,
    /// Longest a client may take to complete the TLS handshake (default 10 s).
    pub handshake: Duration,
    /// Longest a client may wait, after the handshake, before it starts its first request
    /// (default 10 s).
    pub first_request: Duration,
    /// Longest an HTTP/1.1 request head may take, from its first byte to its blank line
    /// (default 10 s).
    pub request_head: Duration,
    /// Longest a write may wait for the client to take any of it (default 10 s): a client
    /// that sends requests and does not read the answers is closed then, on either protocol,
    /// instead of holding its connection for ever on a write that cannot complete.
    pub write_stall: Duration,
    /// Longest an idle connection stays open, counted from the end of the previous response
    /// (default 120 s). For HTTP/1.1 it is hyper's header-read timer, which also runs while
    /// the connection is idle (heads are held to `request_head` besides); an HTTP/2
    /// connection with no request in flight for this long is closed with a GOAWAY, even if
    /// its peer answers every ping (`src/idle_close.rs`).
    /// It is longer than the API server's 90 s idle-connection timeout on purpose: the client
    /// then closes an idle connection first, and never writes a review onto a connection the
    /// server is closing, which it would not retry (Go does not resend a POST).
    pub keep_alive_idle: Duration,
    /// How often an HTTP/2 connection with nothing received is pinged, so a peer that
    /// vanished without closing (its node gone) does not hold it for ever (default 30 s).
    pub http2_ping_interval: Duration,
    /// How long a ping may go unanswered before the HTTP/2 connection is closed (default
    /// 20 s).
    pub http2_ping_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            handshake: Duration::from_secs(10),
            first_request: Duration::from_secs(10),
            request_head: Duration::from_secs(10),
            write_stall: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(120),
            http2_ping_interval: Duration::from_secs(30),
            http2_ping_timeout: Duration::from_secs(20),
        }
    }
}

/// What a port does with a TCP connection before HTTP: the TLS handshake, or nothing.
pub(crate) trait Handshake: Clone + Send + Sync + 'static {
    /// The connection HTTP is spoken over.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Takes `tcp` through the handshake (held to `ConnectionLimits::handshake` by the caller).
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Handshake for TlsAcceptor {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send {
        self.accept(tcp)
    }
}

/// Plain HTTP (the admin port): no handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = std::io::Result<Self::Io>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// Serves `service` on `listener` (after `handshake`, TLS or none) until `shutdown` turns true,
/// then stops accepting, asks every connection to close once its current requests are
/// answered, and waits up to `grace` for them. Connections are held to `limits`, and counted
/// in `metrics` if given.
pub(crate) async fn serve<H, S, B>(
    listener: TcpListener,
    handshake: H,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    limits: ConnectionLimits,
    metrics: Option<Arc<Metrics>>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    H: Handshake,
{
    // Named in the warnings, so that the admin port's are told from the webhook port's.
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.keep_alive_idle)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_ping_interval)
        .keep_alive_timeout(limits.http2_ping_timeout)
        // What a client may send before kspy reads it is held by hyper, outside the body
        // budget: hyper's default window (1 MiB per connection) let 60 HTTP/2 uploads waiting
        // for room hold 100 MiB. At the protocol's own default a connection holds at most
        // 64 KiB, which also covers a whole review of the usual size.
        .initial_stream_window_size(HTTP2_WINDOW)
        .initial_connection_window_size(HTTP2_WINDOW)
        .adaptive_window(false)
        .max_header_list_size(MAX_REQUEST_HEAD as u32)
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
    let builder = Arc::new(builder);
    // A slot per open connection, taken before accepting it and given back when it closes.
    // At most u32::MAX, so that all of them can be taken back at once at shutdown, and at
    // most what a semaphore holds (less than that on 32-bit targets).
    let all = u32::try_from(limits.max_connections.min(Semaphore::MAX_PERMITS))
        .unwrap_or(u32::MAX)
        .max(1);
    let max_connections = all as usize;
    let slots = Arc::new(Semaphore::new(max_connections));

    // Whether the slots ran out since one was last free: the warning and the count are once
    // per time they run out, not once per connection accepted while they stay short.
    let mut full = false;
    // The open connections, for making room for a newcomer at the limit (eviction.rs).
    let registry = Arc::new(Registry::default());
    let refusals = Arc::new(LogThrottle::new(CLIENT_CERT_LOG_EVERY));

    loop {
        let free = slots.available_permits() > 0;
        if !free && !full {
            tracing::warn!(
                %addr,
                max_connections = limits.max_connections,
                "every connection slot is taken; a new client gets the slot of the connection idle the longest, or waits while all are busy"
            );
            if let Some(metrics) = &metrics {
                metrics.connection_limit_reached();
            }
        }
        full = !free;
        // The client is taken from the listen queue first, so that a slot is made for it only
        // when one is waiting.
        let (tcp, peer) = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%addr, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            // Every slot taken: the connection idle the longest closes for this one; while
            // all have requests in flight, it waits for one to end (looked at again every
            // EVICTION_RETRY) or to close. One is evicted per newcomer: one slow to close
            // (an HTTP/2 connection sending its last answers) is waited for.
            Err(_) => {
                let mut evicted = false;
                let waited = loop {
                    if !evicted {
                        evicted = registry.evict_idlest();
                    }
                    tokio::select! {
                        biased;
                        () = stopped(&mut shutdown) => break None,
                        slot = slots.clone().acquire_owned() => break slot.ok(),
                        () = tokio::time::sleep(EVICTION_RETRY) => {}
                    }
                };
                match waited {
                    Some(slot) => slot,
                    None => break,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut stop = shutdown.clone();
        let handshake = handshake.clone();
        let service = service.clone();
        let builder = builder.clone();
        let open = metrics.as_ref().map(Metrics::connection_opened);
        let metrics = metrics.clone();
        let closed = move |reason: ConnectionClosed| {
            if let Some(metrics) = &metrics {
                metrics.connection_closed(reason);
            }
        };
        // Counted from now: a connection in its TLS handshake is as idle as one between
        // requests, and goes first when a newcomer needs its slot.
        let activity = Activity::new();
        let registered = registry.register(activity.clone());
        let refusals = refusals.clone();
        tokio::spawn(async move {
            // Held until the connection ends, however it ends.
            let _slot = (slot, open);
            let evicted = registered.evicted.clone();
            let _registered = registered;
            let handshaken = tokio::select! {
                handshaken = tokio::time::timeout(limits.handshake, handshake.handshake(tcp)) => handshaken,
                // A connection still in its handshake has no request to finish: at shutdown it
                // closes at once, instead of holding the shutdown up to the handshake limit.
                () = stopped(&mut stop) => {
                    tracing::debug!(%peer, "closing a connection still in its TLS handshake at shutdown");
                    return;
                }
                () = evicted.notified() => {
                    tracing::debug!(%peer, "closing a connection still in its TLS handshake for a newcomer at the connection limit");
                    closed(ConnectionClosed::Evicted);
                    return;
                }
            };
            let io = match handshaken {
                Ok(Ok(io)) => io,
                Ok(Err(err)) => {
                    if let Some(refusal) = client_cert_refusal(&err) {
                        if let Some(not_logged) = refusals.admit(tokio::time::Instant::now()) {
                            tracing::warn!(
                                %peer,
                                reason = %describe_refusal(refusal),
                                not_logged,
                                "client certificate refused; TLS handshake failed"
                            );
                        }
                        closed(ConnectionClosed::ClientCertRefused);
                        return;
                    }
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    closed(ConnectionClosed::HandshakeFailed);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    closed(ConnectionClosed::HandshakeTimeout);
                    return;
                }
            };
            // Until the first byte neither protocol's own timeout runs, hyper's header
            // timer is as long as the idle limit, and no write has a limit
            // (io_deadlines.rs).
            let io = IoDeadlines::new(
                io,
                limits.first_request,
                limits.request_head,
                limits.write_stall,
            );
            let service = Tracked::new(service, activity.clone());
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let idle = activity.idle_for(limits.keep_alive_idle);
            tokio::pin!(idle);
            // Asked to close (shutdown, idle for too long, or evicted for a newcomer), the
            // connection finishes the requests it has and then ends.
            let mut closing = false;
            // Closing an idle connection waits only for answers to go out, which the
            // client has had every chance to take: an HTTP/2 client that opens no
            // flow-control window for them would keep the connection open for ever.
            let stalled = tokio::time::sleep(Duration::MAX);
            tokio::pin!(stalled);
            let mut idle_closed = false;
            let ended = loop {
                tokio::select! {
                    ended = conn.as_mut() => break ended,
                    () = stopped(&mut stop), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = &mut idle, if !closing => {
                        tracing::debug!(%peer, "closing an idle connection");
                        closing = true;
                        idle_closed = true;
                        if let Some(at) = tokio::time::Instant::now().checked_add(limits.write_stall) {
                            stalled.as_mut().reset(at);
                        }
                        conn.as_mut().graceful_shutdown();
                    }
                    () = evicted.notified(), if !closing => {
                        tracing::debug!(%peer, "closing an idle connection for a newcomer at the connection limit");
                        closed(ConnectionClosed::Evicted);
                        closing = true;
                        idle_closed = true;
                        if let Some(at) = tokio::time::Instant::now().checked_add(limits.write_stall) {
                            stalled.as_mut().reset(at);
                        }
                        conn.as_mut().graceful_shutdown();
                    }
                    () = &mut stalled, if idle_closed => {
                        tracing::debug!(
                            %peer,
                            "closing an idle connection whose client took none of its answers within the write limit"
                        );
                        closed(ConnectionClosed::WriteStall);
                        return;
                    }
                }
            };
            if let Err(err) = ended {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
                match LimitPassed::of(&*err) {
                    Some(LimitPassed::FirstRequest) => {
                        closed(ConnectionClosed::FirstRequestTimeout)
                    }
                    Some(LimitPassed::RequestHead) => closed(ConnectionClosed::HeadTimeout),
                    Some(LimitPassed::WriteStall) => closed(ConnectionClosed::WriteStall),
                    // hyper answered 431 itself (MAX_REQUEST_HEAD) and closed.
                    None if err
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_parse_too_large) =>
                    {
                        closed(ConnectionClosed::HeadTooLarge);
                    }
                    // hyper answered 400 itself, with no reason, to a head it could not parse.
                    None if err
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_parse) =>
                    {
                        closed(ConnectionClosed::HeadMalformed);
                    }
                    None => {}
                }
            }
        });
    }
    drop(listener);
    // Every slot back means every connection ended; each was asked to close when `shutdown`
    // turned true, and closes once its current requests are answered.
    let open = max_connections - slots.available_permits();
    if open > 0 {
        tracing::info!(connections = open, "waiting for in-flight requests");
    }
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs_f64(),
            "connections still open after the grace period; closing"
        );
    }
}

/// The rustls error of a failed handshake, when the server refused the client's certificate:
/// none presented, or one that failed verification (a server verifies no other certificate,
/// so `InvalidCertificate` is always the client's). tokio-rustls hands rustls' error over
/// inside the `io::Error`. A client refusing kspy's own certificate is not one of these: the
/// server then sees the client's alert (`AlertReceived`).
fn client_cert_refusal(err: &std::io::Error) -> Option<&rustls::Error> {
    let tls = err.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(
        tls,
        rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_)
    )
    .then_some(tls)
}

/// Why a client certificate was refused, for the log.
fn describe_refusal(err: &rustls::Error) -> String {
    use rustls::CertificateError;
    match err {
        rustls::Error::NoCertificatesPresented => {
            "no client certificate presented (one issued by a --client-ca CA is required)".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the client certificate does not chain to a --client-ca CA (unknown issuer)".into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        ) => format!(
            "the client certificate is not for client authentication (it needs the clientAuth \
             extended key usage): {err}"
        ),
        // kspy_certs::ClientNameRefused: the names the certificate had and those allowed.
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other.to_string(),
        other => other.to_string(),
    }
}

/// Lets a line through at most once per `every`, and counts the ones held back in between.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    every: Duration,
    /// When a line was last let through, and how many were held back since.
    state: Mutex<(Option<tokio::time::Instant>, u64)>,
}

impl LogThrottle {
    /// A throttle letting the first line through.
    pub(crate) fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Whether a line may be written at `now`: if so, how many were held back since the last
    /// one written (and the count starts again); if not, `None`, and it is counted.
    pub(crate) fn admit(&self, now: tokio::time::Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held_back) = &mut *state;
        match last {
            Some(at) if now.saturating_duration_since(*at) < self.every => {
                *held_back += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held_back))
            }
        }
    }
}

/// Completes once `rx` holds `true` (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(throttle.admit(at(0)), Some(0));
        assert_eq!(throttle.admit(at(1)), None);
        assert_eq!(throttle.admit(at(4_999)), None);
        assert_eq!(throttle.admit(at(5_000)), Some(2));
        assert_eq!(throttle.admit(at(6_000)), None);
        assert_eq!(throttle.admit(at(60_000)), Some(1));
        assert_eq!(throttle.admit(at(70_000)), Some(0));
    }

    #[test]
    fn only_client_certificate_failures_are_refusals() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(client_cert_refusal(&io(rustls::Error::NoCertificatesPresented)).is_some());
        assert!(
            client_cert_refusal(&io(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )))
            .is_some()
        );
        // The client refusing kspy's certificate, an old protocol, plain I/O.
        assert!(
            client_cert_refusal(&io(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            )))
            .is_none()
        );
        assert!(
            client_cert_refusal(&io(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::SupportedVersionsExtensionRequired
            )))
            .is_none()
        );
        assert!(client_cert_refusal(&std::io::Error::other("reset")).is_none());
    }
}

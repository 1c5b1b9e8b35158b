//! Deadlines on what a connection reads and writes: its first request must start in time,
//! each HTTP/1.1 request head, once started, must end in time, and what the server writes
//! must be taken by the client in time.
//!
//! hyper's HTTP/1.1 header-read timeout starts once it knows the connection speaks HTTP/1.1,
//! and it is one timer for the idle time before a request and for the request's head, so it is
//! set long (120 s) to outlast the API server's idle keep-alive. The HTTP/2 handshake waits for
//! the client's preface with no limit, and before either the server reads the first bytes to
//! tell the two apart, also with no limit. So, unguarded, a client that completed the TLS
//! handshake and then sent nothing held its connection (a task, TLS buffers, a file
//! descriptor, one of the `max_connections` slots) for ever, and one that sent a request head
//! a byte at a time held it for up to 120 s.
//!
//! Neither protocol limits a write either: a client that sent requests (pipelined HTTP/1.1
//! ones, say) and never read the answers filled the socket's buffers, and the connection then
//! waited for ever on a write that could not complete, its idle timer not running.
//!
//! [`IoDeadlines`] fails the connection's reads when:
//! - no byte arrived within the first-request limit;
//! - an HTTP/1.1 request head started (its first byte read, at the start or after the answer
//!   to the previous request was written) and has not ended (a blank line) within the head
//!   limit.
//!
//! Between requests it sets no read limit (hyper's idle limit applies), nor while a body is
//! read (the review's own deadline applies), nor on an HTTP/2 connection (recognised by its
//! preface), whose frames have their own checks.
//!
//! It fails the connection's writes (and flushes) when one has waited for the client to take
//! bytes for the write limit without any being taken, on either protocol.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Which limit failed a read or a write: the source of the [`io::Error`] (kind
/// [`io::ErrorKind::TimedOut`]) it failed with, so that whoever ends the connection can tell
/// ([`LimitPassed::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitPassed {
    /// No byte arrived within the first-request limit.
    #[error("the client sent no request within the first-request limit")]
    FirstRequest,
    /// An HTTP/1.1 request head did not end within the head limit.
    #[error("the client did not finish its request head within the request-head limit")]
    RequestHead,
    /// A write waited for the write limit with nothing taken.
    #[error("the client took none of the answer within the write limit")]
    WriteStall,
}

impl LimitPassed {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self)
    }

    /// The limit behind `err`, if one of its causes (or itself) is an I/O error a limit made.
    pub(crate) fn of(err: &(dyn std::error::Error + 'static)) -> Option<LimitPassed> {
        let mut cause = Some(err);
        while let Some(e) = cause {
            if let Some(limit) = e.downcast_ref::<LimitPassed>() {
                return Some(*limit);
            }
            if let Some(limit) = e
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<LimitPassed>())
            {
                return Some(*limit);
            }
            cause = e.source();
        }
        None
    }
}

/// The HTTP/2 client preface, which hyper reads whole before it speaks HTTP/2. It is watched
/// by the first-request limit until it is whole: a client that sent its first bytes (`PRI `)
/// and then nothing used to be taken for HTTP/2 at once and held its connection for the
/// 120 s idle limit, where one that sent nothing, or half an HTTP/1.1 head, is closed at 10 s.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The interim answer hyper writes when it starts reading the body of a request that asked
/// for it (`Expect: 100-continue`). It answers nothing: the body follows it, and is not the
/// next request's head.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where a connection is, as far as its reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing received, or only the first `sniffed` bytes of the HTTP/2 preface.
    Opening { sniffed: usize },
    /// In an HTTP/1.1 request head. `newline`: 1 after a line feed, 2 after a line feed and a
    /// carriage return, else 0; a line feed then ends the head (a blank line, CRLF or LF).
    Head { newline: u8 },
    /// Past a request head: its body and its answer. Nothing is watched until the answer is
    /// written.
    Body,
    /// Between requests: the next byte starts a head.
    Idle,
    /// HTTP/2: nothing is watched.
    Http2,
}

/// `inner`, whose reads fail with [`io::ErrorKind::TimedOut`] when the first request does not
/// start within the first-request limit, or an HTTP/1.1 request head does not end within the
/// head limit, and whose writes fail the same way when the client takes nothing for the write
/// limit (see the module's documentation).
#[derive(Debug)]
pub(crate) struct IoDeadlines<S> {
    inner: S,
    phase: Phase,
    request_head: Duration,
    /// When the limit of the current phase (opening or head) passes. A head's is set only when
    /// a read of it has to wait: most heads arrive whole, and then no timer is touched.
    deadline: Option<Pin<Box<Sleep>>>,
    write_stall: Duration,
    /// When a write waiting for the client fails: set when a write (or flush) first has to
    /// wait, cleared when bytes go out.
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> IoDeadlines<S> {
    /// Wraps `inner`: the first byte must arrive within `first_request` from now, each
    /// HTTP/1.1 request head must end within `request_head` of the first time a read of it
    /// waits (its first byte, give or take a read), and a write that waits must see the client
    /// take bytes within `write_stall`.
    pub(crate) fn new(
        inner: S,
        first_request: Duration,
        request_head: Duration,
        write_stall: Duration,
    ) -> Self {
        IoDeadlines {
            inner,
            phase: Phase::Opening { sniffed: 0 },
            request_head,
            deadline: Some(Box::pin(tokio::time::sleep(first_request))),
            write_stall,
            write_deadline: None,
        }
    }

    /// What a write or flush that returned `polled` comes to: progress clears the write
    /// deadline; waiting starts it, or fails once it has passed.
    fn check_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let stall = self.write_stall;
                let deadline = self
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(LimitPassed::WriteStall.into_io()))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }

    fn start_head(&mut self) {
        self.phase = Phase::Head { newline: 0 };
        self.deadline = None;
    }

    /// Moves the phase on over bytes just read.
    fn saw(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.phase {
                Phase::Opening { sniffed } => {
                    let n = (HTTP2_PREFACE.len() - sniffed).min(bytes.len());
                    if bytes[..n] == HTTP2_PREFACE[sniffed..sniffed + n] {
                        if sniffed + n == HTTP2_PREFACE.len() {
                            self.phase = Phase::Http2;
                            self.deadline = None;
                        } else {
                            self.phase = Phase::Opening {
                                sniffed: sniffed + n,
                            };
                        }
                        bytes = &bytes[n..];
                    } else {
                        // HTTP/1.1 (hyper refuses a request line that starts as the preface
                        // does, and closes).
                        self.start_head();
                    }
                }
                Phase::Idle => self.start_head(),
                Phase::Head { newline } => match head_end(newline, bytes) {
                    Ok(end) => {
                        self.phase = Phase::Body;
                        self.deadline = None;
                        bytes = &bytes[end..];
                    }
                    Err(newline) => {
                        self.phase = Phase::Head { newline };
                        return;
                    }
                },
                Phase::Body | Phase::Http2 => return,
            }
        }
    }

    /// `n` bytes went out, the first of them `first` (the start of what was written, at
    /// most `n` bytes): an answer, after which the next bytes read start a new request; or
    /// only the interim `100 Continue`, after which the body still follows. Taken for an
    /// answer, it left the body watched as a head: a body sent after it more slowly than the
    /// head limit (10 s) was cut off, though the review deadline (up to 30 s) allowed it.
    fn wrote(&mut self, n: usize, first: &[u8]) {
        if n == 0 {
            return;
        }
        let interim = n == first.len() && n <= CONTINUE.len() && CONTINUE.starts_with(first);
        match self.phase {
            Phase::Body if interim => {}
            Phase::Head { .. } | Phase::Body => self.phase = Phase::Idle,
            _ => {}
        }
    }
}

/// Where in `bytes` a request head ends (just past its blank line), given what of its end was
/// seen before them (`newline`, as in [`Phase::Head`]); or, if it does not end in them, what of
/// its end has been seen after them. Jumps from line feed to line feed.
fn head_end(mut newline: u8, bytes: &[u8]) -> Result<usize, u8> {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (newline, b) {
            (0, _) => match memchr::memchr(b'\n', &bytes[i..]) {
                Some(at) => {
                    newline = 1;
                    i += at + 1;
                }
                None => return Err(0),
            },
            (_, b'\n') => return Ok(i + 1),
            (1, b'\r') => {
                newline = 2;
                i += 1;
            }
            // Anything else ends the line-end run; look for the next line feed from here.
            _ => newline = 0,
        }
    }
    Err(newline)
}

impl<S: AsyncRead + Unpin> AsyncRead for IoDeadlines<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let limit = match this.phase {
                    Phase::Opening { .. } => LimitPassed::FirstRequest,
                    Phase::Head { .. } => LimitPassed::RequestHead,
                    Phase::Body | Phase::Idle | Phase::Http2 => return Poll::Pending,
                };
                let head = this.request_head;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(head)));
                if deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(limit.into_io()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IoDeadlines<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(n, &buf[..n.min(buf.len())]);
        }
        this.check_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            this.wrote(n, &first[..n.min(first.len())]);
        }
        this.check_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        this.check_write(cx, flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing TLS writes its close_notify: a client that reads nothing stalls that too.
        let this = self.get_mut();
        let shut = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check_write(cx, shut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const LONG: Duration = Duration::from_secs(60);

    fn guarded(first: Duration, head: Duration) -> (DuplexStream, IoDeadlines<DuplexStream>) {
        let (client, server) = tokio::io::duplex(1024);
        (client, IoDeadlines::new(server, first, head, LONG))
    }

    /// Reads until the read fails, within 5 s; the error.
    async fn read_until_error(g: &mut IoDeadlines<DuplexStream>) -> io::Error {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(err) = g.read(&mut buf).await {
                    return err;
                }
            }
        })
        .await
        .expect("the read failed within 5 s")
    }

    /// `err` is the time-out of the `limit` limit.
    fn timed_out(err: &io::Error, limit: &str) {
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains(limit), "{err}");
    }

    /// True when a read is still waiting after `wait`.
    async fn still_waiting(g: &mut IoDeadlines<DuplexStream>, wait: Duration) -> bool {
        let mut buf = [0u8; 64];
        tokio::time::timeout(wait, g.read(&mut buf)).await.is_err()
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (_client, mut g) = guarded(Duration::from_millis(50), LONG);
        let err = read_until_error(&mut g).await;
        timed_out(&err, "first-request");
        assert_eq!(LimitPassed::of(&err), Some(LimitPassed::FirstRequest));
        // Found however deep it is wrapped, as hyper wraps it.
        #[derive(Debug, thiserror::Error)]
        #[error("connection error")]
        struct Wrapper(#[source] io::Error);
        assert_eq!(
            LimitPassed::of(&Wrapper(err)),
            Some(LimitPassed::FirstRequest)
        );
        assert_eq!(LimitPassed::of(&io::Error::other("other")), None);
    }

    #[tokio::test]
    async fn a_request_head_must_end_within_its_limit() {
        let (mut client, mut g) = guarded(LONG, Duration::from_millis(100));
        client
            .write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        timed_out(&read_until_error(&mut g).await, "request-head");
    }

    #[tokio::test]
    async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_limit() {
        let (mut client, mut g) = guarded(LONG, Duration::from_millis(300));
        let trickle = tokio::spawn(async move {
            for b in b"POST /validate HTTP/1.1\r\nX-Slow: "
                .iter()
                .cycle()
                .take(200)
            {
                if client.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let started = std::time::Instant::now();
        timed_out(&read_until_error(&mut g).await, "request-head");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_secs(2),
            "{took:?}"
        );
        drop(g);
        let _ = trickle.await;
    }

    #[tokio::test]
    async fn between_requests_and_during_bodies_nothing_is_limited() {
        let head = Duration::from_millis(100);
        let (mut client, mut g) = guarded(head, head);
        let mut buf = [0u8; 256];
        // A whole head in two pieces, LF-only line ends in the second, and the body's start.
        client
            .write_all(b"POST /validate HTTP/1.1\r\nHo")
            .await
            .expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        client.write_all(b"st: x\n\n{\"ki").await.expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        // The body is slow: not this wrapper's business.
        assert!(still_waiting(&mut g, head * 3).await);
        client.write_all(b"nd\"}").await.expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        g.write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("answer");
        // Idle between requests, longer than either limit.
        assert!(still_waiting(&mut g, head * 3).await);
        // The next head has its own limit again.
        client
            .write_all(b"POST /validate HTTP/1.1\r\n")
            .await
            .expect("write");
        timed_out(&read_until_error(&mut g).await, "request-head");
    }

    #[tokio::test]
    async fn a_write_the_client_never_takes_fails_at_the_write_limit() {
        let (mut client, server) = tokio::io::duplex(1024);
        let stall = Duration::from_millis(200);
        let mut g = IoDeadlines::new(server, LONG, LONG, stall);
        // Taken in pieces: every piece resets the limit, however long the whole write takes.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 4096 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                total += client.read(&mut buf).await.expect("read");
            }
            client
        });
        g.write_all(&[b'x'; 4096])
            .await
            .expect("written as it was taken");
        let _client = reader.await.expect("reader");
        // Not taken at all: the write fails once the limit passed, and so does a flush.
        let err = tokio::time::timeout(Duration::from_secs(5), g.write_all(&[b'y'; 4096]))
            .await
            .expect("the write failed within 5 s")
            .expect_err("nobody reads");
        timed_out(&err, "write limit");
    }

    #[tokio::test]
    async fn an_http2_connection_is_not_watched() {
        let head = Duration::from_millis(100);
        let (mut client, mut g) = guarded(head, head);
        let mut buf = [0u8; 64];
        // The preface split after "PR": still recognised.
        client.write_all(b"PR").await.expect("write");
        assert_eq!(g.read(&mut buf).await.expect("read"), 2);
        client
            .write_all(b"I * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        g.write_all(b"settings").await.expect("write");
        client
            .write_all(b"\x00\x00\x00frames")
            .await
            .expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        assert!(still_waiting(&mut g, head * 3).await);
    }

    #[tokio::test]
    async fn an_unfinished_http2_preface_is_held_to_the_first_request_limit() {
        let (mut client, mut g) = guarded(Duration::from_millis(100), LONG);
        let mut buf = [0u8; 64];
        client
            .write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        let err = read_until_error(&mut g).await;
        timed_out(&err, "first-request");
    }

    #[tokio::test]
    async fn a_body_sent_after_100_continue_is_not_watched_as_a_head() {
        let head = Duration::from_millis(100);
        let (mut client, mut g) = guarded(LONG, head);
        let mut buf = [0u8; 256];
        client
            .write_all(
                b"POST /validate HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n",
            )
            .await
            .expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        g.write_all(CONTINUE).await.expect("continue");
        client.write_all(b"{\"ki").await.expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        // The rest of the body is slow: the review deadline's business, not the head limit's.
        assert!(still_waiting(&mut g, head * 3).await);
        client.write_all(b"nd\"}").await.expect("write");
        assert!(g.read(&mut buf).await.expect("read") > 0);
        // The interim answer and the final one written at once: an answer.
        g.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("answer");
        assert!(
            still_waiting(&mut g, head * 3).await,
            "idle between requests"
        );
        client
            .write_all(b"POST /validate HTTP/1.1\r\n")
            .await
            .expect("write");
        timed_out(&read_until_error(&mut g).await, "request-head");
    }

    /// The head's end found a byte at a time, as the definition says.
    fn head_end_bytewise(mut newline: u8, bytes: &[u8]) -> Result<usize, u8> {
        for (i, &b) in bytes.iter().enumerate() {
            newline = match (b, newline) {
                (b'\n', 0) => 1,
                (b'\n', _) => return Ok(i + 1),
                (b'\r', 1) => 2,
                _ => 0,
            };
        }
        Err(newline)
    }

    #[test]
    fn line_feed_jumps_find_what_a_byte_at_a_time_finds() {
        // Every string of up to 8 bytes over `a`, CR and LF, from every starting state.
        let alphabet = [b'a', b'\r', b'\n'];
        for len in 0..=8u32 {
            for mut n in 0..3usize.pow(len) {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[n % 3];
                        n /= 3;
                        b
                    })
                    .collect();
                for newline in 0..=2 {
                    assert_eq!(
                        head_end(newline, &bytes),
                        head_end_bytewise(newline, &bytes),
                        "{newline} {bytes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_head_ends_at_a_blank_line_however_it_is_split() {
        // The wrapper holds a timer, which needs a runtime to be made.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _entered = rt.enter();
        let fresh = || IoDeadlines::new(tokio::io::duplex(8).1, LONG, LONG, LONG);
        let head = b"POST / HTTP/1.1\r\nHost: x\r\n\r\nbody\r\n\r\n";
        for split in 0..=head.len() {
            let mut g = fresh();
            g.saw(&head[..split]);
            g.saw(&head[split..]);
            assert_eq!(g.phase, Phase::Body, "split at {split}");
        }
        let mut g = fresh();
        g.saw(b"GET / HTTP/1.1\r\nA: b\rc\r\n");
        assert_eq!(
            g.phase,
            Phase::Head { newline: 1 },
            "a lone CR ends nothing"
        );
        g.saw(b"\r");
        assert_eq!(g.phase, Phase::Head { newline: 2 });
        g.saw(b"\n");
        assert_eq!(g.phase, Phase::Body);
    }
}

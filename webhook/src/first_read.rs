//! A connection that must start talking within a deadline.
//!
//! hyper's HTTP/1.1 header-read timeout starts once it knows the connection speaks HTTP/1.1
//! (and is set long, to outlast the client's idle keep-alive), and the HTTP/2 handshake waits
//! for the client's preface with no limit at all. Before either, the server reads the first
//! bytes to tell the two apart, also with no limit. So a client that completed the TLS
//! handshake and then sent nothing held its connection (a task, TLS buffers, a file
//! descriptor) for ever, and enough of them would exhaust the server.
//! [`FirstReadDeadline`] fails the connection's reads once the deadline passes with no byte
//! received; after the first byte it is a plain pass-through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, whose reads fail with [`io::ErrorKind::TimedOut`] if no byte arrives within the
/// deadline given to [`FirstReadDeadline::new`].
#[derive(Debug)]
pub(crate) struct FirstReadDeadline<S> {
    inner: S,
    /// Until the first byte; `None` after it.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> FirstReadDeadline<S> {
    /// Wraps `inner`; the first byte must arrive within `within` from now.
    pub(crate) fn new(inner: S, within: Duration) -> Self {
        FirstReadDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstReadDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no request within the first-request limit",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstReadDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let mut guarded = FirstReadDeadline::new(server, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let err = guarded.read(&mut buf).await.expect_err("timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn after_the_first_byte_the_deadline_is_gone() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = FirstReadDeadline::new(server, Duration::from_millis(50));
        client.write_all(b"P").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(guarded.read(&mut buf).await.expect("read"), 1);
        // Long past the deadline, a read still waits for data rather than failing.
        let later = tokio::time::timeout(Duration::from_millis(300), guarded.read(&mut buf)).await;
        assert!(later.is_err(), "still waiting: {later:?}");
        client.write_all(b"OST").await.expect("write");
        assert_eq!(guarded.read(&mut buf).await.expect("read"), 3);
        // Writes pass through.
        guarded.write_all(b"ok").await.expect("write");
        let mut two = [0u8; 2];
        client.read_exact(&mut two).await.expect("read");
        assert_eq!(&two, b"ok");
    }
}

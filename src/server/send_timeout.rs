//! `send_timeout`, nginx's name and meaning: the longest a write to the client may wait. A
//! client that stops reading would otherwise hold its connection, its request's places (in
//! flight, `max_concurrency`, a CGI script's slot) for as long as it keeps the socket open.
//!
//! It wraps the socket, below every protocol: a write that has waited longer fails with
//! `TimedOut`, the front-end closes the connection, and dropping the request frees every slot.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose writes fail once one has waited `timeout` with no progress.
///
/// The timer runs only while a write (or flush) is pending: the time between two writes that
/// complete is the app's, not the client's, and is bounded by `request_timeout` instead.
pub(super) struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits; kept between waits so a slow client costs no allocation.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl<S> SendTimeout<S> {
    /// Wraps `inner`.
    pub(super) fn new(inner: S, timeout: Duration) -> Self {
        SendTimeout {
            inner,
            timeout,
            timer: None,
            waiting: false,
        }
    }

    /// After the inner stream said `Pending`: starts the wait's timer if it is the wait's
    /// first poll, and fails once it has run out.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = Instant::now() + self.timeout;
        let timer = match (&mut self.timer, self.waiting) {
            (Some(timer), true) => timer,
            (Some(timer), false) => {
                timer.as_mut().reset(deadline);
                timer
            }
            (timer @ None, _) => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "send_timeout: the client took nothing for too long",
        )))
    }

    /// The outcome of a write-side poll of the inner stream.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.waiting = false;
                Poll::Ready(r)
            }
            Poll::Pending => match self.check(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const TIMEOUT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_write_that_waits_too_long_fails() {
        let (_client, server) = tokio::io::duplex(16);
        let mut s = SendTimeout::new(server, TIMEOUT);
        s.write_all(&[0; 16]).await.unwrap();
        let start = Instant::now();
        let err = s.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= TIMEOUT);
    }

    #[tokio::test]
    async fn each_write_that_completes_restarts_the_wait() {
        let (mut client, server) = tokio::io::duplex(4);
        let mut s = SendTimeout::new(server, TIMEOUT);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0; 4];
            // A slow reader: 4 bytes every 100 ms, 40 bytes in a second, never 300 ms stuck.
            while got.len() < 40 {
                tokio::time::sleep(TIMEOUT / 3).await;
                let n = client.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got.len()
        });
        s.write_all(&[1; 40]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 40);
    }

    #[tokio::test]
    async fn time_between_writes_is_not_counted() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut s = SendTimeout::new(server, TIMEOUT);
        s.write_all(b"a").await.unwrap();
        tokio::time::sleep(TIMEOUT * 2).await;
        s.write_all(b"b").await.unwrap();
        let mut buf = [0; 2];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ab");
    }
}

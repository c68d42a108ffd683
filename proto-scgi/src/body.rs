//! The request body: exactly CONTENT_LENGTH bytes, read from the socket as the app asks for
//! them (so a slow app pushes back on the web server through TCP).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use gateway_core::BoxError;
use http_body::{Frame, SizeHint};
use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use tokio_util::io::poll_read_buf;

/// Reads the rest of the body from `read`, after `early` (body bytes that came with the
/// header). Once it has read its last byte, or when it is dropped, it hands the read half back
/// with what is left unread, so the driver can drain the rest and watch for the web server
/// closing while the app still runs.
pub(crate) struct ScgiBody<R> {
    read: Option<R>,
    early: Bytes,
    remaining: u64,
    back: Option<oneshot::Sender<(R, u64)>>,
}

impl<R: AsyncRead + Unpin> ScgiBody<R> {
    /// A body of `len` bytes, the first of which are `early`.
    pub(crate) fn new(
        read: R,
        mut early: Bytes,
        len: u64,
        back: oneshot::Sender<(R, u64)>,
    ) -> Self {
        let early_len = (early.len() as u64).min(len);
        early.truncate(early_len as usize);
        let mut body = ScgiBody {
            read: Some(read),
            early,
            remaining: len - early_len,
            back: Some(back),
        };
        if body.remaining == 0 {
            body.give_back();
        }
        body
    }
}

impl<R> ScgiBody<R> {
    fn give_back(&mut self) {
        if let (Some(read), Some(back)) = (self.read.take(), self.back.take()) {
            let _ = back.send((read, self.remaining));
        }
    }
}

impl<R: AsyncRead + Unpin> http_body::Body for ScgiBody<R> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.early.is_empty() {
            let data = std::mem::take(&mut self.early);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let Some(read) = this.read.as_mut() else {
            return Poll::Ready(None);
        };
        let mut buf = BytesMut::with_capacity(this.remaining.min(64 << 10) as usize);
        match ready!(poll_read_buf(Pin::new(read), cx, &mut buf)) {
            Ok(0) => Poll::Ready(Some(Err(format!(
                "the web server closed the connection {} bytes before the end of the body",
                this.remaining
            )
            .into()))),
            Ok(n) => {
                let n = (n as u64).min(this.remaining);
                this.remaining -= n;
                buf.truncate(n as usize);
                if this.remaining == 0 {
                    this.give_back();
                }
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.early.is_empty() && self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.early.len() as u64 + self.remaining)
    }
}

impl<R> Drop for ScgiBody<R> {
    fn drop(&mut self) {
        self.give_back();
    }
}

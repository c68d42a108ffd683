//! Response bodies made of Python bytes: a whole list at once, or a stream fed by the app's
//! thread.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gateway_core::BoxError;
use http_body::{Frame, SizeHint};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::mpsc;

/// What the app's thread sends down a streamed body: data, or an error that cuts the
/// connection (an exception after the head was sent).
pub(crate) type Chunk = Result<Bytes, BoxError>;

/// A streamed body: chunks as the app's thread yields them. The channel is short, so a slow
/// client holds the app's thread back (with the GIL released) instead of filling memory.
pub(crate) struct Stream {
    rx: mpsc::Receiver<Chunk>,
    /// What is left of the app's Content-Length: the body ends there, without waiting for the
    /// app's thread to say so.
    left: Option<u64>,
}

impl Stream {
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>, content_length: Option<u64>) -> Self {
        Stream {
            rx,
            left: content_length,
        }
    }
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == Some(0) {
            return Poll::Ready(None);
        }
        let chunk = ready!(self.rx.poll_recv(cx));
        if let (Some(Ok(data)), Some(left)) = (&chunk, &mut self.left) {
            *left = left.saturating_sub(data.len() as u64);
        }
        Poll::Ready(chunk.map(|c| c.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.left == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// A whole body of several chunks (a list of bytes), its length known.
pub(crate) struct Chunks {
    chunks: VecDeque<Bytes>,
    left: u64,
}

impl Chunks {
    pub(crate) fn new(chunks: Vec<Bytes>) -> Self {
        let left = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks: chunks.into(),
            left,
        }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.pop_front();
        if let Some(c) = &next {
            self.left -= c.len() as u64;
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Below this, copying a `bytes` object is cheaper than keeping it alive until the front-end
/// has sent it (its release, off the GIL, is deferred to PyO3's reference pool).
const COPY_BELOW: usize = 1024;

/// The data of a `bytes` object: large ones are not copied, the object is kept alive instead.
pub(crate) fn bytes_of(b: &Bound<'_, PyBytes>) -> Bytes {
    let data = b.as_bytes();
    if data.len() < COPY_BELOW {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(PyBuffer {
        ptr: data.as_ptr(),
        len: data.len(),
        _owner: b.clone().unbind(),
    })
}

/// A `bytes` object's buffer, borrowed for as long as this holds a reference to it.
struct PyBuffer {
    ptr: *const u8,
    len: usize,
    _owner: Py<PyBytes>,
}

// SAFETY: a `bytes` object is immutable and its buffer lives as long as the object, which
// `_owner` keeps alive; reading it needs no GIL. `Py` itself is `Send + Sync`.
unsafe impl Send for PyBuffer {}
unsafe impl Sync for PyBuffer {}

impl AsRef<[u8]> for PyBuffer {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see above; `ptr..ptr + len` is the object's buffer.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

//! The streamed body: the request body an app reads and the response body it returns.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{TryStream, TryStreamExt};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, StreamBody};

/// A boxed error from a body's source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxBody = Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send>>;

/// A body of known or unknown length, read lazily chunk by chunk.
///
/// It is both the request body an app reads and the response body it returns, and it
/// implements [`http_body::Body`], so it moves to and from hyper, axum and tower unchanged.
/// A body may carry a cap ([`Body::limit`]): reading past it fails with
/// [`BodyError::TooLarge`], which answers 413.
///
/// ```
/// use gateway_core::Body;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut body = Body::from("hello");
/// assert_eq!(body.chunk().await.unwrap().as_deref(), Some(&b"hello"[..]));
/// assert_eq!(body.chunk().await.unwrap(), None);
///
/// let capped = Body::from("too long").limit(3);
/// assert!(capped.to_bytes().await.is_err());
/// # });
/// ```
pub struct Body {
    kind: Kind,
    limit: u64,
    seen: u64,
}

enum Kind {
    Empty,
    Full(Bytes),
    Boxed(BoxBody),
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than the cap set on it.
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The body's source failed: the client went away or sent a malformed body.
    #[error("reading the body failed: {0}")]
    Source(#[source] BoxError),
}

impl BodyError {
    /// The HTTP status that answers this error: 413 when too large, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            BodyError::Source(_) => 400,
        }
    }
}

impl Body {
    /// An empty body: reading it gives end-of-stream at once.
    pub fn empty() -> Self {
        Kind::Empty.into()
    }

    /// Wraps any [`http_body::Body`], such as hyper's `Incoming`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Kind::Boxed(Box::pin(body.map_err(Into::into))).into()
    }

    /// A body that yields each chunk of `stream` as it comes.
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: TryStream + Send + 'static,
        S::Ok: Into<Bytes>,
        S::Error: Into<BoxError>,
    {
        let frames = stream.map_ok(|b| Frame::data(b.into())).map_err(Into::into);
        Kind::Boxed(Box::pin(StreamBody::new(frames))).into()
    }

    /// Caps this body at `limit` bytes: a longer body fails with [`BodyError::TooLarge`]
    /// once the cap is passed, or at the first read when its exact length is already known
    /// to exceed it.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// The exact length, when it is known in advance.
    pub fn exact_len(&self) -> Option<u64> {
        http_body::Body::size_hint(self).exact()
    }

    /// The next chunk of data, or `None` at the end; trailers are skipped.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            let frame = self.frame().await;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Reads the whole body into one buffer, within the body's cap.
    pub async fn to_bytes(mut self) -> Result<Bytes, BodyError> {
        if let Kind::Full(_) = self.kind {
            return Ok(self.chunk().await?.unwrap_or_default());
        }
        let mut buf = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.into())
    }

    fn check(&mut self, len: usize) -> Result<(), BodyError> {
        self.seen = self.seen.saturating_add(len as u64);
        if self.seen > self.limit {
            self.kind = Kind::Empty;
            return Err(BodyError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
}

impl From<Kind> for Body {
    fn from(kind: Kind) -> Self {
        Body {
            kind,
            limit: u64::MAX,
            seen: 0,
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::Boxed(_) => "stream",
        };
        f.debug_struct("Body")
            .field("kind", &kind)
            .field("limit", &self.limit)
            .finish()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        if b.is_empty() {
            Body::empty()
        } else {
            Kind::Full(b).into()
        }
    }
}

macro_rules! body_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Body {
            fn from(b: $t) -> Self {
                Body::from(Bytes::from(b))
            }
        }
    )*};
}
body_from!(Vec<u8>, String, &'static str, &'static [u8]);

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(_) => {
                let Kind::Full(data) = std::mem::replace(&mut this.kind, Kind::Empty) else {
                    return Poll::Ready(None);
                };
                Poll::Ready(Some(this.check(data.len()).map(|()| Frame::data(data))))
            }
            Kind::Boxed(inner) => {
                // A declared length over the cap fails before a byte is read.
                if this.seen == 0 && inner.size_hint().lower() > this.limit {
                    this.kind = Kind::Empty;
                    return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
                }
                let frame = match ready!(inner.as_mut().poll_frame(cx)) {
                    None => {
                        this.kind = Kind::Empty;
                        return Poll::Ready(None);
                    }
                    Some(Err(e)) => {
                        this.kind = Kind::Empty;
                        // A source that already speaks BodyError (a front-end's own cap) keeps
                        // its meaning: 413 stays 413.
                        let e = match e.downcast::<BodyError>() {
                            Ok(e) => *e,
                            Err(e) => BodyError::Source(e),
                        };
                        return Poll::Ready(Some(Err(e)));
                    }
                    Some(Ok(frame)) => frame,
                };
                let len = frame.data_ref().map_or(0, Bytes::len);
                Poll::Ready(Some(this.check(len).map(|()| frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(_) => false,
            Kind::Boxed(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.len() as u64),
            Kind::Boxed(inner) => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn empty_body_ends_at_once() {
        run(async {
            let mut body = Body::empty();
            assert_eq!(body.chunk().await.unwrap(), None);
            assert_eq!(body.exact_len(), Some(0));
        });
    }

    #[test]
    fn stream_is_capped() {
        run(async {
            let chunks =
                futures_util::stream::iter(["ab", "cd", "ef"].map(Ok::<_, std::io::Error>));
            let body = Body::from_stream(chunks).limit(4);
            assert!(matches!(
                body.to_bytes().await,
                Err(BodyError::TooLarge { limit: 4 })
            ));

            let chunks = futures_util::stream::iter(["ab", "cd"].map(Ok::<_, std::io::Error>));
            let body = Body::from_stream(chunks).limit(4);
            assert_eq!(body.to_bytes().await.unwrap(), "abcd");
        });
    }

    #[test]
    fn declared_length_over_the_cap_fails_before_reading() {
        run(async {
            let full = http_body_util::Full::new(Bytes::from_static(b"too long"));
            let mut body = Body::new(full).limit(3);
            assert_eq!(body.exact_len(), Some(8));
            assert!(matches!(
                body.chunk().await,
                Err(BodyError::TooLarge { limit: 3 })
            ));
            assert_eq!(body.chunk().await.unwrap(), None);
        });
    }

    #[test]
    fn source_errors_surface() {
        run(async {
            let chunks =
                futures_util::stream::iter([Ok("ab"), Err(std::io::Error::other("reset"))]);
            let err = Body::from_stream(chunks).to_bytes().await.unwrap_err();
            assert_eq!(err.status(), 400);
        });
    }
}

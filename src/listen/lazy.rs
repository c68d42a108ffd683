//! An accepted connection that joins the runtime's reactor only when it first has to wait.
//!
//! A web server sends its request right after it connects, so the request is usually there
//! when the connection is accepted, and the answer of a small app fits in the socket's send
//! buffer. For SCGI and uwsgi (one request per connection, every request) that makes
//! registering the socket with epoll, and removing it again at close, two system calls of
//! the six or seven a request costs, spent on a wait that never comes. So the socket is read
//! and written directly while it can be; the first `WouldBlock` registers it, and from then
//! on it is tokio's stream. (tokio has no such mode; its streams register when made.)

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A write to a peer that has gone fails with EPIPE instead of raising SIGPIPE (which the
/// process ignores too; this does not depend on it).
const NO_SIGNAL: std::ffi::c_int = nix::sys::socket::MsgFlags::MSG_NOSIGNAL.bits();

/// A tokio stream, made from its std socket by registering it.
pub trait Register: AsyncRead + AsyncWrite + Unpin + Sized {
    /// The socket before registration.
    type Std: std::os::fd::AsFd + Unpin;
    /// Registers `std` with the current runtime's reactor.
    fn register(std: Self::Std) -> io::Result<Self>;
}

impl Register for TcpStream {
    type Std = std::net::TcpStream;
    fn register(std: Self::Std) -> io::Result<Self> {
        TcpStream::from_std(std)
    }
}

impl Register for UnixStream {
    type Std = std::os::unix::net::UnixStream;
    fn register(std: Self::Std) -> io::Result<Self> {
        UnixStream::from_std(std)
    }
}

/// A non-blocking socket, read and written directly until an operation would block, then
/// registered (see the module doc).
pub enum Lazy<S: Register> {
    /// Not registered: a close is a plain `close`.
    Raw {
        /// The socket.
        socket: S::Std,
        /// The last read took less than it had room for: the socket had nothing more, so the
        /// next read registers at once instead of asking first (tokio's streams keep the same
        /// hint; registration reports data that came meanwhile, epoll being edge-triggered on
        /// the current state).
        drained: bool,
        /// A read found the socket drained once already, and the task was given another
        /// turn instead of a registration (see `poll_read`).
        yielded: bool,
    },
    /// Registered at its first wait.
    Registered(S),
    /// Registration failed; the error was returned.
    Closed,
}

impl<S: Register> Lazy<S> {
    /// Wraps `std`, which must be in non-blocking mode.
    pub fn new(std: S::Std) -> Self {
        Lazy::Raw {
            socket: std,
            drained: false,
            yielded: false,
        }
    }

    /// Whether the socket has had to wait, and so is registered.
    pub fn is_registered(&self) -> bool {
        matches!(self, Lazy::Registered(_))
    }

    /// `op` on the raw socket, or, when it would block (or `wait` says it would), the socket
    /// registered for the wait.
    ///
    /// Each operation on the raw socket spends the task's cooperative budget, as a registered
    /// stream's does, so that a peer that keeps the socket full cannot hold the worker.
    fn step<T>(
        &mut self,
        cx: &mut Context<'_>,
        wait: bool,
        mut op: impl FnMut(SockRef<'_>) -> io::Result<T>,
    ) -> Step<'_, S, T> {
        if let Lazy::Raw { socket, .. } = self {
            if !wait {
                let Poll::Ready(budget) = tokio::task::coop::poll_proceed(cx) else {
                    return Step::Yield;
                };
                loop {
                    match op(SockRef::from(&*socket)) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        done => {
                            budget.made_progress();
                            return Step::Done(done);
                        }
                    }
                }
            }
            let Lazy::Raw { socket, .. } = std::mem::replace(self, Lazy::Closed) else {
                unreachable!("matched above")
            };
            match S::register(socket) {
                Ok(s) => *self = Lazy::Registered(s),
                Err(e) => return Step::Done(Err(e)),
            }
        }
        match self {
            Lazy::Registered(s) => Step::Wait(Pin::new(s)),
            _ => Step::Done(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

/// What [`Lazy::step`] did: the operation; or nothing yet, and the stream to wait on; or
/// nothing, the task's budget being spent (it is woken once it has yielded).
enum Step<'a, S, T> {
    Done(io::Result<T>),
    Wait(Pin<&'a mut S>),
    Yield,
}

// A registered stream's operations go straight to tokio's, small enough to inline into the
// protocol's IO stack (a kept-alive HTTP connection's every request); the raw socket's are out
// of line.
impl<S: Register> AsyncRead for Lazy<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Lazy::Registered(s) => Pin::new(s).poll_read(cx, buf),
            this => this.poll_read_raw(cx, buf),
        }
    }
}

impl<S: Register> Lazy<S> {
    #[inline(never)]
    fn poll_read_raw(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let drained = matches!(self, Lazy::Raw { drained: true, .. });
        // The first time a read would wait on a socket that gave all it had, the task gets
        // one more turn instead: a peer that sends one request a connection (nginx's
        // `proxy_pass` without upstream keep-alive, HTTP/1.0) is then answered and closed in
        // that turn, and the socket is never registered; hyper looks for more input before
        // it answers. A task that does wait registers on its next turn.
        if let Lazy::Raw {
            drained: true,
            yielded,
            ..
        } = self
            && !*yielded
        {
            *yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let room = buf.remaining();
        // SAFETY: `recv` only writes to the slice (never de-initialises it).
        match self.step(cx, drained, |s| s.recv(unsafe { buf.unfilled_mut() })) {
            Step::Done(Ok(n)) => {
                if let Lazy::Raw { drained, .. } = self {
                    *drained = n > 0 && n < room;
                }
                // SAFETY: `recv` initialised the first `n` bytes of the unfilled part.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Step::Done(Err(e)) => Poll::Ready(Err(e)),
            Step::Wait(s) => s.poll_read(cx, buf),
            Step::Yield => Poll::Pending,
        }
    }
}

impl<S: Register> Lazy<S> {
    #[inline(never)]
    fn poll_write_raw(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.step(cx, false, |s| s.send_with_flags(buf, NO_SIGNAL)) {
            Step::Done(r) => Poll::Ready(r),
            Step::Wait(s) => s.poll_write(cx, buf),
            Step::Yield => Poll::Pending,
        }
    }

    #[inline(never)]
    fn poll_write_vectored_raw(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // At most IOV_MAX buffers a call, as std's `writev` takes (more fail with EMSGSIZE).
        let some = &bufs[..bufs.len().min(1024)];
        match self.step(cx, false, |s| s.send_vectored_with_flags(some, NO_SIGNAL)) {
            Step::Done(r) => Poll::Ready(r),
            Step::Wait(s) => s.poll_write_vectored(cx, bufs),
            Step::Yield => Poll::Pending,
        }
    }
}

impl<S: Register> AsyncWrite for Lazy<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Lazy::Registered(s) => Pin::new(s).poll_write(cx, buf),
            this => this.poll_write_raw(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Lazy::Registered(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            this => this.poll_write_vectored_raw(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Lazy::Registered(s) => Pin::new(s).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Lazy::Raw { socket, .. } => {
                Poll::Ready(SockRef::from(&*socket).shutdown(Shutdown::Write))
            }
            Lazy::Registered(s) => Pin::new(s).poll_shutdown(cx),
            Lazy::Closed => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn pair() -> (Lazy<UnixStream>, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (Lazy::new(ours), theirs)
    }

    #[tokio::test]
    async fn what_is_there_is_read_and_answered_without_registration() {
        let (mut ours, mut theirs) = pair();
        theirs.write_all(b"request").unwrap();
        let mut buf = [0u8; 16];
        let n = ours.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"request");
        ours.write_all(b"answer").await.unwrap();
        ours.shutdown().await.unwrap();
        assert!(!ours.is_registered());
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer");
    }

    #[tokio::test]
    async fn a_read_that_must_wait_registers_and_is_woken() {
        let (mut ours, mut theirs) = pair();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            theirs.write_all(b"late").unwrap();
            theirs
        });
        let mut buf = [0u8; 16];
        let n = ours.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(ours.is_registered());
        // The peer's close is seen through the reactor as well.
        drop(writer.join().unwrap());
        assert_eq!(ours.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn after_a_short_read_the_next_registers_and_still_sees_what_came_meanwhile() {
        let (mut ours, mut theirs) = pair();
        theirs.write_all(b"a").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(ours.read(&mut buf).await.unwrap(), 1);
        assert!(matches!(ours, Lazy::Raw { drained: true, .. }));
        theirs.write_all(b"b").unwrap();
        let n = ours.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"b");
        assert!(ours.is_registered());
    }

    /// A waker that notes it was woken.
    struct Noted(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Noted {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_look_for_more_input_gets_one_more_turn_before_a_registration() {
        let (mut ours, mut theirs) = pair();
        theirs.write_all(b"GET").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(ours.read(&mut buf).await.unwrap(), 3);
        // hyper's look for more input before it answers: Pending, and the task woken.
        let noted = std::sync::Arc::new(Noted(false.into()));
        let waker = std::task::Waker::from(noted.clone());
        let mut read = ReadBuf::new(&mut buf);
        let polled = Pin::new(&mut ours).poll_read(&mut Context::from_waker(&waker), &mut read);
        assert!(polled.is_pending());
        assert!(noted.0.load(std::sync::atomic::Ordering::SeqCst));
        // Answered and closed in that turn: never registered.
        ours.write_all(b"200").await.unwrap();
        assert!(!ours.is_registered());
        // A task that does wait for more is registered on its next look, and sees it.
        let later = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            theirs.write_all(b"more").unwrap();
            theirs
        });
        let n = ours.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"more");
        assert!(ours.is_registered());
        drop(later.join().unwrap());
    }

    #[tokio::test]
    async fn reads_of_a_full_socket_spend_the_task_budget() {
        let (mut ours, mut theirs) = pair();
        theirs.write_all(&[1u8; 1000]).unwrap();
        let reads = std::future::poll_fn(|cx| {
            let mut reads = 0;
            let mut byte = [0u8; 1];
            loop {
                let mut buf = ReadBuf::new(&mut byte);
                match Pin::new(&mut ours).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => reads += 1,
                    Poll::Ready(Err(e)) => panic!("{e}"),
                    Poll::Pending => return Poll::Ready(reads),
                }
            }
        })
        .await;
        assert!(
            reads < 1000,
            "{reads} reads in one turn: the task never yielded"
        );
        assert!(!ours.is_registered());
    }

    #[tokio::test]
    async fn a_write_that_must_wait_registers_and_finishes_once_the_peer_reads() {
        let (mut ours, mut theirs) = pair();
        let big = vec![7u8; 4 << 20]; // past any socket buffer
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got.len()
        });
        ours.write_all(&big).await.unwrap();
        assert!(ours.is_registered());
        ours.shutdown().await.unwrap();
        drop(ours);
        assert_eq!(reader.join().unwrap(), big.len());
    }
}

//! Opening the `[[listen]]` sockets: TCP, and unix sockets with their mode and owner; and
//! accepting on them, each connection registered with the reactor only once it has to wait
//! ([`lazy`]).

mod lazy;

use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User, chown};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpListener, TcpStream, UnixStream};

pub use lazy::Lazy;

use gateway_core::Protocol;

use crate::config::{ListenAddress, ListenConfig};
use proto_http::ConnInfo;

/// An open listening socket.
pub struct Listener {
    /// What it speaks.
    pub protocol: Protocol,
    socket: Socket,
    /// The address as its binder showed it, for a socket handed down by a master (a unix
    /// socket's own address is the private path it was bound at before its rename).
    shown_as: Option<String>,
    local: Local,
    /// Accepted TCP connections come with TCP_NODELAY (see [`tcp`]); otherwise each is given it.
    nodelay_inherited: bool,
}

/// How an accepted TCP connection's own address is known: a listener bound to one address
/// already knows it, so a `getsockname` per connection (a system call on every request, for
/// SCGI and uwsgi) only where the bind address does not say. Only HTTP uses it (`SERVER_ADDR`,
/// `SERVER_PORT`); it is known for every protocol alike, as a reload may change a kept
/// socket's protocol.
#[derive(Clone, Copy)]
enum Local {
    /// A unix socket: no address.
    None,
    Bound(std::net::SocketAddr),
    /// A wildcard address (`0.0.0.0`, `[::]`, `[::ffff:0.0.0.0]`), or a transparent socket
    /// (TPROXY): the connection's own says which was reached.
    Ask,
}

impl Local {
    fn of(socket: &Socket) -> Local {
        use nix::sys::socket::{getsockopt, sockopt};
        let Socket::Tcp(l) = socket else {
            return Local::None;
        };
        let l = l.get_ref();
        let transparent = getsockopt(l, sockopt::IpTransparent).unwrap_or(false);
        match l.local_addr() {
            Ok(a) if !transparent && !a.ip().to_canonical().is_unspecified() => Local::Bound(a),
            _ => Local::Ask,
        }
    }

    fn of_stream(self, stream: &std::net::TcpStream) -> Option<std::net::SocketAddr> {
        match self {
            Local::None => None,
            Local::Bound(a) => Some(a),
            Local::Ask => stream.local_addr().ok(),
        }
    }
}

/// A listening socket, registered for readiness only: what it accepts is not (see [`Lazy`]).
enum Socket {
    Tcp(AsyncFd<std::net::TcpListener>),
    /// The file is ours to remove, unless the socket was inherited.
    Unix(
        AsyncFd<std::os::unix::net::UnixListener>,
        Option<SocketFile>,
    ),
}

/// A unix socket's path, removed when the listener closes.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bound socket that a master keeps open for its workers (see [`Listener::into_held`]).
/// A unix socket's file is removed when it is dropped.
pub struct Held {
    /// What it speaks.
    pub protocol: Protocol,
    fd: std::os::fd::OwnedFd,
    /// The address as bound, as [`Listener`] shows it.
    name: String,
    _file: Option<SocketFile>,
}

impl std::os::fd::AsFd for Held {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An accepted connection.
pub enum Stream {
    /// A TCP connection.
    Tcp(Lazy<TcpStream>),
    /// A unix socket connection.
    Unix(Lazy<UnixStream>),
}

impl Listener {
    /// Binds one `[[listen]]` entry.
    pub async fn bind(cfg: &ListenConfig) -> io::Result<Listener> {
        let socket = match cfg.address.get_ref() {
            // tokio's bind for its name resolution; the socket is ours to register.
            ListenAddress::Tcp(addr) => tcp(TcpListener::bind(addr.as_str()).await?.into_std()?)?,
            ListenAddress::Unix(path) => bind_unix(path, cfg)?,
            ListenAddress::Fd(fd) => inherit(*fd)?,
            ListenAddress::Systemd(name) => inherit(systemd_fd(name)?)?,
        };
        Ok(Listener::new(cfg.protocol, socket, None))
    }

    fn new(protocol: Protocol, socket: Socket, shown_as: Option<String>) -> Listener {
        use nix::sys::socket::{getsockopt, sockopt};
        Listener {
            local: Local::of(&socket),
            nodelay_inherited: match &socket {
                Socket::Tcp(l) => getsockopt(l.get_ref(), sockopt::TcpNoDelay).unwrap_or(false),
                Socket::Unix(..) => true,
            },
            protocol,
            socket,
            shown_as,
        }
    }

    /// Accepts the next connection, with its addresses (its own only where it is used).
    pub async fn accept(&self) -> io::Result<(Stream, ConnInfo)> {
        match &self.socket {
            Socket::Tcp(l) => l.async_io(Interest::READABLE, |l| self.accept_tcp(l)).await,
            Socket::Unix(l, _) => l.async_io(Interest::READABLE, accept_unix).await,
        }
    }

    fn accept_tcp(&self, l: &std::net::TcpListener) -> io::Result<(Stream, ConnInfo)> {
        let (socket, remote) = accept4(l)?;
        let stream = std::net::TcpStream::from(socket);
        if !self.nodelay_inherited {
            let _ = stream.set_nodelay(true);
        }
        let conn = ConnInfo {
            local: self.local.of_stream(&stream),
            remote: remote.as_socket(),
        };
        Ok((Stream::Tcp(Lazy::new(stream)), conn))
    }
}

/// The most connections a closing listener takes from its backlog: Linux's default
/// `somaxconn`, the backlog's own bound.
const MAX_DRAINED: usize = 4096;

/// One connection from the backlog, non-blocking and close-on-exec from the start (no
/// `fcntl` after), with its peer's address.
fn accept4(l: &impl std::os::fd::AsFd) -> io::Result<(socket2::Socket, socket2::SockAddr)> {
    use nix::sys::socket::SockFlag;
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    socket2::SockRef::from(l).accept4(flags.bits())
}

fn accept_unix(l: &std::os::unix::net::UnixListener) -> io::Result<(Stream, ConnInfo)> {
    let (socket, _) = accept4(l)?;
    let stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket));
    Ok((Stream::Unix(Lazy::new(stream)), ConnInfo::default()))
}

impl Listener {
    /// Takes over a listening socket a master process passed down on `fd` (it stays the
    /// master's to bind and remove); close-on-exec from now on, so that what this process
    /// spawns (CGI scripts) does not hold it.
    pub fn inherited(fd: i32, protocol: Protocol, shown_as: String) -> io::Result<Listener> {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        check_listening(fd)?;
        // SAFETY: the descriptor stays open for this call; `inherit` takes it over next.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
        Ok(Listener::new(protocol, inherit(fd)?, Some(shown_as)))
    }

    /// The socket without its runtime registration, for a master that only hands it down:
    /// no reactor of the master's is woken by the connections its workers accept.
    pub fn into_held(self) -> io::Result<Held> {
        let name = self.to_string();
        let (fd, file) = match self.socket {
            Socket::Tcp(l) => (std::os::fd::OwnedFd::from(l.into_inner()), None),
            Socket::Unix(l, file) => (std::os::fd::OwnedFd::from(l.into_inner()), file),
        };
        Ok(Held {
            protocol: self.protocol,
            fd,
            name,
            _file: file,
        })
    }

    /// Takes every connection the kernel has already completed, without waiting: called when
    /// the listener closes, so that they are served instead of reset.
    ///
    /// At most [`MAX_DRAINED`]: connections that keep arriving meanwhile are not waited for.
    pub fn drain_backlog(&self) -> Vec<(Stream, ConnInfo)> {
        let mut drained = Vec::new();
        for _ in 0..MAX_DRAINED {
            let accepted = match &self.socket {
                Socket::Tcp(l) => self.accept_tcp(l.get_ref()),
                Socket::Unix(l, _) => accept_unix(l.get_ref()),
            };
            match accepted {
                Ok(pair) => drained.push(pair),
                // One connection reset before it was taken: the next may be fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => break,
            }
        }
        drained
    }
}

impl fmt::Display for Listener {
    /// The bound address: `127.0.0.1:41234` (with the real port when 0 was asked) or
    /// `unix:/run/x.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(shown) = &self.shown_as {
            return f.write_str(shown);
        }
        match &self.socket {
            Socket::Tcp(l) => match l.get_ref().local_addr() {
                Ok(a) => write!(f, "{a}"),
                Err(_) => f.write_str("?"),
            },
            Socket::Unix(_, Some(file)) => write!(f, "unix:{}", file.0.display()),
            Socket::Unix(l, None) => {
                match l
                    .get_ref()
                    .local_addr()
                    .ok()
                    .as_ref()
                    .and_then(|a| a.as_pathname())
                {
                    Some(path) => write!(f, "unix:{}", path.display()),
                    None => f.write_str("unix:(unnamed)"),
                }
            }
        }
    }
}

/// A TCP listener, with TCP_NODELAY set on it once: Linux gives each accepted connection the
/// listener's, which saves a `setsockopt` per connection (every request, for SCGI and uwsgi).
/// A response leaves in as few writes as it can, and each must go at once. (A socket that
/// refuses it, an inherited one of another kind, has each connection given it instead:
/// [`Listener`] reads the option back when it takes the socket.)
fn tcp(listener: std::net::TcpListener) -> io::Result<Socket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(&listener, sockopt::TcpNoDelay, &true);
    Ok(Socket::Tcp(watch(listener)?))
}

/// A listening socket registered with the reactor for readability: an accept's wait.
fn watch<L: std::os::fd::AsRawFd>(listener: L) -> io::Result<AsyncFd<L>> {
    // SAFETY: `L` is a std listener, which owns its descriptor and closes it only when
    // dropped, so the descriptor stays the same open socket for the `AsyncFd`'s whole life.
    unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Binds a unix socket, then applies mode and owner with chmod/chown (never the umask, which
/// is process-wide). A stale socket file that nothing listens on is removed first.
fn bind_unix(path: &Path, cfg: &ListenConfig) -> io::Result<Socket> {
    remove_stale(path)?;
    // Bound in a private directory (0700) beside `path`, given its mode and owner there, then
    // renamed into place: the socket is never reachable wider than `socket_mode` (0660 by
    // default, as php-fpm's, whatever the umask), not even between bind and chmod, and the
    // process's umask, which CGI scripts forked meanwhile would inherit, is never touched.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = tempfile::Builder::new().prefix(".gw").tempdir_in(parent)?;
    let staged = private.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&staged)?;
    listener.set_nonblocking(true)?;
    let mode = cfg.socket_mode.as_ref().map_or(0o660, |m| *m.get_ref());
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
    let owner = cfg
        .socket_owner
        .as_ref()
        .map(|o| user_id(o.get_ref()))
        .transpose()?;
    let group = cfg
        .socket_group
        .as_ref()
        .map(|g| group_id(g.get_ref()))
        .transpose()?;
    if owner.is_some() || group.is_some() {
        chown(&staged, owner, group).map_err(io::Error::from)?;
    }
    std::fs::rename(&staged, path)?;
    let file = SocketFile(path.to_owned());
    Ok(Socket::Unix(watch(listener)?, Some(file)))
}

/// Whether descriptor 0 is a listening socket, the way a FastCGI application learns that a
/// web server (spawn-fcgi, lighttpd's `bin-path`, mod_fcgid) started it: `getpeername(0)`
/// fails with ENOTCONN.
pub fn stdin_is_listener() -> bool {
    check_listening(0).is_ok()
}

fn check_listening(fd: i32) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::sys::socket::{SockType, SockaddrStorage, getpeername, getsockopt, sockopt};
    match getpeername::<SockaddrStorage>(fd) {
        Err(Errno::ENOTCONN) => {}
        Ok(_) => {
            return Err(io::Error::other(format!(
                "fd {fd} is a connected socket, not a listening one"
            )));
        }
        Err(Errno::ENOTSOCK) => return Err(io::Error::other(format!("fd {fd} is not a socket"))),
        Err(e) => return Err(io::Error::other(format!("fd {fd}: {e}"))),
    }
    // SAFETY: the descriptor stays open for this call; nothing is closed or taken over here.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if getsockopt(&borrowed, sockopt::SockType).ok() != Some(SockType::Stream) {
        return Err(io::Error::other(format!("fd {fd} is not a stream socket")));
    }
    match getsockopt(&borrowed, sockopt::AcceptConn) {
        Ok(true) => Ok(()),
        Ok(false) => Err(io::Error::other(format!(
            "fd {fd} is a socket that does not listen"
        ))),
        Err(e) => Err(io::Error::other(format!("fd {fd}: {e}"))),
    }
}

/// Takes over a listening socket inherited on `fd`, TCP or unix.
fn inherit(fd: i32) -> io::Result<Socket> {
    use nix::sys::socket::{AddressFamily, SockaddrLike as _, SockaddrStorage, getsockname};
    use std::os::fd::{FromRawFd, OwnedFd};
    check_listening(fd)?;
    let family = getsockname::<SockaddrStorage>(fd)
        .map_err(io::Error::from)?
        .family();
    // SAFETY: `fd` was inherited from our parent for us to serve on and is checked above to be
    // a listening socket; nothing else in this process owns or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match family {
        Some(AddressFamily::Unix) => {
            let std = std::os::unix::net::UnixListener::from(owned);
            std.set_nonblocking(true)?;
            Ok(Socket::Unix(watch(std)?, None))
        }
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let std = std::net::TcpListener::from(owned);
            std.set_nonblocking(true)?;
            tcp(std)
        }
        other => Err(io::Error::other(format!(
            "fd {fd} is a socket of family {other:?}"
        ))),
    }
}

fn remove_stale(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process listens on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// The sockets systemd passed (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), each taken once.
static SYSTEMD_FDS: std::sync::Mutex<Option<Vec<(i32, String)>>> = std::sync::Mutex::new(None);

/// The first not yet taken descriptor systemd passed under `name` (`FileDescriptorName=`,
/// by default the socket unit's name).
fn systemd_fd(name: &str) -> io::Result<i32> {
    let mut fds = SYSTEMD_FDS.lock().unwrap_or_else(|p| p.into_inner());
    let fds = match &mut *fds {
        Some(fds) => fds,
        empty => empty.insert(sd_notify::listen_fds_with_names()?.collect()),
    };
    let Some(at) = fds.iter().position(|(_, n)| n == name) else {
        let names: Vec<_> = fds.iter().map(|(_, n)| n.as_str()).collect();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "systemd passed no socket named {name:?} (names left: {names:?}; see LISTEN_FDNAMES)"
            ),
        ));
    };
    Ok(fds.remove(at).0)
}

fn user_id(name: &str) -> io::Result<Uid> {
    if let Ok(id) = name.parse() {
        return Ok(Uid::from_raw(id));
    }
    User::from_name(name)?
        .map(|u| u.uid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no user {name:?}")))
}

fn group_id(name: &str) -> io::Result<Gid> {
    if let Ok(id) = name.parse() {
        return Ok(Gid::from_raw(id));
    }
    Group::from_name(name)?
        .map(|g| g.gid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no group {name:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP listener of `protocol` on `address` (or `None` where this machine cannot bind
    /// it), a client connected to it, and what the listener accepted: the connection's NODELAY
    /// and its own address as given to the app.
    async fn accepted(
        protocol: Protocol,
        address: &str,
    ) -> Option<(bool, Option<std::net::SocketAddr>)> {
        let bound = std::net::TcpListener::bind(address).ok()?;
        bound.set_nonblocking(true).unwrap();
        let listener = Listener::new(protocol, tcp(bound).unwrap(), None);
        let Socket::Tcp(l) = &listener.socket else {
            unreachable!()
        };
        let port = l.get_ref().local_addr().unwrap().port();
        let _client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (Stream::Tcp(Lazy::Raw { socket: stream, .. }), conn) =
            listener.accept().await.unwrap()
        else {
            unreachable!("accepted, not yet registered")
        };
        Some((stream.nodelay().unwrap(), conn.local))
    }

    #[tokio::test]
    async fn accepted_connections_have_nodelay_and_their_own_address() {
        // Any protocol: a reload may make a kept socket's protocol HTTP. A wildcard, v4-mapped
        // too, asks the connection which address was reached.
        for protocol in [Protocol::Http, Protocol::Scgi] {
            for address in ["127.0.0.1:0", "0.0.0.0:0", "[::ffff:0.0.0.0]:0"] {
                let Some((nodelay, local)) = accepted(protocol, address).await else {
                    continue;
                };
                assert!(nodelay, "{protocol} {address}");
                let ip = local.map(|a| a.ip().to_canonical().to_string());
                assert_eq!(ip.as_deref(), Some("127.0.0.1"), "{protocol} {address}");
            }
        }
    }
}

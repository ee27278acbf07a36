//! Zero-copy relay of a large body on Linux (cargo feature `splice`): the
//! bytes go from the upstream socket into a pipe and from the pipe into the
//! client socket with splice(2), never through user space. The relay uses
//! it only for what is left after the first buffer (bodies larger than
//! [`RELAY_CHUNK`](super::RELAY_CHUNK)); where the kernel refuses (EINVAL,
//! ENOSYS: a socket type or kernel without splice) before a byte moved, the
//! caller falls back to the buffered copy.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::RELAY_CHUNK;

/// A non-blocking pipe sized to one relay buffer.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub(super) fn new() -> std::io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just created both descriptors and nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe moves a whole buffer per call; failing that, the default (64 KiB) does too.
        // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, RELAY_CHUNK as libc::c_int) };
        Ok(Pipe { read, write })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> std::io::Result<usize> {
    // SAFETY: plain descriptors and null offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// True for the errors that mean "this kernel or socket cannot splice".
pub(super) fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP))
}

/// Moves up to `len` bytes from `upstream` into the pipe, waiting for them;
/// `Ok(0)` when the upstream closed.
pub(super) async fn fill(upstream: &TcpStream, pipe: &Pipe, len: usize) -> std::io::Result<usize> {
    loop {
        upstream.readable().await?;
        match upstream.try_io(Interest::READABLE, || splice(upstream.as_raw_fd(), pipe.write.as_raw_fd(), len)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Moves exactly `len` bytes from the pipe into `client`.
pub(super) async fn drain(client: &TcpStream, pipe: &Pipe, mut len: usize) -> std::io::Result<()> {
    while len > 0 {
        client.writable().await?;
        match client.try_io(Interest::WRITABLE, || splice(pipe.read.as_raw_fd(), client.as_raw_fd(), len)) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => len -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

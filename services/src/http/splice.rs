//! Zero-copy relay of a large body on Linux (cargo feature `splice`): the
//! bytes go from the upstream socket into a pipe and from the pipe into the
//! client socket with splice(2), never through user space. The relay uses
//! it only for what is left after the first buffer (bodies larger than
//! [`RELAY_CHUNK`](super::RELAY_CHUNK)); where the kernel refuses (EINVAL,
//! ENOSYS: a socket type or kernel without splice) before a byte moved, the
//! caller falls back to the buffered copy.

use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags, SpliceFlags};

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
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // A larger pipe moves a whole buffer per call; failing that, the default (64 KiB) does too.
        let _ = fcntl_setpipe_size(&write, RELAY_CHUNK);
        Ok(Pipe { read, write })
    }
}

fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> std::io::Result<usize> {
    // Sockets and pipes have no offsets.
    Ok(rustix::pipe::splice(from, None, to, None, len, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)?)
}

/// True for the errors that mean "this kernel or socket cannot splice".
pub(super) fn unsupported(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(e), Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP))
}

/// Moves up to `len` bytes from `upstream` into the pipe, waiting for them;
/// `Ok(0)` when the upstream closed.
pub(super) async fn fill(upstream: &TcpStream, pipe: &Pipe, len: usize) -> std::io::Result<usize> {
    loop {
        upstream.readable().await?;
        match upstream.try_io(Interest::READABLE, || splice(upstream, &pipe.write, len)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Moves exactly `len` bytes from the pipe into `client`.
pub(super) async fn drain(client: &TcpStream, pipe: &Pipe, mut len: usize) -> std::io::Result<()> {
    while len > 0 {
        client.writable().await?;
        match client.try_io(Interest::WRITABLE, || splice(&pipe.read, client, len)) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => len -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

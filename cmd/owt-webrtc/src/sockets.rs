//! The node's media UDP sockets, bound by owt-webrtc rather than by the stack (through the
//! vendored webrtc's `UdpSocketSource`) so that each gets the receive buffer of
//! `webrtc.udp_receive_buffer`, and a port of `webrtc.minport..maxport` is taken by the bind
//! itself (a port found free and bound later could be taken in between).
//!
//! The kernel's default receive buffer (net.core.rmem_default, 208 KiB) holds about 90
//! full-size datagrams: less than one 1080p keyframe, or a few milliseconds of a busy shared
//! port while its reading thread waits for a CPU. Whatever arrives beyond it is dropped by the
//! kernel before owt-webrtc sees it, and has to be repaired by NACK or a new keyframe.
//!
//! socket2 sets SO_RCVBUF; SO_RCVBUFFORCE, which it does not offer, is one libc call here.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use socket2::SockRef;
use webrtc::runtime::{AsyncUdpSocket, UdpSocketSource};

/// Set once the short-buffer warning was logged: it is about the host, not a connection.
static WARNED_SHORT_BUFFER: AtomicBool = AtomicBool::new(false);

/// Binds a non-blocking media socket on `addr` (port 0: one the system picks) with a receive
/// buffer of `receive_buffer` bytes (0: the kernel's default). Warns once per process when the
/// kernel gave less (net.core.rmem_max, without CAP_NET_ADMIN to go past it).
pub fn bind(addr: SocketAddr, receive_buffer: usize) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    if receive_buffer > 0 {
        let got = set_receive_buffer(&socket, receive_buffer)?;
        if got < receive_buffer && !WARNED_SHORT_BUFFER.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "webrtc.udp_receive_buffer: media UDP sockets get a receive buffer of {got} bytes instead of \
                 {receive_buffer}: net.core.rmem_max caps it; raise it (sysctl -w net.core.rmem_max={receive_buffer}) \
                 or give owt-webrtc CAP_NET_ADMIN"
            );
        }
    }
    Ok(socket)
}

/// Binds a media socket on a port of `range` on `ip`, trying them from a random one on. An
/// error naming the range when every port is taken: a port outside it would be one the
/// operator's firewall does not open.
pub fn bind_in_range(ip: IpAddr, range: (u16, u16), receive_buffer: usize) -> io::Result<UdpSocket> {
    let span = u32::from(range.1.saturating_sub(range.0)) + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = range.0 + ((start + i) % span) as u16;
        match bind(SocketAddr::new(ip, port), receive_buffer) {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
            bound => return bound,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free UDP port on {ip} in webrtc.minport..maxport ({}..{})", range.0, range.1),
    ))
}

/// The receive buffer of `socket`, in the bytes it was asked for (Linux reports twice that:
/// it counts its bookkeeping too).
fn receive_buffer(socket: &UdpSocket) -> io::Result<usize> {
    Ok(SockRef::from(socket).recv_buffer_size()? / 2)
}

/// Sets the receive buffer to `bytes`: SO_RCVBUF, then SO_RCVBUFFORCE when net.core.rmem_max
/// capped it (allowed with CAP_NET_ADMIN, refused otherwise). Returns what the socket got.
fn set_receive_buffer(socket: &UdpSocket, bytes: usize) -> io::Result<usize> {
    SockRef::from(socket).set_recv_buffer_size(bytes)?;
    let got = receive_buffer(socket)?;
    // EPERM without CAP_NET_ADMIN: the capped buffer stays, and the caller warns.
    if got >= bytes || force_receive_buffer(socket, bytes).is_err() {
        return Ok(got);
    }
    receive_buffer(socket)
}

/// SO_RCVBUFFORCE: SO_RCVBUF past net.core.rmem_max, which socket2 does not offer.
fn force_receive_buffer(socket: &UdpSocket, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads one c_int from a value we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A bound socket handed to the async runtime, as the stack wraps the sockets it binds.
pub fn wrap(socket: UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let runtime = webrtc::runtime::default_runtime().ok_or_else(|| io::Error::other("no async runtime"))?;
    runtime.wrap_udp_socket(socket)
}

/// Where a connection with sockets of its own (not `minport = maxport`) gets them: a port of
/// the range for each address, or one the system picks without a range. Remembers when the
/// range had no port left, for the connection's error; other failures (an enumerated address
/// that went away) only skip the address, as the stack's own binding does.
#[derive(Debug)]
pub struct OwnSockets {
    ports: (u16, u16),
    receive_buffer: usize,
    exhausted: Mutex<Option<String>>,
}

impl OwnSockets {
    pub fn new(ports: (u16, u16), receive_buffer: usize) -> Arc<OwnSockets> {
        Arc::new(OwnSockets { ports, receive_buffer, exhausted: Mutex::new(None) })
    }

    /// The error of an address for which the range had no free port, if one had none.
    pub fn range_exhausted(&self) -> Option<String> {
        self.exhausted.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl UdpSocketSource for OwnSockets {
    fn udp_socket(&self, addr: SocketAddr) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let bound = if self.ports.0 == 0 {
            bind(addr, self.receive_buffer)
        } else {
            bind_in_range(addr.ip(), self.ports, self.receive_buffer)
        };
        let socket = bound.inspect_err(|err| {
            if err.kind() == io::ErrorKind::AddrInUse {
                *self.exhausted.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.to_string());
            }
        })?;
        wrap(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn localhost() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    /// What a socket can get here: the request, or net.core.rmem_max without CAP_NET_ADMIN.
    fn attainable(bytes: usize) -> usize {
        let probe = UdpSocket::bind((localhost(), 0)).unwrap();
        if force_receive_buffer(&probe, 4096).is_ok() {
            return bytes;
        }
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
        bytes.min(max)
    }

    #[test]
    fn a_media_socket_gets_the_receive_buffer_asked_for() {
        for bytes in [64 << 10, 2 << 20, 16 << 20] {
            let socket = bind(SocketAddr::new(localhost(), 0), bytes).unwrap();
            let got = receive_buffer(&socket).unwrap();
            assert!(got >= attainable(bytes), "asked {bytes}, got {got}");
        }
    }

    #[test]
    fn zero_keeps_the_kernels_default() {
        let plain = UdpSocket::bind((localhost(), 0)).unwrap();
        let socket = bind(SocketAddr::new(localhost(), 0), 0).unwrap();
        assert_eq!(receive_buffer(&socket).unwrap(), receive_buffer(&plain).unwrap());
    }

    #[test]
    fn ports_come_from_the_range_until_it_is_used_up() {
        let start = UdpSocket::bind((localhost(), 0)).unwrap().local_addr().unwrap().port().min(65000);
        let range = (start, start + 2);
        let mut held = Vec::new();
        while let Ok(socket) = bind_in_range(localhost(), range, 0) {
            let port = socket.local_addr().unwrap().port();
            assert!((range.0..=range.1).contains(&port), "{port} outside {range:?}");
            held.push(socket);
            assert!(held.len() <= 3);
        }
        let err = bind_in_range(localhost(), range, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            err.to_string(),
            format!("no free UDP port on 127.0.0.1 in webrtc.minport..maxport ({}..{})", range.0, range.1)
        );
    }

    #[tokio::test]
    async fn the_source_remembers_a_range_with_no_port_left() {
        let source = OwnSockets::new((0, 0), 0);
        // An address that is not this host's: skipped, not a range error.
        assert!(source.udp_socket(SocketAddr::new(IpAddr::from([192, 0, 2, 1]), 0)).is_err());
        assert_eq!(source.range_exhausted(), None);
        let taken = UdpSocket::bind((localhost(), 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let source = OwnSockets::new((port, port), 1 << 20);
        assert!(source.udp_socket(SocketAddr::new(localhost(), 0)).is_err());
        let exhausted = source.range_exhausted();
        assert!(exhausted.as_deref().is_some_and(|e| e.contains("no free UDP port on 127.0.0.1")), "{exhausted:?}");
        drop(taken);
        let socket = source.udp_socket(SocketAddr::new(localhost(), 0)).unwrap();
        assert_eq!(socket.local_addr().unwrap().port(), port);
    }
}

//! Tokio runtime implementation

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

/// A WebRTC runtime for Tokio
#[derive(Debug)]
pub struct TokioRuntime;

/// Shared, bounded pool of single-threaded reactor runtimes, replacing the old
/// one-OS-thread-per-`PeerConnection` model. Each slot is a dedicated thread
/// hosting a `new_current_thread` runtime, created lazily on first use and kept
/// alive for the process lifetime; driver futures are assigned to slots
/// round-robin and pinned there, so the thread (and per-thread allocator arena)
/// count is bounded by the pool size regardless of connection count (issue #101
/// RSS). See [`Runtime::spawn_reactor`].
struct ReactorPool {
    /// One lazily-initialised pool slot. A slot's thread is created only when that
    /// slot is first assigned work, so `M` connections use `min(M, N)` threads (an
    /// unshared thread each below the bound, then sharing). `Some(handle)` is a live
    /// pool runtime; `None` records that this slot's thread could not be created
    /// (a rare resource-exhaustion failure), so its work falls back to the ambient
    /// runtime instead — never a panic out of `build()`.
    slots: Box<[OnceLock<Option<::tokio::runtime::Handle>>]>,
    /// Round-robin cursor over `slots`.
    next: AtomicUsize,
}

impl ReactorPool {
    fn new(size: usize) -> Self {
        let size = size.clamp(1, super::MAX_REACTOR_POOL_SIZE);
        let slots = (0..size)
            .map(|_| OnceLock::new())
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            slots,
            next: AtomicUsize::new(0),
        }
    }

    fn spawn(
        &self,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> ::tokio::task::JoinHandle<()> {
        let idx = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        match self.slots[idx].get_or_init(|| spawn_reactor_thread(idx)) {
            Some(handle) => handle.spawn(future),
            // Slot thread failed to start; degrade to the ambient runtime rather
            // than losing the driver (spawn_reactor is always called from within a
            // tokio runtime context — the application's — so this is valid).
            None => ::tokio::spawn(future),
        }
    }
}

/// Spawn one pool thread — a dedicated OS thread hosting a current-thread tokio
/// runtime — and return a `Handle` onto it, or `None` if the thread or its runtime
/// could not be built (a rare resource-exhaustion failure; the caller degrades to
/// the ambient runtime). The thread parks on `block_on(pending())` forever, which
/// keeps the runtime's I/O and timer drivers running so it can drive every future
/// later `Handle::spawn`ed onto it while the block_on future itself never completes.
fn spawn_reactor_thread(idx: usize) -> Option<::tokio::runtime::Handle> {
    // Rendezvous: hand the freshly-built runtime's Handle back to this caller.
    let (tx, rx) = std::sync::mpsc::sync_channel::<::tokio::runtime::Handle>(0);
    let spawned = std::thread::Builder::new()
        // Keep <= 15 bytes so the name survives Linux's `comm` truncation.
        .name(format!("webrtc-rx{idx}"))
        .spawn(move || {
            match ::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    // Hand back a Handle, then keep the runtime (and its I/O + timer
                    // drivers) alive so `Handle::spawn`ed driver tasks make progress
                    // while we park here forever.
                    let _ = tx.send(rt.handle().clone());
                    rt.block_on(std::future::pending::<()>());
                }
                Err(err) => {
                    // Dropping `tx` unblocks the rendezvous `recv` with an error.
                    log::error!("failed to build reactor pool runtime: {err}");
                }
            }
        });
    match spawned {
        // `recv` errs only if the thread dropped `tx` without sending, i.e. the
        // runtime build failed above — surface that as `None`, not a panic.
        Ok(_) => rx.recv().ok(),
        Err(err) => {
            log::error!("failed to spawn reactor pool thread: {err}");
            None
        }
    }
}

/// Process-global reactor pool for the tokio runtime, sized once on first use.
static REACTOR_POOL: OnceLock<ReactorPool> = OnceLock::new();

struct TokioJoinHandle(::tokio::task::JoinHandle<()>);

// No `impl Drop` needed: `tokio::task::JoinHandle` already detaches when dropped, which is
// exactly the contract `super::JoinHandle` requires.
impl super::JoinHandle for TokioJoinHandle {
    fn detach(&self) {
        // Nothing to do — tokio detaches on drop, and holding the handle does not cancel.
    }

    fn abort(&self) {
        self.0.abort();
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Runtime for TokioRuntime {
    fn spawn(
        &self,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn super::JoinHandle> {
        let handle = ::tokio::spawn(future);
        Box::new(TokioJoinHandle(handle))
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn super::JoinHandle> {
        // Route to the process-global bounded reactor pool (built lazily, sized
        // once from `reactor_pool_size`). The driver runs as a task pinned to one
        // pool thread; the returned handle aborts that task, not a whole thread.
        let handle = REACTOR_POOL
            .get_or_init(|| ReactorPool::new(reactor_pool_size))
            .spawn(future);
        Box::new(TokioJoinHandle(handle))
    }

    fn wrap_udp_socket(&self, sock: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        sock.set_nonblocking(true)?;
        // Probe + enable UDP GSO/GRO (and ECN/MTU options) on the socket. This is a
        // one-time reconfiguration of the socket itself: plain sends still work, but a
        // receive may now return several datagrams coalesced into one buffer, so the read
        // path has to de-segment by `stride`.
        let batch = ::quinn_udp::UdpSocketState::new(::quinn_udp::UdpSockRef::from(&sock))?;
        // owt-rs patch: registered for reading only (see `UdpSocket`).
        // SAFETY: a `std::net::UdpSocket` owns its file descriptor, keeps it open until it
        // is dropped and always returns the same one from `as_raw_fd`.
        let io = unsafe {
            ::tokio::io::unix::AsyncFd::register_with_interest(
                sock,
                ::tokio::io::Interest::READABLE,
            )
        }?;
        Ok(Arc::new(UdpSocket {
            io: Arc::new(io),
            batch: Arc::new(batch),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        listener.set_nonblocking(true)?;
        Ok(Arc::new(TcpListener {
            io: ::tokio::net::TcpListener::from_std(listener)?,
        }))
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async move {
            let stream = ::tokio::net::TcpStream::connect(remote_addr).await?;
            let local_addr = stream.local_addr()?;
            let peer_addr = stream.peer_addr()?;
            let (read_half, write_half) = stream.into_split();
            Ok(Arc::new(TcpStream {
                read_half,
                write_half,
                local_addr,
                peer_addr,
            }) as Arc<dyn AsyncTcpStream>)
        })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move {
            ::tokio::net::lookup_host(host)
                .await
                .map(|iter| iter.collect())
        })
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(::tokio::time::sleep(duration))
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        Box::new(TokioInterval(::tokio::time::interval(period)))
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        ::tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("failed to build tokio runtime")
            .block_on(future);
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        // Use tokio's own yield so this participates in its cooperative scheduling
        // budget, rather than the generic wake-once default.
        Box::pin(::tokio::task::yield_now())
    }

    fn name(&self) -> &'static str {
        "tokio"
    }
}

/// A repeating interval timer backed by the Tokio runtime.
struct TokioInterval(::tokio::time::Interval);

impl AsyncInterval for TokioInterval {
    fn tick(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.0.tick().await;
        })
    }
}

/// owt-rs patch: the socket is registered with the I/O driver for reading only. A socket
/// registered for writing too (tokio's `UdpSocket`) has the kernel call the driver's epoll
/// back each time a sent datagram is freed (its send buffer gained room). While a worker
/// was parked in `epoll_wait`, every send of the other worker woke it, and it went back to
/// sleep with nothing to do: in an SFU fan-out, a wake-up per subscriber copy. A UDP send
/// buffer is rarely full (datagrams leave it as soon as the device takes them), so a send
/// that finds it full (`WouldBlock`) is simply tried again `SEND_RETRY` later.
#[derive(Clone)]
struct UdpSocket {
    io: Arc<::tokio::io::unix::AsyncFd<std::net::UdpSocket>>,
    /// Per-socket GSO/GRO capability state (see [`super::primitives`]).
    batch: Arc<::quinn_udp::UdpSocketState>,
}

/// How long a send that found the socket's buffer full waits before it tries again.
const SEND_RETRY: Duration = Duration::from_millis(1);

/// Wakes `cx`'s task again `SEND_RETRY` from now: a send that found the socket's buffer full
/// tries again then (see `UdpSocket`). Outside a runtime it is woken at once.
fn wake_after_send_retry(cx: &Context<'_>) {
    let waker = cx.waker().clone();
    match ::tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                ::tokio::time::sleep(SEND_RETRY).await;
                waker.wake();
            });
        }
        Err(_) => waker.wake(),
    }
}

/// Hand-written because `quinn_udp::UdpSocketState` implements no `Debug`, so `UdpSocket`
/// cannot derive it — and `AsyncUdpSocket` requires it.
impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("io", self.io.get_ref())
            .field("max_gso_segments", &self.batch.max_gso_segments())
            .field("gro_segments", &self.batch.gro_segments())
            .finish()
    }
}

impl AsyncUdpSocket for UdpSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn max_gso_segments(&self) -> usize {
        self.batch.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.batch.gro_segments()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        match self.try_send(transmit) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // No write readiness to wait for (see `UdpSocket`): come back later.
                wake_after_send_retry(cx);
                Poll::Pending
            }
            other => Poll::Ready(other),
        }
    }

    /// owt-rs patch: no readiness is kept for writing, so the send is simply tried.
    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<usize> {
        self.batch
            .try_send(::quinn_udp::UdpSockRef::from(self.io.get_ref()), transmit)
            .map(|()| transmit.contents.len())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = match self.io.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(ready)) => ready,
            };
            // Through the guard's `try_io`: it clears the cached readiness when the socket
            // turns out empty (`WouldBlock`), so the next `poll_read_ready` parks the waker
            // instead of reporting the stale readiness again.
            let bufs = &mut *bufs;
            let meta = &mut *meta;
            let received = ready.try_io(|io| {
                let n = self
                    .batch
                    .recv(::quinn_udp::UdpSockRef::from(io.get_ref()), bufs, meta)?;
                if n == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                // `quinn-udp` mirrors `len` into `stride`, so a zero-length datagram
                // reports `stride == 0` and would make de-segmentation divide by zero.
                for m in &mut meta[..n] {
                    if m.stride == 0 {
                        m.stride = m.len.max(1);
                    }
                }
                Ok(n)
            });
            match received {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

#[derive(Debug)]
struct TcpListener {
    io: ::tokio::net::TcpListener,
}

impl AsyncTcpListener for TcpListener {
    fn accept<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>> + Send + 'a>>
    {
        Box::pin(async move {
            let (stream, addr) = self.io.accept().await?;
            let local_addr = stream.local_addr()?;
            let peer_addr = stream.peer_addr()?;
            let (read_half, write_half) = stream.into_split();
            Ok((
                Arc::new(TcpStream {
                    read_half,
                    write_half,
                    local_addr,
                    peer_addr,
                }) as Arc<dyn AsyncTcpStream>,
                addr,
            ))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

#[derive(Debug)]
struct TcpStream {
    read_half: ::tokio::net::tcp::OwnedReadHalf,
    write_half: ::tokio::net::tcp::OwnedWriteHalf,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
}

impl AsyncTcpStream for TcpStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            loop {
                self.read_half.readable().await?;
                match self.read_half.try_read(buf) {
                    Ok(n) => return Ok(n),
                    Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn write_all<'a, 'b>(
        &'a self,
        buf: &'b [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let mut remaining = buf;
            while !remaining.is_empty() {
                self.write_half.writable().await?;
                match self.write_half.try_write(remaining) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "failed to write any bytes",
                        ));
                    }
                    Ok(n) => remaining = &remaining[n..],
                    Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer_addr)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const EPOLLIN: u32 = 0x1;
    const EPOLLOUT: u32 = 0x4;

    /// The event masks this process's epoll instances watch `fd` for, as the kernel lists
    /// them in /proc/self/fdinfo ("tfd: <fd> events: <hex mask> ...").
    fn epoll_masks_of(fd: i32) -> Vec<u32> {
        let mut masks = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .flatten()
        {
            let is_epoll = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy() == "anon_inode:[eventpoll]");
            if !is_epoll {
                continue;
            }
            let info_path = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
            let info = std::fs::read_to_string(info_path).unwrap_or_default();
            for line in info.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["tfd:", tfd, "events:", mask, ..] = words[..]
                    && tfd.parse() == Ok(fd)
                {
                    masks.push(u32::from_str_radix(mask, 16).expect("hex event mask"));
                }
            }
        }
        masks
    }

    fn runtime() -> ::tokio::runtime::Runtime {
        ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn udp_sockets_are_watched_for_reading_only() {
        runtime().block_on(async {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let fd = sock.as_raw_fd();
            let _wrapped = TokioRuntime.wrap_udp_socket(sock).expect("wrap");
            // (Tests run beside each other: another epoll may list an fd of the same number.)
            let masks = epoll_masks_of(fd);
            assert!(!masks.is_empty(), "registered with the I/O driver");
            for mask in masks {
                assert_ne!(mask & EPOLLIN, 0, "watched for reading: {mask:x}");
                assert_eq!(mask & EPOLLOUT, 0, "not watched for writing: {mask:x}");
            }
        });
    }

    /// A waker that counts its wake-ups.
    struct CountedWaker(AtomicUsize);

    impl futures::task::ArcWake for CountedWaker {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_send_that_found_the_buffer_full_is_woken_again_later() {
        runtime().block_on(async {
            let counted = Arc::new(CountedWaker(AtomicUsize::new(0)));
            let waker = futures::task::waker(counted.clone());
            wake_after_send_retry(&Context::from_waker(&waker));
            // The runtime has one thread, busy here: nothing else has run yet.
            assert_eq!(counted.0.load(Ordering::SeqCst), 0, "not woken at once");
            for _ in 0..500 {
                if counted.0.load(Ordering::SeqCst) > 0 {
                    break;
                }
                ::tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(counted.0.load(Ordering::SeqCst), 1, "woken once, later");
        });
    }

    #[test]
    fn udp_sockets_send_and_receive_with_and_without_a_waker() {
        runtime().block_on(async {
            let a = TokioRuntime
                .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
                .expect("wrap");
            let b = TokioRuntime
                .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
                .expect("wrap");
            let to_b = b.local_addr().expect("addr");
            let transmit = |contents| Transmit {
                destination: to_b,
                ecn: None,
                contents,
                segment_size: None,
                src_ip: None,
            };
            let sent = futures::future::poll_fn(|cx| a.poll_send(cx, &transmit(b"polled")))
                .await
                .expect("poll_send");
            assert_eq!(sent, 6);
            assert_eq!(a.try_send(&transmit(b"direct")).expect("try_send"), 6);

            let mut buf = [0u8; 64];
            for expected in [&b"polled"[..], b"direct"] {
                let (n, from) =
                    ::tokio::time::timeout(Duration::from_secs(5), b.recv_from(&mut buf))
                        .await
                        .expect("a datagram within 5 s")
                        .expect("recv");
                assert_eq!(&buf[..n], expected);
                assert_eq!(from, a.local_addr().expect("addr"));
            }
            // Nothing more: the read readiness was cleared, and the next receive waits.
            let idle =
                ::tokio::time::timeout(Duration::from_millis(50), b.recv_from(&mut buf)).await;
            assert!(idle.is_err(), "no third datagram");
        });
    }
}

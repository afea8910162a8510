//! One UDP port for every peer connection of the node (`webrtc.minport` = `webrtc.maxport`):
//! a single port to open in a firewall, as OWT's port range of one would suggest but could not
//! give (one socket per connection there too).
//!
//! Written here because the webrtc crate 0.21 has no UDP mux (its `with_udp_network` is a todo
//! upstream); the vendored webrtc takes the connection's sockets from a [`UdpSocketSource`]
//! instead of binding them. One real socket per local address ([`SharedPort`]) is read by a
//! task of its own; each datagram goes to the connection the [`Demux`] names, into that
//! connection's [`MuxedSocket`], which the connection's driver reads like a socket of its own.
//! Sends go straight out of the shared socket.
//!
//! Which connection a datagram is for: a STUN request naming a connection's ICE username
//! fragment (`USERNAME` = `<ours>:<theirs>`, RFC 8445 §7.2.2) and signed with its password
//! (MESSAGE-INTEGRITY, HMAC-SHA1, RFC 5389 §15.4) ties its source address to that connection;
//! anything else goes by its source address. Datagrams from an address no connection has been
//! tied to are dropped, and so is a request whose signature does not check out: knowing a
//! ufrag is not enough to take a peer's place. The STUN message is parsed by hand: only
//! USERNAME and MESSAGE-INTEGRITY are needed, without copying the datagram (rtc's STUN decoder
//! copies it into a message first).
//!
//! Limits: at most [`ADDRESSES_PER_CONNECTION`] source addresses per connection (the oldest
//! is forgotten), and [`QUEUE_LIMIT`] datagrams waiting per connection (more are dropped, as
//! a full socket buffer would). An ICE restart keeps the connection's credentials (they are
//! fixed when the connection is made).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use webrtc::peer_connection::transport::is_retryable_socket_recv_error;
use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Transmit, UdpSocketSource};

/// Source addresses remembered per connection (its peer's candidates it was checked from).
pub const ADDRESSES_PER_CONNECTION: usize = 16;
/// Datagrams waiting for a connection's driver at most.
pub const QUEUE_LIMIT: usize = 1024;
/// The shared socket's receive buffer, for GRO-coalesced reads (64 datagrams of 1500 bytes).
const SHARED_RECV_BUF: usize = 64 * 1500;

const STUN_HEADER: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_USERNAME: u16 = 0x0006;
const STUN_MESSAGE_INTEGRITY: u16 = 0x0008;
const HMAC_SHA1_LEN: usize = 20;

/// A muxed socket's number in its port's demux.
pub type ConnId = u64;

/// The attributes of a well-formed STUN message: (type, value, offset of the attribute in
/// the message). `None` for anything else, truncated or malformed.
fn stun_attributes(datagram: &[u8]) -> Option<Vec<(u16, &[u8], usize)>> {
    if datagram.len() < STUN_HEADER || datagram[0] & 0xc0 != 0 || datagram[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(STUN_HEADER..STUN_HEADER + length)?;
    let mut attributes = Vec::new();
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        attributes.push((kind, body.get(at + 4..at + 4 + len)?, STUN_HEADER + at));
        at += 4 + len.div_ceil(4) * 4;
    }
    Some(attributes)
}

/// The local ICE username fragment a STUN message names in its USERNAME attribute, if it is a
/// well-formed STUN message with one. Truncated or malformed ones give `None`.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    let attributes = stun_attributes(datagram)?;
    let (_, username, _) = attributes.into_iter().find(|(kind, _, _)| *kind == STUN_USERNAME)?;
    std::str::from_utf8(username).ok()?.split(':').next().filter(|ufrag| !ufrag.is_empty())
}

/// Whether a STUN message carries a MESSAGE-INTEGRITY made with `password` (the short-term
/// credential of ICE: the key is the password itself).
pub fn stun_signed_with(datagram: &[u8], password: &str) -> bool {
    use hmac::Mac;
    let Some(attributes) = stun_attributes(datagram) else { return false };
    let Some((_, signature, offset)) = attributes.into_iter().find(|(kind, _, _)| *kind == STUN_MESSAGE_INTEGRITY)
    else {
        return false;
    };
    if signature.len() != HMAC_SHA1_LEN {
        return false;
    }
    // Signed: the message up to the attribute, its length as if the attribute were the last.
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(password.as_bytes()) else { return false };
    let length = (offset + 4 + HMAC_SHA1_LEN - STUN_HEADER) as u16;
    mac.update(&datagram[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&datagram[4..offset]);
    mac.verify_slice(signature).is_ok()
}

/// Which connection each datagram of one shared port goes to (sans-IO).
#[derive(Debug, Default)]
pub struct Demux {
    by_ufrag: HashMap<String, ConnId>,
    by_addr: HashMap<SocketAddr, ConnId>,
    /// Each connection's ICE credentials and its addresses, oldest first.
    conns: HashMap<ConnId, Conn>,
}

#[derive(Debug)]
struct Conn {
    ufrag: String,
    password: String,
    addrs: VecDeque<SocketAddr>,
}

impl Demux {
    /// A connection whose local ICE credentials are `ufrag` and `password`.
    pub fn add(&mut self, id: ConnId, ufrag: &str, password: &str) {
        self.by_ufrag.insert(ufrag.to_string(), id);
        let conn = Conn { ufrag: ufrag.to_string(), password: password.to_string(), addrs: VecDeque::new() };
        self.conns.insert(id, conn);
    }

    /// Forgets a connection and every address tied to it.
    pub fn remove(&mut self, id: ConnId) {
        let Some(conn) = self.conns.remove(&id) else { return };
        if self.by_ufrag.get(&conn.ufrag) == Some(&id) {
            self.by_ufrag.remove(&conn.ufrag);
        }
        for addr in conn.addrs {
            if self.by_addr.get(&addr) == Some(&id) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The connection a datagram from `from` goes to, if any (see the module header).
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<ConnId> {
        let tied = self.by_addr.get(&from).copied();
        let named = stun_local_ufrag(datagram).and_then(|ufrag| self.by_ufrag.get(ufrag).copied());
        match named {
            Some(id) if tied == Some(id) => Some(id),
            Some(id) => {
                let signed = self.conns.get(&id).is_some_and(|conn| stun_signed_with(datagram, &conn.password));
                if !signed {
                    return tied;
                }
                self.tie(from, id);
                Some(id)
            }
            None => tied,
        }
    }

    fn tie(&mut self, from: SocketAddr, id: ConnId) {
        if let Some(previous) = self.by_addr.insert(from, id) {
            if let Some(conn) = self.conns.get_mut(&previous) {
                conn.addrs.retain(|addr| *addr != from);
            }
        }
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.addrs.push_back(from);
        if conn.addrs.len() > ADDRESSES_PER_CONNECTION {
            if let Some(oldest) = conn.addrs.pop_front() {
                if self.by_addr.get(&oldest) == Some(&id) {
                    self.by_addr.remove(&oldest);
                }
            }
        }
    }
}

/// Datagrams waiting for one connection's driver, and its waker.
#[derive(Default)]
struct Inbox {
    datagrams: VecDeque<(SocketAddr, Vec<u8>)>,
    waker: Option<Waker>,
}

#[derive(Default)]
struct PortState {
    demux: Demux,
    inboxes: HashMap<ConnId, Inbox>,
    /// Datagrams no connection took (unknown source, or a full inbox).
    dropped: u64,
}

/// One real socket shared by the node's connections on a local address.
pub struct SharedPort {
    socket: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    state: Mutex<PortState>,
}

impl fmt::Debug for SharedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPort").field("local", &self.local).finish()
    }
}

impl SharedPort {
    fn lock(&self) -> MutexGuard<'_, PortState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands each datagram of one read (several when GRO coalesced them) to its connection.
    fn deliver(&self, from: SocketAddr, read: &[u8], stride: usize) {
        let mut state = self.lock();
        for datagram in read.chunks(stride.max(1)) {
            let PortState { demux, inboxes, dropped } = &mut *state;
            let inbox = demux.route(from, datagram).and_then(|id| inboxes.get_mut(&id));
            match inbox {
                Some(inbox) if inbox.datagrams.len() < QUEUE_LIMIT => {
                    inbox.datagrams.push_back((from, datagram.to_vec()));
                    if let Some(waker) = inbox.waker.take() {
                        waker.wake();
                    }
                }
                _ => *dropped += 1,
            }
        }
    }

    /// Reads the shared socket until it fails for good, delivering what it reads.
    async fn read_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; SHARED_RECV_BUF];
        loop {
            let mut meta = [RecvMeta::default()];
            let received = std::future::poll_fn(|cx| {
                let mut bufs = [IoSliceMut::new(&mut buf)];
                self.socket.poll_recv(cx, &mut bufs, &mut meta)
            })
            .await;
            match received {
                Ok(_) => {
                    let m = meta[0];
                    self.deliver(m.addr, &buf[..m.len.min(buf.len())], m.stride);
                }
                Err(err) if is_retryable_socket_recv_error(&err) => continue,
                Err(err) => {
                    tracing::error!("shared UDP port {} stopped receiving: {err}", self.local);
                    return;
                }
            }
        }
    }

    /// Datagrams dropped so far (no connection for their source, or its inbox full).
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// The node's shared ports, one per local address, bound on first use.
#[derive(Default)]
pub struct UdpMux {
    ports: Mutex<HashMap<SocketAddr, Arc<SharedPort>>>,
    /// Receive buffer of each shared socket, bytes (0: the kernel's default).
    receive_buffer: usize,
}

impl fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpMux").finish_non_exhaustive()
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl UdpMux {
    /// A mux whose shared sockets get a receive buffer of `receive_buffer` bytes (0: the
    /// kernel's default, see sockets.rs): every connection's datagrams queue in it.
    pub fn new(receive_buffer: usize) -> Arc<UdpMux> {
        Arc::new(UdpMux { receive_buffer, ..UdpMux::default() })
    }

    /// The shared port of `addr`, bound (and its reader started on the current tokio runtime)
    /// the first time it is asked for.
    pub fn port(&self, addr: SocketAddr) -> io::Result<Arc<SharedPort>> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(port) = ports.get(&addr) {
            return Ok(port.clone());
        }
        let std_socket = crate::sockets::bind(addr, self.receive_buffer)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind the shared UDP port {addr}: {e}")))?;
        let local = std_socket.local_addr()?;
        let socket = crate::sockets::wrap(std_socket)?;
        let port = Arc::new(SharedPort { socket, local, state: Mutex::new(PortState::default()) });
        tokio::spawn(port.clone().read_loop());
        tracing::info!("shared UDP port {local} open");
        ports.insert(addr, port.clone());
        Ok(port)
    }

    /// Where a connection whose local ICE credentials are `ufrag` and `password` gets its
    /// sockets.
    pub fn source(self: &Arc<Self>, ufrag: &str, password: &str) -> Arc<dyn UdpSocketSource> {
        Arc::new(ConnSockets { mux: self.clone(), ufrag: ufrag.to_string(), password: password.to_string() })
    }
}

/// One connection's view of the mux: its [`MuxedSocket`] on each shared port.
struct ConnSockets {
    mux: Arc<UdpMux>,
    ufrag: String,
    password: String,
}

impl fmt::Debug for ConnSockets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnSockets").field("ufrag", &self.ufrag).finish()
    }
}

impl UdpSocketSource for ConnSockets {
    fn udp_socket(&self, addr: SocketAddr) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let port = self.mux.port(addr)?;
        Ok(Arc::new(MuxedSocket::open(port, &self.ufrag, &self.password)))
    }
}

/// A connection's socket on a shared port: receives what the demux gives it, sends out of the
/// shared socket. Dropping it (the connection closed or rebound) forgets the connection.
pub struct MuxedSocket {
    port: Arc<SharedPort>,
    id: ConnId,
}

impl fmt::Debug for MuxedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxedSocket").field("local", &self.port.local).field("id", &self.id).finish()
    }
}

impl MuxedSocket {
    pub fn open(port: Arc<SharedPort>, ufrag: &str, password: &str) -> MuxedSocket {
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = port.lock();
            state.demux.add(id, ufrag, password);
            state.inboxes.insert(id, Inbox::default());
        }
        MuxedSocket { port, id }
    }
}

impl Drop for MuxedSocket {
    fn drop(&mut self) {
        let mut state = self.port.lock();
        state.demux.remove(self.id);
        state.inboxes.remove(&self.id);
    }
}

impl AsyncUdpSocket for MuxedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.port.local)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.port.socket.poll_send(cx, transmit)
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<usize> {
        self.port.socket.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut state = self.port.lock();
        let Some(inbox) = state.inboxes.get_mut(&self.id) else {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "connection left the shared port")));
        };
        let Some((from, datagram)) = inbox.datagrams.pop_front() else {
            inbox.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let len = datagram.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram[..len]);
        let mut received = RecvMeta::default();
        received.addr = from;
        received.len = len;
        received.stride = len.max(1);
        *slot = received;
        Poll::Ready(Ok(1))
    }

    fn max_gso_segments(&self) -> usize {
        self.port.socket.max_gso_segments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A STUN binding request whose USERNAME is `username`, signed with `password` as ICE signs
    /// its checks (MESSAGE-INTEGRITY, then FINGERPRINT, which the signature does not cover).
    fn signed_request(username: &str, password: &str) -> Vec<u8> {
        use hmac::Mac;
        let mut message = vec![0x00, 0x01, 0, 0];
        message.extend_from_slice(&STUN_MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        // An attribute before USERNAME, to be skipped (PRIORITY, 4 bytes).
        message.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        message.extend_from_slice(&STUN_USERNAME.to_be_bytes());
        message.extend_from_slice(&(username.len() as u16).to_be_bytes());
        message.extend_from_slice(username.as_bytes());
        message.resize(message.len().div_ceil(4) * 4, 0);
        let signed_length = (message.len() + 4 + HMAC_SHA1_LEN - STUN_HEADER) as u16;
        message[2..4].copy_from_slice(&signed_length.to_be_bytes());
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(password.as_bytes()).unwrap();
        mac.update(&message);
        message.extend_from_slice(&STUN_MESSAGE_INTEGRITY.to_be_bytes());
        message.extend_from_slice(&(HMAC_SHA1_LEN as u16).to_be_bytes());
        message.extend_from_slice(&mac.finalize().into_bytes());
        message.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 9, 9, 9, 9]);
        let length = (message.len() - STUN_HEADER) as u16;
        message[2..4].copy_from_slice(&length.to_be_bytes());
        message
    }

    /// A request as the peer of connection `ufrag` (password `<ufrag>-pw`) sends it.
    fn binding_request(username: &str) -> Vec<u8> {
        let ours = username.split(':').next().unwrap_or_default();
        signed_request(username, &format!("{ours}-pw"))
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_username_names_the_local_ufrag() {
        assert_eq!(stun_local_ufrag(&binding_request("srv1:cli1")), Some("srv1"));
        assert_eq!(stun_local_ufrag(&binding_request("odd")), Some("odd"), "no colon: all of it");
        assert_eq!(stun_local_ufrag(&binding_request(":cli")), None, "an empty local part");
    }

    #[test]
    fn only_the_connections_password_signs_its_checks() {
        let request = signed_request("srv1:cli1", "secret");
        assert!(stun_signed_with(&request, "secret"));
        assert!(!stun_signed_with(&request, "other"));
        for at in [0, 1, 5, 8, 20, 30, request.len() - 30] {
            let mut tampered = request.clone();
            tampered[at] ^= 0x01;
            assert!(!stun_signed_with(&tampered, "secret"), "byte {at} changed");
        }
        for cut in 0..request.len() {
            assert!(!stun_signed_with(&request[..cut], "secret"), "truncated to {cut} bytes");
        }
        let mut unsigned = request.clone();
        unsigned.truncate(request.len() - 8 - 24);
        let length = (unsigned.len() - STUN_HEADER) as u16;
        unsigned[2..4].copy_from_slice(&length.to_be_bytes());
        assert_eq!(stun_local_ufrag(&unsigned), Some("srv1"));
        assert!(!stun_signed_with(&unsigned, "secret"), "no MESSAGE-INTEGRITY");
    }

    #[test]
    fn a_check_that_is_not_signed_with_the_password_ties_no_address() {
        let mut demux = Demux::default();
        demux.add(1, "alice", "alice-pw");
        assert_eq!(demux.route(addr(5000), &signed_request("alice:x", "guessed")), None);
        assert_eq!(demux.route(addr(5000), b"\x16 dtls"), None, "the address was not tied");
        assert_eq!(demux.route(addr(6000), &binding_request("alice:x")), Some(1));
        // A forged check from the peer's address does not move it anywhere either.
        demux.add(2, "bob", "bob-pw");
        assert_eq!(demux.route(addr(6000), &signed_request("bob:y", "guessed")), Some(1));
        assert_eq!(demux.route(addr(6000), b"\x16"), Some(1));
    }

    #[test]
    fn malformed_or_truncated_stun_names_nobody() {
        let good = binding_request("srv1:cli1");
        for cut in 0..good.len() {
            assert_eq!(stun_local_ufrag(&good[..cut]), None, "truncated to {cut} bytes");
        }
        let mut wrong_cookie = good.clone();
        wrong_cookie[5] ^= 1;
        assert_eq!(stun_local_ufrag(&wrong_cookie), None);
        let mut not_stun = good.clone();
        not_stun[0] = 0x80; // RTP
        assert_eq!(stun_local_ufrag(&not_stun), None);
        let mut huge_attribute = good.clone();
        huge_attribute[STUN_HEADER + 8 + 2..STUN_HEADER + 8 + 4].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(stun_local_ufrag(&huge_attribute), None, "an attribute longer than the message");
        let mut not_utf8 = good;
        not_utf8[STUN_HEADER + 12] = 0xff;
        assert_eq!(stun_local_ufrag(&not_utf8), None);
        for byte in 0..=255u8 {
            assert_eq!(stun_local_ufrag(&[byte; 64]), None);
        }
    }

    #[test]
    fn stun_ties_an_address_and_the_rest_follows_it() {
        let mut demux = Demux::default();
        demux.add(1, "alice", "alice-pw");
        demux.add(2, "bob", "bob-pw");
        assert_eq!(demux.route(addr(5000), b"\x16\xfe\xfd dtls before any check"), None, "unknown source");
        assert_eq!(demux.route(addr(5000), &binding_request("alice:x")), Some(1));
        assert_eq!(demux.route(addr(5000), b"\x16\xfe\xfd dtls"), Some(1));
        assert_eq!(demux.route(addr(6000), &binding_request("bob:y")), Some(2));
        assert_eq!(demux.route(addr(6000), &[0x80, 0x60, 0, 1]), Some(2));
        assert_eq!(demux.route(addr(7000), &binding_request("mallory:z")), None, "unknown ufrag");
        assert_eq!(demux.route(addr(7000), b"anything"), None);
        // An address checked for another connection moves to it.
        assert_eq!(demux.route(addr(5000), &binding_request("bob:y")), Some(2));
        assert_eq!(demux.route(addr(5000), b"\x16"), Some(2));
        demux.remove(2);
        assert_eq!(demux.route(addr(5000), b"\x16"), None, "a removed connection's addresses are forgotten");
        assert_eq!(demux.route(addr(6000), &binding_request("bob:y")), None);
        assert_eq!(demux.route(addr(7000), &binding_request("alice:x")), Some(1));
        assert_eq!(demux.conns.len(), 1);
    }

    #[test]
    fn a_connection_keeps_a_bounded_number_of_addresses() {
        let mut demux = Demux::default();
        demux.add(1, "alice", "alice-pw");
        for port in 0..(ADDRESSES_PER_CONNECTION as u16 * 4) {
            assert_eq!(demux.route(addr(10_000 + port), &binding_request("alice:x")), Some(1));
        }
        assert_eq!(demux.by_addr.len(), ADDRESSES_PER_CONNECTION);
        let newest = 10_000 + ADDRESSES_PER_CONNECTION as u16 * 4 - 1;
        assert_eq!(demux.route(addr(newest), b"x"), Some(1));
        assert_eq!(demux.route(addr(10_000), b"x"), None, "the oldest was forgotten");
    }

    /// Receives one datagram of `socket` (driving its `poll_recv` as the driver does).
    async fn receive(socket: &MuxedSocket) -> (SocketAddr, Vec<u8>) {
        // As the driver reads a socket without GRO: one datagram into 2000 bytes.
        let mut buf = vec![0u8; 2000];
        let mut meta = [RecvMeta::default()];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| {
                let mut bufs = [IoSliceMut::new(&mut buf)];
                socket.poll_recv(cx, &mut bufs, &mut meta)
            }),
        )
        .await
        .expect("a datagram arrives")
        .unwrap();
        assert_eq!(n, 1);
        (meta[0].addr, buf[..meta[0].len].to_vec())
    }

    #[tokio::test]
    async fn connections_share_one_port_and_each_gets_its_own_datagrams() {
        let mux = UdpMux::new(0);
        let port = mux.port(addr(0)).unwrap();
        let shared = port.local;
        let alice = MuxedSocket::open(port.clone(), "alice", "alice-pw");
        let bob = MuxedSocket::open(port.clone(), "bob", "bob-pw");
        assert_eq!(alice.local_addr().unwrap(), shared);
        assert_eq!(bob.local_addr().unwrap(), shared);
        let alice_peer = UdpSocket::bind(addr(0)).unwrap();
        let bob_peer = UdpSocket::bind(addr(0)).unwrap();
        let stranger = UdpSocket::bind(addr(0)).unwrap();

        stranger.send_to(b"nobody's", shared).unwrap();
        alice_peer.send_to(&binding_request("alice:a"), shared).unwrap();
        bob_peer.send_to(&binding_request("bob:b"), shared).unwrap();
        alice_peer.send_to(b"for alice", shared).unwrap();
        bob_peer.send_to(b"for bob", shared).unwrap();
        assert_eq!(receive(&alice).await, (alice_peer.local_addr().unwrap(), binding_request("alice:a")));
        assert_eq!(receive(&alice).await, (alice_peer.local_addr().unwrap(), b"for alice".to_vec()));
        assert_eq!(receive(&bob).await, (bob_peer.local_addr().unwrap(), binding_request("bob:b")));
        assert_eq!(receive(&bob).await, (bob_peer.local_addr().unwrap(), b"for bob".to_vec()));
        assert_eq!(port.dropped(), 1, "the stranger's datagram");

        // Sends leave from the shared port.
        let reply = Transmit {
            destination: alice_peer.local_addr().unwrap(),
            ecn: None,
            contents: b"from the node",
            segment_size: None,
            src_ip: None,
        };
        alice.try_send(&reply).unwrap();
        let mut buf = [0u8; 64];
        alice_peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, from) = alice_peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"from the node"[..], shared));

        // A closed connection's peer reaches nobody; the other one is not disturbed.
        drop(alice);
        alice_peer.send_to(b"after close", shared).unwrap();
        bob_peer.send_to(b"still here", shared).unwrap();
        assert_eq!(receive(&bob).await.1, b"still here".to_vec());
        assert_eq!(port.dropped(), 2);
        assert_eq!(mux.port(addr(0)).map(|p| Arc::ptr_eq(&p, &port)).ok(), Some(true), "one port per address");
    }
}

//! owt-sio: a lean server side of Engine.IO (protocol 3 and 4) and Socket.IO (the protocol of
//! socket.io-client 2.x, 3.x and 4.x), namespace `/` only, for owt-peer.
//!
//! Hand-written because no crate offers the memory footprint a signaling server with many idle
//! clients needs: socketioxide keeps several tasks, channels, maps and buffers per connection
//! (about 18 KB each). Here a WebSocket client costs one tokio task and one small shared
//! [`Session`]: the task waits for readability (`TcpStream::readable`) without a read buffer,
//! allocates one only while a frame is being read, frees it when the frame is done, writes
//! what other clients queue for it (a queue that holds no memory while empty) and runs the
//! heartbeat from its own `select!`. Long-polling sessions have one small heartbeat task.
//!
//! Layers: [`packet`] (Engine.IO/Socket.IO codecs), [`ws`] (WebSocket framing), [`http`] (the
//! HTTP/1.1 of the handshake and long-polling), and here the sessions and the server.

pub mod http;
pub mod packet;
pub mod ws;

use crate::http::Request;
use crate::packet::{DecodeError, Eio, EnginePacket, SioType};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Most bytes taken by one read (into the thread's scratch buffer).
const READ_CHUNK: usize = 16 * 1024;
/// A request head (or a keep-alive connection's next one) must arrive within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A polling request body must arrive within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// An upgrading client must finish the probe within this time.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`Server`].
#[derive(Debug, Clone)]
pub struct Config {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Longest WebSocket message, Engine.IO packet or polling request body accepted; a
    /// client sending more loses its connection.
    pub max_payload: usize,
    /// Packets queued for one client before [`Socket::emit`] fails with [`SendError::Full`].
    pub max_queue: usize,
    /// Body of the 405 answered to requests outside `/socket.io/`.
    pub other_paths_body: &'static str,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            max_queue: 1024,
            other_paths_body: "Not a Socket.IO request.",
        }
    }
}

/// Why a client's namespace connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client left the namespace.
    ClientDisconnect,
    /// [`Socket::disconnect`].
    ServerDisconnect,
    TransportClose,
    TransportError,
    PingTimeout,
    /// The client sent something that is not Engine.IO/Socket.IO.
    ParseError,
}

/// What the application does with clients of namespace `/`.
pub trait Handler: Send + Sync + 'static {
    /// Whether a browser request with this `Origin` (none for native clients) is served.
    fn allow_origin(&self, _origin: Option<&str>) -> bool {
        true
    }
    /// A client joins `/`; `Err(message)` refuses it with a connect error carrying `message`.
    fn connect(&self, socket: &Socket) -> Result<(), String>;
    /// An event: its name, the JSON text of each argument and the ack id when one is wanted.
    fn event(&self, socket: &Socket, name: &str, args: &[&str], ack: Option<u64>);
    /// A client accepted by [`Handler::connect`] is gone.
    fn disconnect(&self, socket: &Socket, reason: DisconnectReason);
}

/// Why a packet was not queued for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// `max_queue` packets wait for the client already.
    Full,
    /// The client is gone or being disconnected.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    /// Engine.IO packets (text, type included) waiting for the transport.
    outbox: VecDeque<String>,
    /// Joined `/`.
    joined: bool,
    /// [`Handler::connect`] accepted it and [`Handler::disconnect`] is owed.
    registered: bool,
    /// Close the transport once the outbox is sent.
    closing: bool,
    closed: bool,
    websocket: bool,
    upgrading: bool,
    /// A long-polling GET is waiting.
    polling: bool,
    /// The WebSocket task is handling the client's packets and flushes the outbox next:
    /// pushes need not wake it.
    owner_busy: bool,
    /// Engine.IO 4: a ping was sent and its pong did not come yet.
    pong_due: bool,
    /// Engine.IO 3: the client pinged since the last check.
    pinged: bool,
    /// Binary attachments announced by a binary packet, dropped when they arrive.
    skip_attachments: usize,
    /// Heartbeats while not joined to `/`: a client that does not join is closed (as
    /// socket.io's connectTimeout does), so it cannot hold a connection for free.
    unjoined_beats: u8,
}

/// One Engine.IO session with its Socket.IO socket on `/`.
#[derive(Debug)]
pub struct Session {
    key: u64,
    sid: Box<str>,
    eio: Eio,
    max_queue: u32,
    state: Mutex<State>,
    wake: Notify,
}

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, packet: String, limited: bool) -> Result<(), SendError> {
        {
            let mut state = self.state();
            if state.closed || state.closing {
                return Err(SendError::Closed);
            }
            if limited && state.outbox.len() >= self.max_queue as usize {
                return Err(SendError::Full);
            }
            state.outbox.push_back(packet);
            if state.owner_busy {
                return Ok(());
            }
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// A client on namespace `/`; cheap to clone.
#[derive(Debug, Clone)]
pub struct Socket(Arc<Session>);

impl Socket {
    /// Unique for the server's lifetime.
    pub fn id(&self) -> u64 {
        self.0.key
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.0.sid
    }

    /// Sends event `name` with arguments given as JSON texts.
    pub fn emit(&self, name: &str, args: &[&str]) -> Result<(), SendError> {
        self.0.push(packet::encode_event(name, args), true)
    }

    /// Answers the client's event `ack` with arguments given as JSON texts.
    pub fn ack(&self, ack: u64, args: &[&str]) -> Result<(), SendError> {
        self.0.push(packet::encode_ack(ack, args), false)
    }

    /// Sends the Socket.IO disconnect packet, then closes the connection;
    /// [`Handler::disconnect`] follows once it is closed.
    pub fn disconnect(&self) {
        {
            let mut state = self.0.state();
            if state.closed || state.closing {
                return;
            }
            if state.joined {
                state.outbox.push_back("41".into());
                state.joined = false;
            }
            state.closing = true;
        }
        self.0.wake.notify_one();
    }
}

/// A connection's byte stream: plain TCP or TLS.
pub trait Wire: AsyncWrite + Unpin + Send + 'static {
    /// Waits for bytes and appends them to `buf`; 0 at end of stream.
    fn read_some<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

thread_local! {
    /// Every read lands here first: connections copy out only the bytes read, so an idle
    /// connection holds no buffer and busy ones do not allocate a large one per read.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Reads what `stream` has into the thread's scratch buffer and appends it to `buf`.
fn poll_read_into<S: AsyncRead + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
) -> Poll<io::Result<usize>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut read = ReadBuf::new(scratch);
        match Pin::new(stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(read.filled().len()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    })
}

/// Plain TCP: tokio's `poll_read` waits for readiness, and a read that fills less than the
/// buffer clears it, which saves the next read's EAGAIN.
impl Wire for TcpStream {
    async fn read_some(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        std::future::poll_fn(|cx| poll_read_into(self, cx, buf)).await
    }
}

/// TLS: OpenSSL may hold decrypted bytes the socket's readiness does not show; `poll_read`
/// takes them first.
impl Wire for tokio_openssl::SslStream<TcpStream> {
    async fn read_some(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        std::future::poll_fn(|cx| poll_read_into(self, cx, buf)).await
    }
}

/// What to do with the connection after a request.
enum Next {
    KeepAlive,
    Close,
    /// The connection is a WebSocket of this session now (`true`: an upgrade to probe).
    WebSocket(Arc<Session>, bool),
}

/// The Engine.IO/Socket.IO server.
pub struct Server<H> {
    config: Config,
    handler: H,
    /// Sessions that started with long-polling, until they upgrade or close.
    polling: Mutex<HashMap<Box<str>, Arc<Session>>>,
    next_key: AtomicU64,
}

impl<H: Handler> Server<H> {
    pub fn new(config: Config, handler: H) -> Arc<Server<H>> {
        Arc::new(Server { config, handler, polling: Mutex::new(HashMap::new()), next_key: AtomicU64::new(1) })
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    fn polling_sessions(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Session>>> {
        self.polling.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves one accepted connection until it closes.
    pub async fn serve<S: Wire>(self: Arc<Self>, mut stream: S) {
        let mut buf = Vec::new();
        loop {
            let request = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buf)).await {
                Ok(Ok(Some(request))) => request,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(HeadOrIo::Io(err))) => return tracing::debug!("connection ended: {err}"),
                Ok(Err(HeadOrIo::Head(err))) => {
                    let status = if err == http::HeadError::TooLarge { 431 } else { 400 };
                    let _ = write(&mut stream, &http::response(status, &[], b"", false)).await;
                    return;
                }
            };
            if buf.is_empty() {
                buf = Vec::new();
            }
            // Boxed: the request handling's state lives only as long as the request, not in
            // every WebSocket connection's task.
            match Box::pin(self.route(&mut stream, &mut buf, request)).await {
                Ok(Next::KeepAlive) => {}
                Ok(Next::Close) => return,
                Ok(Next::WebSocket(session, probing)) => {
                    if buf.is_empty() {
                        buf = Vec::new();
                    }
                    return self.run_websocket(&mut stream, &mut buf, session, probing).await;
                }
                Err(err) => return tracing::debug!("connection ended: {err}"),
            }
        }
    }

    async fn route<S: Wire>(self: &Arc<Self>, stream: &mut S, buf: &mut Vec<u8>, request: Request) -> io::Result<Next> {
        let keep_alive = request.keep_alive();
        if request.path != "/socket.io" && request.path != "/socket.io/" {
            let headers =
                [("Content-Type", "text/plain; charset=utf-8"), ("Strict-Transport-Security", "max-age=31536000")];
            let body = self.config.other_paths_body.as_bytes();
            write(stream, &http::response(405, &headers, body, keep_alive && request.content_length.is_none())).await?;
            return Ok(if keep_alive && request.content_length.is_none() { Next::KeepAlive } else { Next::Close });
        }
        if !self.handler.allow_origin(request.origin.as_deref()) {
            tracing::debug!(origin = ?request.origin, "request from an origin that is not allowed");
            let headers = [("Content-Type", "text/plain; charset=utf-8")];
            write(stream, &http::response(403, &headers, b"Origin not allowed.\n", false)).await?;
            return Ok(Next::Close);
        }
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(8);
        if let Some(origin) = &request.origin {
            headers.extend([
                ("Access-Control-Allow-Origin", origin.as_str()),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]);
        }
        if request.method == "OPTIONS" {
            headers.push(("Access-Control-Allow-Methods", "GET, POST"));
            if let Some(asked) = &request.request_headers {
                headers.push(("Access-Control-Allow-Headers", asked.as_str()));
            }
            headers.push(("Access-Control-Max-Age", "600"));
            write(stream, &http::response(204, &headers, b"", keep_alive)).await?;
            return Ok(if keep_alive { Next::KeepAlive } else { Next::Close });
        }
        let refuse = |code: u8, message: &str| bad_request(request.origin.as_deref(), code, message);
        let Some(eio) = request.param("EIO").and_then(Eio::from_query) else {
            write(stream, &refuse(5, "Unsupported protocol version")).await?;
            return Ok(Next::Close);
        };
        let sid = request.param("sid").map(str::to_owned);
        match (request.param("transport"), request.method.as_str(), sid) {
            (Some("websocket"), "GET", sid)
                if request.upgrade_websocket
                    && request.websocket_key.is_some()
                    && request.websocket_version.as_deref() == Some("13") =>
            {
                let session = match sid {
                    None => None,
                    Some(sid) => {
                        let found = self.polling_sessions().get(sid.as_str()).cloned();
                        let upgradable = found.as_ref().is_some_and(|session| {
                            let mut state = session.state();
                            let ok = session.eio == eio && !state.websocket && !state.upgrading && !state.closed;
                            state.upgrading |= ok;
                            ok
                        });
                        if !upgradable {
                            write(stream, &refuse(3, "Bad request")).await?;
                            return Ok(Next::Close);
                        }
                        found
                    }
                };
                let accept = ws::accept_key(request.websocket_key.as_deref().unwrap_or_default());
                headers.extend([
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", &accept),
                ]);
                write(stream, &http::response(101, &headers, b"", true)).await?;
                drop(headers);
                drop(request);
                match session {
                    Some(session) => Ok(Next::WebSocket(session, true)),
                    None => {
                        let session = self.new_session(eio, true);
                        let mut opening = Vec::new();
                        ws::encode_frame(&mut opening, ws::OP_TEXT, self.open_packet(&session, false).as_bytes());
                        write(stream, &opening).await?;
                        if eio == Eio::V3 {
                            self.join(&session);
                        }
                        Ok(Next::WebSocket(session, false))
                    }
                }
            }
            (Some("polling"), "GET", None) => {
                let session = self.new_session(eio, false);
                self.polling_sessions().insert(session.sid.clone(), session.clone());
                if eio == Eio::V3 {
                    self.join(&session);
                }
                let open = self.open_packet(&session, true);
                let queued = std::mem::take(&mut session.state().outbox);
                let body = packet::encode_payload(
                    eio,
                    std::iter::once(open.as_str()).chain(queued.iter().map(String::as_str)),
                );
                headers.push(("Content-Type", "text/plain; charset=UTF-8"));
                write(stream, &http::response(200, &headers, body.as_bytes(), keep_alive)).await?;
                let heartbeat = self.heartbeat_period(eio);
                tokio::spawn(polling_heartbeat(session, heartbeat, self.clone()));
                Ok(if keep_alive { Next::KeepAlive } else { Next::Close })
            }
            (Some("polling"), method @ ("GET" | "POST"), Some(sid)) => {
                let session = self.polling_sessions().get(sid.as_str()).cloned();
                let Some(session) = session.filter(|s| s.eio == eio) else {
                    write(stream, &refuse(1, "Session ID unknown")).await?;
                    return Ok(Next::Close);
                };
                headers.push(("Content-Type", "text/plain; charset=UTF-8"));
                let (status, body) = if method == "GET" {
                    self.poll(&session).await
                } else {
                    let Some(length) = request.content_length.filter(|_| !request.chunked) else {
                        write(stream, &refuse(3, "Bad request")).await?;
                        return Ok(Next::Close);
                    };
                    if length > self.config.max_payload {
                        self.finish(&session, DisconnectReason::TransportError);
                        write(stream, &http::response(413, &headers, b"", false)).await?;
                        return Ok(Next::Close);
                    }
                    match tokio::time::timeout(BODY_TIMEOUT, read_body(stream, buf, length)).await {
                        Ok(Ok(body)) => self.post(&session, &body),
                        Ok(Err(err)) => return Err(err),
                        Err(_) => return Ok(Next::Close),
                    }
                };
                write(stream, &http::response(status, &headers, body.as_bytes(), keep_alive && status == 200)).await?;
                Ok(if keep_alive && status == 200 { Next::KeepAlive } else { Next::Close })
            }
            _ => {
                write(stream, &refuse(3, "Bad request")).await?;
                Ok(Next::Close)
            }
        }
    }

    fn new_session(&self, eio: Eio, websocket: bool) -> Arc<Session> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let random: [u8; 15] = rand::random();
        let sid = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, random);
        Arc::new(Session {
            key,
            sid: sid.into(),
            eio,
            max_queue: u32::try_from(self.config.max_queue).unwrap_or(u32::MAX),
            state: Mutex::new(State { websocket, ..State::default() }),
            wake: Notify::new(),
        })
    }

    fn open_packet(&self, session: &Session, polling: bool) -> String {
        let upgrades = if polling { "[\"websocket\"]" } else { "[]" };
        let (interval, timeout) = (self.config.ping_interval.as_millis(), self.config.ping_timeout.as_millis());
        let max_payload = match session.eio {
            Eio::V4 => format!(",\"maxPayload\":{}", self.config.max_payload),
            Eio::V3 => String::new(),
        };
        format!(
            "0{{\"sid\":\"{}\",\"upgrades\":{upgrades},\"pingInterval\":{interval},\"pingTimeout\":{timeout}{max_payload}}}",
            session.sid
        )
    }

    fn heartbeat_period(&self, eio: Eio) -> Duration {
        match eio {
            Eio::V4 => self.config.ping_interval,
            Eio::V3 => self.config.ping_interval + self.config.ping_timeout,
        }
    }

    /// The client joins `/` (at once for Socket.IO 2, on its CONNECT packet later).
    fn join(&self, session: &Arc<Session>) {
        let socket = Socket(session.clone());
        match self.handler.connect(&socket) {
            Ok(()) => {
                let accepted = match session.eio {
                    Eio::V3 => "40".to_owned(),
                    Eio::V4 => format!("40{{\"sid\":\"{}\"}}", session.sid),
                };
                let mut state = session.state();
                state.joined = true;
                state.registered = true;
                state.outbox.push_back(accepted);
            }
            Err(message) => {
                let _ = session.push(packet::encode_connect_error(session.eio, "/", &message), false);
            }
        }
        session.wake.notify_one();
    }

    /// The session is over: frees it and tells the handler.
    fn finish(&self, session: &Arc<Session>, reason: DisconnectReason) {
        let registered = {
            let mut state = session.state();
            if state.closed {
                return;
            }
            state.closed = true;
            state.joined = false;
            state.outbox = VecDeque::new();
            std::mem::take(&mut state.registered)
        };
        session.wake.notify_one();
        {
            let mut polling = self.polling_sessions();
            if polling.get(&session.sid).is_some_and(|s| Arc::ptr_eq(s, session)) {
                polling.remove(&session.sid);
            }
        }
        if registered {
            self.handler.disconnect(&Socket(session.clone()), reason);
        }
    }

    /// One heartbeat: Engine.IO 4 sends a ping (the previous one must have been answered),
    /// Engine.IO 3 checks that the client pinged.
    fn beat(&self, session: &Session) -> Result<(), DisconnectReason> {
        let mut state = session.state();
        if state.closing {
            return Err(DisconnectReason::ServerDisconnect);
        }
        if state.joined {
            state.unjoined_beats = 0;
        } else {
            state.unjoined_beats += 1;
            if state.unjoined_beats >= 2 {
                return Err(DisconnectReason::TransportClose);
            }
        }
        match session.eio {
            Eio::V4 => {
                if state.pong_due {
                    return Err(DisconnectReason::PingTimeout);
                }
                state.pong_due = true;
                state.outbox.push_back("2".into());
                drop(state);
                session.wake.notify_one();
            }
            Eio::V3 => {
                if !std::mem::take(&mut state.pinged) {
                    return Err(DisconnectReason::PingTimeout);
                }
            }
        }
        Ok(())
    }

    /// An Engine.IO packet from the client (either transport, upgrade probes aside).
    fn on_engine_packet(&self, session: &Arc<Session>, text: &str) -> Result<(), DisconnectReason> {
        match packet::decode_engine(text).map_err(|_| DisconnectReason::ParseError)? {
            EnginePacket::Ping(data) => {
                session.state().pinged = true;
                let _ = session.push(format!("3{data}"), false);
            }
            EnginePacket::Pong(_) => session.state().pong_due = false,
            EnginePacket::Message(message) => {
                self.on_socket_packet(session, message).map_err(|_| DisconnectReason::ParseError)?
            }
            EnginePacket::Close => return Err(DisconnectReason::TransportClose),
            EnginePacket::Open | EnginePacket::Upgrade | EnginePacket::Noop => {}
        }
        Ok(())
    }

    fn on_socket_packet(&self, session: &Arc<Session>, text: &str) -> Result<(), DecodeError> {
        let packet = packet::decode_sio(text)?;
        if packet.attachments > 0 {
            session.state().skip_attachments += packet.attachments;
        }
        if packet.namespace != "/" {
            if packet.kind == SioType::Connect {
                let refusal = packet::encode_connect_error(session.eio, packet.namespace, "Invalid namespace");
                let _ = session.push(refusal, false);
            }
            return Ok(());
        }
        let joined = session.state().joined;
        match packet.kind {
            SioType::Connect if !joined && session.eio == Eio::V4 => self.join(session),
            SioType::Connect => {}
            SioType::Disconnect => {
                let registered = {
                    let mut state = session.state();
                    state.joined = false;
                    std::mem::take(&mut state.registered)
                };
                if registered {
                    self.handler.disconnect(&Socket(session.clone()), DisconnectReason::ClientDisconnect);
                }
            }
            SioType::Event | SioType::BinaryEvent => {
                let args = packet::split_array(packet.data)?;
                let raw_name = args.first().ok_or(DecodeError::BadJson)?;
                // Borrowed unless the name has escapes.
                let name: std::borrow::Cow<str> = match serde_json::from_str::<&str>(raw_name) {
                    Ok(name) => name.into(),
                    Err(_) => serde_json::from_str::<String>(raw_name).map_err(|_| DecodeError::BadJson)?.into(),
                };
                if joined {
                    self.handler.event(&Socket(session.clone()), &name, &args[1..], packet.ack);
                }
            }
            SioType::Ack | SioType::BinaryAck => {}
            SioType::ConnectError => return Err(DecodeError::UnknownType),
        }
        Ok(())
    }

    /// A long-polling GET: waits for packets and returns them.
    async fn poll(&self, session: &Arc<Session>) -> (u16, String) {
        {
            let mut state = session.state();
            if state.polling || state.websocket || state.closed {
                return (400, "{\"code\":3,\"message\":\"Bad request\"}".into());
            }
            state.polling = true;
        }
        loop {
            let ready = {
                let mut state = session.state();
                if state.outbox.is_empty() && !state.closing && !state.closed && !state.websocket {
                    None
                } else if state.websocket {
                    // Upgraded meanwhile: the queued packets go over the WebSocket.
                    state.polling = false;
                    Some((VecDeque::new(), false))
                } else {
                    state.polling = false;
                    Some((std::mem::take(&mut state.outbox), state.closing || state.closed))
                }
            };
            let Some((mut packets, closing)) = ready else {
                session.wake.notified().await;
                continue;
            };
            // The close packet goes alone: socket.io-client handles the packets of a payload
            // on the next tick, and a close in the same payload would discard them.
            if closing && packets.is_empty() {
                packets.push_back("1".into());
                self.finish(session, DisconnectReason::ServerDisconnect);
            } else if packets.is_empty() {
                packets.push_back("6".into());
            }
            return (200, packet::encode_payload(session.eio, packets.iter().map(String::as_str)));
        }
    }

    /// A long-polling POST: the packets of its body.
    fn post(&self, session: &Arc<Session>, body: &[u8]) -> (u16, String) {
        let parsed = std::str::from_utf8(body)
            .map_err(|_| DecodeError::BadJson)
            .and_then(|text| packet::decode_payload(session.eio, text));
        let packets = match parsed {
            Ok(packets) => packets,
            Err(_) => {
                self.finish(session, DisconnectReason::ParseError);
                return (400, "{\"code\":3,\"message\":\"Bad request\"}".into());
            }
        };
        for text in packets {
            if let Err(reason) = self.on_engine_packet(session, text) {
                self.finish(session, reason);
                if reason == DisconnectReason::TransportClose {
                    break;
                }
                return (400, "{\"code\":3,\"message\":\"Bad request\"}".into());
            }
        }
        (200, "ok".into())
    }

    /// Serves a WebSocket session until it ends; `probing`: an upgrade from long-polling
    /// that must first answer `2probe` and receive `5`.
    async fn run_websocket<S: Wire>(&self, stream: &mut S, buf: &mut Vec<u8>, session: Arc<Session>, probing: bool) {
        let reason = self.websocket_loop(stream, buf, &session, probing).await;
        if probing && !session.state().websocket {
            // A failed probe leaves the session to long-polling.
            session.state().upgrading = false;
            return;
        }
        self.finish(&session, reason);
    }

    async fn websocket_loop<S: Wire>(
        &self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        session: &Arc<Session>,
        mut probing: bool,
    ) -> DisconnectReason {
        let period = self.heartbeat_period(session.eio);
        let timer = tokio::time::sleep(if probing { PROBE_TIMEOUT } else { period });
        tokio::pin!(timer);
        // A message split into several frames, until its last one.
        let mut fragments: Option<Vec<u8>> = None;
        let mut handled = !buf.is_empty();
        loop {
            if handled {
                handled = false;
                // While probing, the long-poll still delivers: pushes must wake it.
                session.state().owner_busy = !probing;
                let mut replies = Vec::new();
                let result = self.on_websocket_bytes(session, buf, &mut fragments, &mut probing, &mut replies);
                if buf.is_empty() {
                    *buf = Vec::new();
                }
                if !replies.is_empty() && write(stream, &replies).await.is_err() {
                    return DisconnectReason::TransportError;
                }
                match result {
                    Ok(true) => timer.as_mut().reset(Instant::now() + period),
                    Ok(false) => {}
                    Err(reason) => {
                        if reason != DisconnectReason::TransportClose {
                            let _ = write(stream, &close_frame()).await;
                        }
                        return reason;
                    }
                }
            }
            if !probing {
                let (packets, closing) = {
                    let mut state = session.state();
                    state.owner_busy = false;
                    (std::mem::take(&mut state.outbox), state.closing || state.closed)
                };
                if !packets.is_empty() {
                    let mut out = Vec::with_capacity(packets.iter().map(|p| p.len() + 10).sum());
                    for packet in &packets {
                        ws::encode_frame(&mut out, ws::OP_TEXT, packet.as_bytes());
                    }
                    drop(packets);
                    if write(stream, &out).await.is_err() {
                        return DisconnectReason::TransportError;
                    }
                }
                if closing {
                    let _ = write(stream, &close_frame()).await;
                    return DisconnectReason::ServerDisconnect;
                }
            }
            tokio::select! {
                read = stream.read_some(buf) => match read {
                    Ok(0) => return DisconnectReason::TransportClose,
                    Ok(_) => handled = true,
                    Err(_) => return DisconnectReason::TransportError,
                },
                _ = session.wake.notified(), if !probing => {}
                _ = &mut timer => {
                    if probing {
                        return DisconnectReason::TransportError;
                    }
                    if let Err(reason) = self.beat(session) {
                        return reason;
                    }
                    timer.as_mut().reset(Instant::now() + period);
                }
            }
        }
    }

    /// Handles the complete frames in `buf` and removes them; control replies go to
    /// `replies`. `Ok(true)` when the upgrade just completed (the heartbeat starts).
    fn on_websocket_bytes(
        &self,
        session: &Arc<Session>,
        buf: &mut Vec<u8>,
        fragments: &mut Option<Vec<u8>>,
        probing: &mut bool,
        replies: &mut Vec<u8>,
    ) -> Result<bool, DisconnectReason> {
        let mut used = 0;
        let mut upgraded = false;
        let result = loop {
            let frame = match ws::parse_frame(&mut buf[used..], self.config.max_payload) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(upgraded),
                Err(err) => {
                    tracing::debug!(sid = %session.sid, "closing a WebSocket: {err:?}");
                    break Err(DisconnectReason::TransportError);
                }
            };
            let payload = &buf[used + frame.start..used + frame.end];
            used += frame.end;
            let message: Option<(u8, std::borrow::Cow<[u8]>)> = match (frame.opcode, frame.fin) {
                (ws::OP_PING, _) => {
                    ws::encode_frame(replies, ws::OP_PONG, payload);
                    None
                }
                (ws::OP_PONG, _) => None,
                (ws::OP_CLOSE, _) => {
                    ws::encode_frame(replies, ws::OP_CLOSE, payload.get(..2).unwrap_or_default());
                    break Err(DisconnectReason::TransportClose);
                }
                (ws::OP_CONTINUATION, fin) => {
                    let Some(partial) = fragments.as_mut() else { break Err(DisconnectReason::TransportError) };
                    if partial.len() + payload.len() > self.config.max_payload {
                        break Err(DisconnectReason::TransportError);
                    }
                    partial.extend_from_slice(payload);
                    if fin {
                        fragments.take().map(|whole| (whole[0], std::borrow::Cow::Owned(whole[1..].to_vec())))
                    } else {
                        None
                    }
                }
                (_, _) if fragments.is_some() => break Err(DisconnectReason::TransportError),
                (opcode, true) => Some((opcode, std::borrow::Cow::Borrowed(payload))),
                (opcode, false) => {
                    let mut partial = Vec::with_capacity(payload.len() + 1);
                    partial.push(opcode);
                    partial.extend_from_slice(payload);
                    *fragments = Some(partial);
                    None
                }
            };
            let Some((opcode, data)) = message else { continue };
            if opcode == ws::OP_BINARY {
                let mut state = session.state();
                state.skip_attachments = state.skip_attachments.saturating_sub(1);
                continue;
            }
            let Ok(text) = std::str::from_utf8(&data) else { break Err(DisconnectReason::TransportError) };
            if *probing {
                match text {
                    "2probe" => {
                        ws::encode_frame(replies, ws::OP_TEXT, b"3probe");
                        // The client pauses polling before it sends `5`: a noop completes its
                        // pending GET.
                        session.state().outbox.push_back("6".into());
                        session.wake.notify_one();
                    }
                    "5" => {
                        let mut state = session.state();
                        state.websocket = true;
                        state.upgrading = false;
                        drop(state);
                        self.polling_sessions().remove(&session.sid);
                        session.wake.notify_one();
                        *probing = false;
                        upgraded = true;
                    }
                    _ => break Err(DisconnectReason::ParseError),
                }
                continue;
            }
            if let Err(reason) = self.on_engine_packet(session, text) {
                break Err(reason);
            }
        };
        buf.drain(..used);
        result
    }
}

/// Heartbeat of a long-polling session, until it closes or upgrades.
async fn polling_heartbeat<H: Handler>(session: Arc<Session>, period: Duration, server: Arc<Server<H>>) {
    loop {
        tokio::time::sleep(period).await;
        let (closed, websocket, upgrading) = {
            let state = session.state();
            (state.closed, state.websocket, state.upgrading)
        };
        if closed || websocket {
            return;
        }
        if upgrading {
            continue;
        }
        if let Err(reason) = server.beat(&session) {
            server.finish(&session, reason);
            return;
        }
    }
}

/// A 400 with Engine.IO's error body (`{"code":..,"message":..}`).
fn bad_request(origin: Option<&str>, code: u8, message: &str) -> Vec<u8> {
    let body = format!("{{\"code\":{code},\"message\":\"{message}\"}}");
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(origin) = origin {
        headers.extend([("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]);
    }
    http::response(400, &headers, body.as_bytes(), false)
}

fn close_frame() -> Vec<u8> {
    let mut frame = Vec::with_capacity(4);
    ws::encode_frame(&mut frame, ws::OP_CLOSE, &1000u16.to_be_bytes());
    frame
}

async fn write<S: Wire>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

enum HeadOrIo {
    Head(http::HeadError),
    Io(io::Error),
}

async fn read_head<S: Wire>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Option<Request>, HeadOrIo> {
    loop {
        if !buf.is_empty() {
            match http::parse_head(buf) {
                Ok(Some((request, used))) => {
                    buf.drain(..used);
                    return Ok(Some(request));
                }
                Ok(None) => {}
                Err(err) => return Err(HeadOrIo::Head(err)),
            }
        }
        match stream.read_some(buf).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(err) => return Err(HeadOrIo::Io(err)),
        }
    }
}

async fn read_body<S: Wire>(stream: &mut S, buf: &mut Vec<u8>, length: usize) -> io::Result<Vec<u8>> {
    while buf.len() < length {
        if stream.read_some(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let rest = buf.split_off(length);
    Ok(std::mem::replace(buf, rest))
}

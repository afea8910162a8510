//! The portal's end of the bus: a ZeroMQ ROUTER that every worker's DEALER connects to.
//!
//! [`BusServer::bind`] binds the public endpoint (TCP or ipc) synchronously, so a taken
//! port is reported at once. Connections are served by the size guard ([`crate::guard`]),
//! which forwards them to the ROUTER on a private Unix socket (a directory only this user
//! can enter). Messages arrive as [`Inbound`] from [`BusServer::next`]; a [`ServerHandle`]
//! sends requests (with deadlines), replies and events to a peer. Replies to this side's
//! requests are matched by id inside the server and never show up as [`Inbound`].
//!
//! Malformed input (garbage, non-JSON, bad envelopes, multi-frame messages, oversized
//! messages) is logged and dropped, or answered with an error when it is a readable request;
//! other peers are not affected.

use crate::endpoint::{self, BindAddr};
use crate::error::BusError;
use crate::message::{codes, DecodeError, Message, RemoteError, MAX_MESSAGE_BYTES};
use crate::rpc::{self, Pending};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zeromq::{RouterSendHalf, Socket, SocketRecv, SocketSend, ZmqMessage};

/// How long a send may wait for a slow peer's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The ZeroMQ routing identity of one connected peer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerId(Bytes);

impl std::fmt::Debug for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0.iter().take(8) {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A request or event from a peer. Requests must be answered with [`ServerHandle::reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Request { peer: PeerId, id: u64, method: String, params: Value },
    Event { peer: PeerId, method: String, params: Value },
}

struct Link {
    sender: Mutex<Option<RouterSendHalf>>,
    pending: Arc<Pending>,
}

/// Sends to peers of a [`BusServer`]; cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    link: Arc<Link>,
}

impl ServerHandle {
    async fn send(&self, peer: &PeerId, message: &Message, id: u64) -> Result<(), BusError> {
        let payload = message.encode(id);
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(BusError::TooLarge { size: payload.len(), limit: MAX_MESSAGE_BYTES });
        }
        let mut sender = self.link.sender.lock().expect("sender lock").clone().ok_or(BusError::Stopped)?;
        let frames = ZmqMessage::try_from(vec![peer.0.clone(), Bytes::from(payload)]).expect("two frames");
        match tokio::time::timeout(SEND_TIMEOUT, sender.send(frames)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(zeromq::ZmqError::Other(_))) => Err(BusError::NotConnected(peer.to_string())),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(BusError::Timeout { method: "send".into(), after: SEND_TIMEOUT }),
        }
    }

    /// Sends a request and waits for its reply until `timeout`.
    pub async fn request(
        &self,
        peer: &PeerId,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, BusError> {
        let message = Message::Request { id: 0, method: method.to_string(), params };
        rpc::request(&self.link.pending, method, timeout, |id| async move { self.send(peer, &message, id).await }).await
    }

    /// Answers request `id` of `peer`.
    pub async fn reply(&self, peer: &PeerId, id: u64, result: Result<Value, RemoteError>) -> Result<(), BusError> {
        let message = Message::Reply { reply_to: id, result };
        self.send(peer, &message, self.link.pending.next_id()).await
    }

    /// Sends a one-way event.
    pub async fn event(&self, peer: &PeerId, method: &str, params: Value) -> Result<(), BusError> {
        let message = Message::Event { method: method.to_string(), params };
        self.send(peer, &message, self.link.pending.next_id()).await
    }
}

enum PublicListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// The portal's bus socket.
pub struct BusServer {
    endpoint: String,
    handle: ServerHandle,
    inbound: mpsc::Receiver<Inbound>,
    tasks: Vec<JoinHandle<()>>,
    private_dir: PathBuf,
    public_path: Option<PathBuf>,
}

impl BusServer {
    /// Binds `endpoint` (`tcp://IP:PORT`, `tcp://*:PORT`, port 0 for any, or `ipc:///PATH`)
    /// and starts serving on `runtime`.
    pub fn bind(endpoint: &str, runtime: &Handle) -> Result<BusServer, BusError> {
        let addr = endpoint::parse_bind(endpoint)?;
        let bind_error = |source: std::io::Error| BusError::Bind { endpoint: endpoint.to_string(), source };
        let _entered = runtime.enter();
        let (listener, resolved) = match &addr {
            BindAddr::Tcp(socket_addr) => {
                let socket = if socket_addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(bind_error)?;
                socket.set_reuseaddr(true).map_err(bind_error)?;
                socket.bind(*socket_addr).map_err(bind_error)?;
                let listener = socket.listen(1024).map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                (PublicListener::Tcp(listener), endpoint::format_bind(&BindAddr::Tcp(local)))
            }
            BindAddr::Ipc(path) => {
                remove_stale_socket(path);
                let listener = tokio::net::UnixListener::bind(path).map_err(bind_error)?;
                (PublicListener::Unix(listener, path.clone()), endpoint::format_bind(&addr))
            }
        };
        let public_path = match &listener {
            PublicListener::Unix(_, path) => Some(path.clone()),
            PublicListener::Tcp(_) => None,
        };
        let private_dir = private_dir().map_err(bind_error)?;
        let router_path = private_dir.join("router.sock");
        let router_listener = std::os::unix::net::UnixListener::bind(&router_path).map_err(bind_error)?;

        let link = Arc::new(Link { sender: Mutex::new(None), pending: Arc::new(Pending::default()) });
        let (inbound_tx, inbound) = mpsc::channel(1024);
        let router_task = runtime.spawn(run_router(router_listener, link.clone(), inbound_tx));
        let acceptor = runtime.spawn(accept(listener, Arc::new(router_path)));
        tracing::info!("bus listening on {resolved}");
        Ok(BusServer {
            endpoint: resolved,
            handle: ServerHandle { link },
            inbound,
            tasks: vec![router_task, acceptor],
            private_dir,
            public_path,
        })
    }

    /// The bound endpoint, with the port the system chose for port 0.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The next request or event; `None` once the server is stopped.
    pub async fn next(&mut self) -> Option<Inbound> {
        self.inbound.recv().await
    }

    /// Closes every connection and the listener, and waits until they are gone.
    pub async fn stop(mut self) {
        self.shutdown();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    fn shutdown(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.handle.link.sender.lock().expect("sender lock").take();
        self.handle.link.pending.clear();
        let _ = std::fs::remove_dir_all(&self.private_dir);
        if let Some(path) = self.public_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for BusServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A Unix socket file left by a previous run (nobody accepting on it) is removed.
fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false);
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// A fresh directory only this user can enter, for the ROUTER's socket.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut last_error = None;
    for _ in 0..8 {
        let dir = base.join(format!("owt-bus-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.expect("tried"))
}

async fn accept(listener: PublicListener, router_path: Arc<PathBuf>) {
    let mut connections = tokio::task::JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(crate::guard::MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = accept_one(&listener) => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, name) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("bus: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!("bus: refusing {name}: {} connections already", crate::guard::MAX_CONNECTIONS);
            continue;
        };
        let router_path = router_path.clone();
        connections.spawn(async move {
            let _permit = permit;
            let result = match stream {
                Accepted::Tcp(stream) => {
                    let _ = stream.set_nodelay(true);
                    crate::guard::serve(stream, &name, router_path, MAX_MESSAGE_BYTES).await
                }
                Accepted::Unix(stream) => crate::guard::serve(stream, &name, router_path, MAX_MESSAGE_BYTES).await,
            };
            if let Err(why) = result {
                tracing::warn!("bus peer {name}: {why}; connection closed");
            }
        });
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept_one(listener: &PublicListener) -> std::io::Result<(Accepted, String)> {
    match listener {
        PublicListener::Tcp(listener) => {
            let (stream, addr) = listener.accept().await?;
            Ok((Accepted::Tcp(stream), addr.to_string()))
        }
        PublicListener::Unix(listener, path) => {
            let (stream, _) = listener.accept().await?;
            Ok((Accepted::Unix(stream), format!("local peer on {}", path.display())))
        }
    }
}

/// Logs a peer's bad input, less and less often when it keeps sending it.
struct Complaints(HashMap<PeerId, u64>);

impl Complaints {
    fn log(&mut self, peer: &PeerId, what: &str) {
        if self.0.len() > 10_000 {
            self.0.clear();
        }
        let count = self.0.entry(peer.clone()).or_default();
        *count += 1;
        if count.is_power_of_two() {
            tracing::warn!("bus peer {peer}: {what} (refused; {count} so far)");
        }
    }
}

async fn run_router(listener: std::os::unix::net::UnixListener, link: Arc<Link>, inbound: mpsc::Sender<Inbound>) {
    let mut router = zeromq::RouterSocket::new();
    if let Err(err) = router.bind_listener(listener).await {
        tracing::error!("bus: the router cannot listen: {err}");
        return;
    }
    let (sender, mut receiver) = router.split();
    *link.sender.lock().expect("sender lock") = Some(sender);
    let handle = ServerHandle { link: link.clone() };
    let mut complaints = Complaints(HashMap::new());
    loop {
        let message = match receiver.recv().await {
            Ok(message) => message,
            Err(err) => {
                tracing::debug!("bus: receive failed: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mut frames = message.into_vec();
        if frames.is_empty() {
            continue;
        }
        let peer = PeerId(frames.remove(0));
        // A DEALER sends [payload]; a REQ-style peer [empty delimiter, payload].
        if frames.len() == 2 && frames[0].is_empty() {
            frames.remove(0);
        }
        if frames.len() != 1 {
            complaints.log(&peer, &format!("message of {} frames, expected one", frames.len()));
            continue;
        }
        let payload = frames.pop().expect("one frame");
        match Message::decode(&payload) {
            Ok(Message::Reply { reply_to, result }) => {
                if !link.pending.complete(reply_to, result) {
                    tracing::debug!("bus peer {peer}: reply to {reply_to} that nobody waits for");
                }
            }
            Ok(Message::Request { id, method, params }) => {
                if inbound.send(Inbound::Request { peer, id, method, params }).await.is_err() {
                    return;
                }
            }
            Ok(Message::Event { method, params }) => {
                if inbound.send(Inbound::Event { peer, method, params }).await.is_err() {
                    return;
                }
            }
            Err((request_id, err)) => {
                complaints.log(&peer, &err.to_string());
                if let Some(id) = request_id {
                    let code = match err {
                        DecodeError::Version(_) => codes::UNSUPPORTED_VERSION,
                        _ => codes::BAD_PARAMS,
                    };
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let _ = handle.reply(&peer, id, Err(RemoteError::new(code, err.to_string()))).await;
                    });
                }
            }
        }
    }
}

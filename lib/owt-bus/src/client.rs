//! A worker's end of the bus: a ZeroMQ DEALER connected to the portal's ROUTER.
//!
//! [`BusClient::connect`] returns at once and keeps a connection up in the background:
//! connect (retrying while the portal is away), `register` with the [`WorkerInfo`], then a
//! `heartbeat {load}` every interval the portal asked for in its register reply. When the
//! portal answers a heartbeat with `whoareyou` (it restarted, or gave the worker up for dead)
//! the worker registers again. A lost connection (closed, or the portal silent for
//! `missed_heartbeats` intervals) is dropped and made again; the new connection starts with
//! a heartbeat, so a portal that still knows the worker keeps its work bound to it.
//!
//! Requests and events from the portal go to the [`Handler`]; each request runs in its own
//! task so a slow one does not hold up heartbeats. [`BusClient::stop`] sends `quit`.

use crate::endpoint;
use crate::error::BusError;
use crate::message::{
    methods, Heartbeat, Message, RegisterReply, RemoteError, WorkerInfo, HEARTBEAT_OK, MAX_MESSAGE_BYTES, WHOAREYOU,
};
use crate::rpc::{self, Pending};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zeromq::{Socket, SocketEvent, SocketRecv, SocketSend, ZmqMessage};

/// A boxed future, as handlers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a worker does with the portal's messages, and its load.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request from the portal.
    fn request(&self, method: &str, params: Value) -> BoxFuture<Result<Value, RemoteError>>;
    /// Takes a one-way event from the portal.
    fn event(&self, method: &str, params: Value) {
        tracing::debug!("bus: event {method} ignored ({params})");
    }
    /// The load reported with each heartbeat, 0 (idle) to 1 (saturated).
    fn load(&self) -> f64;
}

/// Where the connection to the portal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Not connected; trying.
    Connecting,
    /// Connected, not (yet, or no longer) registered.
    Registering,
    Registered,
    Stopped,
}

/// Settings of a [`BusClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Heartbeat interval until the portal says otherwise in its register reply.
    pub heartbeat: Duration,
    /// The portal silent for this many intervals means the connection is lost.
    pub missed_heartbeats: u32,
    /// Limit of one connection attempt.
    pub connect_timeout: Duration,
    /// Pause between connection attempts.
    pub retry: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            heartbeat: Duration::from_millis(1000),
            missed_heartbeats: 3,
            connect_timeout: Duration::from_secs(2),
            retry: Duration::from_millis(200),
        }
    }
}

struct Shared {
    endpoint: String,
    node_id: String,
    pending: Arc<Pending>,
    outgoing: mpsc::Sender<Vec<u8>>,
}

/// A worker's connection to the portal.
pub struct BusClient {
    shared: Arc<Shared>,
    state: watch::Receiver<ClientState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl BusClient {
    /// Starts connecting to the portal at `endpoint` on `runtime`; returns at once.
    pub fn connect(
        endpoint: &str,
        info: WorkerInfo,
        handler: Arc<dyn Handler>,
        options: ClientOptions,
        runtime: &Handle,
    ) -> Result<BusClient, BusError> {
        endpoint::check_connect(endpoint)?;
        info.check().map_err(|reason| BusError::Endpoint { endpoint: endpoint.to_string(), reason })?;
        let (outgoing, outgoing_rx) = mpsc::channel(256);
        let shared = Arc::new(Shared {
            endpoint: endpoint.to_string(),
            node_id: info.node_id.clone(),
            pending: Arc::new(Pending::default()),
            outgoing,
        });
        let (state_tx, state) = watch::channel(ClientState::Connecting);
        let (stop, stop_rx) = oneshot::channel();
        let connection = Connection { shared: shared.clone(), info, handler, options, state: state_tx };
        let task = runtime.spawn(connection.run(outgoing_rx, stop_rx));
        Ok(BusClient { shared, state, stop: Some(stop), task: Some(task) })
    }

    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    pub fn state(&self) -> ClientState {
        *self.state.borrow()
    }

    /// Follows state changes.
    pub fn watch(&self) -> watch::Receiver<ClientState> {
        self.state.clone()
    }

    async fn send(&self, message: &Message, id: u64) -> Result<(), BusError> {
        let payload = message.encode(id);
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(BusError::TooLarge { size: payload.len(), limit: MAX_MESSAGE_BYTES });
        }
        if self.state() != ClientState::Registered {
            return Err(BusError::NotConnected(format!("not registered with the portal at {}", self.shared.endpoint)));
        }
        self.shared.outgoing.send(payload).await.map_err(|_| BusError::Stopped)
    }

    /// Sends a request to the portal and waits for its reply until `timeout`.
    pub async fn request(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, BusError> {
        let message = Message::Request { id: 0, method: method.to_string(), params };
        rpc::request(&self.shared.pending, method, timeout, |id| async move { self.send(&message, id).await }).await
    }

    /// Sends a one-way event to the portal.
    pub async fn event(&self, method: &str, params: Value) -> Result<(), BusError> {
        let message = Message::Event { method: method.to_string(), params };
        self.send(&message, self.shared.pending.next_id()).await
    }

    /// Says `quit` to the portal (when registered) and closes the connection.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                tracing::warn!("bus: the connection did not close in time");
            }
        }
    }
}

impl Drop for BusClient {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What an outstanding request of the connection itself was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Register,
    Heartbeat,
}

struct Connection {
    shared: Arc<Shared>,
    info: WorkerInfo,
    handler: Arc<dyn Handler>,
    options: ClientOptions,
    state: watch::Sender<ClientState>,
}

enum SessionEnd {
    Lost(String),
    Stop,
}

impl Connection {
    async fn run(self, mut outgoing: mpsc::Receiver<Vec<u8>>, mut stop: oneshot::Receiver<()>) {
        let mut heartbeat = self.options.heartbeat;
        let mut known = false; // registered on an earlier connection
        let mut waiting_logged = false;
        loop {
            self.state.send_replace(ClientState::Connecting);
            let mut options = zeromq::SocketOptions::default();
            options.connect_timeout(self.options.connect_timeout);
            let mut socket = zeromq::DealerSocket::with_options(options);
            let mut monitor = socket.monitor();
            let connected = tokio::select! {
                connected = socket.connect(&self.shared.endpoint) => connected,
                _ = &mut stop => break,
            };
            if let Err(err) = connected {
                if !waiting_logged {
                    tracing::info!("bus: waiting for the portal at {}: {err}", self.shared.endpoint);
                    waiting_logged = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.options.retry) => continue,
                    _ = &mut stop => break,
                }
            }
            waiting_logged = false;
            tracing::debug!("bus: connected to {}", self.shared.endpoint);
            while outgoing.try_recv().is_ok() {} // stale sends of a lost connection
            match self.session(socket, &mut monitor, &mut outgoing, &mut stop, &mut heartbeat, &mut known).await {
                SessionEnd::Stop => break,
                SessionEnd::Lost(why) => {
                    tracing::warn!("bus: lost the portal at {}: {why}; reconnecting", self.shared.endpoint);
                    self.state.send_replace(ClientState::Connecting);
                    tokio::select! {
                        _ = tokio::time::sleep(self.options.retry) => {}
                        _ = &mut stop => break,
                    }
                }
            }
        }
        self.state.send_replace(ClientState::Stopped);
        self.shared.pending.clear();
    }

    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        socket: zeromq::DealerSocket,
        monitor: &mut futures::channel::mpsc::Receiver<SocketEvent>,
        outgoing: &mut mpsc::Receiver<Vec<u8>>,
        stop: &mut oneshot::Receiver<()>,
        heartbeat: &mut Duration,
        known: &mut bool,
    ) -> SessionEnd {
        use futures::StreamExt;
        let (mut sender, mut receiver) = socket.split();
        let mut own: HashMap<u64, Own> = HashMap::new();
        let mut registered = false;
        let mut register_sent: Option<Instant> = None;
        let mut last_heard = Instant::now();
        let mut refusal: Option<String> = None;
        let (replies_tx, mut replies) = mpsc::channel::<Vec<u8>>(64);
        self.state.send_replace(ClientState::Registering);

        macro_rules! send {
            ($payload:expr) => {
                if let Err(err) = sender.send(ZmqMessage::from($payload)).await {
                    return SessionEnd::Lost(err.to_string());
                }
            };
        }
        // A worker the portal may still know starts with a heartbeat; a new one registers.
        let first = if *known { Own::Heartbeat } else { Own::Register };
        let id = self.shared.pending.next_id();
        own.insert(id, first);
        send!(self.own_request(first, id));
        if first == Own::Register {
            register_sent = Some(Instant::now());
        }
        let mut ticker = tokio::time::interval_at(Instant::now() + *heartbeat, *heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // `stop()` says goodbye; a dropped client (its sender gone) ends like a crash.
                stopped = &mut *stop => {
                    if registered && stopped.is_ok() {
                        let quit = Message::Event { method: methods::QUIT.into(), params: Value::Null }.encode(self.shared.pending.next_id());
                        let _ = tokio::time::timeout(Duration::from_millis(500), sender.send(ZmqMessage::from(quit))).await;
                        // Give the writer a moment to put it on the wire.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    return SessionEnd::Stop;
                }
                event = monitor.next() => match event {
                    Some(SocketEvent::Disconnected(_)) | None => return SessionEnd::Lost("connection closed".into()),
                    Some(_) => {}
                },
                received = receiver.recv() => {
                    let message = match received {
                        Ok(message) => message,
                        Err(err) => return SessionEnd::Lost(err.to_string()),
                    };
                    let Some(payload) = single_frame(message) else {
                        tracing::warn!("bus: the portal sent a message of several frames; ignored");
                        continue;
                    };
                    let message = match Message::decode(&payload) {
                        Ok(message) => message,
                        Err((_, err)) => {
                            tracing::warn!("bus: bad message from the portal: {err}");
                            continue;
                        }
                    };
                    last_heard = Instant::now();
                    match message {
                        Message::Reply { reply_to, result } => match own.remove(&reply_to) {
                            Some(Own::Register) => {
                                register_sent = None;
                                match result.map(serde_json::from_value::<RegisterReply>) {
                                    Ok(Ok(reply)) => {
                                        registered = true;
                                        *known = true;
                                        let wanted = Duration::from_millis(reply.heartbeat_ms.clamp(100, 60_000));
                                        if wanted != *heartbeat {
                                            *heartbeat = wanted;
                                            ticker = tokio::time::interval_at(Instant::now() + wanted, wanted);
                                            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                                        }
                                        tracing::info!("bus: registered with the portal at {} as {} ({}), heartbeat every {:?}",
                                            self.shared.endpoint, self.info.node_id, self.info.kind, wanted);
                                        self.state.send_replace(ClientState::Registered);
                                    }
                                    Ok(Err(err)) => tracing::warn!("bus: unreadable register reply: {err}"),
                                    Err(err) => {
                                        let text = err.to_string();
                                        if refusal.as_deref() != Some(text.as_str()) {
                                            tracing::error!("bus: the portal refused the registration: {text}; retrying");
                                            refusal = Some(text);
                                        }
                                    }
                                }
                            }
                            Some(Own::Heartbeat) => match result {
                                Ok(Value::String(s)) if s == HEARTBEAT_OK => {
                                    if !registered {
                                        // Reconnected to a portal that still knows this worker.
                                        registered = true;
                                        tracing::info!("bus: the portal at {} still knows {}", self.shared.endpoint, self.info.node_id);
                                        self.state.send_replace(ClientState::Registered);
                                    }
                                }
                                Ok(Value::String(s)) if s == WHOAREYOU => {
                                    tracing::info!("bus: the portal answered whoareyou; registering again");
                                    registered = false;
                                    self.state.send_replace(ClientState::Registering);
                                    if register_sent.is_none() {
                                        let id = self.shared.pending.next_id();
                                        own.insert(id, Own::Register);
                                        send!(self.own_request(Own::Register, id));
                                        register_sent = Some(Instant::now());
                                    }
                                }
                                other => tracing::warn!("bus: unexpected heartbeat reply {other:?}"),
                            },
                            None => {
                                if !self.shared.pending.complete(reply_to, result) {
                                    tracing::debug!("bus: reply to {reply_to} that nobody waits for");
                                }
                            }
                        },
                        Message::Request { id, method, params } => {
                            let reply = self.handler.request(&method, params);
                            let replies_tx = replies_tx.clone();
                            let next_id = self.shared.pending.next_id();
                            tokio::spawn(async move {
                                let result = reply.await;
                                let mut payload = Message::Reply { reply_to: id, result }.encode(next_id);
                                if payload.len() > MAX_MESSAGE_BYTES {
                                    let error = RemoteError::new(crate::message::codes::FAILED, "reply too large for the bus");
                                    payload = Message::Reply { reply_to: id, result: Err(error) }.encode(next_id);
                                }
                                let _ = replies_tx.send(payload).await;
                            });
                        }
                        Message::Event { method, params } => self.handler.event(&method, params),
                    }
                }
                Some(payload) = replies.recv() => send!(payload),
                Some(payload) = outgoing.recv() => send!(payload),
                _ = ticker.tick() => {
                    if last_heard.elapsed() > *heartbeat * self.options.missed_heartbeats {
                        return SessionEnd::Lost(format!("no answer for {:?}", last_heard.elapsed()));
                    }
                    own.retain(|_, kind| *kind == Own::Register);
                    if registered || register_sent.is_some_and(|at| at.elapsed() < *heartbeat * 2) {
                        if registered {
                            let id = self.shared.pending.next_id();
                            own.insert(id, Own::Heartbeat);
                            send!(self.own_request(Own::Heartbeat, id));
                        }
                    } else {
                        // Not registered and no registration under way: (re)send it.
                        own.clear();
                        let id = self.shared.pending.next_id();
                        own.insert(id, Own::Register);
                        send!(self.own_request(Own::Register, id));
                        register_sent = Some(Instant::now());
                    }
                }
            }
        }
    }

    fn own_request(&self, kind: Own, id: u64) -> Vec<u8> {
        let (method, params) = match kind {
            Own::Register => (methods::REGISTER, serde_json::to_value(&self.info).expect("serializable")),
            Own::Heartbeat => {
                let load = self.handler.load();
                (methods::HEARTBEAT, serde_json::to_value(Heartbeat { load }).unwrap_or(Value::Null))
            }
        };
        Message::Request { id, method: method.to_string(), params }.encode(id)
    }
}

/// The payload of a one-frame message (or of [empty delimiter, payload]).
fn single_frame(message: ZmqMessage) -> Option<bytes::Bytes> {
    let mut frames = message.into_vec();
    if frames.len() == 2 && frames[0].is_empty() {
        frames.remove(0);
    }
    (frames.len() == 1).then(|| frames.pop().expect("one frame"))
}

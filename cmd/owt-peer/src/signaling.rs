//! The Socket.IO side of owt-peer: socketioxide handlers that feed events to the sans-IO
//! [`Registry`](crate::core::Registry) and carry out its decisions (acks, forwards,
//! `server-disconnect`, closing sockets).
//!
//! The handlers implement socketioxide's handler traits directly instead of being async
//! closures: they run synchronously where socketioxide receives the packet, so events of one
//! client are relayed in the order it sent them and the per-socket handlers are registered
//! before any event of the socket can be dispatched.

use crate::core::{AuthIn, Field, Limits, MessageIn, MessageOut, Refusal, Registry, Relay, Stats};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, TryData};
use socketioxide::handler::{ConnectHandler, DisconnectHandler, FromMessageParts, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::{SendError, SocketError, SocketIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

type Sock = Arc<Socket<LocalAdapter>>;

/// An ack or emit with no arguments (`ack()`, `emit('server-disconnect')`): socketioxide
/// sends each element of a tuple-like value as one argument.
const NO_ARGS: [u8; 0] = [];

/// State shared by every handler.
pub struct Shared {
    registry: Mutex<Registry<Sid, Sock>>,
}

impl Shared {
    pub fn new(limits: Limits) -> Arc<Shared> {
        Arc::new(Shared { registry: Mutex::new(Registry::new(limits)) })
    }

    /// The registry; a panic elsewhere while it was held does not make it unusable.
    fn registry(&self) -> MutexGuard<'_, Registry<Sid, Sock>> {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.registry().stats()
    }

    pub fn set_limits(&self, limits: Limits) {
        self.registry().set_limits(limits);
    }

    /// Closes connections that did not authenticate in time.
    pub fn close_overdue(&self) {
        let overdue = self.registry().overdue(Instant::now());
        for socket in overdue {
            tracing::debug!(sid = %socket.id, "closing a client that did not authenticate in time");
            if socket.disconnect().is_err() {
                tracing::debug!("could not close an overdue client now; trying again later");
            }
        }
    }

    /// Server shutdown: refuses new clients, sends `server-disconnect` to every client and
    /// closes its socket.
    pub fn disconnect_all(&self) -> usize {
        let sockets = self.registry().shut_down();
        let count = sockets.len();
        for socket in sockets {
            let _ = socket.emit("server-disconnect", &NO_ARGS);
            let _ = socket.disconnect();
        }
        count
    }
}

/// Registers the `/` namespace on `io`.
pub fn attach(io: &SocketIo, shared: Arc<Shared>) {
    io.ns("/", OnConnect(shared));
}

/// Marker for the handler traits' type parameter.
pub struct Direct;

#[derive(Clone)]
struct OnConnect(Arc<Shared>);

type MiddlewareFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Box<dyn std::fmt::Display + Send>>> + Send + 'a>>;

impl ConnectHandler<LocalAdapter, Direct> for OnConnect {
    fn call(&self, socket: Sock, _auth: Option<Value>) {
        self.0.registry().connected(socket.id, socket.clone(), Instant::now());
        tracing::debug!(sid = %socket.id, "client connected");
        socket.on("authentication", OnAuthentication(self.0.clone()));
        socket.on("owt-message", OnMessage(self.0.clone()));
        socket.on_fallback(OnOtherEvent(self.0.clone()));
        socket.on_disconnect(OnDisconnect(self.0.clone()));
    }

    /// Refuses a connection when `max_clients` are connected: the client gets a
    /// `connect_error` whose message is the code 2102.
    fn call_middleware<'a>(&'a self, _socket: Sock, _auth: &'a Option<Value>) -> MiddlewareFuture<'a> {
        let admitted = self.0.registry().admit();
        Box::pin(async move {
            admitted.map_err(|refusal| {
                if refusal == Refusal::Full {
                    tracing::warn!("refusing a client: max_clients reached");
                }
                Box::new(refusal.code().as_str().unwrap_or("2102").to_owned()) as Box<dyn std::fmt::Display + Send>
            })
        })
    }
}

/// Logs a refusal; a flood only once per connection.
fn log_refusal(socket: &Sock, refusal: Refusal, event: &str) {
    if let Refusal::RateLimited { first: true } = refusal {
        tracing::warn!(sid = %socket.id, "client exceeds messages_per_second: dropping its excess events");
    } else {
        tracing::debug!(sid = %socket.id, event, reason = refusal.name(), "event refused");
    }
}

/// Answers a refused event and closes the socket when the refusal says so.
fn refuse(socket: &Sock, ack: AckSender<LocalAdapter>, refusal: Refusal, event: &str) {
    log_refusal(socket, refusal, event);
    let _ = ack.send(&refusal.code());
    if refusal.disconnects() {
        let _ = socket.clone().disconnect();
    }
}

struct OnAuthentication(Arc<Shared>);

impl MessageHandler<LocalAdapter, Direct> for OnAuthentication {
    fn call(&self, socket: Sock, mut value: Value, ack_id: Option<i64>) {
        let Ok(TryData(payload)) = TryData::<AuthIn>::from_message_parts(&socket, &mut value, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&socket, &mut value, &ack_id);
        let decision = self.0.registry().authenticate(socket.id, payload.as_ref().ok(), rand::random(), Instant::now());
        match decision {
            Ok(login) => {
                if let Some(old) = login.replaced {
                    tracing::info!(uid = %login.uid, "user logged in again: closing its previous connection");
                    let _ = old.emit("server-disconnect", &NO_ARGS);
                    let _ = old.disconnect();
                }
                tracing::debug!(sid = %socket.id, uid = %login.uid, "user authenticated");
                let uid = serde_json::json!({ "uid": login.uid.as_ref() });
                let _ = socket.emit("server-authenticated", &uid);
                let _ = ack.send(&uid);
            }
            // The authentication ack is an object: {uid} or {error}.
            Err(refusal) => {
                log_refusal(&socket, refusal, "authentication");
                let _ = ack.send(&serde_json::json!({ "error": refusal.code() }));
                if refusal.disconnects() {
                    let _ = socket.disconnect();
                }
            }
        }
    }
}

struct OnMessage(Arc<Shared>);

impl MessageHandler<LocalAdapter, Direct> for OnMessage {
    fn call(&self, socket: Sock, mut value: Value, ack_id: Option<i64>) {
        let Ok(TryData(payload)) = TryData::<MessageIn>::from_message_parts(&socket, &mut value, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&socket, &mut value, &ack_id);
        let payload = payload.ok();
        let decision = self.0.registry().relay(socket.id, payload.as_ref(), Instant::now());
        let Relay { target, from } = match decision {
            Ok(relay) => relay,
            Err(refusal) => return refuse(&socket, ack, refusal, "owt-message"),
        };
        // The registry only relays a payload whose data is a string.
        let Some(MessageIn { data: Field::Str(data), .. }) = &payload else {
            self.0.registry().undeliverable(Refusal::Malformed);
            return refuse(&socket, ack, Refusal::Malformed, "owt-message");
        };
        match target.emit("owt-message", &MessageOut { from: &from, data }) {
            Ok(()) => {
                let _ = ack.send(&NO_ARGS);
            }
            Err(err) => {
                let refusal = match err {
                    SendError::Socket(SocketError::InternalChannelFull) => Refusal::TargetBusy,
                    _ => Refusal::Unreachable,
                };
                self.0.registry().undeliverable(refusal);
                refuse(&socket, ack, refusal, "owt-message");
            }
        }
    }
}

/// Any other event: counted against the rate limit, otherwise ignored (the reference server
/// has no handler for them either).
struct OnOtherEvent(Arc<Shared>);

impl MessageHandler<LocalAdapter, Direct> for OnOtherEvent {
    fn call(&self, socket: Sock, _value: Value, ack_id: Option<i64>) {
        if let Err(refusal) = self.0.registry().other_event(socket.id, Instant::now()) {
            let mut empty = Value::Str(Default::default(), None);
            let Ok(ack) = AckSender::from_message_parts(&socket, &mut empty, &ack_id);
            refuse(&socket, ack, refusal, "other");
        }
    }
}

struct OnDisconnect(Arc<Shared>);

impl DisconnectHandler<LocalAdapter, Direct> for OnDisconnect {
    fn call_with_defer(&self, socket: Sock, reason: DisconnectReason, defer: fn(Sock)) {
        if let Some(departure) = self.0.registry().disconnected(socket.id) {
            if departure.dropped > 0 {
                tracing::info!(
                    sid = %socket.id,
                    uid = departure.uid.as_deref().unwrap_or("-"),
                    dropped = departure.dropped,
                    "rate-limited client disconnected"
                );
            }
            tracing::debug!(sid = %socket.id, uid = departure.uid.as_deref().unwrap_or("-"), ?reason, "client disconnected");
        }
        defer(socket);
    }
}

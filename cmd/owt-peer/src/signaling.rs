//! The Socket.IO side of owt-peer: the [`owt_sio::Handler`] that feeds events to the sans-IO
//! [`Registry`](crate::core::Registry) and carries out its decisions (acks, forwards,
//! `server-disconnect`, closing sockets).
//!
//! Handlers run synchronously on the sender's connection task as its packets are read, so
//! events of one client are relayed in the order it sent them.

use crate::core::{relayed_message, AuthIn, Field, Limits, MessageIn, Origins, Refusal, Registry, Relay, Stats};
use owt_sio::{DisconnectReason, Handler, SendError, Socket};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

/// State shared by every connection.
pub struct Shared {
    registry: Mutex<Registry<u64, Socket>>,
    origins: RwLock<Origins>,
}

impl Shared {
    pub fn new(limits: Limits, origins: Origins) -> Arc<Shared> {
        Arc::new(Shared { registry: Mutex::new(Registry::new(limits)), origins: RwLock::new(origins) })
    }

    /// The registry; a panic elsewhere while it was held does not make it unusable.
    fn registry(&self) -> MutexGuard<'_, Registry<u64, Socket>> {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.registry().stats()
    }

    pub fn set_limits(&self, limits: Limits) {
        self.registry().set_limits(limits);
    }

    pub fn set_origins(&self, origins: Origins) {
        *self.origins.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = origins;
    }

    /// Closes connections that did not authenticate in time.
    pub fn close_overdue(&self) {
        let overdue = self.registry().overdue(Instant::now());
        for socket in overdue {
            tracing::debug!(sid = socket.sid(), "closing a client that did not authenticate in time");
            socket.disconnect();
        }
    }

    /// Server shutdown: refuses new clients, sends `server-disconnect` to every client and
    /// closes its socket.
    pub fn disconnect_all(&self) -> usize {
        let sockets = self.registry().shut_down();
        let count = sockets.len();
        for socket in sockets {
            let _ = socket.emit("server-disconnect", &[]);
            socket.disconnect();
        }
        count
    }
}

/// The [`owt_sio::Handler`] of owt-peer.
#[derive(Clone)]
pub struct Signaling(pub Arc<Shared>);

/// Logs a refusal; a flood only once per connection.
fn log_refusal(socket: &Socket, refusal: Refusal, event: &str) {
    if let Refusal::RateLimited { first: true } = refusal {
        tracing::warn!(sid = socket.sid(), "client exceeds messages_per_second: dropping its excess events");
    } else {
        tracing::debug!(sid = socket.sid(), event, reason = refusal.name(), "event refused");
    }
}

/// Answers a refused event and closes the socket when the refusal says so.
fn refuse(socket: &Socket, ack: Option<u64>, refusal: Refusal, event: &str) {
    log_refusal(socket, refusal, event);
    if let Some(ack) = ack {
        let _ = socket.ack(ack, &[&refusal.code().to_string()]);
    }
    if refusal.disconnects() {
        socket.disconnect();
    }
}

/// The first argument of an event as `T`; `None` when absent or of another shape.
fn first_arg<'a, T: serde::Deserialize<'a>>(args: &[&'a str]) -> Option<T> {
    args.first().and_then(|arg| serde_json::from_str(arg).ok())
}

impl Signaling {
    fn authentication(&self, socket: &Socket, args: &[&str], ack: Option<u64>) {
        let payload: Option<AuthIn> = first_arg(args);
        let decision = self.0.registry().authenticate(socket.id(), payload.as_ref(), rand::random(), Instant::now());
        match decision {
            Ok(login) => {
                if let Some(old) = login.replaced {
                    tracing::info!(uid = %login.uid, "user logged in again: closing its previous connection");
                    let _ = old.emit("server-disconnect", &[]);
                    old.disconnect();
                }
                tracing::debug!(sid = socket.sid(), uid = %login.uid, "user authenticated");
                let uid = serde_json::json!({ "uid": login.uid.as_ref() }).to_string();
                let _ = socket.emit("server-authenticated", &[&uid]);
                if let Some(ack) = ack {
                    let _ = socket.ack(ack, &[&uid]);
                }
            }
            // The authentication ack is an object: {uid} or {error}.
            Err(refusal) => {
                log_refusal(socket, refusal, "authentication");
                if let Some(ack) = ack {
                    let _ = socket.ack(ack, &[&serde_json::json!({ "error": refusal.code() }).to_string()]);
                }
                if refusal.disconnects() {
                    socket.disconnect();
                }
            }
        }
    }

    fn message(&self, socket: &Socket, args: &[&str], ack: Option<u64>) {
        let payload = args.first().and_then(|arg| MessageIn::parse(arg));
        let decision = self.0.registry().relay(socket.id(), payload.as_ref(), Instant::now());
        let Relay { target, from } = match decision {
            Ok(relay) => relay,
            Err(refusal) => return refuse(socket, ack, refusal, "owt-message"),
        };
        // The registry only relays a payload whose data is a string.
        let Some(MessageIn { data: Field::Str(data), .. }) = &payload else {
            self.0.registry().undeliverable(Refusal::Malformed);
            return refuse(socket, ack, Refusal::Malformed, "owt-message");
        };
        let out = relayed_message(&from, data);
        match target.emit("owt-message", &[&out]) {
            Ok(()) => {
                if let Some(ack) = ack {
                    let _ = socket.ack(ack, &[]);
                }
            }
            Err(err) => {
                let refusal = match err {
                    SendError::Full => Refusal::TargetBusy,
                    SendError::Closed => Refusal::Unreachable,
                };
                self.0.registry().undeliverable(refusal);
                refuse(socket, ack, refusal, "owt-message");
            }
        }
    }
}

impl Handler for Signaling {
    fn allow_origin(&self, origin: Option<&str>) -> bool {
        self.0.origins.read().unwrap_or_else(|poisoned| poisoned.into_inner()).allows(origin)
    }

    /// Refuses a connection when `max_clients` are connected (or the server is stopping):
    /// the client gets a connect error whose message is the code.
    fn connect(&self, socket: &Socket) -> Result<(), String> {
        let mut registry = self.0.registry();
        if let Err(refusal) = registry.admit() {
            if refusal == Refusal::Full {
                tracing::warn!("refusing a client: max_clients reached");
            }
            return Err(refusal.code().as_str().unwrap_or("2102").to_owned());
        }
        registry.connected(socket.id(), socket.clone(), Instant::now());
        drop(registry);
        tracing::debug!(sid = socket.sid(), "client connected");
        Ok(())
    }

    fn event(&self, socket: &Socket, name: &str, args: &[&str], ack: Option<u64>) {
        match name {
            "authentication" => self.authentication(socket, args, ack),
            "owt-message" => self.message(socket, args, ack),
            // Counted against the rate limit, otherwise ignored (the reference server has no
            // handler for them either).
            _ => {
                if let Err(refusal) = self.0.registry().other_event(socket.id(), Instant::now()) {
                    refuse(socket, ack, refusal, "other");
                }
            }
        }
    }

    fn disconnect(&self, socket: &Socket, reason: DisconnectReason) {
        let Some(departure) = self.0.registry().disconnected(socket.id()) else { return };
        let uid = departure.uid.as_deref().unwrap_or("-");
        if departure.dropped > 0 {
            tracing::info!(sid = socket.sid(), uid, dropped = departure.dropped, "rate-limited client disconnected");
        }
        tracing::debug!(sid = socket.sid(), uid, ?reason, "client disconnected");
    }
}

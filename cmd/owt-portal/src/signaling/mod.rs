//! Client signaling: the OWT Client-Portal protocol (spec/owt-compat.md §1) over Socket.IO
//! (socketioxide: EIO=4 for socket.io-client 3.x/4.x and, with its `v4` feature, EIO=3 for
//! 2.x), on `portal.port`. This module is the I/O shell: it decodes requests, calls the
//! sans-IO cores — the conference (`owt-room`) and who is connected ([`presence`]: sockets,
//! held notifications, login and reconnection deadlines) — and carries out what they decide:
//! notifications, disconnects, and timers that hand the current time back to them. All room
//! and session state sits behind one lock, [`Hub::state`], so a request sees and changes a
//! consistent picture; nothing blocks while it is held. Participants of the older protocols
//! 1.0 and 1.1 have their requests upgraded and their notifications downgraded by [`versions`].

mod media;
mod mixing;
mod presence;
mod versions;

use crate::api::{Api, LiveRooms};
use owt_auth::{ReconnectionTicket, Token};
use owt_config::PortalConfig;
use owt_proto::webrtc::{methods, SessionRequest};
use owt_room::{Conference, Effect, PARTICIPANT_TERMINATE};
use presence::{Closed, Payload, Presence, IN_SERVICE};
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use versions::Protocol;

/// SDK types whose clients reconnect with `relogin` (spec §1.4).
const RECONNECTING_SDKS: [&str; 4] = ["Objective-C", "C++", "Android", "JavaScript"];

/// How long a media node may take to close a subscription whose source went away.
const NODE_DEADLINE: Duration = Duration::from_secs(6);

struct State {
    rooms: HashMap<String, Conference>,
    /// Client peer connections by transport id, with the webrtc node that owns each.
    transports: HashMap<String, media::Transport>,
    /// Publications and subscriptions by session id.
    media: HashMap<String, media::MediaSession>,
    /// Sockets, the participants they carry, and their deadlines.
    presence: Presence,
    /// Subscription sessions ended by the room (`Effect::EndSubscription`), with their media
    /// node, to close there once the lock is released.
    closing_subscriptions: Vec<(String, String)>,
    /// Views running on mixers, by mixed stream id.
    views: HashMap<String, mixing::RunningView>,
    /// Layouts set through REST, by mixed stream id (until the view's inputs change).
    custom_layouts: HashMap<String, mixing::CustomLayout>,
    /// Participants that logged in with an older protocol (1.0, 1.1); the others speak 1.2.
    older_protocols: HashMap<String, Protocol>,
}

impl State {
    fn new(presence: Presence) -> State {
        State {
            rooms: HashMap::new(),
            transports: HashMap::new(),
            media: HashMap::new(),
            presence,
            closing_subscriptions: Vec::new(),
            views: HashMap::new(),
            custom_layouts: HashMap::new(),
            older_protocols: HashMap::new(),
        }
    }
}

/// A held notification re-emitted to a JavaScript client after `relogin`.
type Replay = (&'static str, Payload);

/// A notification to emit once the lock is released.
struct Outgoing {
    socket: String,
    event: &'static str,
    data: Payload,
}

/// What the signaling server shares between its handlers and the REST API.
pub struct Hub {
    api: Arc<Api>,
    /// For REST calls (on blocking threads) that must wait for a media node.
    runtime: tokio::runtime::Handle,
    cluster: Arc<owt_bus::Cluster>,
    state: Mutex<State>,
    io: OnceLock<SocketIo>,
    /// Per-process key of the reconnection tickets (as OWT: relogin only works against the
    /// portal process that issued the ticket).
    ticket_key: String,
    settings: owt_config::PortalSection,
    /// One view start or update at a time (mixing.rs).
    mixing: tokio::sync::Mutex<()>,
    /// Rooms whose views must follow a change of their streams (mixing::follow_views).
    view_changes: tokio::sync::mpsc::UnboundedSender<String>,
}

fn now_ms() -> i64 {
    owt_store::now_ms()
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns conference effects into notifications for sockets (or queues them for
    /// participants that are reconnecting). Drops are returned as socket ids to disconnect.
    fn route(state: &mut State, room_id: &str, effects: Vec<Effect>) -> (Vec<Outgoing>, Vec<String>) {
        let mut out = Vec::new();
        let mut drops = Vec::new();
        let now = std::time::Instant::now();
        let members: Vec<String> = state
            .rooms
            .get(room_id)
            .map(|c| c.participants().iter().map(|p| p.id.clone()).collect())
            .unwrap_or_default();
        for effect in effects {
            let (targets, event, data) = match effect {
                Effect::Notify { to, event, data } => (vec![to], event, data),
                Effect::Broadcast { exclude, event, data } => {
                    (members.iter().filter(|m| !exclude.contains(m)).cloned().collect(), event, data)
                }
                Effect::Drop { participant } => {
                    if let Some(socket) =
                        state.presence.remove(&participant).and_then(|s| s.socket().map(str::to_owned))
                    {
                        out.push(Outgoing { socket: socket.clone(), event: "drop", data: Arc::new(Value::Null) });
                        drops.push(socket);
                    }
                    continue;
                }
                Effect::EndSubscription { id, owner, reason } => {
                    let Some(session) = state.media.remove(&id).filter(|s| !s.publish) else { continue };
                    if let Some(transport) = state.transports.get_mut(&session.transport) {
                        transport.sessions.retain(|s| *s != id);
                        state.closing_subscriptions.push((transport.node.clone(), id.clone()));
                    }
                    if reason == PARTICIPANT_TERMINATE {
                        continue;
                    }
                    let data = json!({"id": session.transport, "sessionId": id, "status": "error", "data": reason});
                    (vec![owner], "progress", data)
                }
            };
            let data = Arc::new(data);
            for target in targets {
                let (event, data) = match state.older_protocols.get(&target) {
                    Some(protocol) => {
                        let (event, older) = versions::downgrade_notification(*protocol, event, &data);
                        (event, Arc::new(older))
                    }
                    None => (event, Arc::clone(&data)),
                };
                if let Some(socket) = state.presence.send(&target, event, &data, now) {
                    out.push(Outgoing { socket, event, data });
                }
            }
        }
        (out, drops)
    }

    fn deliver(&self, outgoing: Vec<Outgoing>, drops: Vec<String>) {
        self.close_ended_subscriptions();
        let Some(io) = self.io.get() else { return };
        for message in outgoing {
            if let Some(socket) = socket_by_id(io, &message.socket) {
                if let Err(err) = socket.emit(message.event, &*message.data) {
                    tracing::warn!(socket = %message.socket, "emit {} failed: {err}", message.event);
                }
            }
        }
        for socket_id in drops {
            if let Some(socket) = socket_by_id(io, &socket_id) {
                let _ = socket.disconnect();
            }
        }
    }

    /// Asks media nodes to close the subscriptions the rooms ended (their sources went away).
    fn close_ended_subscriptions(&self) {
        let closing = std::mem::take(&mut self.lock().closing_subscriptions);
        for (node, session_id) in closing {
            let cluster = self.cluster.clone();
            self.runtime.spawn(async move {
                let request = json!(SessionRequest { session_id: session_id.clone() });
                if let Err(err) = cluster.request(&node, methods::UNSUBSCRIBE, request, NODE_DEADLINE).await {
                    tracing::debug!(session = %session_id, node, "unsubscribe of an ended subscription: {err}");
                }
            });
        }
    }

    /// A participant leaves its room for good; the room goes when nobody is left.
    fn leave(&self, participant: &str) {
        let (outgoing, drops) = {
            let mut state = self.lock();
            let Some(session) = state.presence.remove(participant) else { return };
            self.leave_room(&mut state, participant, &session.room_id)
        };
        tracing::info!(participant, "participant left");
        self.deliver(outgoing, drops);
    }

    /// Takes a participant already gone from presence out of its room: its transports close,
    /// the room is told, and the room goes when nobody is left.
    fn leave_room(&self, state: &mut State, participant: &str, room_id: &str) -> (Vec<Outgoing>, Vec<String>) {
        self.close_transports_of(state, participant);
        state.older_protocols.remove(participant);
        let effects = match state.rooms.get_mut(room_id) {
            Some(conference) => conference.leave(participant),
            None => Vec::new(),
        };
        let routed = Self::route(state, room_id, effects);
        if state.rooms.get(room_id).is_some_and(Conference::is_empty) {
            state.rooms.remove(room_id);
            tracing::info!(room = %room_id, "room torn down: nobody left");
        }
        self.views_changed(room_id);
        routed
    }

    /// The reconnection waits that are over at `now` end: those participants leave.
    fn reconnection_waits_over(&self, now: Instant) {
        let mut routed = (Vec::new(), Vec::new());
        {
            let mut state = self.lock();
            for departed in state.presence.expired(now) {
                tracing::info!(participant = %departed.participant, "no relogin within reconnection_timeout");
                let (outgoing, drops) = self.leave_room(&mut state, &departed.participant, &departed.room_id);
                routed.0.extend(outgoing);
                routed.1.extend(drops);
            }
        }
        self.deliver(routed.0, routed.1);
    }

    /// Sockets not in service at their login deadline (`now`) are closed.
    fn login_deadlines_over(&self, now: Instant) {
        let sockets = self.lock().presence.login_expired(now);
        let Some(io) = self.io.get() else { return };
        for socket_id in sockets {
            if let Some(socket) = socket_by_id(io, &socket_id) {
                tracing::info!(socket = %socket_id, "closing socket: no login within {}s", self.settings.login_timeout);
                let _ = socket.disconnect();
            }
        }
    }

    fn ticket(&self, participant: &str) -> String {
        self.lock().presence.ticket_issued(participant);
        ReconnectionTicket::issue(
            &self.ticket_key,
            participant,
            now_ms(),
            self.settings.reconnection_ticket_lifetime as i64 * 1000,
        )
        .encode()
    }

    fn login(&self, socket_id: &str, data: &Value) -> Result<Value, String> {
        if self.lock().presence.is_in_service(socket_id) {
            return Err(IN_SERVICE.into());
        }
        let Some(request) = data.as_object() else { return Err("Invalid login request".into()) };
        let protocol = versions::login_protocol(request)?;
        let sdk = &request.get("userAgent").unwrap_or(&Value::Null)["sdk"];
        let (Some(_version), Some(sdk_type)) = (sdk["version"].as_str(), sdk["type"].as_str()) else {
            return Err("User agent info is incorrect".into());
        };
        let token_text = request.get("token").and_then(Value::as_str).ok_or("Invalid token")?;
        let token = Token::decode(token_text).ok_or("Invalid token")?;
        let key = self.api.token_key().map_err(|_| "Joining room failed".to_string())?;
        if !token.verify(&key) {
            return Err("Invalid token signature".into());
        }
        let lifetime_ms = self.settings.token_lifetime as i64 * 1000;
        let record = self
            .api
            .take_token(&token.token_id, now_ms(), lifetime_ms)
            .map_err(|_| "Joining room failed".to_string())?
            .ok_or("Token does NOT exist")?;
        if now_ms() - record.created_ms > lifetime_ms {
            return Err("Expired".into());
        }
        let room = self
            .api
            .room_by_id(&record.room_id)
            .map_err(|_| "Joining room failed".to_string())?
            .ok_or("Room does NOT exist")?;
        let origin = serde_json::from_str(&record.origin).unwrap_or_else(|_| json!({}));
        let reconnection = RECONNECTING_SDKS.contains(&sdk_type);
        let (joined, outgoing, drops) = {
            let mut state = self.lock();
            let conference =
                state.rooms.entry(room.id.clone()).or_insert_with(|| Conference::new(&room.id, room.config.clone()));
            let result = conference.join(socket_id, &record.user, &record.role, origin);
            let (joined, effects) = match result {
                Ok(ok) => ok,
                Err(err) => {
                    if conference.is_empty() {
                        state.rooms.remove(&room.id);
                    }
                    return Err(err.0);
                }
            };
            state.presence.logged_in(socket_id, socket_id, &room.id, reconnection, sdk_type == "JavaScript");
            if protocol != Protocol::V1_2 {
                state.older_protocols.insert(socket_id.to_string(), protocol);
            }
            let (outgoing, drops) = Self::route(&mut state, &room.id, effects);
            (joined, outgoing, drops)
        };
        tracing::info!(room = %room.id, participant = socket_id, user = %joined.participant.user, "participant joined");
        self.deliver(outgoing, drops);
        let participant = &joined.participant;
        let mut result = json!({
            "user": participant.user,
            "role": participant.role,
            "permission": participant.permission.to_json(),
            "room": joined.room,
            "id": participant.id,
        });
        if reconnection {
            result["reconnectionTicket"] = self.ticket(&participant.id).into();
        }
        versions::downgrade_login_result(protocol, &mut result);
        Ok(result)
    }

    fn participant_of(&self, socket_id: &str) -> Option<(String, String)> {
        let state = self.lock();
        let participant = state.presence.participant_of(socket_id)?;
        let room = state.presence.session(participant)?.room_id.clone();
        Some((participant.to_string(), room))
    }

    fn text(&self, socket_id: &str, data: &Value) -> Result<(), String> {
        let (participant, room_id) = self.participant_of(socket_id).ok_or("Illegal request")?;
        let to = data.get("to").and_then(Value::as_str).ok_or("Invalid receiver")?;
        let message = data.get("message").cloned().unwrap_or(Value::Null);
        let (outgoing, drops) = {
            let mut state = self.lock();
            let effects = state
                .rooms
                .get(&room_id)
                .ok_or("Illegal request")?
                .text(&participant, to, &message)
                .map_err(|e| e.0)?;
            Self::route(&mut state, &room_id, effects)
        };
        self.deliver(outgoing, drops);
        Ok(())
    }

    /// A media request in the 1.2 form whatever the participant's protocol: `publish` and
    /// `subscribe` of 1.0/1.1 clients are upgraded first (their acks, `{id, transportId}`,
    /// are the same in every version).
    async fn versioned_media_request(
        &self,
        socket_id: &str,
        event: &str,
        data: &Value,
    ) -> Result<Option<Value>, String> {
        let older = {
            let state = self.lock();
            let participant = state.presence.participant_of(socket_id);
            participant.filter(|p| state.older_protocols.contains_key(*p)).map(str::to_owned)
        };
        let Some(participant) = older else { return self.media_request(socket_id, event, data).await };
        let upgraded = match event {
            "publish" => versions::upgrade_publish(data)?,
            "subscribe" => {
                versions::upgrade_subscribe(data, |stream, rid| self.simulcast_track(&participant, stream, rid))?
            }
            _ => return self.media_request(socket_id, event, data).await,
        };
        self.media_request(socket_id, event, &upgraded).await
    }

    /// The track id of layer `rid` of a stream in the participant's room.
    fn simulcast_track(&self, participant: &str, stream: &str, rid: &str) -> Option<String> {
        let state = self.lock();
        let room = &state.presence.session(participant)?.room_id;
        let info = state.rooms.get(room)?.stream(stream)?;
        versions::simulcast_track(&info, rid)
    }

    fn logout(&self, socket_id: &str) -> Result<(), String> {
        let (participant, _) = self.participant_of(socket_id).ok_or("Illegal request")?;
        self.leave(&participant);
        Ok(())
    }

    fn refresh_ticket(&self, socket_id: &str) -> Result<String, String> {
        let (participant, _) = self.participant_of(socket_id).ok_or("Illegal request")?;
        let enabled = self.lock().presence.reconnection_enabled(&participant);
        if !enabled {
            return Err("Reconnection is not enabled.".into());
        }
        Ok(self.ticket(&participant))
    }

    /// `relogin`: moves a waiting participant onto this socket. Returns the ack data and the
    /// notifications to re-emit afterwards (JS clients get them as events, others in the ack).
    /// A socket already in service is refused first, whatever the ticket (spec §1.5).
    fn relogin(&self, socket_id: &str, data: &Value) -> Result<(Value, Vec<Replay>), String> {
        if self.lock().presence.is_in_service(socket_id) {
            return Err(IN_SERVICE.into());
        }
        let text = data.as_str().ok_or("Invalid reconnection ticket")?;
        let ticket = ReconnectionTicket::verify(text, &self.ticket_key, now_ms()).map_err(|e| e.to_string())?;
        let back = self.lock().presence.relogin(socket_id, &ticket.participant_id)?;
        tracing::info!(participant = %ticket.participant_id, "participant reconnected");
        let new_ticket = self.ticket(&ticket.participant_id);
        if back.javascript {
            Ok((Value::String(new_ticket), back.missed.into_iter().map(|(_, event, data)| (event, data)).collect()))
        } else {
            let messages: Vec<Value> = back
                .buffer
                .iter()
                .map(|(seq, event, data)| json!({"event": event, "data": &**data, "seq": seq}))
                .collect();
            Ok((json!({"ticket": new_ticket, "messages": messages}), Vec::new()))
        }
    }

    fn disconnected(self: &Arc<Self>, socket_id: &str) {
        let closed = self.lock().presence.socket_closed(socket_id, Instant::now());
        match closed {
            Closed::Nobody => {}
            Closed::Leave { participant } => self.leave(&participant),
            Closed::Waiting { participant, until } => {
                tracing::info!(participant = %participant, "participant disconnected; waiting for relogin");
                let hub = self.clone();
                self.runtime.spawn(async move {
                    tokio::time::sleep_until(until.into()).await;
                    hub.reconnection_waits_over(Instant::now());
                });
            }
        }
    }

    /// Sends `drop` to everyone and empties every room (portal stopping).
    fn drop_all(&self) {
        let participants = self.lock().presence.participants();
        for (participant, room) in participants {
            self.drop_participant(&room, &participant);
        }
    }

    fn conference_json<T>(&self, room: &str, f: impl FnOnce(&Conference) -> T) -> Option<T> {
        self.lock().rooms.get(room).map(f)
    }
}

fn socket_by_id(io: &SocketIo, id: &str) -> Option<SocketRef> {
    let sid = id.parse().ok()?;
    io.get_socket(sid)
}

impl LiveRooms for Hub {
    fn participants(&self, room: &str) -> Vec<Value> {
        self.conference_json(room, |c| c.participants().iter().map(|p| p.detail()).collect()).unwrap_or_default()
    }

    fn participant(&self, room: &str, participant: &str) -> Option<Value> {
        self.conference_json(room, |c| c.participant(participant).map(|p| p.detail())).flatten()
    }

    fn update_participant(&self, room: &str, participant: &str, operations: &Value) -> Result<Value, String> {
        let mut state = self.lock();
        let conference = state.rooms.get_mut(room).ok_or("Participant not found")?;
        conference.update_permission(participant, operations).map_err(|e| e.0)
    }

    fn drop_participant(&self, room: &str, participant: &str) -> bool {
        let (outgoing, drops) = {
            let mut state = self.lock();
            let Some(conference) = state.rooms.get_mut(room) else { return false };
            let Ok(effects) = conference.drop_participant(participant) else { return false };
            self.close_transports_of(&mut state, participant);
            let routed = Self::route(&mut state, room, effects);
            state.older_protocols.remove(participant);
            if state.rooms.get(room).is_some_and(Conference::is_empty) {
                state.rooms.remove(room);
            }
            self.views_changed(room);
            routed
        };
        tracing::info!(room, participant, "participant dropped");
        self.deliver(outgoing, drops);
        true
    }

    fn streams(&self, room: &str) -> Vec<Value> {
        self.conference_json(room, Conference::streams).unwrap_or_default()
    }

    fn stream(&self, room: &str, stream: &str) -> Option<Value> {
        self.conference_json(room, |c| c.stream(stream)).flatten()
    }

    fn update_stream(&self, room: &str, stream: &str, operations: &Value) -> Result<Value, String> {
        self.runtime.block_on(self.rest_update_stream(room, stream, operations))
    }

    fn stream_stats(&self, room: &str, stream: &str) -> Option<Value> {
        self.runtime.block_on(self.rest_stream_stats(room, stream))
    }

    fn delete_stream(&self, room: &str, stream: &str) -> bool {
        self.runtime.block_on(self.rest_delete_stream(room, stream))
    }

    fn destroy_room(&self, room: &str) {
        let participants: Vec<String> =
            self.conference_json(room, |c| c.participants().iter().map(|p| p.id.clone()).collect()).unwrap_or_default();
        for participant in participants {
            self.drop_participant(room, &participant);
        }
    }
}

/// Sends an OWT ack: `("ok", data)`, `("ok")` or `("error", message)`.
fn answer(ack: AckSender, result: Result<Option<Value>, String>) {
    let sent = match result {
        Ok(Some(data)) => ack.send(&("ok", data)),
        Ok(None) => ack.send(&("ok",)),
        Err(message) => ack.send(&("error", message)),
    };
    if let Err(err) = sent {
        tracing::warn!("ack failed: {err}");
    }
}

fn payload(data: TryData<Value>) -> Value {
    data.0.unwrap_or(Value::Null)
}

fn on_connect(socket: SocketRef, hub: Arc<Hub>) {
    let socket_id = socket.id.to_string();
    tracing::debug!(socket = %socket_id, "socket connected");
    {
        let hub = hub.clone();
        socket.on("login", move |socket: SocketRef, data: TryData<Value>, ack: AckSender| {
            let hub = hub.clone();
            async move {
                let id = socket.id.to_string();
                match hub.login(&id, &payload(data)) {
                    Ok(result) => answer(ack, Ok(Some(result))),
                    // A second login on a logged-in socket is refused but does not end the
                    // session it already carries; any other refusal closes the socket, as OWT.
                    Err(message) if message == IN_SERVICE => answer(ack, Err(message)),
                    Err(message) => {
                        tracing::info!(socket = %id, "login refused: {message}");
                        answer(ack, Err(message));
                        let _ = socket.disconnect();
                    }
                }
            }
        });
    }
    {
        let hub = hub.clone();
        socket.on("relogin", move |socket: SocketRef, data: TryData<Value>, ack: AckSender| {
            let hub = hub.clone();
            async move {
                let id = socket.id.to_string();
                match hub.relogin(&id, &payload(data)) {
                    Ok((result, replay)) => {
                        answer(ack, Ok(Some(result)));
                        for (event, data) in replay {
                            let _ = socket.emit(event, &*data);
                        }
                    }
                    // As for login: the socket keeps the participant it carries.
                    Err(message) if message == IN_SERVICE => answer(ack, Err(message)),
                    Err(message) => {
                        tracing::info!(socket = %id, "relogin refused: {message}");
                        answer(ack, Err(message));
                        let _ = socket.disconnect();
                    }
                }
            }
        });
    }
    {
        let hub = hub.clone();
        socket.on("logout", move |socket: SocketRef, ack: AckSender| {
            let hub = hub.clone();
            async move { answer(ack, hub.logout(&socket.id.to_string()).map(|()| None)) }
        });
    }
    {
        let hub = hub.clone();
        socket.on("refreshReconnectionTicket", move |socket: SocketRef, ack: AckSender| {
            let hub = hub.clone();
            async move { answer(ack, hub.refresh_ticket(&socket.id.to_string()).map(|t| Some(Value::String(t)))) }
        });
    }
    {
        let hub = hub.clone();
        socket.on("text", move |socket: SocketRef, data: TryData<Value>, ack: AckSender| {
            let hub = hub.clone();
            async move { answer(ack, hub.text(&socket.id.to_string(), &payload(data)).map(|()| None)) }
        });
    }
    for event in ["publish", "subscribe", "soac", "unpublish", "unsubscribe", "stream-control", "subscription-control"]
    {
        let hub = hub.clone();
        socket.on(event, move |socket: SocketRef, data: TryData<Value>, ack: AckSender| {
            let hub = hub.clone();
            async move { answer(ack, hub.versioned_media_request(&socket.id.to_string(), event, &payload(data)).await) }
        });
    }
    {
        let hub = hub.clone();
        socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
            let hub = hub.clone();
            async move {
                tracing::debug!(socket = %socket.id, ?reason, "socket disconnected");
                hub.disconnected(&socket.id.to_string());
            }
        });
    }
    // Sockets that are not in service by their login deadline are closed.
    let deadline = hub.lock().presence.socket_opened(&socket_id, Instant::now());
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        hub.login_deadlines_over(Instant::now());
    });
}

/// Registers a socket's handlers synchronously (see `Signaling::start`).
#[derive(Clone)]
struct OnConnect(Arc<Hub>);

/// Marker for the hand-written handler implementation.
struct Direct;

impl socketioxide::handler::ConnectHandler<socketioxide::adapter::LocalAdapter, Direct> for OnConnect {
    fn call(
        &self,
        socket: Arc<socketioxide::socket::Socket<socketioxide::adapter::LocalAdapter>>,
        _auth: Option<socketioxide::handler::Value>,
    ) {
        use socketioxide::handler::FromConnectParts;
        let Ok(socket) = SocketRef::from_connect_parts(&socket, &None);
        on_connect(socket, self.0.clone());
    }
}

/// The running Socket.IO server.
pub struct Signaling {
    hub: Arc<Hub>,
    addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Signaling {
    pub async fn start(
        config: &PortalConfig,
        api: Arc<Api>,
        cluster: Arc<owt_bus::Cluster>,
    ) -> Result<Signaling, crate::PortalError> {
        let settings = config.portal.clone();
        let tls = if settings.ssl { Some(Arc::new(crate::http::tls_acceptor(config)?)) } else { None };
        let (view_changes, view_changes_rx) = tokio::sync::mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            api,
            runtime: tokio::runtime::Handle::current(),
            cluster,
            state: Mutex::new(State::new(Presence::new(
                Duration::from_secs(settings.login_timeout),
                Duration::from_secs(settings.reconnection_timeout),
                Duration::from_secs(settings.ping_interval + settings.ping_timeout + 1),
            ))),
            io: OnceLock::new(),
            ticket_key: hex_key(),
            settings: settings.clone(),
            mixing: tokio::sync::Mutex::new(()),
            view_changes,
        });
        let (service, io) = SocketIo::builder()
            .ping_interval(Duration::from_secs(settings.ping_interval))
            .ping_timeout(Duration::from_secs(settings.ping_timeout))
            .max_payload(settings.max_message_bytes)
            // Packets queued per socket before emits fail. A join into a big room sends one
            // notification to everybody at once, so bursts of hundreds are normal.
            .max_buffer_size(8192)
            .ws_max_message_size(settings.max_message_bytes as usize)
            .build_svc();
        {
            let hub = hub.clone();
            // A synchronous connect handler: socketioxide sends the connect packet first and
            // then calls it; an async one runs in a task of its own, so under load a client's
            // immediate `login` could arrive before the handlers exist and be dropped.
            io.ns("/", OnConnect(hub.clone()));
        }
        let _ = hub.io.set(io);
        tokio::spawn(media::follow_nodes(hub.clone()));
        tokio::spawn(mixing::follow_views(hub.clone(), view_changes_rx));
        let listen_error = |e: std::io::Error| crate::PortalError::Listen {
            addr: format!("{}:{}", settings.bind_address, settings.port),
            message: e.to_string(),
        };
        let ip: std::net::IpAddr = settings.bind_address.parse().map_err(|e| listen_error(std::io::Error::other(e)))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, settings.port)).await.map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let cors: Arc<Vec<String>> = Arc::new(settings.cors.clone());
        let serve = move |io| {
            let (service, cors) = (service.clone(), cors.clone());
            async move {
                let service =
                    hyper::service::service_fn(move |request| with_cors(service.clone(), cors.clone(), request));
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades();
                if let Err(err) = connection.await {
                    tracing::debug!("signaling connection: {err}");
                }
            }
        };
        let accept_task = tokio::spawn(crate::http::accept_loop(listener, tls, "signaling", serve));
        tracing::info!("Socket.IO signaling listening on {}://{addr}", if settings.ssl { "https" } else { "http" });
        Ok(Signaling { hub, addr, accept_task })
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every participant (they receive `drop`), closes sockets and the listener.
    pub async fn stop(self) {
        self.hub.drop_all();
        if let Some(io) = self.hub.io.get() {
            io.close().await;
        }
        self.accept_task.abort();
    }
}

/// Browsers on other origins (the application's pages) reach signaling with long-polling
/// XHRs: answer preflights and add CORS headers for allowed origins, reflecting the origin
/// with credentials as OWT's socket.io server does.
async fn with_cors<S, B>(
    service: S,
    allowed: Arc<Vec<String>>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Either<B, http_body_util::Empty<bytes::Bytes>>>, S::Error>
where
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<B>>,
{
    use hyper::header::{HeaderValue, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN};
    let origin = request.headers().get(ORIGIN).cloned();
    let permitted =
        origin.as_ref().and_then(|o| o.to_str().ok()).is_some_and(|o| allowed.iter().any(|a| a == "*" || a == o));
    let add_headers = |headers: &mut hyper::HeaderMap| {
        if let (true, Some(origin)) = (permitted, origin.clone()) {
            headers.insert("access-control-allow-origin", origin);
            headers.insert("access-control-allow-credentials", HeaderValue::from_static("true"));
            headers.append("vary", HeaderValue::from_static("Origin"));
        }
    };
    if request.method() == hyper::Method::OPTIONS {
        let mut response = hyper::Response::new(http_body_util::Either::Right(http_body_util::Empty::new()));
        *response.status_mut() = if permitted { hyper::StatusCode::NO_CONTENT } else { hyper::StatusCode::FORBIDDEN };
        add_headers(response.headers_mut());
        if permitted {
            response.headers_mut().insert("access-control-allow-methods", HeaderValue::from_static("GET, POST"));
            if let Some(requested) = request.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).cloned() {
                response.headers_mut().insert("access-control-allow-headers", requested);
            }
        }
        return Ok(response);
    }
    let response = service.call(request).await?;
    let (mut parts, body) = response.into_parts();
    add_headers(&mut parts.headers);
    Ok(hyper::Response::from_parts(parts, http_body_util::Either::Left(body)))
}

/// OWT's session ids: a v4-style UUID without dashes (32 hex digits).
fn uuid_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn hex_key() -> String {
    (0..64).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

//! Who is connected, sans-IO: which socket carries which participant, the notifications held
//! for a participant whose socket dropped, and the two deadlines of spec/owt-compat.md §1.1
//! and §1.5 — a socket must log in within `login_timeout`, and a participant whose socket
//! dropped (with reconnection enabled) leaves after `reconnection_timeout` unless it comes
//! back with `relogin`. Every notification sent on a connection is numbered (`seq`, from 1 per
//! connection) and kept for a while (OWT's `message_buffer`, spec §1.5): a native client's
//! `relogin` gets that whole buffer, so it can tell what it already had by `seq`. Time is an
//! input (`now`): the shell's timers call [`Presence::expired`] and [`Presence::login_expired`]
//! when a deadline they were given passes.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) const IN_SERVICE: &str = "Connection is in service";
/// At most this many sent notifications are kept per participant for `relogin`.
const BUFFER_LIMIT: usize = 1024;

/// A notification's data. A broadcast's is shared by all its recipients, and so by their
/// buffers: a join in a room of N would otherwise put N copies of it in N buffers (N^2 for
/// the room filling up within `buffer_window`).
pub(super) type Payload = Arc<Value>;

/// A notification held for a participant without a socket, with its sequence number.
pub(super) type Held = (u64, &'static str, Payload);

/// One logged-in participant's connection state.
pub(super) struct Session {
    pub room_id: String,
    /// The socket currently carrying the participant; None while it waits for `relogin`.
    socket: Option<String>,
    reconnection: bool,
    /// JS SDK 5.1 wants the relogin ack as a bare ticket string (spec decision §0).
    javascript: bool,
    held: Vec<Held>,
    /// Notifications sent on this connection, with when, for `relogin` (see the header).
    buffer: VecDeque<(Instant, Held)>,
    next_seq: u64,
    /// When it leaves unless it logs in again; set while it has no socket.
    leave_at: Option<Instant>,
    /// The participant named by the last reconnection ticket issued to this session (OWT
    /// compares it with the ticket presented on `relogin`).
    ticket_holder: Option<String>,
}

impl Session {
    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }
}

/// What a closed socket means for its participant.
#[derive(Debug, PartialEq)]
pub(super) enum Closed {
    /// The socket carried nobody (not logged in, logged out, or moved by `relogin`).
    Nobody,
    /// The participant leaves now (reconnection is not enabled for it).
    Leave { participant: String },
    /// The participant waits for `relogin` until `until`.
    Waiting { participant: String, until: Instant },
}

/// A participant moved onto a new socket by `relogin`.
#[derive(Debug)]
pub(super) struct Reattached {
    pub javascript: bool,
    /// What it missed while it had no socket, oldest first.
    pub missed: Vec<Held>,
    /// Every notification of its last connection still kept (what it missed included).
    pub buffer: Vec<Held>,
}

/// A participant whose reconnection wait ran out (already removed from presence).
#[derive(Debug, PartialEq)]
pub(super) struct Departed {
    pub participant: String,
    pub room_id: String,
}

pub(super) struct Presence {
    login_timeout: Duration,
    reconnection_timeout: Duration,
    buffer_window: Duration,
    /// Participant id -> session.
    sessions: HashMap<String, Session>,
    /// Socket id -> participant id, for sockets carrying a participant.
    by_socket: HashMap<String, String>,
    /// Sockets still open, with the moment they must be in service by.
    login_deadlines: HashMap<String, Instant>,
}

impl Presence {
    /// `buffer_window`: how long sent notifications are kept for `relogin` (OWT: ping
    /// interval + ping timeout + 1 s).
    pub fn new(login_timeout: Duration, reconnection_timeout: Duration, buffer_window: Duration) -> Presence {
        Presence {
            login_timeout,
            reconnection_timeout,
            buffer_window,
            sessions: HashMap::new(),
            by_socket: HashMap::new(),
            login_deadlines: HashMap::new(),
        }
    }

    /// A socket opened: it must be in service by the returned deadline.
    pub fn socket_opened(&mut self, socket: &str, now: Instant) -> Instant {
        let deadline = now + self.login_timeout;
        self.login_deadlines.insert(socket.into(), deadline);
        deadline
    }

    /// Whether the socket carries a participant (login or relogin succeeded on it).
    pub fn is_in_service(&self, socket: &str) -> bool {
        self.by_socket.contains_key(socket)
    }

    pub fn participant_of(&self, socket: &str) -> Option<&str> {
        self.by_socket.get(socket).map(String::as_str)
    }

    pub fn session(&self, participant: &str) -> Option<&Session> {
        self.sessions.get(participant)
    }

    /// Every participant with its room.
    pub fn participants(&self) -> Vec<(String, String)> {
        self.sessions.iter().map(|(id, s)| (id.clone(), s.room_id.clone())).collect()
    }

    /// A participant joined its room through `socket` (the participant id is the socket id).
    pub fn logged_in(&mut self, socket: &str, participant: &str, room_id: &str, reconnection: bool, javascript: bool) {
        self.sessions.insert(
            participant.into(),
            Session {
                room_id: room_id.into(),
                socket: Some(socket.into()),
                reconnection,
                javascript,
                held: Vec::new(),
                buffer: VecDeque::new(),
                next_seq: 1,
                leave_at: None,
                ticket_holder: None,
            },
        );
        self.by_socket.insert(socket.into(), participant.into());
    }

    pub fn reconnection_enabled(&self, participant: &str) -> bool {
        self.sessions.get(participant).is_some_and(|s| s.reconnection)
    }

    /// A reconnection ticket naming `participant` was handed to it.
    pub fn ticket_issued(&mut self, participant: &str) {
        if let Some(session) = self.sessions.get_mut(participant) {
            session.ticket_holder = Some(participant.into());
        }
    }

    /// Where a notification for `participant` goes at `now`: its socket, or (None) it is held
    /// for `relogin`. Either way it is numbered and buffered. Unknown participants get nothing.
    pub fn send(&mut self, participant: &str, event: &'static str, data: &Payload, now: Instant) -> Option<String> {
        let window = self.buffer_window;
        let session = self.sessions.get_mut(participant)?;
        let seq = session.next_seq;
        session.next_seq += 1;
        while session
            .buffer
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > window || session.buffer.len() >= BUFFER_LIMIT)
        {
            session.buffer.pop_front();
        }
        session.buffer.push_back((now, (seq, event, Arc::clone(data))));
        if session.socket.is_none() {
            session.held.push((seq, event, Arc::clone(data)));
        }
        session.socket.clone()
    }

    /// A socket closed at `now`.
    pub fn socket_closed(&mut self, socket: &str, now: Instant) -> Closed {
        self.login_deadlines.remove(socket);
        let Some(participant) = self.by_socket.remove(socket) else { return Closed::Nobody };
        let Some(session) = self.sessions.get_mut(&participant) else { return Closed::Nobody };
        if session.socket.as_deref() != Some(socket) {
            return Closed::Nobody;
        }
        if !session.reconnection {
            return Closed::Leave { participant };
        }
        session.socket = None;
        let until = now + self.reconnection_timeout;
        session.leave_at = Some(until);
        Closed::Waiting { participant, until }
    }

    /// `relogin` on `socket` with a valid ticket naming `participant` (spec §1.5). Errors
    /// are OWT's strings; a socket already in service is refused and keeps what it carries.
    pub fn relogin(&mut self, socket: &str, participant: &str) -> Result<Reattached, &'static str> {
        if self.is_in_service(socket) {
            return Err(IN_SERVICE);
        }
        let session = self.sessions.get_mut(participant).ok_or("Client does NOT exist")?;
        if !session.reconnection {
            return Err("Reconnection is not allowed");
        }
        if session.ticket_holder.as_deref() != Some(participant) {
            return Err("Participant ID is not matched");
        }
        let old_socket = session.socket.replace(socket.into());
        session.leave_at = None;
        let buffer = std::mem::take(&mut session.buffer).into_iter().map(|(_, held)| held).collect();
        // A new connection: its notifications are numbered from 1 again.
        session.next_seq = 1;
        let reattached =
            Reattached { javascript: session.javascript, missed: std::mem::take(&mut session.held), buffer };
        if let Some(old) = old_socket {
            self.by_socket.remove(&old);
        }
        self.by_socket.insert(socket.into(), participant.into());
        Ok(reattached)
    }

    /// The participant is gone for good (logout, drop, leave); returns its session.
    pub fn remove(&mut self, participant: &str) -> Option<Session> {
        let session = self.sessions.remove(participant)?;
        if let Some(socket) = &session.socket {
            self.by_socket.remove(socket);
        }
        Some(session)
    }

    /// Participants whose reconnection wait is over at `now`: removed here, for the caller
    /// to take out of their rooms.
    pub fn expired(&mut self, now: Instant) -> Vec<Departed> {
        let mut gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.socket.is_none() && s.leave_at.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        gone.sort();
        gone.into_iter()
            .filter_map(|participant| {
                let session = self.remove(&participant)?;
                Some(Departed { participant, room_id: session.room_id })
            })
            .collect()
    }

    /// Open sockets whose login deadline passed at `now` without them being in service, for
    /// the caller to close (as OWT: checked once, at the deadline).
    pub fn login_expired(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> =
            self.login_deadlines.iter().filter(|(_, at)| **at <= now).map(|(s, _)| s.clone()).collect();
        let mut close = Vec::new();
        for socket in due {
            self.login_deadlines.remove(&socket);
            if !self.is_in_service(&socket) {
                close.push(socket);
            }
        }
        close.sort();
        close
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LOGIN: Duration = Duration::from_secs(180);
    const WAIT: Duration = Duration::from_secs(60);

    fn presence() -> Presence {
        Presence::new(LOGIN, WAIT, Duration::from_secs(46))
    }

    /// A participant logged in on socket `id` (participant id = socket id), with a ticket.
    fn joined(presence: &mut Presence, id: &str, reconnection: bool, now: Instant) {
        presence.socket_opened(id, now);
        presence.logged_in(id, id, "room", reconnection, true);
        if reconnection {
            presence.ticket_issued(id);
        }
    }

    fn departed(list: Vec<Departed>) -> Vec<String> {
        list.into_iter().map(|d| d.participant).collect()
    }

    #[test]
    fn a_disconnected_participant_leaves_exactly_after_the_reconnection_timeout() {
        let start = Instant::now();
        let mut presence = presence();
        joined(&mut presence, "p1", true, start);
        let closed_at = start + Duration::from_secs(5);
        let until = closed_at + WAIT;
        assert_eq!(presence.socket_closed("p1", closed_at), Closed::Waiting { participant: "p1".into(), until });
        assert!(presence.expired(until - Duration::from_millis(1)).is_empty(), "not before the timeout");
        assert!(presence.session("p1").is_some());
        let gone = presence.expired(until);
        assert_eq!(gone, [Departed { participant: "p1".into(), room_id: "room".into() }]);
        assert!(presence.session("p1").is_none());
        assert!(presence.expired(until + WAIT).is_empty(), "it leaves once");
    }

    #[test]
    fn reconnecting_within_the_window_keeps_the_participant_and_replays_what_it_missed() {
        let start = Instant::now();
        let mut presence = presence();
        joined(&mut presence, "p1", true, start);
        assert_eq!(presence.send("p1", "text", &Arc::new(json!("before")), start), Some("p1".to_string()));
        presence.socket_closed("p1", start);
        assert_eq!(presence.send("p1", "stream", &Arc::new(json!({"id": "s1"})), start), None, "held while away");
        assert_eq!(presence.send("p1", "text", &Arc::new(json!("m2")), start), None);
        let back = presence.relogin("s2", "p1").unwrap();
        assert!(back.javascript);
        assert_eq!(back.missed, [(2, "stream", Arc::new(json!({"id": "s1"}))), (3, "text", Arc::new(json!("m2")))]);
        assert_eq!(back.buffer.len(), 3, "everything sent on the connection, numbered from 1: {:?}", back.buffer);
        assert_eq!(back.buffer[0], (1, "text", Arc::new(json!("before"))));
        assert_eq!(presence.participant_of("s2"), Some("p1"));
        assert!(!presence.is_in_service("p1"), "the old socket carries nobody");
        assert!(presence.expired(start + WAIT * 10).is_empty(), "back in time: it stays");
        assert_eq!(presence.send("p1", "text", &Arc::new(json!("now")), start), Some("s2".to_string()));
        // Its next disconnect starts a new wait from that moment.
        let later = start + WAIT * 20;
        presence.socket_closed("s2", later);
        assert!(presence.expired(later + WAIT - Duration::from_secs(1)).is_empty());
        assert_eq!(departed(presence.expired(later + WAIT)), ["p1"]);
    }

    #[test]
    fn several_participants_leave_at_their_own_deadlines() {
        let start = Instant::now();
        let mut presence = presence();
        for id in ["a", "b", "c"] {
            joined(&mut presence, id, true, start);
        }
        joined(&mut presence, "no-reconnection", false, start);
        presence.socket_closed("a", start);
        presence.socket_closed("b", start + Duration::from_secs(10));
        presence.socket_closed("c", start + Duration::from_secs(20));
        assert_eq!(
            presence.socket_closed("no-reconnection", start),
            Closed::Leave { participant: "no-reconnection".into() }
        );
        presence.relogin("c2", "c").unwrap();
        assert_eq!(departed(presence.expired(start + WAIT)), ["a"]);
        assert!(presence.expired(start + WAIT + Duration::from_secs(9)).is_empty());
        assert_eq!(departed(presence.expired(start + WAIT + Duration::from_secs(10))), ["b"]);
        assert!(presence.expired(start + WAIT * 100).is_empty(), "c came back");
        assert!(presence.session("c").is_some());
    }

    #[test]
    fn the_relogin_buffer_keeps_a_window_of_the_connection_and_numbers_from_one_again() {
        let start = Instant::now();
        let mut presence = presence();
        joined(&mut presence, "p1", true, start);
        for i in 0..5u64 {
            presence.send("p1", "text", &Arc::new(json!(i)), start + Duration::from_secs(i * 20));
        }
        presence.socket_closed("p1", start + Duration::from_secs(80));
        let back = presence.relogin("s2", "p1").unwrap();
        let seqs: Vec<u64> = back.buffer.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!(seqs, [3, 4, 5], "older than 46 s before the last send are gone");
        assert!(back.missed.is_empty());
        presence.send("p1", "text", &Arc::new(json!("again")), start + Duration::from_secs(90));
        presence.socket_closed("s2", start + Duration::from_secs(91));
        let back = presence.relogin("s3", "p1").unwrap();
        assert_eq!(back.buffer, [(1, "text", Arc::new(json!("again")))], "a new connection counts from 1");
    }

    #[test]
    fn a_notification_sent_to_many_is_kept_once_for_all_their_buffers() {
        let start = Instant::now();
        let mut presence = presence();
        let ids: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        for id in &ids {
            joined(&mut presence, id, true, start);
        }
        presence.socket_closed("p7", start);
        let data = Arc::new(json!({"action": "join", "data": {"id": "newcomer", "user": "u", "role": "presenter"}}));
        for id in &ids {
            presence.send(id, "participant", &data, start);
        }
        // Every buffer (and the held list of the one away) points at the one value.
        assert_eq!(Arc::strong_count(&data), 1 + ids.len() + 1);
        let back = presence.relogin("s7", "p7").unwrap();
        assert!(Arc::ptr_eq(&back.missed[0].2, &data) && Arc::ptr_eq(&back.buffer[0].2, &data));
    }

    #[test]
    fn relogin_refusals_follow_owt() {
        let start = Instant::now();
        let mut presence = presence();
        joined(&mut presence, "p1", true, start);
        joined(&mut presence, "p2", true, start);
        joined(&mut presence, "plain", false, start);
        assert_eq!(presence.relogin("p2", "p1").unwrap_err(), IN_SERVICE);
        assert_eq!(presence.participant_of("p2"), Some("p2"), "the refused socket keeps its participant");
        assert_eq!(presence.relogin("new", "gone").unwrap_err(), "Client does NOT exist");
        assert_eq!(presence.relogin("new", "plain").unwrap_err(), "Reconnection is not allowed");
        presence.logged_in("p3", "p3", "room", true, false);
        assert_eq!(presence.relogin("new", "p3").unwrap_err(), "Participant ID is not matched", "no ticket issued");
        assert!(!presence.is_in_service("new"));
        // A relogin may also take over a participant whose old socket is still open.
        presence.relogin("new", "p1").unwrap();
        assert!(!presence.is_in_service("p1"));
        assert_eq!(presence.socket_closed("p1", start), Closed::Nobody, "the old socket no longer counts");
        assert!(presence.session("p1").is_some());
    }

    #[test]
    fn sockets_must_be_in_service_by_the_login_deadline() {
        let start = Instant::now();
        let mut presence = presence();
        presence.socket_opened("idle", start);
        let busy_deadline = presence.socket_opened("busy", start + Duration::from_secs(1));
        assert_eq!(busy_deadline, start + Duration::from_secs(1) + LOGIN);
        presence.logged_in("busy", "busy", "room", false, false);
        presence.socket_opened("closed", start);
        presence.socket_closed("closed", start);
        presence.socket_opened("out", start);
        presence.logged_in("out", "out", "room", false, false);
        presence.remove("out");
        assert!(presence.login_expired(start + LOGIN - Duration::from_millis(1)).is_empty());
        assert_eq!(presence.login_expired(start + LOGIN), ["idle", "out"], "logged out again counts as idle (OWT)");
        assert!(
            presence.login_expired(start + LOGIN * 2).is_empty(),
            "busy is in service; each socket is checked once"
        );
    }
}

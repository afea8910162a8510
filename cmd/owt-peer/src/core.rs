//! The sans-IO heart of owt-peer: who is connected, who is logged in as which user id, and what
//! to answer to each `authentication` and `owt-message` event (spec/owt-compat.md §5). It takes
//! parsed input and the current time as arguments and returns decisions; it never touches a
//! socket, a clock or a random source, so it is tested deterministically.
//!
//! Generic over `K` (connection key: the Socket.IO socket id in the server) and `H` (a handle
//! to the connection: the socket itself in the server, a plain number in tests).

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Error codes of the OWT P2P client (`src/sdk/p2p/error.js`) that owt-peer answers with.
pub mod codes {
    /// `P2P_CONN_SERVER_BUSY`: rate limit exceeded, too many clients, or the target's queue
    /// is full.
    pub const SERVER_BUSY: &str = "2102";
    /// `P2P_CONN_SERVER_UNAVAILABLE`: the server is shutting down.
    pub const SERVER_UNAVAILABLE: &str = "2101";
    /// `P2P_CONN_CLIENT_UNKNOWN`: malformed event (payload not an object, `to` or `data` not
    /// a string) or `data` larger than `max_message_bytes`.
    pub const CLIENT_ERROR: &str = "2110";
    /// `P2P_CONN_AUTH_UNKNOWN`: `owt-message` before `authentication`. The reference server
    /// acks this one as the number 2120 (not a string) and disconnects.
    pub const NOT_AUTHENTICATED: u16 = 2120;
    /// `P2P_CONN_AUTH_FAILED`: `authentication` with a token that is not a string, too long,
    /// or a payload that is not an object.
    pub const AUTH_FAILED: &str = "2121";
    /// `P2P_MESSAGING_TARGET_UNREACHABLE`: the target user is not online.
    pub const TARGET_UNREACHABLE: &str = "2201";
}

/// Longest user id (token) accepted, in bytes.
pub const MAX_UID_BYTES: usize = 1024;

/// The limits the core enforces; a reload may replace them.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_message_bytes: usize,
    /// Events per second per connection; 0: unlimited. Bursts of twice as many pass.
    pub messages_per_second: u32,
    pub max_clients: usize,
    /// Unauthenticated connections older than this are closed; `None`: never.
    pub login_timeout: Option<Duration>,
}

impl Limits {
    pub fn from_config(peer: &owt_config::PeerSection) -> Limits {
        Limits {
            max_message_bytes: peer.max_message_bytes,
            messages_per_second: peer.messages_per_second,
            max_clients: peer.max_clients,
            login_timeout: (peer.login_timeout > 0).then(|| Duration::from_secs(peer.login_timeout)),
        }
    }
}

/// One field of an incoming JSON object, typed only as far as the server cares.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field {
    #[default]
    Absent,
    Null,
    Str(String),
    /// Present but neither a string nor null.
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Field, E> {
                Ok(Field::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Field, E> {
                Ok(Field::Str(v))
            }
            fn visit_unit<E>(self) -> Result<Field, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Field, E> {
                Ok(Field::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// Payload of `authentication`: `{token}`. Other fields are ignored.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub struct AuthIn {
    #[serde(default)]
    pub token: Field,
}

/// Payload of `owt-message`: `{to, data}`. Other fields are ignored (and not forwarded).
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub struct MessageIn {
    #[serde(default)]
    pub to: Field,
    #[serde(default)]
    pub data: Field,
}

impl MessageIn {
    /// Parses an `owt-message` payload (None: not a JSON object). A string `data` is kept as
    /// it arrived, still escaped and without its quotes: it is relayed as it is (see
    /// [`relayed_message`]) instead of being unescaped and escaped again, which was the largest
    /// cost of a relay after the kernel's; its size against `max_message_bytes` is therefore its
    /// size on the wire.
    pub fn parse(json: &str) -> Option<MessageIn> {
        #[derive(serde::Deserialize)]
        struct Raw<'a> {
            #[serde(default)]
            to: Field,
            #[serde(borrow, default)]
            data: Option<&'a serde_json::value::RawValue>,
        }
        let raw: Raw = serde_json::from_str(json).ok()?;
        let data = match raw.data.map(|data| data.get()) {
            None => Field::Null,
            Some(text) if text.len() >= 2 && text.starts_with('"') => Field::Str(text[1..text.len() - 1].to_string()),
            Some(_) => Field::Other,
        };
        Some(MessageIn { to: raw.to, data })
    }
}

/// What is forwarded to the target: `owt-message {from, data}`, `data` as [`MessageIn::parse`]
/// kept it (escaped JSON string content).
pub fn relayed_message(from: &str, escaped_data: &str) -> String {
    let from = serde_json::to_string(from).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(from.len() + escaped_data.len() + 20);
    out.push_str("{\"from\":");
    out.push_str(&from);
    out.push_str(",\"data\":\"");
    out.push_str(escaped_data);
    out.push_str("\"}");
    out
}

/// Why an event was refused; each maps to the ack the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Over the per-connection rate; `first` is true the first time for this connection.
    RateLimited { first: bool },
    /// `owt-message` before `authentication`; the connection is closed after the ack.
    NotAuthenticated,
    /// Payload not an object, `to` or `data` not a string.
    Malformed,
    /// `data` longer than `max_message_bytes`.
    TooLarge,
    /// The target user is not online.
    Unreachable,
    /// The target's outgoing queue is full.
    TargetBusy,
    /// `authentication` with a token that is not a string or too long; the connection is
    /// closed after the ack.
    BadToken,
    /// `max_clients` connections are open.
    Full,
    /// The server is shutting down.
    Closing,
}

impl Refusal {
    /// Label for logs and the `reason` label of the refused-messages metric.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::NotAuthenticated => "not_authenticated",
            Refusal::Malformed => "malformed",
            Refusal::TooLarge => "too_large",
            Refusal::Unreachable => "unreachable",
            Refusal::TargetBusy => "target_busy",
            Refusal::BadToken => "bad_token",
            Refusal::Full => "full",
            Refusal::Closing => "closing",
        }
    }

    /// The error code sent back: a JSON string, except 2120 which the reference server sends
    /// as a number.
    pub fn code(self) -> serde_json::Value {
        match self {
            Refusal::RateLimited { .. } | Refusal::TargetBusy | Refusal::Full => codes::SERVER_BUSY.into(),
            Refusal::NotAuthenticated => codes::NOT_AUTHENTICATED.into(),
            Refusal::Malformed | Refusal::TooLarge => codes::CLIENT_ERROR.into(),
            Refusal::Unreachable => codes::TARGET_UNREACHABLE.into(),
            Refusal::BadToken => codes::AUTH_FAILED.into(),
            Refusal::Closing => codes::SERVER_UNAVAILABLE.into(),
        }
    }

    /// True when the server closes the connection after answering.
    pub fn disconnects(self) -> bool {
        matches!(self, Refusal::NotAuthenticated | Refusal::BadToken | Refusal::Full | Refusal::Closing)
    }

    const ALL: [Refusal; 9] = [
        Refusal::RateLimited { first: false },
        Refusal::NotAuthenticated,
        Refusal::Malformed,
        Refusal::TooLarge,
        Refusal::Unreachable,
        Refusal::TargetBusy,
        Refusal::BadToken,
        Refusal::Full,
        Refusal::Closing,
    ];

    fn index(self) -> usize {
        match self {
            Refusal::RateLimited { .. } => 0,
            Refusal::NotAuthenticated => 1,
            Refusal::Malformed => 2,
            Refusal::TooLarge => 3,
            Refusal::Unreachable => 4,
            Refusal::TargetBusy => 5,
            Refusal::BadToken => 6,
            Refusal::Full => 7,
            Refusal::Closing => 8,
        }
    }
}

/// A token bucket: `rate` tokens per second, holding at most `2 * rate`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: 2.0 * f64::from(rate), last: now }
    }

    /// Takes one token if there is one. `rate` 0 means unlimited.
    pub fn take(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * rate).min(2.0 * rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Conn<H> {
    handle: H,
    uid: Option<Arc<str>>,
    since: Instant,
    bucket: TokenBucket,
    /// Events dropped by the rate limiter on this connection.
    dropped: u64,
}

/// A successful login.
#[derive(Debug, PartialEq)]
pub struct Login<H> {
    pub uid: Arc<str>,
    /// The connection previously logged in with this uid: the server sends it
    /// `server-disconnect` and closes it.
    pub replaced: Option<H>,
}

/// A relay decision: forward to `target` as coming from `from`.
#[derive(Debug, PartialEq)]
pub struct Relay<H> {
    pub target: H,
    pub from: Arc<str>,
}

/// What a closed connection leaves behind, for logs.
#[derive(Debug, PartialEq)]
pub struct Departure {
    pub uid: Option<Arc<str>>,
    /// Events the rate limiter dropped on it.
    pub dropped: u64,
}

/// Counters and gauges, for the periodic log line and the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub connections: usize,
    pub users: usize,
    pub logins: u64,
    pub replaced_logins: u64,
    pub relayed: u64,
    refused: [u64; 9],
}

impl Stats {
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()]
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, values: &[(String, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in values {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "owt_peer_connections",
            "gauge",
            "Socket.IO clients connected.",
            &[(String::new(), self.connections as u64)],
        );
        metric("owt_peer_users", "gauge", "Authenticated users online.", &[(String::new(), self.users as u64)]);
        metric("owt_peer_logins_total", "counter", "Successful authentications.", &[(String::new(), self.logins)]);
        metric(
            "owt_peer_replaced_logins_total",
            "counter",
            "Connections closed because the same user logged in again.",
            &[(String::new(), self.replaced_logins)],
        );
        metric(
            "owt_peer_messages_relayed_total",
            "counter",
            "owt-message events forwarded to their target.",
            &[(String::new(), self.relayed)],
        );
        let refused: Vec<(String, u64)> = Refusal::ALL
            .iter()
            .map(|reason| (format!("{{reason=\"{}\"}}", reason.name()), self.refused(*reason)))
            .collect();
        metric("owt_peer_messages_refused_total", "counter", "Events answered with an error code.", &refused);
        out
    }

    /// One line for the log and `systemctl status`.
    pub fn summary(&self) -> String {
        format!(
            "{} users, {} connections, {} messages relayed, {} refused",
            self.users,
            self.connections,
            self.relayed,
            self.refused_total()
        )
    }
}

/// Connections, logins and the relay table.
#[derive(Debug)]
pub struct Registry<K, H> {
    limits: Limits,
    conns: HashMap<K, Conn<H>>,
    users: HashMap<Arc<str>, K>,
    stats: Stats,
    closing: bool,
}

impl<K: Copy + Eq + Hash, H: Clone> Registry<K, H> {
    pub fn new(limits: Limits) -> Registry<K, H> {
        Registry { limits, conns: HashMap::new(), users: HashMap::new(), stats: Stats::default(), closing: false }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies new limits; existing connections keep their buckets.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn stats(&self) -> Stats {
        Stats { connections: self.conns.len(), users: self.users.len(), ..self.stats.clone() }
    }

    /// Shutdown: refuses new connections from now on and returns every connection's handle
    /// (to send them `server-disconnect`).
    pub fn shut_down(&mut self) -> Vec<H> {
        self.closing = true;
        self.conns.values().map(|conn| conn.handle.clone()).collect()
    }

    fn refuse<T>(&mut self, reason: Refusal) -> Result<T, Refusal> {
        self.stats.refused[reason.index()] += 1;
        Err(reason)
    }

    /// Whether one more connection may join (checked before it is accepted).
    pub fn admit(&mut self) -> Result<(), Refusal> {
        if self.closing {
            return self.refuse(Refusal::Closing);
        }
        if self.conns.len() >= self.limits.max_clients {
            return self.refuse(Refusal::Full);
        }
        Ok(())
    }

    /// A connection joined the namespace.
    pub fn connected(&mut self, key: K, handle: H, now: Instant) {
        let bucket = TokenBucket::new(self.limits.messages_per_second, now);
        self.conns.insert(key, Conn { handle, uid: None, since: now, bucket, dropped: 0 });
    }

    /// Spends one token of the connection's bucket.
    fn spend(&mut self, key: K, now: Instant) -> Result<(), Refusal> {
        let rate = self.limits.messages_per_second;
        let Some(conn) = self.conns.get_mut(&key) else { return Ok(()) };
        if conn.bucket.take(rate, now) {
            return Ok(());
        }
        conn.dropped += 1;
        let first = conn.dropped == 1;
        self.refuse(Refusal::RateLimited { first })
    }

    /// Any event other than `authentication` and `owt-message` (counted against the rate).
    pub fn other_event(&mut self, key: K, now: Instant) -> Result<(), Refusal> {
        self.spend(key, now)
    }

    /// `authentication {token}`. `anonymous` is the random part of the id given to a client
    /// without a token. `payload` is `None` when the payload was not an object.
    pub fn authenticate(
        &mut self,
        key: K,
        payload: Option<&AuthIn>,
        anonymous: u128,
        now: Instant,
    ) -> Result<Login<H>, Refusal> {
        self.spend(key, now)?;
        let uid: Arc<str> = match payload.map(|p| &p.token) {
            None | Some(Field::Other) => return self.refuse(Refusal::BadToken),
            Some(Field::Str(token)) if token.len() > MAX_UID_BYTES => return self.refuse(Refusal::BadToken),
            Some(Field::Str(token)) if !token.is_empty() => token.as_str().into(),
            Some(Field::Absent | Field::Null | Field::Str(_)) => format!("{anonymous:032x}@anonymous").into(),
        };
        let Some(conn) = self.conns.get_mut(&key) else { return self.refuse(Refusal::NotAuthenticated) };
        let previous_uid = conn.uid.replace(uid.clone());
        if let Some(previous) = previous_uid {
            if self.users.get(&previous) == Some(&key) {
                self.users.remove(&previous);
            }
        }
        let replaced = match self.users.insert(uid.clone(), key) {
            Some(old) if old != key => self.conns.get_mut(&old).map(|old_conn| {
                old_conn.uid = None;
                old_conn.handle.clone()
            }),
            _ => None,
        };
        self.stats.logins += 1;
        if replaced.is_some() {
            self.stats.replaced_logins += 1;
        }
        Ok(Login { uid, replaced })
    }

    /// `owt-message {to, data}`. `payload` is `None` when the payload was not an object.
    pub fn relay(&mut self, key: K, payload: Option<&MessageIn>, now: Instant) -> Result<Relay<H>, Refusal> {
        self.spend(key, now)?;
        let Some(from) = self.conns.get(&key).and_then(|conn| conn.uid.clone()) else {
            return self.refuse(Refusal::NotAuthenticated);
        };
        let (to, data) = match payload {
            Some(MessageIn { to: Field::Str(to), data: Field::Str(data) }) => (to, data),
            _ => return self.refuse(Refusal::Malformed),
        };
        if data.len() > self.limits.max_message_bytes {
            return self.refuse(Refusal::TooLarge);
        }
        let Some(target) = self.users.get(to.as_str()).and_then(|k| self.conns.get(k)) else {
            return self.refuse(Refusal::Unreachable);
        };
        self.stats.relayed += 1;
        Ok(Relay { target: target.handle.clone(), from })
    }

    /// The relay decided by [`Registry::relay`] could not be delivered after all (the target
    /// closed meanwhile, or its queue is full): fixes the counters.
    pub fn undeliverable(&mut self, reason: Refusal) {
        self.stats.relayed = self.stats.relayed.saturating_sub(1);
        self.stats.refused[reason.index()] += 1;
    }

    /// A connection left; its user id goes offline unless another connection took it over.
    pub fn disconnected(&mut self, key: K) -> Option<Departure> {
        let conn = self.conns.remove(&key)?;
        if let Some(uid) = &conn.uid {
            if self.users.get(uid) == Some(&key) {
                self.users.remove(uid);
            }
        }
        Some(Departure { uid: conn.uid, dropped: conn.dropped })
    }

    /// Connections that did not authenticate within the login timeout; the caller closes
    /// them (and reports them through [`Registry::disconnected`] when they are gone).
    pub fn overdue(&self, now: Instant) -> Vec<H> {
        let Some(timeout) = self.limits.login_timeout else { return Vec::new() };
        self.conns
            .values()
            .filter(|conn| conn.uid.is_none() && now.saturating_duration_since(conn.since) >= timeout)
            .map(|conn| conn.handle.clone())
            .collect()
    }
}

/// Browser origins allowed by `cors_origins`.
#[derive(Debug, Clone, PartialEq)]
pub struct Origins {
    any: bool,
    list: Vec<String>,
}

impl Origins {
    pub fn new(configured: &[String]) -> Origins {
        Origins {
            any: configured.iter().any(|o| o == "*"),
            list: configured.iter().map(|o| o.to_ascii_lowercase()).collect(),
        }
    }

    /// Requests without an `Origin` header come from native clients and are allowed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => self.any || self.list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_message_bytes: 16,
            messages_per_second: 10,
            max_clients: 3,
            login_timeout: Some(Duration::from_secs(5)),
        }
    }

    fn auth(token: &str) -> AuthIn {
        AuthIn { token: Field::Str(token.into()) }
    }

    fn msg(to: &str, data: &str) -> MessageIn {
        MessageIn { to: Field::Str(to.into()), data: Field::Str(data.into()) }
    }

    fn registry(now: Instant) -> Registry<u32, u32> {
        let mut r = Registry::new(limits());
        for key in 1..=3 {
            r.admit().unwrap();
            r.connected(key, key * 10, now);
        }
        r
    }

    #[test]
    fn login_and_relay_both_ways() {
        let t = Instant::now();
        let mut r = registry(t);
        assert_eq!(
            r.authenticate(1, Some(&auth("alice")), 0, t).unwrap(),
            Login { uid: "alice".into(), replaced: None }
        );
        assert_eq!(r.authenticate(2, Some(&auth("bob")), 0, t).unwrap().uid.as_ref(), "bob");
        assert_eq!(r.relay(1, Some(&msg("bob", "hi")), t).unwrap(), Relay { target: 20, from: "alice".into() });
        assert_eq!(r.relay(2, Some(&msg("alice", "yo")), t).unwrap(), Relay { target: 10, from: "bob".into() });
        let stats = r.stats();
        assert_eq!((stats.users, stats.connections, stats.relayed, stats.logins), (2, 3, 2, 2));
    }

    #[test]
    fn offline_target_and_unauthenticated_sender() {
        let t = Instant::now();
        let mut r = registry(t);
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap();
        assert_eq!(r.relay(1, Some(&msg("carol", "x")), t), Err(Refusal::Unreachable));
        assert_eq!(r.relay(3, Some(&msg("alice", "x")), t), Err(Refusal::NotAuthenticated));
        assert_eq!(Refusal::Unreachable.code(), serde_json::json!("2201"));
        assert_eq!(Refusal::NotAuthenticated.code(), serde_json::json!(2120));
        assert!(Refusal::NotAuthenticated.disconnects());
        r.disconnected(1);
        r.authenticate(2, Some(&auth("bob")), 0, t).unwrap();
        assert_eq!(r.relay(2, Some(&msg("alice", "x")), t), Err(Refusal::Unreachable));
        assert_eq!(r.stats().refused(Refusal::Unreachable), 2);
    }

    #[test]
    fn anonymous_and_bad_tokens() {
        let t = Instant::now();
        let mut r = registry(t);
        let login = r.authenticate(1, Some(&AuthIn { token: Field::Absent }), 0xabc, t).unwrap();
        assert_eq!(login.uid.as_ref(), "00000000000000000000000000000abc@anonymous");
        let login = r.authenticate(2, Some(&AuthIn { token: Field::Str(String::new()) }), 1, t).unwrap();
        assert!(login.uid.ends_with("@anonymous") && login.uid.len() == 32 + 10);
        assert_eq!(r.authenticate(3, Some(&AuthIn { token: Field::Other }), 0, t), Err(Refusal::BadToken));
        assert_eq!(r.authenticate(3, None, 0, t), Err(Refusal::BadToken));
        assert_eq!(r.authenticate(3, Some(&auth(&"x".repeat(MAX_UID_BYTES + 1))), 0, t), Err(Refusal::BadToken));
        assert!(Refusal::BadToken.disconnects());
    }

    #[test]
    fn second_login_replaces_the_first_connection() {
        let t = Instant::now();
        let mut r = registry(t);
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap();
        r.authenticate(3, Some(&auth("bob")), 0, t).unwrap();
        let login = r.authenticate(2, Some(&auth("alice")), 0, t).unwrap();
        assert_eq!(login.replaced, Some(10));
        assert_eq!(r.stats().replaced_logins, 1);
        // The old connection closing later must not take the new login offline.
        assert_eq!(r.disconnected(1), Some(Departure { uid: None, dropped: 0 }));
        assert_eq!(r.relay(3, Some(&msg("alice", "x")), t).unwrap().target, 20);
        // Logging in again with the same id on the same connection replaces nothing.
        assert_eq!(r.authenticate(2, Some(&auth("alice")), 0, t).unwrap().replaced, None);
        // Changing id on one connection frees the old id.
        r.authenticate(2, Some(&auth("alice2")), 0, t).unwrap();
        assert_eq!(r.relay(3, Some(&msg("alice", "x")), t), Err(Refusal::Unreachable));
        assert_eq!(r.stats().users, 2);
    }

    #[test]
    fn malformed_and_oversized_messages() {
        let t = Instant::now();
        let mut r = registry(t);
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap();
        r.authenticate(2, Some(&auth("bob")), 0, t).unwrap();
        assert_eq!(r.relay(1, None, t), Err(Refusal::Malformed));
        let cases = [
            MessageIn { to: Field::Absent, data: Field::Str("x".into()) },
            MessageIn { to: Field::Other, data: Field::Str("x".into()) },
            MessageIn { to: Field::Str("bob".into()), data: Field::Other },
            MessageIn { to: Field::Str("bob".into()), data: Field::Null },
        ];
        for case in &cases {
            assert_eq!(r.relay(1, Some(case), t), Err(Refusal::Malformed), "{case:?}");
        }
        assert_eq!(r.relay(1, Some(&msg("bob", &"x".repeat(17))), t), Err(Refusal::TooLarge));
        assert!(r.relay(1, Some(&msg("bob", &"x".repeat(16))), t).is_ok());
        assert_eq!(Refusal::Malformed.code(), serde_json::json!("2110"));
    }

    #[test]
    fn payload_parsing_types_each_field() {
        let parsed: MessageIn = serde_json::from_str(r#"{"to":"bob","data":"x","extra":[1,{"a":2}]}"#).unwrap();
        assert_eq!(parsed, msg("bob", "x"));
        let parsed: MessageIn = serde_json::from_str(r#"{"to":5,"data":{"a":[1]}}"#).unwrap();
        assert_eq!(parsed, MessageIn { to: Field::Other, data: Field::Other });
        let parsed: MessageIn = serde_json::from_str(r#"{"data":null}"#).unwrap();
        assert_eq!(parsed, MessageIn { to: Field::Absent, data: Field::Null });
        assert!(serde_json::from_str::<MessageIn>(r#""a string""#).is_err());
        assert!(serde_json::from_str::<MessageIn>("42").is_err());
        let parsed: AuthIn = serde_json::from_str(r#"{"token":true}"#).unwrap();
        assert_eq!(parsed.token, Field::Other);
        // Relayed payloads keep `data` escaped as it came, and come out as the same JSON string.
        let parsed = MessageIn::parse(r#"{"to":"bob","data":"say \"hi\"\n\u00e9","x":[1]}"#).unwrap();
        assert_eq!(parsed, msg("bob", r#"say \"hi\"\n\u00e9"#));
        let Field::Str(data) = &parsed.data else { panic!() };
        let out: serde_json::Value = serde_json::from_str(&relayed_message("a\"b", data)).unwrap();
        assert_eq!(out, serde_json::json!({"from": "a\"b", "data": "say \"hi\"\n\u{e9}"}));
        assert_eq!(
            MessageIn::parse(r#"{"to":5,"data":{"a":"x"}}"#).unwrap(),
            MessageIn { to: Field::Other, data: Field::Other }
        );
        assert_eq!(MessageIn::parse(r#"{"to":"b","data":null}"#).unwrap().data, Field::Null);
        assert_eq!(MessageIn::parse(r#"{"to":"b"}"#).unwrap().data, Field::Null);
        for hostile in [r#""a string""#, "42", "{", r#"{"data":"unterminated}"#, ""] {
            assert!(MessageIn::parse(hostile).is_none(), "{hostile}");
        }
    }

    #[test]
    fn flood_is_limited_per_connection_and_refills() {
        let t = Instant::now();
        let mut r = registry(t);
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap(); // 1 token of 20
        r.authenticate(2, Some(&auth("bob")), 0, t).unwrap();
        let mut passed = 0;
        let mut firsts = 0;
        for _ in 0..100 {
            match r.relay(1, Some(&msg("bob", "x")), t) {
                Ok(_) => passed += 1,
                Err(Refusal::RateLimited { first }) => firsts += usize::from(first),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!((passed, firsts), (19, 1));
        // bob is not affected.
        assert!(r.relay(2, Some(&msg("alice", "x")), t).is_ok());
        // Half a second later 5 more tokens.
        let later = t + Duration::from_millis(500);
        let passed = (0..10).filter(|_| r.relay(1, Some(&msg("bob", "x")), later).is_ok()).count();
        assert_eq!(passed, 5);
        assert_eq!(r.stats().refused(Refusal::RateLimited { first: false }), 81 + 5);
        assert_eq!(r.disconnected(1).unwrap().dropped, 86);
        // Unknown events count too; rate 0 means unlimited.
        r.set_limits(Limits { messages_per_second: 0, ..limits() });
        assert!((0..1000).all(|_| r.other_event(2, later).is_ok()));
    }

    #[test]
    fn bucket_never_exceeds_twice_the_rate() {
        let t = Instant::now();
        let mut bucket = TokenBucket::new(3, t);
        let later = t + Duration::from_secs(3600);
        let passed = (0..100).filter(|_| bucket.take(3, later)).count();
        assert_eq!(passed, 6);
        // A clock going backwards gives nothing and takes nothing.
        assert!(!bucket.take(3, t));
    }

    #[test]
    fn max_clients_and_login_deadline() {
        let t = Instant::now();
        let mut r = registry(t);
        assert_eq!(r.admit(), Err(Refusal::Full));
        assert!(Refusal::Full.disconnects());
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap();
        assert!(r.overdue(t + Duration::from_secs(4)).is_empty());
        let mut overdue = r.overdue(t + Duration::from_secs(5));
        overdue.sort();
        assert_eq!(overdue, vec![20, 30]);
        r.disconnected(2);
        assert!(r.admit().is_ok());
        r.set_limits(Limits { login_timeout: None, ..limits() });
        assert!(r.overdue(t + Duration::from_secs(3600)).is_empty());
        let mut all = r.shut_down();
        all.sort();
        assert_eq!(all, vec![10, 30]);
        assert_eq!(r.admit(), Err(Refusal::Closing));
        assert_eq!(Refusal::Closing.code(), serde_json::json!("2101"));
    }

    #[test]
    fn undeliverable_relay_moves_the_count() {
        let t = Instant::now();
        let mut r = registry(t);
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap();
        r.authenticate(2, Some(&auth("bob")), 0, t).unwrap();
        r.relay(1, Some(&msg("bob", "x")), t).unwrap();
        r.undeliverable(Refusal::TargetBusy);
        let stats = r.stats();
        assert_eq!((stats.relayed, stats.refused(Refusal::TargetBusy)), (0, 1));
    }

    #[test]
    fn prometheus_text_lists_every_metric() {
        let t = Instant::now();
        let mut r = registry(t);
        r.authenticate(1, Some(&auth("alice")), 0, t).unwrap();
        let text = r.stats().prometheus();
        assert!(text.contains("# TYPE owt_peer_users gauge\nowt_peer_users 1\n"), "{text}");
        assert!(text.contains("owt_peer_connections 3\n"), "{text}");
        assert!(text.contains("owt_peer_messages_relayed_total 0\n"), "{text}");
        assert!(text.contains("owt_peer_messages_refused_total{reason=\"rate_limited\"} 0\n"), "{text}");
        assert!(r.stats().summary().starts_with("1 users, 3 connections"));
    }

    #[test]
    fn origins() {
        let any = Origins::new(&["*".into()]);
        assert!(any.allows(Some("https://evil.example")) && any.allows(None));
        let some = Origins::new(&["https://app.example:8443".into()]);
        assert!(some.allows(Some("https://APP.example:8443")));
        assert!(!some.allows(Some("https://app.example")));
        assert!(some.allows(None));
        assert!(!Origins::new(&[]).allows(Some("http://localhost")));
    }
}

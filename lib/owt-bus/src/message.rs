//! The bus wire format: one ZeroMQ frame holding one JSON envelope
//! `{version, id, reply_to?, kind, method?, params?, ok?, result?, error?}`.
//!
//! - `request`: `method` and `params`; the receiver answers with exactly one `reply`.
//! - `reply`: `reply_to` (the request's `id`), `ok`, then `result` when ok or `error` when not.
//! - `event`: `method` and `params`; one-way.
//!
//! `id`s are unique per sender. Messages above [`MAX_MESSAGE_BYTES`] are refused on both
//! sides. The messages of the registration protocol are typed here too: [`WorkerInfo`]
//! (`register`), [`Heartbeat`] (`heartbeat`, answered `"ok"` or `"whoareyou"`) and
//! [`RegisterReply`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Envelope version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest message, in bytes, either side accepts or sends.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Method names of the registration protocol.
pub mod methods {
    /// worker → portal request, params [`super::WorkerInfo`], result [`super::RegisterReply`].
    pub const REGISTER: &str = "register";
    /// worker → portal request, params [`super::Heartbeat`], result [`super::HEARTBEAT_OK`] or
    /// [`super::WHOAREYOU`].
    pub const HEARTBEAT: &str = "heartbeat";
    /// worker → portal event: the worker is stopping; its work is handled as if it died.
    pub const QUIT: &str = "quit";
    /// portal → worker request: `{kind, node_id, implemented, uptime_s}`.
    pub const STATUS: &str = "status";
}

/// Heartbeat result: the portal knows the worker.
pub const HEARTBEAT_OK: &str = "ok";
/// Heartbeat result: the portal does not know the worker (it restarted, or declared the
/// worker dead); the worker registers again.
pub const WHOAREYOU: &str = "whoareyou";

/// Error codes carried in [`RemoteError::code`].
pub mod codes {
    pub const UNKNOWN_METHOD: &str = "unknown-method";
    pub const BAD_PARAMS: &str = "bad-params";
    pub const NOT_REGISTERED: &str = "not-registered";
    pub const UNSUPPORTED_VERSION: &str = "unsupported-version";
    pub const NOT_IMPLEMENTED: &str = "not-implemented";
    pub const NODE_ID_IN_USE: &str = "node-id-in-use";
    pub const FAILED: &str = "failed";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Request,
    Reply,
    Event,
}

/// The error half of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    pub code: String,
    pub message: String,
}

impl RemoteError {
    pub fn new(code: &str, message: impl Into<String>) -> RemoteError {
        RemoteError { code: code.into(), message: message.into() }
    }
}

/// The JSON object of every bus message, as on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RemoteError>,
}

/// A decoded, checked message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request { id: u64, method: String, params: Value },
    Reply { reply_to: u64, result: Result<Value, RemoteError> },
    Event { method: String, params: Value },
}

/// Why a frame is not a bus message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("not a JSON envelope: {0}")]
    Json(String),
    #[error("envelope version {0} is not supported (this build speaks {PROTOCOL_VERSION})")]
    Version(u32),
    #[error("{0}")]
    Shape(&'static str),
}

const MAX_METHOD_CHARS: usize = 64;

impl Message {
    /// Encodes with the sender's message id.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let envelope = match self {
            Message::Request { method, params, .. } => Envelope {
                version: PROTOCOL_VERSION,
                id,
                reply_to: None,
                kind: Kind::Request,
                method: Some(method.clone()),
                params: Some(params.clone()),
                ok: None,
                result: None,
                error: None,
            },
            Message::Reply { reply_to, result } => Envelope {
                version: PROTOCOL_VERSION,
                id,
                reply_to: Some(*reply_to),
                kind: Kind::Reply,
                method: None,
                params: None,
                ok: Some(result.is_ok()),
                result: result.as_ref().ok().cloned(),
                error: result.as_ref().err().cloned(),
            },
            Message::Event { method, params } => Envelope {
                version: PROTOCOL_VERSION,
                id,
                reply_to: None,
                kind: Kind::Event,
                method: Some(method.clone()),
                params: Some(params.clone()),
                ok: None,
                result: None,
                error: None,
            },
        };
        serde_json::to_vec(&envelope).expect("a JSON value always serializes")
    }

    /// Decodes and checks one frame. For a request whose envelope was readable but
    /// unacceptable, the request id comes back with the error so it can be answered.
    pub fn decode(frame: &[u8]) -> Result<Message, (Option<u64>, DecodeError)> {
        if frame.len() > MAX_MESSAGE_BYTES {
            return Err((None, DecodeError::TooLarge(frame.len())));
        }
        let envelope: Envelope =
            serde_json::from_slice(frame).map_err(|err| (None, DecodeError::Json(err.to_string())))?;
        let request_id = (envelope.kind == Kind::Request).then_some(envelope.id);
        let fail = |err: DecodeError| Err((request_id, err));
        if envelope.version != PROTOCOL_VERSION {
            return fail(DecodeError::Version(envelope.version));
        }
        let method = |method: Option<String>| match method {
            Some(m) if !m.is_empty() && m.len() <= MAX_METHOD_CHARS && m.chars().all(|c| c.is_ascii_graphic()) => Ok(m),
            Some(_) => Err(DecodeError::Shape("method must be 1 to 64 printable ASCII characters")),
            None => Err(DecodeError::Shape("a request or event needs a method")),
        };
        match envelope.kind {
            Kind::Request => match method(envelope.method) {
                Ok(method) => {
                    Ok(Message::Request { id: envelope.id, method, params: envelope.params.unwrap_or(Value::Null) })
                }
                Err(err) => fail(err),
            },
            Kind::Event => match method(envelope.method) {
                Ok(method) => Ok(Message::Event { method, params: envelope.params.unwrap_or(Value::Null) }),
                Err(err) => fail(err),
            },
            Kind::Reply => {
                let Some(reply_to) = envelope.reply_to else {
                    return fail(DecodeError::Shape("a reply needs reply_to"));
                };
                let result = match (envelope.ok, envelope.error) {
                    (Some(true), _) => Ok(envelope.result.unwrap_or(Value::Null)),
                    (Some(false), Some(error)) => Err(error),
                    (Some(false), None) => Err(RemoteError::new(codes::FAILED, "no error given")),
                    (None, _) => return fail(DecodeError::Shape("a reply needs ok")),
                };
                Ok(Message::Reply { reply_to, result })
            }
        }
    }
}

/// ISPs and regions a worker serves; empty lists serve every one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capacity {
    pub isp: Vec<String>,
    pub region: Vec<String>,
}

/// Parameters of `register`: who the worker is and what it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// `webrtc`, `mixer`, `record`, `stream`, `sip`, ...
    pub kind: String,
    pub node_id: String,
    #[serde(default)]
    pub capacity: Capacity,
    /// Not scheduled while its load is at or above this.
    pub max_load: f64,
    /// Where the worker's media is reached; may be empty.
    #[serde(default)]
    pub media_endpoint: String,
    /// The worker's software version.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub pid: u32,
}

impl WorkerInfo {
    /// Checks what a portal must not take on trust.
    pub fn check(&self) -> Result<(), String> {
        let word = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        };
        if !word(&self.kind, 32) {
            return Err(format!("kind {:?}: 1 to 32 letters, digits, '-', '_', '.', ':'", self.kind));
        }
        if !word(&self.node_id, 255) {
            return Err(format!("node_id {:?}: 1 to 255 letters, digits, '-', '_', '.', ':'", self.node_id));
        }
        if !(self.max_load > 0.0 && self.max_load <= 1.0) {
            return Err(format!("max_load {}: must be above 0 and at most 1", self.max_load));
        }
        for (name, list) in [("capacity.isp", &self.capacity.isp), ("capacity.region", &self.capacity.region)] {
            if list.len() > 64 || list.iter().any(|v| v.is_empty() || v.len() > 64) {
                return Err(format!("{name}: at most 64 entries of 1 to 64 characters"));
            }
        }
        for (name, value) in
            [("media_endpoint", &self.media_endpoint), ("version", &self.version), ("hostname", &self.hostname)]
        {
            if value.len() > 256 || value.chars().any(char::is_control) {
                return Err(format!("{name}: at most 256 characters, no control characters"));
            }
        }
        Ok(())
    }
}

/// Result of `register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterReply {
    /// How often the portal wants heartbeats.
    pub heartbeat_ms: u64,
}

/// Parameters of `heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// 0 (idle) to 1 (saturated).
    pub load: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        let messages = [
            Message::Request { id: 7, method: "status".into(), params: json!({"a": 1}) },
            Message::Reply { reply_to: 7, result: Ok(json!("ok")) },
            Message::Reply { reply_to: 8, result: Err(RemoteError::new(codes::BAD_PARAMS, "no")) },
            Message::Event { method: "quit".into(), params: Value::Null },
        ];
        for message in messages {
            let bytes = message.encode(7);
            assert_eq!(Message::decode(&bytes).unwrap(), message, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn wire_shape_is_the_documented_envelope() {
        let bytes = Message::Request { id: 1, method: "heartbeat".into(), params: json!({"load": 0.5}) }.encode(42);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({"version": 1, "id": 42, "kind": "request", "method": "heartbeat", "params": {"load": 0.5}})
        );
        let bytes = Message::Reply { reply_to: 42, result: Ok(json!("whoareyou")) }.encode(3);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({"version": 1, "id": 3, "reply_to": 42, "kind": "reply", "ok": true, "result": "whoareyou"})
        );
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(Message::decode(b"\xff\x00garbage"), Err((None, DecodeError::Json(_)))));
        assert!(matches!(Message::decode(b"[1,2]"), Err((None, DecodeError::Json(_)))));
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(Message::decode(&big), Err((None, DecodeError::TooLarge(_)))));
        let v2 = br#"{"version":2,"id":5,"kind":"request","method":"x"}"#;
        assert_eq!(Message::decode(v2), Err((Some(5), DecodeError::Version(2))));
        let no_method = br#"{"version":1,"id":6,"kind":"request"}"#;
        assert!(matches!(Message::decode(no_method), Err((Some(6), DecodeError::Shape(_)))));
        let bad_method = br#"{"version":1,"id":6,"kind":"event","method":"a b"}"#;
        assert!(matches!(Message::decode(bad_method), Err((None, DecodeError::Shape(_)))));
        let no_reply_to = br#"{"version":1,"id":6,"kind":"reply","ok":true}"#;
        assert!(matches!(Message::decode(no_reply_to), Err((None, DecodeError::Shape(_)))));
        let bad_kind = br#"{"version":1,"id":6,"kind":"shout"}"#;
        assert!(matches!(Message::decode(bad_kind), Err((None, DecodeError::Json(_)))));
    }

    #[test]
    fn worker_info_checks() {
        let mut info = WorkerInfo {
            kind: "webrtc".into(),
            node_id: "webrtc-host-1".into(),
            capacity: Capacity::default(),
            max_load: 0.85,
            media_endpoint: String::new(),
            version: "0.1.0".into(),
            hostname: "host".into(),
            pid: 1,
        };
        assert_eq!(info.check(), Ok(()));
        info.max_load = f64::NAN;
        assert!(info.check().is_err());
        info.max_load = 0.5;
        info.node_id = "has space".into();
        assert!(info.check().is_err());
        info.node_id = "ok".into();
        info.capacity.isp = vec![String::new()];
        assert!(info.check().is_err());
        let parsed: WorkerInfo =
            serde_json::from_value(json!({"kind": "mixer", "node_id": "m", "max_load": 0.9})).unwrap();
        assert_eq!(parsed.capacity, Capacity::default());
    }
}

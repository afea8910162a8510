//! The cryptographic conventions OWT clients depend on, sans-IO:
//! - MAuth, the HMAC-SHA256 `Authorization` header of the management REST API (spec §2.2),
//!   both verifying (portal) and signing (owtctl, tests, application servers written in Rust);
//! - [`ReplayGuard`], our addition on top of OWT: refuses stale timestamps and reused cnonces;
//! - conference tokens (spec §1.3): `base64(JSON{tokenId, host, secure, signature})`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};

/// The realm every official OWT client sends; its value is ignored when parsing.
pub const REALM: &str = "http://marte3.dit.upm.es";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Authorization header")]
    Missing,
    #[error("Authorization header is not MAuth")]
    NotMAuth,
    #[error("MAuth field {0} missing")]
    MissingField(&'static str),
    #[error("unsupported signature method {0:?}")]
    Method(String),
    #[error("unknown service")]
    UnknownService,
    #[error("bad signature")]
    BadSignature,
    #[error("timestamp {0} is not a number of milliseconds")]
    BadTimestamp(String),
    #[error("timestamp is {0} s away from the server clock (limit {1} s)")]
    ClockSkew(i64, i64),
    #[error("cnonce already used")]
    Replayed,
}

/// `base64(lowercase-hex(HMAC-SHA256(key, message)))`, OWT's signature encoding everywhere.
pub fn hmac_hex_base64(key: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    BASE64.encode(hex::encode(mac.finalize().into_bytes()))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed MAuth header. Field values are kept exactly as sent (username stays base64).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MAuthHeader {
    pub service_id: String,
    pub cnonce: String,
    pub timestamp: String,
    pub signature: String,
    pub signature_method: String,
    pub username: Option<String>,
    pub role: Option<String>,
}

impl MAuthHeader {
    /// Parses like OWT's mauthParser: split on `,`, then on `=`, with empty pieces restored as `=`
    /// (base64 padding), the `mauth_` prefix dropped and the realm ignored.
    pub fn parse(header: &str) -> Result<Self, AuthError> {
        let rest = header.strip_prefix("MAuth ").ok_or(AuthError::NotMAuth)?;
        let mut parsed = MAuthHeader::default();
        for part in rest.split(',') {
            let mut pieces = part.split('=');
            let key = pieces.next().unwrap_or_default();
            let value: String = pieces.map(|p| if p.is_empty() { "=" } else { p }).collect();
            match key.strip_prefix("mauth_").unwrap_or(key) {
                "serviceid" => parsed.service_id = value,
                "cnonce" => parsed.cnonce = value,
                "timestamp" => parsed.timestamp = value,
                "signature" => parsed.signature = value,
                "signature_method" => parsed.signature_method = value,
                "username" => parsed.username = Some(value),
                "role" => parsed.role = Some(value),
                _ => {}
            }
        }
        for (name, value) in [
            ("mauth_serviceid", &parsed.service_id),
            ("mauth_cnonce", &parsed.cnonce),
            ("mauth_timestamp", &parsed.timestamp),
            ("mauth_signature", &parsed.signature),
        ] {
            if value.is_empty() {
                return Err(AuthError::MissingField(name));
            }
        }
        if parsed.signature_method != "HMAC_SHA256" {
            return Err(AuthError::Method(parsed.signature_method));
        }
        Ok(parsed)
    }

    fn signed_text(&self) -> String {
        match (&self.username, &self.role) {
            (Some(user), Some(role)) => format!("{},{},{},{}", self.timestamp, self.cnonce, user, role),
            _ => format!("{},{}", self.timestamp, self.cnonce),
        }
    }

    /// Checks the signature against the service key (used as a UTF-8 string, as OWT does).
    pub fn verify(&self, service_key: &str) -> Result<(), AuthError> {
        if constant_time_eq(&hmac_hex_base64(service_key, &self.signed_text()), &self.signature) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    /// The user name a client put in `mauth_username` (base64 of UTF-8), decoded.
    pub fn decoded_username(&self) -> Option<String> {
        let raw = self.username.as_ref()?;
        String::from_utf8(BASE64.decode(raw).ok()?).ok()
    }
}

/// Builds the header value an official client sends, for a given time and cnonce.
pub fn sign_header(service_id: &str, service_key: &str, timestamp_ms: u64, cnonce: &str) -> String {
    let signature = hmac_hex_base64(service_key, &format!("{timestamp_ms},{cnonce}"));
    format!(
        "MAuth realm={REALM},mauth_signature_method=HMAC_SHA256,mauth_serviceid={service_id},\
         mauth_cnonce={cnonce},mauth_timestamp={timestamp_ms},mauth_signature={signature}"
    )
}

/// Like [`sign_header`] with a fresh random 16-hex-digit cnonce, as the JS REST client does.
pub fn sign_header_now(service_id: &str, service_key: &str, now_ms: u64) -> String {
    let cnonce = hex::encode(rand::random::<[u8; 8]>());
    sign_header(service_id, service_key, now_ms, &cnonce)
}

/// Remembers the cnonces of verified requests for the clock-skew window and refuses a
/// timestamp outside the window or a cnonce seen again inside it. Memory is bounded by the
/// request rate times the window; entries expire as time passes.
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: i64,
    seen: HashMap<(String, String), i64>,
    expiry: VecDeque<(i64, String, String)>,
}

impl ReplayGuard {
    pub fn new(max_clock_skew_secs: u64) -> Self {
        ReplayGuard { window_ms: max_clock_skew_secs as i64 * 1000, seen: HashMap::new(), expiry: VecDeque::new() }
    }

    /// Checks one already-verified request at server time `now_ms`.
    pub fn check(&mut self, now_ms: i64, header: &MAuthHeader) -> Result<(), AuthError> {
        let timestamp: i64 = header.timestamp.parse().map_err(|_| AuthError::BadTimestamp(header.timestamp.clone()))?;
        let skew = (now_ms as i128 - timestamp as i128).clamp(i64::MIN as i128 + 1, i64::MAX as i128) as i64;
        if skew.abs() > self.window_ms {
            return Err(AuthError::ClockSkew(skew / 1000, self.window_ms / 1000));
        }
        while let Some((at, _, _)) = self.expiry.front() {
            if *at > now_ms {
                break;
            }
            let (_, service, cnonce) = self.expiry.pop_front().expect("front exists");
            let key = (service, cnonce);
            if self.seen.get(&key).is_some_and(|until| *until <= now_ms) {
                self.seen.remove(&key);
            }
        }
        let key = (header.service_id.clone(), header.cnonce.clone());
        if self.seen.get(&key).is_some_and(|until| *until > now_ms) {
            return Err(AuthError::Replayed);
        }
        // A cnonce must stay remembered as long as its timestamp could still pass the skew check.
        let until = timestamp.saturating_add(self.window_ms + 1);
        self.seen.insert(key.clone(), until);
        self.expiry.push_back((until, key.0, key.1));
        Ok(())
    }

    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

/// The JSON a conference token encodes (spec §1.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub token_id: String,
    pub host: String,
    pub secure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_transport_url: Option<String>,
    pub signature: String,
}

impl Token {
    /// Signs `tokenId,host,webTransportUrl` (the JS literal `undefined` when absent).
    pub fn new(key: &str, token_id: &str, host: &str, secure: bool, web_transport_url: Option<&str>) -> Self {
        let signature = token_signature(key, token_id, host, web_transport_url);
        Token {
            token_id: token_id.into(),
            host: host.into(),
            secure,
            web_transport_url: web_transport_url.map(Into::into),
            signature,
        }
    }

    /// The string handed to clients: standard base64 of the JSON.
    pub fn encode(&self) -> String {
        BASE64.encode(serde_json::to_vec(self).expect("token serializes"))
    }

    pub fn decode(text: &str) -> Option<Token> {
        serde_json::from_slice(&BASE64.decode(text.trim()).ok()?).ok()
    }

    pub fn verify(&self, key: &str) -> bool {
        let expected = token_signature(key, &self.token_id, &self.host, self.web_transport_url.as_deref());
        constant_time_eq(&expected, &self.signature)
    }
}

fn token_signature(key: &str, token_id: &str, host: &str, web_transport_url: Option<&str>) -> String {
    hmac_hex_base64(key, &format!("{token_id},{host},{}", web_transport_url.unwrap_or("undefined")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_owt_encoding() {
        // base64 of a 64-char lowercase hex string is 88 characters ending in "==".
        let sig = hmac_hex_base64("key", "1,2");
        assert_eq!(sig.len(), 88);
        assert!(sig.ends_with("=="));
        let hex = String::from_utf8(BASE64.decode(&sig).unwrap()).unwrap();
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Known vector: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog").
        let fox = hmac_hex_base64("key", "The quick brown fox jumps over the lazy dog");
        assert_eq!(
            String::from_utf8(BASE64.decode(fox).unwrap()).unwrap(),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn header_round_trip_and_padding_restored() {
        let header = sign_header("5c2b", "c2VjcmV0a2V5PT0=", 1700000000000, "abcd");
        let parsed = MAuthHeader::parse(&header).unwrap();
        assert_eq!(parsed.service_id, "5c2b");
        assert!(parsed.signature.ends_with("=="), "padding restored: {}", parsed.signature);
        parsed.verify("c2VjcmV0a2V5PT0=").unwrap();
        assert_eq!(parsed.verify("other"), Err(AuthError::BadSignature));
    }

    #[test]
    fn username_and_role_are_signed() {
        let user = BASE64.encode("Jöhn");
        let ts = "1700000000000";
        let sig = hmac_hex_base64("k", &format!("{ts},n,{user},presenter"));
        let header = format!(
            "MAuth realm=x,mauth_signature_method=HMAC_SHA256,mauth_serviceid=s,mauth_cnonce=n,\
             mauth_timestamp={ts},mauth_username={user},mauth_role=presenter,mauth_signature={sig}"
        );
        let parsed = MAuthHeader::parse(&header).unwrap();
        parsed.verify("k").unwrap();
        assert_eq!(parsed.decoded_username().as_deref(), Some("Jöhn"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(MAuthHeader::parse("Basic abc"), Err(AuthError::NotMAuth));
        assert_eq!(MAuthHeader::parse("MAuth "), Err(AuthError::MissingField("mauth_serviceid")));
        let no_method = "MAuth mauth_serviceid=a,mauth_cnonce=b,mauth_timestamp=1,mauth_signature=x";
        assert_eq!(MAuthHeader::parse(no_method), Err(AuthError::Method(String::new())));
        let md5 = format!("{no_method},mauth_signature_method=HMAC_MD5");
        assert!(matches!(MAuthHeader::parse(&md5), Err(AuthError::Method(_))));
    }

    #[test]
    fn replay_guard_refuses_reuse_and_skew_then_forgets() {
        let mut guard = ReplayGuard::new(300);
        let header = MAuthHeader::parse(&sign_header("s", "k", 1_000_000, "n1")).unwrap();
        guard.check(1_000_000, &header).unwrap();
        assert_eq!(guard.check(1_000_500, &header), Err(AuthError::Replayed));
        assert!(matches!(guard.check(1_000_000 + 301_000, &header), Err(AuthError::ClockSkew(..))));
        let other = MAuthHeader::parse(&sign_header("s", "k", 1_400_000, "n2")).unwrap();
        guard.check(1_400_000, &other).unwrap();
        assert_eq!(guard.remembered(), 1, "expired cnonce forgotten");
        let bad = MAuthHeader { timestamp: "soon".into(), ..other };
        assert!(matches!(guard.check(0, &bad), Err(AuthError::BadTimestamp(_))));
    }

    #[test]
    fn token_round_trip() {
        let token = Token::new("tokenkey", "5c2b0e0e0e0e0e0e0e0e0e0e", "127.0.0.1:8080", false, None);
        let text = token.encode();
        let json: serde_json::Value = serde_json::from_slice(&BASE64.decode(&text).unwrap()).unwrap();
        assert_eq!(json["tokenId"], "5c2b0e0e0e0e0e0e0e0e0e0e");
        assert!(json.get("webTransportUrl").is_none());
        let decoded = Token::decode(&text).unwrap();
        assert!(decoded.verify("tokenkey"));
        assert!(!decoded.verify("otherkey"));
        assert_eq!(decoded.signature, hmac_hex_base64("tokenkey", "5c2b0e0e0e0e0e0e0e0e0e0e,127.0.0.1:8080,undefined"));
        assert_eq!(Token::decode("%%%"), None);
    }
}

/// OWT's reconnection ticket (spec §1.5): `base64(JSON{participantId, ticketId, notBefore,
/// notAfter, signature})`, signature over `participantId,notBefore,notAfter` with a key of the
/// portal process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconnectionTicket {
    pub participant_id: String,
    pub ticket_id: String,
    pub not_before: i64,
    pub not_after: i64,
    pub signature: String,
}

/// Why a ticket was refused, worded as OWT clients see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("Invalid reconnection ticket")]
    Malformed,
    #[error("Ticket is expired")]
    Expired,
    #[error("Invalid reconnection ticket signature")]
    BadSignature,
}

impl ReconnectionTicket {
    pub fn issue(key: &str, participant_id: &str, now_ms: i64, lifetime_ms: i64) -> Self {
        let ticket_id = format!("{:x}", rand::random::<u64>());
        let not_after = now_ms + lifetime_ms;
        let signature = hmac_hex_base64(key, &format!("{participant_id},{now_ms},{not_after}"));
        ReconnectionTicket {
            participant_id: participant_id.into(),
            ticket_id,
            not_before: now_ms,
            not_after,
            signature,
        }
    }

    pub fn encode(&self) -> String {
        BASE64.encode(serde_json::to_vec(self).expect("ticket serializes"))
    }

    /// Decodes and checks a ticket string at time `now_ms`.
    pub fn verify(text: &str, key: &str, now_ms: i64) -> Result<ReconnectionTicket, TicketError> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| TicketError::Malformed)?;
        let ticket: ReconnectionTicket = serde_json::from_slice(&bytes).map_err(|_| TicketError::Malformed)?;
        if now_ms < ticket.not_before || now_ms > ticket.not_after {
            return Err(TicketError::Expired);
        }
        let expected =
            hmac_hex_base64(key, &format!("{},{},{}", ticket.participant_id, ticket.not_before, ticket.not_after));
        if !constant_time_eq(&expected, &ticket.signature) {
            return Err(TicketError::BadSignature);
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod ticket_tests {
    use super::*;

    #[test]
    fn tickets_verify_expire_and_reject_forgery() {
        let ticket = ReconnectionTicket::issue("k", "p1", 1_000, 600_000);
        let text = ticket.encode();
        let json: serde_json::Value = serde_json::from_slice(&BASE64.decode(&text).unwrap()).unwrap();
        assert!(json["notAfter"].is_i64(), "the JS SDK reads a numeric notAfter");
        assert_eq!(ReconnectionTicket::verify(&text, "k", 2_000).unwrap(), ticket);
        assert_eq!(ReconnectionTicket::verify(&text, "k", 700_000), Err(TicketError::Expired));
        assert_eq!(ReconnectionTicket::verify(&text, "other", 2_000), Err(TicketError::BadSignature));
        let forged = ReconnectionTicket { participant_id: "p2".into(), ..ticket };
        assert_eq!(ReconnectionTicket::verify(&forged.encode(), "k", 2_000), Err(TicketError::BadSignature));
        assert_eq!(ReconnectionTicket::verify("!!", "k", 2_000), Err(TicketError::Malformed));
        assert_eq!(ReconnectionTicket::verify(&BASE64.encode("[]"), "k", 2_000), Err(TicketError::Malformed));
    }
}

//! Engine.IO and Socket.IO packet codecs (text only): Engine.IO packet types, the long-polling
//! payload encodings of Engine.IO 3 (`<length>:<packet>`, length in UTF-16 code units) and 4
//! (packets separated by U+001E), Socket.IO packets (`<type>[<attachments>-][<nsp>,][<ack
//! id>][<json>]`) and the split of an event's JSON array into its elements. Every parser takes
//! untrusted input and returns an error instead of panicking.

use std::fmt::Write;

/// Engine.IO protocol revision of a session: 3 (socket.io-client 2.x) or 4 (3.x and 4.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eio {
    V3,
    V4,
}

impl Eio {
    pub fn from_query(value: &str) -> Option<Eio> {
        match value {
            "3" => Some(Eio::V3),
            "4" => Some(Eio::V4),
            _ => None,
        }
    }
}

/// An Engine.IO packet received as text.
#[derive(Debug, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    Open,
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

/// Why input could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    UnknownType,
    BadLength,
    Truncated,
    BadNamespace,
    BadAckId,
    BadJson,
}

pub fn decode_engine(text: &str) -> Result<EnginePacket<'_>, DecodeError> {
    let mut chars = text.char_indices();
    let (_, kind) = chars.next().ok_or(DecodeError::Empty)?;
    let rest = &text[kind.len_utf8()..];
    Ok(match kind {
        '0' => EnginePacket::Open,
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(rest),
        '3' => EnginePacket::Pong(rest),
        '4' => EnginePacket::Message(rest),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        _ => return Err(DecodeError::UnknownType),
    })
}

/// Splits a long-polling request body into Engine.IO packets (as text, type included).
pub fn decode_payload(eio: Eio, body: &str) -> Result<Vec<&str>, DecodeError> {
    match eio {
        Eio::V4 => Ok(body.split('\u{1e}').collect()),
        Eio::V3 => decode_payload_v3(body),
    }
}

/// `<length>:<packet>` repeated; the length counts UTF-16 code units (JavaScript's
/// `String.length`).
fn decode_payload_v3(mut body: &str) -> Result<Vec<&str>, DecodeError> {
    let mut packets = Vec::new();
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    while !body.is_empty() {
        let colon = body.find(':').ok_or(DecodeError::BadLength)?;
        let digits = &body[..colon];
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::BadLength);
        }
        let units: usize = digits.parse().map_err(|_| DecodeError::BadLength)?;
        if units == 0 {
            return Err(DecodeError::BadLength);
        }
        let rest = &body[colon + 1..];
        let mut counted = 0;
        let mut end = None;
        for (index, c) in rest.char_indices() {
            if counted >= units {
                end = Some(index);
                break;
            }
            counted += c.len_utf16();
        }
        if counted > units {
            // The length ends inside a surrogate pair.
            return Err(DecodeError::BadLength);
        }
        let end = match end {
            Some(end) => end,
            None if counted == units => rest.len(),
            None => return Err(DecodeError::Truncated),
        };
        packets.push(&rest[..end]);
        body = &rest[end..];
    }
    Ok(packets)
}

/// Joins Engine.IO packets (text, type included) into a long-polling response body.
pub fn encode_payload<'a>(eio: Eio, packets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, packet) in packets.into_iter().enumerate() {
        match eio {
            Eio::V4 => {
                if i > 0 {
                    out.push('\u{1e}');
                }
            }
            Eio::V3 => {
                let _ = write!(out, "{}:", packet.encode_utf16().count());
            }
        }
        out.push_str(packet);
    }
    out
}

/// Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioType {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A Socket.IO packet received as text.
#[derive(Debug, PartialEq, Eq)]
pub struct SioPacket<'a> {
    pub kind: SioType,
    /// Binary attachments that follow (binary packets only).
    pub attachments: usize,
    /// `/` when absent.
    pub namespace: &'a str,
    pub ack: Option<u64>,
    /// JSON text, possibly empty.
    pub data: &'a str,
}

/// Attachments a binary packet may announce; more is hostile.
const MAX_ATTACHMENTS: usize = 16;

pub fn decode_sio(text: &str) -> Result<SioPacket<'_>, DecodeError> {
    let bytes = text.as_bytes();
    let kind = match bytes.first().ok_or(DecodeError::Empty)? {
        b'0' => SioType::Connect,
        b'1' => SioType::Disconnect,
        b'2' => SioType::Event,
        b'3' => SioType::Ack,
        b'4' => SioType::ConnectError,
        b'5' => SioType::BinaryEvent,
        b'6' => SioType::BinaryAck,
        _ => return Err(DecodeError::UnknownType),
    };
    let mut rest = &text[1..];
    let mut attachments = 0;
    if matches!(kind, SioType::BinaryEvent | SioType::BinaryAck) {
        let dash = rest.find('-').ok_or(DecodeError::BadLength)?;
        let digits = &rest[..dash];
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::BadLength);
        }
        attachments = digits.parse().map_err(|_| DecodeError::BadLength)?;
        if attachments > MAX_ATTACHMENTS {
            return Err(DecodeError::BadLength);
        }
        rest = &rest[dash + 1..];
    }
    let mut namespace = "/";
    if rest.starts_with('/') {
        match rest.find(',') {
            Some(comma) => {
                namespace = &rest[..comma];
                rest = &rest[comma + 1..];
            }
            // A namespace alone (`1/chat`).
            None => {
                namespace = rest;
                rest = "";
            }
        }
        if namespace.len() > 256 {
            return Err(DecodeError::BadNamespace);
        }
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut ack = None;
    if digits > 0 {
        if digits > 15 {
            return Err(DecodeError::BadAckId);
        }
        ack = Some(rest[..digits].parse().map_err(|_| DecodeError::BadAckId)?);
        rest = &rest[digits..];
    }
    Ok(SioPacket { kind, attachments, namespace, ack, data: rest })
}

/// Deepest JSON nesting accepted in an event (serde_json's own limit is 128).
const MAX_DEPTH: usize = 64;

/// The elements of a JSON array as text slices (`[1, "a"]` → `["1", "\"a\""]`), without
/// building any value. Only the structure is checked here: each element is parsed later by
/// whoever wants it, which validates it fully.
pub fn split_array(json: &str) -> Result<Vec<&str>, DecodeError> {
    let bytes = json.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return Err(DecodeError::BadJson);
    }
    i = skip_ws(bytes, i + 1);
    let mut elements = Vec::new();
    if bytes.get(i) == Some(&b']') {
        return trailing(bytes, i + 1).map(|_| elements);
    }
    loop {
        let start = i;
        i = skip_value(bytes, i)?;
        elements.push(json[start..i].trim_end());
        i = skip_ws(bytes, i);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b']') => return trailing(bytes, i + 1).map(|_| elements),
            _ => return Err(DecodeError::BadJson),
        }
    }
}

fn trailing(bytes: &[u8], i: usize) -> Result<(), DecodeError> {
    if skip_ws(bytes, i) == bytes.len() {
        Ok(())
    } else {
        Err(DecodeError::BadJson)
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Index just past the JSON value starting at `i`.
fn skip_value(bytes: &[u8], mut i: usize) -> Result<usize, DecodeError> {
    let mut depth = 0usize;
    loop {
        match bytes.get(i).ok_or(DecodeError::Truncated)? {
            b'"' => i = skip_string(bytes, i)?,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::BadJson);
                }
                i += 1;
            }
            b']' | b'}' => {
                if depth == 0 {
                    return Err(DecodeError::BadJson);
                }
                depth -= 1;
                i += 1;
            }
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' if depth > 0 => i += 1,
            b',' | b':' => return Err(DecodeError::BadJson),
            _ => {
                // A literal (number, true, false, null): up to a delimiter.
                let start = i;
                while let Some(b) = bytes.get(i) {
                    if matches!(b, b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'[' | b'{') {
                        break;
                    }
                    i += 1;
                }
                if i == start {
                    return Err(DecodeError::BadJson);
                }
            }
        }
        if depth == 0 {
            return Ok(i);
        }
    }
}

fn skip_string(bytes: &[u8], mut i: usize) -> Result<usize, DecodeError> {
    i += 1;
    loop {
        match bytes.get(i).ok_or(DecodeError::Truncated)? {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// `42["<event>",<arg>,...]` as an Engine.IO message packet; `args` are JSON texts.
pub fn encode_event(event: &str, args: &[&str]) -> String {
    let name = serde_json::to_string(event).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(6 + name.len() + args.iter().map(|a| a.len() + 1).sum::<usize>());
    out.push_str("42[");
    out.push_str(&name);
    for arg in args {
        out.push(',');
        out.push_str(arg);
    }
    out.push(']');
    out
}

/// `43<id>[<arg>,...]` as an Engine.IO message packet.
pub fn encode_ack(id: u64, args: &[&str]) -> String {
    let mut out = String::with_capacity(8 + args.iter().map(|a| a.len() + 1).sum::<usize>());
    let _ = write!(out, "43{id}[");
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(arg);
    }
    out.push(']');
    out
}

/// A refused namespace connection, as the socket.io server of the client's generation sends
/// it: socket.io 2.x an ERROR packet with the message as JSON string, 3.x and later an object.
pub fn encode_connect_error(eio: Eio, namespace: &str, message: &str) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
    let prefix = if namespace == "/" { String::new() } else { format!("{namespace},") };
    match eio {
        Eio::V3 => format!("44{prefix}{message}"),
        Eio::V4 => format!("44{prefix}{{\"message\":{message}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_packets() {
        assert_eq!(decode_engine("2probe"), Ok(EnginePacket::Ping("probe")));
        assert_eq!(decode_engine("3"), Ok(EnginePacket::Pong("")));
        assert_eq!(decode_engine("42[\"a\"]"), Ok(EnginePacket::Message("2[\"a\"]")));
        assert_eq!(decode_engine("5"), Ok(EnginePacket::Upgrade));
        assert_eq!(decode_engine(""), Err(DecodeError::Empty));
        assert_eq!(decode_engine("9"), Err(DecodeError::UnknownType));
        assert_eq!(decode_engine("é"), Err(DecodeError::UnknownType));
        assert_eq!(decode_engine("b4AAEC"), Err(DecodeError::UnknownType));
    }

    #[test]
    fn v4_payloads_split_on_record_separators() {
        assert_eq!(decode_payload(Eio::V4, "2\u{1e}42[\"x\"]").unwrap(), vec!["2", "42[\"x\"]"]);
        assert_eq!(encode_payload(Eio::V4, ["6", "40"]), "6\u{1e}40");
        assert_eq!(encode_payload(Eio::V4, ["3"]), "3");
    }

    #[test]
    fn v3_payloads_count_utf16_units() {
        // "é" is one unit, "😀" two.
        let packets = ["42[\"é\"]", "42[\"😀\"]", "2"];
        let body = encode_payload(Eio::V3, packets);
        assert_eq!(body, "7:42[\"é\"]8:42[\"😀\"]1:2");
        assert_eq!(decode_payload(Eio::V3, &body).unwrap(), packets);
    }

    #[test]
    fn hostile_v3_payloads_are_errors() {
        for body in ["", "5", ":2", "x:2", "5:2", "0:", "1:", "99999999999:2", "2:2", "-1:2", "1:22:", "3:42😀", "1:2x"]
        {
            assert!(decode_payload(Eio::V3, body).is_err(), "{body:?}");
        }
        // The length ends inside a surrogate pair.
        assert_eq!(decode_payload(Eio::V3, "4:42[😀\"]"), Err(DecodeError::BadLength));
    }

    #[test]
    fn socket_io_packets() {
        let p = decode_sio("2[\"owt-message\",{}]").unwrap();
        assert_eq!((p.kind, p.namespace, p.ack, p.data), (SioType::Event, "/", None, "[\"owt-message\",{}]"));
        let p = decode_sio("212[\"a\"]").unwrap();
        assert_eq!((p.ack, p.data), (Some(12), "[\"a\"]"));
        let p = decode_sio("0/chat,{\"token\":1}").unwrap();
        assert_eq!((p.kind, p.namespace, p.data), (SioType::Connect, "/chat", "{\"token\":1}"));
        let p = decode_sio("1/chat").unwrap();
        assert_eq!((p.kind, p.namespace), (SioType::Disconnect, "/chat"));
        let p = decode_sio("51-3[\"x\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!((p.kind, p.attachments, p.ack), (SioType::BinaryEvent, 1, Some(3)));
        assert_eq!(decode_sio("0").unwrap().kind, SioType::Connect);
    }

    #[test]
    fn hostile_socket_io_packets_are_errors() {
        assert_eq!(decode_sio(""), Err(DecodeError::Empty));
        assert_eq!(decode_sio("9"), Err(DecodeError::UnknownType));
        assert_eq!(decode_sio("x2[]"), Err(DecodeError::UnknownType));
        assert_eq!(decode_sio("5[\"x\"]"), Err(DecodeError::BadLength));
        assert_eq!(decode_sio("5-[\"x\"]"), Err(DecodeError::BadLength));
        assert_eq!(decode_sio("5999-[\"x\"]"), Err(DecodeError::BadLength));
        assert_eq!(decode_sio("2123456789012345678[]"), Err(DecodeError::BadAckId));
        let long = format!("0/{},", "n".repeat(300));
        assert_eq!(decode_sio(&long), Err(DecodeError::BadNamespace));
        // Garbage after the type is data the event parser refuses.
        assert!(split_array(decode_sio("garbage").map(|p| p.data).unwrap_or("")).is_err());
    }

    #[test]
    fn arrays_split_into_element_texts() {
        assert_eq!(split_array("[]").unwrap(), Vec::<&str>::new());
        assert_eq!(split_array(" [ ] ").unwrap(), Vec::<&str>::new());
        assert_eq!(
            split_array(r#"["owt-message",{"to":"b","data":"x]\"}"},"e", 12 ,null,[1,[2]]]"#).unwrap(),
            vec![r#""owt-message""#, r#"{"to":"b","data":"x]\"}"}"#, r#""e""#, "12", "null", "[1,[2]]"]
        );
    }

    #[test]
    fn hostile_arrays_are_errors() {
        let deep = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
        for json in [
            "",
            "{\"not\":\"an array\"}",
            "[",
            "[\"owt-message\"",
            "[\"unterminated]",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[1]]",
            "[1] x",
            "[{]",
            "[}]",
            "[\"a\":1]",
            "[\"\\",
            deep.as_str(),
        ] {
            assert!(split_array(json).is_err(), "{json:?}");
        }
    }

    #[test]
    fn outgoing_packets() {
        assert_eq!(encode_event("owt-message", &[r#"{"from":"a"}"#]), r#"42["owt-message",{"from":"a"}]"#);
        assert_eq!(encode_event("server-disconnect", &[]), r#"42["server-disconnect"]"#);
        assert_eq!(encode_event("q\"", &[]), r#"42["q\""]"#);
        assert_eq!(encode_ack(7, &[]), "437[]");
        assert_eq!(encode_ack(7, &["\"2201\"", "1"]), "437[\"2201\",1]");
        assert_eq!(encode_connect_error(Eio::V3, "/", "2102"), "44\"2102\"");
        assert_eq!(encode_connect_error(Eio::V4, "/", "2102"), "44{\"message\":\"2102\"}");
        assert_eq!(
            encode_connect_error(Eio::V4, "/x", "Invalid namespace"),
            "44/x,{\"message\":\"Invalid namespace\"}"
        );
    }
}

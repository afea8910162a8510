//! Hostile input: malformed and oversized payloads, payloads that are not objects, garbage
//! packets and floods. Each gets an error (or loses its own connection) while owt-peer keeps
//! serving everyone else.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// alice and bob logged in; returns the driver.
fn two_users(peer: &Peer) -> Driver {
    let mut d = Driver::start();
    d.login("alice", &peer.url(), 4, "alice");
    d.login("bob", &peer.url(), 4, "bob");
    d
}

/// bob still gets alice's messages.
fn still_relays(d: &mut Driver, peer: &mut Peer) {
    assert!(peer.alive(), "owt-peer died:\n{}", peer.log());
    assert_eq!(d.call("alice", "owt-message", json!([{ "to": "bob", "data": "still here" }])), json!([]));
    assert_eq!(d.event("bob", "owt-message"), json!([{ "from": "alice", "data": "still here" }]));
}

#[test]
fn malformed_owt_messages_get_2110() {
    let mut peer = Peer::start("", "");
    let mut d = two_users(&peer);
    let cases = [
        json!(["a string"]),
        json!([42]),
        json!([null]),
        json!([[1, 2, 3]]),
        json!([]),
        json!([{}]),
        json!([{ "to": "bob" }]),
        json!([{ "data": "x" }]),
        json!([{ "to": 7, "data": "x" }]),
        json!([{ "to": ["bob"], "data": "x" }]),
        json!([{ "to": "bob", "data": 5 }]),
        json!([{ "to": "bob", "data": { "type": "chat-signal" } }]),
        json!([{ "to": "bob", "data": null }]),
    ];
    for args in cases {
        assert_eq!(d.call("alice", "owt-message", args.clone()), json!(["2110"]), "{args}");
    }
    d.expect_none(
        Duration::from_millis(300),
        |v| v["id"] == "bob" && v["event"] == "owt-message",
        "relay of a malformed message",
    );
    // Extra arguments and fields are ignored; only {from, data} is forwarded.
    assert_eq!(
        d.call("alice", "owt-message", json!([{ "to": "bob", "data": "ok", "from": "mallory", "x": 1 }, "extra"])),
        json!([])
    );
    assert_eq!(d.event("bob", "owt-message"), json!([{ "from": "alice", "data": "ok" }]));
    still_relays(&mut d, &mut peer);
}

#[test]
fn malformed_authentication_is_refused_and_disconnected() {
    let mut peer = Peer::start("", "");
    let mut d = two_users(&peer);
    let cases = [json!([{ "token": 5 }]), json!([{ "token": { "user": "x" } }]), json!(["token"]), json!([[1]])];
    for (i, args) in cases.into_iter().enumerate() {
        let id = format!("bad{i}");
        d.connect(&id, &peer.url(), 4);
        assert_eq!(d.call(&id, "authentication", args.clone()), json!([{ "error": "2121" }]), "{args}");
        assert_eq!(d.disconnected(&id), "io server disconnect");
    }
    // A token longer than 1024 bytes is refused as well.
    d.connect("long", &peer.url(), 2);
    assert_eq!(d.call("long", "authentication", json!([{ "token": "x".repeat(1025) }])), json!([{ "error": "2121" }]));
    still_relays(&mut d, &mut peer);
}

#[test]
fn oversized_messages_are_refused_and_huge_frames_close_only_their_connection() {
    let mut peer = Peer::start("max_message_bytes = 1024", "");
    let mut d = two_users(&peer);
    assert_eq!(d.call("alice", "owt-message", json!([{ "to": "bob", "data": "x".repeat(1024) }])), json!([]));
    assert_eq!(d.event("bob", "owt-message")[0]["data"].as_str().map(str::len), Some(1024));
    assert_eq!(d.call("alice", "owt-message", json!([{ "to": "bob", "data": "x".repeat(1025) }])), json!(["2110"]));
    assert_eq!(d.call("alice", "owt-message", json!([{ "to": "bob", "data": "x".repeat(10_000) }])), json!(["2110"]));
    // A frame far over the limit (2 x max_message_bytes + 16 KiB) closes that connection.
    d.login("mallory", &peer.url(), 4, "mallory");
    d.emit("mallory", "owt-message", json!([{ "to": "bob", "data": "x".repeat(100_000) }]));
    let reason = d.disconnected("mallory");
    assert!(reason.starts_with("transport"), "{reason}");
    d.login("mallory2", &peer.url(), 2, "mallory2");
    d.emit("mallory2", "owt-message", json!([{ "to": "bob", "data": "x".repeat(100_000) }]));
    let reason = d.disconnected("mallory2");
    assert!(reason.starts_with("transport"), "{reason}");
    d.expect_none(
        Duration::from_millis(300),
        |v| v["id"] == "bob" && v["event"] == "owt-message",
        "relay of a huge message",
    );
    still_relays(&mut d, &mut peer);
}

#[test]
fn garbage_packets_and_unknown_events_do_not_hurt_others() {
    let mut peer = Peer::start("", "");
    let mut d = two_users(&peer);
    // Unknown events are ignored (no ack, as the reference server).
    d.send(
        json!({ "op": "emit", "id": "alice", "event": "no-such-event", "args": [{ "a": 1 }], "ack": true, "tag": "u" }),
    );
    d.expect_none(Duration::from_millis(300), |v| v["id"] == "alice" && v["tag"] == "u", "ack of an unknown event");
    // A binary attachment is not a string.
    assert_eq!(d.call("alice", "owt-message", json!([{ "$binary": "AAEC" }])), json!(["2110"]));
    assert_eq!(
        d.call("alice", "owt-message", json!([{ "to": "bob", "data": { "$binary": "AAEC" } }])),
        json!(["2110"])
    );
    still_relays(&mut d, &mut peer);
    // Broken Socket.IO packets from other clients.
    for (i, text) in [
        "42[\"owt-message\"",
        "451-[\"owt-message\",{\"_placeholder\":true,\"num\":0}]",
        "4garbage",
        "9",
        "42{\"not\":\"an array\"}",
        "42[1,2]",
        "0/nope,",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("m{i}");
        d.login(&id, &peer.url(), 4, &id);
        d.send(json!({ "op": "raw", "id": id, "text": text }));
    }
    std::thread::sleep(Duration::from_millis(300));
    still_relays(&mut d, &mut peer);
    // Raw Engine.IO garbage over plain TCP.
    let (status, _, _) =
        http(peer.port, "GET /socket.io/?EIO=9&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _, _) = http(
        peer.port,
        "POST /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n4junk",
    );
    assert!((400..500).contains(&status), "{status}");
    still_relays(&mut d, &mut peer);
}

#[test]
fn a_flood_is_rate_limited_while_other_clients_get_through() {
    let mut peer = Peer::start("messages_per_second = 100", "");
    let mut d = two_users(&peer);
    d.login("carol", &peer.url(), 2, "carol");
    // alice sends 600 at once: the bucket holds 200 (2 x rate), a few refill meanwhile.
    d.send(json!({ "op": "flood", "id": "alice", "count": 600, "event": "owt-message",
                   "args": [{ "to": "bob", "data": "flood" }], "tag": "f" }));
    // carol keeps talking to bob during the flood.
    for i in 0..20 {
        assert_eq!(
            d.call("carol", "owt-message", json!([{ "to": "bob", "data": format!("c{i}") }])),
            json!([]),
            "carol {i}"
        );
    }
    let flood = d.expect(|v| v["id"] == "alice" && v["type"] == "flood", "flood result");
    let ok = flood["ok"].as_u64().unwrap_or_default();
    let limited = flood["codes"]["2102"].as_u64().unwrap_or_default();
    assert_eq!(flood["answered"], 600, "{flood}");
    assert!((200..=400).contains(&ok), "{flood}");
    assert_eq!(ok + limited, 600, "{flood}");
    let mut from_carol = 0;
    let mut from_alice = 0;
    while let Some(line) =
        d.expect_within(Duration::from_millis(500), |v| v["id"] == "bob" && v["event"] == "owt-message")
    {
        match line["args"][0]["from"].as_str() {
            Some("carol") => from_carol += 1,
            Some("alice") => from_alice += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((from_carol, from_alice), (20, ok));
    // Logged once, not 400 times.
    assert_eq!(peer.log().matches("exceeds messages_per_second").count(), 1, "{}", peer.log());
    // After a second alice may talk again.
    std::thread::sleep(Duration::from_millis(1100));
    still_relays(&mut d, &mut peer);
}

/// HTTP-level hostility against the hand-written Engine.IO server (lib/owt-sio): bytes that are
/// not HTTP, a head far over any sane size, a head that never ends (held open while others
/// relay), a WebSocket upgrade without a key and one with a bad version. Each is refused or
/// closed; the clients already connected keep relaying.
#[test]
fn http_garbage_huge_and_endless_heads_do_not_hurt_others() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let mut peer = Peer::start("", "");
    let mut d = two_users(&peer);
    let answer = |bytes: &[u8]| -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", peer.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = stream.write_all(bytes);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
    };
    let not_http = answer(&[0x16, 0x03, 0x01, 0x00, 0xff, 0x01, 0x00, 0x00, 0x00, b'\n', b'\r', b'\n', b'\r', b'\n']);
    assert!(not_http.is_empty() || not_http.contains(" 400"), "{not_http}");
    let mut huge = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 256 * 1024));
    let huge = answer(&huge);
    assert!(huge.is_empty() || huge.contains(" 4"), "{huge}");
    let no_key = answer(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    assert!(no_key.contains(" 400"), "{no_key}");
    let bad_version = answer(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert!(bad_version.contains(" 4"), "{bad_version}");
    // Heads that never end, held open while the others go on.
    let endless: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", peer.port)).expect("connect");
            let _ = s.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");
            s
        })
        .collect();
    still_relays(&mut d, &mut peer);
    drop(endless);
    still_relays(&mut d, &mut peer);
}

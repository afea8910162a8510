//! Client signaling (spec/owt-compat.md §1) against the real owt-portal, with the real npm
//! Socket.IO clients (socket.io-client 4.x/3.x over EIO=4, 2.x over EIO=3) driven through
//! `tests/js/owt-client.js`: login and its refusals, participants and text, reconnection
//! with tickets, the REST view of live rooms, hostile input on every request with OWT's exact
//! error strings (each followed by a check that the socket and the other participants are
//! still served), transports of other participants refused with a real owt-webrtc and
//! owt-mixer, clients of the older protocols 1.1 and 1.0 (their request and StreamInfo shapes
//! beside a 1.2 client, a transport per session, an answer from a real owt-webrtc), and 200
//! clients joining and leaving at once. Negotiation with real media
//! through the portal is tested with Chromium in tests/browser.

use crate::support::{Auth, Options, TestServer};
use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

pub(crate) fn js_ua() -> Value {
    json!({"sdk": {"version": "5.1", "type": "JavaScript"}})
}

/// One Socket.IO client process.
pub(crate) struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    /// Events seen while waiting for something else.
    backlog: Vec<Value>,
    next_ack: u64,
}

impl Client {
    pub(crate) fn connect(version: u8, server: &TestServer) -> Client {
        let mut client = Self::spawn(version, &format!("http://127.0.0.1:{}", server.signaling_port), "polling");
        let connected = client.event("connect");
        assert!(connected["id"].is_string(), "{connected}");
        client
    }

    fn spawn(version: u8, url: &str, transport: &str) -> Client {
        let mut child = Command::new("node")
            .arg(js_dir().join("owt-client.js"))
            .arg(version.to_string())
            .arg(url)
            .arg(transport)
            .current_dir(js_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (npm packages: make test-deps)");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        Client { child, stdin, lines, backlog: Vec::new(), next_ack: 1 }
    }

    pub(crate) fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("write to client");
        self.stdin.flush().expect("flush");
    }

    fn next(&mut self, what: &str) -> Value {
        self.lines.recv_timeout(WAIT).unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// Emits with an ack and returns the ack arguments.
    pub(crate) fn request(&mut self, event: &str, data: Option<Value>) -> Vec<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        match data {
            Some(data) => self.send(json!({"op": "emit", "event": event, "data": data, "id": id})),
            None => self.send(json!({"op": "emit", "event": event, "noData": true, "id": id})),
        }
        loop {
            let line = self.next(&format!("the ack of {event}"));
            if line["ack"] == json!(id) {
                return line["args"].as_array().cloned().unwrap_or_default();
            }
            self.backlog.push(line);
        }
    }

    pub(crate) fn ok(&mut self, event: &str, data: Option<Value>) -> Value {
        let args = self.request(event, data);
        assert_eq!(args.first(), Some(&json!("ok")), "{event} answered {args:?}");
        args.get(1).cloned().unwrap_or(Value::Null)
    }

    pub(crate) fn error(&mut self, event: &str, data: Option<Value>) -> String {
        let args = self.request(event, data);
        assert_eq!(args.first(), Some(&json!("error")), "{event} answered {args:?}");
        args[1].as_str().unwrap_or_else(|| panic!("error message is a string: {args:?}")).to_string()
    }

    /// Waits for an event by name (notification args, or the connection line itself).
    pub(crate) fn event(&mut self, name: &str) -> Value {
        if let Some(index) = self.backlog.iter().position(|l| l["event"] == name) {
            return self.backlog.remove(index);
        }
        loop {
            let line = self.next(&format!("event {name}"));
            if line["event"] == name {
                return line;
            }
            self.backlog.push(line);
        }
    }

    /// The first argument of the next `name` notification.
    pub(crate) fn notification(&mut self, name: &str) -> Value {
        self.event(name)["args"][0].clone()
    }

    fn no_event(&mut self, name: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    assert_ne!(line["event"], name, "unexpected {line}");
                    self.backlog.push(line);
                }
                Err(_) => break,
            }
        }
        assert!(!self.backlog.iter().any(|l| l["event"] == name), "unexpected {name}: {:?}", self.backlog);
    }

    pub(crate) fn login(&mut self, token: &str) -> Value {
        self.ok("login", Some(json!({"token": token, "userAgent": js_ua(), "protocol": "1.2"})))
    }

    /// Logs in as a JS SDK 4.x client speaking `protocol` ("1.1" or "1.0").
    fn login_with(&mut self, token: &str, protocol: &str) -> Value {
        let user_agent = json!({"sdk": {"version": "4.3", "type": "JavaScript"}});
        self.ok("login", Some(json!({"token": token, "userAgent": user_agent, "protocol": protocol})))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn token(server: &TestServer, room: &str, user: &str, role: &str) -> String {
    let reply = server.call(
        "POST",
        &format!("/v1/rooms/{room}/tokens"),
        Some(json!({"user": user, "role": role})),
        Auth::Super,
    );
    reply.ok_text().to_string()
}

fn start(extra: &str) -> TestServer {
    TestServer::start_with(Options { extra: extra.into(), ..Options::default() })
}

fn decode_json(text: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).expect("base64");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn login_result_has_the_shape_the_js_sdk_needs_for_every_client_version() {
    let server = TestServer::start();
    for version in [4u8, 3, 2] {
        let mut client = Client::connect(version, &server);
        let result = client.login(&token(&server, &server.default_room, "alice", "presenter"));
        let id = result["id"].as_str().expect("id");
        assert_eq!(result["user"], "alice");
        assert_eq!(result["role"], "presenter");
        assert_eq!(result["permission"]["publish"], json!({"audio": true, "video": true}));
        assert_eq!(result["room"]["id"], server.default_room.as_str());
        assert_eq!(result["room"]["views"], json!(["common"]));
        let participants = result["room"]["participants"].as_array().unwrap();
        assert!(participants.contains(&json!({"id": id, "user": "alice", "role": "presenter"})), "{participants:?}");
        let mixed = &result["room"]["streams"][0];
        assert_eq!(mixed["type"], "mixed");
        assert_eq!(mixed["id"], format!("{}-common", server.default_room));
        assert_eq!(mixed["info"]["label"], "common");
        for track in mixed["media"]["tracks"].as_array().unwrap() {
            if let Some(parameters) = track["optional"].get("parameters") {
                for key in ["resolution", "bitrate", "framerate", "keyFrameInterval"] {
                    assert!(parameters[key].is_array(), "v{version}: optional.parameters.{key}");
                }
            }
        }
        let ticket = decode_json(result["reconnectionTicket"].as_str().expect("reconnectionTicket"));
        assert_eq!(ticket["participantId"], id);
        assert!(ticket["notAfter"].as_i64().unwrap() > crate::support::now_ms() as i64);
        client.ok("logout", None);
    }
}

#[test]
fn participants_text_and_leave_are_notified() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    let alice_id = alice.login(&token(&server, &room, "alice", "presenter"))["id"].as_str().unwrap().to_string();
    let mut bob = Client::connect(2, &server);
    let joined = bob.login(&token(&server, &room, "bob", "viewer"));
    let bob_id = joined["id"].as_str().unwrap().to_string();
    assert_eq!(joined["room"]["participants"].as_array().unwrap().len(), 2);
    assert_eq!(
        alice.notification("participant"),
        json!({"action": "join", "data": {"id": bob_id, "user": "bob", "role": "viewer"}})
    );

    bob.ok("text", Some(json!({"to": "all", "message": "hello"})));
    let expected = json!({"from": bob_id, "to": "all", "message": "hello"});
    assert_eq!(alice.notification("text"), expected);
    assert_eq!(bob.notification("text"), expected, "the sender gets its broadcast too");
    alice.ok("text", Some(json!({"to": bob_id, "message": {"any": "json"}})));
    assert_eq!(bob.notification("text"), json!({"from": alice_id, "to": "me", "message": {"any": "json"}}));
    assert_eq!(
        alice.error("text", Some(json!({"to": "nobody", "message": "x"}))),
        "Target participant does NOT exist: nobody"
    );
    assert_eq!(alice.error("text", Some(json!({"to": 5, "message": "x"}))), "Invalid receiver");

    let listed = server.call("GET", &format!("/v1/rooms/{room}/participants"), None, Auth::Super).ok_json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let one = server.call("GET", &format!("/v1/rooms/{room}/participants/{bob_id}"), None, Auth::Super).ok_json();
    assert_eq!(one["permission"]["publish"], json!({"audio": false, "video": false}));

    bob.ok("logout", None);
    assert_eq!(alice.notification("participant"), json!({"action": "leave", "data": bob_id}));
    let listed = server.call("GET", &format!("/v1/rooms/{room}/participants"), None, Auth::Super).ok_json();
    assert_eq!(
        listed,
        json!([{"id": alice_id, "user": "alice", "role": "presenter",
        "permission": {"publish": {"audio": true, "video": true}, "subscribe": {"audio": true, "video": true}}}])
    );
}

#[test]
fn bad_logins_are_refused_with_owt_messages_and_the_socket_closed() {
    let server = start("");
    let room = server.default_room.clone();
    let good = token(&server, &room, "u", "presenter");
    let mut forged = decode_json(&good);
    forged["host"] = json!("evil.example:8080");
    let forged = base64::engine::general_purpose::STANDARD.encode(forged.to_string());
    let cases: Vec<(Value, &str)> = vec![
        (json!({"token": "not base64!", "userAgent": js_ua(), "protocol": "1.2"}), "Invalid token"),
        (json!({"token": forged, "userAgent": js_ua(), "protocol": "1.2"}), "Invalid token signature"),
        (json!({"token": good, "userAgent": {"sdk": {}}, "protocol": "1.2"}), "User agent info is incorrect"),
        (json!({"token": good, "protocol": "1.2"}), "User agent info is incorrect"),
        (json!({"token": good, "userAgent": js_ua()}), "Unknown client protocol: legacy clients are not supported"),
        (
            json!({"token": good, "userAgent": js_ua(), "protocol": "9.9"}),
            "Unknown client protocol: 9.9 (owt-rs speaks 1.0, 1.1 and 1.2)",
        ),
        (json!("a string"), "Invalid login request"),
        (json!([1, 2, 3]), "Invalid login request"),
        (json!({"token": 42, "userAgent": js_ua(), "protocol": "1.2"}), "Invalid token"),
    ];
    for (request, message) in cases {
        let mut client = Client::connect(4, &server);
        assert_eq!(client.error("login", Some(request.clone())), message, "{request}");
        client.event("disconnect");
    }
    // The good token was never consumed by the refused attempts: it works once, then never.
    let mut client = Client::connect(4, &server);
    client.login(&good);
    let mut again = Client::connect(4, &server);
    assert_eq!(
        again.error("login", Some(json!({"token": good, "userAgent": js_ua(), "protocol": "1.2"}))),
        "Token does NOT exist"
    );
    // A token older than its lifetime.
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let key = store.token_key().unwrap();
    let old = owt_store::TokenRecord {
        id: "6b0000000000000000000001".into(),
        room_id: room.clone(),
        service_id: server.super_id.clone(),
        user: "late".into(),
        role: "presenter".into(),
        origin: "{}".into(),
        code: "12345678901".into(),
        host: server.token_host(),
        secure: false,
        domain: None,
        created_ms: crate::support::now_ms() as i64 - 181_000,
    };
    store.insert_token(&old).unwrap();
    let expired = owt_auth::Token::new(&key, &old.id, &server.token_host(), false, None).encode();
    let mut late = Client::connect(4, &server);
    let message = late.error("login", Some(json!({"token": expired, "userAgent": js_ua(), "protocol": "1.2"})));
    assert_eq!(message, "Expired", "the token record is read before old tokens are purged");
    // The logged-in client was not disturbed by any of this.
    client.ok("text", Some(json!({"to": "all", "message": "still here"})));
    assert_eq!(client.notification("text")["message"], "still here");
}

#[test]
fn room_limits_and_roles_are_enforced_at_login() {
    let server = TestServer::start();
    let room = server
        .call("POST", "/v1/rooms", Some(json!({"name": "small", "options": {"participantLimit": 1}})), Auth::Super)
        .ok_json()["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut first = Client::connect(4, &server);
    first.login(&token(&server, &room, "a", "presenter"));
    let mut second = Client::connect(4, &server);
    let message = second.error(
        "login",
        Some(json!({"token": token(&server, &room, "b", "presenter"), "userAgent": js_ua(), "protocol": "1.2"})),
    );
    assert_eq!(message, "Room is full");
    // A role removed from the room after the token was made.
    let late_token = token(&server, &server.default_room, "c", "sip");
    let roles = json!({"roles": [{"role": "presenter", "publish": {"audio": true, "video": true}, "subscribe": {"audio": true, "video": true}}]});
    server.call("PUT", &format!("/v1/rooms/{}", server.default_room), Some(roles), Auth::Super).ok_json();
    let mut third = Client::connect(4, &server);
    assert_eq!(
        third.error("login", Some(json!({"token": late_token, "userAgent": js_ua(), "protocol": "1.2"}))),
        "Invalid role"
    );
}

#[test]
fn requests_before_login_and_malformed_requests_get_errors() {
    let server = TestServer::start();
    let mut client = Client::connect(4, &server);
    for event in ["logout", "refreshReconnectionTicket"] {
        assert_eq!(client.error(event, None), "Illegal request", "{event}");
    }
    for event in
        ["text", "publish", "subscribe", "soac", "unpublish", "unsubscribe", "stream-control", "subscription-control"]
    {
        assert_eq!(client.error(event, Some(json!({"id": "x"}))), "Illegal request", "{event}");
    }
    client.login(&token(&server, &server.default_room, "p", "presenter"));
    let malformed = [
        ("publish", json!({"media": {"tracks": "none"}})),
        ("publish", json!({"media": {"tracks": []}})),
        ("publish", json!({"media": {"tracks": [{"type": "data", "mid": "0"}]}})),
        ("subscribe", json!({"media": {"tracks": [{"type": "video", "mid": "0", "from": "nope"}]}})),
        ("soac", json!({"signaling": {"type": "offer"}})),
        ("unpublish", json!({"id": 7})),
        ("unsubscribe", json!({})),
        ("publish", json!(null)),
    ];
    for (event, data) in malformed {
        let message = client.error(event, Some(data.clone()));
        assert!(!message.is_empty(), "{event} {data}");
    }
    // Arbitrary argument shapes, without an ack: nothing breaks.
    client.send(json!({"op": "raw", "event": "login", "args": [1, 2, 3]}));
    client.send(json!({"op": "raw", "event": "no-such-event", "args": [{"a": 1}]}));
    client.ok("text", Some(json!({"to": "all", "message": "alive"})));
    // Media requests stop where a media node is needed, with an honest error.
    let message = client.error(
        "publish",
        Some(json!({"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"}]}, "transport": {"type": "webrtc"}})),
    );
    assert!(message.starts_with("No webrtc node available"), "{message}");
    let mut viewer = Client::connect(4, &server);
    viewer.login(&token(&server, &server.default_room, "v", "viewer"));
    let message = viewer.error(
        "publish",
        Some(json!({"media": {"tracks": [{"type": "video", "mid": "0", "source": "camera"}]}, "transport": {"type": "webrtc"}})),
    );
    assert_eq!(message, "unauthorized");
}

#[test]
fn oversized_messages_close_only_that_socket() {
    let server = start("");
    let mut big = Client::connect(4, &server);
    let mut other = Client::connect(4, &server);
    other.login(&token(&server, &server.default_room, "o", "presenter"));
    big.send(json!({"op": "raw", "event": "text", "args": [{"to": "all", "message": "x".repeat(2_000_000)}]}));
    big.event("disconnect");
    other.ok("text", Some(json!({"to": "all", "message": "fine"})));
    assert_eq!(other.notification("text")["message"], "fine");
}

#[test]
fn sockets_that_never_log_in_are_closed() {
    let mut server = TestServer::start();
    set_portal_keys(&mut server, "login_timeout = 1\n");
    let mut idle = Client::connect(4, &server);
    let started = Instant::now();
    idle.event("disconnect");
    assert!(started.elapsed() < Duration::from_secs(4));
    let mut busy = Client::connect(4, &server);
    busy.login(&token(&server, &server.default_room, "b", "presenter"));
    busy.no_event("disconnect", Duration::from_millis(1500));
}

fn set_portal_keys(server: &mut TestServer, keys: &str) {
    let text =
        std::fs::read_to_string(server.config_path()).unwrap().replace("[portal]\n", &format!("[portal]\n{keys}"));
    std::fs::write(server.config_path(), text).unwrap();
    server.restart();
}

#[test]
fn relogin_moves_the_participant_and_replays_what_it_missed() {
    let mut server = TestServer::start();
    set_portal_keys(&mut server, "reconnection_timeout = 2\n");
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    let login = alice.login(&token(&server, &room, "alice", "presenter"));
    let alice_id = login["id"].as_str().unwrap().to_string();
    let ticket = alice.ok("refreshReconnectionTicket", None);
    assert_eq!(decode_json(ticket.as_str().unwrap())["participantId"], alice_id.as_str());
    let mut bob = Client::connect(4, &server);
    bob.login(&token(&server, &room, "bob", "presenter"));
    alice.notification("participant");

    alice.send(json!({"op": "disconnect"}));
    alice.event("disconnect");
    std::thread::sleep(Duration::from_millis(200));
    bob.ok("text", Some(json!({"to": "all", "message": "while you were away"})));
    bob.no_event("participant", Duration::from_millis(300));

    // JavaScript clients get the new ticket as a string, then the missed notifications.
    let mut back = Client::connect(4, &server);
    let new_ticket = back.ok("relogin", Some(ticket.clone()));
    assert_eq!(decode_json(new_ticket.as_str().expect("JS clients get a string"))["participantId"], alice_id.as_str());
    assert_eq!(back.notification("text")["message"], "while you were away");
    bob.ok("text", Some(json!({"to": alice_id, "message": "welcome back"})));
    assert_eq!(back.notification("text")["message"], "welcome back");

    let mut thief = Client::connect(4, &server);
    assert_eq!(thief.error("relogin", Some(json!("bm90IGEgdGlja2V0"))), "Invalid reconnection ticket");
    let mut forged = decode_json(ticket.as_str().unwrap());
    forged["notAfter"] = json!(forged["notAfter"].as_i64().unwrap() + 1);
    let forged = base64::engine::general_purpose::STANDARD.encode(forged.to_string());
    let mut thief = Client::connect(4, &server);
    assert_eq!(thief.error("relogin", Some(json!(forged))), "Invalid reconnection ticket signature");

    // Without relogin the participant leaves after reconnection_timeout.
    back.send(json!({"op": "disconnect"}));
    back.event("disconnect");
    assert_eq!(bob.notification("participant"), json!({"action": "leave", "data": alice_id}));
}

#[test]
fn native_clients_get_ticket_and_messages_on_relogin() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut native = Client::connect(4, &server);
    let ua = json!({"sdk": {"version": "5.1", "type": "C++"}});
    let login = native.ok(
        "login",
        Some(json!({"token": token(&server, &room, "n", "presenter"), "userAgent": ua, "protocol": "1.2"})),
    );
    let ticket = login["reconnectionTicket"].clone();
    let mut other = Client::connect(4, &server);
    other.login(&token(&server, &room, "o", "presenter"));
    native.send(json!({"op": "disconnect"}));
    native.event("disconnect");
    std::thread::sleep(Duration::from_millis(200));
    other.ok("text", Some(json!({"to": "all", "message": "m1"})));
    let mut back = Client::connect(4, &server);
    let result = back.ok("relogin", Some(ticket));
    assert!(result["ticket"].is_string(), "{result}");
    // The whole buffer of the old connection, numbered from 1 (OWT's message_buffer): what it
    // received (o joined) and what it missed (m1); the client skips what it had by `seq`.
    let messages = result["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!((messages[0]["event"].as_str(), messages[0]["seq"].as_u64()), (Some("participant"), Some(1)));
    assert_eq!(messages[0]["data"]["action"], "join");
    assert_eq!(messages[1]["event"], "text");
    assert_eq!(messages[1]["data"]["message"], "m1");
    assert_eq!(messages[1]["seq"], 2);
    // Browsers without reconnection support (unknown SDK type) get no ticket.
    let mut other_sdk = Client::connect(4, &server);
    let ua = json!({"sdk": {"version": "1", "type": "Python"}});
    let login = other_sdk.ok(
        "login",
        Some(json!({"token": token(&server, &room, "py", "presenter"), "userAgent": ua, "protocol": "1.2"})),
    );
    assert!(login.get("reconnectionTicket").is_none());
    assert_eq!(other_sdk.error("refreshReconnectionTicket", None), "Reconnection is not enabled.");
}

#[test]
fn rest_controls_live_participants_and_shows_streams() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    let alice_id = alice.login(&token(&server, &room, "alice", "presenter"))["id"].as_str().unwrap().to_string();
    let path = format!("/v1/rooms/{room}/participants/{alice_id}");
    let patched = server
        .call(
            "PATCH",
            &path,
            Some(json!([{"op": "replace", "path": "/permission/publish/video", "value": false}])),
            Auth::Super,
        )
        .ok_json();
    assert_eq!(patched["permission"]["publish"], json!({"audio": true, "video": false}));
    let message = alice.error(
        "publish",
        Some(json!({"media": {"tracks": [{"type": "video", "mid": "0", "source": "camera"}]}, "transport": {"type": "webrtc"}})),
    );
    assert_eq!(message, "unauthorized", "the REST permission change is in force");
    server
        .call("PATCH", &path, Some(json!([{"op": "replace", "path": "/permission/fly", "value": true}])), Auth::Super)
        .expect_error(400, 1201);

    let streams = server.call("GET", &format!("/v1/rooms/{room}/streams"), None, Auth::Super).ok_json();
    assert_eq!(streams[0]["id"], format!("{room}-common"));
    assert_eq!(streams[0]["media"]["video"]["format"], json!({"codec": "vp8"}), "v1 flattens video");
    let streams = server.call("GET", &format!("/v1.1/rooms/{room}/streams"), None, Auth::Super).ok_json();
    assert_eq!(streams[0]["media"]["video"]["original"][0]["format"], json!({"codec": "vp8"}));
    let one = server.call("GET", &format!("/v1/rooms/{room}/streams/{room}-common"), None, Auth::Super).ok_json();
    assert_eq!(one["info"]["label"], "common");
    server.call("GET", &format!("/v1/rooms/{room}/streams/nope"), None, Auth::Super).expect_error(404, 1004);
    let mix = json!([{"op": "add", "path": "/info/inViews", "value": "common"}]);
    let message = server
        .call("PATCH", &format!("/v1/rooms/{room}/streams/{room}-common"), Some(mix.clone()), Auth::Super)
        .expect_error(400, 1201);
    assert!(message.contains("unsupported operation"), "a view is not mixed into a view: {message}");
    // A mixed stream's layout: every stream named must be mixed into the view; malformed
    // layouts are refused with the item that is wrong.
    let view_path = format!("/v1/rooms/{room}/streams/{room}-common");
    let region =
        json!({"id": "1", "shape": "rectangle", "area": {"left": "0", "top": "0", "width": "1", "height": "1"}});
    for (body, expected) in [
        (
            json!([{"op": "replace", "path": "/info/layout", "value": [{"stream": "nope", "region": region}]}]),
            "not mixed",
        ),
        (json!([{"op": "replace", "path": "/info/layout", "value": [{"region": {"id": "1"}}]}]), "layout[0]"),
        (json!([{"op": "replace", "path": "/info/layout", "value": "big"}]), "array"),
        (json!([{"op": "replace", "path": "/info/layout/9/stream", "value": "x"}]), "no region 9"),
        (json!([{"op": "move", "path": "/info/layout"}]), "unsupported"),
        (json!([]), "1 to 64"),
    ] {
        let message = server.call("PATCH", &view_path, Some(body.clone()), Auth::Super).expect_error(400, 1201);
        assert!(message.contains(expected), "{body}: {message}");
    }
    let empty = json!([{"op": "replace", "path": "/info/layout", "value": [{"region": region}]}]);
    let view = server.call("PATCH", &view_path, Some(empty), Auth::Super).ok_json();
    assert_eq!(view["info"]["layout"][0]["region"]["id"], "1", "an empty one-region layout is taken: {view}");
    server.call("PATCH", &format!("/v1/rooms/{room}/streams/nope"), Some(mix), Auth::Super).expect_error(404, 1004);

    server.call("DELETE", &path, None, Auth::Super).ok_text();
    alice.event("drop");
    alice.event("disconnect");
    server.call("GET", &path, None, Auth::Super).expect_error(404, 1005);
    server.call("DELETE", &path, None, Auth::Super).expect_error(404, 1005);

    // Deleting a room drops everybody in it.
    let mut bob = Client::connect(4, &server);
    bob.login(&token(&server, &room, "bob", "presenter"));
    server.call("DELETE", &format!("/v1/rooms/{room}"), None, Auth::Super).ok_text();
    bob.event("drop");
}

/// 200 clients (Node, one process) join one room concurrently and leave; the portal keeps
/// serving and the room is empty afterwards.
#[test]
fn two_hundred_clients_join_and_leave() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let tokens: Vec<String> = (0..200).map(|i| token(&server, &room, &format!("user{i}"), "presenter")).collect();
    let file = server.path().join("tokens.json");
    std::fs::write(&file, serde_json::to_string(&tokens).unwrap()).unwrap();
    let out = Command::new("node")
        .arg(js_dir().join("join-load.js"))
        .arg(format!("http://127.0.0.1:{}", server.signaling_port))
        .arg(&file)
        .current_dir(js_dir())
        .output()
        .expect("node");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("join-load output: {} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "{report}");
    assert_eq!(report["joined"], 200, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["maxParticipantsSeen"], 200, "{report}");
    assert_eq!(report["loggedOut"], true, "every logout answered: {report}");
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = server.call("GET", &format!("/v1/rooms/{room}/participants"), None, Auth::Super).ok_json();
        if listed == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "participants left behind: {}", listed.as_array().unwrap().len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn signaling_over_tls_with_the_init_certificate() {
    let mut server = TestServer::start();
    set_portal_keys(&mut server, "ssl = true\n");
    let token = token(&server, &server.default_room, "secure", "presenter");
    assert_eq!(decode_json(&token)["secure"], true);
    for version in [4u8, 2] {
        let mut client = Client::spawn(version, &format!("https://127.0.0.1:{}", server.signaling_port), "polling");
        client.event("connect");
        let token = self::token(&server, &server.default_room, "secure", "presenter");
        assert_eq!(client.login(&token)["user"], "secure");
    }
    let mut plain = Client::spawn(4, &format!("http://127.0.0.1:{}", server.signaling_port), "polling");
    plain.event("connect_error");
}

#[test]
fn owtctl_lists_permits_and_drops_live_participants() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    let id = alice.login(&token(&server, &room, "alice", "presenter"))["id"].as_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = server.owtctl_url(args);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, listed) = run(&["participant", "list", &room, "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&listed).unwrap()[0]["id"], id.as_str());
    let (_, table) = run(&["participant", "list", &room]);
    assert!(table.starts_with("ID") && table.contains("alice"), "{table}");
    let (code, permitted) = run(&["participant", "permit", &room, &id, "publish", "video", "false", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&permitted).unwrap()["permission"]["publish"],
        json!({"audio": true, "video": false})
    );
    let (_, streams) = run(&["stream", "list", &room]);
    assert!(streams.contains("mixed") && streams.contains("640x480"), "{streams}");
    // Mixing needs a forward stream: an unknown one is not found, a mixed one cannot be mixed.
    let (code, _) = run(&["stream", "mix", &room, "nostream", "common"]);
    assert_eq!(code, Some(3), "unknown stream");
    let (code, _) = run(&["stream", "unmix", &room, &format!("{room}-common")]);
    assert_eq!(code, Some(6), "a view's own stream is not mixed into a view (400)");
    let (code, _) = run(&["participant", "show", &room, "nobody"]);
    assert_eq!(code, Some(3));
    let (code, _) = run(&["participant", "drop", &room, &id]);
    assert_eq!(code, Some(0));
    alice.event("drop");
}

/// `speaker` sends a text to everyone and both it and `listener` receive it: after whatever
/// came before, both sockets still serve requests and the room still routes notifications.
fn assert_both_served(speaker: &mut Client, listener: &mut Client, tag: &str) {
    speaker.ok("text", Some(json!({"to": "all", "message": tag})));
    for client in [speaker, listener] {
        while client.notification("text")["message"] != tag {}
    }
}

/// A publish request as JS SDK 5.1 sends it, on a new transport or on `transport` (audio
/// on mid 0, video on mid 1).
fn publish_request(kind: &str, transport: Option<&str>) -> Value {
    let (source, mid) = if kind == "audio" { ("mic", "0") } else { ("camera", "1") };
    let mut request =
        json!({"media": {"tracks": [{"type": kind, "mid": mid, "source": source}]}, "transport": {"type": "webrtc"}});
    if let Some(id) = transport {
        request["transport"]["id"] = json!(id);
    }
    request
}

#[test]
fn media_requests_with_bad_or_unknown_ids_get_the_owt_error_strings() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    alice.login(&token(&server, &room, "alice", "presenter"));
    let mut bob = Client::connect(2, &server);
    bob.login(&token(&server, &room, "bob", "presenter"));
    let unknown = "0123456789abcdef0123456789abcdef";
    let offer = json!({"type": "offer", "sdp": "v=0\r\n"});
    let cases: Vec<(&str, Value, String)> = vec![
        // Ids must match /^[0-9a-zA-Z\-]+$/ (spec §1.12).
        ("unpublish", json!({"id": 7}), "Invalid stream id".into()),
        ("unpublish", json!({"id": "no spaces!"}), "Invalid stream id".into()),
        ("unpublish", json!({}), "Invalid stream id".into()),
        ("unsubscribe", json!({"id": 7}), "Invalid subscription id".into()),
        ("unsubscribe", json!({}), "Invalid subscription id".into()),
        ("stream-control", json!({"id": 7, "operation": "pause", "data": "av"}), "Invalid stream id".into()),
        ("subscription-control", json!({"operation": "pause", "data": "av"}), "Invalid subscription id".into()),
        // soac: the id must be a string (spec §1.9).
        ("soac", json!({"signaling": offer}), "Invalid soac id".into()),
        ("soac", json!({"id": 5, "signaling": offer}), "Invalid soac id".into()),
        // Well-formed ids of nothing.
        ("unpublish", json!({"id": unknown}), "Stream does NOT exist".into()),
        ("unsubscribe", json!({"id": unknown}), "Subscription does NOT exist".into()),
        ("stream-control", json!({"id": unknown, "operation": "pause", "data": "av"}), "Stream does NOT exist".into()),
        (
            "subscription-control",
            json!({"id": unknown, "operation": "play", "data": "audio"}),
            "Subscription does NOT exist".into(),
        ),
        ("soac", json!({"id": unknown, "signaling": offer}), format!("Transport {unknown} does NOT exist")),
        ("publish", publish_request("audio", Some(unknown)), format!("Transport {unknown} does NOT exist")),
        (
            "subscribe",
            json!({"media": {"tracks": [{"type": "video", "mid": "0", "from": unknown}]}}),
            format!("Stream does NOT exist: {unknown}"),
        ),
        // stream-control / subscription-control: operation and data (spec §1.12; §1.14 item 7:
        // querybwe is rejected).
        (
            "stream-control",
            json!({"id": unknown, "operation": "explode", "data": "av"}),
            "Invalid stream-control operation".into(),
        ),
        (
            "stream-control",
            json!({"id": unknown, "operation": "pause", "data": "smell"}),
            "Invalid track kind: data must be audio, video or av".into(),
        ),
        (
            "subscription-control",
            json!({"id": unknown, "operation": "querybwe"}),
            "Invalid subscription-control operation".into(),
        ),
        (
            "subscription-control",
            json!({"id": unknown, "operation": "pause", "data": 7}),
            "Invalid track kind: data must be audio, video or av".into(),
        ),
        (
            "subscription-control",
            json!({"id": unknown, "operation": "update", "data": "bigger"}),
            "Invalid subscription update: data must be {audio?, video?}".into(),
        ),
    ];
    for (index, (event, data, expected)) in cases.into_iter().enumerate() {
        assert_eq!(alice.error(event, Some(data.clone())), expected, "{event} {data}");
        assert_both_served(&mut alice, &mut bob, &format!("after case {index}"));
    }
}

#[test]
fn permissions_and_the_input_limit_refuse_media_requests_before_a_node_is_scheduled() {
    let server = TestServer::start();
    let roles = json!([
        {"role": "presenter", "publish": {"audio": true, "video": true}, "subscribe": {"audio": true, "video": true}},
        {"role": "deaf", "publish": {"audio": false, "video": false}, "subscribe": {"audio": false, "video": true}},
    ]);
    let room = server.create_room(Auth::Super, json!({"name": "full", "options": {"inputLimit": 0, "roles": roles}}));
    let room = room["_id"].as_str().unwrap().to_string();
    let mut presenter = Client::connect(4, &server);
    presenter.login(&token(&server, &room, "p", "presenter"));
    let mut deaf = Client::connect(3, &server);
    deaf.login(&token(&server, &room, "d", "deaf"));
    // No webrtc node is registered: each refusal comes from the room, not from scheduling.
    assert_eq!(presenter.error("publish", Some(publish_request("audio", None))), "Too many inputs");
    assert_both_served(&mut presenter, &mut deaf, "after Too many inputs");
    assert_eq!(deaf.error("publish", Some(publish_request("video", None))), "unauthorized");
    assert_both_served(&mut deaf, &mut presenter, "after publish unauthorized");
    let from_mix =
        |kind: &str| json!({"media": {"tracks": [{"type": kind, "mid": "0", "from": format!("{room}-common")}]}});
    assert_eq!(deaf.error("subscribe", Some(from_mix("audio"))), "unauthorized");
    assert_both_served(&mut deaf, &mut presenter, "after subscribe unauthorized");
    // Video is the deaf role's right: that request gets past the permission check.
    assert_ne!(deaf.error("subscribe", Some(from_mix("video"))), "unauthorized");
    assert_both_served(&mut presenter, &mut deaf, "after subscribe video");
}

#[test]
fn login_state_is_enforced_on_one_socket_and_relogin_refusals_use_owt_strings() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    let login = alice.login(&token(&server, &room, "alice", "presenter"));
    let alice_id = login["id"].as_str().unwrap().to_string();
    let ticket = login["reconnectionTicket"].as_str().unwrap().to_string();
    let mut bob = Client::connect(4, &server);
    bob.login(&token(&server, &room, "bob", "presenter"));

    // A second login on a logged-in socket: refused, the session and the token untouched.
    let spare = token(&server, &room, "spare", "presenter");
    let again = json!({"token": spare, "userAgent": js_ua(), "protocol": "1.2"});
    assert_eq!(alice.error("login", Some(again)), "Connection is in service");
    assert_both_served(&mut alice, &mut bob, "after a second login");
    let mut carol = Client::connect(4, &server);
    assert_eq!(carol.login(&spare)["user"], "spare", "the refused login did not use up the token");

    // After logout the socket is back to not logged in.
    alice.ok("logout", None);
    assert_eq!(bob.notification("participant")["data"]["user"], "spare");
    assert_eq!(bob.notification("participant"), json!({"action": "leave", "data": alice_id}));
    for (event, data) in [
        ("logout", None),
        ("refreshReconnectionTicket", None),
        ("text", Some(json!({"to": "all", "message": "ghost"}))),
        ("publish", Some(publish_request("audio", None))),
        ("unpublish", Some(json!({"id": "abc"}))),
    ] {
        assert_eq!(alice.error(event, data), "Illegal request", "{event} after logout");
    }
    assert_both_served(&mut bob, &mut carol, "after requests of a logged-out socket");
    // relogin with the ticket of the participant that logged out.
    let mut stale = Client::connect(4, &server);
    assert_eq!(stale.error("relogin", Some(json!(ticket))), "Client does NOT exist");
    stale.event("disconnect");
    let back = alice.login(&token(&server, &room, "alice", "presenter"));
    assert_eq!(back["id"], alice_id.as_str(), "the participant id is the socket id (spec §1.1)");
    assert_both_served(&mut alice, &mut bob, "after logging in again");
    // A ticket outside its validity window (checked before the signature, as OWT does).
    let now = crate::support::now_ms() as i64;
    for (not_before, not_after) in [(now - 700_000, now - 100_000), (now + 100_000, now + 700_000)] {
        let mut forged = decode_json(&ticket);
        forged["notBefore"] = json!(not_before);
        forged["notAfter"] = json!(not_after);
        let forged = base64::engine::general_purpose::STANDARD.encode(forged.to_string());
        let mut late = Client::connect(4, &server);
        assert_eq!(late.error("relogin", Some(json!(forged))), "Ticket is expired");
        late.event("disconnect");
    }
    assert_both_served(&mut bob, &mut alice, "after refused relogins");
    // relogin on a logged-in socket, even with its own valid ticket.
    let current = carol.ok("refreshReconnectionTicket", None);
    assert_eq!(carol.error("relogin", Some(current)), "Connection is in service");
    assert_both_served(&mut carol, &mut bob, "after a relogin on a logged-in socket");
}

#[test]
fn another_participants_transport_does_not_exist_for_publish_subscribe_and_soac() {
    let server = TestServer::start();
    let _webrtc = crate::cluster::spawn_worker(&server, "webrtc", "webrtc-t");
    let _mixer = crate::cluster::spawn_worker(&server, "mixer", "mixer-t");
    crate::cluster::wait_for(&server, "webrtc and mixer registered", |w| w.len() == 2);
    let room = server.default_room.clone();
    let mut alice = Client::connect(4, &server);
    alice.login(&token(&server, &room, "alice", "presenter"));
    let mut bob = Client::connect(4, &server);
    bob.login(&token(&server, &room, "bob", "presenter"));
    let published = alice.ok("publish", Some(publish_request("audio", None)));
    let transport = published["transportId"].as_str().expect("transportId").to_string();
    let not_yours = format!("Transport {transport} does NOT exist");

    assert_eq!(bob.error("publish", Some(publish_request("video", Some(&transport)))), not_yours);
    assert_both_served(&mut bob, &mut alice, "after publish on another's transport");
    let offer = json!({"id": transport, "signaling": {"type": "offer", "sdp": "v=0\r\n"}});
    assert_eq!(bob.error("soac", Some(offer)), not_yours);
    assert_both_served(&mut bob, &mut alice, "after soac on another's transport");
    let subscribe = json!({"media": {"tracks": [{"type": "video", "mid": "2", "from": format!("{room}-common")}]},
        "transport": {"type": "webrtc", "id": transport}});
    assert_eq!(bob.error("subscribe", Some(subscribe.clone())), not_yours);
    assert_both_served(&mut bob, &mut alice, "after subscribe on another's transport");
    let workers = crate::cluster::cluster(&server);
    let mixer = workers.iter().find(|w| w["kind"] == "mixer").unwrap();
    assert_eq!(mixer["tasks"], 0, "a refused subscription starts no view: {workers:?}");

    // The owner's transport is untouched: it takes another session.
    let second = alice.ok("publish", Some(publish_request("video", Some(&transport))));
    assert_eq!(second["transportId"], transport.as_str());
    let subscribed = alice.ok("subscribe", Some(subscribe));
    assert_eq!(subscribed["transportId"], transport.as_str());
    let workers = crate::cluster::cluster(&server);
    let webrtc = workers.iter().find(|w| w["kind"] == "webrtc").unwrap();
    assert_eq!(webrtc["tasks"], 1, "one transport, bound once: {workers:?}");
}

/// The mixed stream of `room` in a login result.
fn mixed_stream(login: &Value, room: &str) -> Value {
    let streams = login["room"]["streams"].as_array().expect("room.streams");
    streams.iter().find(|s| s["id"] == format!("{room}-common")).cloned().expect("the mixed stream")
}

#[test]
fn protocol_1_1_and_1_0_clients_see_stream_info_in_their_shape_and_1_2_clients_in_theirs() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let mut v11 = Client::connect(4, &server);
    let mixed_v11 = mixed_stream(&v11.login_with(&token(&server, &room, "four", "presenter"), "1.1"), &room);
    let mut v10 = Client::connect(2, &server);
    let login_v10 = v10.login_with(&token(&server, &room, "old", "presenter"), "1.0");
    let (v10_id, mixed_v10) = (login_v10["id"].clone(), mixed_stream(&login_v10, &room));
    let mut current = Client::connect(3, &server);
    let mixed_v12 = mixed_stream(&current.login(&token(&server, &room, "five", "presenter")), &room);

    let tracks = mixed_v12["media"]["tracks"].as_array().expect("1.2: media.tracks");
    let audio = tracks.iter().find(|t| t["type"] == "audio").expect("audio track");
    let video = tracks.iter().find(|t| t["type"] == "video").expect("video track");
    assert!(mixed_v12["media"].get("audio").is_none(), "{mixed_v12}");

    assert_eq!(mixed_v11["type"], "mixed");
    assert_eq!(mixed_v11["info"], mixed_v12["info"]);
    assert!(mixed_v11["media"].get("tracks").is_none(), "{mixed_v11}");
    assert_eq!(
        mixed_v11["media"]["audio"],
        json!({"status": audio["status"], "format": audio["format"], "optional": audio["optional"]})
    );
    assert_eq!(
        mixed_v11["media"]["video"],
        json!({"status": video["status"], "optional": video["optional"],
               "original": [{"format": video["format"], "parameters": video["parameters"]}]})
    );
    assert!(video["parameters"]["resolution"]["width"].is_u64(), "{video}");

    assert!(mixed_v10["media"].get("tracks").is_none(), "{mixed_v10}");
    assert_eq!(mixed_v10["media"]["audio"], mixed_v11["media"]["audio"]);
    assert_eq!(
        mixed_v10["media"]["video"],
        json!({"status": video["status"], "optional": video["optional"],
               "format": video["format"], "parameters": video["parameters"]})
    );

    // Requests in the 1.1 form, refused before a media node is needed when malformed.
    let refused = [
        (json!({"media": {"audio": false, "video": false}}), "Invalid request: media.audio and media.video are both false"),
        (json!({"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"}]}}), "Invalid request: media.audio and media.video are both false"),
        (json!({"media": {"audio": {"source": "camera"}, "video": false}}), "Invalid request: media.audio.source must be one of [\"mic\", \"screen-cast\", \"raw-file\", \"encoded-file\"]"),
        (json!({"media": {"audio": "mic", "video": false}}), "Invalid request: media.audio must be an object or false"),
        (json!(null), "Invalid request: media must be an object"),
    ];
    for (request, message) in &refused {
        assert_eq!(v11.error("publish", Some(request.clone())), *message, "{request}");
    }
    assert_eq!(
        v10.error("subscribe", Some(json!({"media": {"audio": {"from": 5}, "video": false}}))),
        "Invalid request: media.audio.from must be a stream id"
    );
    assert_eq!(
        v10.error("subscribe", Some(json!({"media": {"audio": false, "video": {"from": "nope"}}}))),
        "Stream does NOT exist: nope"
    );
    // A well-formed 1.1 publication goes on to scheduling (no webrtc node here).
    let publish = json!({"media": {"audio": {"source": "mic"}, "video": {"source": "camera"}}, "attributes": {"n": 1}});
    let message = v11.error("publish", Some(publish.clone()));
    assert!(message.starts_with("No webrtc node available"), "{message}");
    // The same request from a 1.2 client is not a track list.
    assert_eq!(current.error("publish", Some(publish)), "Invalid request: media.tracks must be an array");
    assert_both_served(&mut v11, &mut current, "after 1.1 refusals");
    assert_both_served(&mut v10, &mut v11, "after 1.0 refusals");
    // Notifications the protocols share keep their shape.
    v10.ok("logout", None);
    for client in [&mut v11, &mut current] {
        let leave = json!({"action": "leave", "data": v10_id});
        while client.notification("participant") != leave {}
    }
}

/// A publish offer as a 4.x SDK's PeerConnection makes it: audio on mid 0, video on mid 1.
const OFFER_AUDIO_VIDEO: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS owt\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:vV3r\r\n\
a=ice-pwd:kKx0lq0dP1yOqIbHQWc3cM7n\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 5B:9E:0C:6F:3D:43:4F:BA:16:27:5E:8B:3E:1A:91:C4:62:35:0A:DE:A8:17:7E:8F:4A:38:93:11:C5:6E:0D:21\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendonly\r\n\
a=msid:owt a0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=ssrc:1001 cname:owt\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:vV3r\r\n\
a=ice-pwd:kKx0lq0dP1yOqIbHQWc3cM7n\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 5B:9E:0C:6F:3D:43:4F:BA:16:27:5E:8B:3E:1A:91:C4:62:35:0A:DE:A8:17:7E:8F:4A:38:93:11:C5:6E:0D:21\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendonly\r\n\
a=msid:owt v0\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=ssrc:1002 cname:owt\r\n";

#[test]
fn protocol_1_1_and_1_0_sessions_each_get_their_own_transport_and_an_answer() {
    let server = TestServer::start();
    let _webrtc = crate::cluster::spawn_worker(&server, "webrtc", "webrtc-v11");
    let _mixer = crate::cluster::spawn_worker(&server, "mixer", "mixer-v11");
    crate::cluster::wait_for(&server, "webrtc and mixer registered", |w| w.len() == 2);
    let room = server.default_room.clone();
    let mut v11 = Client::connect(4, &server);
    v11.login_with(&token(&server, &room, "four", "presenter"), "1.1");
    let mut current = Client::connect(4, &server);
    current.login(&token(&server, &room, "five", "presenter"));

    let publish = json!({"media": {"audio": {"source": "mic"},
        "video": {"source": "camera", "parameters": {"resolution": {"width": 640, "height": 480}, "framerate": 30}}},
        "attributes": {"by": "4.x"}});
    let published = v11.ok("publish", Some(publish));
    let id = published["id"].as_str().expect("id").to_string();
    assert_eq!(published, json!({"id": id, "transportId": id}), "1.1: the transport is the session");
    v11.ok("soac", Some(json!({"id": id, "signaling": {"type": "offer", "sdp": OFFER_AUDIO_VIDEO}})));
    let progress = v11.notification("progress");
    assert_eq!((&progress["id"], &progress["status"]), (&json!(id), &json!("soac")), "{progress}");
    assert_eq!(progress["data"]["type"], "answer");
    let answer = progress["data"]["sdp"].as_str().expect("answer sdp");
    for line in ["a=mid:0", "a=mid:1", "a=recvonly", "opus/48000", "VP8/90000"] {
        assert!(answer.contains(line), "answer has {line}:\n{answer}");
    }

    // A second session, audio only: its own transport again, its audio on mid 0.
    let second = v11.ok("publish", Some(json!({"media": {"audio": {"source": "mic"}, "video": false}})));
    let second_id = second["id"].as_str().expect("id").to_string();
    assert_eq!(second, json!({"id": second_id, "transportId": second_id}));
    assert_ne!(second_id, id);
    // The 1.0 form of subscribe, for the mixed stream, on a transport of its own too.
    let mut v10 = Client::connect(2, &server);
    v10.login_with(&token(&server, &room, "old", "viewer"), "1.0");
    let mixed = format!("{room}-common");
    let subscribed = v10.ok(
        "subscribe",
        Some(json!({"media": {"audio": {"from": mixed}, "video": {"from": mixed, "simulcastRid": "h"}}})),
    );
    let sub_id = subscribed["id"].as_str().expect("id").to_string();
    assert_eq!(subscribed, json!({"id": sub_id, "transportId": sub_id}));
    assert_eq!(
        v10.error("publish", Some(json!({"media": {"audio": {"source": "mic"}, "video": false}}))),
        "unauthorized"
    );
    let workers = crate::cluster::cluster(&server);
    let webrtc = workers.iter().find(|w| w["kind"] == "webrtc").unwrap();
    assert_eq!(webrtc["tasks"], 3, "one transport per session: {workers:?}");

    // The 1.2 client beside them still speaks track lists and shared transports.
    let own = current.ok("publish", Some(publish_request("audio", None)));
    let own_transport = own["transportId"].as_str().expect("transportId").to_string();
    let again = current.ok("publish", Some(publish_request("video", Some(&own_transport))));
    assert_eq!(again["transportId"], own_transport.as_str());
    v11.ok("unpublish", Some(json!({"id": second_id})));
    v10.ok("unsubscribe", Some(json!({"id": sub_id})));
    assert_both_served(&mut v11, &mut current, "after 1.1 and 1.2 sessions");
}

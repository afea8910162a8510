//! Every REST endpoint of a real owt-portal, table-driven (spec/owt-compat.md §2.2-§2.4):
//! refused MAuth headers (none, wrong key, unknown service, malformed, replayed) and another
//! service's credentials on each endpoint, hostile bodies on tokens, services, rooms,
//! participants and streams, the media resources this release answers with the OWT "Operation
//! failed" error, and the token `domain` field. Every refusal is checked to change nothing:
//! services, rooms, live participants and streams, issued tokens.

use crate::rest::{room_ids, AUTH_MESSAGE, UNKNOWN_ID};
use crate::support::{now_ms, Auth, TestServer};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// A participant logged in to a room over Socket.IO (the npm client driven by
/// `tests/js/owt-client.js`), so that the room is running and has a participant and a mixed
/// stream for the REST API to act on.
struct LiveParticipant {
    child: Child,
    _stdin: ChildStdin,
    id: String,
}

impl LiveParticipant {
    fn join(server: &TestServer, room: &str, user: &str) -> LiveParticipant {
        let token = server
            .call(
                "POST",
                &format!("/v1/rooms/{room}/tokens"),
                Some(json!({"user": user, "role": "presenter"})),
                Auth::Super,
            )
            .ok_text()
            .to_string();
        let js_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
        let mut child = Command::new("node")
            .arg(js_dir.join("owt-client.js"))
            .arg("4")
            .arg(format!("http://127.0.0.1:{}", server.signaling_port))
            .arg("polling")
            .current_dir(&js_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (npm packages: make test-deps)");
        let lines = Self::lines(child.stdout.take().expect("stdout"));
        let mut stdin = child.stdin.take().expect("stdin");
        let next = |what: &str| -> Value {
            lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no {what} from the Socket.IO client"))
        };
        let connected = next("connect");
        assert_eq!(connected["event"], json!("connect"), "{connected}");
        let login = json!({"op": "emit", "event": "login", "id": 1, "data": {
            "token": token, "userAgent": {"sdk": {"version": "5.1", "type": "JavaScript"}}, "protocol": "1.2"}});
        writeln!(stdin, "{login}").expect("write login");
        stdin.flush().expect("flush");
        let ack = loop {
            let line = next("login ack");
            if line["ack"] == json!(1) {
                break line;
            }
        };
        assert_eq!(ack["args"][0], json!("ok"), "login: {ack}");
        let id = ack["args"][1]["id"].as_str().unwrap_or_else(|| panic!("participant id: {ack}")).to_string();
        LiveParticipant { child, _stdin: stdin, id }
    }

    fn lines(stdout: std::process::ChildStdout) -> Receiver<Value> {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        rx
    }
}

impl Drop for LiveParticipant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a valid but foreign (non-super, not owning the room) service gets from an endpoint.
#[derive(Clone, Copy, Debug)]
enum Stranger {
    /// 403/1102: services and cluster endpoints are for the super service.
    Forbidden,
    /// 404/1003: the room is not one of the caller's.
    RoomNotFound,
    /// The call is legitimate for any service (its own room list, a new room).
    Allowed,
}

struct Endpoint {
    method: &'static str,
    path: String,
    body: Option<Value>,
    stranger: Stranger,
}

fn endpoint(method: &'static str, path: String, body: Option<Value>, stranger: Stranger) -> Endpoint {
    Endpoint { method, path, body, stranger }
}

/// Every endpoint of spec §2.4 with a well-formed body, on `room` with its participant and
/// mixed stream, `service` (a service other than the super one) and the super service.
fn every_endpoint(room: &str, participant: &str, stream: &str, service: &str, super_service: &str) -> Vec<Endpoint> {
    use Stranger::*;
    let media = json!({"audio": {"from": stream}, "video": {"from": stream}});
    let control = json!([{"op": "replace", "path": "/media/audio/status", "value": "inactive"}]);
    let mut all = vec![
        endpoint("GET", "/services".into(), None, Forbidden),
        endpoint("POST", "/services".into(), Some(json!({"name": "intruder", "key": "k"})), Forbidden),
        endpoint("GET", format!("/services/{service}"), None, Allowed),
        endpoint("DELETE", format!("/services/{service}"), None, Forbidden),
        endpoint("GET", format!("/services/{super_service}"), None, Forbidden),
        endpoint("DELETE", format!("/services/{super_service}"), None, Forbidden),
        endpoint("GET", "/v1/cluster/nodes".into(), None, Forbidden),
        endpoint("GET", "/v1.1/cluster/nodes".into(), None, Forbidden),
        endpoint("GET", "/v1.1/stream-engine/nodes".into(), None, Allowed),
        endpoint("GET", "/v1/rooms".into(), None, Allowed),
        endpoint("GET", "/v1/rooms?page=1&per_page=5".into(), None, Allowed),
        endpoint("POST", "/v1/rooms".into(), Some(json!({"name": "intruder"})), Allowed),
        endpoint("POST", "/v1.1/rooms".into(), Some(json!({"name": "intruder"})), Allowed),
    ];
    for version in ["v1", "v1.1"] {
        let base = format!("/{version}/rooms/{room}");
        all.extend([
            endpoint("GET", base.clone(), None, RoomNotFound),
            endpoint("PUT", base.clone(), Some(json!({"name": "hijacked", "inputLimit": 1})), RoomNotFound),
            endpoint("PATCH", base.clone(), Some(json!({"participantLimit": 2})), RoomNotFound),
            endpoint("DELETE", base.clone(), None, RoomNotFound),
            endpoint("POST", format!("{base}/tokens"), Some(json!({"user": "u", "role": "presenter"})), RoomNotFound),
            endpoint("GET", format!("{base}/participants"), None, RoomNotFound),
            endpoint("GET", format!("{base}/participants/{participant}"), None, RoomNotFound),
            endpoint(
                "PATCH",
                format!("{base}/participants/{participant}"),
                Some(json!([{"op": "replace", "path": "/permission/publish", "value": false}])),
                RoomNotFound,
            ),
            endpoint("DELETE", format!("{base}/participants/{participant}"), None, RoomNotFound),
            endpoint("GET", format!("{base}/streams"), None, RoomNotFound),
            endpoint("GET", format!("{base}/streams/{stream}"), None, RoomNotFound),
            endpoint("GET", format!("{base}/streams/{stream}/stats"), None, RoomNotFound),
            endpoint(
                "PATCH",
                format!("{base}/streams/{stream}"),
                Some(json!([{"op": "replace", "path": "/media/video/status", "value": "inactive"}])),
                RoomNotFound,
            ),
            endpoint("DELETE", format!("{base}/streams/{stream}"), None, RoomNotFound),
            endpoint(
                "POST",
                format!("{base}/streaming-ins"),
                Some(json!({"connection": {"url": "rtsp://127.0.0.1:1/in"}, "media": {"audio": "auto", "video": "auto"}})),
                RoomNotFound,
            ),
            endpoint("DELETE", format!("{base}/streaming-ins/{UNKNOWN_ID}"), None, RoomNotFound),
            endpoint("GET", format!("{base}/streaming-outs"), None, RoomNotFound),
            endpoint(
                "POST",
                format!("{base}/streaming-outs"),
                Some(json!({"protocol": "rtmp", "url": "rtmp://127.0.0.1:1/live", "media": media})),
                RoomNotFound,
            ),
            endpoint("PATCH", format!("{base}/streaming-outs/{UNKNOWN_ID}"), Some(control.clone()), RoomNotFound),
            endpoint("DELETE", format!("{base}/streaming-outs/{UNKNOWN_ID}"), None, RoomNotFound),
            endpoint("GET", format!("{base}/recordings"), None, RoomNotFound),
            endpoint("POST", format!("{base}/recordings"), Some(json!({"container": "auto", "media": media})), RoomNotFound),
            endpoint("PATCH", format!("{base}/recordings/{UNKNOWN_ID}"), Some(control.clone()), RoomNotFound),
            endpoint("DELETE", format!("{base}/recordings/{UNKNOWN_ID}"), None, RoomNotFound),
            endpoint("GET", format!("{base}/sipcalls"), None, RoomNotFound),
            endpoint(
                "POST",
                format!("{base}/sipcalls"),
                Some(json!({"peerURI": "sip:peer@127.0.0.1", "mediaIn": {"audio": true, "video": false},
                            "mediaOut": {"audio": {"from": stream}, "video": false}})),
                RoomNotFound,
            ),
            endpoint("PATCH", format!("{base}/sipcalls/{UNKNOWN_ID}"), Some(control.clone()), RoomNotFound),
            endpoint("DELETE", format!("{base}/sipcalls/{UNKNOWN_ID}"), None, RoomNotFound),
            endpoint("GET", format!("{base}/analytics"), None, RoomNotFound),
            endpoint(
                "POST",
                format!("{base}/analytics"),
                Some(json!({"algorithm": "dummy", "media": {"audio": false, "video": {"from": stream}}})),
                RoomNotFound,
            ),
            endpoint("DELETE", format!("{base}/analytics/{UNKNOWN_ID}"), None, RoomNotFound),
        ]);
    }
    all
}

/// Everything a refused request could have changed, as seen by the owners.
fn state(server: &TestServer, other: &Auth, room: &str) -> Value {
    let token_count = owt_store::Store::open(&server.db_path()).expect("open owt.db").token_count().expect("tokens");
    json!({
        "services": server.get("/services"),
        "superRooms": server.get("/v1/rooms"),
        "otherRooms": server.call("GET", "/v1/rooms", None, other.clone()).ok_json(),
        "room": server.get(&format!("/v1/rooms/{room}")),
        "participants": server.get(&format!("/v1/rooms/{room}/participants")),
        "streams": server.get(&format!("/v1.1/rooms/{room}/streams")),
        "streamingOuts": server.get(&format!("/v1/rooms/{room}/streaming-outs")),
        "recordings": server.get(&format!("/v1/rooms/{room}/recordings")),
        "tokens": token_count,
    })
}

/// Makes a fresh refused credential for each request (a new cnonce and timestamp).
type AuthMaker<'a> = Box<dyn Fn() -> Auth + 'a>;

#[test]
fn every_endpoint_refuses_bad_mauth_and_changes_nothing() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let other = server.create_service("other");
    let other_id = other["_id"].as_str().unwrap().to_string();
    let other_auth = Auth::service(&other);
    server.create_room(other_auth.clone(), json!({"name": "others"}));
    let alice = LiveParticipant::join(&server, &room, "alice");
    let stream = format!("{room}-common");
    let streams = server.get(&format!("/v1/rooms/{room}/streams"));
    assert!(
        streams.as_array().unwrap().iter().any(|s| s["id"] == json!(stream)),
        "the running room has its mixed stream: {streams}"
    );
    let before = state(&server, &other_auth, &room);
    assert_eq!(before["participants"].as_array().unwrap().len(), 1, "{before}");

    let (id, key) = (server.super_id.clone(), server.super_key.clone());
    let used = owt_auth::sign_header_now(&id, &key, now_ms());
    assert_eq!(server.call("GET", "/v1/rooms", None, Auth::Raw(used.clone())).status, 200);
    let refusals: Vec<(&str, AuthMaker)> = vec![
        ("no Authorization", Box::new(|| Auth::None)),
        ("wrong key", Box::new(|| Auth::Raw(owt_auth::sign_header_now(&id, "not-the-key", now_ms())))),
        ("another service's key", Box::new(|| Auth::Raw(owt_auth::sign_header_now(&id, "key-of-other", now_ms())))),
        ("unknown service", Box::new(|| Auth::Raw(owt_auth::sign_header_now(UNKNOWN_ID, &key, now_ms())))),
        (
            "malformed: truncated after the service id",
            Box::new(|| {
                let header = owt_auth::sign_header_now(&id, &key, now_ms());
                Auth::Raw(header.split(",mauth_cnonce").next().unwrap().to_string())
            }),
        ),
        ("malformed: not MAuth", Box::new(|| Auth::Raw("Bearer abc.def".into()))),
        (
            "malformed: spaces after commas",
            Box::new(|| Auth::Raw(owt_auth::sign_header_now(&id, &key, now_ms()).replace(',', ", "))),
        ),
        ("replayed", Box::new(|| Auth::Raw(used.clone()))),
    ];
    let endpoints = every_endpoint(&room, &alice.id, &stream, &other_id, &server.super_id);
    for (what, auth) in &refusals {
        for e in &endpoints {
            let reply = server.call(e.method, &e.path, e.body.clone(), auth());
            assert_eq!(reply.status, 401, "{what}: {} {} answered {}", e.method, e.path, reply.body);
            assert_eq!(reply.expect_error(401, 1101), AUTH_MESSAGE, "{what}: {} {}", e.method, e.path);
        }
        assert_eq!(state(&server, &other_auth, &room), before, "{what}: a refused request changed something");
    }

    // Valid credentials of a service that owns neither the services nor the room.
    for e in &endpoints {
        let reply = server.call(e.method, &e.path, e.body.clone(), other_auth.clone());
        match e.stranger {
            Stranger::Forbidden => {
                let message = reply.expect_error(403, 1102);
                assert!(message.starts_with("Permission denied"), "{} {}: {message}", e.method, e.path);
            }
            Stranger::RoomNotFound => {
                assert_eq!(reply.expect_error(404, 1003), "Room not found", "{} {}", e.method, e.path);
            }
            Stranger::Allowed => {}
        }
    }
    let after = state(&server, &other_auth, &room);
    for key in ["superRooms", "room", "participants", "streams", "streamingOuts", "recordings", "tokens"] {
        assert_eq!(after[key], before[key], "a foreign request changed {key}");
    }
    let ids = |state: &Value| -> Vec<Value> {
        state["services"].as_array().unwrap().iter().map(|s| s["_id"].clone()).collect()
    };
    assert_eq!(ids(&after), ids(&before), "no service created or deleted");
    // The only change: the two rooms the other service legitimately created for itself.
    let names: Vec<&Value> = after["otherRooms"].as_array().unwrap().iter().map(|r| &r["name"]).collect();
    assert_eq!(names, [&json!("others"), &json!("intruder"), &json!("intruder")]);
}

const FORM: &str = "application/x-www-form-urlencoded";
const PARSE: Option<&str> = Some("Failed to parse JSON body");

/// A request body the portal must refuse, and the 1201 error it must answer with.
struct Hostile<'a> {
    method: &'static str,
    path: String,
    body: &'a [u8],
    content_type: &'static str,
    status: u16,
    /// The exact error message, when it is fixed by OWT.
    message: Option<&'static str>,
}

impl<'a> Hostile<'a> {
    fn json(method: &'static str, path: &str, body: &'a [u8], status: u16, message: Option<&'static str>) -> Self {
        Hostile { method, path: path.to_string(), body, content_type: "application/json", status, message }
    }

    fn form(method: &'static str, path: &str, body: &'a [u8], message: Option<&'static str>) -> Self {
        Hostile { method, path: path.to_string(), body, content_type: FORM, status: 400, message }
    }
}

#[test]
fn hostile_bodies_on_tokens_services_rooms_participants_and_streams() {
    let mut server = TestServer::start();
    let room = server.default_room.clone();
    let other = server.create_service("other");
    let other_auth = Auth::service(&other);
    let alice = LiveParticipant::join(&server, &room, "alice");
    let stream = format!("{room}-common");
    let before = state(&server, &other_auth, &room);
    let tokens = format!("/v1/rooms/{room}/tokens");
    let huge = format!("{{\"user\": \"{}\", \"role\": \"presenter\"}}", "u".repeat(2 * 1024 * 1024));
    let participant = format!("/v1/rooms/{room}/participants/{}", alice.id);
    let room_path = format!("/v1/rooms/{room}");
    let stream_path = format!("/v1/rooms/{room}/streams/{stream}");
    let cases = vec![
        Hostile::json("POST", &tokens, b"{\"user\": \"u\", \"role\": ", 400, PARSE),
        Hostile::json("POST", &tokens, b"{'user': 'u', 'role': 'presenter'}", 400, PARSE),
        Hostile::json("POST", &tokens, b"[\"u\", \"presenter\"]", 400, None),
        Hostile::json("POST", &tokens, b"\"presenter\"", 400, None),
        Hostile::json("POST", &tokens, huge.as_bytes(), 413, None),
        Hostile::form("POST", &tokens, b"user=u&role=admin", Some("Name or role not valid")),
        Hostile::form("POST", &tokens, b"user=%ff&role=presenter", None),
        Hostile::form("POST", &tokens, b"user=u&role=presenter&admin=1", None),
        Hostile::form("POST", &tokens, b"user=u&role=pres%4", None),
        Hostile::json("POST", "/services", huge.as_bytes(), 413, None),
        Hostile::json("PUT", &room_path, huge.as_bytes(), 413, None),
        Hostile::json("PUT", &room_path, b"{\"name\": \"x\"", 400, PARSE),
        Hostile::json("PATCH", &participant, b"[{\"op\": \"replace\",", 400, PARSE),
        Hostile::json("PATCH", &participant, b"{op: replace}", 400, PARSE),
        Hostile::json("PATCH", &participant, huge.as_bytes(), 413, None),
        Hostile::json("PATCH", &participant, b"{\"op\": \"replace\"}", 400, None),
        // The body is parsed before the participant is looked up.
        Hostile::json("PATCH", &format!("/v1/rooms/{room}/participants/{UNKNOWN_ID}"), b"[{\"op\": ", 400, PARSE),
        Hostile::json("PATCH", &stream_path, b"[{\"op\": \"replace\",", 400, PARSE),
        Hostile::json("PATCH", &format!("/v1.1/rooms/{room}/streams/{stream}"), b"\xff\xfe[]", 400, PARSE),
        Hostile::json("PATCH", &stream_path, huge.as_bytes(), 413, None),
        Hostile::json("PATCH", &stream_path, b"42", 400, None),
        // The body is parsed before the room is looked up, as OWT's body parser runs first.
        Hostile::json("PUT", &format!("/v1/rooms/{UNKNOWN_ID}"), b"{\"name\": \"x\"", 400, PARSE),
        Hostile::json("POST", &format!("/v1/rooms/{UNKNOWN_ID}/tokens"), b"{\"user\": ", 400, PARSE),
        Hostile::json("PATCH", &format!("/v1/rooms/{UNKNOWN_ID}/participants/{UNKNOWN_ID}"), b"[{", 400, PARSE),
        Hostile::json("PATCH", &format!("/v1.1/rooms/{UNKNOWN_ID}/streams/{UNKNOWN_ID}"), b"[{", 400, PARSE),
        Hostile::json("POST", &format!("/v1/rooms/{UNKNOWN_ID}/recordings"), b"{\"container\"", 400, PARSE),
    ];
    for case in &cases {
        let Hostile { method, path, body, content_type, status, message } = case;
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).to_string();
        let reply = server.call_raw(method, path, Some(body), Some(content_type), Auth::Super);
        assert_eq!(reply.status, *status, "{method} {path} {shown:?}: {}", reply.body);
        let text = reply.expect_error(*status, 1201);
        if let Some(message) = message {
            assert_eq!(&text, message, "{method} {path} {shown:?}");
        }
        assert!(!text.is_empty(), "{method} {path} {shown:?}: empty message");
        assert!(server.child_mut().try_wait().unwrap().is_none(), "portal died; log:\n{}", server.log());
        assert_eq!(state(&server, &other_auth, &room), before, "{method} {path} {shown:?} changed something");
    }

    let unknown_room =
        server.call("PUT", &format!("/v1/rooms/{UNKNOWN_ID}"), Some(json!({"inputLimit": 4})), Auth::Super);
    assert_eq!(unknown_room.expect_error(404, 1003), "Room not found");

    // The server keeps serving, and the same resources accept well-formed requests.
    let form = server.call_raw("POST", &tokens, Some(b"user=form+user&role=viewer"), Some(FORM), Auth::Super);
    let token = owt_auth::Token::decode(form.ok_text()).expect("a form body is accepted as in OWT");
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let record = store.take_token(&token.token_id, owt_store::now_ms(), 180_000).unwrap().expect("stored");
    assert_eq!((record.user.as_str(), record.role.as_str()), ("form user", "viewer"));
    server.call("POST", "/services", Some(json!({"name": "after"})), Auth::Super).ok_json();
    let updated =
        server.call("PUT", &format!("/v1/rooms/{room}"), Some(json!({"inputLimit": 4})), Auth::Super).ok_json();
    assert_eq!(updated["inputLimit"], json!(4));
    let patch = json!([{"op": "replace", "path": "/permission/publish/video", "value": false}]);
    let participant = server
        .call("PATCH", &format!("/v1/rooms/{room}/participants/{}", alice.id), Some(patch), Auth::Super)
        .ok_json();
    assert_eq!(participant["permission"]["publish"], json!({"audio": true, "video": false}));
}

#[test]
fn media_resources_without_workers_answer_as_owt() {
    let server = TestServer::start();
    let room = server.default_room.clone();
    let stream = format!("{room}-common");
    let media = json!({"audio": {"from": stream}, "video": {"from": stream}});
    let creations = [
        (
            "streaming-ins",
            json!({"connection": {"url": "rtsp://127.0.0.1:1/in"}, "media": {"audio": "auto", "video": "auto"}}),
        ),
        ("streaming-outs", json!({"protocol": "hls", "url": "http://127.0.0.1:1/hls/x.m3u8", "media": media})),
        ("recordings", json!({"container": "mkv", "media": media})),
        (
            "sipcalls",
            json!({"peerURI": "sip:peer@127.0.0.1", "mediaIn": {"audio": true, "video": true},
                            "mediaOut": {"audio": {"from": stream}, "video": {"from": stream}}}),
        ),
        ("analytics", json!({"algorithm": "b849f44bee074b08bf3e627f3fc927c7", "media": media})),
    ];
    for version in ["v1", "v1.1"] {
        let base = format!("/{version}/rooms/{room}");
        for (kind, body) in &creations {
            let message =
                server.call("POST", &format!("{base}/{kind}"), Some(body.clone()), Auth::Super).expect_error(500, 1301);
            assert!(message.starts_with("Operation failed"), "POST {base}/{kind}: {message}");
            assert!(message.contains(kind), "POST {base}/{kind}: the message names what failed: {message}");
            // As in OWT, the body is parsed first: malformed JSON is a 400, not the operation failure.
            let reply = server.call_raw(
                "POST",
                &format!("{base}/{kind}"),
                Some(b"{\"media\": "),
                Some("application/json"),
                Auth::Super,
            );
            assert_eq!(reply.expect_error(400, 1201), "Failed to parse JSON body", "POST {base}/{kind} malformed");
        }
        // A room that is not running: still the body first, then the unknown participant.
        let participant = format!("{base}/participants/{UNKNOWN_ID}");
        let reply =
            server.call_raw("PATCH", &participant, Some(b"[{op: replace}]"), Some("application/json"), Auth::Super);
        assert_eq!(reply.expect_error(400, 1201), "Failed to parse JSON body", "PATCH {participant} malformed");
        let patch = json!([{"op": "replace", "path": "/permission/publish/video", "value": false}]);
        server.call("PATCH", &participant, Some(patch), Auth::Super).expect_error(404, 1005);
        for list in ["streaming-outs", "recordings", "sipcalls", "analytics"] {
            assert_eq!(server.get(&format!("{base}/{list}")), json!([]), "{base}/{list}: nothing was created");
        }
        assert_eq!(server.get(&format!("{base}/streams")), json!([]), "no streaming-in stream appeared");
        // One id of each kind: the not-found message decides the code (spec §2.3).
        for (kind, message, code) in [
            ("streaming-ins", "Stream not found", 1004),
            ("streaming-outs", "Streaming-out not found", 1004),
            ("recordings", "Recording not found", 1001),
            ("sipcalls", "Sip call not found", 1001),
            ("analytics", "Analytics not found", 1001),
        ] {
            let path = format!("{base}/{kind}/{UNKNOWN_ID}");
            let control = json!([{"op": "replace", "path": "/media/audio/status", "value": "active"}]);
            for (method, body) in [("GET", None), ("PATCH", Some(control)), ("DELETE", None)] {
                let reply = server.call(method, &path, body, Auth::Super);
                assert_eq!(reply.expect_error(404, code), message, "{method} {path}");
            }
        }
        // An unknown room is 404/1003 before anything else.
        for kind in ["streaming-ins", "streaming-outs", "recordings", "sipcalls", "analytics"] {
            let path = format!("/{version}/rooms/{UNKNOWN_ID}/{kind}");
            let body = creations.iter().find(|(k, _)| *k == kind).map(|(_, b)| b.clone());
            server.call("POST", &path, body, Auth::Super).expect_error(404, 1003);
            server.call("DELETE", &format!("{path}/{UNKNOWN_ID}"), None, Auth::Super).expect_error(404, 1003);
        }
        server
            .call("GET", &format!("/{version}/rooms/{UNKNOWN_ID}/analytics"), None, Auth::Super)
            .expect_error(404, 1003);
    }
    assert_eq!(room_ids(&server.get("/v1/rooms")), vec![room]);
}

#[test]
fn token_domain_is_stored_and_checked() {
    let server = TestServer::start();
    let path = format!("/v1/rooms/{}/tokens", server.default_room);
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let take = |text: &str| {
        let token = owt_auth::Token::decode(text).expect("token decodes");
        assert!(token.verify(&server.token_key()), "signed with the database key");
        let json = crate::support::decode_token(text);
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["tokenId", "host", "secure", "signature"], "the domain is not in the token: {json}");
        store.take_token(&token.token_id, owt_store::now_ms(), 180_000).unwrap().expect("token stored")
    };
    let body = json!({"user": "u", "role": "presenter", "domain": "conference.example.org"});
    let record = take(server.call("POST", &path, Some(body), Auth::Super).ok_text());
    assert_eq!(record.domain.as_deref(), Some("conference.example.org"));
    let body = json!({"user": "u", "role": "presenter", "domain": null});
    assert_eq!(take(server.call("POST", &path, Some(body), Auth::Super).ok_text()).domain, None);
    let form = server.call_raw("POST", &path, Some(b"user=u&role=viewer&domain=d.example"), Some(FORM), Auth::Super);
    let record = take(form.ok_text());
    assert_eq!(record.domain.as_deref(), Some("d.example"));
    for domain in [json!(5), json!(["a"]), json!({"host": "a"}), json!(true)] {
        let body = json!({"user": "u", "role": "presenter", "domain": domain});
        let message = server.call("POST", &path, Some(body), Auth::Super).expect_error(400, 1201);
        assert!(message.contains("domain"), "{domain}: {message}");
    }
    assert_eq!(store.token_count().unwrap(), 0, "refused requests issued no token");
}

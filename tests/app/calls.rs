//! The JSON calls of the page (`POST /tokens`, legacy `POST /createToken`, `GET /rooms`,
//! streams and participants of a room), answered through the REST API with the super
//! service's credentials; REST errors come back as they are.

use crate::support::*;
use serde_json::{json, Value};

/// Asserts a valid token for this portal and returns its id.
#[track_caller]
fn check_token(server: &TestServer, text: &str) -> String {
    let token = decode_token(text);
    assert_eq!(token["host"], json!(format!("127.0.0.1:{}", server.signaling_port)), "{token}");
    assert_eq!(token["secure"], json!(false), "{token}");
    let parsed = owt_auth::Token::decode(text).expect("token decodes");
    assert!(parsed.verify(&server.token_key()), "token signed with the portal's key: {token}");
    parsed.token_id
}

#[test]
fn tokens_for_the_sample_room_or_a_given_room() {
    let server = TestServer::start();
    let reply = server.app("POST", "/tokens", Some(r#"{"user": "alice", "role": "presenter"}"#));
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    let id = check_token(&server, &reply.ok_text());
    assert_eq!(server.token_room(&id), server.sample_room);

    let other = server.rest("POST", "/v1/rooms", Some(json!({"name": "other"}))).ok_json();
    let other_id = other["_id"].as_str().expect("room id").to_string();
    let body = json!({"room": other_id, "user": "bob", "role": "viewer"}).to_string();
    let id = check_token(&server, &server.app("POST", "/tokens/", Some(&body)).ok_text());
    assert_eq!(server.token_room(&id), other_id);

    // Form bodies work too, as with the REST API.
    let form = send(
        "POST",
        &server.app_url("/tokens"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"user=carol&role=presenter"),
    );
    check_token(&server, &form.ok_text());
}

#[test]
fn without_sample_room_the_first_room_is_used() {
    let server = TestServer::start();
    let zeta = server.rest("POST", "/v1/rooms", Some(json!({"name": "zeta"}))).ok_json();
    assert_eq!(server.rest("DELETE", &format!("/v1/rooms/{}", server.sample_room), None).status, 200);
    let id = check_token(&server, &server.app("POST", "/tokens", Some(r#"{"user":"u","role":"presenter"}"#)).ok_text());
    assert_eq!(server.token_room(&id), zeta["_id"].as_str().expect("room id"));

    assert_eq!(
        server.rest("DELETE", &format!("/v1/rooms/{}", zeta["_id"].as_str().unwrap_or_default()), None).status,
        200
    );
    let none = server.app("POST", "/tokens", Some(r#"{"user":"u","role":"presenter"}"#));
    let message = none.expect_error(404, 1003);
    assert!(message.starts_with("Room not found"), "{message}");
}

#[test]
fn legacy_create_token() {
    let server = TestServer::start();
    for path in ["/createToken", "/createToken/"] {
        let text = server.app("POST", path, Some(r#"{"username": "dave", "role": "presenter"}"#)).ok_text();
        let id = check_token(&server, &text);
        assert_eq!(server.token_room(&id), server.sample_room);
    }
    let body = json!({"room": server.sample_room, "username": "erin", "role": "viewer"}).to_string();
    check_token(&server, &server.app("POST", "/createToken/", Some(&body)).ok_text());
}

#[test]
fn bad_token_requests_get_the_rest_error() {
    let server = TestServer::start();
    let error = |body: &str| server.app("POST", "/tokens", Some(body));
    assert_eq!(error(r#"{"user": "u","#).expect_error(400, 1201), "Failed to parse JSON body");
    assert!(error("[1, 2]").expect_error(400, 1201).contains("must be a JSON object"));
    assert!(error(r#""text""#).expect_error(400, 1201).contains("must be a JSON object"));
    // What the REST API says about user and role comes back unchanged.
    for body in [
        r#"{"user": 5, "role": "presenter"}"#,
        r#"{"user": "u", "role": ["presenter"]}"#,
        r#"{"user": "u", "role": "emperor"}"#,
        r#"{"user": "", "role": "presenter"}"#,
        r#"{"role": "presenter"}"#,
        r#"{"user": "u"}"#,
        "{}",
    ] {
        assert_eq!(error(body).expect_error(400, 1201), "Name or role not valid", "{body}");
    }
    assert!(error(r#"{"room": 5, "user": "u", "role": "presenter"}"#).expect_error(400, 1201).contains("room"));
    for room in ["0123456789abcdef01234567", "../v1/rooms", "a/b", "x y"] {
        let body = json!({"room": room, "user": "u", "role": "presenter"}).to_string();
        assert_eq!(error(&body).expect_error(404, 1003), "Room not found", "{room}");
    }
    // A body announced over [management-api] max_body_bytes is refused before it is read.
    let huge = b"POST /tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: 2000000\r\nConnection: close\r\n\r\n{\"user\": \"";
    assert!(raw_request(server.app_port, huge).expect_error(413, 1201).contains("too large"));
    // One that is only found too long while reading (chunked) too.
    let mut chunked =
        b"POST /tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 65536, "u".repeat(65536)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert!(raw_request(server.app_port, &chunked).expect_error(413, 1201).contains("too large"));
    // Nothing of that made a token.
    let store = owt_store::Store::open(&server.db_path()).expect("open owt.db");
    assert_eq!(store.token_count().expect("token count"), 0);
}

#[test]
fn rooms_streams_and_participants() {
    let server = TestServer::start();
    let rooms = server.app("GET", "/rooms", None).ok_json();
    let names: Vec<&str> = rooms.as_array().expect("array").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["sampleRoom"]);
    assert_eq!(rooms[0]["_id"], json!(server.sample_room));
    // Pagination is the REST API's.
    assert_eq!(server.app("GET", "/rooms?page=1&per_page=1", None).ok_json().as_array().map(Vec::len), Some(1));
    server.app("GET", "/rooms?per_page=x", None).expect_error(400, 1201);

    let room = &server.sample_room;
    assert_eq!(server.app("GET", &format!("/rooms/{room}/streams"), None).ok_json(), json!([]));
    assert_eq!(server.app("GET", &format!("/rooms/{room}/participants/"), None).ok_json(), json!([]));
    let unknown = "0123456789abcdef01234567";
    server.app("GET", &format!("/rooms/{unknown}/streams"), None).expect_error(404, 1003);
    server.app("GET", &format!("/rooms/{unknown}/participants"), None).expect_error(404, 1003);
    let mix = json!([{"op": "add", "path": "/info/inViews", "value": "common"}]).to_string();
    let patched = server.app("PATCH", &format!("/rooms/{room}/streams/0123456789abcdef0123456789abcdef"), Some(&mix));
    assert_eq!(patched.expect_error(404, 1004), "Stream not found");
    server.app("PATCH", &format!("/rooms/{room}/streams/a%2Fb"), Some(&mix)).expect_error(404, 1004);
    assert_eq!(patched.header("access-control-allow-origin"), Some("*"));
    let _: Value = patched.json();
}

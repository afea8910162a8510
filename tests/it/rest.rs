//! The management REST API of a real owt-portal over HTTP (spec §2, §3): OPTIONS/CORS and
//! unknown paths, MAuth (every refusal, the username/role variant, replay protection and
//! its switch), services, rooms (defaults, listing, pagination, PUT/PATCH merge, deletion,
//! isolation between services), room validation on create and update, hostile bodies,
//! conference tokens and the live-state resources of a room that is not running.

use crate::support::{now_ms, Auth, Options, Reply, TestServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub(crate) const AUTH_MESSAGE: &str = "WWW-Authenticate: MAuth realm=\"http://marte3.dit.upm.es\"";
pub(crate) const UNKNOWN_ID: &str = "0123456789abcdef01234567";

fn is_object_id(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

/// An MAuth header carrying `mauth_username` (base64) and `mauth_role`, signed over
/// `timestamp,cnonce,username,role` when `sign_user` is true, else over `timestamp,cnonce` only.
fn user_role_header(id: &str, key: &str, user: &str, role: &str, sign_user: bool) -> String {
    let user = BASE64.encode(user);
    let ts = now_ms();
    let cnonce = format!("{:016x}", ts ^ 0x5a5a_5a5a);
    let signed = if sign_user { format!("{ts},{cnonce},{user},{role}") } else { format!("{ts},{cnonce}") };
    let signature = owt_auth::hmac_hex_base64(key, &signed);
    format!(
        "MAuth realm=http://marte3.dit.upm.es,mauth_signature_method=HMAC_SHA256,mauth_serviceid={id},\
         mauth_cnonce={cnonce},mauth_timestamp={ts},mauth_username={user},mauth_role={role},\
         mauth_signature={signature}"
    )
}

/// A service other than the super one, with its credentials.
fn service(server: &TestServer, name: &str) -> (Value, Auth) {
    let service = server.create_service(name);
    let auth = Auth::service(&service);
    (service, auth)
}

pub(crate) fn room_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| r["_id"].as_str().expect("room _id").to_string())
        .collect()
}

#[track_caller]
fn assert_cors(reply: &Reply) {
    assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("*"), "headers {:?}", reply.headers);
    let methods = reply.header("Access-Control-Allow-Methods").unwrap_or_default();
    for method in ["POST", "GET", "OPTIONS", "DELETE", "PATCH"] {
        assert!(methods.contains(method), "Allow-Methods {methods:?} lacks {method}");
    }
    let allowed = reply.header("Access-Control-Allow-Headers").unwrap_or_default().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed:?}");
    assert_eq!(reply.header("X-Content-Type-Options"), Some("nosniff"));
}

// ---- basics ---------------------------------------------------------------------------

#[test]
fn options_unknown_paths_and_cors_headers() {
    let server = TestServer::start();
    for path in ["/v1/rooms", "/services", "/anything/at/all", "/v1/rooms/x/tokens"] {
        let reply = server.call("OPTIONS", path, None, Auth::None);
        assert_eq!(reply.ok_text(), "OK", "OPTIONS {path}");
        assert_cors(&reply);
    }
    for (method, path) in [("GET", "/foo"), ("GET", "/v2/rooms"), ("POST", "/foo"), ("GET", "/"), ("DELETE", "/v1")] {
        let reply = server.call(method, path, None, Auth::None);
        assert_eq!(reply.expect_error(404, 1001), "Resource not found", "{method} {path}");
        assert_cors(&reply);
        assert!(reply.header("Content-Type").unwrap_or_default().starts_with("application/json"));
    }
    // Authenticated but unknown sub-paths are 404/1001 too.
    let reply = server.call("GET", "/services/a/b", None, Auth::Super);
    reply.expect_error(404, 1001);
    let reply = server.call("GET", &format!("/v1/rooms/{}/nothing-here", server.default_room), None, Auth::Super);
    reply.expect_error(404, 1001);
    // Successes and auth failures carry the CORS headers too.
    let reply = server.call("GET", "/v1/rooms", None, Auth::Super);
    assert_eq!(reply.status, 200);
    assert_cors(&reply);
    let reply = server.call("GET", "/v1/rooms", None, Auth::None);
    reply.expect_error(401, 1101);
    assert_cors(&reply);
}

// ---- MAuth ----------------------------------------------------------------------------

#[test]
fn auth_failures_are_401_with_owt_message() {
    let server = TestServer::start();
    let (id, key) = (server.super_id.clone(), server.super_key.clone());
    let ts = now_ms();
    let valid = |cnonce: &str| owt_auth::sign_header(&id, &key, ts, cnonce);
    let wrong_method = valid("c1").replace("HMAC_SHA256", "HMAC_MD5");
    assert!(wrong_method.contains("HMAC_MD5"));
    let missing_signature = valid("c2").split(",mauth_signature=").next().unwrap().to_string();
    let missing_cnonce = valid("c3").replace(",mauth_cnonce=c3", "");
    let cases: Vec<(&str, Auth)> = vec![
        ("missing header", Auth::None),
        ("not MAuth", Auth::Raw("Basic dXNlcjpwYXNz".into())),
        ("empty", Auth::Raw(String::new())),
        ("MAuth without fields", Auth::Raw("MAuth ".into())),
        ("missing signature", Auth::Raw(missing_signature)),
        ("missing cnonce", Auth::Raw(missing_cnonce)),
        ("wrong method", Auth::Raw(wrong_method)),
        ("unknown service", Auth::Raw(owt_auth::sign_header(UNKNOWN_ID, &key, ts, "c4"))),
        ("malformed service id", Auth::Raw(owt_auth::sign_header("not-an-id", &key, ts, "c5"))),
        ("wrong key", Auth::Raw(owt_auth::sign_header(&id, "wrong-key", ts, "c6"))),
        ("username/role not signed", Auth::Raw(user_role_header(&id, &key, "user", "presenter", false))),
        ("10 minutes old", Auth::Raw(owt_auth::sign_header(&id, &key, ts - 600_000, "c7"))),
        ("10 minutes ahead", Auth::Raw(owt_auth::sign_header(&id, &key, ts + 600_000, "c8"))),
        ("timestamp not a number", Auth::Raw(owt_auth::sign_header(&id, &key, ts, "c9").replace(&ts.to_string(), "x"))),
    ];
    for (what, auth) in cases {
        for (method, path) in [("GET", "/v1/rooms"), ("GET", "/services"), ("GET", "/v1.1/rooms")] {
            let reply = server.call(method, path, None, auth.clone());
            assert_eq!(reply.expect_error(401, 1101), AUTH_MESSAGE, "{what}: {method} {path}");
        }
        // A refused POST changes nothing.
        let reply = server.call("POST", "/v1/rooms", Some(json!({"name": "intruder"})), auth.clone());
        reply.expect_error(401, 1101);
    }
    let rooms = server.get("/v1/rooms");
    assert_eq!(room_ids(&rooms), vec![server.default_room.clone()], "no room was created by refused requests");
    let services = server.get("/services");
    assert_eq!(services.as_array().unwrap().len(), 1);
    // The valid header itself works, and so does a timestamp within the allowed skew.
    let reply = server.call("GET", "/v1/rooms", None, Auth::Raw(valid("fresh")));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = server.call("GET", "/v1/rooms", None, Auth::Raw(owt_auth::sign_header(&id, &key, ts - 60_000, "m1")));
    assert_eq!(reply.status, 200, "one minute old: {}", reply.body);
}

/// A correctly signed header whose timestamp is any string.
fn header_with_timestamp(server: &TestServer, timestamp: &str, cnonce: &str) -> String {
    let signature = owt_auth::hmac_hex_base64(&server.super_key, &format!("{timestamp},{cnonce}"));
    format!(
        "MAuth realm=http://marte3.dit.upm.es,mauth_signature_method=HMAC_SHA256,mauth_serviceid={},\
         mauth_cnonce={cnonce},mauth_timestamp={timestamp},mauth_signature={signature}",
        server.super_id
    )
}

#[test]
fn extreme_timestamps_are_refused_without_crashing() {
    let server = TestServer::start();
    // More requests than the portal has REST threads (4 by default).
    let timestamps =
        ["-9223372036854775808", "-9223372036854775000", "9223372036854775807", "-1", "0", "-9223372036854775808"];
    for (i, timestamp) in timestamps.iter().enumerate() {
        let header = header_with_timestamp(&server, timestamp, &format!("n{i}"));
        let reply = server.call("GET", "/v1/rooms", None, Auth::Raw(header));
        assert_eq!(reply.status, 401, "timestamp {timestamp}: body {:?}; log:\n{}", reply.body, server.log());
        assert_eq!(reply.expect_error(401, 1101), AUTH_MESSAGE);
    }
    assert_eq!(server.call("GET", "/v1/rooms", None, Auth::Super).status, 200, "still serving");
    assert!(!server.log().contains("panicked"), "log:\n{}", server.log());
}

#[test]
fn username_and_role_variant_is_accepted() {
    let server = TestServer::start();
    let header = user_role_header(&server.super_id, &server.super_key, "Jöhn", "presenter", true);
    assert!(header.contains("mauth_username=SsO2aG4="), "padding is sent: {header}");
    let reply = server.call("GET", "/v1/rooms", None, Auth::Raw(header));
    assert_eq!(room_ids(&reply.ok_json()), vec![server.default_room.clone()]);
    // A non-super service may use it too.
    let (svc, _) = service(&server, "app");
    let header = user_role_header(svc["_id"].as_str().unwrap(), svc["key"].as_str().unwrap(), "u", "viewer", true);
    let reply = server.call("GET", "/v1/rooms", None, Auth::Raw(header));
    assert_eq!(reply.ok_json(), json!([]));
}

#[test]
fn replayed_header_is_refused() {
    let server = TestServer::start();
    let header = owt_auth::sign_header_now(&server.super_id, &server.super_key, now_ms());
    let first = server.call("GET", "/v1/rooms", None, Auth::Raw(header.clone()));
    assert_eq!(first.status, 200, "{}", first.body);
    let second = server.call("GET", "/v1/rooms", None, Auth::Raw(header.clone()));
    assert_eq!(second.expect_error(401, 1101), AUTH_MESSAGE);
    // Replaying a successful POST does not create a second room.
    let header = owt_auth::sign_header_now(&server.super_id, &server.super_key, now_ms());
    let body = Some(json!({"name": "once"}));
    server.call("POST", "/v1/rooms", body.clone(), Auth::Raw(header.clone())).ok_json();
    server.call("POST", "/v1/rooms", body, Auth::Raw(header)).expect_error(401, 1101);
    assert_eq!(server.get("/v1/rooms").as_array().unwrap().len(), 2);
}

#[test]
fn replay_check_can_be_disabled() {
    let server =
        TestServer::start_with(Options { extra: "[auth]\nreplay_check = false\n".into(), ..Default::default() });
    let header = owt_auth::sign_header_now(&server.super_id, &server.super_key, now_ms());
    for attempt in 0..3 {
        let reply = server.call("GET", "/v1/rooms", None, Auth::Raw(header.clone()));
        assert_eq!(reply.status, 200, "attempt {attempt}: {}", reply.body);
    }
    // OWT behaviour: a fixed old header stays valid.
    let old = owt_auth::sign_header(&server.super_id, &server.super_key, now_ms() - 600_000, "fixed");
    assert_eq!(server.call("GET", "/services", None, Auth::Raw(old)).status, 200);
    // The signature is still checked.
    let wrong = owt_auth::sign_header(&server.super_id, "nope", now_ms(), "x");
    server.call("GET", "/services", None, Auth::Raw(wrong)).expect_error(401, 1101);
}

// ---- services -------------------------------------------------------------------------

#[test]
fn services_create_list_and_bad_bodies() {
    let server = TestServer::start();
    let list = server.get("/services");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["_id"], json!(server.super_id));
    assert_eq!(list[0]["name"], json!("superService"));
    assert_eq!(list[0]["rooms"], json!([server.default_room]));

    let created = server.call("POST", "/services", Some(json!({"name": "app", "key": "k1"})), Auth::Super).ok_json();
    assert!(is_object_id(&created["_id"]), "{created}");
    assert_eq!(created["name"], json!("app"));
    assert_eq!(created["key"], json!("k1"));
    assert_eq!(created["rooms"], json!([]));
    let generated = server.call("POST", "/services", Some(json!({"name": "gen"})), Auth::Super).ok_json();
    assert!(generated["key"].as_str().is_some_and(|k| k.len() >= 16), "generated key: {generated}");
    assert_ne!(generated["_id"], created["_id"]);

    let dup = server.call("POST", "/services", Some(json!({"name": "app", "key": "k2"})), Auth::Super);
    dup.expect_error(400, 1201);

    let not_json = server.call_raw("POST", "/services", Some(b"{name: app"), Some("application/json"), Auth::Super);
    assert_eq!(not_json.expect_error(400, 1201), "Failed to parse JSON body");
    for (body, needle) in [
        (json!([{"name": "a"}]), "object"),
        (json!({"name": 5}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"key": "k"}), "name"),
        (json!({"name": "x", "key": 7}), "key"),
        (json!({"name": "x", "admin": true}), "admin"),
    ] {
        let reply = server.call("POST", "/services", Some(body.clone()), Auth::Super);
        let message = reply.expect_error(400, 1201);
        assert!(message.contains(needle), "{body}: {message:?} lacks {needle:?}");
    }
    let names: Vec<Value> = server.get("/services").as_array().unwrap().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["superService", "app", "gen"] {
        assert!(names.contains(&json!(name)), "{names:?}");
    }
    // The new service's credentials work.
    let reply = server.call("GET", "/v1/rooms", None, Auth::service(&created));
    assert_eq!(reply.ok_json(), json!([]));
}

#[test]
fn services_permissions_and_deletion() {
    let server = TestServer::start();
    let (app, app_auth) = service(&server, "app");
    let (other, other_auth) = service(&server, "other");
    let app_id = app["_id"].as_str().unwrap().to_string();
    let other_id = other["_id"].as_str().unwrap().to_string();

    // A normal service cannot manage services.
    let denied = [
        ("GET", "/services".to_string(), None),
        ("POST", "/services".to_string(), Some(json!({"name": "mine"}))),
        ("DELETE", format!("/services/{other_id}"), None),
        ("DELETE", format!("/services/{app_id}"), None),
        ("DELETE", format!("/services/{}", server.super_id), None),
        ("GET", format!("/services/{other_id}"), None),
        ("GET", format!("/services/{}", server.super_id), None),
    ];
    for (method, path, body) in denied {
        let reply = server.call(method, &path, body, app_auth.clone());
        let message = reply.expect_error(403, 1102);
        assert!(message.starts_with("Permission denied"), "{method} {path}: {message}");
    }
    // ... but can read itself.
    let own = server.call("GET", &format!("/services/{app_id}"), None, app_auth.clone()).ok_json();
    assert_eq!(own["_id"], json!(app_id));
    assert_eq!(own["name"], json!("app"));
    assert_eq!(server.get("/services").as_array().unwrap().len(), 3, "nothing created or deleted");

    // Unknown ids.
    server.call("GET", &format!("/services/{UNKNOWN_ID}"), None, Auth::Super).expect_error(404, 1002);
    server.call("DELETE", &format!("/services/{UNKNOWN_ID}"), None, Auth::Super).expect_error(404, 1002);

    // The super service cannot delete itself.
    let reply = server.call("DELETE", &format!("/services/{}", server.super_id), None, Auth::Super);
    reply.expect_error(403, 1102);
    assert_eq!(server.get(&format!("/services/{}", server.super_id))["name"], json!("superService"));

    // Deleting a service deletes its rooms.
    let room = server.create_room(other_auth.clone(), json!({"name": "doomed"}));
    let room_id = room["_id"].as_str().unwrap().to_string();
    let shown = server.get(&format!("/services/{other_id}"));
    assert_eq!(shown["rooms"], json!([room_id]));
    let reply = server.call("DELETE", &format!("/services/{other_id}"), None, Auth::Super);
    assert_eq!(reply.ok_text(), "Service deleted");
    server.call("GET", &format!("/services/{other_id}"), None, Auth::Super).expect_error(404, 1002);
    server.call("GET", "/v1/rooms", None, other_auth).expect_error(401, 1101);
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    assert!(store.room(&other_id, &room_id).unwrap().is_none(), "room of the deleted service is gone");
    assert!(store.rooms(&other_id, 1, 0).unwrap().is_empty());
    let remaining: Vec<Value> = server.get("/services").as_array().unwrap().iter().map(|s| s["_id"].clone()).collect();
    assert_eq!(remaining.len(), 2);
    assert!(!remaining.contains(&json!(other_id)));
    // The other service is untouched.
    assert_eq!(server.call("GET", "/v1/rooms", None, app_auth).ok_json(), json!([]));
}

// ---- rooms ----------------------------------------------------------------------------

#[test]
fn room_create_has_owt_defaults() {
    let server = TestServer::start();
    let room = server.create_room(Auth::Super, json!({"name": "r1"}));
    assert!(is_object_id(&room["_id"]), "{room}");
    assert_eq!(room["id"], room["_id"]);
    assert_eq!(room["__v"], json!(0));
    assert_eq!(room["name"], json!("r1"));
    assert_eq!(room["inputLimit"], json!(-1));
    assert_eq!(room["participantLimit"], json!(-1));
    assert_eq!(room["selectActiveAudio"], json!(false));
    assert_eq!(room["enableBandwidthAdaptation"], json!(false));
    let roles: Vec<&str> = room["roles"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["presenter", "viewer", "audio_only_presenter", "video_only_viewer", "sip"]);
    assert_eq!(
        room["roles"][1],
        json!({"role": "viewer", "publish": {"audio": false, "video": false}, "subscribe": {"audio": true, "video": true}})
    );
    let views = room["views"].as_array().unwrap();
    assert_eq!(views.len(), 1);
    let view = &views[0];
    assert_eq!(view["label"], json!("common"));
    assert_eq!(view["audio"], json!({"format": {"codec": "opus", "sampleRate": 48000, "channelNum": 2}, "vad": true}));
    let video = &view["video"];
    assert_eq!(video["format"], json!({"codec": "vp8"}));
    assert_eq!(video["parameters"]["resolution"], json!({"width": 640, "height": 480}));
    assert_eq!(video["parameters"]["framerate"], json!(24));
    assert_eq!(video["parameters"]["keyFrameInterval"], json!(100));
    assert!(video["parameters"].get("bitrate").is_none(), "no default bitrate: {video}");
    assert_eq!(video["maxInput"], json!(16));
    assert_eq!(video["motionFactor"], json!(0.8));
    assert_eq!(video["bgColor"], json!({"r": 0, "g": 0, "b": 0}));
    assert_eq!(video["keepActiveInputPrimary"], json!(false));
    assert_eq!(video["layout"], json!({"fitPolicy": "letterbox", "templates": {"base": "fluid", "custom": []}}));
    assert_eq!(room["mediaIn"]["audio"].as_array().unwrap().len(), 10);
    assert_eq!(room["mediaIn"]["video"], json!([{"codec": "h264"}, {"codec": "vp8"}, {"codec": "vp9"}]));
    assert_eq!(room["mediaOut"]["audio"][6], json!({"codec": "aac", "sampleRate": 48000, "channelNum": 2}));
    assert_eq!(
        room["mediaOut"]["video"]["format"],
        json!([{"codec": "vp8"}, {"codec": "h264", "profile": "CB"}, {"codec": "h264", "profile": "B"}, {"codec": "vp9"}])
    );
    assert_eq!(room["mediaOut"]["video"]["parameters"]["framerate"], json!([6, 12, 15, 24, 30, 48, 60]));
    assert_eq!(room["mediaOut"]["video"]["parameters"]["keyFrameInterval"], json!([100, 30, 5, 2, 1]));
    assert_eq!(room["mediaOut"]["video"]["parameters"]["bitrate"], json!(["x0.8", "x0.6", "x0.4", "x0.2"]));
    assert_eq!(room["mediaOut"]["video"]["parameters"]["resolution"].as_array().unwrap().len(), 11);
    assert_eq!(room["transcoding"]["audio"], json!(true));
    assert_eq!(room["transcoding"]["video"]["parameters"]["keyFrameInterval"], json!(true));
    assert_eq!(room["notifying"], json!({"participantActivities": true, "streamChange": true}));
    assert!(room.get("sip").is_none(), "no sip unless set: {room}");

    let id = room["_id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/rooms/{id}")), room, "GET returns what POST returned");
    assert_eq!(server.get(&format!("/v1.1/rooms/{id}")), room, "v1.1 mounts v1");
    // The default room of `owtctl init` has the same shape with its own name.
    let sample = server.get(&format!("/v1/rooms/{}", server.default_room));
    assert_eq!(sample["name"], json!("sampleRoom"));
    assert_eq!(sample["views"], room["views"]);

    // options are applied; ids and name inside options are ignored.
    let custom = server.create_room(
        Auth::Super,
        json!({"name": "r2", "options": {"inputLimit": 4, "participantLimit": 10, "selectActiveAudio": true,
                                         "_id": UNKNOWN_ID, "name": "ignored"}}),
    );
    assert_eq!(custom["name"], json!("r2"));
    assert_ne!(custom["_id"], json!(UNKNOWN_ID));
    assert_eq!(custom["inputLimit"], json!(4));
    assert_eq!(custom["participantLimit"], json!(10));
    assert_eq!(custom["selectActiveAudio"], json!(true));
    assert_eq!(custom["views"], room["views"]);
}

#[test]
fn room_without_views_and_form_bodies() {
    let server = TestServer::start();
    let room = server.create_room(Auth::Super, json!({"name": "sfu", "options": {"views": []}}));
    assert_eq!(room["views"], json!([]));
    assert_eq!(room["roles"].as_array().unwrap().len(), 5, "other sections keep their defaults");
    let id = room["_id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/rooms/{id}"))["views"], json!([]));
    // OWT also accepts application/x-www-form-urlencoded bodies.
    let reply = server.call_raw(
        "POST",
        "/v1/rooms",
        Some(b"name=form+room"),
        Some("application/x-www-form-urlencoded"),
        Auth::Super,
    );
    assert_eq!(reply.ok_json()["name"], json!("form room"));
}

#[test]
fn room_list_sorted_and_paginated() {
    let server = TestServer::start();
    let (_, auth) = service(&server, "lister");
    assert_eq!(server.call("GET", "/v1/rooms", None, auth.clone()).ok_json(), json!([]));
    let mut created: Vec<String> = (0..5)
        .map(|i| {
            let room = server.create_room(auth.clone(), json!({"name": format!("room{i}")}));
            room["_id"].as_str().unwrap().to_string()
        })
        .collect();
    created.sort();
    let list = |query: &str| server.call("GET", &format!("/v1/rooms{query}"), None, auth.clone());
    let all = list("").ok_json();
    assert_eq!(room_ids(&all), created, "all rooms, sorted by _id");
    assert_eq!(all[0]["roles"].as_array().unwrap().len(), 5, "full rooms are listed");
    assert_eq!(room_ids(&list("?page=1&per_page=2").ok_json()), created[0..2]);
    assert_eq!(room_ids(&list("?page=2&per_page=2").ok_json()), created[2..4]);
    assert_eq!(room_ids(&list("?page=3&per_page=2").ok_json()), created[4..5]);
    assert_eq!(list("?page=4&per_page=2").ok_json(), json!([]));
    assert_eq!(room_ids(&list("?per_page=3").ok_json()), created[0..3], "page defaults to 1");
    assert_eq!(room_ids(&list("?page=2").ok_json()), created, "no pagination without per_page");
    assert_eq!(room_ids(&list("?page=2&per_page=0").ok_json()), created, "per_page=0: all");
    assert_eq!(room_ids(&list("?page=1&per_page=100").ok_json()), created);
    for query in ["?per_page=abc", "?page=x&per_page=2", "?per_page=-1", "?page=-2&per_page=1"] {
        let message = list(query).expect_error(400, 1201);
        assert!(message.contains("page"), "{query}: {message}");
    }
    // The super service sees only its own room.
    assert_eq!(room_ids(&server.get("/v1/rooms")), vec![server.default_room.clone()]);
}

#[test]
fn extreme_pagination_is_answered_without_crashing() {
    let server = TestServer::start();
    let max = u32::MAX;
    // More requests than the portal has REST threads (4 by default).
    for query in [
        format!("?page={max}&per_page={max}"),
        format!("?page={max}&per_page={max}"),
        format!("?page={max}&per_page=1"),
        format!("?page=2&per_page={max}"),
        format!("?page={}&per_page={}", max / 2, max / 2),
        format!("?page={max}&per_page={max}"),
    ] {
        let reply = server.call("GET", &format!("/v1/rooms{query}"), None, Auth::Super);
        match reply.status {
            200 => assert_eq!(reply.json(), json!([]), "{query}: a page past the end is empty"),
            400 => {
                reply.expect_error(400, 1201);
            }
            status => panic!("{query}: status {status}, body {:?}; log:\n{}", reply.body, server.log()),
        }
    }
    assert_eq!(room_ids(&server.get("/v1/rooms?page=1&per_page=1")), vec![server.default_room.clone()]);
    assert!(!server.log().contains("panicked"), "log:\n{}", server.log());
}

#[test]
fn room_put_merges_top_level_and_patch_behaves_alike() {
    let server = TestServer::start();
    let room = server.create_room(Auth::Super, json!({"name": "before", "options": {"participantLimit": 5}}));
    let id = room["_id"].as_str().unwrap().to_string();
    let path = format!("/v1/rooms/{id}");

    let updated = server
        .call(
            "PUT",
            &path,
            Some(json!({"inputLimit": 7, "name": "after", "_id": UNKNOWN_ID, "id": "x", "__v": 9})),
            Auth::Super,
        )
        .ok_json();
    assert_eq!(updated["inputLimit"], json!(7));
    assert_eq!(updated["name"], json!("after"));
    assert_eq!(updated["_id"], json!(id));
    assert_eq!(updated["id"], json!(id));
    assert_eq!(updated["__v"], json!(0));
    assert_eq!(updated["participantLimit"], json!(5), "untouched fields stay");
    assert_eq!(updated["roles"], room["roles"]);
    assert_eq!(updated["views"], room["views"]);
    assert_eq!(server.get(&path), updated, "stored");
    server.call("GET", &format!("/v1/rooms/{UNKNOWN_ID}"), None, Auth::Super).expect_error(404, 1003);

    // A top-level field replaces the stored one entirely; missing members get defaults.
    let updated = server
        .call("PATCH", &path, Some(json!({"views": [{"label": "big", "video": {"maxInput": 4}}]})), Auth::Super)
        .ok_json();
    assert_eq!(updated["views"].as_array().unwrap().len(), 1);
    assert_eq!(updated["views"][0]["label"], json!("big"));
    assert_eq!(updated["views"][0]["video"]["maxInput"], json!(4));
    assert_eq!(updated["views"][0]["video"]["motionFactor"], json!(0.8));
    assert_eq!(updated["inputLimit"], json!(7), "PATCH keeps earlier changes");
    assert_eq!(updated["name"], json!("after"));
    let updated = server.call("PATCH", &path, Some(json!({"participantLimit": 3})), Auth::Super).ok_json();
    assert_eq!(updated["participantLimit"], json!(3));
    assert_eq!(updated["views"][0]["label"], json!("big"));
    assert_eq!(server.get(&path), updated);
    // An empty update changes nothing; a null is dropped.
    assert_eq!(server.call("PUT", &path, Some(json!({})), Auth::Super).ok_json(), updated);
    assert_eq!(server.call("PUT", &path, Some(json!({"inputLimit": null})), Auth::Super).ok_json(), updated);
    // The listing shows the new name.
    let list = server.get("/v1/rooms");
    let listed = list.as_array().unwrap().iter().find(|r| r["_id"] == json!(id)).expect("room listed");
    assert_eq!(listed, &updated);
}

#[test]
fn room_delete_and_trailing_slashes() {
    let server = TestServer::start();
    let room = server.create_room(Auth::Super, json!({"name": "gone"}));
    let id = room["_id"].as_str().unwrap().to_string();

    // Trailing slashes are accepted everywhere (the JS REST client uses them).
    assert_eq!(server.get("/v1/rooms/").as_array().unwrap().len(), 2);
    assert_eq!(server.get(&format!("/v1.1/rooms/{id}/")), room);
    assert_eq!(server.get(&format!("/v1/rooms/{id}/participants/")), json!([]));
    assert_eq!(server.get("/services/").as_array().unwrap().len(), 1);
    let made = server.call("POST", "/v1.1/rooms/", Some(json!({"name": "slash"})), Auth::Super).ok_json();
    assert_eq!(made["name"], json!("slash"));
    let token = server.call(
        "POST",
        &format!("/v1.1/rooms/{id}/tokens/"),
        Some(json!({"user": "u", "role": "viewer"})),
        Auth::Super,
    );
    assert!(!token.ok_text().is_empty());

    let reply = server.call("DELETE", &format!("/v1/rooms/{id}/"), None, Auth::Super);
    assert_eq!(reply.ok_text(), "Room deleted");
    assert!(reply.header("Content-Type").unwrap_or_default().starts_with("text/html"));
    assert_eq!(
        server.call("GET", &format!("/v1/rooms/{id}"), None, Auth::Super).expect_error(404, 1003),
        "Room not found"
    );
    server.call("DELETE", &format!("/v1/rooms/{id}"), None, Auth::Super).expect_error(404, 1003);
    server.call("PUT", &format!("/v1/rooms/{id}"), Some(json!({"inputLimit": 1})), Auth::Super).expect_error(404, 1003);
    server
        .call("POST", &format!("/v1/rooms/{id}/tokens"), Some(json!({"user": "u", "role": "presenter"})), Auth::Super)
        .expect_error(404, 1003);
    let ids = room_ids(&server.get("/v1/rooms"));
    assert!(!ids.contains(&id), "{ids:?}");
    assert_eq!(ids.len(), 2);
    let rooms_of_super = server.get(&format!("/services/{}", server.super_id))["rooms"].clone();
    assert!(!rooms_of_super.as_array().unwrap().contains(&json!(id)), "{rooms_of_super}");
}

#[test]
fn rooms_of_another_service_are_not_found() {
    let server = TestServer::start();
    let (_, owner) = service(&server, "owner");
    let (_, stranger) = service(&server, "stranger");
    let room = server.create_room(owner.clone(), json!({"name": "private", "options": {"inputLimit": 2}}));
    let id = room["_id"].as_str().unwrap().to_string();
    for auth in [stranger, Auth::Super] {
        let calls = [
            ("GET", format!("/v1/rooms/{id}"), None),
            ("PUT", format!("/v1/rooms/{id}"), Some(json!({"inputLimit": 9, "name": "hijacked"}))),
            ("PATCH", format!("/v1/rooms/{id}"), Some(json!({"inputLimit": 9}))),
            ("DELETE", format!("/v1/rooms/{id}"), None),
            ("POST", format!("/v1/rooms/{id}/tokens"), Some(json!({"user": "u", "role": "presenter"}))),
            ("GET", format!("/v1/rooms/{id}/participants"), None),
            ("GET", format!("/v1.1/rooms/{id}/streams"), None),
        ];
        for (method, path, body) in calls {
            let message = server.call(method, &path, body, auth.clone()).expect_error(404, 1003);
            assert_eq!(message, "Room not found", "{method} {path}");
        }
        assert!(!room_ids(&server.call("GET", "/v1/rooms", None, auth).ok_json()).contains(&id));
    }
    let after = server.call("GET", &format!("/v1/rooms/{id}"), None, owner.clone()).ok_json();
    assert_eq!(after, room, "the owner's room is unchanged");
    assert_eq!(room_ids(&server.call("GET", "/v1/rooms", None, owner).ok_json()), vec![id]);
}

// ---- room validation ------------------------------------------------------------------

fn view_video(video: Value) -> Value {
    json!({"views": [{"video": video}]})
}

fn layout(layout: Value) -> Value {
    view_video(json!({"layout": layout}))
}

fn area(left: &str, top: &str, width: &str, height: &str) -> Value {
    json!({"left": left, "top": top, "width": width, "height": height})
}

#[test]
fn room_create_validation() {
    let server = TestServer::start();
    let (_, auth) = service(&server, "validator");
    let named = |options: Value| json!({"name": "r", "options": options});
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "name"),
        (json!({"options": {}}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "r", "options": 5}), "options"),
        (json!({"name": "r", "options": [1]}), "options"),
        (json!({"name": "r", "color": "red"}), "color"),
        (named(json!({"foo": 1})), "foo"),
        (named(json!({"inputLimit": "x"})), "inputLimit"),
        (named(json!({"inputLimit": -5})), "inputLimit"),
        (named(json!({"participantLimit": 1.5})), "participantLimit"),
        (named(json!({"selectActiveAudio": "yes"})), "selectActiveAudio"),
        (named(view_video(json!({"maxInput": 300}))), "maxInput"),
        (named(view_video(json!({"motionFactor": 0}))), "motionFactor"),
        (named(view_video(json!({"bgColor": {"r": 300}}))), "bgColor.r"),
        (named(view_video(json!({"parameters": {"framerate": 0}}))), "framerate"),
        (named(view_video(json!({"parameters": {"resolution": {"width": 0}}}))), "resolution.width"),
        (named(view_video(json!(true))), "video"),
        (named(layout(json!({"fitPolicy": "stretch"}))), "fitPolicy"),
        (named(layout(json!({"templates": {"base": "grid"}}))), "base"),
        (named(layout(json!({"templates": {"base": "void"}}))), "void"),
        (
            named(layout(json!({"templates": {"base": "void", "custom": [
                {"region": [{"id": "1", "area": area("0", "0", "2/1", "1")}]}
            ]}}))),
            "area.width",
        ),
        (
            named(layout(json!({"templates": {"custom": [
                {"region": [{"id": "1", "area": area("0", "0", "1/2", "1")},
                            {"id": "1", "area": area("1/2", "0", "1/2", "1")}]}
            ]}}))),
            "duplicate region id",
        ),
        (named(json!({"views": [{"label": "a"}, {"label": "a"}]})), "duplicate view label"),
        (named(json!({"views": [{"label": ""}]})), "label"),
        (
            named(json!({"views": [{"audio": {"format": {"codec": "opus", "sampleRate": 48000, "channelNum": 1}}}]})),
            "MediaOut conflicts with View Setting",
        ),
        (named(view_video(json!({"format": {"codec": "h264"}}))), "MediaOut conflicts with View Setting"),
        (named(json!({"mediaOut": {"audio": [{"codec": "pcmu"}]}})), "MediaOut conflicts with View Setting"),
        (named(json!({"roles": [{"publish": {"audio": true, "video": true}}]})), "role"),
        (named(json!({"roles": [{"role": "a"}, {"role": "a"}]})), "duplicate role"),
        (named(json!({"mediaIn": {"audio": [{"codec": "mp3"}]}})), "mediaIn.audio[0].codec"),
    ];
    for (body, needle) in &cases {
        let reply = server.call("POST", "/v1/rooms", Some(body.clone()), auth.clone());
        assert_eq!(reply.status, 400, "{body} accepted: {}", reply.body);
        let message = reply.expect_error(400, 1201);
        assert!(message.contains(needle), "{body}: message {message:?} lacks {needle:?}");
    }
    assert_eq!(server.call("GET", "/v1/rooms", None, auth.clone()).ok_json(), json!([]), "nothing stored");
    assert_eq!(
        room_ids(&server.get("/v1/rooms")),
        vec![server.default_room.clone()],
        "nothing stored for the super service either"
    );

    // Valid custom layouts and audio-only views are accepted and returned as given.
    let custom = json!([{"region": [
        {"id": "1", "shape": "rectangle", "area": area("0", "0", "1/2", "1")},
        {"id": "2", "shape": "rectangle", "area": area("1/2", "0", "1/2", "1")}
    ]}]);
    let room = server.create_room(
        auth.clone(),
        named(json!({"views": [{"label": "duo", "video": {"layout": {"templates": {"base": "void", "custom": custom}}}}]})),
    );
    let templates = &room["views"][0]["video"]["layout"]["templates"];
    assert_eq!(templates["base"], json!("void"));
    let regions = templates["custom"][0]["region"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[1]["id"], json!("2"));
    assert_eq!(regions[1]["area"], area("1/2", "0", "1/2", "1"));

    let audio_only = server.create_room(auth.clone(), named(json!({"views": [{"label": "voice", "video": false}]})));
    assert_eq!(audio_only["views"][0]["video"], json!(false));
    assert_eq!(audio_only["views"][0]["label"], json!("voice"));
    let id = audio_only["_id"].as_str().unwrap();
    assert_eq!(
        server.call("GET", &format!("/v1/rooms/{id}"), None, auth.clone()).ok_json()["views"][0]["video"],
        json!(false)
    );
    assert_eq!(server.call("GET", "/v1/rooms", None, auth).ok_json().as_array().unwrap().len(), 2);
}

#[test]
fn room_update_validation_keeps_the_stored_room() {
    let server = TestServer::start();
    let room = server.create_room(Auth::Super, json!({"name": "stable", "options": {"inputLimit": 3}}));
    let id = room["_id"].as_str().unwrap();
    let path = format!("/v1/rooms/{id}");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"inputLimit": "x"}), "inputLimit"),
        (json!({"inputLimit": -5}), "inputLimit"),
        (json!({"name": ""}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"bogus": true}), "bogus"),
        (view_video(json!({"maxInput": 300})), "maxInput"),
        (layout(json!({"fitPolicy": "stretch"})), "fitPolicy"),
        (json!({"views": [{"label": "a"}, {"label": "a"}]}), "duplicate view label"),
        (json!({"mediaOut": {"audio": [{"codec": "pcmu"}]}}), "MediaOut conflicts with View Setting"),
        (json!({"roles": [{}]}), "role"),
        (json!([1, 2]), "object"),
    ];
    for method in ["PUT", "PATCH"] {
        for (body, needle) in &cases {
            let reply = server.call(method, &path, Some(body.clone()), Auth::Super);
            let message = reply.expect_error(400, 1201);
            assert!(message.contains(needle), "{method} {body}: {message:?} lacks {needle:?}");
            assert_eq!(server.get(&path), room, "{method} {body} changed the room");
        }
    }
    let reply = server.call_raw("PUT", &path, Some(b"{inputLimit: 1}"), Some("application/json"), Auth::Super);
    assert_eq!(reply.expect_error(400, 1201), "Failed to parse JSON body");
    assert_eq!(server.get(&path)["inputLimit"], json!(3));
}

// ---- hostile input --------------------------------------------------------------------

#[test]
fn hostile_bodies_are_refused_and_the_server_survives() {
    let mut server = TestServer::start();
    // Over the 1 MiB default limit.
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let reply = server.call_raw("POST", "/v1/rooms", Some(big.as_bytes()), Some("application/json"), Auth::Super);
    assert_eq!(reply.status, 413, "{}", reply.body);
    let body = reply.json();
    assert!(body["error"]["code"].is_u64(), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1);

    // Deep nesting must not overflow the stack.
    for deep in
        ["[".repeat(100_000), "{\"a\":".repeat(20_000), format!("{{\"name\":\"x\",\"options\":{}", "[".repeat(100_000))]
    {
        let reply = server.call_raw("POST", "/v1/rooms", Some(deep.as_bytes()), Some("application/json"), Auth::Super);
        reply.expect_error(400, 1201);
    }
    // Nesting the JSON parser accepts but that is still absurd for a room.
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!([nested]);
    }
    let reply = server.call("POST", "/v1/rooms", Some(json!({"name": "x", "options": {"views": nested}})), Auth::Super);
    reply.expect_error(400, 1201);

    // Invalid UTF-8, as JSON and as a form.
    let reply =
        server.call_raw("POST", "/v1/rooms", Some(b"{\"name\": \"\xff\xfe\"}"), Some("application/json"), Auth::Super);
    reply.expect_error(400, 1201);
    let reply = server.call_raw(
        "POST",
        "/v1/rooms",
        Some(b"name=\xff\xfe"),
        Some("application/x-www-form-urlencoded"),
        Auth::Super,
    );
    reply.expect_error(400, 1201);
    let reply =
        server.call_raw("POST", "/v1/rooms", Some(b"name=%ff"), Some("application/x-www-form-urlencoded"), Auth::Super);
    reply.expect_error(400, 1201);
    let reply = server.call_raw("POST", "/v1/rooms", Some(b"\0\0\0"), Some("application/json"), Auth::Super);
    reply.expect_error(400, 1201);

    // Over the limit without Content-Length (chunked).
    let chunked = crate::support::agent()
        .post(&format!("{}/v1/rooms", server.base_url()))
        .set("Authorization", &server.auth_header(&Auth::Super).unwrap())
        .set("Content-Type", "application/json")
        .send(std::io::Cursor::new(big.into_bytes()));
    match chunked {
        Err(ureq::Error::Status(413, response)) => {
            let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
            assert!(body["error"]["code"].is_u64(), "{body}");
        }
        other => panic!("chunked 2 MB body: {other:?}"),
    }

    // Still alive and unchanged.
    assert!(server.child_mut().try_wait().unwrap().is_none(), "portal died; log:\n{}", server.log());
    assert_eq!(room_ids(&server.get("/v1/rooms")), vec![server.default_room.clone()]);
    let room = server.create_room(Auth::Super, json!({"name": "after"}));
    assert_eq!(room["name"], json!("after"));
}

// ---- tokens ---------------------------------------------------------------------------

#[test]
fn tokens_are_signed_with_the_database_key() {
    let server = TestServer::start();
    let room = &server.default_room;
    let path = format!("/v1/rooms/{room}/tokens");
    let reply = server.call("POST", &path, Some(json!({"user": "u", "role": "presenter"})), Auth::Super);
    let text = reply.ok_text().to_string();
    assert!(reply.header("Content-Type").unwrap_or_default().starts_with("text/html"), "{:?}", reply.headers);
    assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)), "standard base64: {text}");
    let json = crate::support::decode_token(&text);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["tokenId", "host", "secure", "signature"], "{json}");
    assert!(is_object_id(&json["tokenId"]), "{json}");
    assert_eq!(json["host"], json!(server.token_host()));
    assert_eq!(json["secure"], json!(false));
    let signature = json["signature"].as_str().unwrap();
    assert_eq!(signature.len(), 88);
    assert!(signature.ends_with("=="));

    let key = server.token_key();
    assert_eq!(key.len(), 128, "64 random bytes as hex");
    let token = owt_auth::Token::decode(&text).expect("token decodes");
    assert!(token.verify(&key), "signature verifies with the key in owt.db");
    assert!(!token.verify("0123"), "and not with another key");
    let expected = owt_auth::hmac_hex_base64(&key, &format!("{},{},undefined", token.token_id, server.token_host()));
    assert_eq!(token.signature, expected, "OWT signs tokenId,host,undefined");

    // The record stored for the portal carries user, role and room.
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let record = store.take_token(&token.token_id, owt_store::now_ms(), 180_000).unwrap().expect("token stored");
    assert_eq!((record.user.as_str(), record.role.as_str()), ("u", "presenter"));
    assert_eq!(&record.room_id, room);
    assert_eq!(record.service_id, server.super_id);
    assert_eq!(record.code.len(), 11);
    assert!(record.code.chars().all(|c| c.is_ascii_digit()));

    // Each token is a new one.
    let again = server.call("POST", &path, Some(json!({"user": "u", "role": "presenter"})), Auth::Super);
    let again = owt_auth::Token::decode(again.ok_text()).unwrap();
    assert_ne!(again.token_id, token.token_id);
    assert!(again.verify(&key));

    // Preference.
    let reply = server.call(
        "POST",
        &path,
        Some(json!({"user": "p", "role": "viewer", "preference": {"isp": "isp1", "region": "eu"}})),
        Auth::Super,
    );
    let with_pref = owt_auth::Token::decode(reply.ok_text()).unwrap();
    let record = store.take_token(&with_pref.token_id, owt_store::now_ms(), 180_000).unwrap().unwrap();
    let origin: Value = serde_json::from_str(&record.origin).unwrap();
    assert_eq!(origin, json!({"isp": "isp1", "region": "eu"}));
}

#[test]
fn token_requests_are_validated() {
    let server = TestServer::start();
    let path = format!("/v1/rooms/{}/tokens", server.default_room);
    for body in [
        json!({"user": "u", "role": "admin"}),
        json!({"user": "", "role": "presenter"}),
        json!({"role": "presenter"}),
        json!({"user": "u"}),
        json!({}),
        json!({"user": 5, "role": "presenter"}),
    ] {
        let message = server.call("POST", &path, Some(body.clone()), Auth::Super).expect_error(400, 1201);
        assert_eq!(message, "Name or role not valid", "{body}");
    }
    for body in [
        json!({"user": "u", "role": "presenter", "preference": "x"}),
        json!({"user": "u", "role": "presenter", "preference": {"isp": 1}}),
        json!({"user": "u", "role": "presenter", "extra": 1}),
        json!(["u", "presenter"]),
    ] {
        server.call("POST", &path, Some(body.clone()), Auth::Super).expect_error(400, 1201);
    }
    // A role that exists only in a custom room.
    let room = server.create_room(Auth::Super, json!({"name": "custom", "options": {"roles": [{"role": "guest"}]}}));
    let custom_path = format!("/v1/rooms/{}/tokens", room["_id"].as_str().unwrap());
    server
        .call("POST", &custom_path, Some(json!({"user": "u", "role": "presenter"})), Auth::Super)
        .expect_error(400, 1201);
    let token = server.call("POST", &custom_path, Some(json!({"user": "u", "role": "guest"})), Auth::Super);
    assert!(owt_auth::Token::decode(token.ok_text()).unwrap().verify(&server.token_key()));
    assert_eq!(owt_store::Store::open(&server.db_path()).unwrap().token_count().unwrap(), 1, "only one token stored");
}

#[test]
fn token_user_and_role_from_mauth_header() {
    let server = TestServer::start();
    let path = format!("/v1/rooms/{}/tokens", server.default_room);
    let header = user_role_header(&server.super_id, &server.super_key, "Jöhn", "viewer", true);
    let reply = server.call("POST", &path, Some(json!({})), Auth::Raw(header));
    let token = owt_auth::Token::decode(reply.ok_text()).expect("token");
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let record = store.take_token(&token.token_id, owt_store::now_ms(), 180_000).unwrap().expect("stored");
    assert_eq!(record.user, "Jöhn");
    assert_eq!(record.role, "viewer");
    // The body wins over the header.
    let header = user_role_header(&server.super_id, &server.super_key, "Jöhn", "viewer", true);
    let reply = server.call("POST", &path, Some(json!({"user": "body", "role": "presenter"})), Auth::Raw(header));
    let token = owt_auth::Token::decode(reply.ok_text()).unwrap();
    let record = store.take_token(&token.token_id, owt_store::now_ms(), 180_000).unwrap().unwrap();
    assert_eq!((record.user.as_str(), record.role.as_str()), ("body", "presenter"));
    // A header role the room does not have is refused like a body role.
    let header = user_role_header(&server.super_id, &server.super_key, "x", "admin", true);
    let reply = server.call("POST", &path, Some(json!({})), Auth::Raw(header));
    assert_eq!(reply.expect_error(400, 1201), "Name or role not valid");
}

// ---- live-state resources -------------------------------------------------------------

#[test]
fn live_state_resources_of_an_idle_room() {
    let server = TestServer::start();
    let room = &server.default_room;
    for version in ["v1", "v1.1"] {
        for list in ["participants", "streams", "recordings", "streaming-outs", "sipcalls"] {
            let path = format!("/{version}/rooms/{room}/{list}");
            assert_eq!(server.get(&path), json!([]), "{path}");
        }
        let base = format!("/{version}/rooms/{room}");
        server.call("GET", &format!("{base}/participants/xyz"), None, Auth::Super).expect_error(404, 1005);
        server.call("DELETE", &format!("{base}/participants/xyz"), None, Auth::Super).expect_error(404, 1005);
        let patch = json!([{"op": "replace", "path": "/permission/publish", "value": false}]);
        server.call("PATCH", &format!("{base}/participants/xyz"), Some(patch), Auth::Super).expect_error(404, 1005);
        server.call("GET", &format!("{base}/streams/xyz"), None, Auth::Super).expect_error(404, 1004);
        server.call("DELETE", &format!("{base}/streams/xyz"), None, Auth::Super).expect_error(404, 1004);
        let patch = json!([{"op": "add", "path": "/info/inViews", "value": "common"}]);
        server.call("PATCH", &format!("{base}/streams/xyz"), Some(patch), Auth::Super).expect_error(404, 1004);
        let recording = json!({"container": "auto", "media": {"audio": {"from": "s"}, "video": false}});
        server.call("POST", &format!("{base}/recordings"), Some(recording), Auth::Super).expect_error(500, 1301);
        // Unknown rooms are 404/1003 before anything else.
        let unknown = format!("/{version}/rooms/{UNKNOWN_ID}");
        server.call("GET", &format!("{unknown}/participants"), None, Auth::Super).expect_error(404, 1003);
        server.call("GET", &format!("{unknown}/streams/xyz"), None, Auth::Super).expect_error(404, 1003);
    }
}

// ---- availability -----------------------------------------------------------------------

/// GET /v1/rooms with a 10 s deadline: true when any HTTP answer came back.
fn answers_within_10s(server: &TestServer, agent: &ureq::Agent) -> Result<u16, String> {
    let url = format!("{}/v1/rooms", server.base_url());
    let header = server.auth_header(&Auth::Super).unwrap();
    match agent.get(&url).set("Authorization", &header).timeout(Duration::from_secs(10)).call() {
        Ok(response) => Ok(response.status()),
        Err(ureq::Error::Status(status, _)) => Ok(status),
        Err(ureq::Error::Transport(err)) => Err(err.to_string()),
    }
}

#[test]
fn slow_request_bodies_do_not_block_other_clients() {
    let server = TestServer::start();
    // More clients than REST threads announce a body and send only its first bytes.
    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .write_all(
                b"POST /v1/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                  Content-Length: 500000\r\n\r\n{\"na",
            )
            .unwrap();
        slow.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let answer = answers_within_10s(&server, &crate::support::agent());
    assert_eq!(
        answer,
        Ok(200),
        "a well-behaved client waited {:?} while {} clients trickle their bodies",
        started.elapsed(),
        slow.len()
    );
    drop(slow);
}

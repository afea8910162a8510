//! Durability: everything created through the REST API (services, rooms with custom options,
//! the token-signing key) survives a SIGKILL of owt-portal and a restart.

use crate::support::{Auth, TestServer};
use serde_json::{json, Value};

#[test]
fn state_survives_sigkill_and_restart() {
    let mut server = TestServer::start();
    let service = server.create_service("durable");
    let auth = Auth::service(&service);
    let plain = server.create_room(auth.clone(), json!({"name": "plain"}));
    let custom = server.create_room(
        auth.clone(),
        json!({"name": "custom", "options": {
            "inputLimit": 3,
            "participantLimit": 12,
            "selectActiveAudio": true,
            "roles": [{"role": "host", "publish": {"audio": true, "video": true},
                       "subscribe": {"audio": true, "video": true}},
                      {"role": "guest", "subscribe": {"audio": true}}],
            "views": [
                {"label": "main", "video": {"maxInput": 2, "motionFactor": 1.5,
                    "parameters": {"resolution": {"width": 1280, "height": 720}, "bitrate": "x0.5"},
                    "layout": {"fitPolicy": "crop", "templates": {"base": "void", "custom": [{"primary": "1", "region": [
                        {"id": "1", "area": {"left": "0", "top": "0", "width": "1/2", "height": "1"}},
                        {"id": "2", "area": {"left": "1/2", "top": "0", "width": "1/2", "height": "1"}}
                    ]}]}}}},
                {"label": "voice", "audio": {"vad": false}, "video": false}
            ]
        }}),
    );
    let custom_id = custom["_id"].as_str().unwrap().to_string();
    // Change it once more so the stored form is the updated one.
    let custom =
        server.call("PUT", &format!("/v1/rooms/{custom_id}"), Some(json!({"name": "custom2"})), auth.clone()).ok_json();
    assert_eq!(custom["name"], json!("custom2"));
    let token_text = server
        .call(
            "POST",
            &format!("/v1/rooms/{custom_id}/tokens"),
            Some(json!({"user": "u", "role": "guest"})),
            auth.clone(),
        )
        .ok_text()
        .to_string();
    let token = owt_auth::Token::decode(&token_text).expect("token");
    let key_before = server.token_key();
    assert!(token.verify(&key_before));

    let snapshot = |server: &TestServer| -> Vec<Value> {
        let rooms = server.call("GET", "/v1/rooms", None, auth.clone()).ok_json();
        let mut all = vec![
            server.get("/services"),
            server.get(&format!("/services/{}", service["_id"].as_str().unwrap())),
            server.get("/v1/rooms"),
            rooms.clone(),
        ];
        for room in rooms.as_array().unwrap() {
            let id = room["_id"].as_str().unwrap();
            all.push(server.call("GET", &format!("/v1/rooms/{id}"), None, auth.clone()).ok_json());
        }
        all
    };
    let before = snapshot(&server);
    assert_eq!(before[3].as_array().unwrap().len(), 2);
    assert!(before.contains(&plain) && before.contains(&custom));

    let old_pid = server.child().id();
    server.restart();
    assert_ne!(server.child().id(), old_pid, "a new process");
    let after = snapshot(&server);
    assert_eq!(after, before, "identical after SIGKILL + restart");
    assert_eq!(after[4..].iter().find(|r| r["_id"] == json!(custom_id)), Some(&custom));

    // The token key survives, so tokens issued before the restart stay valid.
    let key_after = server.token_key();
    assert_eq!(key_after, key_before);
    assert!(token.verify(&key_after));
    let store = owt_store::Store::open(&server.db_path()).unwrap();
    let record = store.take_token(&token.token_id, owt_store::now_ms(), 180_000).unwrap().expect("token record kept");
    assert_eq!(
        (record.user.as_str(), record.role.as_str(), record.room_id.as_str()),
        ("u", "guest", custom_id.as_str())
    );
    drop(store);
    // New tokens use the same key; the service's credentials still work for writes.
    let fresh = server
        .call(
            "POST",
            &format!("/v1/rooms/{custom_id}/tokens"),
            Some(json!({"user": "w", "role": "host"})),
            auth.clone(),
        )
        .ok_text()
        .to_string();
    assert!(owt_auth::Token::decode(&fresh).unwrap().verify(&key_before));
    let third = server.create_room(auth.clone(), json!({"name": "third"}));

    // And once more, with the third room.
    let before = snapshot(&server);
    server.restart();
    assert_eq!(snapshot(&server), before);
    assert_eq!(
        server.call("GET", &format!("/v1/rooms/{}", third["_id"].as_str().unwrap()), None, auth).ok_json(),
        third
    );
}

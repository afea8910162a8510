//! The media requests of the OWT client protocol driven through the older npm socket.io-client
//! majors in headless Chromium (tests/e2e/clients.sh, tests/js/e2e-clients.js): 2.x (Engine.IO 3)
//! and 3.x (Engine.IO 4; 4.x is what the other browser tests load). A publisher (VP8+Opus) and a
//! subscriber go through publish, subscribe, stream-control and subscription-control pause/play,
//! unsubscribe and unpublish with the real owt-webrtc, and the subscriber's video is checked
//! after each step.

use serde_json::Value;
use std::process::Command;

/// One run of tests/e2e/clients.sh with socket.io-client `major` in its own network namespace;
/// its JSON result, checked for success.
fn run_clients(major: &str) -> Value {
    let _turn = super::ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let bin = super::program("owt-portal").parent().expect("bin dir").to_path_buf();
    let script = format!(
        "ip link set lo up; exec '{}' {major} '{}'",
        here.join("tests/e2e/clients.sh").display(),
        bin.display()
    );
    let out = Command::new("unshare").args(["-n", "sh", "-c", &script]).output().expect("unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let result: Value = serde_json::from_str(line)
        .unwrap_or_else(|_| panic!("socket.io-client {major}: no result; stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(
        out.status.success() && result.get("error").is_none(),
        "socket.io-client {major}: {result}\nstderr:\n{stderr}"
    );
    result
}

fn count(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or_else(|| panic!("{field} in {value}"))
}

/// Frames and video packets both stood still for a second (a few may still have been in flight).
fn assert_stands_still(step: &str, sample: &Value) {
    let (from, to) = (count(sample, "from"), count(sample, "to"));
    assert!(to <= from + 3, "{step}: video stands still ({from} -> {to} frames)");
    let (from, to) = (count(sample, "packetsFrom"), count(sample, "packetsTo"));
    assert!(to <= from + 5, "{step}: the node stops sending video ({from} -> {to} packets)");
}

fn assert_advances(step: &str, sample: &Value, enough: u64) {
    let (from, to) = (count(sample, "from"), count(sample, "to"));
    assert!(to >= from + enough, "{step}: frames advance ({from} -> {to})");
}

/// Everything one run must show, whatever the client version.
fn check_media_requests(major: &str, protocol: (u64, &str), result: &Value) {
    let (socket_io_protocol, eio) = protocol;
    assert!(result["clientVersion"].as_str().is_some_and(|v| v.starts_with(&format!("{major}."))), "{result}");
    for moment in ["transports", "transportsAtEnd"] {
        for page in ["publisher", "subscriber"] {
            let transport = &result[moment][page];
            assert_eq!(transport["socketIoProtocol"], socket_io_protocol, "{major}: {moment} {page}: {transport}");
            assert_eq!(transport["eio"], eio, "{major}: {moment} {page}: {transport}");
            assert_eq!(
                transport["transport"], "websocket",
                "{major}: upgraded from polling: {moment} {page}: {transport}"
            );
        }
    }
    let published = result["published"]["id"].as_str().expect("publication id");
    assert!(result["subscribed"]["id"].is_string(), "{result}");
    let codecs = result["codecs"].as_array().expect("codecs");
    assert!(codecs.iter().any(|c| c == "video/VP8") && codecs.iter().any(|c| c == "audio/opus"), "{major}: {result}");
    assert_advances(&format!("{major}: subscribed"), &result["flowing"], 30);

    // stream-control pause/play by the publisher: acked "ok", told to the subscriber as
    // video.status updates, kept in the portal's stream (REST), and the video stops and goes on.
    let control = &result["streamControl"];
    for step in ["pause", "play"] {
        assert_eq!(control[step], serde_json::json!({"ok": true, "ack": "ok"}), "{major}: stream-control {step}");
    }
    assert_stands_still(&format!("{major}: stream-control pause"), &control["paused"]);
    assert_advances(&format!("{major}: stream-control play"), &control["resumed"], 15);
    assert_eq!(control["restVideoStatus"], serde_json::json!({"paused": "inactive", "playing": "active"}), "{major}");
    let notes = result["streamNotes"].as_array().expect("stream notifications");
    let status_updates: Vec<&Value> = notes
        .iter()
        .filter(|n| n["id"] == published && n["status"] == "update" && n["data"]["field"] == "video.status")
        .map(|n| &n["data"]["value"])
        .collect();
    assert_eq!(status_updates, ["inactive", "active"], "{major}: stream updates to the subscriber: {notes:?}");

    // subscription-control pause/play by the subscriber: acked with "ok" alone (no data).
    let control = &result["subscriptionControl"];
    for step in ["pause", "play"] {
        assert_eq!(control[step], serde_json::json!({"ok": true, "ack": null}), "{major}: subscription-control {step}");
    }
    assert_stands_still(&format!("{major}: subscription-control pause"), &control["paused"]);
    assert_advances(&format!("{major}: subscription-control play"), &control["resumed"], 15);

    // unsubscribe: acked, the media stops, and the portal no longer knows the subscription,
    // while the publication stays.
    let unsubscribe = &result["unsubscribe"];
    assert_eq!(unsubscribe["ack"], serde_json::json!({"ok": true, "ack": null}), "{major}: {unsubscribe}");
    assert_stands_still(&format!("{major}: unsubscribe"), &unsubscribe["frames"]);
    assert_eq!(
        unsubscribe["controlAfter"]["error"], "subscription-control: Subscription does NOT exist",
        "{major}: {unsubscribe}"
    );
    assert_eq!(unsubscribe["again"]["error"], "unsubscribe: Subscription does NOT exist", "{major}: {unsubscribe}");
    assert!(unsubscribe["streams"].as_array().unwrap().iter().any(|s| s == published), "{major}: {unsubscribe}");

    // unpublish: acked, the stream leaves the room (REST) and the subscriber is told.
    let unpublish = &result["unpublish"];
    assert_eq!(unpublish["ack"], serde_json::json!({"ok": true, "ack": null}), "{major}: {unpublish}");
    assert!(!unpublish["streams"].as_array().unwrap().iter().any(|s| s == published), "{major}: {unpublish}");
    assert!(notes.iter().any(|n| n["id"] == published && n["status"] == "remove"), "{major}: {notes:?}");
}

#[test]
fn socket_io_client_2_publishes_subscribes_pauses_plays_unsubscribes_and_unpublishes_over_websocket() {
    check_media_requests("2", (4, "3"), &run_clients("2"));
}

#[test]
fn socket_io_client_3_publishes_subscribes_pauses_plays_unsubscribes_and_unpublishes_over_websocket() {
    check_media_requests("3", (5, "4"), &run_clients("3"));
}

//! H.265 through owt-webrtc with a non-browser WebRTC client (tests/e2e/h265.sh,
//! tests/gst/h265_forward.py): headless Chromium has no H.265 encoder, so GStreamer's
//! webrtcbin publishes x265enc video through owt-portal's signaling, and a second webrtcbin
//! subscribes the forward stream and decodes it with avdec_h265. Like the browser tests it
//! runs in a fresh network namespace with only loopback, one run at a time.

use serde_json::Value;
use std::process::Command;

/// One run of tests/e2e/h265.sh in a room whose video codecs (mediaIn and mediaOut) are
/// `codecs`: its exit status and JSON result.
fn run_h265(codecs: &str) -> (bool, Value) {
    let _turn = super::ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let bin = super::program("owt-portal").parent().expect("bin dir").to_path_buf();
    let script =
        format!("ip link set lo up; exec '{}' '{}' {codecs}", here.join("tests/e2e/h265.sh").display(), bin.display());
    let out = Command::new("unshare").args(["-n", "sh", "-c", &script]).output().expect("unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let result: Value = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!("{codecs}: no result (GStreamer with x265enc, avdec_h265, webrtcbin and python3-gi installed?); stdout:\n{stdout}\nstderr:\n{stderr}")
    });
    (out.status.success(), result)
}

#[test]
fn h265_is_negotiated_forwarded_and_decoded_when_the_room_takes_it() {
    let (ok, result) = run_h265("h265,vp8");
    assert!(ok && result.get("error").is_none(), "{result}");
    let tracks = result["publication"]["media"]["tracks"].as_array().expect("the publication's tracks");
    let video = tracks.iter().find(|t| t["type"] == "video").expect("a video track");
    assert_eq!(video["format"], serde_json::json!({"codec": "h265"}), "{result}");
    for side in ["publisherAnswer", "subscriberAnswer"] {
        assert_eq!(result[side], serde_json::json!([["video", ["H265/90000"]]]), "{side}: {result}");
    }
    let decoded = &result["decoded"];
    assert!(decoded["frames"].as_u64().unwrap() >= 30, "frames decoded: {decoded}");
    assert!(decoded["sizes"]["320x240"].as_u64().unwrap_or(0) >= 30, "the publisher's size: {decoded}");
    assert_eq!(decoded["sizes"].as_object().unwrap().len(), 1, "every frame 320x240: {decoded}");
    // owt-webrtc read the size from the H.265 SPS and the portal announced it in a stream update.
    let resolutions = result["resolutions"].as_array().expect("resolution announced");
    let expected = serde_json::json!({"width": 320, "height": 240});
    assert!(!resolutions.is_empty() && resolutions.iter().all(|r| *r == expected), "{result}");
}

#[test]
fn h265_publication_fails_when_the_room_does_not_take_it() {
    let (ok, result) = run_h265("vp8,h264");
    assert!(!ok, "{result}");
    assert_eq!(
        result["progressError"],
        serde_json::json!({"client": "publisher", "reason": "Video format unacceptable"}),
        "{result}"
    );
    assert_eq!(result["decoded"]["frames"], 0, "{result}");
}

//! Deterministic tests of the conference core.

use super::*;
use owt_types::room::RoomConfig;
use serde_json::json;

fn room(options: Value) -> Conference {
    Conference::new("r1", RoomConfig::create(&json!("room"), Some(&options)).unwrap())
}

fn origin() -> Value {
    json!({"isp": "isp", "region": "region"})
}

#[test]
fn join_lists_the_joiner_and_announces_it_to_others() {
    let mut conference = room(json!({}));
    let (first, effects) = conference.join("p1", "alice", "presenter", origin()).unwrap();
    assert_eq!(first.room["participants"], json!([{"id": "p1", "user": "alice", "role": "presenter"}]));
    assert_eq!(first.room["views"], json!(["common"]));
    assert_eq!(first.room["streams"][0]["id"], "r1-common");
    assert_eq!(effects.len(), 1);
    let (second, effects) = conference.join("p2", "bob", "viewer", origin()).unwrap();
    assert_eq!(second.room["participants"].as_array().unwrap().len(), 2);
    assert_eq!(
        effects,
        vec![Effect::Broadcast {
            exclude: vec!["p2".into()],
            event: "participant",
            data: json!({"action": "join", "data": {"id": "p2", "user": "bob", "role": "viewer"}}),
        }]
    );
    assert!(!second.participant.permission.publish.video);
    assert!(second.participant.permission.subscribe.video);
}

#[test]
fn limits_roles_and_duplicates_are_refused() {
    let mut conference = room(json!({"participantLimit": 1}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    assert_eq!(conference.join("p2", "b", "presenter", origin()).unwrap_err().0, "Room is full");
    let mut conference = room(json!({}));
    assert_eq!(conference.join("p1", "a", "king", origin()).unwrap_err().0, "Invalid role");
    conference.join("p1", "a", "presenter", origin()).unwrap();
    assert!(conference.join("p1", "a", "presenter", origin()).is_err());
    let mut unlimited = room(json!({"participantLimit": 0}));
    for i in 0..5 {
        unlimited.join(&format!("p{i}"), "u", "viewer", origin()).unwrap();
    }
}

#[test]
fn leave_is_announced_and_idempotent() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    let effects = conference.leave("p1");
    assert_eq!(
        effects[0],
        Effect::Broadcast { exclude: vec![], event: "participant", data: json!({"action": "leave", "data": "p1"}) }
    );
    assert!(conference.is_empty());
    assert!(conference.leave("p1").is_empty());
}

#[test]
fn notifying_off_silences_participant_activities() {
    let mut conference = room(json!({"notifying": {"participantActivities": false, "streamChange": true}}));
    let (_, effects) = conference.join("p1", "a", "presenter", origin()).unwrap();
    assert!(effects.is_empty());
    assert!(conference.leave("p1").is_empty());
}

#[test]
fn text_to_all_includes_sender_and_to_one_checks_the_target() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    conference.join("p2", "b", "presenter", origin()).unwrap();
    let effects = conference.text("p1", "all", &json!("hi")).unwrap();
    assert_eq!(
        effects,
        vec![Effect::Broadcast {
            exclude: vec![],
            event: "text",
            data: json!({"from": "p1", "to": "all", "message": "hi"})
        }]
    );
    let effects = conference.text("p1", "p2", &json!("psst")).unwrap();
    assert_eq!(
        effects,
        vec![Effect::Notify {
            to: "p2".into(),
            event: "text",
            data: json!({"from": "p1", "to": "me", "message": "psst"})
        }]
    );
    assert_eq!(conference.text("p1", "p9", &json!("x")).unwrap_err().0, "Target participant does NOT exist: p9");
    assert_eq!(conference.text("p1", "", &json!("x")).unwrap_err().0, "Invalid receiver");
}

#[test]
fn permission_updates_are_all_or_nothing() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    let detail = conference
        .update_permission("p1", &json!([{"op": "replace", "path": "/permission/publish/video", "value": false}]))
        .unwrap();
    assert_eq!(detail["permission"]["publish"], json!({"audio": true, "video": false}));
    let detail = conference
        .update_permission(
            "p1",
            &json!([{"op": "replace", "path": "/permission/subscribe", "value": {"audio": false, "video": false}}]),
        )
        .unwrap();
    assert_eq!(detail["permission"]["subscribe"], json!({"audio": false, "video": false}));
    let bad = json!([
        {"op": "replace", "path": "/permission/publish/audio", "value": false},
        {"op": "replace", "path": "/permission/publish/audio", "value": "no"}
    ]);
    assert!(conference.update_permission("p1", &bad).is_err());
    assert!(conference.participant("p1").unwrap().permission.publish.audio, "first op not applied");
    for bad in [
        json!({}),
        json!([{"op": "add", "path": "/permission/publish/audio", "value": true}]),
        json!([{"op": "replace", "path": "/permission/record", "value": true}]),
        json!([{"op": "replace", "path": "/permission/publish/data", "value": true}]),
        json!([{"op": "replace", "path": "/permission/publish", "value": {"x": true}}]),
    ] {
        assert!(conference.update_permission("p1", &bad).is_err(), "{bad}");
    }
    assert_eq!(conference.update_permission("p9", &json!([])).unwrap_err().0, "Participant not found");
}

#[test]
fn drop_tells_the_participant_then_it_leaves() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    let effects = conference.drop_participant("p1").unwrap();
    assert_eq!(effects[0], Effect::Drop { participant: "p1".into() });
    assert!(conference.is_empty());
    assert!(conference.drop_participant("p1").is_err());
}

#[test]
fn mixed_streams_follow_the_views_and_carry_all_optional_parameter_arrays() {
    let conference = room(json!({}));
    let stream = conference.stream("r1-common").unwrap();
    assert_eq!(stream["type"], "mixed");
    assert_eq!(stream["info"]["label"], "common");
    let video = &stream["media"]["tracks"][1];
    assert_eq!(video["format"], json!({"codec": "vp8"}));
    assert_eq!(video["parameters"]["resolution"], json!({"width": 640, "height": 480}));
    let parameters = &video["optional"]["parameters"];
    for key in ["resolution", "framerate", "bitrate", "keyFrameInterval"] {
        assert!(parameters[key].is_array(), "{key}");
    }
    assert!(parameters["framerate"].as_array().unwrap().iter().all(|f| f.as_u64().unwrap() < 24));
    assert!(parameters["resolution"].as_array().unwrap().contains(&json!({"width": 320, "height": 240})));
    assert!(!video["optional"]["format"].as_array().unwrap().contains(&json!({"codec": "vp8"})));
    let no_views = room(json!({"views": []}));
    assert!(no_views.streams().is_empty());
    let audio_only = room(json!({"views": [{"label": "a", "video": false}]}));
    assert_eq!(audio_only.stream("r1-a").unwrap()["media"]["tracks"].as_array().unwrap().len(), 1);
}

#[test]
fn rest_forms_of_a_mixed_stream() {
    let conference = room(json!({}));
    let info = conference.stream("r1-common").unwrap();
    let v1 = rest_stream(&info, true);
    assert_eq!(v1["media"]["video"]["format"], json!({"codec": "vp8"}));
    assert_eq!(v1["media"]["video"]["parameters"]["resolution"], json!({"width": 640, "height": 480}));
    assert_eq!(v1["media"]["audio"]["format"]["codec"], "opus");
    assert!(v1["media"].get("tracks").is_none());
    let v11 = rest_stream(&info, false);
    assert_eq!(v11["media"]["video"]["original"][0]["format"], json!({"codec": "vp8"}));
    assert!(v11["media"]["video"].get("format").is_none());
}

fn track(id: &str, kind: &str, mid: &str, codec: &str) -> PublishedTrack {
    PublishedTrack {
        id: id.into(),
        kind: kind.into(),
        mid: mid.into(),
        source: if kind == "audio" { "mic".into() } else { "camera".into() },
        format: json!({"codec": codec}),
        rid: None,
    }
}

#[test]
fn publications_are_reserved_then_announced_and_removed() {
    let mut conference = room(json!({"inputLimit": 1}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    conference.join("v1", "b", "viewer", origin()).unwrap();
    assert_eq!(conference.reserve_publication("s0", "v1", &["video"]).unwrap_err().0, "unauthorized");
    conference.reserve_publication("s1", "p1", &["audio", "video"]).unwrap();
    assert_eq!(conference.reserve_publication("s2", "p1", &["audio"]).unwrap_err().0, "Too many inputs");
    assert_eq!(conference.publications_of("p1"), vec!["s1".to_string()]);
    let effects = conference.add_publication(
        "s1",
        &[track("t-0", "audio", "0", "opus"), track("t-1", "video", "1", "vp8")],
        json!({"a": 1}),
    );
    let Effect::Broadcast { event, data, .. } = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(*event, "stream");
    assert_eq!(data["status"], "add");
    let info = &data["data"];
    assert_eq!(info["type"], "forward");
    assert_eq!(info["info"], json!({"owner": "p1", "type": "webrtc", "inViews": [], "attributes": {"a": 1}}));
    assert_eq!(info["media"]["tracks"][1]["id"], "t-1");
    assert_eq!(info["media"]["tracks"][1]["mid"], "1");
    for key in ["resolution", "framerate", "bitrate", "keyFrameInterval"] {
        assert!(info["media"]["tracks"][1]["optional"]["parameters"][key].is_array(), "{key}");
    }
    assert_eq!(conference.streams().len(), 2, "mixed + forward");
    let effects = conference.set_publication_status("s1", "video", false).unwrap();
    let Effect::Broadcast { data, .. } = &effects[0] else { panic!() };
    assert_eq!(data["data"], json!({"field": "video.status", "value": "inactive"}));
    assert_eq!(conference.stream("s1").unwrap()["media"]["tracks"][1]["status"], "inactive");
    assert!(conference.set_publication_status("nope", "video", false).is_err());
    let effects = conference.remove_publication("s1");
    let Effect::Broadcast { data, .. } = &effects[0] else { panic!() };
    assert_eq!(*data, json!({"id": "s1", "status": "remove"}));
    assert!(conference.remove_publication("s1").is_empty());
    conference.reserve_publication("s3", "p1", &["audio"]).unwrap();
}

#[test]
fn leaving_removes_the_participants_publications_first() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    conference.reserve_publication("s1", "p1", &["audio"]).unwrap();
    conference.add_publication("s1", &[track("t-0", "audio", "0", "opus")], json!(null));
    let effects = conference.leave("p1");
    assert_eq!(effects.len(), 2);
    let Effect::Broadcast { event, data, .. } = &effects[0] else { panic!() };
    assert_eq!((*event, data["status"].as_str()), ("stream", Some("remove")));
    assert!(conference.stream("s1").is_none());
}

#[test]
fn mixer_reports_update_the_mixed_stream_once() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    let mixed = conference.streams()[0]["id"].as_str().unwrap().to_string();
    let effects = conference.update_mixed(&mixed, "activeInput", json!("s1")).unwrap();
    let Effect::Broadcast { event, data, .. } = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(*event, "stream");
    assert_eq!(*data, json!({"id": mixed, "status": "update", "data": {"field": "activeInput", "value": "s1"}}));
    assert_eq!(conference.stream(&mixed).unwrap()["info"]["activeInput"], "s1");
    assert!(conference.update_mixed(&mixed, "activeInput", json!("s1")).unwrap().is_empty(), "no change, no news");
    let layout = json!([{"stream": "s1", "region": {"id": "1", "shape": "rectangle",
        "area": {"left": "0/1", "top": "0/1", "width": "1/1", "height": "1/1"}}}]);
    let effects = conference.update_mixed(&mixed, "video.layout", layout.clone()).unwrap();
    assert_eq!(effects.len(), 1);
    assert_eq!(conference.stream(&mixed).unwrap()["info"]["layout"], layout);
    assert!(conference.update_mixed("nope", "activeInput", json!("s1")).is_err());
    assert!(conference.update_mixed(&mixed, "audio.status", json!("x")).is_err());
}

#[test]
fn streams_are_mixed_into_views_only_when_asked() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    for id in ["s1", "s2"] {
        conference.reserve_publication(id, "p1", &["video"]).unwrap();
        conference.add_publication(id, &[track(&format!("{id}-1"), "video", "1", "vp8")], json!(null));
    }
    assert!(conference.view_inputs("common").is_empty(), "nothing is mixed on its own (as OWT)");
    assert_eq!(conference.stream("s1").unwrap()["info"]["inViews"], json!([]));
    conference.mix("s2", "common").unwrap();
    let effects = conference.mix("s1", "common").unwrap();
    let Effect::Broadcast { data, .. } = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(data["data"]["field"], ".");
    assert_eq!(data["data"]["value"]["info"]["inViews"], json!(["common"]));
    assert_eq!(conference.view_inputs("common"), ["s2", "s1"], "in the order they were mixed");
    assert!(conference.mix("s1", "common").unwrap().is_empty(), "mixing again changes nothing");
    assert!(conference.mix("s1", "nope").is_err(), "unknown view");
    assert!(conference.mix("nope", "common").is_err(), "unknown stream");
    assert!(conference.mix("r1-common", "common").is_err(), "a mixed stream is not a forward stream");
    conference.unmix("s2", "common").unwrap();
    assert_eq!(conference.view_inputs("common"), ["s1"]);
    assert_eq!(conference.stream("s2").unwrap()["info"]["inViews"], json!([]));
    assert!(conference.unmix("s2", "common").unwrap().is_empty());
    conference.remove_publication("s1");
    assert!(conference.view_inputs("common").is_empty());
}

#[test]
fn simulcast_layers_are_tracks_with_their_rid() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    conference.reserve_publication("s1", "p1", &["video"]).unwrap();
    let layers: Vec<PublishedTrack> = ["q", "h"]
        .iter()
        .map(|rid| PublishedTrack { rid: Some(rid.to_string()), ..track(&format!("t-1:{rid}"), "video", "1", "vp8") })
        .collect();
    conference.add_publication("s1", &layers, json!(null));
    let info = conference.stream("s1").unwrap();
    let tracks = info["media"]["tracks"].as_array().unwrap();
    assert_eq!((tracks[0]["id"].as_str(), tracks[0]["rid"].as_str()), (Some("t-1:q"), Some("q")));
    assert_eq!((tracks[1]["id"].as_str(), tracks[1]["mid"].as_str()), (Some("t-1:h"), Some("1")));
    let plain = track("t-0", "audio", "0", "opus");
    conference.reserve_publication("s2", "p1", &["audio"]).unwrap();
    conference.add_publication("s2", &[plain], json!(null));
    assert!(conference.stream("s2").unwrap()["media"]["tracks"][0].get("rid").is_none());
}

#[test]
fn measured_sizes_reach_stream_info_and_choose_simulcast_layers() {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    conference.reserve_publication("s1", "p1", &["video"]).unwrap();
    let layer =
        |rid: &str| PublishedTrack { rid: Some(rid.into()), ..track(&format!("t-1:{rid}"), "video", "1", "vp8") };
    conference.add_publication("s1", &[layer("q"), layer("f")], json!({}));
    assert!(conference.is_simulcast("s1"));
    let wanted = WantedVideo { resolution: Some((320, 240)), ..Default::default() };
    assert_eq!(conference.simulcast_layer("s1", &wanted), None, "nothing measured yet");
    let facts = |width, height, bitrate| VideoFacts { width, height, framerate: Some(30), bitrate_kbps: Some(bitrate) };
    let effects = conference.update_video_facts("t-1:q", facts(160, 120, 100));
    let Effect::Broadcast { data, .. } = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(data["data"]["field"], ".");
    let track = &data["data"]["value"]["media"]["tracks"][0];
    assert_eq!(track["parameters"]["resolution"], json!({"width": 160, "height": 120}));
    let smaller = track["optional"]["parameters"]["resolution"].as_array().unwrap();
    assert!(smaller.contains(&json!({"width": 120, "height": 90})), "relative to 160x120: {track}");
    assert!(!smaller.contains(&json!({"width": 320, "height": 240})), "{track}");
    assert!(conference.update_video_facts("t-1:q", facts(160, 120, 120)).is_empty(), "same size: nobody is told");
    conference.update_video_facts("t-1:f", facts(640, 480, 900));
    assert_eq!(conference.simulcast_layer("s1", &wanted).as_deref(), Some("t-1:q"));
    assert_eq!(conference.simulcast_layer("s1", &WantedVideo::default()).as_deref(), Some("t-1:f"));
    assert!(conference.update_video_facts("nope", facts(1, 1, 1)).is_empty());
    assert!(!conference.is_simulcast("nope"));
}

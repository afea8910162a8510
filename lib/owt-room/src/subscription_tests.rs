//! Deterministic tests of subscriptions: their checks, states, and how they end with their
//! source stream or their owner.

use crate::*;
use owt_types::room::RoomConfig;
use serde_json::json;

fn room(options: Value) -> Conference {
    Conference::new("r1", RoomConfig::create(&json!("room"), Some(&options)).unwrap())
}

fn origin() -> Value {
    json!({"isp": "isp", "region": "region"})
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

/// A room with presenter p1 publishing s1 (audio+video) and s2 (video), viewer v1 joined.
fn room_with_streams() -> Conference {
    let mut conference = room(json!({}));
    conference.join("p1", "a", "presenter", origin()).unwrap();
    conference.join("v1", "b", "viewer", origin()).unwrap();
    conference.reserve_publication("s1", "p1", &["audio", "video"]).unwrap();
    conference.add_publication(
        "s1",
        &[track("s1-0", "audio", "0", "opus"), track("s1-1", "video", "1", "vp8")],
        json!(null),
    );
    conference.reserve_publication("s2", "p1", &["video"]).unwrap();
    conference.add_publication("s2", &[track("s2-1", "video", "1", "vp8")], json!(null));
    conference
}

fn ended(effects: &[Effect]) -> Vec<(String, String, &'static str)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::EndSubscription { id, owner, reason } => Some((id.clone(), owner.clone(), *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn subscriptions_check_permissions_sources_and_duplicates() {
    let mut conference = room_with_streams();
    conference
        .update_permission("v1", &json!([{"op": "replace", "path": "/permission/subscribe/video", "value": false}]))
        .unwrap();
    assert_eq!(conference.add_subscription("u0", "v1", &[("video", "s1")]).unwrap_err().0, "unauthorized");
    assert!(conference.subscription("u0").is_none(), "a refused subscription leaves nothing behind");
    conference.add_subscription("u1", "v1", &[("audio", "s1")]).unwrap();
    assert_eq!(conference.add_subscription("u1", "v1", &[("audio", "s1")]).unwrap_err().0, "Subscription exists");
    assert_eq!(
        conference.add_subscription("u2", "v1", &[("audio", "nope")]).unwrap_err().0,
        "Stream does NOT exist: nope"
    );
    assert_eq!(
        conference.add_subscription("u3", "v9", &[("audio", "s1")]).unwrap_err().0,
        "Participant does NOT exist"
    );
    assert!(conference.add_subscription("u4", "p1", &[("data", "s1")]).is_err());
    assert!(conference.add_subscription("u5", "p1", &[]).is_err());
    conference.add_subscription("u6", "p1", &[("audio", "r1-common"), ("video", "r1-common")]).unwrap();
    assert_eq!(conference.subscriptions_of("v1"), ["u1"]);
    assert_eq!(conference.subscriptions().count(), 2);
}

#[test]
fn a_subscription_is_pending_until_ready_and_ends_once() {
    let mut conference = room_with_streams();
    conference.add_subscription("u1", "v1", &[("audio", "s1"), ("video", "s2")]).unwrap();
    let subscription = conference.subscription("u1").unwrap();
    assert_eq!(subscription.state, SubscriptionState::Pending);
    assert_eq!(subscription.sources.get("video").map(String::as_str), Some("s2"));
    assert!(conference.subscription_ready("u1"));
    assert!(!conference.subscription_ready("u1"), "already active");
    assert!(!conference.subscription_ready("nope"));
    assert_eq!(conference.subscription("u1").unwrap().state, SubscriptionState::Active);
    conference.switch_subscription_source("u1", "video", "s1").unwrap();
    assert_eq!(conference.subscription("u1").unwrap().sources["video"], "s1");
    assert!(conference.switch_subscription_source("u1", "video", "nope").is_err());
    assert!(conference.switch_subscription_source("nope", "video", "s1").is_err());
    let removed = conference.remove_subscription("u1").unwrap();
    assert_eq!((removed.id.as_str(), removed.state), ("u1", SubscriptionState::Ended));
    assert!(conference.remove_subscription("u1").is_none(), "ending twice changes nothing");
    assert!(conference.remove_subscription("nope").is_none());
    assert!(conference.subscription("u1").is_none());
}

#[test]
fn removing_a_stream_ends_the_subscriptions_that_take_media_from_it() {
    let mut conference = room_with_streams();
    conference.add_subscription("u1", "v1", &[("audio", "s1"), ("video", "s2")]).unwrap();
    conference.add_subscription("u2", "v1", &[("video", "s2")]).unwrap();
    conference.add_subscription("u3", "p1", &[("video", "r1-common")]).unwrap();
    conference.subscription_ready("u1");
    let effects = conference.remove_publication("s1");
    assert_eq!(ended(&effects), [("u1".to_string(), "v1".to_string(), SOURCE_STREAM_LOSS)]);
    let Some(Effect::Broadcast { data, .. }) = effects.last() else { panic!("{effects:?}") };
    assert_eq!(*data, json!({"id": "s1", "status": "remove"}), "the stream removal is still announced");
    assert!(conference.subscription("u1").is_none());
    assert!(conference.subscription("u2").is_some(), "other sources are untouched");
    assert!(ended(&conference.remove_publication("s1")).is_empty(), "removing again ends nothing");
    let effects = conference.remove_publication("s2");
    assert_eq!(ended(&effects), [("u2".to_string(), "v1".to_string(), SOURCE_STREAM_LOSS)]);
    assert_eq!(conference.subscriptions_of("p1"), ["u3"], "mixed stream subscriptions stay");
}

#[test]
fn leaving_ends_own_subscriptions_silently_and_others_of_its_streams() {
    let mut conference = room_with_streams();
    conference.join("v2", "c", "viewer", origin()).unwrap();
    conference.add_subscription("own", "p1", &[("video", "s2")]).unwrap();
    conference.add_subscription("u1", "v1", &[("audio", "s1")]).unwrap();
    conference.add_subscription("u2", "v2", &[("video", "r1-common")]).unwrap();
    let effects = conference.leave("p1");
    let mut ends = ended(&effects);
    ends.sort();
    assert_eq!(
        ends,
        [
            ("own".to_string(), "p1".to_string(), PARTICIPANT_TERMINATE),
            ("u1".to_string(), "v1".to_string(), SOURCE_STREAM_LOSS)
        ]
    );
    assert_eq!(conference.subscriptions().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["u2"]);
    assert!(ended(&conference.leave("p1")).is_empty());
    let effects = conference.leave("v2");
    assert_eq!(ended(&effects), [("u2".to_string(), "v2".to_string(), PARTICIPANT_TERMINATE)]);
    assert_eq!(conference.subscriptions().count(), 0);
}

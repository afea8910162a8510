//! Older client protocols still accepted at login (spec/owt-compat.md §1.16; OWT's
//! `portal/versions/portalDataAdapter.js`), sans-IO: `"1.1"` (JS SDK 4.x) and `"1.0"`.
//! Their `publish` and `subscribe` requests name media as `{audio, video}` instead of track
//! lists; they are upgraded here to the 1.2 form the rest of the portal speaks, each with a
//! transport of its own (4.x clients use one PeerConnection per publication or subscription,
//! so the transport id is the session id). What such clients receive is downgraded per
//! recipient: StreamInfo as `media.audio` / `media.video` (1.0: with the first original
//! video flattened), and the session `progress` renamed `session-progress`.

use serde_json::{json, Map, Value};

/// The Client-Portal protocol a participant logged in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    V1_0,
    V1_1,
    V1_2,
}

/// Sources a 1.0/1.1 publication may name per kind (OWT's requestFormatV1-0.js).
const AUDIO_SOURCES: [&str; 4] = ["mic", "screen-cast", "raw-file", "encoded-file"];
const VIDEO_SOURCES: [&str; 4] = ["camera", "screen-cast", "raw-file", "encoded-file"];

/// The protocol of a login request. No `protocol` at all is OWT's 3.x legacy client, which
/// owt-rs does not speak; SDK 3.5 is refused whatever it claims, as OWT does.
pub(super) fn login_protocol(request: &Map<String, Value>) -> Result<Protocol, String> {
    let protocol = match request.get("protocol") {
        None | Some(Value::Null) => return Err("Unknown client protocol: legacy clients are not supported".into()),
        Some(Value::String(text)) => match text.as_str() {
            "1.0" => Protocol::V1_0,
            "1.1" => Protocol::V1_1,
            "1.2" => Protocol::V1_2,
            other => return Err(format!("Unknown client protocol: {other} (owt-rs speaks 1.0, 1.1 and 1.2)")),
        },
        Some(other) => return Err(format!("Unknown client protocol: {other} (owt-rs speaks 1.0, 1.1 and 1.2)")),
    };
    if request.get("userAgent").and_then(|ua| ua.get("sdk")).and_then(|sdk| sdk.get("version")) == Some(&json!("3.5")) {
        return Err("Deprecated client version".into());
    }
    Ok(protocol)
}

/// One kind's media options of a 1.0/1.1 request: an object, or absent / `false` for none.
fn media_options<'a>(media: &'a Value, kind: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match media.get(kind) {
        None | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Object(options)) => Ok(Some(options)),
        Some(_) => Err(format!("Invalid request: media.{kind} must be an object or false")),
    }
}

fn media_of(data: &Value) -> Result<&Value, String> {
    data.get("media").filter(|m| m.is_object()).ok_or_else(|| "Invalid request: media must be an object".to_string())
}

/// Mids are numbered in track order, as OWT does: a 4.x PeerConnection carries only this
/// session's m-lines, so a video-only session's video is mid "0".
fn next_mid(tracks: &[Value]) -> String {
    tracks.len().to_string()
}

/// `publish {media: {audio: {source} | false, video: {source, parameters?} | false},
/// attributes}` as a 1.2 request on a new transport. Video `parameters` describe the
/// capture only; OWT drops them too.
pub(super) fn upgrade_publish(data: &Value) -> Result<Value, String> {
    let media = media_of(data)?;
    let mut tracks = Vec::new();
    for (kind, sources) in [("audio", &AUDIO_SOURCES), ("video", &VIDEO_SOURCES)] {
        let Some(options) = media_options(media, kind)? else { continue };
        let source = options.get("source").and_then(Value::as_str).filter(|s| sources.contains(s));
        let source = source.ok_or(format!("Invalid request: media.{kind}.source must be one of {sources:?}"))?;
        if options.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(format!("Invalid request: media.{kind}.parameters must be an object"));
        }
        tracks.push(json!({"type": kind, "mid": next_mid(&tracks), "source": source}));
    }
    if tracks.is_empty() {
        return Err("Invalid request: media.audio and media.video are both false".into());
    }
    let attributes = match data.get("attributes") {
        None | Some(Value::Null) => Value::Null,
        Some(attributes @ Value::Object(_)) => attributes.clone(),
        Some(_) => return Err("Invalid request: attributes must be an object".into()),
    };
    let mut request = json!({"media": {"tracks": tracks}, "transportId": null, "legacy": true});
    if !attributes.is_null() {
        request["attributes"] = attributes;
    }
    Ok(request)
}

/// `subscribe {media: {audio: {from, format?} | false, video: {from, format?, parameters?,
/// simulcastRid?} | false}}` as a 1.2 request on a new transport. A `simulcastRid` names a
/// layer of the `from` stream: `layer_of(stream, rid)` gives that layer's track id, which
/// becomes `from` (without parameters: the layer is the choice). A rid the stream does not
/// have leaves the stream id, whose layer the portal picks (OWT ignores the rid altogether).
pub(super) fn upgrade_subscribe(
    data: &Value,
    layer_of: impl Fn(&str, &str) -> Option<String>,
) -> Result<Value, String> {
    let media = media_of(data)?;
    let mut tracks = Vec::new();
    for kind in ["audio", "video"] {
        let Some(options) = media_options(media, kind)? else { continue };
        let from = options.get("from").and_then(Value::as_str).filter(|f| !f.is_empty());
        let from = from.ok_or(format!("Invalid request: media.{kind}.from must be a stream id"))?;
        let mut track = json!({"type": kind, "mid": next_mid(&tracks), "from": from});
        if let Some(format) = options.get("format") {
            if !format.is_object() {
                return Err(format!("Invalid request: media.{kind}.format must be an object"));
            }
            track["format"] = format.clone();
        }
        if kind == "video" {
            if let Some(parameters) = options.get("parameters") {
                if !parameters.is_object() {
                    return Err("Invalid request: media.video.parameters must be an object".into());
                }
                track["parameters"] = parameters.clone();
            }
            match options.get("simulcastRid") {
                None | Some(Value::Null) => {}
                Some(Value::String(rid)) => {
                    if let Some(layer) = layer_of(from, rid) {
                        track["from"] = layer.into();
                        if let Some(track) = track.as_object_mut() {
                            track.remove("parameters");
                        }
                    }
                }
                Some(_) => return Err("Invalid request: media.video.simulcastRid must be a string".into()),
            }
        }
        tracks.push(track);
    }
    if tracks.is_empty() {
        return Err("Invalid request: media.audio and media.video are both false".into());
    }
    Ok(json!({"media": {"tracks": tracks}, "transportId": null, "legacy": true}))
}

/// The track id of simulcast layer `rid` of a StreamInfo (1.2 form), if it has that layer.
pub(super) fn simulcast_track(info: &Value, rid: &str) -> Option<String> {
    info["media"]["tracks"]
        .as_array()?
        .iter()
        .find(|t| t["type"] == "video" && t["rid"] == rid)
        .and_then(|t| t["id"].as_str())
        .map(str::to_owned)
}

/// Copies the members of `track` named in `keys` that it has into a new object.
fn members(track: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter().filter_map(|k| track.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
}

/// A 1.2 StreamInfo as `protocol` shows it. 1.1: the first audio track becomes
/// `media.audio {status, source, format, optional}`, the first video track
/// `media.video {status, source, original: [{format, parameters}], optional}` (one
/// `original` per simulcast layer, with its `simulcastRid`), and `tracks` goes. 1.0: as 1.1
/// with `original[0]` flattened into `video.format` / `video.parameters`.
pub(super) fn downgrade_stream(protocol: Protocol, info: &Value) -> Value {
    if protocol == Protocol::V1_2 {
        return info.clone();
    }
    let mut out = info.clone();
    let Some(tracks) = info["media"]["tracks"].as_array() else { return out };
    let mut media = Map::new();
    if let Some(audio) = tracks.iter().find(|t| t["type"] == "audio") {
        media.insert("audio".into(), Value::Object(members(audio, &["status", "source", "format", "optional"])));
    }
    if let Some(video) = tracks.iter().find(|t| t["type"] == "video") {
        let mut downgraded = members(video, &["status", "source"]);
        let original: Vec<Value> = if video.get("rid").is_some() {
            tracks
                .iter()
                .filter(|t| t["type"] == "video" && t["mid"] == video["mid"])
                .map(|layer| {
                    let mut original = members(layer, &["format", "parameters"]);
                    if let Some(rid) = layer.get("rid") {
                        original.insert("simulcastRid".into(), rid.clone());
                    }
                    Value::Object(original)
                })
                .collect()
        } else {
            vec![Value::Object(members(video, &["format", "parameters"]))]
        };
        if protocol == Protocol::V1_0 {
            for key in ["format", "parameters"] {
                if let Some(value) = original[0].get(key) {
                    downgraded.insert(key.into(), value.clone());
                }
            }
        } else {
            downgraded.insert("original".into(), Value::Array(original));
        }
        if let Some(optional) = video.get("optional") {
            downgraded.insert("optional".into(), optional.clone());
        }
        media.insert("video".into(), Value::Object(downgraded));
    }
    out["media"] = Value::Object(media);
    out
}

/// The login result as `protocol` shows it: its room's streams downgraded.
pub(super) fn downgrade_login_result(protocol: Protocol, result: &mut Value) {
    if let Some(streams) = result["room"].get_mut("streams").and_then(Value::as_array_mut) {
        for stream in streams {
            *stream = downgrade_stream(protocol, stream);
        }
    }
}

/// A notification as `protocol` receives it: StreamInfo in `stream` add and `.` updates
/// downgraded; a session's `progress` ready (`{id: transportId, sessionId, status: "ready"}`)
/// becomes `session-progress {id: sessionId, status: "ready"}` (4.x clients are told their
/// session is ready by the transport's own `progress` ready, the transport id being the
/// session id).
pub(super) fn downgrade_notification(protocol: Protocol, event: &'static str, data: &Value) -> (&'static str, Value) {
    if protocol == Protocol::V1_2 {
        return (event, data.clone());
    }
    match event {
        "stream" => {
            let mut data = data.clone();
            if data["status"] == "add" && data.get("data").is_some_and(Value::is_object) {
                data["data"] = downgrade_stream(protocol, &data["data"]);
            } else if data["status"] == "update"
                && data["data"]["field"] == "."
                && data["data"].get("value").is_some_and(Value::is_object)
            {
                data["data"]["value"] = downgrade_stream(protocol, &data["data"]["value"]);
            }
            (event, data)
        }
        "progress" if data["status"] == "ready" && data["sessionId"].is_string() => {
            ("session-progress", json!({"id": data["sessionId"], "status": "ready"}))
        }
        _ => (event, data.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(request: Value) -> Result<Protocol, String> {
        login_protocol(request.as_object().expect("object"))
    }

    fn ua(version: &str) -> Value {
        json!({"sdk": {"version": version, "type": "JavaScript"}})
    }

    #[test]
    fn login_accepts_1_0_to_1_2_and_refuses_the_rest() {
        assert_eq!(login(json!({"protocol": "1.0", "userAgent": ua("4.0")})), Ok(Protocol::V1_0));
        assert_eq!(login(json!({"protocol": "1.1", "userAgent": ua("4.3")})), Ok(Protocol::V1_1));
        assert_eq!(login(json!({"protocol": "1.2", "userAgent": ua("5.1")})), Ok(Protocol::V1_2));
        assert_eq!(login(json!({"protocol": "1.2"})), Ok(Protocol::V1_2), "the user agent is checked later");
        let legacy = Err("Unknown client protocol: legacy clients are not supported".to_string());
        assert_eq!(login(json!({"userAgent": ua("3.4")})), legacy);
        assert_eq!(login(json!({"protocol": null})), legacy);
        assert_eq!(
            login(json!({"protocol": "1.3"})),
            Err("Unknown client protocol: 1.3 (owt-rs speaks 1.0, 1.1 and 1.2)".into())
        );
        assert_eq!(
            login(json!({"protocol": 1.1})),
            Err("Unknown client protocol: 1.1 (owt-rs speaks 1.0, 1.1 and 1.2)".into())
        );
        assert_eq!(login(json!({"protocol": "1.1", "userAgent": ua("3.5")})), Err("Deprecated client version".into()));
    }

    fn no_layers(_: &str, _: &str) -> Option<String> {
        None
    }

    #[test]
    fn publish_becomes_a_track_list_on_a_new_transport() {
        let request = json!({"media": {"audio": {"source": "mic"},
            "video": {"source": "camera", "parameters": {"resolution": {"width": 640, "height": 480}, "framerate": 30}}},
            "attributes": {"name": "me"}});
        assert_eq!(
            upgrade_publish(&request).unwrap(),
            json!({"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"},
                                        {"type": "video", "mid": "1", "source": "camera"}]},
                   "attributes": {"name": "me"}, "transportId": null, "legacy": true})
        );
        let video_only = json!({"media": {"audio": false, "video": {"source": "screen-cast"}}});
        assert_eq!(
            upgrade_publish(&video_only).unwrap(),
            json!({"media": {"tracks": [{"type": "video", "mid": "0", "source": "screen-cast"}]},
                   "transportId": null, "legacy": true})
        );
        // A transport named by a 1.1 client is not honoured: each session has its own.
        let with_transport = json!({"media": {"audio": {"source": "mic"}, "video": false}, "transport": {"id": "t"}});
        assert!(upgrade_publish(&with_transport).unwrap().get("transport").is_none());
    }

    #[test]
    fn hostile_publish_shapes_are_refused() {
        let refused = [
            (json!(null), "media must be an object"),
            (json!("publish"), "media must be an object"),
            (json!({"media": [1]}), "media must be an object"),
            (json!({"media": {"audio": false, "video": false}}), "both false"),
            (json!({"media": {}}), "both false"),
            (json!({"media": {"audio": true, "video": false}}), "media.audio must be an object or false"),
            (json!({"media": {"audio": "mic", "video": false}}), "media.audio must be an object or false"),
            (json!({"media": {"audio": {"source": "camera"}, "video": false}}), "media.audio.source"),
            (json!({"media": {"audio": {}, "video": false}}), "media.audio.source"),
            (json!({"media": {"audio": false, "video": {"source": 7}}}), "media.video.source"),
            (json!({"media": {"audio": false, "video": {"source": "mic"}}}), "media.video.source"),
            (json!({"media": {"audio": false, "video": {"source": "camera", "parameters": 5}}}), "parameters"),
            (json!({"media": {"audio": {"source": "mic"}, "video": false}, "attributes": "x"}), "attributes"),
        ];
        for (request, part) in refused {
            let message = upgrade_publish(&request).expect_err(&request.to_string());
            assert!(message.starts_with("Invalid request: ") && message.contains(part), "{request}: {message}");
        }
    }

    #[test]
    fn subscribe_becomes_a_track_list_and_a_simulcast_rid_its_layer() {
        let request = json!({"media": {"audio": {"from": "s1", "format": {"codec": "opus"}},
            "video": {"from": "s1", "parameters": {"resolution": {"width": 320, "height": 240}}}}});
        assert_eq!(
            upgrade_subscribe(&request, no_layers).unwrap(),
            json!({"media": {"tracks": [
                {"type": "audio", "mid": "0", "from": "s1", "format": {"codec": "opus"}},
                {"type": "video", "mid": "1", "from": "s1", "parameters": {"resolution": {"width": 320, "height": 240}}}]},
                "transportId": null, "legacy": true})
        );
        let layers = |stream: &str, rid: &str| (stream == "s1" && rid == "h").then(|| "t1-1:h".to_string());
        let simulcast = json!({"media": {"audio": false,
            "video": {"from": "s1", "simulcastRid": "h", "parameters": {"framerate": 15}}}});
        assert_eq!(
            upgrade_subscribe(&simulcast, layers).unwrap()["media"]["tracks"],
            json!([{"type": "video", "mid": "0", "from": "t1-1:h"}])
        );
        let unknown_rid = json!({"media": {"audio": false, "video": {"from": "s1", "simulcastRid": "zz"}}});
        assert_eq!(
            upgrade_subscribe(&unknown_rid, layers).unwrap()["media"]["tracks"],
            json!([{"type": "video", "mid": "0", "from": "s1"}]),
            "a rid the stream lacks leaves the stream id"
        );
    }

    #[test]
    fn hostile_subscribe_shapes_are_refused() {
        let refused = [
            (json!({}), "media must be an object"),
            (json!({"media": {"audio": false, "video": false}}), "both false"),
            (json!({"media": {"audio": 1, "video": false}}), "media.audio must be an object or false"),
            (json!({"media": {"audio": {}, "video": false}}), "media.audio.from"),
            (json!({"media": {"audio": {"from": ""}, "video": false}}), "media.audio.from"),
            (json!({"media": {"audio": {"from": ["s"]}, "video": false}}), "media.audio.from"),
            (json!({"media": {"audio": {"from": "s", "format": "opus"}, "video": false}}), "media.audio.format"),
            (json!({"media": {"audio": false, "video": {"from": "s", "parameters": []}}}), "media.video.parameters"),
            (json!({"media": {"audio": false, "video": {"from": "s", "simulcastRid": 2}}}), "simulcastRid"),
        ];
        for (request, part) in refused {
            let message = upgrade_subscribe(&request, no_layers).expect_err(&request.to_string());
            assert!(message.starts_with("Invalid request: ") && message.contains(part), "{request}: {message}");
        }
    }

    fn forward_stream() -> Value {
        json!({"id": "s1", "type": "forward",
            "media": {"tracks": [
                {"id": "t-0", "type": "audio", "source": "mic", "format": {"codec": "opus", "sampleRate": 48000, "channelNum": 2},
                 "optional": {"format": []}, "status": "active", "mid": "0"},
                {"id": "t-1", "type": "video", "source": "camera", "format": {"codec": "vp8"},
                 "parameters": {"resolution": {"width": 640, "height": 480}},
                 "optional": {"format": [{"codec": "vp9"}]}, "status": "inactive", "mid": "1"}]},
            "info": {"owner": "p", "type": "webrtc", "inViews": [], "attributes": {"a": 1}}})
    }

    #[test]
    fn stream_info_is_downgraded_to_audio_and_video_members() {
        let v11 = downgrade_stream(Protocol::V1_1, &forward_stream());
        assert_eq!(
            v11,
            json!({"id": "s1", "type": "forward",
                "media": {
                    "audio": {"status": "active", "source": "mic",
                              "format": {"codec": "opus", "sampleRate": 48000, "channelNum": 2}, "optional": {"format": []}},
                    "video": {"status": "inactive", "source": "camera",
                              "original": [{"format": {"codec": "vp8"}, "parameters": {"resolution": {"width": 640, "height": 480}}}],
                              "optional": {"format": [{"codec": "vp9"}]}}},
                "info": {"owner": "p", "type": "webrtc", "inViews": [], "attributes": {"a": 1}}})
        );
        let v10 = downgrade_stream(Protocol::V1_0, &forward_stream());
        assert_eq!(
            v10["media"]["video"],
            json!({"status": "inactive", "source": "camera", "format": {"codec": "vp8"},
                   "parameters": {"resolution": {"width": 640, "height": 480}}, "optional": {"format": [{"codec": "vp9"}]}})
        );
        assert_eq!(v10["media"]["audio"], v11["media"]["audio"]);
        assert_eq!(downgrade_stream(Protocol::V1_2, &forward_stream()), forward_stream());
    }

    #[test]
    fn mixed_audio_only_and_simulcast_streams_are_downgraded() {
        // A mixed stream's tracks have no source; a video without parameters has none in original.
        let mixed = json!({"id": "r-common", "type": "mixed", "media": {"tracks": [
            {"type": "audio", "format": {"codec": "opus"}, "status": "active"},
            {"type": "video", "format": {"codec": "vp8"}, "status": "active"}]}, "info": {"label": "common"}});
        let v11 = downgrade_stream(Protocol::V1_1, &mixed);
        assert_eq!(
            v11["media"],
            json!({"audio": {"format": {"codec": "opus"}, "status": "active"},
            "video": {"status": "active", "original": [{"format": {"codec": "vp8"}}]}})
        );
        assert_eq!(
            downgrade_stream(Protocol::V1_0, &mixed)["media"]["video"],
            json!({"status": "active", "format": {"codec": "vp8"}})
        );

        let audio_only = json!({"id": "a", "media": {"tracks": [{"type": "audio", "format": {"codec": "pcmu"}}]}});
        assert_eq!(
            downgrade_stream(Protocol::V1_1, &audio_only)["media"],
            json!({"audio": {"format": {"codec": "pcmu"}}})
        );

        let layer = |rid: &str, width: u32| {
            json!({"id": format!("t-1:{rid}"), "type": "video", "source": "camera", "format": {"codec": "vp8"},
                   "parameters": {"resolution": {"width": width, "height": width / 2}}, "status": "active", "mid": "1", "rid": rid})
        };
        let simulcast = json!({"id": "s", "media": {"tracks": [layer("q", 320), layer("h", 640), layer("f", 1280)]}});
        assert_eq!(
            downgrade_stream(Protocol::V1_1, &simulcast)["media"]["video"]["original"],
            json!([
                {"format": {"codec": "vp8"}, "parameters": {"resolution": {"width": 320, "height": 160}}, "simulcastRid": "q"},
                {"format": {"codec": "vp8"}, "parameters": {"resolution": {"width": 640, "height": 320}}, "simulcastRid": "h"},
                {"format": {"codec": "vp8"}, "parameters": {"resolution": {"width": 1280, "height": 640}}, "simulcastRid": "f"}])
        );
        assert_eq!(
            downgrade_stream(Protocol::V1_0, &simulcast)["media"]["video"]["parameters"],
            json!({"resolution": {"width": 320, "height": 160}}),
            "1.0 sees the first layer"
        );
        assert_eq!(simulcast_track(&simulcast, "h").as_deref(), Some("t-1:h"));
        assert_eq!(simulcast_track(&simulcast, "x"), None);
        assert_eq!(simulcast_track(&forward_stream(), "h"), None);

        // Shapes without tracks are left alone.
        for odd in [json!({"id": "x"}), json!({"id": "x", "media": {"tracks": "no"}}), json!(null)] {
            assert_eq!(downgrade_stream(Protocol::V1_1, &odd), odd);
        }
    }

    #[test]
    fn login_results_and_notifications_are_downgraded_per_protocol() {
        let mut result = json!({"id": "p", "room": {"id": "r", "streams": [forward_stream()]}});
        downgrade_login_result(Protocol::V1_1, &mut result);
        assert!(result["room"]["streams"][0]["media"].get("tracks").is_none());
        assert!(result["room"]["streams"][0]["media"]["video"]["original"].is_array());

        let add = json!({"id": "s1", "status": "add", "data": forward_stream()});
        let (event, data) = downgrade_notification(Protocol::V1_0, "stream", &add);
        assert_eq!((event, &data["data"]), ("stream", &downgrade_stream(Protocol::V1_0, &forward_stream())));
        let whole = json!({"id": "s1", "status": "update", "data": {"field": ".", "value": forward_stream()}});
        let (_, data) = downgrade_notification(Protocol::V1_1, "stream", &whole);
        assert_eq!(data["data"]["value"], downgrade_stream(Protocol::V1_1, &forward_stream()));
        for untouched in [
            json!({"id": "s1", "status": "update", "data": {"field": "video.status", "value": "inactive"}}),
            json!({"id": "s1", "status": "remove"}),
            json!({"id": "s1", "status": "add", "data": "junk"}),
            json!({"id": "s1", "status": "update", "data": {"field": ".", "value": 3}}),
        ] {
            assert_eq!(downgrade_notification(Protocol::V1_1, "stream", &untouched), ("stream", untouched.clone()));
        }

        let session_ready = json!({"id": "t", "sessionId": "s", "status": "ready"});
        assert_eq!(
            downgrade_notification(Protocol::V1_1, "progress", &session_ready),
            ("session-progress", json!({"id": "s", "status": "ready"}))
        );
        assert_eq!(downgrade_notification(Protocol::V1_2, "progress", &session_ready), ("progress", session_ready));
        for kept in [
            json!({"id": "t", "status": "ready"}),
            json!({"id": "t", "status": "soac", "data": {"type": "answer", "sdp": "v=0"}}),
            json!({"id": "t", "sessionId": "s", "status": "error", "data": "gone"}),
        ] {
            assert_eq!(downgrade_notification(Protocol::V1_0, "progress", &kept), ("progress", kept.clone()));
        }
        let text = json!({"from": "a", "to": "all", "message": "hi"});
        assert_eq!(downgrade_notification(Protocol::V1_1, "text", &text), ("text", text.clone()));
        assert_eq!(
            downgrade_notification(Protocol::V1_2, "stream", &add),
            ("stream", add.clone()),
            "1.2 clients get StreamInfo as it is"
        );
    }
}

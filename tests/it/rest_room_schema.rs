//! The room schema rules of lib/owt-types (spec/owt-compat.md §3, user guide §3.5) through the
//! REST API of a real owt-portal: every invalid room setting is refused with 400/1201 and a
//! message naming the field, by `POST /v1/rooms` (nothing created) and by `PUT
//! /v1/rooms/{id}` (stored room unchanged); the limits themselves are accepted and stored.

use crate::support::{Auth, TestServer};
use serde_json::{json, Value};

fn view(view: Value) -> Value {
    json!({"views": [view]})
}

fn view_video(video: Value) -> Value {
    view(json!({"video": video}))
}

fn parameters(parameters: Value) -> Value {
    view_video(json!({"parameters": parameters}))
}

fn layout(layout: Value) -> Value {
    view_video(json!({"layout": layout}))
}

fn custom(templates: Value) -> Value {
    layout(json!({"templates": {"base": "void", "custom": templates}}))
}

fn region(id: &str, left: &str, top: &str, width: &str, height: &str) -> Value {
    json!({"id": id, "shape": "rectangle", "area": {"left": left, "top": top, "width": width, "height": height}})
}

fn full_region() -> Value {
    region("1", "0", "0", "1", "1")
}

fn media_out_parameters(parameters: Value) -> Value {
    json!({"mediaOut": {"video": {"parameters": parameters}}})
}

/// Room fields (top level of a stored room) that the schema refuses, with what the error
/// message must contain.
fn invalid_settings() -> Vec<(Value, String)> {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "n".repeat(257)}), "name: must be at most 256 characters"),
        (json!({"enableBandwidthAdaptation": 1}), "enableBandwidthAdaptation: invalid type"),
        (json!({"enableBandwidthAdaptation": "true"}), "enableBandwidthAdaptation: invalid type"),
        (json!({"roles": [{"role": ""}]}), "roles[0].role: must be a non-empty string"),
        (json!({"roles": [{"role": "a"}, {"role": "   "}]}), "roles[1].role: must be a non-empty string"),
        (json!({"roles": [{"role": 5}]}), "roles[0].role: invalid type"),
        (json!({"roles": [{"role": "a", "publish": true}]}), "roles[0].publish: invalid type"),
        (json!({"roles": [{"role": "a", "publish": {"audio": "yes"}}]}), "roles[0].publish.audio: invalid type"),
        (json!({"roles": [{"role": "a", "subscribe": {"video": 1}}]}), "roles[0].subscribe.video: invalid type"),
        (json!({"roles": [{"role": "a", "subscribe": "all"}]}), "roles[0].subscribe: invalid type"),
        (
            json!({"roles": [{"role": "a", "publish": {"screen": true}}]}),
            "unknown field \"screen\" in roles[0].publish",
        ),
        (view(json!({"audio": {"format": {"codec": "mp3"}}})), "views[0].audio.format.codec: unsupported audio codec"),
        (view(json!({"audio": {"vad": "on"}})), "views[0].audio.vad: invalid type"),
        (view(json!({"audio": {"vad": 1}})), "views[0].audio.vad: invalid type"),
        (view_video(json!({"format": {"codec": "mpeg2"}})), "views[0].video.format.codec: unsupported video codec"),
        (
            view_video(json!({"format": {"codec": "h264", "profile": "X"}})),
            "views[0].video.format.profile: unsupported h264 profile",
        ),
        (view_video(json!({"format": {"codec": "vp9", "profile": ""}})), "views[0].video.format.profile"),
        (view_video(json!({"maxInput": 0})), "views[0].video.maxInput: must be an integer between 1 and 256"),
        (view_video(json!({"maxInput": 2.5})), "views[0].video.maxInput"),
        (parameters(json!({"keyFrameInterval": 0})), "views[0].video.parameters.keyFrameInterval"),
        (parameters(json!({"keyFrameInterval": 3601})), "views[0].video.parameters.keyFrameInterval"),
        (parameters(json!({"resolution": {"height": 0}})), "views[0].video.parameters.resolution.height"),
        (parameters(json!({"resolution": {"height": 8193}})), "views[0].video.parameters.resolution.height"),
        (parameters(json!({"resolution": "vga"})), "views[0].video.parameters.resolution: invalid type"),
        (parameters(json!({"bitrate": -5})), "views[0].video.parameters.bitrate"),
        (parameters(json!({"bitrate": 0})), "views[0].video.parameters.bitrate"),
        (parameters(json!({"bitrate": "y0.5"})), "views[0].video.parameters.bitrate"),
        (parameters(json!({"bitrate": "x0"})), "views[0].video.parameters.bitrate"),
        (parameters(json!({"bitrate": "x-1"})), "views[0].video.parameters.bitrate"),
        (parameters(json!({"bitrate": true})), "views[0].video.parameters.bitrate: invalid type"),
        (view_video(json!({"keepActiveInputPrimary": "true"})), "views[0].video.keepActiveInputPrimary: invalid type"),
        (view_video(json!({"keepActiveInputPrimary": 1})), "views[0].video.keepActiveInputPrimary: invalid type"),
        (layout(json!({"setRegionEffect": 1})), "views[0].video.layout.setRegionEffect: invalid type"),
        (layout(json!({"setRegionEffect": {"blur": true}})), "views[0].video.layout.setRegionEffect: invalid type"),
        (layout(json!({"templates": {"custom": {}}})), "views[0].video.layout.templates.custom: invalid type"),
        (custom(json!([{"region": []}])), "region: must contain at least one region"),
        (
            custom(json!([{"region": [{"area": {"left": "0", "top": "0", "width": "1", "height": "1"}}]}])),
            "missing field \"id\" in views[0].video.layout.templates.custom[0].region[0]",
        ),
        (custom(json!([{"region": [region("", "0", "0", "1", "1")]}])), "region[0].id: must be a non-empty string"),
        (
            custom(json!([{"region": [{"id": "1", "shape": "circle",
                                       "area": {"left": "0", "top": "0", "width": "1", "height": "1"}}]}])),
            "region[0].shape: unknown variant `circle`",
        ),
        (custom(json!([{"region": [region("1", "abc", "0", "1", "1")]}])), "region[0].area.left: must be a fraction"),
        (custom(json!([{"region": [region("1", "0", "0", "3/2", "1")]}])), "region[0].area.width"),
        (custom(json!([{"region": [region("1", "0", "1/0", "1", "1")]}])), "region[0].area.top"),
        (
            custom(json!([{"region": [{"id": "1", "area": {"left": "0", "top": "0", "width": "1"}}]}])),
            "missing field \"height\" in views[0].video.layout.templates.custom[0].region[0].area",
        ),
        (
            custom(json!([{"region": [region("1", "2/3", "0", "1/2", "1")]}])),
            "region[0].area: left + width must not exceed 1",
        ),
        (
            custom(json!([{"region": [region("1", "0", "0.5", "1", "0.6")]}])),
            "region[0].area: top + height must not exceed 1",
        ),
        (
            custom(json!([{"primary": "9", "region": [full_region()]}])),
            "primary: \"9\" is not the id of a region of this template",
        ),
        (json!({"mediaIn": {"video": [{"codec": "h264"}, {"codec": "mpeg2"}]}}), "mediaIn.video[1].codec"),
        (json!({"mediaIn": {"video": [{"codec": "h264", "profile": "X"}]}}), "mediaIn.video[0].profile"),
        (json!({"mediaIn": {"video": [{"profile": "B"}]}}), "missing field \"codec\" in mediaIn.video[0]"),
        (json!({"mediaIn": {"audio": [{"codec": "opus", "sampleRate": 0}]}}), "mediaIn.audio[0].sampleRate"),
        (json!({"mediaIn": {"audio": [{"codec": "opus", "sampleRate": "48000"}]}}), "mediaIn.audio[0].sampleRate"),
        (json!({"mediaIn": {"audio": [{"codec": "opus", "channelNum": 9}]}}), "mediaIn.audio[0].channelNum"),
        (json!({"mediaIn": {"audio": [{"codec": "opus", "channelNum": 0}]}}), "mediaIn.audio[0].channelNum"),
        (media_out_parameters(json!({"resolution": ["vga", "huge"]})), "mediaOut.video.parameters.resolution[1]"),
        (media_out_parameters(json!({"resolution": ["x1/0"]})), "mediaOut.video.parameters.resolution[0]"),
        (media_out_parameters(json!({"resolution": "vga"})), "mediaOut.video.parameters.resolution: invalid type"),
        (media_out_parameters(json!({"framerate": [30, 0]})), "mediaOut.video.parameters.framerate[1]"),
        (media_out_parameters(json!({"framerate": 30})), "mediaOut.video.parameters.framerate"),
        (media_out_parameters(json!({"keyFrameInterval": [5000]})), "mediaOut.video.parameters.keyFrameInterval[0]"),
        (media_out_parameters(json!({"bitrate": ["0.8"]})), "mediaOut.video.parameters.bitrate[0]"),
        (media_out_parameters(json!({"bitrate": ["x0"]})), "mediaOut.video.parameters.bitrate[0]"),
        (media_out_parameters(json!({"bitrate": [0.8]})), "mediaOut.video.parameters.bitrate[0]: invalid type"),
        (json!({"mediaOut": {"video": {"format": [{"codec": "theora"}]}}}), "mediaOut.video.format[0].codec"),
        (json!({"mediaOut": {"audio": [{"codec": "speex"}]}}), "mediaOut.audio[0].codec"),
        (json!({"transcoding": {"audio": "yes"}}), "transcoding.audio: invalid type"),
        (json!({"transcoding": {"video": false}}), "transcoding.video: invalid type"),
        (json!({"transcoding": {"video": {"parameters": {"bitrate": "yes"}}}}), "transcoding.video.parameters.bitrate"),
        (json!({"transcoding": true}), "transcoding: invalid type"),
        (json!({"notifying": {"streamChange": 0}}), "notifying.streamChange: invalid type"),
        (json!({"notifying": "all"}), "notifying: invalid type"),
        (json!({"sip": {"sipServer": 5}}), "sip.sipServer: invalid type"),
        (json!({"sip": "a"}), "sip: invalid type"),
        (json!({"sip": {"port": 5060}}), "unknown field \"port\" in sip"),
        (view_video(json!({"foo": 1})), "unknown field \"foo\" in views[0].video"),
        (parameters(json!({"foo": 1})), "unknown field \"foo\" in views[0].video.parameters"),
        (layout(json!({"foo": 1})), "unknown field \"foo\" in views[0].video.layout"),
        (json!({"mediaIn": {"audio": [{"codec": "opus", "rate": 1}]}}), "unknown field \"rate\" in mediaIn.audio[0]"),
        (json!({"notifying": {"x": true}}), "unknown field \"x\" in notifying"),
        // Arrays where an object is expected (serde would fill the fields in order).
        (json!({"views": [["x"]]}), "views[0]: expected an object, got an array"),
        (json!({"roles": [["a"]]}), "roles[0]: expected an object, got an array"),
        (json!({"roles": [{"role": "a", "publish": [true, true]}]}), "roles[0].publish: expected an object"),
        (parameters(json!({"resolution": [640, 480]})), "views[0].video.parameters.resolution: expected an object"),
        (view_video(json!({"bgColor": [1, 2, 3]})), "views[0].video.bgColor: expected an object"),
        (view_video(json!({"layout": ["crop"]})), "views[0].video.layout: expected an object"),
        (json!({"notifying": [false, false]}), "notifying: expected an object, got an array"),
        (json!({"mediaOut": [[], {}]}), "mediaOut: expected an object"),
        (json!({"mediaIn": {"audio": [["opus"]]}}), "mediaIn.audio[0]: expected an object"),
        (json!({"sip": ["sip.example.org", "u", "p"]}), "sip: expected an object"),
        // Lengths and sizes.
        (view(json!({"label": "l".repeat(257)})), "views[0].label: must be at most 256 characters"),
        (json!({"roles": [{"role": "r".repeat(257)}]}), "roles[0].role: must be at most 256 characters"),
        (media_out_parameters(json!({"resolution": ["r99999x99999"]})), "mediaOut.video.parameters.resolution[0]"),
        (media_out_parameters(json!({"resolution": ["vga", "r8193x480"]})), "mediaOut.video.parameters.resolution[1]"),
    ];
    cases.into_iter().map(|(fields, needle)| (fields, needle.to_string())).collect()
}

/// `POST /v1/rooms` body: the name top-level, the other fields as `options` (where a name
/// would be ignored).
fn create_body(fields: &Value) -> Value {
    let mut options = fields.as_object().expect("fields are an object").clone();
    let name = options.remove("name").unwrap_or(json!("room"));
    json!({"name": name, "options": options})
}

#[test]
fn invalid_room_settings_are_refused_by_create_and_update() {
    let server = TestServer::start();
    let service = server.create_service("schema");
    let auth = Auth::service(&service);
    let room = server.create_room(auth.clone(), json!({"name": "stable", "options": {"inputLimit": 3}}));
    let path = format!("/v1/rooms/{}", room["_id"].as_str().unwrap());
    for (fields, needle) in invalid_settings() {
        let reply = server.call("POST", "/v1/rooms", Some(create_body(&fields)), auth.clone());
        assert_eq!(reply.status, 400, "POST {fields} accepted: {}", reply.body);
        let message = reply.expect_error(400, 1201);
        assert!(message.contains(&needle), "POST {fields}: {message:?} lacks {needle:?}");

        let reply = server.call("PUT", &path, Some(fields.clone()), auth.clone());
        assert_eq!(reply.status, 400, "PUT {fields} accepted: {}", reply.body);
        let message = reply.expect_error(400, 1201);
        assert!(message.contains(&needle), "PUT {fields}: {message:?} lacks {needle:?}");
        assert_eq!(server.call("GET", &path, None, auth.clone()).ok_json(), room, "PUT {fields} changed the room");
    }
    let rooms = server.call("GET", "/v1/rooms", None, auth.clone()).ok_json();
    assert_eq!(rooms, json!([room]), "no refused POST created a room");
    let owner = server.get(&format!("/services/{}", service["_id"].as_str().unwrap()));
    assert_eq!(owner["rooms"], json!([room["_id"]]));
}

#[test]
fn room_settings_at_their_limits_are_accepted_and_stored() {
    let server = TestServer::start();
    let room = server.create_room(Auth::Super, json!({"name": "limits"}));
    let path = format!("/v1/rooms/{}", room["_id"].as_str().unwrap());
    let long_name = "é".repeat(256);
    let accepted: Vec<(Value, &str, Value)> = vec![
        (json!({"name": long_name}), "/name", json!(long_name)),
        (json!({"enableBandwidthAdaptation": true}), "/enableBandwidthAdaptation", json!(true)),
        (
            json!({"roles": [{"role": "guest", "subscribe": {"audio": true}}]}),
            "/roles/0",
            json!({"role": "guest", "publish": {"audio": false, "video": false}, "subscribe": {"audio": true, "video": false}}),
        ),
        (view_video(json!({"maxInput": 256})), "/views/0/video/maxInput", json!(256)),
        (view_video(json!({"maxInput": 1})), "/views/0/video/maxInput", json!(1)),
        (parameters(json!({"keyFrameInterval": 3600})), "/views/0/video/parameters/keyFrameInterval", json!(3600)),
        (
            parameters(json!({"resolution": {"height": 8192}})),
            "/views/0/video/parameters/resolution/height",
            json!(8192),
        ),
        (parameters(json!({"bitrate": "x0.5"})), "/views/0/video/parameters/bitrate", json!("x0.5")),
        (
            media_out_parameters(json!({"resolution": ["r8192x8192"]})),
            "/mediaOut/video/parameters/resolution",
            json!(["r8192x8192"]),
        ),
        (view(json!({"label": "é".repeat(256)})), "/views/0/label", json!("é".repeat(256))),
        (json!({"roles": [{"role": "r".repeat(256)}]}), "/roles/0/role", json!("r".repeat(256))),
        (parameters(json!({"bitrate": 1500})), "/views/0/video/parameters/bitrate", json!(1500)),
        (view_video(json!({"keepActiveInputPrimary": true})), "/views/0/video/keepActiveInputPrimary", json!(true)),
        (layout(json!({"setRegionEffect": "blur"})), "/views/0/video/layout/setRegionEffect", json!("blur")),
        (
            custom(
                json!([{"primary": "2", "region": [region("1", "0", "0", "1/2", "1"), region("2", "0.5", "0", "1/2", "1")]}]),
            ),
            "/views/0/video/layout/templates/custom/0/primary",
            json!("2"),
        ),
        (view(json!({"audio": {"vad": false}})), "/views/0/audio/vad", json!(false)),
        (
            json!({"mediaIn": {"audio": [{"codec": "opus", "sampleRate": 48000, "channelNum": 8}], "video": [{"codec": "av1"}]}}),
            "/mediaIn/audio/0/channelNum",
            json!(8),
        ),
        (
            media_out_parameters(json!({"framerate": [120], "keyFrameInterval": [3600]})),
            "/mediaOut/video/parameters/framerate",
            json!([120]),
        ),
        (
            json!({"notifying": {"streamChange": false}}),
            "/notifying",
            json!({"participantActivities": true, "streamChange": false}),
        ),
        (
            json!({"sip": {"sipServer": "sip.example.org"}}),
            "/sip",
            json!({"sipServer": "sip.example.org", "username": "", "password": ""}),
        ),
    ];
    for (fields, pointer, expected) in accepted {
        let updated = server.call("PUT", &path, Some(fields.clone()), Auth::Super).ok_json();
        assert_eq!(updated.pointer(pointer), Some(&expected), "PUT {fields}: {updated}");
        assert_eq!(server.get(&path), updated, "PUT {fields} is stored");
        let created = server.create_room(Auth::Super, create_body(&fields));
        assert_eq!(created.pointer(pointer), Some(&expected), "POST {fields}: {created}");
    }
}

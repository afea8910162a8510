//! Portal <-> owt-webrtc. The model is OWT's (spec/owt-compat.md §1.9, §4.6): a client has
//! one RTCPeerConnection, the *transport*, carrying many *sessions* (publications and
//! subscriptions), each owning some m-lines (mids). The client always offers; the node
//! answers. A node owns every transport scheduled on it.
//!
//! Flow of a publish: portal `publish` (node records the session's mids), portal
//! `signaling` with the client's offer, node event `transport-progress` {status: answer},
//! portal `signaling` with client candidates, node `transport-progress` {status: ready}
//! once ICE+DTLS are up, node `session-ready` with the negotiated track formats once the
//! session's tracks arrive. A subscribe is the same with `subscribe`; its tracks forward
//! the publisher's tracks (by track id `<transportId>-<mid>`) on the same node.
//!
//! Across nodes (DESIGN.md §5, the media link): the portal asks the publisher's node for
//! `link-out` of a track (the node starts publishing its frames on its media PUB socket,
//! topic = track id) and gives the subscriber's node a `SubscribeTrack::link` naming that
//! endpoint. Keyframe requests of linked subscribers come back as `keyframe-request`
//! events that the portal relays to the source node as `request-keyframe`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Requests portal -> node.
pub mod methods {
    pub const PUBLISH: &str = "publish";
    pub const SUBSCRIBE: &str = "subscribe";
    /// Client SDP offer or ICE candidate for a transport.
    pub const SIGNALING: &str = "signaling";
    pub const UNPUBLISH: &str = "unpublish";
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// Pause/resume one kind of media of a session (stream-control / subscription-control).
    pub const SET_ACTIVE: &str = "set-active";
    /// The client is gone: close its peer connection and every session on it.
    pub const DESTROY_TRANSPORT: &str = "destroy-transport";
    /// Statistics of a session: `SessionStats`.
    pub const STATS: &str = "stats";
    /// Another source for a subscription's track (simulcast layer choice): `SwitchSource`.
    pub const SWITCH_SOURCE: &str = "switch-source";
    /// Publish a track's frames on the media link: `TrackRequest` -> `LinkSource`.
    pub const LINK_OUT: &str = "link-out";
    /// A keyframe of a track for a consumer on another node: `TrackRequest`.
    pub const REQUEST_KEYFRAME: &str = "request-keyframe";
    /// Event: a linked track's producer was replaced (same topic, new node and endpoint):
    /// `LinkSource`. Nodes without that track ignore it.
    pub const RELINK: &str = "relink";
}

/// Events node -> portal.
pub mod events {
    /// `TransportProgress`.
    pub const TRANSPORT_PROGRESS: &str = "transport-progress";
    /// `SessionReady`.
    pub const SESSION_READY: &str = "session-ready";
    /// `SessionFailed`.
    pub const SESSION_FAILED: &str = "session-failed";
    /// `TrackUpdate`.
    pub const TRACK_UPDATE: &str = "track-update";
    /// A consumer of a linked track wants a keyframe: `KeyframeRequest`.
    pub const KEYFRAME_REQUEST: &str = "keyframe-request";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

/// A codec as OWT clients name it: `{codec, sampleRate?, channelNum?}` for audio,
/// `{codec, profile?}` for video.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Format {
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_num: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishTrack {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub mid: String,
    /// mic, camera, screen-cast, ...
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    pub session_id: String,
    pub transport_id: String,
    /// Participant id.
    pub owner: String,
    pub tracks: Vec<PublishTrack>,
    /// Formats the room accepts (mediaIn), in preference order.
    pub audio_formats: Vec<Format>,
    pub video_formats: Vec<Format>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeTrack {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub mid: String,
    /// The published track forwarded into this m-line: `<transportId>-<mid>` of the
    /// publication, on this node unless `link` says where it comes from.
    pub source_track_id: String,
    /// The track is produced on another node: its frames come over the media link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkSource>,
}

/// Where a track's frames are published on the media link, and what they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkSource {
    /// The producing worker (where keyframe requests go).
    pub node: String,
    /// Its media PUB endpoint (`tcp://host:port` or `ipc://path`).
    pub endpoint: String,
    /// The topic (the track id).
    pub topic: String,
    pub kind: Kind,
    /// The codec as in SDP: MIME type (`video/VP8`), clock rate, channels, fmtp line.
    pub mime_type: String,
    pub clock_rate: u32,
    #[serde(default)]
    pub channels: u16,
    #[serde(default)]
    pub sdp_fmtp_line: String,
}

/// `switch-source`: the subscription's track of `kind` forwards `source_track_id` from now on
/// (switched at the new source's next keyframe, which is asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchSource {
    pub session_id: String,
    pub kind: Kind,
    pub source_track_id: String,
}

/// `link-out`, `request-keyframe`: one track of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackRequest {
    pub track_id: String,
}

/// `keyframe-request` event: a consumer of `track_id` (produced by `node`) lost frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyframeRequest {
    pub node: String,
    pub track_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    pub session_id: String,
    pub transport_id: String,
    pub owner: String,
    pub tracks: Vec<SubscribeTrack>,
}

/// `signaling`: `signaling` is what the client sent in `soac`:
/// `{type: "offer", sdp}` or `{type: "candidate", candidate: {candidate, sdpMid, sdpMLineIndex}}`
/// (the candidate string may carry the SDK's `a=` prefix) or `{type: "removed-candidates", candidates}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalingRequest {
    pub transport_id: String,
    pub signaling: Value,
}

/// `unpublish`, `unsubscribe`, `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRequest {
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetActiveRequest {
    pub session_id: String,
    pub kind: Kind,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportRequest {
    pub transport_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportStatus {
    /// `sdp` holds the node's answer.
    Answer,
    /// `candidate` holds a node candidate (clients ignore these; answers carry candidates).
    Candidate,
    /// ICE and DTLS are up.
    Ready,
    /// The transport failed or closed; every session on it is gone. `reason` says why.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportProgress {
    pub transport_id: String,
    pub status: TransportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyTrack {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub mid: String,
    /// `<transportId>-<mid>`, or `<transportId>-<mid>:<rid>` for a simulcast layer.
    pub track_id: String,
    /// The negotiated format.
    pub format: Format,
    /// The simulcast layer (RID) this track is, when the client publishes simulcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReady {
    pub transport_id: String,
    pub session_id: String,
    pub tracks: Vec<ReadyTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionFailed {
    pub transport_id: String,
    pub session_id: String,
    pub reason: String,
}

/// `track-update`: what the node measured of a published video track (or simulcast layer):
/// its picture size from keyframes, frame rate and bitrate. Sent when they change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackUpdate {
    pub track_id: String,
    pub width: u32,
    pub height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framerate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    pub session_id: String,
    /// Per track: bytes and packets so far, bitrate over the last second, loss, RTT.
    pub tracks: Vec<TrackStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrackStats {
    pub track_id: String,
    pub kind: Option<Kind>,
    pub packets: u64,
    pub bytes: u64,
    pub bitrate_kbps: f64,
    pub packets_lost: u64,
    pub nacks: u64,
    pub plis: u64,
    pub rtt_ms: Option<f64>,
    /// Packets not forwarded because the subscriber's connection was busy (back-pressure).
    #[serde(default)]
    pub dropped: u64,
    /// Packets sent again on the subscriber's NACKs (from the source track's packet history).
    #[serde(default)]
    pub retransmitted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_names_are_camel_case_with_type() {
        let request = PublishRequest {
            session_id: "s".into(),
            transport_id: "t".into(),
            owner: "p".into(),
            tracks: vec![PublishTrack { kind: Kind::Video, mid: "1".into(), source: "camera".into() }],
            audio_formats: vec![],
            video_formats: vec![Format { codec: "vp8".into(), ..Default::default() }],
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(value["sessionId"], "s");
        assert_eq!(value["tracks"][0], json!({"type": "video", "mid": "1", "source": "camera"}));
        assert_eq!(value["videoFormats"][0], json!({"codec": "vp8"}));
        let progress = TransportProgress {
            transport_id: "t".into(),
            status: TransportStatus::Answer,
            sdp: Some("v=0".into()),
            candidate: None,
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(progress).unwrap(),
            json!({"transportId": "t", "status": "answer", "sdp": "v=0"})
        );
    }
}

//! Portal <-> owt-mixer. A mixer renders *views* (the mixed streams of a room, user guide
//! Table 3-1): it consumes the inputs' frames over the media link, composes video on the
//! layout the portal decides, mixes audio, and publishes the view's encoded frames on its own
//! media link PUB socket, where webrtc nodes pick them up for subscribers like any linked
//! track (`webrtc::LinkSource`).
//!
//! Flow: portal `init-view` (reply: where the view's audio and video are published), portal
//! `set-inputs` whenever the inputs or the layout change, `close-view` when nobody watches.
//! Webrtc nodes' keyframe requests for a view arrive as the event `request-keyframe`
//! (`webrtc::TrackRequest` with the view's video topic). The mixer reports the loudest input
//! with the event `active-input` when the view has VAD on.

use crate::webrtc::LinkSource;
use serde::{Deserialize, Serialize};

/// Requests portal -> mixer.
pub mod methods {
    /// `InitView` -> `ViewOutputs`.
    pub const INIT_VIEW: &str = "init-view";
    /// `SetInputs`.
    pub const SET_INPUTS: &str = "set-inputs";
    /// `ViewRequest`.
    pub const CLOSE_VIEW: &str = "close-view";
}

/// Events mixer -> portal.
pub mod events {
    /// `ActiveInput`.
    pub const ACTIVE_INPUT: &str = "active-input";
}

/// The video output of a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoOutput {
    /// vp8, vp9 or h264.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub bitrate_kbps: u32,
    /// Seconds between keyframes.
    pub keyframe_interval: u32,
    /// Background colour, RGB.
    pub bg_color: [u8; 3],
    /// letterbox or crop.
    pub crop: bool,
}

/// The audio output of a view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioOutput {
    /// opus, pcmu, pcma or g722.
    pub codec: String,
    /// Report the loudest input (`active-input`).
    pub vad: bool,
}

/// `init-view`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitView {
    /// The mixed stream's id (`<roomId>-<label>`).
    pub view_id: String,
    pub room_id: String,
    pub video: Option<VideoOutput>,
    pub audio: Option<AudioOutput>,
}

/// What `init-view` answers: where the view's tracks are published (`node` left empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewOutputs {
    pub video: Option<LinkSource>,
    pub audio: Option<LinkSource>,
}

/// One input of a view: a stream's tracks on the media link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MixInput {
    pub stream_id: String,
    pub video: Option<LinkSource>,
    pub audio: Option<LinkSource>,
}

/// One region of the current layout with the stream shown in it (None: bgColor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionInput {
    pub region_id: String,
    pub stream_id: Option<String>,
    /// Rectangle as fractions of the canvas, `"n/d"` texts as in OWT layouts.
    pub left: String,
    pub top: String,
    pub width: String,
    pub height: String,
}

/// `set-inputs`: the whole input list and layout of a view (idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetInputs {
    pub view_id: String,
    pub inputs: Vec<MixInput>,
    /// Regions in drawing order (later ones on top).
    pub layout: Vec<RegionInput>,
}

/// `close-view`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewRequest {
    pub view_id: String,
}

/// `active-input` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveInput {
    pub view_id: String,
    pub stream_id: String,
}

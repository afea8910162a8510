//! The OWT room configuration (spec/owt-compat.md §3, user guide §3.5): the typed room schema,
//! the defaults OWT's data access layer applies (`defaults.js` for whole sections, the mongoose
//! schema defaults for missing members), validation with messages that name the offending field,
//! the stored/REST JSON form (`_id`, `id`, `__v` plus every field in camelCase), the default
//! bitrate table (user guide Table 3-3) and the resolution names the conference understands.
//!
//! Entry points: [`RoomConfig::create`] (`POST /v1/rooms`), [`RoomConfig::update`]
//! (`PUT /v1/rooms/{id}`), [`RoomConfig::to_json`] / [`RoomConfig::from_stored`] (database and
//! REST form). The derived `Deserialize` fills defaults and checks types and ranges but not the
//! cross-field rules; use [`RoomConfig::validate`] (or the entry points above) for those.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// A rejected room configuration; the message names the field path and is returned to REST
/// clients as the body of a 400 error.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct RoomError(pub String);

impl RoomError {
    fn at(path: &str, message: impl fmt::Display) -> Self {
        RoomError(format!("{path}: {message}"))
    }
}

/// Audio codecs of Table 3-2 (`isac_16000`, `g722_16000_1` … are codec plus sample rate/channels).
pub const AUDIO_CODECS: &[&str] = &["opus", "isac", "g722", "pcma", "pcmu", "aac", "ac3", "nellymoser", "ilbc"];
/// Video codecs a room may list (Table 3-2 plus AV1).
pub const VIDEO_CODECS: &[&str] = &["h264", "h265", "vp8", "vp9", "av1"];
/// H.264 profile names used in OWT formats: constrained baseline, baseline, main, high, extended.
pub const H264_PROFILES: &[&str] = &["CB", "B", "M", "H", "E"];
/// Longest accepted room name, view label and role name, in characters.
pub const NAME_MAX_CHARS: usize = 256;
/// Largest width or height of a view (`parameters.resolution`) and of an `r<W>x<H>`
/// resolution offered in `mediaOut`.
pub const DIMENSION_MAX: u32 = 8192;
/// Why a JSON array is refused where the schema expects an object.
const NOT_AN_OBJECT: &str = "expected an object, got an array";
/// Resolution names understood by the conference (`formatUtil.calcResolution`).
pub const NAMED_RESOLUTIONS: &[(&str, u32, u32)] = &[
    ("xga", 1024, 768),
    ("svga", 800, 600),
    ("vga", 640, 480),
    ("hvga", 480, 320),
    ("cif", 352, 288),
    ("qvga", 320, 240),
    ("qcif", 176, 144),
    ("hd720p", 1280, 720),
    ("hd1080p", 1920, 1080),
];

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// Every field of an OWT room except its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RoomConfig {
    pub name: String,
    /// Maximum number of publications, -1 for unlimited.
    #[serde(deserialize_with = "de_limit")]
    pub input_limit: i64,
    /// Maximum number of participants, -1 for unlimited.
    #[serde(deserialize_with = "de_limit")]
    pub participant_limit: i64,
    pub select_active_audio: bool,
    pub enable_bandwidth_adaptation: bool,
    pub roles: Vec<Role>,
    /// Mixed streams; empty disables mixing.
    pub views: Vec<View>,
    pub media_in: MediaIn,
    pub media_out: MediaOut,
    pub transcoding: Transcoding,
    pub notifying: Notifying,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip: Option<Sip>,
}

/// A role and what its participants may publish and subscribe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub role: String,
    #[serde(default)]
    pub publish: MediaPermission,
    #[serde(default)]
    pub subscribe: MediaPermission,
}

/// Audio/video switches of a role's publish or subscribe permission (missing means `false`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaPermission {
    pub audio: bool,
    pub video: bool,
}

/// An audio format: codec plus optional sample rate and channel count (absent ≠ any value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AudioFormat {
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_sample_rate")]
    pub sample_rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_channel_num")]
    pub channel_num: Option<u32>,
}

/// A video format: codec plus optional profile (H.264: CB, B, M, H, E).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoFormat {
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// One mixed stream of the room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct View {
    pub label: String,
    pub audio: ViewAudio,
    /// `None` is an audio-only view, written as `"video": false`.
    #[serde(with = "video_or_false")]
    pub video: Option<ViewVideo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewAudio {
    pub format: AudioFormat,
    /// Emit `activeInput` (voice activity detection).
    pub vad: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ViewVideo {
    pub format: VideoFormat,
    pub parameters: ViewVideoParameters,
    /// Regions in the layout, 1…256.
    #[serde(deserialize_with = "de_max_input")]
    pub max_input: u32,
    /// Scales the default bitrate (Table 3-3).
    #[serde(serialize_with = "ser_number", deserialize_with = "de_motion_factor")]
    pub motion_factor: f64,
    pub bg_color: Rgb,
    pub keep_active_input_primary: bool,
    pub layout: Layout,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ViewVideoParameters {
    pub resolution: Resolution,
    #[serde(deserialize_with = "de_framerate")]
    pub framerate: u32,
    /// Absent: the mixer computes [`default_bitrate_kbps`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<Bitrate>,
    #[serde(deserialize_with = "de_key_frame_interval")]
    pub key_frame_interval: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resolution {
    #[serde(deserialize_with = "de_dimension")]
    pub width: u32,
    #[serde(deserialize_with = "de_dimension")]
    pub height: u32,
}

/// A view's bitrate: absolute kbps (JSON number) or a multiple of the default (`"x0.8"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bitrate {
    Kbps(f64),
    Multiplier(f64),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rgb {
    #[serde(deserialize_with = "de_color")]
    pub r: u8,
    #[serde(deserialize_with = "de_color")]
    pub g: u8,
    #[serde(deserialize_with = "de_color")]
    pub b: u8,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Layout {
    pub fit_policy: FitPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_region_effect: Option<String>,
    pub templates: Templates,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FitPolicy {
    #[default]
    Letterbox,
    Crop,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Templates {
    pub base: TemplateBase,
    /// Custom layouts (user guide §3.5.1), merged with the base templates by region count.
    pub custom: Vec<CustomTemplate>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateBase {
    #[default]
    Fluid,
    Lecture,
    Void,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomTemplate {
    /// Id of the region that shows the primary (active) input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    pub region: Vec<Region>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub id: String,
    #[serde(default)]
    pub shape: RegionShape,
    pub area: Area,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionShape {
    #[default]
    Rectangle,
}

/// A region's rectangle relative to the mixed frame; each value is a fraction string
/// (`"1/3"`, `"0"`, `"0.5"`) in [0, 1]; see [`parse_fraction`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    #[serde(deserialize_with = "de_fraction")]
    pub left: String,
    #[serde(deserialize_with = "de_fraction")]
    pub top: String,
    #[serde(deserialize_with = "de_fraction")]
    pub width: String,
    #[serde(deserialize_with = "de_fraction")]
    pub height: String,
}

/// Formats the room accepts from publishers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaIn {
    pub audio: Vec<AudioFormat>,
    pub video: Vec<VideoFormat>,
}

/// Formats and parameters the room can produce by transcoding or mixing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaOut {
    pub audio: Vec<AudioFormat>,
    pub video: MediaOutVideo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaOutVideo {
    pub format: Vec<VideoFormat>,
    pub parameters: VideoParameterOptions,
}

/// The parameter choices offered to subscribers, as the strings/numbers clients send back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VideoParameterOptions {
    /// Names, `r<W>x<H>` or `x<n>/<d>` (see [`resolve_resolution`]).
    pub resolution: Vec<String>,
    #[serde(deserialize_with = "de_framerate_list")]
    pub framerate: Vec<u32>,
    /// `"x<factor>"` strings (see [`parse_bitrate_multiplier`]).
    pub bitrate: Vec<String>,
    #[serde(deserialize_with = "de_key_frame_interval_list")]
    pub key_frame_interval: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transcoding {
    pub audio: bool,
    pub video: VideoTranscoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoTranscoding {
    pub format: bool,
    pub parameters: ParameterTranscoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ParameterTranscoding {
    pub resolution: bool,
    pub framerate: bool,
    pub bitrate: bool,
    pub key_frame_interval: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Notifying {
    pub participant_activities: bool,
    pub stream_change: bool,
}

/// The room's SIP account (user guide §3.5.2); missing members are empty strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Sip {
    pub sip_server: String,
    pub username: String,
    pub password: String,
}

// ---------------------------------------------------------------------------------------------
// Defaults (spec §3.2)
// ---------------------------------------------------------------------------------------------

fn audio(codec: &str, sample_rate: Option<u32>, channel_num: Option<u32>) -> AudioFormat {
    AudioFormat { codec: codec.to_string(), sample_rate, channel_num }
}

fn video(codec: &str, profile: Option<&str>) -> VideoFormat {
    VideoFormat { codec: codec.to_string(), profile: profile.map(str::to_string) }
}

fn role(name: &str, publish: (bool, bool), subscribe: (bool, bool)) -> Role {
    Role {
        role: name.to_string(),
        publish: MediaPermission { audio: publish.0, video: publish.1 },
        subscribe: MediaPermission { audio: subscribe.0, video: subscribe.1 },
    }
}

/// The roles a room gets when created without `roles`.
pub fn default_roles() -> Vec<Role> {
    vec![
        role("presenter", (true, true), (true, true)),
        role("viewer", (false, false), (true, true)),
        role("audio_only_presenter", (true, false), (true, false)),
        role("video_only_viewer", (false, false), (false, true)),
        role("sip", (true, true), (true, true)),
    ]
}

fn default_audio_formats(aac: Option<(u32, u32)>) -> Vec<AudioFormat> {
    vec![
        audio("opus", Some(48000), Some(2)),
        audio("isac", Some(16000), None),
        audio("isac", Some(32000), None),
        audio("g722", Some(16000), Some(1)),
        audio("pcma", None, None),
        audio("pcmu", None, None),
        audio("aac", aac.map(|a| a.0), aac.map(|a| a.1)),
        audio("ac3", None, None),
        audio("nellymoser", None, None),
        audio("ilbc", None, None),
    ]
}

impl Default for RoomConfig {
    /// The default room with an empty (invalid) name; [`RoomConfig::create`] sets the name.
    fn default() -> Self {
        RoomConfig {
            name: String::new(),
            input_limit: -1,
            participant_limit: -1,
            select_active_audio: false,
            enable_bandwidth_adaptation: false,
            roles: default_roles(),
            views: vec![View::default()],
            media_in: MediaIn::default(),
            media_out: MediaOut::default(),
            transcoding: Transcoding::default(),
            notifying: Notifying::default(),
            sip: None,
        }
    }
}

impl Default for View {
    fn default() -> Self {
        View { label: "common".to_string(), audio: ViewAudio::default(), video: Some(ViewVideo::default()) }
    }
}

impl Default for ViewAudio {
    fn default() -> Self {
        ViewAudio { format: audio("opus", Some(48000), Some(2)), vad: true }
    }
}

impl Default for ViewVideo {
    fn default() -> Self {
        ViewVideo {
            format: video("vp8", None),
            parameters: ViewVideoParameters::default(),
            max_input: 16,
            motion_factor: 0.8,
            bg_color: Rgb::default(),
            keep_active_input_primary: false,
            layout: Layout::default(),
        }
    }
}

impl Default for ViewVideoParameters {
    fn default() -> Self {
        ViewVideoParameters { resolution: Resolution::default(), framerate: 24, bitrate: None, key_frame_interval: 100 }
    }
}

impl Default for Resolution {
    fn default() -> Self {
        Resolution { width: 640, height: 480 }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout { fit_policy: FitPolicy::Letterbox, set_region_effect: None, templates: Templates::default() }
    }
}

impl Default for MediaIn {
    fn default() -> Self {
        MediaIn {
            audio: default_audio_formats(None),
            video: vec![video("h264", None), video("vp8", None), video("vp9", None)],
        }
    }
}

impl Default for MediaOut {
    fn default() -> Self {
        MediaOut { audio: default_audio_formats(Some((48000, 2))), video: MediaOutVideo::default() }
    }
}

impl Default for MediaOutVideo {
    fn default() -> Self {
        MediaOutVideo {
            format: vec![video("vp8", None), video("h264", Some("CB")), video("h264", Some("B")), video("vp9", None)],
            parameters: VideoParameterOptions::default(),
        }
    }
}

impl Default for VideoParameterOptions {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        VideoParameterOptions {
            resolution: strings(&[
                "x3/4", "x2/3", "x1/2", "x1/3", "x1/4", "hd1080p", "hd720p", "svga", "vga", "qvga", "cif",
            ]),
            framerate: vec![6, 12, 15, 24, 30, 48, 60],
            bitrate: strings(&["x0.8", "x0.6", "x0.4", "x0.2"]),
            key_frame_interval: vec![100, 30, 5, 2, 1],
        }
    }
}

impl Default for Transcoding {
    fn default() -> Self {
        Transcoding { audio: true, video: VideoTranscoding::default() }
    }
}

impl Default for VideoTranscoding {
    fn default() -> Self {
        VideoTranscoding { format: true, parameters: ParameterTranscoding::default() }
    }
}

impl Default for ParameterTranscoding {
    fn default() -> Self {
        ParameterTranscoding { resolution: true, framerate: true, bitrate: true, key_frame_interval: true }
    }
}

impl Default for Notifying {
    fn default() -> Self {
        Notifying { participant_activities: true, stream_change: true }
    }
}

// ---------------------------------------------------------------------------------------------
// Create / update / stored form
// ---------------------------------------------------------------------------------------------

/// Keys of the stored form that are not configuration.
const ID_KEYS: &[&str] = &["_id", "id", "__v"];
/// Top-level sections replaced by their `defaults.js` value when missing or falsy on create.
const DEFAULTED_SECTIONS: &[&str] = &["roles", "mediaIn", "mediaOut", "views"];

impl RoomConfig {
    /// `POST /v1/rooms`: `name` must be a non-empty string, `options` an object (or null/absent)
    /// holding a subset of the room fields. `roles`, `mediaIn`, `mediaOut` and `views` that are
    /// missing or falsy (`null`, `false`, `0`, `""`) get OWT's defaults (`views: []` stays empty,
    /// the default `[{}]` is one "common" view); null members are dropped everywhere and missing
    /// members are filled with the schema defaults; then everything is validated. `_id`, `id`,
    /// `__v` and `name` inside `options` are ignored (the `name` argument wins).
    pub fn create(name: &Value, options: Option<&Value>) -> Result<RoomConfig, RoomError> {
        let name = match name {
            Value::String(s) if !s.trim().is_empty() => s.clone(),
            _ => return Err(RoomError::at("name", "must be a non-empty string")),
        };
        let mut doc = match options {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(RoomError::at("options", "must be an object")),
        };
        for key in ID_KEYS {
            doc.remove(*key);
        }
        remove_nulls(&mut doc);
        for key in DEFAULTED_SECTIONS {
            if doc.get(*key).is_some_and(is_falsy) {
                // Missing sections take the container default, which is the defaults.js value.
                doc.remove(*key);
            }
        }
        doc.insert("name".to_string(), Value::String(name));
        parse_and_validate(doc)
    }

    /// `PUT /v1/rooms/{id}`: null members of `update` are dropped (recursively), the rest is
    /// assigned shallowly onto this room (a given top-level field replaces the stored one
    /// entirely), missing nested members get schema defaults, and the result is validated.
    /// `_id`, `id` and `__v` are ignored.
    pub fn update(&self, update: &Value) -> Result<RoomConfig, RoomError> {
        let Value::Object(update) = update else {
            return Err(RoomError("room update must be a JSON object".to_string()));
        };
        let mut update = update.clone();
        for key in ID_KEYS {
            update.remove(*key);
        }
        remove_nulls(&mut update);
        let mut doc = self.to_map();
        for (key, value) in update {
            doc.insert(key, value);
        }
        parse_and_validate(doc)
    }

    /// The stored/REST form: `{"_id", "id", "__v": 0, "name", …}` with every field in camelCase
    /// (spec §3.2); `sip` only when set.
    pub fn to_json(&self, id: &str) -> Value {
        let mut out = Map::new();
        out.insert("_id".to_string(), Value::String(id.to_string()));
        out.insert("id".to_string(), Value::String(id.to_string()));
        out.insert("__v".to_string(), Value::from(0));
        out.extend(self.to_map());
        Value::Object(out)
    }

    /// Parses what [`RoomConfig::to_json`] produced (`_id`, `id`, `__v` are ignored) and validates it.
    pub fn from_stored(value: &Value) -> Result<RoomConfig, RoomError> {
        let Value::Object(map) = value else {
            return Err(RoomError("stored room must be a JSON object".to_string()));
        };
        let mut doc = map.clone();
        for key in ID_KEYS {
            doc.remove(*key);
        }
        parse_and_validate(doc)
    }

    /// The cross-field rules: name, unique role names and view labels, codecs, layouts,
    /// media-out lists, and that every view's formats are offered in `mediaOut`.
    pub fn validate(&self) -> Result<(), RoomError> {
        if self.name.trim().is_empty() {
            return Err(RoomError::at("name", "must be a non-empty string"));
        }
        check_name_length("name", &self.name)?;
        for (i, role) in self.roles.iter().enumerate() {
            let path = format!("roles[{i}].role");
            if role.role.trim().is_empty() {
                return Err(RoomError::at(&path, "must be a non-empty string"));
            }
            check_name_length(&path, &role.role)?;
            if self.roles[..i].iter().any(|r| r.role == role.role) {
                return Err(RoomError::at(&path, format!("duplicate role \"{}\"", role.role)));
            }
        }
        for (i, view) in self.views.iter().enumerate() {
            let path = format!("views[{i}]");
            view.validate(&path)?;
            if self.views[..i].iter().any(|v| v.label == view.label) {
                return Err(RoomError::at(
                    &format!("{path}.label"),
                    format!("duplicate view label \"{}\"", view.label),
                ));
            }
        }
        for (i, format) in self.media_in.audio.iter().enumerate() {
            check_audio_format(&format!("mediaIn.audio[{i}]"), format)?;
        }
        for (i, format) in self.media_in.video.iter().enumerate() {
            check_video_format(&format!("mediaIn.video[{i}]"), format)?;
        }
        for (i, format) in self.media_out.audio.iter().enumerate() {
            check_audio_format(&format!("mediaOut.audio[{i}]"), format)?;
        }
        for (i, format) in self.media_out.video.format.iter().enumerate() {
            check_video_format(&format!("mediaOut.video.format[{i}]"), format)?;
        }
        let options = &self.media_out.video.parameters;
        for (i, resolution) in options.resolution.iter().enumerate() {
            if resolve_resolution(resolution, 1920, 1080).is_none() {
                return Err(RoomError::at(
                    &format!("mediaOut.video.parameters.resolution[{i}]"),
                    format!(
                        "unknown resolution \"{resolution}\" (expected a name such as vga or \
                         hd720p, r<W>x<H> with sides from 1 to {DIMENSION_MAX}, or x<n>/<d>)"
                    ),
                ));
            }
        }
        for (i, bitrate) in options.bitrate.iter().enumerate() {
            if parse_bitrate_multiplier(bitrate).is_none() {
                return Err(RoomError::at(
                    &format!("mediaOut.video.parameters.bitrate[{i}]"),
                    format!("must be a string \"x<factor>\" with factor > 0, got \"{bitrate}\""),
                ));
            }
        }
        if !self.media_out_covers_views() {
            return Err(RoomError("MediaOut conflicts with View Setting".to_string()));
        }
        Ok(())
    }

    /// OWT's `checkMediaOut`: every view's audio format is listed in `mediaOut.audio` and its
    /// video format (unless audio-only) in `mediaOut.video.format`.
    fn media_out_covers_views(&self) -> bool {
        self.views.iter().all(|view| {
            self.media_out.audio.contains(&view.audio.format)
                && view.video.as_ref().is_none_or(|v| self.media_out.video.format.contains(&v.format))
        })
    }

    /// The room fields (no ids) as a JSON object.
    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // Every field serializes to JSON and the struct to an object.
            _ => unreachable!("RoomConfig serializes to a JSON object"),
        }
    }
}

impl View {
    fn validate(&self, path: &str) -> Result<(), RoomError> {
        if self.label.trim().is_empty() {
            return Err(RoomError::at(&format!("{path}.label"), "must be a non-empty string"));
        }
        check_name_length(&format!("{path}.label"), &self.label)?;
        check_audio_format(&format!("{path}.audio.format"), &self.audio.format)?;
        let Some(video) = &self.video else {
            return Ok(());
        };
        check_video_format(&format!("{path}.video.format"), &video.format)?;
        let templates = &video.layout.templates;
        let templates_path = format!("{path}.video.layout.templates");
        if templates.base == TemplateBase::Void && templates.custom.is_empty() {
            return Err(RoomError::at(&templates_path, "layout base 'void' needs custom templates"));
        }
        for (j, template) in templates.custom.iter().enumerate() {
            template.validate(&format!("{templates_path}.custom[{j}]"))?;
        }
        Ok(())
    }
}

impl CustomTemplate {
    fn validate(&self, path: &str) -> Result<(), RoomError> {
        if self.region.is_empty() {
            return Err(RoomError::at(&format!("{path}.region"), "must contain at least one region"));
        }
        for (k, region) in self.region.iter().enumerate() {
            let region_path = format!("{path}.region[{k}]");
            if region.id.is_empty() {
                return Err(RoomError::at(&format!("{region_path}.id"), "must be a non-empty string"));
            }
            if self.region[..k].iter().any(|r| r.id == region.id) {
                return Err(RoomError::at(
                    &format!("{region_path}.id"),
                    format!("duplicate region id \"{}\"", region.id),
                ));
            }
            let area = &region.area;
            let area_path = format!("{region_path}.area");
            for (offset, offset_name, size, size_name) in
                [(&area.left, "left", &area.width, "width"), (&area.top, "top", &area.height, "height")]
            {
                if !fits_in_unit(offset, size) {
                    return Err(RoomError::at(
                        &area_path,
                        format!("{offset_name} + {size_name} must not exceed 1, got {offset} + {size}"),
                    ));
                }
            }
        }
        if let Some(primary) = &self.primary {
            if !self.region.iter().any(|r| &r.id == primary) {
                return Err(RoomError::at(
                    &format!("{path}.primary"),
                    format!("\"{primary}\" is not the id of a region of this template"),
                ));
            }
        }
        Ok(())
    }
}

impl ViewVideo {
    /// The bitrate the mixer encodes this view with, in kbps: the configured number, or the
    /// Table 3-3 default (scaled by a configured multiplier) for the view's codec, resolution,
    /// framerate and motion factor.
    pub fn bitrate_kbps(&self) -> f64 {
        let p = &self.parameters;
        let default = || {
            default_bitrate_kbps(
                &self.format.codec,
                p.resolution.width,
                p.resolution.height,
                f64::from(p.framerate),
                self.motion_factor,
            )
        };
        match p.bitrate {
            None => default(),
            Some(Bitrate::Multiplier(k)) => default() * k,
            Some(Bitrate::Kbps(kbps)) => kbps,
        }
    }
}

/// Room names, role names and view labels: at most [`NAME_MAX_CHARS`] characters.
fn check_name_length(path: &str, text: &str) -> Result<(), RoomError> {
    let chars = text.chars().count();
    if chars > NAME_MAX_CHARS {
        return Err(RoomError::at(path, format!("must be at most {NAME_MAX_CHARS} characters, got {chars}")));
    }
    Ok(())
}

fn check_audio_format(path: &str, format: &AudioFormat) -> Result<(), RoomError> {
    if !AUDIO_CODECS.contains(&format.codec.as_str()) {
        return Err(RoomError::at(
            &format!("{path}.codec"),
            format!("unsupported audio codec \"{}\" (expected one of {})", format.codec, AUDIO_CODECS.join(", ")),
        ));
    }
    Ok(())
}

fn check_video_format(path: &str, format: &VideoFormat) -> Result<(), RoomError> {
    if !VIDEO_CODECS.contains(&format.codec.as_str()) {
        return Err(RoomError::at(
            &format!("{path}.codec"),
            format!("unsupported video codec \"{}\" (expected one of {})", format.codec, VIDEO_CODECS.join(", ")),
        ));
    }
    if let Some(profile) = &format.profile {
        let profile_path = format!("{path}.profile");
        if format.codec == "h264" && !H264_PROFILES.contains(&profile.as_str()) {
            return Err(RoomError::at(
                &profile_path,
                format!("unsupported h264 profile \"{profile}\" (expected one of {})", H264_PROFILES.join(", ")),
            ));
        }
        if profile.is_empty() {
            return Err(RoomError::at(&profile_path, "must be a non-empty string"));
        }
    }
    Ok(())
}

/// JavaScript falsiness of a JSON value.
fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Drops null members of objects at every depth (array elements are kept; a null element is a
/// type error later).
fn remove_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for value in map.values_mut() {
        remove_nulls_in(value);
    }
}

fn remove_nulls_in(value: &mut Value) {
    match value {
        Value::Object(map) => remove_nulls(map),
        Value::Array(items) => items.iter_mut().for_each(remove_nulls_in),
        _ => {}
    }
}

fn parse_and_validate(doc: Map<String, Value>) -> Result<RoomConfig, RoomError> {
    let room: RoomConfig = objects_only::deserialize(Value::Object(doc)).map_err(path_error)?;
    room.validate()?;
    Ok(room)
}

/// Turns a serde error with its path into a RoomError naming the field.
fn path_error(err: serde_path_to_error::Error<serde_json::Error>) -> RoomError {
    let mut path = err.path().to_string();
    let message = err.inner().to_string();
    for (prefix, kind) in [("unknown field `", "unknown"), ("missing field `", "missing")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let field = rest.split('`').next().unwrap_or_default();
            // The path may or may not already end with the offending key.
            if path == field {
                path = ".".to_string();
            } else if let Some(parent) = path.strip_suffix(&format!(".{field}")) {
                path = parent.to_string();
            }
            let location = if path == "." { "room" } else { path.as_str() };
            return RoomError(format!("{kind} field \"{field}\" in {location}"));
        }
    }
    if path == "." {
        RoomError(message)
    } else {
        RoomError::at(&path, message)
    }
}

// ---------------------------------------------------------------------------------------------
// Bitrate table, resolutions, fractions
// ---------------------------------------------------------------------------------------------

/// `standardBitrate` breakpoints: (pixels per frame scaled to 30 fps, kbps).
const STANDARD_BITRATE: &[(f64, f64)] = &[
    (0.0, 0.0),
    (76_800.0, 400.0),
    (307_200.0, 800.0),
    (921_600.0, 2_000.0),
    (2_073_600.0, 4_000.0),
    (8_294_400.0, 16_000.0),
    (33_177_600.0, 64_000.0),
];

/// Default video bitrate in kbps (user guide Table 3-3, spec §3.4): the standard bitrate for
/// `width × height × framerate / 30` pixels (piecewise linear, capped at 64000) times the codec
/// factor (h264 1.0, vp8 1.2, vp9 0.8, h265 0.9, others 1.0) times `motion_factor` (0.8 for
/// mixed views and recordings, 1.0 for transcoding).
pub fn default_bitrate_kbps(codec: &str, width: u32, height: u32, framerate: f64, motion_factor: f64) -> f64 {
    let size = f64::from(width) * f64::from(height) * framerate / 30.0;
    let standard = if size <= 0.0 {
        0.0
    } else {
        STANDARD_BITRATE
            .windows(2)
            .find(|pair| size <= pair[1].0)
            .map(|pair| {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                y0 + (size - x0) * (y1 - y0) / (x1 - x0)
            })
            .unwrap_or(64_000.0)
    };
    let codec_factor = match codec.to_ascii_lowercase().as_str() {
        "vp8" => 1.2,
        "vp9" => 0.8,
        "h265" => 0.9,
        _ => 1.0,
    };
    standard * codec_factor * motion_factor
}

/// Resolves a resolution spec: a name of [`NAMED_RESOLUTIONS`], `r<W>x<H>`, or a multiplier
/// `x<n>/<d>` of the base (each side `floor(base × n / d)`, rounded down to even). `None` when
/// the spec is not understood, a side would be 0, or an `r<W>x<H>` side exceeds
/// [`DIMENSION_MAX`].
pub fn resolve_resolution(spec: &str, base_width: u32, base_height: u32) -> Option<(u32, u32)> {
    if let Some(&(_, w, h)) = NAMED_RESOLUTIONS.iter().find(|(name, ..)| *name == spec) {
        return Some((w, h));
    }
    if let Some(rest) = spec.strip_prefix('r') {
        let (w, h) = rest.split_once('x')?;
        let (w, h) = (parse_digits(w)?, parse_digits(h)?);
        let (w, h) = (u32::try_from(w).ok()?, u32::try_from(h).ok()?);
        let side = 1..=DIMENSION_MAX;
        return (side.contains(&w) && side.contains(&h)).then_some((w, h));
    }
    if let Some(rest) = spec.strip_prefix('x') {
        let (n, d) = rest.split_once('/')?;
        let (n, d) = (parse_digits(n)?, parse_digits(d)?);
        if n == 0 || d == 0 {
            return None;
        }
        let scale = |base: u32| -> Option<u32> {
            let scaled = u128::from(base) * u128::from(n) / u128::from(d);
            let even = scaled - scaled % 2;
            u32::try_from(even).ok().filter(|&v| v > 0)
        };
        return Some((scale(base_width)?, scale(base_height)?));
    }
    None
}

/// Parses a bitrate multiplier `"x<factor>"` (e.g. `"x0.8"`); `None` unless factor is a plain
/// decimal greater than 0.
pub fn parse_bitrate_multiplier(text: &str) -> Option<f64> {
    let factor = text.strip_prefix('x')?;
    let plain = !factor.is_empty()
        && factor.chars().all(|c| c.is_ascii_digit() || c == '.')
        && factor.chars().any(|c| c.is_ascii_digit());
    let value: f64 = factor.parse().ok().filter(|_| plain)?;
    (value.is_finite() && value > 0.0).then_some(value)
}

/// Parses a layout fraction: `"n/d"`, an integer, or a decimal (`"0.5"`, `".5"`), into a
/// reduced `(numerator, denominator)`. Each part may have at most 18 digits.
pub fn parse_fraction(text: &str) -> Option<(u64, u64)> {
    let (numerator, denominator) = if let Some((n, d)) = text.split_once('/') {
        (parse_digits(n)? as u128, parse_digits(d)? as u128)
    } else if let Some((int, frac)) = text.split_once('.') {
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let int = if int.is_empty() { 0 } else { parse_digits(int)? };
        let (frac_value, scale) =
            if frac.is_empty() { (0, 1) } else { (parse_digits(frac)?, 10u128.pow(frac.len() as u32)) };
        (int as u128 * scale + frac_value as u128, scale)
    } else {
        (parse_digits(text)? as u128, 1)
    };
    if denominator == 0 {
        return None;
    }
    let divisor = gcd(numerator, denominator);
    Some((u64::try_from(numerator / divisor).ok()?, u64::try_from(denominator / divisor).ok()?))
}

/// 1 to 18 ASCII digits.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// A fraction in [0, 1].
fn unit_fraction(text: &str) -> Option<(u64, u64)> {
    parse_fraction(text).filter(|(n, d)| n <= d)
}

/// `offset + size <= 1`, exactly (both are valid unit fractions after deserialization).
fn fits_in_unit(offset: &str, size: &str) -> bool {
    match (unit_fraction(offset), unit_fraction(size)) {
        (Some((on, od)), Some((sn, sd))) => {
            // Parts are below 10^18, so these products fit in u128.
            let (on, od, sn, sd) = (on as u128, od as u128, sn as u128, sd as u128);
            on * sd + sn * od <= od * sd
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Serde helpers
// ---------------------------------------------------------------------------------------------

/// An integer range check usable as a visitor and as a seed for list elements; accepts JSON
/// integers and integral floats, with messages like "must be an integer between 1 and 256, got 300".
#[derive(Clone, Copy)]
struct IntRange {
    min: i64,
    max: i64,
}

impl fmt::Display for IntRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.max == i64::MAX {
            write!(f, "an integer >= {}", self.min)
        } else {
            write!(f, "an integer between {} and {}", self.min, self.max)
        }
    }
}

impl IntRange {
    fn accept<E: de::Error>(self, value: i128, shown: &dyn fmt::Display) -> Result<i64, E> {
        if value >= i128::from(self.min) && value <= i128::from(self.max) {
            Ok(value as i64)
        } else {
            Err(E::custom(format!("must be {self}, got {shown}")))
        }
    }
}

impl<'de> Visitor<'de> for IntRange {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        self.accept(i128::from(v), &v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        self.accept(i128::from(v), &v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e18 {
            self.accept(v as i128, &v)
        } else {
            Err(E::custom(format!("must be {self}, got {v}")))
        }
    }
}

impl<'de> DeserializeSeed<'de> for IntRange {
    type Value = i64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

fn int_in<'de, D: Deserializer<'de>>(d: D, min: i64, max: i64) -> Result<i64, D::Error> {
    d.deserialize_any(IntRange { min, max })
}

fn de_limit<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    int_in(d, -1, i64::MAX)
}

fn de_max_input<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(int_in(d, 1, 256)? as u32)
}

fn de_dimension<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(int_in(d, 1, i64::from(DIMENSION_MAX))? as u32)
}

fn de_framerate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(int_in(d, 1, 120)? as u32)
}

fn de_key_frame_interval<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(int_in(d, 1, 3600)? as u32)
}

fn de_color<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    Ok(int_in(d, 0, 255)? as u8)
}

fn de_sample_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Some(int_in(d, 1, 384_000)? as u32))
}

fn de_channel_num<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Some(int_in(d, 1, 8)? as u32))
}

fn int_list<'de, D: Deserializer<'de>>(d: D, range: IntRange) -> Result<Vec<u32>, D::Error> {
    struct ListVisitor(IntRange);

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<u32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of {}", self.0)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(self.0)? {
                out.push(u32::try_from(v).map_err(de::Error::custom)?);
            }
            Ok(out)
        }
    }

    d.deserialize_seq(ListVisitor(range))
}

fn de_framerate_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    int_list(d, IntRange { min: 1, max: 120 })
}

fn de_key_frame_interval_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    int_list(d, IntRange { min: 1, max: 3600 })
}

fn de_motion_factor<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(de::Error::custom(format!("must be a number greater than 0, got {v}")))
    }
}

/// Writes integral floats as JSON integers (`1` rather than `1.0`), like JavaScript does.
fn ser_number<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Layout fraction strings; JSON numbers are accepted and converted to their decimal text.
fn de_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct FractionVisitor;

    impl FractionVisitor {
        fn check<E: de::Error>(text: String) -> Result<String, E> {
            if unit_fraction(&text).is_some() {
                Ok(text)
            } else {
                Err(E::custom(format!("must be a fraction \"n/d\" or a decimal between 0 and 1, got \"{text}\"")))
            }
        }
    }

    impl<'de> Visitor<'de> for FractionVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a fraction string such as \"1/3\" or \"0.5\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Self::check(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Self::check(v.to_string())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Self::check(v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            // Rust's Display for f64 is the shortest exact text and never uses an exponent.
            Self::check(v.to_string())
        }
    }

    d.deserialize_any(FractionVisitor)
}

impl Serialize for Bitrate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bitrate::Kbps(kbps) => ser_number(kbps, s),
            Bitrate::Multiplier(factor) => s.serialize_str(&format!("x{factor}")),
        }
    }
}

impl<'de> Deserialize<'de> for Bitrate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bitrate, D::Error> {
        struct BitrateVisitor;

        impl BitrateVisitor {
            fn kbps<E: de::Error>(v: f64) -> Result<Bitrate, E> {
                if v.is_finite() && v > 0.0 {
                    Ok(Bitrate::Kbps(v))
                } else {
                    Err(E::custom(format!(
                        "must be a number of kbps greater than 0 or a string \"x<factor>\", got {v}"
                    )))
                }
            }
        }

        impl<'de> Visitor<'de> for BitrateVisitor {
            type Value = Bitrate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of kbps or a string \"x<factor>\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bitrate, E> {
                Self::kbps(v as f64)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bitrate, E> {
                Self::kbps(v as f64)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bitrate, E> {
                Self::kbps(v)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bitrate, E> {
                parse_bitrate_multiplier(v).map(Bitrate::Multiplier).ok_or_else(|| {
                    E::custom(format!(
                        "must be a number of kbps greater than 0 or a string \"x<factor>\" \
                             with factor > 0, got \"{v}\""
                    ))
                })
            }
        }

        d.deserialize_any(BitrateVisitor)
    }
}

/// `view.video`: an object, or `false` for an audio-only view.
mod video_or_false {
    use super::*;

    pub fn serialize<S: Serializer>(video: &Option<ViewVideo>, s: S) -> Result<S::Ok, S::Error> {
        match video {
            Some(video) => video.serialize(s),
            None => s.serialize_bool(false),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ViewVideo>, D::Error> {
        struct VideoVisitor;

        impl<'de> Visitor<'de> for VideoVisitor {
            type Value = Option<ViewVideo>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("false (audio-only view) or a video object")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::invalid_value(Unexpected::Bool(true), &self))
                } else {
                    Ok(None)
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                ViewVideo::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(NOT_AN_OBJECT))
            }
        }

        d.deserialize_any(VideoVisitor)
    }
}

/// Deserialization of the room schema from JSON: like `serde_json::Value`'s, except that a
/// struct must be written as a JSON object. serde's derived structs also accept a sequence that
/// fills the fields in order (`{"views": [["x"]]}` would be a view labelled "x"), which OWT
/// (mongoose) refuses. Every nested value is wrapped as well, so the rule holds for every struct
/// at every depth, including ones added to the schema later.
mod objects_only {
    use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
    use serde::forward_to_deserialize_any;
    use serde_json::{Error, Value};

    use super::NOT_AN_OBJECT;

    /// Deserializes `value`, recording the path of the first error.
    pub fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, serde_path_to_error::Error<Error>> {
        serde_path_to_error::deserialize(ObjectsOnly(value))
    }

    struct ObjectsOnly(Value);

    impl<'de> de::Deserializer<'de> for ObjectsOnly {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Array(items) => visitor.visit_seq(ArrayAccess(items.into_iter())),
                Value::Object(map) => visitor.visit_map(ObjectAccess { entries: map.into_iter(), value: None }),
                other => other.deserialize_any(visitor),
            }
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::Array(_) => Err(de::Error::custom(NOT_AN_OBJECT)),
                Value::Object(map) => visitor.visit_map(ObjectAccess { entries: map.into_iter(), value: None }),
                other => other.deserialize_struct(name, fields, visitor),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_none(),
                other => visitor.visit_some(ObjectsOnly(other)),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::String(variant) => visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(variant)),
                Value::Object(map) if map.len() == 1 => {
                    visitor.visit_enum(de::value::MapAccessDeserializer::new(ObjectAccess {
                        entries: map.into_iter(),
                        value: None,
                    }))
                }
                other => other.deserialize_enum(name, variants, visitor),
            }
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            unit unit_struct seq tuple tuple_struct map identifier ignored_any
        }
    }

    struct ArrayAccess(std::vec::IntoIter<Value>);

    impl<'de> SeqAccess<'de> for ArrayAccess {
        type Error = Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
            self.0.next().map(|item| seed.deserialize(ObjectsOnly(item))).transpose()
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.0.len())
        }
    }

    struct ObjectAccess {
        entries: serde_json::map::IntoIter,
        value: Option<Value>,
    }

    impl<'de> MapAccess<'de> for ObjectAccess {
        type Error = Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
            let Some((key, value)) = self.entries.next() else {
                return Ok(None);
            };
            self.value = Some(value);
            seed.deserialize(IntoDeserializer::<Error>::into_deserializer(key)).map(Some)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let value = self.value.take().ok_or_else(|| de::Error::custom("map value requested before its key"))?;
            seed.deserialize(ObjectsOnly(value))
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.entries.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "5f3a1c2b9d8e7f6a5b4c3d2e";

    fn create(options: Value) -> Result<RoomConfig, RoomError> {
        RoomConfig::create(&json!("room"), Some(&options))
    }

    fn rejects(options: Value, needle: &str) {
        match create(options.clone()) {
            Ok(_) => panic!("accepted {options}"),
            Err(RoomError(message)) => {
                assert!(message.contains(needle), "message {message:?} lacks {needle:?} for {options}")
            }
        }
    }

    fn accepts(options: Value) -> RoomConfig {
        match create(options.clone()) {
            Ok(room) => room,
            Err(err) => panic!("rejected {options}: {err}"),
        }
    }

    /// Options with one view whose `video` member is `video`.
    fn view_video(video: Value) -> Value {
        json!({"views": [{"video": video}]})
    }

    fn layout(layout: Value) -> Value {
        view_video(json!({"layout": layout}))
    }

    fn custom(custom: Value) -> Value {
        layout(json!({"templates": {"base": "void", "custom": custom}}))
    }

    fn region(id: &str, left: Value, top: Value, width: Value, height: Value) -> Value {
        json!({"id": id, "area": {"left": left, "top": top, "width": width, "height": height}})
    }

    fn spec_default_room() -> Value {
        json!({
          "_id": ID, "id": ID, "__v": 0,
          "name": "sampleRoom",
          "inputLimit": -1,
          "participantLimit": -1,
          "selectActiveAudio": false,
          "enableBandwidthAdaptation": false,
          "roles": [
            {"role": "presenter",            "publish": {"audio": true,  "video": true },  "subscribe": {"audio": true,  "video": true }},
            {"role": "viewer",               "publish": {"audio": false, "video": false},  "subscribe": {"audio": true,  "video": true }},
            {"role": "audio_only_presenter", "publish": {"audio": true,  "video": false},  "subscribe": {"audio": true,  "video": false}},
            {"role": "video_only_viewer",    "publish": {"audio": false, "video": false},  "subscribe": {"audio": false, "video": true }},
            {"role": "sip",                  "publish": {"audio": true,  "video": true },  "subscribe": {"audio": true,  "video": true }}
          ],
          "views": [{
            "label": "common",
            "audio": {"format": {"codec": "opus", "sampleRate": 48000, "channelNum": 2}, "vad": true},
            "video": {
              "format": {"codec": "vp8"},
              "parameters": {"resolution": {"width": 640, "height": 480}, "framerate": 24, "keyFrameInterval": 100},
              "maxInput": 16, "motionFactor": 0.8,
              "bgColor": {"r": 0, "g": 0, "b": 0},
              "keepActiveInputPrimary": false,
              "layout": {"fitPolicy": "letterbox", "templates": {"base": "fluid", "custom": []}}
            }
          }],
          "mediaIn": {
            "audio": [ {"codec":"opus","sampleRate":48000,"channelNum":2}, {"codec":"isac","sampleRate":16000},
                       {"codec":"isac","sampleRate":32000}, {"codec":"g722","sampleRate":16000,"channelNum":1},
                       {"codec":"pcma"}, {"codec":"pcmu"}, {"codec":"aac"}, {"codec":"ac3"},
                       {"codec":"nellymoser"}, {"codec":"ilbc"} ],
            "video": [ {"codec":"h264"}, {"codec":"vp8"}, {"codec":"vp9"} ]
          },
          "mediaOut": {
            "audio": [ {"codec":"opus","sampleRate":48000,"channelNum":2}, {"codec":"isac","sampleRate":16000},
                       {"codec":"isac","sampleRate":32000}, {"codec":"g722","sampleRate":16000,"channelNum":1},
                       {"codec":"pcma"}, {"codec":"pcmu"}, {"codec":"aac","sampleRate":48000,"channelNum":2},
                       {"codec":"ac3"}, {"codec":"nellymoser"}, {"codec":"ilbc"} ],
            "video": {
              "format": [ {"codec":"vp8"}, {"codec":"h264","profile":"CB"}, {"codec":"h264","profile":"B"}, {"codec":"vp9"} ],
              "parameters": {
                "resolution": ["x3/4","x2/3","x1/2","x1/3","x1/4","hd1080p","hd720p","svga","vga","qvga","cif"],
                "framerate": [6, 12, 15, 24, 30, 48, 60],
                "bitrate": ["x0.8","x0.6","x0.4","x0.2"],
                "keyFrameInterval": [100, 30, 5, 2, 1]
              }
            }
          },
          "transcoding": {"audio": true,
                          "video": {"format": true,
                                    "parameters": {"resolution": true, "framerate": true, "bitrate": true, "keyFrameInterval": true}}},
          "notifying": {"participantActivities": true, "streamChange": true}
        })
    }

    // --- defaults ------------------------------------------------------------------------

    #[test]
    fn create_without_options_is_the_spec_default_room() {
        let expected = spec_default_room();
        let room = RoomConfig::create(&json!("sampleRoom"), None).unwrap();
        assert_eq!(room.to_json(ID), expected);
        // Key order follows the spec as well.
        let keys: Vec<_> = room.to_json(ID).as_object().unwrap().keys().cloned().collect();
        let expected_keys: Vec<_> = expected.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, expected_keys);
        assert_eq!(RoomConfig::create(&json!("sampleRoom"), Some(&json!(null))).unwrap(), room);
        assert_eq!(RoomConfig::create(&json!("sampleRoom"), Some(&json!({}))).unwrap(), room);
        let named = RoomConfig { name: "sampleRoom".to_string(), ..RoomConfig::default() };
        assert_eq!(named, room);
    }

    #[test]
    fn falsy_sections_get_defaults_and_empty_views_stay_empty() {
        let default = RoomConfig::create(&json!("room"), None).unwrap();
        for falsy in [json!(null), json!(false), json!(0), json!("")] {
            let room = accepts(json!({
                "views": falsy, "roles": falsy, "mediaIn": falsy, "mediaOut": falsy
            }));
            assert_eq!(room, default, "falsy {falsy}");
        }
        let room = accepts(json!({"views": []}));
        assert!(room.views.is_empty());
        assert_eq!(room.to_json(ID)["views"], json!([]));
        let room = accepts(json!({"roles": []}));
        assert!(room.roles.is_empty());
    }

    #[test]
    fn partial_view_is_filled_with_schema_defaults() {
        let room = accepts(json!({"views": [
            {"label": "big", "video": {"parameters": {"resolution": {"width": 1280}}, "maxInput": 4}},
            {"label": "small", "audio": {"vad": false},
             "video": {"format": {"codec": "h264", "profile": "CB"},
                       "layout": {"templates": {"base": "lecture"}}}}
        ]}));
        let big = &room.views[0];
        assert_eq!(big.audio, ViewAudio::default());
        let video = big.video.as_ref().unwrap();
        assert_eq!(video.parameters.resolution, Resolution { width: 1280, height: 480 });
        assert_eq!(video.parameters.framerate, 24);
        assert_eq!(video.parameters.key_frame_interval, 100);
        assert_eq!(video.parameters.bitrate, None);
        assert_eq!(video.max_input, 4);
        assert_eq!(video.motion_factor, 0.8);
        assert_eq!(video.layout, Layout::default());
        assert_eq!(video.format, video_fmt("vp8", None));

        let small = &room.views[1];
        assert!(!small.audio.vad);
        assert_eq!(small.audio.format, audio("opus", Some(48000), Some(2)));
        let video = small.video.as_ref().unwrap();
        assert_eq!(video.layout.templates.base, TemplateBase::Lecture);
        assert_eq!(video.layout.fit_policy, FitPolicy::Letterbox);
        assert_eq!(video.max_input, 16);
        // The other sections still default.
        assert_eq!(room.roles, default_roles());
        assert_eq!(room.media_out, MediaOut::default());
    }

    fn video_fmt(codec: &str, profile: Option<&str>) -> VideoFormat {
        video(codec, profile)
    }

    #[test]
    fn given_view_label_defaults_to_common() {
        let room = accepts(json!({"views": [{"audio": {"vad": false}}]}));
        assert_eq!(room.views[0].label, "common");
    }

    #[test]
    fn nested_sections_fill_missing_members() {
        let room = accepts(json!({
            "mediaOut": {"audio": [{"codec": "opus", "sampleRate": 48000, "channelNum": 2}]},
            "mediaIn": {"video": [{"codec": "vp8"}]},
            "transcoding": {"video": {"parameters": {"bitrate": false}}},
            "notifying": {"streamChange": false}
        }));
        assert_eq!(room.media_out.audio.len(), 1);
        assert_eq!(room.media_out.video, MediaOutVideo::default());
        assert_eq!(room.media_in.audio, MediaIn::default().audio);
        assert_eq!(room.media_in.video, vec![video("vp8", None)]);
        assert!(room.transcoding.audio);
        assert!(room.transcoding.video.format);
        assert!(!room.transcoding.video.parameters.bitrate);
        assert!(room.transcoding.video.parameters.resolution);
        assert!(room.notifying.participant_activities);
        assert!(!room.notifying.stream_change);
    }

    #[test]
    fn nulls_are_removed_before_defaults() {
        let room = accepts(json!({
            "inputLimit": null,
            "views": [{"label": null, "video": {"maxInput": null, "parameters": {"bitrate": null}}}]
        }));
        assert_eq!(room.input_limit, -1);
        assert_eq!(room.views[0], View::default());
    }

    #[test]
    fn ids_and_name_in_options_are_ignored() {
        let room = accepts(json!({"_id": "x", "id": "y", "__v": 3, "name": "other"}));
        assert_eq!(room.name, "room");
    }

    // --- name, limits, switches ----------------------------------------------------------

    #[test]
    fn name_rules() {
        for bad in [json!(""), json!("  "), json!(5), json!(null)] {
            let err = RoomConfig::create(&bad, None).unwrap_err();
            assert_eq!(err, RoomError("name: must be a non-empty string".to_string()));
        }
        let long = "n".repeat(NAME_MAX_CHARS + 1);
        let err = RoomConfig::create(&json!(long), None).unwrap_err();
        assert!(err.0.starts_with("name: must be at most 256 characters"), "{err}");
        let ok = "é".repeat(NAME_MAX_CHARS);
        assert_eq!(RoomConfig::create(&json!(ok), None).unwrap().name, ok);
    }

    #[test]
    fn options_must_be_an_object() {
        let err = RoomConfig::create(&json!("room"), Some(&json!([1]))).unwrap_err();
        assert_eq!(err, RoomError("options: must be an object".to_string()));
    }

    #[test]
    fn limits_are_integers_from_minus_one() {
        rejects(json!({"inputLimit": -2}), "inputLimit: must be an integer >= -1, got -2");
        rejects(json!({"participantLimit": 1.5}), "participantLimit: must be an integer");
        rejects(json!({"inputLimit": "5"}), "inputLimit: invalid type");
        let room = accepts(json!({"inputLimit": 0, "participantLimit": 100.0}));
        assert_eq!((room.input_limit, room.participant_limit), (0, 100));
        assert_eq!(room.to_json(ID)["participantLimit"], json!(100));
        assert_eq!(accepts(json!({"inputLimit": -1})).input_limit, -1);
    }

    #[test]
    fn switches_are_booleans() {
        rejects(json!({"selectActiveAudio": "yes"}), "selectActiveAudio: invalid type");
        rejects(json!({"enableBandwidthAdaptation": 1}), "enableBandwidthAdaptation");
        let room = accepts(json!({"selectActiveAudio": true, "enableBandwidthAdaptation": true}));
        assert!(room.select_active_audio && room.enable_bandwidth_adaptation);
    }

    #[test]
    fn unknown_fields_are_named_with_their_location() {
        let err = create(json!({"foo": 1})).unwrap_err();
        assert_eq!(err, RoomError("unknown field \"foo\" in room".to_string()));
        let err = create(view_video(json!({"foo": 1}))).unwrap_err();
        assert_eq!(err, RoomError("unknown field \"foo\" in views[0].video".to_string()));
        rejects(
            json!({"views": [{"audio": {"format": {"codec": "opus", "rate": 1}}}]}),
            "unknown field \"rate\" in views[0].audio.format",
        );
        rejects(json!({"notifying": {"x": true}}), "unknown field \"x\" in notifying");
    }

    // --- roles -----------------------------------------------------------------------------

    #[test]
    fn role_rules() {
        rejects(json!({"roles": [{"publish": {}}]}), "missing field \"role\" in roles[0]");
        rejects(json!({"roles": [{"role": ""}]}), "roles[0].role: must be a non-empty string");
        rejects(json!({"roles": [{"role": "a"}, {"role": "a"}]}), "roles[1].role: duplicate role \"a\"");
        rejects(json!({"roles": [{"role": "a", "publish": {"audio": "yes"}}]}), "roles[0].publish.audio: invalid type");
        rejects(json!({"roles": [{"role": "a", "admin": true}]}), "unknown field \"admin\" in roles[0]");
        rejects(json!({"roles": {"role": "a"}}), "roles: invalid type");
        let room = accepts(json!({"roles": [
            {"role": "guest", "subscribe": {"audio": true}},
            {"role": "host", "publish": {"audio": true, "video": true}, "subscribe": {"audio": true, "video": true}}
        ]}));
        assert_eq!(room.roles[0], role("guest", (false, false), (true, false)));
        assert_eq!(room.roles[1], role("host", (true, true), (true, true)));
    }

    // --- media in / out ----------------------------------------------------------------------

    #[test]
    fn media_in_rules() {
        rejects(
            json!({"mediaIn": {"audio": [{"codec": "mp3"}]}}),
            "mediaIn.audio[0].codec: unsupported audio codec \"mp3\"",
        );
        rejects(
            json!({"mediaIn": {"audio": [{"codec": "opus", "sampleRate": 0}]}}),
            "mediaIn.audio[0].sampleRate: must be an integer between",
        );
        rejects(json!({"mediaIn": {"audio": [{"codec": "opus", "channelNum": 9}]}}), "mediaIn.audio[0].channelNum");
        rejects(
            json!({"mediaIn": {"video": [{"codec": "h264"}, {"codec": "mpeg2"}]}}),
            "mediaIn.video[1].codec: unsupported video codec \"mpeg2\"",
        );
        rejects(
            json!({"mediaIn": {"video": [{"codec": "h264", "profile": "X"}]}}),
            "mediaIn.video[0].profile: unsupported h264 profile \"X\"",
        );
        rejects(json!({"mediaIn": {"video": [{"profile": "B"}]}}), "missing field \"codec\" in mediaIn.video[0]");
        let room = accepts(json!({"mediaIn": {
            "audio": [{"codec": "g722", "sampleRate": 16000, "channelNum": 1}, {"codec": "aac"}],
            "video": [{"codec": "av1"}, {"codec": "h265"}, {"codec": "h264", "profile": "H"}, {"codec": "vp9", "profile": "0"}]
        }}));
        assert_eq!(room.media_in.video.len(), 4);
        assert_eq!(room.media_in.audio[1], audio("aac", None, None));
    }

    #[test]
    fn media_out_rules() {
        let params = |p: Value| json!({"mediaOut": {"video": {"parameters": p}}});
        rejects(
            params(json!({"resolution": ["vga", "huge"]})),
            "mediaOut.video.parameters.resolution[1]: unknown resolution \"huge\"",
        );
        rejects(params(json!({"resolution": ["x1/0"]})), "resolution[0]");
        rejects(
            params(json!({"framerate": [30, 0]})),
            "mediaOut.video.parameters.framerate[1]: must be an integer between 1 and 120, got 0",
        );
        rejects(
            params(json!({"keyFrameInterval": [5000]})),
            "mediaOut.video.parameters.keyFrameInterval[0]: must be an integer between 1 and 3600",
        );
        rejects(
            params(json!({"bitrate": ["0.8"]})),
            "mediaOut.video.parameters.bitrate[0]: must be a string \"x<factor>\"",
        );
        rejects(params(json!({"bitrate": ["x0"]})), "bitrate[0]");
        rejects(params(json!({"bitrate": [0.8]})), "bitrate[0]: invalid type");
        rejects(json!({"mediaOut": {"video": {"format": [{"codec": "theora"}]}}}), "mediaOut.video.format[0].codec");
        rejects(json!({"mediaOut": {"audio": [{"codec": "speex"}]}}), "mediaOut.audio[0].codec");
        let room = accepts(params(json!({
            "resolution": ["r1280x720", "x1/2", "xga"],
            "framerate": [120],
            "bitrate": ["x1.5"],
            "keyFrameInterval": [3600]
        })));
        assert_eq!(room.media_out.video.parameters.resolution, ["r1280x720", "x1/2", "xga"]);
        assert_eq!(room.media_out.video.format, MediaOutVideo::default().format);
    }

    #[test]
    fn views_must_match_media_out() {
        const CONFLICT: &str = "MediaOut conflicts with View Setting";
        let err =
            create(json!({"views": [{"audio": {"format": {"codec": "opus", "sampleRate": 48000, "channelNum": 1}}}]}))
                .unwrap_err();
        assert_eq!(err, RoomError(CONFLICT.to_string()));
        // h264 without a profile is not offered by the default mediaOut.
        rejects(view_video(json!({"format": {"codec": "h264"}})), CONFLICT);
        rejects(json!({"mediaOut": {"video": {"format": [{"codec": "vp9"}]}}}), CONFLICT);
        accepts(json!({"views": [{"audio": {"format": {"codec": "pcmu"}},
                                  "video": {"format": {"codec": "h264", "profile": "CB"}}}]}));
        accepts(json!({"views": [{"audio": {"format": {"codec": "aac", "sampleRate": 48000, "channelNum": 2}}}]}));
        // Audio-only views skip the video check.
        accepts(json!({"views": [{"video": false}],
                       "mediaOut": {"video": {"format": []}}}));
        // Without views, nothing to check.
        accepts(json!({"views": [], "mediaOut": {"audio": []}}));
    }

    // --- views -----------------------------------------------------------------------------

    #[test]
    fn view_list_and_labels() {
        rejects(json!({"views": {"label": "a"}}), "views: invalid type");
        rejects(json!({"views": [null]}), "views[0]: invalid type: null");
        rejects(json!({"views": [{"label": ""}]}), "views[0].label: must be a non-empty string");
        rejects(json!({"views": [{"label": 3}]}), "views[0].label: invalid type");
        rejects(
            json!({"views": [{}, {"label": "x"}, {"label": "common"}]}),
            "views[2].label: duplicate view label \"common\"",
        );
        let room = accepts(json!({"views": [{}, {"label": "x"}]}));
        assert_eq!(room.views.len(), 2);
    }

    #[test]
    fn view_audio_rules() {
        rejects(json!({"views": [{"audio": {"vad": "on"}}]}), "views[0].audio.vad: invalid type");
        rejects(
            json!({"views": [{"audio": {"format": {"codec": "mp3"}}}]}),
            "views[0].audio.format.codec: unsupported audio codec",
        );
        rejects(json!({"views": [{"audio": false}]}), "views[0].audio: invalid type");
    }

    #[test]
    fn audio_only_view_keeps_video_false() {
        rejects(view_video(json!(true)), "views[0].video: invalid value: boolean `true`");
        rejects(view_video(json!("none")), "views[0].video: invalid type");
        let room = accepts(json!({"views": [{"label": "a", "video": false}, {"label": "b"}]}));
        assert_eq!(room.views[0].video, None);
        let stored = room.to_json(ID);
        assert_eq!(stored["views"][0]["video"], json!(false));
        assert!(stored["views"][1]["video"].is_object());
        assert_eq!(RoomConfig::from_stored(&stored).unwrap(), room);
    }

    #[test]
    fn view_video_parameters() {
        let p = |p: Value| view_video(json!({"parameters": p}));
        rejects(
            p(json!({"resolution": {"width": 0}})),
            "views[0].video.parameters.resolution.width: must be an integer between 1 and 8192, got 0",
        );
        rejects(p(json!({"resolution": {"height": 8193}})), "resolution.height");
        rejects(p(json!({"resolution": "vga"})), "views[0].video.parameters.resolution: invalid type");
        rejects(
            p(json!({"framerate": 121})),
            "views[0].video.parameters.framerate: must be an integer between 1 and 120, got 121",
        );
        rejects(p(json!({"framerate": 0})), "framerate");
        rejects(
            p(json!({"keyFrameInterval": 3601})),
            "views[0].video.parameters.keyFrameInterval: must be an integer between 1 and 3600",
        );
        rejects(p(json!({"bitrate": -5})), "views[0].video.parameters.bitrate: must be a number of kbps");
        rejects(p(json!({"bitrate": 0})), "parameters.bitrate");
        rejects(p(json!({"bitrate": "y0.5"})), "parameters.bitrate");
        rejects(p(json!({"bitrate": "x0"})), "parameters.bitrate");
        rejects(p(json!({"bitrate": "x-1"})), "parameters.bitrate");
        rejects(p(json!({"bitrate": true})), "parameters.bitrate: invalid type");

        let room = accepts(p(json!({"resolution": {"width": 1921, "height": 8192}, "framerate": 60,
                                    "keyFrameInterval": 1, "bitrate": 1500})));
        let params = &room.views[0].video.as_ref().unwrap().parameters;
        assert_eq!(params.resolution, Resolution { width: 1921, height: 8192 });
        assert_eq!(params.bitrate, Some(Bitrate::Kbps(1500.0)));
        assert_eq!(room.to_json(ID)["views"][0]["video"]["parameters"]["bitrate"], json!(1500));
        let room = accepts(p(json!({"bitrate": "x0.5"})));
        let video = room.views[0].video.as_ref().unwrap();
        assert_eq!(video.parameters.bitrate, Some(Bitrate::Multiplier(0.5)));
        assert_eq!(room.to_json(ID)["views"][0]["video"]["parameters"]["bitrate"], json!("x0.5"));
        // 665.6 × 0.5
        assert!((video.bitrate_kbps() - 332.8).abs() < 0.01);
        let room = accepts(p(json!({"bitrate": 812.5})));
        assert_eq!(room.views[0].video.as_ref().unwrap().bitrate_kbps(), 812.5);
    }

    #[test]
    fn view_video_scalars() {
        let err = create(view_video(json!({"maxInput": 300}))).unwrap_err();
        assert_eq!(
            err,
            RoomError("views[0].video.maxInput: must be an integer between 1 and 256, got 300".to_string())
        );
        rejects(view_video(json!({"maxInput": 0})), "views[0].video.maxInput");
        rejects(view_video(json!({"maxInput": "4"})), "views[0].video.maxInput: invalid type");
        rejects(
            view_video(json!({"motionFactor": 0})),
            "views[0].video.motionFactor: must be a number greater than 0, got 0",
        );
        rejects(view_video(json!({"motionFactor": -1.5})), "motionFactor");
        rejects(
            view_video(json!({"bgColor": {"r": 256}})),
            "views[0].video.bgColor.r: must be an integer between 0 and 255, got 256",
        );
        rejects(view_video(json!({"bgColor": {"b": -1}})), "views[0].video.bgColor.b");
        rejects(view_video(json!({"bgColor": {"a": 1}})), "unknown field \"a\" in views[0].video.bgColor");
        rejects(
            view_video(json!({"keepActiveInputPrimary": "true"})),
            "views[0].video.keepActiveInputPrimary: invalid type",
        );
        let room = accepts(view_video(json!({"maxInput": 256, "motionFactor": 1, "bgColor": {"g": 255},
                                             "keepActiveInputPrimary": true})));
        let video = room.views[0].video.as_ref().unwrap();
        assert_eq!(video.max_input, 256);
        assert_eq!(video.motion_factor, 1.0);
        assert_eq!(video.bg_color, Rgb { r: 0, g: 255, b: 0 });
        assert!(video.keep_active_input_primary);
        assert_eq!(room.to_json(ID)["views"][0]["video"]["motionFactor"], json!(1));
    }

    #[test]
    fn layout_rules() {
        rejects(layout(json!({"fitPolicy": "stretch"})), "views[0].video.layout.fitPolicy: unknown variant `stretch`");
        rejects(layout(json!({"setRegionEffect": 1})), "views[0].video.layout.setRegionEffect: invalid type");
        rejects(
            layout(json!({"templates": {"base": "grid"}})),
            "views[0].video.layout.templates.base: unknown variant `grid`",
        );
        let err = create(layout(json!({"templates": {"base": "void"}}))).unwrap_err();
        assert_eq!(
            err,
            RoomError("views[0].video.layout.templates: layout base 'void' needs custom templates".to_string())
        );
        rejects(layout(json!({"templates": {"custom": {}}})), "templates.custom: invalid type");

        let room = accepts(layout(json!({"fitPolicy": "crop", "setRegionEffect": "blur",
                                         "templates": {"base": "lecture"}})));
        let layout = &room.views[0].video.as_ref().unwrap().layout;
        assert_eq!(layout.fit_policy, FitPolicy::Crop);
        assert_eq!(layout.set_region_effect.as_deref(), Some("blur"));
        assert_eq!(layout.templates.base, TemplateBase::Lecture);
        let stored = room.to_json(ID);
        assert_eq!(stored["views"][0]["video"]["layout"]["fitPolicy"], json!("crop"));
        assert_eq!(stored["views"][0]["video"]["layout"]["setRegionEffect"], json!("blur"));
    }

    #[test]
    fn custom_template_rules() {
        let full = || region("1", json!("0"), json!("0"), json!("1"), json!("1"));
        let path = "views[0].video.layout.templates.custom[0]";
        rejects(custom(json!([{"region": []}])), &format!("{path}.region: must contain at least one region"));
        rejects(
            custom(json!([{"region": [{"area": {"left": "0", "top": "0", "width": "1", "height": "1"}}]}])),
            &format!("missing field \"id\" in {path}.region[0]"),
        );
        rejects(
            custom(json!([{"region": [region("", json!("0"), json!("0"), json!("1"), json!("1"))]}])),
            &format!("{path}.region[0].id: must be a non-empty string"),
        );
        rejects(
            custom(json!([{"region": [full(), full()]}])),
            &format!("{path}.region[1].id: duplicate region id \"1\""),
        );
        rejects(
            custom(json!([{"region": [{"id": "1", "shape": "circle",
                                       "area": {"left": "0", "top": "0", "width": "1", "height": "1"}}]}])),
            &format!("{path}.region[0].shape: unknown variant `circle`"),
        );
        rejects(
            custom(json!([{"region": [{"id": "1", "area": {"left": "0", "top": "0", "width": "1"}}]}])),
            &format!("missing field \"height\" in {path}.region[0].area"),
        );
        rejects(
            custom(json!([{"region": [region("1", json!("abc"), json!("0"), json!("1"), json!("1"))]}])),
            &format!(
                "{path}.region[0].area.left: must be a fraction \"n/d\" or a decimal between 0 and 1, got \"abc\""
            ),
        );
        rejects(
            custom(json!([{"region": [region("1", json!("0"), json!("0"), json!("3/2"), json!("1"))]}])),
            &format!("{path}.region[0].area.width"),
        );
        rejects(
            custom(json!([{"region": [region("1", json!("0"), json!(-0.5), json!("1"), json!("1"))]}])),
            &format!("{path}.region[0].area.top"),
        );
        rejects(
            custom(json!([{"region": [region("1", json!("1/0"), json!("0"), json!("1"), json!("1"))]}])),
            "area.left",
        );
        rejects(
            custom(json!([{"region": [region("1", json!("2/3"), json!("0"), json!("1/2"), json!("1"))]}])),
            &format!("{path}.region[0].area: left + width must not exceed 1, got 2/3 + 1/2"),
        );
        rejects(
            custom(json!([{"region": [region("1", json!("0"), json!("0.5"), json!("1"), json!("0.6"))]}])),
            &format!("{path}.region[0].area: top + height must not exceed 1"),
        );
        rejects(
            custom(json!([{"primary": "9", "region": [full()]}])),
            &format!("{path}.primary: \"9\" is not the id of a region of this template"),
        );
        rejects(custom(json!([{"region": [full()], "extra": 1}])), &format!("unknown field \"extra\" in {path}"));

        // The user guide §3.5.1 example, plus numbers converted to strings.
        let third = json!("1/3");
        let room = accepts(custom(json!([
            {"region": [full()]},
            {"primary": "1", "region": [
                region("1", json!("0"), json!("0"), json!("2/3"), json!("2/3")),
                region("2", json!("2/3"), json!("0"), third.clone(), third.clone()),
                region("3", json!("2/3"), third.clone(), third.clone(), third.clone()),
                region("4", json!("2/3"), json!("2/3"), third.clone(), third.clone()),
                region("5", third.clone(), json!("2/3"), third.clone(), third.clone()),
                region("6", json!("0"), json!("2/3"), third.clone(), third.clone())
            ]},
            {"region": [
                region("1", json!(0), json!(0), json!(0.5), json!(1)),
                region("2", json!(0.5), json!(0), json!(0.5), json!(1))
            ]}
        ])));
        let templates = &room.views[0].video.as_ref().unwrap().layout.templates;
        assert_eq!(templates.base, TemplateBase::Void);
        assert_eq!(templates.custom.len(), 3);
        assert_eq!(templates.custom[1].primary.as_deref(), Some("1"));
        assert_eq!(templates.custom[1].region[5].shape, RegionShape::Rectangle);
        let converted = &templates.custom[2].region[1].area;
        assert_eq!(
            (converted.left.as_str(), converted.top.as_str(), converted.width.as_str(), converted.height.as_str()),
            ("0.5", "0", "0.5", "1")
        );
        let stored = room.to_json(ID);
        assert_eq!(
            stored["views"][0]["video"]["layout"]["templates"]["custom"][1]["region"][0],
            json!({"id": "1", "shape": "rectangle",
                   "area": {"left": "0", "top": "0", "width": "2/3", "height": "2/3"}})
        );
        assert_eq!(RoomConfig::from_stored(&stored).unwrap(), room);
    }

    // --- transcoding, notifying, sip ----------------------------------------------------------

    #[test]
    fn transcoding_and_notifying_rules() {
        rejects(json!({"transcoding": {"audio": "yes"}}), "transcoding.audio: invalid type");
        rejects(
            json!({"transcoding": {"video": {"parameters": {"size": true}}}}),
            "unknown field \"size\" in transcoding.video.parameters",
        );
        rejects(json!({"transcoding": {"video": false}}), "transcoding.video: invalid type");
        rejects(json!({"notifying": {"streamChange": 0}}), "notifying.streamChange: invalid type");
        let room = accepts(json!({"transcoding": {"audio": false, "video": {"format": false}},
                                  "notifying": {"participantActivities": false}}));
        assert!(!room.transcoding.audio && !room.transcoding.video.format);
        assert!(room.transcoding.video.parameters.key_frame_interval);
        assert!(!room.notifying.participant_activities && room.notifying.stream_change);
    }

    #[test]
    fn sip_rules() {
        rejects(json!({"sip": {"sipServer": 5}}), "sip.sipServer: invalid type");
        rejects(json!({"sip": {"port": 5060}}), "unknown field \"port\" in sip");
        rejects(json!({"sip": "a"}), "sip: invalid type");
        let room = accepts(json!({"sip": {"sipServer": "sip.example.org", "username": "room1", "password": "pw"}}));
        assert_eq!(
            room.sip,
            Some(Sip {
                sip_server: "sip.example.org".to_string(),
                username: "room1".to_string(),
                password: "pw".to_string()
            })
        );
        assert_eq!(
            room.to_json(ID)["sip"],
            json!({"sipServer": "sip.example.org", "username": "room1", "password": "pw"})
        );
        let partial = accepts(json!({"sip": {"sipServer": "s"}}));
        assert_eq!(partial.sip.unwrap().username, "");
        assert!(accepts(json!({})).to_json(ID).get("sip").is_none());
    }

    // --- objects only ------------------------------------------------------------------------

    /// A valid room (without ids) where every optional member is set, so every struct of the
    /// schema appears in it with all its fields.
    fn full_room() -> Value {
        let options = json!({
            "views": [{"video": {
                "parameters": {"bitrate": "x0.8"},
                "layout": {"setRegionEffect": "blur",
                           "templates": {"base": "void", "custom": [{"primary": "1", "region": [
                               region("1", json!("0"), json!("0"), json!("1"), json!("1"))]}]}}
            }}],
            "sip": {"sipServer": "sip.example.org", "username": "u", "password": "p"}
        });
        let mut room = accepts(options).to_json(ID);
        for key in ID_KEYS {
            room.as_object_mut().unwrap().remove(*key);
        }
        room
    }

    /// Paths (as room errors name them) of every object nested in `value` below `path`.
    fn object_paths(value: &Value, path: &str, out: &mut Vec<String>) {
        let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        match value {
            Value::Object(map) => {
                if !path.is_empty() {
                    out.push(path.to_string());
                }
                map.iter().for_each(|(key, member)| object_paths(member, &child(key), out));
            }
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, item)| object_paths(item, &format!("{path}[{i}]"), out))
            }
            _ => {}
        }
    }

    /// The object at a room error path, as a mutable JSON value.
    fn at_path<'a>(room: &'a mut Value, path: &str) -> &'a mut Value {
        let pointer: String =
            path.split('.').flat_map(|part| part.split('[')).map(|p| format!("/{}", p.trim_end_matches(']'))).collect();
        room.pointer_mut(&pointer).unwrap_or_else(|| panic!("no {pointer}"))
    }

    /// An object written as the array of its member values, in order: what serde's derived
    /// `visit_seq` would accept.
    fn array_form(object: &Value) -> Value {
        Value::Array(object.as_object().expect("an object").values().cloned().collect())
    }

    #[test]
    fn every_object_of_the_room_refuses_an_array() {
        let room = full_room();
        let mut paths = Vec::new();
        object_paths(&room, "", &mut paths);
        assert!(paths.len() > 40, "{paths:?}");
        let stored = accepts(json!({}));
        for path in paths {
            let mut options = room.clone();
            let object = at_path(&mut options, &path);
            *object = array_form(object);
            let expected = RoomError(format!("{path}: {NOT_AN_OBJECT}"));
            assert_eq!(create(options.clone()), Err(expected.clone()), "create with {path} as an array");
            assert_eq!(stored.update(&options), Err(expected), "update with {path} as an array");
        }
    }

    #[test]
    fn reported_array_forms_are_refused() {
        rejects(json!({"views": [["x"]]}), "views[0]: expected an object, got an array");
        rejects(json!({"roles": [["a"]]}), "roles[0]: expected an object");
        rejects(json!({"roles": [{"role": "a", "publish": [true, true]}]}), "roles[0].publish: expected an object");
        rejects(
            view_video(json!({"parameters": {"resolution": [640, 480]}})),
            "views[0].video.parameters.resolution: expected an object",
        );
        rejects(view_video(json!({"bgColor": [1, 2, 3]})), "views[0].video.bgColor: expected an object");
        rejects(json!({"notifying": [false, false]}), "notifying: expected an object");
        rejects(json!({"sip": ["s", "u", "p"]}), "sip: expected an object");
        rejects(json!({"views": [{"video": ["vp8"]}]}), "views[0].video: expected an object");
        let err = RoomConfig::from_stored(&json!({"name": "r", "transcoding": [true]})).unwrap_err();
        assert_eq!(err.0, "transcoding: expected an object, got an array");
        // Empty arrays too, which would otherwise be a struct of defaults.
        rejects(json!({"mediaIn": []}), "mediaIn: expected an object");
    }

    /// Every struct of the schema (checked against this file's source, so a struct added later
    /// must be listed here) refuses its array form and accepts its object form.
    #[test]
    fn every_schema_struct_refuses_its_array_form() {
        fn check<T: serde::de::DeserializeOwned>(room: &Value, path: &str) {
            let object = if path.is_empty() { room.clone() } else { at_path(&mut room.clone(), path).clone() };
            let type_name = std::any::type_name::<T>();
            if let Err(err) = objects_only::deserialize::<T>(object.clone()) {
                panic!("{type_name} from {object}: {err}");
            }
            match objects_only::deserialize::<T>(array_form(&object)) {
                Ok(_) => panic!("{type_name} accepted its array form"),
                Err(err) => assert_eq!(err.inner().to_string(), NOT_AN_OBJECT, "{type_name}"),
            }
        }
        macro_rules! check_all {
            ($($ty:ident at $path:expr),* $(,)?) => {{
                let room = full_room();
                $(check::<$ty>(&room, $path);)*
                vec![$(stringify!($ty)),*]
            }};
        }
        let mut checked = check_all![
            RoomConfig at "",
            Role at "roles[0]",
            MediaPermission at "roles[0].publish",
            AudioFormat at "mediaIn.audio[0]",
            VideoFormat at "mediaOut.video.format[1]",
            View at "views[0]",
            ViewAudio at "views[0].audio",
            ViewVideo at "views[0].video",
            ViewVideoParameters at "views[0].video.parameters",
            Resolution at "views[0].video.parameters.resolution",
            Rgb at "views[0].video.bgColor",
            Layout at "views[0].video.layout",
            Templates at "views[0].video.layout.templates",
            CustomTemplate at "views[0].video.layout.templates.custom[0]",
            Region at "views[0].video.layout.templates.custom[0].region[0]",
            Area at "views[0].video.layout.templates.custom[0].region[0].area",
            MediaIn at "mediaIn",
            MediaOut at "mediaOut",
            MediaOutVideo at "mediaOut.video",
            VideoParameterOptions at "mediaOut.video.parameters",
            Transcoding at "transcoding",
            VideoTranscoding at "transcoding.video",
            ParameterTranscoding at "transcoding.video.parameters",
            Notifying at "notifying",
            Sip at "sip",
        ];
        let mut declared = Vec::new();
        let mut derives_deserialize = false;
        for line in include_str!("room.rs").lines() {
            if line.starts_with("#[derive(") {
                derives_deserialize = line.contains("Deserialize");
            } else if let Some(rest) = line.strip_prefix("pub struct ") {
                if derives_deserialize {
                    declared.push(rest.split([' ', '{', '(']).next().unwrap());
                }
            }
        }
        checked.sort_unstable();
        declared.sort_unstable();
        assert_eq!(checked, declared, "every Deserialize struct of room.rs is checked");
    }

    #[test]
    fn labels_and_role_names_are_limited_like_the_room_name() {
        let long = "l".repeat(NAME_MAX_CHARS + 1);
        rejects(json!({"views": [{"label": long}]}), "views[0].label: must be at most 256 characters, got 257");
        rejects(
            json!({"roles": [{"role": "a"}, {"role": long}]}),
            "roles[1].role: must be at most 256 characters, got 257",
        );
        let longest = "é".repeat(NAME_MAX_CHARS);
        let room = accepts(json!({"views": [{"label": longest}], "roles": [{"role": longest}]}));
        assert_eq!((room.views[0].label.as_str(), room.roles[0].role.as_str()), (longest.as_str(), longest.as_str()));
    }

    #[test]
    fn media_out_resolutions_are_bounded_like_view_resolutions() {
        let params = |resolution: &str| json!({"mediaOut": {"video": {"parameters": {"resolution": [resolution]}}}});
        for too_big in ["r99999x99999", "r8193x480", "r640x8193"] {
            rejects(params(too_big), "mediaOut.video.parameters.resolution[0]: unknown resolution");
        }
        rejects(params("r8193x8193"), "r<W>x<H> with sides from 1 to 8192");
        let room = accepts(params("r8192x8192"));
        assert_eq!(room.media_out.video.parameters.resolution, ["r8192x8192"]);
        assert_eq!(resolve_resolution("r8192x1", 0, 0), Some((8192, 1)));
        assert_eq!(resolve_resolution("r8193x1", 0, 0), None);
    }

    // --- update ----------------------------------------------------------------------------

    #[test]
    fn update_merges_shallowly() {
        let room = accepts(json!({"inputLimit": 5, "views": [{"label": "a"}, {"label": "b", "video": false}]}));
        let updated = room
            .update(&json!({
                "_id": "other", "id": "other", "__v": 7,
                "participantLimit": 10,
                "views": [{"label": "only", "video": {"maxInput": 4}}]
            }))
            .unwrap();
        assert_eq!(updated.input_limit, 5);
        assert_eq!(updated.participant_limit, 10);
        assert_eq!(updated.views.len(), 1);
        assert_eq!(updated.views[0].label, "only");
        // The replaced view gets schema defaults, not the old view's values.
        assert_eq!(updated.views[0].video.as_ref().unwrap().max_input, 4);
        assert_eq!(updated.views[0].audio, ViewAudio::default());
        assert_eq!(updated.roles, room.roles);
        // Shallow: a partial section replaces the stored one (missing members default).
        let updated = room.update(&json!({"notifying": {"streamChange": false}})).unwrap();
        assert_eq!(updated.notifying, Notifying { participant_activities: true, stream_change: false });
        let json = updated.to_json("abc");
        assert_eq!(json["_id"], json!("abc"));
        assert_eq!(json["__v"], json!(0));
    }

    #[test]
    fn update_drops_nulls_and_checks_everything() {
        let room = accepts(json!({"views": [{"video": {"parameters": {"bitrate": 900}}}],
                                  "sip": {"sipServer": "s"}}));
        // Top-level nulls keep the stored value (removed before the assign).
        let same = room.update(&json!({"name": null, "sip": null, "views": null})).unwrap();
        assert_eq!(same, room);
        // A nested null clears that member back to its default.
        let cleared = room.update(&json!({"views": [{"video": {"parameters": {"bitrate": null}}}]})).unwrap();
        assert_eq!(cleared.views[0], View::default());
        // The console PUTs back what it GOT.
        assert_eq!(room.update(&room.to_json(ID)).unwrap(), room);
        let renamed = room.update(&json!({"name": "new"})).unwrap();
        assert_eq!(renamed.name, "new");

        assert_eq!(room.update(&json!([1])).unwrap_err(), RoomError("room update must be a JSON object".to_string()));
        assert_eq!(room.update(&json!({"name": ""})).unwrap_err().0, "name: must be a non-empty string");
        assert_eq!(room.update(&json!({"bogus": 1})).unwrap_err().0, "unknown field \"bogus\" in room");
        assert_eq!(
            room.update(&json!({"views": false})).unwrap_err().0,
            "views: invalid type: boolean `false`, expected a sequence"
        );
        assert_eq!(
            room.update(&json!({"mediaOut": {"audio": []}})).unwrap_err().0,
            "MediaOut conflicts with View Setting"
        );
        assert!(room.update(&json!({"mediaOut": {"audio": []}, "views": []})).is_ok());
    }

    // --- stored form -------------------------------------------------------------------------

    #[test]
    fn stored_form_round_trips() {
        let room = accepts(json!({
            "inputLimit": 8, "participantLimit": 20, "selectActiveAudio": true,
            "roles": [{"role": "host", "publish": {"audio": true, "video": true}, "subscribe": {"audio": true, "video": true}}],
            "views": [
                {"label": "main", "audio": {"format": {"codec": "pcmu"}, "vad": false},
                 "video": {"format": {"codec": "h264", "profile": "B"},
                           "parameters": {"resolution": {"width": 1280, "height": 720}, "framerate": 30,
                                          "bitrate": "x0.75", "keyFrameInterval": 30},
                           "maxInput": 6, "motionFactor": 0.5, "bgColor": {"r": 1, "g": 2, "b": 3},
                           "keepActiveInputPrimary": true,
                           "layout": {"fitPolicy": "crop", "setRegionEffect": "fade",
                                      "templates": {"base": "fluid", "custom": [
                                          {"primary": "a", "region": [{"id": "a", "area": {"left": 0, "top": "0", "width": "1", "height": ".5"}}]}
                                      ]}}}},
                {"label": "voice", "video": false}
            ],
            "mediaIn": {"audio": [{"codec": "opus", "sampleRate": 48000, "channelNum": 2}], "video": [{"codec": "av1"}]},
            "transcoding": {"video": {"parameters": {"framerate": false}}},
            "sip": {"sipServer": "s", "username": "u", "password": "p"}
        }));
        let stored = room.to_json(ID);
        let loaded = RoomConfig::from_stored(&stored).unwrap();
        assert_eq!(loaded, room);
        assert_eq!(loaded.to_json(ID), stored);
        // Through text as the database keeps it.
        let text = serde_json::to_string(&stored).unwrap();
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(RoomConfig::from_stored(&reparsed).unwrap(), room);
        assert_eq!(stored["views"][0]["video"]["parameters"]["bitrate"], json!("x0.75"));

        let default = RoomConfig::create(&json!("d"), None).unwrap();
        assert_eq!(RoomConfig::from_stored(&default.to_json(ID)).unwrap(), default);
        assert!(RoomConfig::from_stored(&json!("x")).is_err());
        let mut broken = default.to_json(ID);
        broken["views"][0]["video"]["maxInput"] = json!(0);
        assert!(RoomConfig::from_stored(&broken).is_err());
    }

    // --- bitrate, resolution, fraction helpers --------------------------------------------------

    #[test]
    fn default_bitrate_worked_examples() {
        let close = |a: f64, b: f64, tolerance: f64| (a - b).abs() <= tolerance;
        assert!(close(default_bitrate_kbps("vp8", 640, 480, 24.0, 0.8), 665.6, 0.01));
        assert!(close(default_bitrate_kbps("h264", 1280, 720, 30.0, 0.8), 1600.0, 0.01));
        assert!(close(default_bitrate_kbps("vp8", 640, 480, 30.0, 1.0), 960.0, 0.01));
        assert!(close(ViewVideo::default().bitrate_kbps(), 665.6, 0.01));
        // Table 3-3, h264, 30 fps, motion factor 1.0.
        for (w, h, kbps) in [
            (352, 288, 442.0),
            (176, 144, 132.0),
            (320, 240, 400.0),
            (640, 480, 800.0),
            (800, 600, 1137.0),
            (1024, 768, 1736.0),
            (480, 320, 533.0),
            (1280, 720, 2000.0),
            (1920, 1080, 4000.0),
            (3840, 2160, 16000.0),
        ] {
            let got = default_bitrate_kbps("h264", w, h, 30.0, 1.0);
            assert!(close(got, kbps, 1.0), "{w}x{h}: {got}");
        }
        assert!(close(default_bitrate_kbps("vp9", 640, 480, 30.0, 1.0), 640.0, 0.01));
        assert!(close(default_bitrate_kbps("h265", 640, 480, 30.0, 1.0), 720.0, 0.01));
        assert!(close(default_bitrate_kbps("av1", 640, 480, 30.0, 1.0), 800.0, 0.01));
        assert_eq!(default_bitrate_kbps("h264", 8192, 8192, 60.0, 1.0), 64000.0);
        assert_eq!(default_bitrate_kbps("h264", 0, 480, 30.0, 1.0), 0.0);
    }

    #[test]
    fn resolution_specs() {
        assert_eq!(resolve_resolution("vga", 1, 1), Some((640, 480)));
        assert_eq!(resolve_resolution("hd1080p", 1, 1), Some((1920, 1080)));
        assert_eq!(resolve_resolution("xga", 1, 1), Some((1024, 768)));
        assert_eq!(resolve_resolution("qcif", 1, 1), Some((176, 144)));
        assert_eq!(resolve_resolution("r1280x720", 1, 1), Some((1280, 720)));
        assert_eq!(resolve_resolution("r720x1280", 1, 1), Some((720, 1280)));
        assert_eq!(resolve_resolution("x1/2", 640, 480), Some((320, 240)));
        assert_eq!(resolve_resolution("x3/4", 1280, 720), Some((960, 540)));
        // 1280·2/3 = 853.3 → 853 → 852; 720·2/3 = 480.
        assert_eq!(resolve_resolution("x2/3", 1280, 720), Some((852, 480)));
        // 352/3 = 117.3 → 116; 288/3 = 96.
        assert_eq!(resolve_resolution("x1/3", 352, 288), Some((116, 96)));
        for bad in [
            "", "foo", "sif", "VGA", "r640", "r0x480", "rAxB", "r640x", "x1/0", "x0/2", "x1", "x/2", "x1/2000", "r-1x5",
        ] {
            assert_eq!(resolve_resolution(bad, 640, 480), None, "{bad:?}");
        }
    }

    #[test]
    fn fractions_and_multipliers() {
        assert_eq!(parse_fraction("1/3"), Some((1, 3)));
        assert_eq!(parse_fraction("2/4"), Some((1, 2)));
        assert_eq!(parse_fraction("0/2"), Some((0, 1)));
        assert_eq!(parse_fraction("0"), Some((0, 1)));
        assert_eq!(parse_fraction("1"), Some((1, 1)));
        assert_eq!(parse_fraction("0.25"), Some((1, 4)));
        assert_eq!(parse_fraction(".5"), Some((1, 2)));
        assert_eq!(parse_fraction("1."), Some((1, 1)));
        for bad in ["", ".", "1/0", "a", "-1", "1/-2", " 1", "1e3", "0.1.2", "1//2"] {
            assert_eq!(parse_fraction(bad), None, "{bad:?}");
        }
        assert!(fits_in_unit("1/3", "2/3"));
        assert!(fits_in_unit("0.5", "0.5"));
        assert!(!fits_in_unit("0.5", "0.50001"));
        assert_eq!(parse_bitrate_multiplier("x0.8"), Some(0.8));
        assert_eq!(parse_bitrate_multiplier("x2"), Some(2.0));
        for bad in ["0.8", "x", "x0", "x-1", "xinf", "xNaN", "x1e2", "x."] {
            assert_eq!(parse_bitrate_multiplier(bad), None, "{bad:?}");
        }
    }
}

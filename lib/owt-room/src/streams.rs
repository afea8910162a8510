//! StreamInfo, the description of a stream that clients receive in login results and
//! `stream` notifications (spec/owt-compat.md §1.11), including the `optional` formats and
//! parameters a subscriber may ask for, derived from the room's mediaOut and transcoding.

use owt_types::room::{resolve_resolution, AudioFormat, RoomConfig, VideoFormat, View};
use serde_json::{json, Value};

fn audio_format_json(format: &AudioFormat) -> Value {
    let mut value = json!({"codec": format.codec});
    if let Some(rate) = format.sample_rate {
        value["sampleRate"] = rate.into();
    }
    if let Some(channels) = format.channel_num {
        value["channelNum"] = channels.into();
    }
    value
}

fn video_format_json(format: &VideoFormat) -> Value {
    let mut value = json!({"codec": format.codec});
    if let Some(profile) = &format.profile {
        value["profile"] = profile.clone().into();
    }
    value
}

/// Builds the `optional` members of tracks from a room's settings.
pub struct StreamInfoBuilder<'a> {
    config: &'a RoomConfig,
}

impl<'a> StreamInfoBuilder<'a> {
    pub fn new(config: &'a RoomConfig) -> Self {
        StreamInfoBuilder { config }
    }

    /// Audio formats a subscriber may ask instead of `own`.
    pub fn audio_optional(&self, own: &AudioFormat) -> Value {
        let formats: Vec<Value> = if self.config.transcoding.audio {
            self.config.media_out.audio.iter().filter(|f| *f != own).map(audio_format_json).collect()
        } else {
            Vec::new()
        };
        json!({"format": formats})
    }

    /// Video formats and parameters a subscriber may ask, relative to the track's own format
    /// and its base parameters (resolution, framerate). All four parameter arrays are always
    /// present: the JS SDK requires them together.
    pub fn video_optional(&self, own: &VideoFormat, width: u32, height: u32, framerate: u32) -> Value {
        let out = &self.config.media_out.video;
        let transcoding = &self.config.transcoding.video;
        let formats: Vec<Value> = if transcoding.format {
            out.format.iter().filter(|f| *f != own).map(video_format_json).collect()
        } else {
            Vec::new()
        };
        let mut resolutions: Vec<(u32, u32)> = Vec::new();
        if transcoding.parameters.resolution {
            for spec in &out.parameters.resolution {
                if let Some((w, h)) = resolve_resolution(spec, width, height) {
                    if w < width && h < height && !resolutions.contains(&(w, h)) {
                        resolutions.push((w, h));
                    }
                }
            }
        }
        let framerates: Vec<u32> = if transcoding.parameters.framerate {
            out.parameters.framerate.iter().copied().filter(|f| *f < framerate).collect()
        } else {
            Vec::new()
        };
        let bitrates = if transcoding.parameters.bitrate { out.parameters.bitrate.clone() } else { Vec::new() };
        let kfis = if transcoding.parameters.key_frame_interval {
            out.parameters.key_frame_interval.clone()
        } else {
            Vec::new()
        };
        json!({
            "format": formats,
            "parameters": {
                "resolution": resolutions.iter().map(|(w, h)| json!({"width": w, "height": h})).collect::<Vec<_>>(),
                "framerate": framerates,
                "bitrate": bitrates,
                "keyFrameInterval": kfis,
            }
        })
    }
}

/// The mixed stream of a view: id `<roomId>-<label>`, type `mixed`.
pub fn mixed_stream_info(room_id: &str, config: &RoomConfig, view: &View) -> Value {
    let builder = StreamInfoBuilder::new(config);
    let mut tracks = vec![json!({
        "type": "audio",
        "format": audio_format_json(&view.audio.format),
        "optional": builder.audio_optional(&view.audio.format),
        "status": "active",
    })];
    if let Some(video) = &view.video {
        let p = &video.parameters;
        let mut parameters = json!({
            "resolution": {"width": p.resolution.width, "height": p.resolution.height},
            "framerate": p.framerate,
            "keyFrameInterval": p.key_frame_interval,
        });
        if p.bitrate.is_some() {
            parameters["bitrate"] = json!(video.bitrate_kbps());
        }
        tracks.push(json!({
            "type": "video",
            "format": video_format_json(&video.format),
            "parameters": parameters,
            "optional": builder.video_optional(&video.format, p.resolution.width, p.resolution.height, p.framerate),
            "status": "active",
        }));
    }
    json!({
        "id": format!("{room_id}-{}", view.label),
        "type": "mixed",
        "media": {"tracks": tracks},
        "data": null,
        "info": {
            "label": view.label,
            "activeInput": "unknown",
            "layout": [],
            "origin": {"isp": "isp", "region": "region"},
        },
    })
}

/// The REST form of a StreamInfo (spec §2.4): tracks become `media.audio` / `media.video`
/// with `video.original` (format 1.1, `/v1.1`), or with `original[0]` flattened into
/// `video.format` / `video.parameters` (format 1.0, `/v1`, what OWT's REST client sees).
pub fn rest_stream(info: &Value, flatten_video: bool) -> Value {
    let mut out = info.clone();
    let mut media = serde_json::Map::new();
    for track in info["media"]["tracks"].as_array().into_iter().flatten() {
        let status = track.get("status").cloned().unwrap_or_else(|| json!("active"));
        match track["type"].as_str() {
            Some("audio") if !media.contains_key("audio") => {
                let mut audio = json!({"status": status, "format": track["format"], "optional": track["optional"]});
                if let Some(source) = track.get("source") {
                    audio["source"] = source.clone();
                }
                media.insert("audio".into(), audio);
            }
            Some("video") if !media.contains_key("video") => {
                let mut original = json!({"format": track["format"]});
                if let Some(parameters) = track.get("parameters") {
                    original["parameters"] = parameters.clone();
                }
                let mut video = json!({"status": status, "optional": track["optional"]});
                if let Some(source) = track.get("source") {
                    video["source"] = source.clone();
                }
                if flatten_video {
                    video["format"] = original["format"].clone();
                    if let Some(parameters) = original.get("parameters") {
                        video["parameters"] = parameters.clone();
                    }
                } else {
                    video["original"] = json!([original]);
                }
                media.insert("video".into(), video);
            }
            _ => {}
        }
    }
    out["media"] = Value::Object(media);
    out
}
